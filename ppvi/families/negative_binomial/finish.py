"""NegativeBinomial's Numba side (docs/architecture.md, "The family unit"): its finish (η of one element -> q's
parameters, moments and entropy), which generated code calls through ``ppvi.codegen.runtime``, and ``set_q``,
the same finish over every element of q's state (a warm start)."""

from __future__ import annotations

import math

from numba import njit

from ..elements import scalar

__all__ = ["finish_negative_binomial"]


@njit(cache=True)
def finish_negative_binomial(eta_x, eta_r):
    """r = η_lnb, p = e^η_x -> (r, p, ⟨x⟩ = r p/(1 − p), 0, H) of a missing count's NegativeBinomial q
    (ppvi.families.negative_binomial): H relative to h(x) = Γ(x + r)/(Γ(r) x!), −(⟨x⟩ η_x + r log(1 − p)), with
    log(1 − e^η) and p/(1 − p) = 1/expm1(−η) in log space."""
    r = eta_r
    if not (r > 0.0 and eta_x < 0.0):
        return math.nan, math.nan, math.nan, math.nan, math.nan
    p = math.exp(eta_x)
    mean = r / math.expm1(-eta_x)
    return r, p, mean, 0.0, -(mean * eta_x + r * math.log(-math.expm1(eta_x)))


def _elements(ex, er, r, p, x, lnb, h):
    for i in range(ex.shape[0]):
        r[i], p[i], x[i], lnb[i], h[i] = finish_negative_binomial(ex[i], er[i])


set_q = scalar(_elements, ("x", "lnb"), (("q", "r"), ("q", "p"), ("m", "x"), ("m", "lnb"), ("h",)))
