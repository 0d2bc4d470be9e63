"""Pareto k̂: how heavy the right tail of importance weights is (Vehtari, Simpson, Gelman, Yao & Gabry, "Pareto
smoothed importance sampling", JMLR 2024).

The largest M = ⌈min(S/5, 3√S)⌉ weights, less the largest weight below them, are
fitted by a generalised Pareto law with the empirical-Bayes estimate of Zhang &
Stephens (Technometrics 2009); its shape k̂, shrunk towards 1/2 as if by ten
prior observations, is the diagnostic.  k̂ < 0.5: the estimate's variance is
finite and it converges fast; 0.5 – 0.7: usable; above 0.7 the importance sampling
estimate is not to be trusted (the proposal q misses mass of p).
"""

from __future__ import annotations

import math

import numpy as np

LIMIT = 0.7          # above it an importance-sampling estimate is not reliable
EQUAL = 1e-9         # log weights this close are equal (round-off of an exact q)
PRIOR = 10           # the shrinkage: k̂ ← (M k̂ + PRIOR · 1/2) / (M + PRIOR)


def tail_length(s: int) -> int:
    """M = ⌈min(S/5, 3√S)⌉: how many of S weights form the tail."""
    return math.ceil(min(0.2 * s, 3 * math.sqrt(s)))


def khat(log_weights: np.ndarray) -> float:
    """k̂ of the weights exp(``log_weights``) (a 1-D array): :func:`khat_of_largest` of its largest and smallest."""
    lw = np.sort(np.asarray(log_weights, dtype=float))
    if np.isnan(lw).any():
        return math.nan
    return khat_of_largest(lw[-(tail_length(lw.size) + 1):], float(lw[0]), lw.size)


def khat_of_largest(largest: np.ndarray, smallest: float, s: int) -> float:
    """k̂ of S = ``s`` log weights known by their M + 1 largest (all of them when S ≤ M + 1) and the smallest.

    NaN when there are too few to tell (S < 25: the tail needs 5 points); −inf when there is no tail to fit:
    the weights are equal up to round-off (q is the posterior), or the largest ones recur (a discrete q whose
    likeliest states are drawn again and again: the weights are bounded and their largest value is not rare)."""
    return float(khats_of_largest(np.asarray(largest, dtype=float)[:, None], np.array([smallest], dtype=float), s)[0])


def khats_of_largest(largest: np.ndarray, smallest: np.ndarray, s: int) -> np.ndarray:
    """:func:`khat_of_largest` of every column of ``largest`` ``(M + 1, columns)`` with its ``smallest``: one
    estimate per data point, the columns whose tails have as many points fitted together (no loop over them)."""
    m = tail_length(s)
    top = np.sort(largest, axis=0) - largest.max(axis=0)
    out = np.full(top.shape[1], -math.inf)
    if top.shape[0] == 0:
        return out
    cut = np.maximum(top[0], math.log(np.finfo(float).tiny)) if s > m else np.full(top.shape[1], -math.inf)
    sizes = (top > cut).sum(axis=0)
    flat = smallest - largest.max(axis=0) > -EQUAL
    few = (sizes <= 4) & ~flat
    out[few] = math.nan if m <= 4 else -math.inf
    for size in np.unique(sizes[~flat & ~few]):
        cols = np.flatnonzero((sizes == size) & ~flat)
        for lo in range(0, cols.size, BLOCK):
            part = cols[lo:lo + BLOCK]
            out[part] = _gpd_shapes(np.exp(top[-size:, part].T) - np.exp(cut[part])[:, None])
    return out


BLOCK = 512          # columns fitted at once (the profile likelihood holds columns × (30 + √M)² numbers)


def _gpd_shapes(x: np.ndarray) -> np.ndarray:
    """Zhang & Stephens' estimate of the generalised Pareto shape of each row of sorted exceedances ``x`` > 0
    ``(columns, n)``: the posterior mean of θ = −k/σ over a grid of θ_j weighted by the profile likelihood,
    then k(θ̂), shrunk towards 1/2."""
    n = x.shape[1]
    m = 30 + int(math.sqrt(n))
    j = np.arange(1, m + 1)
    quartile = x[:, int(n / 4 + 0.5) - 1]
    theta = 1 / x[:, -1:] + (1 - np.sqrt(m / (j - 0.5)))[None, :] / (3 * quartile[:, None])      # (columns, m)
    k = np.log1p(-theta[:, :, None] * x[:, None, :]).mean(axis=2)                               # k(θ_j)
    log_lik = n * (np.log(-theta / k) - k - 1)                     # the profile log-likelihood of θ_j
    w = np.exp(log_lik - log_lik.max(axis=1, keepdims=True))      # w_j = 1 / Σ_i exp(L_i − L_j), a softmax
    w /= w.sum(axis=1, keepdims=True)
    w = np.where(w >= 10 * np.finfo(float).eps, w, 0.0)
    theta_hat = (theta * w).sum(axis=1) / w.sum(axis=1)
    k_hat = np.log1p(-theta_hat[:, None] * x).mean(axis=1)
    return (n * k_hat + PRIOR * 0.5) / (n + PRIOR)
