"""Draws from q of a chain approximated jointly, and their log density (docs/simulate.md, "Draws from a chain").

q of ``approximate z jointly`` is one block over the chain, not the product of its marginals: a Markov chain
(the structured q of 19.56 has the chain's own graph).  A Markov chain is fixed by its marginals and the joint
law of neighbours, which the result keeps (:attr:`ppvi.result.Q.lag_one`), so q is sampled and its density
evaluated exactly from them:

- Categorical (marginals rₜ, pairwise marginals ξₜ[j, k] = q(zₜ₋₁ = j, zₜ = k)): z₀ ~ r₀, then
  zₜ | zₜ₋₁ = j ~ ξₜ[j, ·] / Σₖ ξₜ[j, k].  These are forward–backward's smoothed transitions, so the draws
  are those of forward-filtering backward-sampling read forwards (Scott 2002), and
  log q(z) = Σₜ log ξₜ(zₜ₋₁, zₜ) − Σ_{0<t<T−1} log rₜ(zₜ).
- Gaussian (means mₜ, covariances Pₜ, Cₜ = Cov(xₜ₋₁, xₜ)): the RTS smoother's backward sampling,
  x_{T−1} ~ N(m_{T−1}, P_{T−1}), then xₜ | xₜ₊₁ ~ N(mₜ + Gₜ(xₜ₊₁ − mₜ₊₁), Pₜ − Gₜ Cₜ₊₁ᵀ) with
  Gₜ = Cₜ₊₁ Pₜ₊₁⁻¹ (Carter & Kohn 1994; Särkkä 2013, 8.2), and log q(x) is the sum of these conditionals'
  log densities: the block-tridiagonal Gaussian's, factored along the chain.

Elementwise, element t carries its conditional's log density (given zₜ₋₁, or xₜ₊₁), so sums over any other
axis (a sequence's, for the evidence per sequence) are log q of the parts.
"""

from __future__ import annotations

import math

import numpy as np

from ppvi.io import posterior
from ppvi.result import Q

LOG_2PI = math.log(2 * math.pi)


