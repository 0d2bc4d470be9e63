"""Normal's Numba side (docs/architecture.md, "The family unit"): its finish (η of one element -> q's
parameters, moments and entropy), which generated code calls through ``ppvi.codegen.runtime``, and ``set_q``,
the same finish over every element of q's state (a warm start)."""

from __future__ import annotations

import math

from numba import njit

from ppvi.codegen.special import LOG_2PI

from ..elements import scalar

__all__ = ["finish_normal", "finish_normal_mv"]


@njit(cache=True)
def finish_normal(eta_x, eta_x2):
    """τ = −2η₂, mean = η₁/τ (PRML B.32) -> (mean, sd, ⟨x²⟩, H)."""
    tau = -2.0 * eta_x2
    if not tau > 0.0:
        return math.nan, math.nan, math.nan, math.nan
    mean = eta_x / tau
    return mean, 1.0 / math.sqrt(tau), mean * mean + 1.0 / tau, 0.5 * (1.0 + LOG_2PI - math.log(tau))


@njit(cache=True)
def finish_normal_mv(m, v):
    """A Normal q from its mean and variance -> (mean, sd, ⟨x²⟩, H)."""
    if not v > 0.0:
        return math.nan, math.nan, math.nan, math.nan
    return m, math.sqrt(v), m * m + v, 0.5 * (1.0 + LOG_2PI + math.log(v))


def _elements(ex, ex2, mean, sd, x2, h):
    for i in range(ex.shape[0]):
        mean[i], sd[i], x2[i], h[i] = finish_normal(ex[i], ex2[i])


set_q = scalar(_elements, ("x", "x2"), (("q", "mean"), ("q", "sd"), ("m", "x2"), ("h",)))
