"""Poisson's Numba side (docs/architecture.md, "The family unit"): its finish (η of one element -> q's
parameters, moments and entropy), which generated code calls through ``ppvi.codegen.runtime``, and ``set_q``,
the same finish over every element of q's state (a warm start)."""

from __future__ import annotations

import math

from numba import njit

from ..elements import scalar

__all__ = ["finish_poisson"]


@njit(cache=True)
def finish_poisson(eta_x):
    """rate = e^η_x -> (rate, 0, H) of a missing count's Poisson q (ppvi.families.poisson): the place-holder
    moment of −log x! is 0 and H = r − r log r = r(1 − η_x) is relative to h(x) = 1/x!, so that
    E[log p(x)] + H is exact (their E[log x!] cancel)."""
    r = math.exp(eta_x)
    return r, 0.0, r * (1.0 - eta_x)


def _elements(ex, rate, lfact, h):
    for i in range(ex.shape[0]):
        rate[i], lfact[i], h[i] = finish_poisson(ex[i])


set_q = scalar(_elements, ("x",), (("q", "rate"), ("m", "lfact"), ("h",)))
