"""Time to derive every example model (issue: < 2 s each, independent of dims).

    python bench/derive_time.py

Prints, per model, the in-process derivation time (parse + check + 19.56 +
rendering, after imports; best of 3) and the whole-process time of
`ppvi derive` (Python start-up and imports included), and the derivation time
of gmm_1d with K = 3 and K = 10^6 to show the plates stay symbolic.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def best_of(fn, n: int = 3) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    from ppvi.derive import derive
    from ppvi.derive.render import to_text
    from ppvi.language import load, loads

    rows = []
    for path in sorted((ROOT / "models").glob("*.ppvi")):
        inproc = best_of(lambda: to_text(derive(load(str(path)))))
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ppvi", "derive", str(path)], check=True, capture_output=True)
        whole = time.perf_counter() - t
        rows.append((path.stem, inproc, whole))
    print(f"{'model':24} {'derive (s)':>11} {'ppvi derive process (s)':>24}")
    for name, a, b in rows:
        print(f"{name:24} {a:11.3f} {b:24.3f}")
    print(f"{'slowest':24} {max(r[1] for r in rows):11.3f} {max(r[2] for r in rows):24.3f}")
    text = (ROOT / "models" / "gmm_1d.ppvi").read_text()
    for k in (3, 10**6):
        model = text.replace("dim K = 3", f"dim K = {k}")
        print(f"gmm_1d with K = {k:>7}: {best_of(lambda: derive(loads(model))):.3f} s")


if __name__ == "__main__":
    main()
