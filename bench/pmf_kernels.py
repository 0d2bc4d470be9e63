"""Where a Bayesian PMF sweep goes, kernel by kernel (bench/run.py's pmf case: models/bpmf.ppvi, K = 10,
10⁶ ratings at distinct random cells of 10⁴ users × 10⁴ items).

    python bench/pmf_kernels.py [--ratings 1000000] [--users 10000] [--repeat 5]

After one sweep of a fit, each step of the schedule and the ELBO is timed on its own (best of ``--repeat``:
process CPU seconds, every thread's, and wall seconds); a latent with a rows kernel (passes.scatter_rows) has
its serial update and its rows kernel timed alternately, in the same process, on the same state.  The machine
is shared: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import _model     # noqa: E402  (bench/run.py: the model with K replaced)


def _best(fn, repeat: int) -> tuple[float, float]:
    """(best CPU seconds, best wall seconds) of ``repeat`` calls."""
    out = []
    for _ in range(repeat):
        c, w = time.process_time(), time.perf_counter()
        fn()
        out.append((time.process_time() - c, time.perf_counter() - w))
    return min(o[0] for o in out), min(o[1] for o in out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratings", type=int, default=10 ** 6)
    ap.add_argument("--users", type=int, default=10 ** 4)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    import ppvi
    from ppvi.infer.program import ROWS_FROM

    rng = np.random.default_rng(0)
    n = a.users
    cells = rng.choice(n * n, size=a.ratings, replace=False)
    P, Q = rng.normal(size=(n, a.k)), rng.normal(size=(n, a.k))
    user, item = cells // n, cells % n
    rating = np.einsum("rk,rk->r", P[user], Q[item]) / np.sqrt(a.k) + rng.normal(scale=0.5, size=a.ratings)
    print(f"load average before: {os.getloadavg()}")
    m = ppvi.load(_model("bpmf", {"dim K = 3": f"dim K = {a.k}"}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = m.fit({"user": user, "item": item, "rating": rating}, max_iter=1, tol=0.0, dims={"U": n, "I": n}).fit.program

    def call(spec):
        return lambda: getattr(p.module, spec.name)(*(p.state[x] for x in spec.args))
    total = 0.0
    for var in p.schedule():
        info = p.plan.entry(var)
        chosen = info.rows if getattr(info, "rows", None) is not None and p._by_rows(info) else info.update
        cpu, wall = _best(lambda: p.update(var), a.repeat)
        total += cpu
        print(f"{var:10s} {chosen.name:12s} cpu {cpu:.3f} s  wall {wall:.3f} s")
        if getattr(info, "rows", None) is not None:
            pairs = {"update": [], "rows": []}
            for _ in range(a.repeat):       # (alternately, so that the machine's load falls on both alike)
                pairs["update"].append(_best(call(info.update), 1))
                pairs["rows"].append(_best(call(info.rows), 1))
            for kind, got in pairs.items():
                print(f"  {kind:6s} best cpu {min(g[0] for g in got):.3f} s  best wall {min(g[1] for g in got):.3f} s")
    cpu, wall = _best(p.elbo, a.repeat)
    total += cpu
    elbo = p.plan.elbo
    chosen = elbo.large if elbo.large is not None and p.sizes[elbo.plate] >= ROWS_FROM else elbo.kernel
    print(f"{'ELBO':10s} {chosen.name:12s} cpu {cpu:.3f} s  wall {wall:.3f} s")
    print(f"a sweep with its ELBO: {total:.3f} CPU-s (sum of the best of each step)")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
