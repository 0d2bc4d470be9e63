"""Binomial(n, p) on the counts {0, …, n}, a likelihood for counts out of known totals.

log p(x) = log C(n, x) + x log p + (n − x) log(1 − p), with the binomial
coefficient as lgamma(n + 1) − lgamma(x + 1) − lgamma(n − x + 1) (never an
evaluated factorial).  In p it is Beta's statistics, log p and log(1 − p), so a
Beta prior on p is conjugate: q(p) = Beta(a + Σx, b + Σ(n − x)) (PRML 2.1.1).
n is a known total (a constant or data), not a parameter of the family.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import sympy as sp

from ..base import Density, Params, sum_over
from ..special import lgamma

__all__ = ["Binomial", "log_binomial_coefficient"]


def log_binomial_coefficient(n: sp.Expr, x: sp.Expr) -> sp.Expr:
    """log C(n, x) = log Γ(n + 1) − log Γ(x + 1) − log Γ(n − x + 1)."""
    return lgamma(n + 1) - lgamma(x + 1) - lgamma(n - x + 1)


@dataclass(frozen=True)
class Binomial(Density):
    """Binomial(n, p): P(x) = C(n, x) pˣ (1 − p)ⁿ⁻ˣ, x = 0 … n."""

    name: ClassVar[str] = "Binomial"
    support: ClassVar[str] = "count"
    event_rank: ClassVar[int] = 0
    params: ClassVar[tuple[str, ...]] = ("n", "p")

    def log_density(self, x: Any, params: Params) -> sp.Expr:
        n, p = self.unpack(params)
        return log_binomial_coefficient(n, x) + x * sp.log(p) + (n - x) * sp.log(1 - p)

    def mean(self, params: Params) -> sp.Expr:
        n, p = self.unpack(params)
        return n * p

    def entropy(self, params: Params) -> sp.Expr:
        """−Σ_{x=0}^{n} P(x) log P(x): a finite sum with no closed form."""
        n, _ = self.unpack(params)
        return -sum_over(lambda x: sp.exp(self.log_density(x, params)) * self.log_density(x, params), 0, n, "x")
