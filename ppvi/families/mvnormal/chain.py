"""A Gaussian chain's q (means mₜ, covariances Pₜ, Cₜ = Cov(xₜ₋₁, xₜ) on the first axis) as the RTS smoother's
backward sampling: x_{T−1} ~ N(m_{T−1}, P_{T−1}), then xₜ | xₜ₊₁ ~ N(mₜ + Gₜ(xₜ₊₁ − mₜ₊₁), Pₜ − Gₜ Cₜ₊₁ᵀ) with
Gₜ = Cₜ₊₁ Pₜ₊₁⁻¹ (Carter & Kohn 1994; Särkkä 2013, 8.2); log q(x) is the sum of these conditionals' log densities."""

from __future__ import annotations

import numpy as np

from ..unit import LOG_2PI, root

__all__ = ["elements", "sample"]


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
    return gain, root(given)


def _flat(mean: np.ndarray, cov: np.ndarray, cross: np.ndarray):
    """A plate of chains (plates before the chain's axis) as one chain: Cov(xₛ,ₜ₋₁, xₛ,ₜ) is 0 at each
    sequence's first step, so the sequences' backward samplers chained end to end are independent."""
    D = mean.shape[-1]
    return mean.reshape(-1, D), cov.reshape(-1, D, D), cross.reshape(-1, D, D)


def sample(mean: np.ndarray, cov: np.ndarray, cross: np.ndarray, n: int,
                    rng: np.random.Generator) -> np.ndarray:
    if mean.ndim > 2:
        return sample(*_flat(mean, cov, cross), n, rng).reshape((n,) + mean.shape)
    T, D = mean.shape
    gain, root = _conditionals(mean, cov, cross)
    out = np.empty((n, T, D))
    noise = rng.standard_normal((n, T, D))
    for t in range(T - 1, -1, -1):
        centre = mean[t] if t == T - 1 else mean[t] + (out[:, t + 1] - mean[t + 1]) @ gain[t].T
        out[:, t] = centre + noise[:, t] @ root[t].T
    return out


def elements(mean: np.ndarray, cov: np.ndarray, cross: np.ndarray, x: np.ndarray) -> np.ndarray:
    if mean.ndim > 2:
        out = elements(*_flat(mean, cov, cross), x.reshape((x.shape[0], -1, mean.shape[-1])))
        return out.reshape(x.shape[:-1])
    T, D = mean.shape
    gain, root = _conditionals(mean, cov, cross)
    centre = mean[None].repeat(x.shape[0], 0)
    centre[:, :-1] += np.einsum("tde,nte->ntd", gain[:-1], x[:, 1:] - mean[1:])
    z = np.linalg.solve(np.broadcast_to(root, x.shape[:1] + root.shape), (x - centre)[..., None])[..., 0]
    logdet = np.linalg.slogdet(root)[1]          # (the root is triangular unless round-off made it an eigen one)
    return -0.5 * (z * z).sum(-1) - logdet - 0.5 * D * LOG_2PI
