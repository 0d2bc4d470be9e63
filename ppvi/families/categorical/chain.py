"""A Categorical chain's q as a Markov chain (docs/simulate.md, "Draws from a chain"): marginals rₜ and
pairwise marginals ξₜ[j, k] = q(zₜ₋₁ = j, zₜ = k) on the last plate; z₀ ~ r₀, then zₜ | zₜ₋₁ = j ~ ξₜ[j, ·] / Σₖ ξₜ[j, k]
(forward–backward's smoothed transitions: forward-filtering backward-sampling read forwards, Scott 2002)."""

from __future__ import annotations

import numpy as np

__all__ = ["elements", "sample"]


def _rows(r: np.ndarray, xi: np.ndarray, t: int, previous: np.ndarray) -> np.ndarray:
    """q(zₜ = · | zₜ₋₁) of each draw: ``(draws, *outer, K)``.  A row of ξ that underflowed to 0 (its state
    had no mass to speak of, yet was drawn) falls back to rₜ."""
    K = r.shape[-1]
    table = np.broadcast_to(xi[..., t, :, :], previous.shape + (K, K))
    row = np.take_along_axis(table, previous[..., None, None], axis=-2)[..., 0, :]
    total = row.sum(-1, keepdims=True)
    return np.where(total > 0, row / np.where(total > 0, total, 1.0), r[..., t, :])


def sample(r: np.ndarray, xi: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    T, K = r.shape[-2:]
    out = np.empty((n, *r.shape[:-1]), dtype=np.int64)
    for t in range(T):
        p = np.broadcast_to(r[..., 0, :], (n, *r.shape[:-2], K)) if t == 0 else _rows(r, xi, t, out[..., t - 1])
        cdf = np.cumsum(p, axis=-1)                  # (inverse CDF, all draws at once: n × sequences × K numbers)
        u = rng.random(cdf.shape[:-1] + (1,)) * cdf[..., -1:]
        out[..., t] = np.minimum((cdf <= u).sum(-1), K - 1)
    return out


def elements(r: np.ndarray, xi: np.ndarray, z: np.ndarray) -> np.ndarray:
    out = np.empty(z.shape)
    with np.errstate(divide="ignore"):
        first = np.broadcast_to(np.log(r[..., 0, :]), z.shape[:-1] + r.shape[-1:])
        out[..., 0] = np.take_along_axis(first, z[..., 0, None], -1)[..., 0]
        for t in range(1, z.shape[-1]):
            rows = _rows(r, xi, t, z[..., t - 1])
            out[..., t] = np.log(np.take_along_axis(rows, z[..., t, None], -1)[..., 0])
    return out


