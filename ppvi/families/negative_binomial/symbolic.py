"""NegativeBinomial(r, p) on the counts {0, 1, …}: x successes before the r-th failure, each trial a success
with probability p.

log p(x) = log Γ(x + r) − log Γ(r) − log x! + x log p + r log(1 − p).  In p it is Beta's statistics, log p and
log(1 − p), so a Beta prior on p is conjugate: q(p) = Beta(a + Σx, b + N r).  r is a known number (a constant
or data), not a parameter of the family.

As a q (a missing count drawn from a NegativeBinomial, docs/derivation.md, section 3): 19.56 gives
log q(y) = y·E[log p] + log Γ(y + r) − log Γ(r) − log y! + const, a NegativeBinomial(r, ρ) with ρ = exp E[log p]
(< 1, since p < 1).  As for a Binomial's log C(n, y), the factor that draws y holds its base measure as r times
the place-holder statistic ``lnb`` = (log Γ(y + r) − log Γ(r) − log y!)/r (r is read off as its coefficient,
η[lnb]), whose moment is carried as 0, and H[q] is taken relative to h(y) = Γ(y + r)/(Γ(r) y!):
H_h = −(E[y] log ρ + r log(1 − ρ)), E[y] = rρ/(1 − ρ).  The E_q[log h(y)] of the factor and of H[q] cancel, so
E[log p(y | p)] + H[q] = r (E[log(1 − p)] − log(1 − ρ)) at the fixed point, exact.  At an observed entry (a
point mass) the moment is the datum's log h(y)/r.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import sympy as sp

from ..base import Density, Params
from ..special import lgamma

__all__ = ["NegativeBinomial", "negative_binomial_base"]


class negative_binomial_base(sp.Function):
    """negative_binomial_base(y) = (log Γ(y + r) − log Γ(r) − log y!)/r with the r of y's own factor: the
    place-holder statistic ``lnb`` of a missing count's NegativeBinomial q (module docstring), never evaluated."""

    nargs = 1


@dataclass(frozen=True)
class NegativeBinomial(Density):
    """NegativeBinomial(r, p): P(x) = Γ(x + r)/(Γ(r) x!) pˣ (1 − p)ʳ, x = 0, 1, …"""

    name: ClassVar[str] = "NegativeBinomial"
    support: ClassVar[str] = "count"
    event_rank: ClassVar[int] = 0
    params: ClassVar[tuple[str, ...]] = ("r", "p")
    q_statistics: ClassVar[tuple[str, ...]] = ("x", "lnb")

    def log_density(self, x: Any, params: Params) -> sp.Expr:
        r, p = self.unpack(params)
        return lgamma(x + r) - lgamma(r) - lgamma(x + 1) + x * sp.log(p) + r * sp.log(1 - p)

    def mean(self, params: Params) -> sp.Expr:
        r, p = self.unpack(params)
        return r * p / (1 - p)

    def entropy(self, params: Params) -> sp.Expr:
        """−Σ_{x≥0} P(x) log P(x): an infinite series with no closed form."""
        n = sp.Symbol("n", integer=True, nonnegative=True)
        log_p = self.log_density(n, params)
        return -sp.Sum(sp.exp(log_p) * log_p, (n, 0, sp.oo))

    # ------------------------------------------------ as a q (module docstring)
    def natural_from_standard(self, params: Params) -> dict[str, sp.Expr]:
        """η[x] = log p, η[lnb] = r."""
        r, p = self.unpack(params)
        return {"x": sp.log(p), "lnb": r}

    def standard_from_natural(self, eta: Params) -> dict[str, sp.Expr]:
        """r = η[lnb], p = e^η[x]."""
        return {"r": eta["lnb"], "p": sp.exp(eta["x"])}

    def q_moments(self, params: Params) -> dict[str, sp.Expr]:
        r, p = self.unpack(params)
        return {"x": r * p / (1 - p), "lnb": sp.S.Zero}

    def q_entropy(self, params: Params) -> sp.Expr:
        """Relative to h(y) = Γ(y + r)/(Γ(r) y!): −(E[y] log p + r log(1 − p))."""
        r, p = self.unpack(params)
        return -(r * p / (1 - p) * sp.log(p) + r * sp.log(1 - p))
