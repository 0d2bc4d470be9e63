"""Poisson factorisation: seconds per sweep of ppvi against Gopalan et al.'s CAVI in NumPy, in one run.

    PYTHONPATH=. python bench/poisson_factorisation.py --quick     # 400 × 300 counts (under a minute)
    PYTHONPATH=. python bench/poisson_factorisation.py             # 3,000 × 1,000 counts, K = 10

Counts y[u, i] ~ Poisson(Σ_k θ[u, k] β[i, k]) drawn from models/poisson_factorisation.ppvi's model (Gamma(a, b)
factors, a = b = 0.3; ``--k`` replaces its K).  ppvi fits the model as written (the superposition augmentation:
q(θ), q(β) Gamma, each count's allocation over K Multinomial); its kernels are compiled by a warm-up fit first,
and its time per sweep includes the ELBO it evaluates every sweep.

The peer is the coordinate ascent of Gopalan, Hofman & Blei (2015, "Scalable recommendation with hierarchical
Poisson factorization", Fig. 5) without the hierarchy (the rates b fixed), vectorised in NumPy over the
non-zero counts only, as the paper does (a zero count allocates nothing): per sweep

    φ[ui, k] ∝ exp(E log θ[u, k] + E log β[i, k])                           (each non-zero count)
    θ: shape a + Σ_i y[u, i] φ[ui, k], rate b + Σ_i E β[i, k]
    β: shape a + Σ_u y[u, i] φ[ui, k], rate b + Σ_u E θ[u, k]

and the same ELBO, written here from the Gamma and Poisson laws.  Both start from their own initial q, so
their ELBOs after the same number of sweeps are close but not equal; the ratio is of time per sweep.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.special import digamma, gammaln

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ppvi  # noqa: E402

A, B = 0.3, 0.3         # models/poisson_factorisation.ppvi's a and b


def draw(users: int, items: int, k: int, rng: np.random.Generator) -> np.ndarray:
    theta = rng.gamma(A, 1 / B, size=(users, k))
    beta = rng.gamma(A, 1 / B, size=(items, k))
    return rng.poisson(theta @ beta.T).astype(float)


def _gamma_terms(shape: np.ndarray, rate: np.ndarray) -> float:
    """E log Gamma(x; A, B) + entropy of Gamma(shape, rate), summed."""
    mean, mlog = shape / rate, digamma(shape) - np.log(rate)
    prior = A * np.log(B) - gammaln(A) + (A - 1) * mlog - B * mean
    entropy = shape - np.log(rate) + gammaln(shape) + (1 - shape) * digamma(shape)
    return float(np.sum(prior + entropy))


def numpy_cavi(y: np.ndarray, k: int, sweeps: int, seed: int = 0) -> tuple[float, float]:
    """(seconds per sweep, ELBO after the last) of the CAVI above."""
    rng = np.random.default_rng(seed)
    users, items = y.shape
    u, i = np.nonzero(y)
    counts = y[u, i]
    const = float(np.sum(gammaln(y + 1)))
    ts, tr = A + rng.uniform(0, 0.1, (users, k)), np.full((users, k), B)
    bs, br = A + rng.uniform(0, 0.1, (items, k)), np.full((items, k), B)
    began = time.perf_counter()
    for _ in range(sweeps):
        log_t, log_b = digamma(ts) - np.log(tr), digamma(bs) - np.log(br)
        logits = log_t[u] + log_b[i]
        top = logits.max(axis=1, keepdims=True)
        phi = np.exp(logits - top)
        norm = phi.sum(axis=1, keepdims=True)
        phi /= norm
        share = counts[:, None] * phi
        ts = A + np.stack([np.bincount(u, share[:, j], minlength=users) for j in range(k)], axis=1)
        tr = B + (bs / br).sum(axis=0)[None, :]
        theta = ts / tr
        bs = A + np.stack([np.bincount(i, share[:, j], minlength=items) for j in range(k)], axis=1)
        br = B + theta.sum(axis=0)[None, :]
        # the ELBO: the allocations at φ (their entropy with the Poisson's terms), the factors' Gamma terms
        log_t, log_b = digamma(ts) - np.log(tr), digamma(bs) - np.log(br)
        logits = log_t[u] + log_b[i]
        alloc = np.sum(share * logits) - np.sum(share * np.log(np.where(phi > 0, phi, 1.0)))
        elbo = alloc - float(theta.sum(axis=0) @ (bs / br).sum(axis=0)) - const + \
            _gamma_terms(ts, tr) + _gamma_terms(bs, br)
    return (time.perf_counter() - began) / sweeps, elbo


def ppvi_cavi(y: np.ndarray, k: int, sweeps: int) -> tuple[float, float]:
    """(seconds per sweep, ELBO) of ppvi's fit, its kernels compiled (or loaded) by a warm-up fit first."""
    source = (Path(ppvi.__file__).resolve().parents[1] / "models" / "poisson_factorisation.ppvi").read_text()
    assert "dim K = 3" in source
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "poisson_factorisation.ppvi"
        path.write_text(source.replace("dim K = 3", f"dim K = {k}"))
        model = ppvi.load(str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")        # (the warm-up does not converge: it compiles)
        model.fit({"y": y[:20, :20]}, max_iter=2, progress=False)
    r = model.fit({"y": y}, max_iter=sweeps, tol=0, progress=False, seed=0)
    return r.fit.seconds / r.fit.iterations, float(r.elbo)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--users", type=int)
    ap.add_argument("--items", type=int)
    ap.add_argument("--k", type=int)
    ap.add_argument("--sweeps", type=int, default=30)
    args = ap.parse_args()
    users = args.users or (400 if args.quick else 3000)
    items = args.items or (300 if args.quick else 1000)
    k = args.k or (3 if args.quick else 10)
    y = draw(users, items, k, np.random.default_rng(1))
    ours, ours_elbo = ppvi_cavi(y, k, args.sweeps)
    peer, peer_elbo = numpy_cavi(y, k, args.sweeps)
    print(f"poisson factorisation: {users} x {items} counts ({np.count_nonzero(y)} non-zero), K = {k}, "
          f"{args.sweeps} sweeps")
    print(f"  ppvi        {ours * 1e3:9.2f} ms/sweep   ELBO {ours_elbo:.6g}")
    print(f"  NumPy CAVI  {peer * 1e3:9.2f} ms/sweep   ELBO {peer_elbo:.6g}")
    print(f"  ratio ppvi / NumPy: {ours / peer:.2f}")


if __name__ == "__main__":
    main()
