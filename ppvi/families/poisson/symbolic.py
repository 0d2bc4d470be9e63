"""Poisson(rate) on the counts {0, 1, …}, a likelihood for count data.

Statistic T = x, η = log rate, A(η) = e^η, log h(x) = −log x!.

As a q (a missing count drawn from a Poisson, docs/derivation.md, section 3): 19.56 gives
log q(y) = y·E[log λ] − log y! + const, a Poisson with rate r = exp E[log λ].  E_q[log y!] has no closed
form (a series), and needs none: the factor that draws y holds −log y! as the place-holder statistic
``lfact`` (PolyaGamma's way), whose moment is carried as 0, and H[q] is taken relative to h(y) = 1/y!,
H_h = −E_q[log q(y) + log y!] = r − r log r.  The E_q[log y!] of the factor and of H[q] cancel, so their
sum, the only thing the ELBO needs, is exact: E[log p(y | λ)] + H[q] = r E[log λ] − E[λ] + r − r log r =
r − E[λ] at the fixed point.  At an observed entry (a point mass) the moment is the datum's −log y!.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import sympy as sp
from sympy.logic.boolalg import Boolean

from ..base import ExponentialFamily, Params, Stats
from ..special import lgamma

__all__ = ["Poisson", "poisson_base"]


class poisson_base(sp.Function):
    """poisson_base(y) = −log y!, the base measure of a missing count's Poisson q as the place-holder statistic
    ``lfact`` (module docstring): the expectation reads it as that moment, never evaluates it."""

    nargs = 1


@dataclass(frozen=True)
class Poisson(ExponentialFamily):
    """Poisson(λ): p(x) = λˣ e^{−λ} / x!."""

    name: ClassVar[str] = "Poisson"
    support: ClassVar[str] = "count"
    event_rank: ClassVar[int] = 0
    params: ClassVar[tuple[str, ...]] = ("rate",)
    statistic_keys: ClassVar[tuple[str, ...]] = ("x",)
    moment_keys: ClassVar[tuple[str, ...]] = ("x",)
    q_statistics: ClassVar[tuple[str, ...]] = ("x", "lfact")

    def statistics(self, x: Any) -> Stats:
        return {"x": sp.sympify(x)}

    def natural_from_standard(self, params: Params) -> Stats:
        return {"x": sp.log(self.unpack(params)[0])}

    def standard_from_natural(self, eta: Params) -> dict[str, sp.Expr]:
        return {"rate": sp.exp(eta["x"])}

    def log_normaliser(self, eta: Params) -> sp.Expr:
        return sp.exp(eta["x"])

    def base_measure(self, x: Any) -> sp.Expr:
        return -lgamma(x + 1)

    def expectations(self, params: Params) -> Stats:
        return {"x": self.unpack(params)[0]}

    def q_moments(self, params: Params) -> Stats:
        return {"x": self.unpack(params)[0], "lfact": sp.S.Zero}

    def q_entropy(self, params: Params) -> sp.Expr:
        """Relative to h(y) = 1/y! (module docstring): r − r log r."""
        rate = self.unpack(params)[0]
        return rate * (1 - sp.log(rate))

    def valid_natural(self, eta: Params) -> Boolean:
        """Every real η is valid."""
        return sp.true

    def log_density(self, x: Any, params: Params) -> sp.Expr:
        rate = self.unpack(params)[0]
        return x * sp.log(rate) - rate - lgamma(x + 1)

    def mean(self, params: Params) -> sp.Expr:
        return self.unpack(params)[0]

    def entropy(self, params: Params) -> sp.Expr:
        """λ(1 − log λ) + e^{−λ} Σ_{n≥0} λⁿ log(n!)/n!: an infinite series, no
        closed form (it converges fast; truncate it to evaluate)."""
        rate = self.unpack(params)[0]
        n = sp.Symbol("n", integer=True, nonnegative=True)
        series = sp.Sum(rate**n * lgamma(n + 1) / sp.factorial(n), (n, 0, sp.oo))
        return rate * (1 - sp.log(rate)) + sp.exp(-rate) * series