def sample(q: Q, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` draws from q, stacked on a leading axis: jointly along a chain q approximates jointly, else as
    independent as q's entries are (:func:`ppvi.io.posterior.sample`)."""
    params = dict(q.params)
    if q.lag_one is None:
        return posterior.sample(q.family, params, n, rng)
    if q.family == "Categorical":
        return _categorical_chain(np.asarray(params["p"], dtype=float), np.asarray(q.lag_one, dtype=float), n, rng)
    return _gaussian_chain(np.asarray(params["mean"], dtype=float), np.asarray(params["cov"], dtype=float),
                           np.asarray(q.lag_one, dtype=float), n, rng)


def log_density(q: Q, x: np.ndarray) -> np.ndarray:
    """log q(x) of each draw in ``x`` (leading draws axis), summed over the latent's elements."""
    if q.lag_one is None:
        return posterior.log_density(q.family, dict(q.params), x)
    return elements(q, x).reshape(x.shape[0], -1).sum(1)


def elements(q: Q, x: np.ndarray) -> np.ndarray:
    """A joint chain's log q, element by element: ``(draws, *plates)``, element t the log density of its
    conditional under q (given the element before, Categorical; the element after, Gaussian)."""
    params = dict(q.params)
    if q.family == "Categorical":
        return _categorical_elements(np.asarray(params["p"], dtype=float), np.asarray(q.lag_one, dtype=float),
                                     np.asarray(x, dtype=np.int64))
    return _gaussian_elements(np.asarray(params["mean"], dtype=float), np.asarray(params["cov"], dtype=float),
                              np.asarray(q.lag_one, dtype=float), np.asarray(x, dtype=float))


# ----------------------------------------------------------------- Categorical chains (axis: the last plate)
def _rows(r: np.ndarray, xi: np.ndarray, t: int, previous: np.ndarray) -> np.ndarray:
    """q(zₜ = · | zₜ₋₁) of each draw: ``(draws, *outer, K)``.  A row of ξ that underflowed to 0 (its state
    had no mass to speak of, yet was drawn) falls back to rₜ."""
    K = r.shape[-1]
    table = np.broadcast_to(xi[..., t, :, :], previous.shape + (K, K))
    row = np.take_along_axis(table, previous[..., None, None], axis=-2)[..., 0, :]
    total = row.sum(-1, keepdims=True)
    return np.where(total > 0, row / np.where(total > 0, total, 1.0), r[..., t, :])


def _categorical_chain(r: np.ndarray, xi: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    T, K = r.shape[-2:]
    out = np.empty((n, *r.shape[:-1]), dtype=np.int64)
    for t in range(T):
        p = np.broadcast_to(r[..., 0, :], (n, *r.shape[:-2], K)) if t == 0 else _rows(r, xi, t, out[..., t - 1])
        cdf = np.cumsum(p, axis=-1)                  # (inverse CDF, all draws at once: n × sequences × K numbers)
        u = rng.random(cdf.shape[:-1] + (1,)) * cdf[..., -1:]
        out[..., t] = np.minimum((cdf <= u).sum(-1), K - 1)
    return out


def _categorical_elements(r: np.ndarray, xi: np.ndarray, z: np.ndarray) -> np.ndarray:
    out = np.empty(z.shape)
    with np.errstate(divide="ignore"):
        first = np.broadcast_to(np.log(r[..., 0, :]), z.shape[:-1] + r.shape[-1:])
        out[..., 0] = np.take_along_axis(first, z[..., 0, None], -1)[..., 0]
        for t in range(1, z.shape[-1]):
            rows = _rows(r, xi, t, z[..., t - 1])
            out[..., t] = np.log(np.take_along_axis(rows, z[..., t, None], -1)[..., 0])
    return out


# ----------------------------------------------------------------- Gaussian chains (axis: the first)
def _conditionals(mean: np.ndarray, cov: np.ndarray, cross: np.ndarray):
    """For t < T−1: the gain Gₜ = Cov(xₜ, xₜ₊₁) Pₜ₊₁⁻¹ and the square root of Pₜ − Gₜ Cov(xₜ, xₜ₊₁)ᵀ, the
    covariance of xₜ given xₜ₊₁ under q; at T−1, no gain and the root of P_{T−1}."""
    T, D = mean.shape
    gain = np.zeros((T, D, D))
    given = cov.copy()
    # Pₜ₊₁ symmetric: Gₜ = (Pₜ₊₁⁻¹ Cₜ₊₁ᵀ)ᵀ
    gain[:-1] = np.swapaxes(np.linalg.solve(cov[1:], np.swapaxes(cross[1:], -1, -2)), -1, -2)
    given[:-1] = cov[:-1] - gain[:-1] @ np.swapaxes(cross[1:], -1, -2)
    given = (given + np.swapaxes(given, -1, -2)) / 2
    return gain, posterior._root(given)


def _gaussian_chain(mean: np.ndarray, cov: np.ndarray, cross: np.ndarray, n: int,
                    rng: np.random.Generator) -> np.ndarray:
    T, D = mean.shape
    gain, root = _conditionals(mean, cov, cross)
    out = np.empty((n, T, D))
    noise = rng.standard_normal((n, T, D))
    for t in range(T - 1, -1, -1):
        centre = mean[t] if t == T - 1 else mean[t] + (out[:, t + 1] - mean[t + 1]) @ gain[t].T
        out[:, t] = centre + noise[:, t] @ root[t].T
    return out


def _gaussian_elements(mean: np.ndarray, cov: np.ndarray, cross: np.ndarray, x: np.ndarray) -> np.ndarray:
    T, D = mean.shape
    gain, root = _conditionals(mean, cov, cross)
    centre = mean[None].repeat(x.shape[0], 0)
    centre[:, :-1] += np.einsum("tde,nte->ntd", gain[:-1], x[:, 1:] - mean[1:])
    z = np.linalg.solve(np.broadcast_to(root, x.shape[:1] + root.shape), (x - centre)[..., None])[..., 0]
    logdet = np.linalg.slogdet(root)[1]          # (the root is triangular unless round-off made it an eigen one)
    return -0.5 * (z * z).sum(-1) - logdet - 0.5 * D * LOG_2PI
