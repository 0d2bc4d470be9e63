"""PolyaGamma's Numba side (docs/architecture.md, "The family unit"): its finish (η of one element -> q's
parameters, moments and entropy), which generated code calls through ``ppvi.codegen.runtime``, and ``set_q``,
the same finish over every element of q's state (a warm start)."""

from __future__ import annotations

import math

from numba import njit

from ..elements import scalar

__all__ = ["finish_polya_gamma"]


@njit(cache=True)
def finish_polya_gamma(eta_x, eta_base):
    """b = η_base, c = √(−2η_x) -> (b, c, E[ω], 0, H) of PG(b, c) (ppvi.families.polya_gamma).

    E[ω] = b tanh(c/2)/(2c) and H = c²E[ω]/2 − b log cosh(c/2) (relative to the base measure PG(b, 0): the
    base statistic's moment is 0, and E[log p(ω)] + H = −KL(q ‖ PG(b, 0)) is exact).  Below c = 10⁻³ both by
    their series, b(1/4 − c²/48 + c⁴/480) and −b(c⁴/192 − c⁶/1440): the closed forms are 0/0 at c = 0 and H a
    difference of two terms of order c² there.  log cosh t = log1p(2 sinh²(t/2)), exact for small t, and
    t + log1p(e^{−2t}) − log 2 for large t (no overflow).  b = 0 (a Binomial row of no trials) is PG(0, c),
    a point mass at 0: E[ω] = 0, H = 0."""
    b = eta_base
    if not (b >= 0.0 and eta_x <= 0.0):
        return math.nan, math.nan, math.nan, math.nan, math.nan
    c = math.sqrt(-2.0 * eta_x)
    if b == 0.0:
        return 0.0, c, 0.0, 0.0, 0.0
    c2 = c * c
    if c < 1e-3:
        return b, c, b * (0.25 - c2 / 48.0 + c2 * c2 / 480.0), 0.0, -b * c2 * c2 * (1.0 / 192.0 - c2 / 1440.0)
    mean = b * math.tanh(0.5 * c) / (2.0 * c)
    t = 0.5 * c
    if t < 20.0:
        sh = math.sinh(0.5 * t)
        log_cosh = math.log1p(2.0 * sh * sh)
    else:
        log_cosh = t + math.log1p(math.exp(-2.0 * t)) - math.log(2.0)
    return b, c, mean, 0.0, 0.5 * c2 * mean - b * log_cosh


def _elements(ex, ebase, b, c, x, base, h):
    for i in range(ex.shape[0]):
        b[i], c[i], x[i], base[i], h[i] = finish_polya_gamma(ex[i], ebase[i])


set_q = scalar(_elements, ("x", "base"), (("q", "b"), ("q", "c"), ("m", "x"), ("m", "base"), ("h",)))
