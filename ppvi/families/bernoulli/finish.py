"""Bernoulli's Numba side (docs/architecture.md, "The family unit"): its finish (η of one element -> q's
parameters, moments and entropy), which generated code calls through ``ppvi.codegen.runtime``, and ``set_q``,
the same finish over every element of q's state (a warm start)."""

from __future__ import annotations

from numba import njit

from ppvi.codegen.special import sigmoid, softplus

from ..elements import scalar

__all__ = ["finish_bernoulli"]


@njit(cache=True)
def finish_bernoulli(eta):
    """-> (p, H) with H = softplus(η) − p η, exact in log space for any η."""
    p = sigmoid(eta)
    return p, softplus(eta) - p * eta


def _elements(eta, p, h):
    for i in range(eta.shape[0]):
        p[i], h[i] = finish_bernoulli(eta[i])


set_q = scalar(_elements, ("x",), (("q", "p"), ("h",)))
