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

from typing import Mapping

import numpy as np

from ppvi.families.registry import unit_of
from ppvi.io import posterior
from ppvi.result import Q


def sample(q: Q, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` draws from q, stacked on a leading axis: jointly along a chain q approximates jointly, else as
    independent as q's entries are (:func:`ppvi.io.posterior.sample`)."""
    if q.lag_one is None:
        return posterior.sample(q.family, dict(q.params), n, rng)
    return unit_of(q.family).chain_sample(_floats(q.params), np.asarray(q.lag_one, dtype=float), n, rng)


def log_density(q: Q, x: np.ndarray) -> np.ndarray:
    """log q(x) of each draw in ``x`` (leading draws axis), summed over the latent's elements."""
    if q.lag_one is None:
        return posterior.log_density(q.family, dict(q.params), x)
    return elements(q, x).reshape(x.shape[0], -1).sum(1)


def elements(q: Q, x: np.ndarray) -> np.ndarray:
    """A joint chain's log q, element by element: ``(draws, *plates)``, element t the log density of its
    conditional under q (given the element before, Categorical; the element after, Gaussian)."""
    return unit_of(q.family).chain_elements(_floats(q.params), np.asarray(q.lag_one, dtype=float), x)


def sample_all(qs: Mapping[str, Q], n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` draws of every q in ``qs`` (:func:`sample`), μ of a Normal–Gamma pair given the draws of its λ
    when λ is among them (drawn after the rest: μ | λ ~ N(m, (βλ)⁻¹), docs/derivation.md)."""
    given = {name: q.pair for name, q in qs.items() if q.pair in qs}
    out = {name: sample(q, n, rng) for name, q in qs.items() if name not in given}
    for name, lam in given.items():
        out[name] = unit_of(qs[name].family).sample_given(_floats(qs[name].params), out[lam], rng)
    return {name: out[name] for name in qs}


def paired(q: Q, x: np.ndarray, draws: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """μ of a Normal–Gamma pair whose λ was drawn too: log q(μ | λ) element by element (with log q(λ), the
    joint's), else None."""
    if q.pair is None or q.pair not in draws:
        return None
    return unit_of(q.family).log_density_given(_floats(q.params), x, np.asarray(draws[q.pair], dtype=float))


def _floats(params) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=float) for k, v in params.items()}
