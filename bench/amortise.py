"""Learned inference and evidence, timed (issue 19; docs/amortise.md).

    python bench/amortise.py            # about two minutes on a quiet 2-core machine (compiles one model)

1. Per-example inference on held-out data: binary sparse coding with `amortise h by mlp(hidden = 32)`, fitted
   to the bars of models/binary_sparse_coding.npz, on 1000 new bars from the same generator.  CAVI from the
   standard start (the E-step) to convergence, against the encoder followed by 0 … 5 exact sweeps: seconds per
   example (`predict`'s wall time over the examples) and the ELBO gap per example to the converged CAVI.
2. LISTA against feature-sign at an equal objective: scikit-learn's digits, a fixed dictionary of 32 centred
   digits (β = 5, λ = 1), LISTA (4 shrinkage steps) trained on the exact codes of 1000 digits; on 500 others,
   LISTA's seconds per code, then feature-sign search stopped at the first iterate whose objective is at most
   LISTA's, and run to the exact code; and ISTA, the steps it needs to match.
3. Importance-sampling throughput: per-datum weights per second on the bars (`r.evidence(S, per_datum=True)`),
   on the fit's data and on held-out data.

Prints a Markdown table per part.  Timings depend on the load: the script prints it.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "amortise"))

import ppvi  # noqa: E402
from feature_sign import codes, digits, objective  # noqa: E402
from feature_sign import ista as ista_network  # noqa: E402
from ppvi.amortise.encoder import loss_of  # noqa: E402
from ppvi.amortise.lista import LISTA, from_codes  # noqa: E402
from ppvi.amortise.mlp import Adam  # noqa: E402
from ppvi.amortise.train import LISTA_RATE  # noqa: E402


def bars(n: int, seed: int) -> np.ndarray:
    """The generator of models/binary_sparse_coding.npz (tests/amortise/test_encoder.py): 5×5 images, 10 bars
    each on with probability 0.2, noise sd 0.25."""
    rng = np.random.default_rng(seed)
    w = np.zeros((25, 10))
    for k in range(5):
        w[np.arange(5) + 5 * k, k] = 1.0
        w[5 * np.arange(5) + k, 5 + k] = 1.0
    h = (rng.random((n, 10)) < 0.2).astype(float)
    return h @ w.T + 0.25 * rng.standard_normal((n, 25))


def timed(f, repeat: int = 3):
    """The fastest of ``repeat`` calls' wall time, and the last value."""
    best, out = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t)
    return best, out


def amortised_bars(folder: str):
    text = (ROOT / "models" / "binary_sparse_coding.ppvi").read_text() + "\namortise h by mlp(hidden = 32)\n"
    path = Path(folder) / "bsc_amortised.ppvi"
    path.write_text(text)
    shutil.copy(ROOT / "models" / "binary_sparse_coding.npz", Path(folder) / "bsc_amortised.npz")
    return ppvi.load(str(path)).fit(progress=False)


def inference(r) -> None:
    import dataclasses

    new = {"v": bars(1000, seed=7)}
    n = len(new["v"])
    scratch = dataclasses.replace(r, encoders={})
    r.predict(new, refine=0)                       # (warm: the kernels loaded)
    t_cavi, cavi = timed(lambda: scratch.predict(new))
    print("\n## 1. Per-example inference on 1000 held-out bars (binary sparse coding, M = 10, D = 25)\n")
    print("| start | sweeps | µs per example | ELBO gap per example to converged CAVI (nats) |")
    print("|---|---|---|---|")
    print(f"| CAVI, standard start | {cavi.iterations} (to convergence) | {1e6 * t_cavi / n:.1f} | 0 |")
    for k in range(6):
        t, p = timed(lambda: r.predict(new, refine=k))
        print(f"| encoder | {k} | {1e6 * t / n:.1f} | {(cavi.elbo - p.elbo) / n:.4f} |")
    t, p = timed(lambda: r.predict(new))
    print(f"| encoder | {p.iterations} (to convergence) | {1e6 * t / n:.1f} | {(cavi.elbo - p.elbo) / n:.4f} |")


def lista_against_feature_sign() -> None:
    beta, lam, steps = 5.0, 1.0, 3
    w, b, train, held = digits(1000, 500)
    exact_train = codes(w, b, beta, lam, train)
    start = from_codes(train, exact_train, steps)
    net, _ = Adam(rate=LISTA_RATE).fit(start, train, exact_train, loss_of("point", 1), epochs=200, batch=64,
                                      rng=np.random.default_rng(2))
    n = len(held)
    t_lista, z = timed(lambda: net(held), repeat=20)
    j_lista = objective(w, b, beta, lam, held, z)
    t_exact, exact = timed(lambda: codes(w, b, beta, lam, held), repeat=1)
    t_equal, equal = timed(lambda: codes(w, b, beta, lam, held, targets=j_lista), repeat=1)
    j_exact, j_equal = objective(w, b, beta, lam, held, exact), objective(w, b, beta, lam, held, equal)

    def ista(k: int) -> LISTA:
        return ista_network(w, b, beta, lam, k)

    k = next(k for k in range(1, 2000) if objective(w, b, beta, lam, held, ista(k)(held)).sum() <= j_lista.sum())
    t_ista, _ = timed(lambda: ista(k)(held), repeat=20)
    print("\n## 2. LISTA against feature-sign on 500 held-out digits (32 atoms, β = 5, λ = 1)\n")
    print("| method | µs per code | Σ J − Σ J* | ‖h − h*‖ / ‖h*‖ |")
    print("|---|---|---|---|")
    rel = lambda h: np.linalg.norm(h - exact) / np.linalg.norm(exact)  # noqa: E731
    print(f"| LISTA, {steps + 1} shrinkage steps (batched NumPy) | {1e6 * t_lista / n:.2f} | "
          f"{(j_lista - j_exact).sum():.1f} | {rel(z):.3f} |")
    print(f"| ISTA, {k + 1} steps to the same Σ J (batched NumPy) | {1e6 * t_ista / n:.2f} | "
          f"{(objective(w, b, beta, lam, held, ista(k)(held)) - j_exact).sum():.1f} | {rel(ista(k)(held)):.3f} |")
    print(f"| feature-sign, stopped at LISTA's J per code (one code at a time) | {1e6 * t_equal / n:.1f} | "
          f"{(j_equal - j_exact).sum():.1f} | {rel(equal):.3f} |")
    print(f"| feature-sign to the exact code (one code at a time) | {1e6 * t_exact / n:.1f} | 0 | 0 |")


def throughput(r) -> None:
    samples = 2000
    print("\n## 3. Importance sampling, per-datum weights (bars: N = 500, M = 10)\n")
    print("| data | draws S | weights | seconds | weights per second |")
    print("|---|---|---|---|---|")
    e = r.evidence(samples, per_datum=True, seed=0)
    n = len(r.data["v"])
    print(f"| the fit's | {samples} | {samples * n} | {e.seconds:.2f} | {samples * n / e.seconds:.3g} |")
    new = {"v": bars(500, seed=9)}
    t = time.perf_counter()
    e = r.evidence(samples, per_datum=True, seed=0, data=new)
    total = time.perf_counter() - t
    print(f"| 500 held-out (with the prediction: {total:.2f} s in all) | {samples} | {samples * 500} | "
          f"{e.seconds:.2f} | {samples * 500 / e.seconds:.3g} |")


def main() -> None:
    import warnings

    warnings.simplefilter("ignore", ppvi.PPVIWarning)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as folder:
        r = amortised_bars(folder)
        inference(r)
        lista_against_feature_sign()
        throughput(r)


if __name__ == "__main__":
    main()
