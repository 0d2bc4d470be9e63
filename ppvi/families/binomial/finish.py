"""Binomial's Numba side (docs/architecture.md, "The family unit"): its finish (η of one element -> q's
parameters, moments and entropy), which generated code calls through ``ppvi.codegen.runtime``, and ``set_q``,
the same finish over every element of q's state (a warm start)."""

from __future__ import annotations

import math

from numba import njit

from ppvi.codegen.special import sigmoid, softplus

from ..elements import scalar

__all__ = ["finish_binomial"]


@njit(cache=True)
def finish_binomial(eta_x, eta_n):
    """n = η_lchoose, p = σ(η_x) -> (n, p, ⟨x⟩ = n p, 0, H) of a missing count's Binomial q
    (ppvi.families.binomial): H relative to h(x) = C(n, x), n times a Bernoulli's, softplus(η) − p η, exact in
    log space for any η."""
    n = eta_n
    if not n >= 0.0:
        return math.nan, math.nan, math.nan, math.nan, math.nan
    p = sigmoid(eta_x)
    return n, p, n * p, 0.0, n * (softplus(eta_x) - p * eta_x)


def _elements(ex, en, n, p, x, lchoose, h):
    for i in range(ex.shape[0]):
        n[i], p[i], x[i], lchoose[i], h[i] = finish_binomial(ex[i], en[i])


set_q = scalar(_elements, ("x", "lchoose"), (("q", "n"), ("q", "p"), ("m", "x"), ("m", "lchoose"), ("h",)))
