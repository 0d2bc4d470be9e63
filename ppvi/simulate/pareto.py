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
    m = tail_length(s)
    top = np.sort(largest) - largest.max()
    if smallest - largest.max() > -EQUAL:
        return -math.inf
    cut = max(top[0], math.log(np.finfo(float).tiny)) if s > m else -math.inf
    tail = top[top > cut]
    if tail.size <= 4:
        return math.nan if m <= 4 else -math.inf
    return _gpd_shape(np.exp(tail) - math.exp(cut))


def _gpd_shape(x: np.ndarray) -> float:
    """Zhang & Stephens' estimate of the generalised Pareto shape of the sorted exceedances ``x`` > 0: the
    posterior mean of θ = −k/σ over a grid of θ_j weighted by the profile likelihood, then k(θ̂)."""
    n = x.size
    m = 30 + int(math.sqrt(n))
    j = np.arange(1, m + 1)
    quartile = x[int(n / 4 + 0.5) - 1]
    theta = 1 / x[-1] + (1 - np.sqrt(m / (j - 0.5))) / (3 * quartile)
    k = np.log1p(-theta[:, None] * x).mean(axis=1)               # k(θ) for each θ_j
    log_lik = n * (np.log(-theta / k) - k - 1)                   # the profile log-likelihood of θ_j
    w = 1 / np.exp(log_lik[None, :] - log_lik[:, None]).sum(axis=1)
    w = np.where(w >= 10 * np.finfo(float).eps, w, 0.0)
    theta_hat = (theta * w).sum() / w.sum()
    k_hat = np.log1p(-theta_hat * x).mean()
    return float((n * k_hat + PRIOR * 0.5) / (n + PRIOR))
