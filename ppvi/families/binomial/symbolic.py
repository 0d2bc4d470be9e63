"""Binomial(n, p) on the counts {0, …, n}, a likelihood for counts out of known totals.

log p(x) = log C(n, x) + x log p + (n − x) log(1 − p), with the binomial
coefficient as lgamma(n + 1) − lgamma(x + 1) − lgamma(n − x + 1) (never an
evaluated factorial).  In p it is Beta's statistics, log p and log(1 − p), so a
Beta prior on p is conjugate: q(p) = Beta(a + Σx, b + Σ(n − x)) (PRML 2.1.1).
n is a known total (a constant or data), not a parameter of the family.

As a q (a missing count drawn from a Binomial, docs/derivation.md, section 3): 19.56 gives
log q(y) = y·(E[log p] − E[log(1 − p)]) + log C(n, y) + const, a Binomial(n, ρ) with
ρ = a/(a + b), a = exp E[log p], b = exp E[log(1 − p)].  The factor that draws y holds log C(n, y) as n
times the place-holder statistic ``lchoose`` = log C(n, y)/n (PolyaGamma's way: n is read off as its
coefficient, η[lchoose], as PG's b is), whose moment is carried as 0, and H[q] is taken relative to
h(y) = C(n, y): H_h = −n(ρ log ρ + (1 − ρ) log(1 − ρ)).  The E_q[log C(n, y)] of the factor and of H[q]
cancel, so E[log p(y | p)] + H[q] = n log(a + b) at the fixed point, exact.  At an observed entry (a point
mass) the moment is the datum's log C(n, y)/n (0 at n = 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import sympy as sp

from ..base import Density, Params, sum_over
from ..special import lgamma

__all__ = ["Binomial", "binomial_base", "log_binomial_coefficient"]


class binomial_base(sp.Function):
    """binomial_base(y) = log C(n, y)/n with the n of y's own factor: the place-holder statistic ``lchoose`` of
    a missing count's Binomial q (module docstring), never evaluated."""

    nargs = 1


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
    q_statistics: ClassVar[tuple[str, ...]] = ("x", "lchoose")

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

    # ------------------------------------------------ as a q (module docstring)
    def natural_from_standard(self, params: Params) -> dict[str, sp.Expr]:
        """η[x] = log p − log(1 − p), η[lchoose] = n."""
        n, p = self.unpack(params)
        return {"x": sp.log(p) - sp.log(1 - p), "lchoose": n}

    def standard_from_natural(self, eta: Params) -> dict[str, sp.Expr]:
        """n = η[lchoose], p = σ(η[x])."""
        return {"n": eta["lchoose"], "p": 1 / (1 + sp.exp(-eta["x"]))}

    def q_moments(self, params: Params) -> dict[str, sp.Expr]:
        n, p = self.unpack(params)
        return {"x": n * p, "lchoose": sp.S.Zero}

    def q_entropy(self, params: Params) -> sp.Expr:
        """Relative to h(y) = C(n, y): n times a Bernoulli(p)'s entropy."""
        n, p = self.unpack(params)
        return -n * (p * sp.log(p) + (1 - p) * sp.log(1 - p))
