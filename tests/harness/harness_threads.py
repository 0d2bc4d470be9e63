"""Run as a script: compiled fits of the named corpus cases, printed as one JSON line of digests.

``python harness_threads.py CASE ...`` fits each case on its harness data (sequential and damped) and prints
{case: [digest of each fit]}.  test_threads runs it under
NUMBA_NUM_THREADS=1 and 2: the digests must agree (chunks are fixed and reduced in a fixed order).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def digest(outcome) -> str:
    """Every bit of a fit's trace, q and params (or the error it ended in)."""
    h = hashlib.sha256()
    h.update(repr(outcome.error).encode())
    h.update(np.asarray(outcome.trace, dtype=float).tobytes())
    for group in (outcome.q or {}, outcome.params or {}):
        for name in sorted(group):
            value = group[name]
            for key in sorted(value) if isinstance(value, dict) else [None]:
                v = value[key] if key is not None else value
                h.update(f"{name}.{key}".encode())
                h.update(str(v).encode() if isinstance(v, str) else np.ascontiguousarray(v, dtype=float).tobytes())
    return h.hexdigest()


def main(names: list[str]) -> None:
    from harness_cases import corpus, data_for
    from harness_fit import fit_text
    from ppvi.language import loads

    cases = {c.name: c for c in corpus()}
    out = {}
    for name in names:
        c = cases[name]
        data, dims = data_for(c, loads(c.text, "harness.ppvi"), np.random.default_rng(0))
        out[name] = [digest(fit_text(c.text, data, dims, python=False, max_iter=15)),
                     digest(fit_text(c.text, data, dims, python=False, damping=0.5, max_iter=4))]
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
