"""Dirichlet's Numba side (docs/architecture.md, "The family unit"): its finish (η of one element -> q's
parameters, moments and entropy; or its moments and its entropy apart), which generated code calls through
``ppvi.codegen.runtime``; and ``set_q``, the finish over every element of q's state (a warm start)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ppvi.codegen.plan import ArrayNames
from ppvi.codegen.special import digamma, vdigamma

from ..elements import eta_of, flat, jitted

__all__ = ["dirichlet_entropy", "dirichlet_moments", "finish_dirichlet"]


@njit(cache=True, error_model="numpy")
def dirichlet_moments(eta, alpha, logp, mean):
    """α = η + 1; ⟨log π_k⟩ = ψ(α_k) − ψ(α₀) (PRML B.21), ⟨π_k⟩ = α_k / α₀.  False if some α_k ≤ 0.
    With every α_k in [1e-6, 1e15] (nearly always) by vdigamma, a loop that vectorises."""
    k = eta.shape[0]
    a0 = 0.0
    usual = True
    for i in range(k):
        alpha[i] = eta[i] + 1.0
        if not alpha[i] > 0.0:
            return False
        usual &= (alpha[i] >= 1e-6) & (alpha[i] <= 1e15)
        a0 += alpha[i]
    inv = 1.0 / a0
    if usual and a0 <= 1e15:
        d0 = vdigamma(a0)
        for i in range(k):
            logp[i] = vdigamma(alpha[i]) - d0
            mean[i] = alpha[i] * inv
        return True
    d0 = digamma(a0)
    for i in range(k):
        logp[i] = digamma(alpha[i]) - d0
        mean[i] = alpha[i] * inv
    return True


@njit(cache=True)
def dirichlet_entropy(alpha, logp):
    """H = log B(α) − Σ_k (α_k − 1) ⟨log π_k⟩ (PRML B.22 with ⟨log π_k⟩ in place of ψ(α_k) − ψ(α₀))."""
    a0 = 0.0
    h = 0.0
    for i in range(alpha.shape[0]):
        if not alpha[i] > 0.0:
            return math.nan
        a0 += alpha[i]
        h += math.lgamma(alpha[i]) - (alpha[i] - 1.0) * logp[i]
    return h - math.lgamma(a0)


@njit(cache=True)
def finish_dirichlet(eta, alpha, logp, mean):
    """q(π) = Dir(η + 1): its moments, and its entropy returned."""
    if not dirichlet_moments(eta, alpha, logp, mean):
        return math.nan
    return dirichlet_entropy(alpha, logp)


def _elements(eta, alpha, logp, mean, h):
    for i in range(eta.shape[0]):
        h[i] = finish_dirichlet(eta[i], alpha[i], logp[i], mean[i])


def set_q(s: dict[str, np.ndarray], v: str, eta: dict[str, np.ndarray]) -> None:
    """q(v) from η of every element (ppvi.families.elements)."""
    alpha = s[ArrayNames.qparam(v, "alpha")]
    jitted(_elements)(eta_of(eta, "logp", alpha, 1), flat(alpha, 1), flat(s[ArrayNames.moment(v, "logp")], 1),
                      flat(s[ArrayNames.moment(v, "x")], 1), flat(s[ArrayNames.entropy(v)]))
