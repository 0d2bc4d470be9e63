"""How far the Bayesian mixture's sweep is from this machine's bound.

    python bench/bound.py            # N = 10^6, D = 1, 2, 10, K = 10 (about two minutes)

Measures three rates of the machine, on all its cores as a sweep uses them:
stream bandwidth (a triad, a[i] = b[i] + s c[i], over arrays far larger than
the caches), exp throughput (ppvi's branch-free ``vexp`` over data in cache),
and the rate of BLAS's dgemm on the shapes of the blocked local step (a block
of 4,000 points; BLAS on one thread per core, as during a fit).  It then counts
the least work any CAVI sweep of the model must do:

* memory: read x once and write q(z) once, 8 N (D + K) bytes;
* exps: the N K of the softmax, and the N logs of its normaliser (counted as exps);
* flops: η = Φ W and the statistics Φᵀ R, 2 · 2 N F K with F = 1 + D + D(D+1)/2
  features per point (1, x, the distinct x_d x_e);

and takes the bound as max(memory time, exp time + dgemm time): the arithmetic
shares the cores, the memory traffic can overlap it.  ppvi's seconds per
iteration (the bench's own measurement: local step, global step and ELBO) are
set against it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from numba import get_num_threads, njit, prange

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ppvi.codegen.runtime import vexp  # noqa: E402

BLOCK = 4000                # points per block of the local step (codegen.statistics)


@njit(parallel=True, cache=True)
def _triad(a, b, c, s):
    for i in prange(a.shape[0]):
        a[i] = b[i] + s * c[i]


@njit(parallel=True, cache=True, error_model="numpy", fastmath={"contract"})
def _exps(x, y, repeats):
    """y = e^x, ``repeats`` times over each thread's own row (in cache): repeats · len(row) exps a thread, in a
    loop that vectorises and contracts to FMAs as the softmax's does (runtime.finish_categorical_block; a
    running sum would not vectorise: its order is fixed)."""
    for t in prange(x.shape[0]):
        row, out = x[t], y[t]
        for r in range(repeats):
            for i in range(row.shape[0]):
                out[i] = vexp(row[i] - r * 1e-9)      # (r: so no pass is found redundant)


@njit(parallel=True, cache=True)
def _gemms(phi, w, r, out_h, out_s, repeats):
    """Per thread: H = Φ W (B × F by F × K) and S = Φᵀ R (F × B by B × K), ``repeats`` times."""
    for t in prange(phi.shape[0]):
        for _ in range(repeats):
            np.dot(phi[t], w, out_h[t])
            np.dot(phi[t].T, r[t], out_s[t])


def _best(f, times: int = 5) -> float:
    f()                                     # (compiled, caches warm)
    best = np.inf
    for _ in range(times):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def bandwidth(n: int = 1 << 24) -> float:
    """Bytes per second of the triad (three arrays of 8 n bytes each: two read, one written)."""
    a, b, c = np.zeros(n), np.ones(n), np.ones(n)
    return 3 * 8 * n / _best(lambda: _triad(a, b, c, 0.5))


def exp_rate(length: int = 2048, repeats: int = 2000) -> float:
    """exps per second, all threads."""
    nt = get_num_threads()
    x = np.random.default_rng(0).uniform(-30.0, 0.0, size=(nt, length))
    y = np.empty_like(x)
    return nt * length * repeats / _best(lambda: _exps(x, y, repeats))


def gemm_rate(features: int, k: int = 10, repeats: int = 50) -> float:
    """flops per second of the local step's two block products, all threads."""
    from threadpoolctl import threadpool_limits

    nt = get_num_threads()
    rng = np.random.default_rng(0)
    phi = rng.normal(size=(nt, BLOCK, features))
    w = rng.normal(size=(features, k))
    r = rng.random(size=(nt, BLOCK, k))
    h, s = np.empty((nt, BLOCK, k)), np.empty((nt, features, k))
    with threadpool_limits(1, user_api="blas"):
        seconds = _best(lambda: _gemms(phi, w, r, h, s, repeats))
    return nt * repeats * 2 * 2 * BLOCK * features * k / seconds


def bound(n: int, d: int, k: int, bw: float, exps: float, flops_rate: float) -> dict:
    f = 1 + d + d * (d + 1) // 2
    memory = 8 * n * (d + k) / bw
    exp = n * (k + 1) / exps
    gemm = 2 * 2 * n * f * k / flops_rate
    return {"memory": memory, "exp": exp, "gemm": gemm, "bound": max(memory, exp + gemm)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--rest", type=float, default=15.0, help="seconds of idle before each ppvi case")
    args = ap.parse_args()
    import run

    bw, exps = bandwidth(), exp_rate()
    lines = [f"This machine, {get_num_threads()} threads: stream (triad) {bw / 1e9:.1f} GB/s, "
             f"vexp {exps / 1e9:.2f}·10⁹ exps/s.", "",
             "| D | F | dgemm GFLOP/s | memory ms | exps ms | dgemm ms | bound ms | ppvi ms/iter | ppvi / bound |",
             "|" + "---|" * 9]
    for d in (1, 2, 10):
        f = 1 + d + d * (d + 1) // 2
        rate = gemm_rate(f)
        b = bound(args.n, d, 10, bw, exps, rate)
        got = run._run(args.rest, "gmm", "ppvi", args.n, d, 10)
        per = got["per_iter"] if got else float("nan")
        lines.append(f"| {d} | {f} | {rate / 1e9:.1f} | {1e3 * b['memory']:.1f} | {1e3 * b['exp']:.1f} | "
                     f"{1e3 * b['gemm']:.1f} | {1e3 * b['bound']:.1f} | {1e3 * per:.1f} | "
                     f"{per / b['bound']:.1f}× |")
    print(f"Bayesian mixture, full covariance, N = {args.n:,}, K = 10.")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
