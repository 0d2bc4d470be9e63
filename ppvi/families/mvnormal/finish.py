"""MvNormal's Numba side (docs/architecture.md, "The family unit"): its finish (η of one element -> q's
parameters, moments and entropy; or Σ and μ apart, and the missing block of a row of data), which generated
code calls through ``ppvi.codegen.runtime``; and ``set_q``, the finish over every element of q's state (a warm
start)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ppvi.codegen.plan import ArrayNames
from ppvi.codegen.special import LOG_2PI

from ..elements import eta_of, flat, jitted

__all__ = ["finish_mvnormal", "finish_mvnormal_mean", "finish_mvnormal_missing", "mvnormal_covariance"]


@njit(cache=True)
def finish_mvnormal(eta_x, eta_xx, mean, cov, xxt):
    """Λ = −2 sym(η_xxᵀ), Σ = Λ⁻¹ by Cholesky, μ = Σ η_x; H = D/2 (1 + log 2π) + ½ log|Σ|."""
    s = np.empty(eta_xx.shape)
    return finish_mvnormal_mean(eta_x, s, mvnormal_covariance(eta_xx, s), mean, cov, xxt)


@njit(cache=True)
def _spd_inverse(prec):
    """P⁻¹ and log|P| of a symmetric positive definite P, by its Cholesky factor."""
    c = np.linalg.cholesky(prec)
    cinv = np.linalg.inv(c)
    logdet = 0.0
    for i in range(prec.shape[0]):
        logdet += 2.0 * math.log(c[i, i])
    return cinv.T @ cinv, logdet


@njit(cache=True)
def mvnormal_covariance(eta_xx, cov):
    """The half of finish_mvnormal that reads only η_xxᵀ: Σ = (−2 sym η_xxᵀ)⁻¹ into ``cov``; returns
    H = D/2 (1 + log 2π) + ½ log|Σ| (NaN, ``cov`` untouched, where Λ is not finite).  Generated code calls it
    apart, so that where η_xxᵀ is the same for every element it runs once (codegen.passes.hoist)."""
    d = eta_xx.shape[0]
    prec = np.empty((d, d))
    for i in range(d):
        for j in range(d):
            prec[i, j] = -(eta_xx[i, j] + eta_xx[j, i])
    for i in range(d):
        for j in range(d):
            if not np.isfinite(prec[i, j]):
                return math.nan
    s, logdet_prec = _spd_inverse(prec)
    for i in range(d):
        for j in range(d):
            cov[i, j] = s[i, j]
    return 0.5 * d * (1.0 + LOG_2PI) - 0.5 * logdet_prec


@njit(cache=True)
def finish_mvnormal_mean(eta_x, sigma, h, mean, cov, xxt):
    """The other half: μ = Σ η_x, q's mean, covariance and ⟨x xᵀ⟩ = Σ + μ μᵀ from Σ and H of
    mvnormal_covariance (nothing written where H is NaN); returns H."""
    if math.isnan(h):
        return h
    d = eta_x.shape[0]
    m = sigma @ eta_x
    for i in range(d):
        mean[i] = m[i]
        for j in range(d):
            cov[i, j] = sigma[i, j]
            xxt[i, j] = sigma[i, j] + m[i] * m[j]
    return h


@njit(cache=True)
def finish_mvnormal_missing(eta_x, eta_xx, missing, mean, cov, xxt):
    """q of the missing block m of a row with observed entries o (data with missing entries, docs/language.md):
    19.56 over x_m as one block with x_o fixed, log q(x_m) = η_x,m·x_m + x_mᵀ η_mm x_m + 2 x_mᵀ η_mo x_o, i.e.
    precision P = −2 sym η_mm and mean P⁻¹ (η_x,m + 2 sym η_mo x_o): under a Normal factor, the Gaussian
    conditional μ_m − Λ_mm⁻¹ Λ_mo (x_o − μ_o), Λ_mm⁻¹.  ``mean`` holds x_o (the engine's clamp); the row's
    mean, covariance (0 on observed rows and columns) and ⟨x xᵀ⟩ are written; returns H of the block, 0 for a
    row with nothing missing (untouched), NaN (nothing written) where P is not finite."""
    d = eta_x.shape[0]
    m = 0
    for i in range(d):
        if missing[i]:
            m += 1
    if m == 0:
        return 0.0
    at = np.empty(m, dtype=np.int64)
    k = 0
    for i in range(d):
        if missing[i]:
            at[k] = i
            k += 1
    prec = np.empty((m, m))
    lin = np.empty(m)
    for a in range(m):
        i = at[a]
        lin[a] = eta_x[i]
        for j in range(d):
            if not missing[j]:
                lin[a] += (eta_xx[i, j] + eta_xx[j, i]) * mean[j]
        for b in range(m):
            prec[a, b] = -(eta_xx[i, at[b]] + eta_xx[at[b], i])
    for a in range(m):
        if not np.isfinite(lin[a]):
            return math.nan
        for b in range(m):
            if not np.isfinite(prec[a, b]):
                return math.nan
    s, logdet_prec = _spd_inverse(prec)
    mu = s @ lin
    for a in range(m):
        mean[at[a]] = mu[a]
    for i in range(d):
        for j in range(d):
            cov[i, j] = 0.0
    for a in range(m):
        for b in range(m):
            cov[at[a], at[b]] = s[a, b]
    for i in range(d):
        for j in range(d):
            xxt[i, j] = cov[i, j] + mean[i] * mean[j]
    return 0.5 * m * (1.0 + LOG_2PI) - 0.5 * logdet_prec


def _elements(ex, exx, mean, cov, xxt, h):
    for i in range(ex.shape[0]):
        h[i] = finish_mvnormal(ex[i], exx[i], mean[i], cov[i], xxt[i])


def set_q(s: dict[str, np.ndarray], v: str, eta: dict[str, np.ndarray]) -> None:
    """q(v) from η of every element (ppvi.families.elements)."""
    mean, cov = s[ArrayNames.qparam(v, "mean")], s[ArrayNames.qparam(v, "cov")]
    jitted(_elements)(eta_of(eta, "x", mean, 1), eta_of(eta, "xxT", cov, 2), flat(mean, 1), flat(cov, 2),
                      flat(s[ArrayNames.moment(v, "xxT")], 2), flat(s[ArrayNames.entropy(v)]))
