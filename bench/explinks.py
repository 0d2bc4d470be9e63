"""Poisson log-link regression: ppvi's Newton-on-the-exact-ELBO fit against a NumPy Laplace fit (issue 17).

    python bench/explinks.py                   # N = 10^6, D = 20 (minutes)
    python bench/explinks.py --n 20000 --d 20  # smaller

Both from the same data, each to convergence: ppvi until the ELBO changes by less than --tol (relative) in a
sweep (kernels compiled, or loaded from the cache, by a warm-up fit first), NumPy's Newton on the log posterior
until its step is below 1e-10 (each step one pass for X^T diag(rate) X).  Prints the times, their ratio, the
sweeps, and how far ppvi's means are from the Laplace mode in Laplace sds.  The two fits are not the same
approximation (a factorised Gaussian with the exact ELBO against a full-covariance Gaussian at the mode), but
both answer "fit this Poisson regression".
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

MODEL = """\
model poisson_bench
dim N, D
data x[N, D]
data y[N] : count
b ~ Normal(0, sd = 5)
for j in D:
    w[j] ~ Normal(0, sd = 5)
for n in N:
    y[n] ~ Poisson(exp(b + dot(x[n], w)))
"""


def data(n: int, d: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) / np.sqrt(d)
    w = rng.normal(scale=0.5, size=d)
    return {"x": x, "y": rng.poisson(np.exp(0.3 + x @ w)).astype(np.int64)}


def laplace(x: np.ndarray, y: np.ndarray, prior_sd: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Mode and marginal sds of log p(b, w | y) by Newton's method (intercept first)."""
    X = np.column_stack([np.ones(len(x)), x])
    beta = np.zeros(X.shape[1])
    for _ in range(100):
        rate = np.exp(X @ beta)
        grad = X.T @ (y - rate) - beta / prior_sd ** 2
        hess = (X.T * rate) @ X + np.eye(X.shape[1]) / prior_sd ** 2
        step = np.linalg.solve(hess, grad)
        beta += step
        if np.max(np.abs(step)) < 1e-10:
            break
    rate = np.exp(X @ beta)
    cov = np.linalg.inv((X.T * rate) @ X + np.eye(X.shape[1]) / prior_sd ** 2)
    return beta, np.sqrt(np.diag(cov))


def main() -> None:
    import ppvi

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=20)
    ap.add_argument("--tol", type=float, default=1e-8)
    args = ap.parse_args()
    dd = data(args.n, args.d)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "poisson_bench.ppvi")
        with open(path, "w") as f:
            f.write(MODEL)
        model = ppvi.load(path)
        model.fit(data(1000, args.d), max_iter=2, tol=0)           # compile (or load) the kernels
        t0 = time.perf_counter()
        r = model.fit(dd, tol=args.tol, max_iter=1000)
        t_ppvi = time.perf_counter() - t0
    t0 = time.perf_counter()
    mode, sd = laplace(dd["x"], dd["y"])
    t_np = time.perf_counter() - t0
    means = np.concatenate([np.ravel(r.q["b"]["mean"]), np.ravel(r.q["w"]["mean"])])
    print(f"N = {args.n}, D = {args.d}: ppvi {t_ppvi:.2f} s ({r.iterations} sweeps, ELBO {r.elbo:.6f}, "
          f"converged {r.converged}); NumPy Laplace {t_np:.2f} s; ratio ppvi/NumPy {t_ppvi / t_np:.1f}; "
          f"max |mean − mode| / sd = {np.max(np.abs(means - mode) / sd):.3f}; load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
