"""Gamma's Numba side (docs/architecture.md, "The family unit"): its finish (η of one element -> q's
parameters, moments and entropy), which generated code calls through ``ppvi.codegen.runtime``, and ``set_q``,
the same finish over every element of q's state (a warm start)."""

from __future__ import annotations

import math

from numba import njit

from ppvi.codegen.special import digamma, gamma_entropy_shape

from ..elements import scalar

__all__ = ["finish_gamma"]


@njit(cache=True)
def finish_gamma(eta_x, eta_logx):
    """shape = η_log x + 1, rate = −η_x -> (shape, rate, ⟨x⟩, ⟨log x⟩, H) (PRML B.26–B.31)."""
    a = eta_logx + 1.0
    b = -eta_x
    if not (a > 0.0 and b > 0.0):
        return math.nan, math.nan, math.nan, math.nan, math.nan
    return a, b, a / b, digamma(a) - math.log(b), gamma_entropy_shape(a) - math.log(b)


def _elements(ex, elogx, shape, rate, x, logx, h):
    for i in range(ex.shape[0]):
        shape[i], rate[i], x[i], logx[i], h[i] = finish_gamma(ex[i], elogx[i])


set_q = scalar(_elements, ("x", "logx"), (("q", "shape"), ("q", "rate"), ("m", "x"), ("m", "logx"), ("h",)))
