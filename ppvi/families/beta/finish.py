"""Beta's Numba side (docs/architecture.md, "The family unit"): its finish (η of one element -> q's
parameters, moments and entropy), which generated code calls through ``ppvi.codegen.runtime``, and ``set_q``,
the same finish over every element of q's state (a warm start)."""

from __future__ import annotations

import math

from numba import njit

from ppvi.codegen.special import digamma, gamma_entropy_shape

from ..elements import scalar

__all__ = ["finish_beta"]


@njit(cache=True)
def finish_beta(eta_logx, eta_log1mx):
    """-> (a, b, ⟨x⟩, ⟨log x⟩, ⟨log(1 − x)⟩, H) (PRML B.6–B.9).  H = log B(a, b) − (a − 1)ψ(a) − (b − 1)ψ(b)
    + (a + b − 2)ψ(a + b) is written g(a) + g(b) − g(a + b) − ψ(a + b) with g the Gamma(·, 1) entropy
    (gamma_entropy_shape, Stirling's series for large arguments): the direct form adds terms of order a log a
    that cancel to ½ log(2πe ab/(a + b)³), losing 1e-11 of H already at b = 10⁴."""
    a = eta_logx + 1.0
    b = eta_log1mx + 1.0
    if not (a > 0.0 and b > 0.0):
        return math.nan, math.nan, math.nan, math.nan, math.nan, math.nan
    s = digamma(a + b)
    h = gamma_entropy_shape(a) + gamma_entropy_shape(b) - gamma_entropy_shape(a + b) - s
    return a, b, a / (a + b), digamma(a) - s, digamma(b) - s, h


def _elements(elogx, elog1mx, a, b, x, logx, log1mx, h):
    for i in range(elogx.shape[0]):
        a[i], b[i], x[i], logx[i], log1mx[i], h[i] = finish_beta(elogx[i], elog1mx[i])


set_q = scalar(_elements, ("logx", "log1mx"),
               (("q", "a"), ("q", "b"), ("m", "x"), ("m", "logx"), ("m", "log1mx"), ("h",)))
