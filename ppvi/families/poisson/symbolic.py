"""Poisson(rate) on the counts {0, 1, …}, a likelihood for count data.

Statistic T = x, η = log rate, A(η) = e^η, log h(x) = −log x!.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import sympy as sp
from sympy.logic.boolalg import Boolean

from ..base import ExponentialFamily, Params, Stats
from ..special import lgamma

__all__ = ["Poisson"]


@dataclass(frozen=True)
class Poisson(ExponentialFamily):
    """Poisson(λ): p(x) = λˣ e^{−λ} / x!."""

    name: ClassVar[str] = "Poisson"
    support: ClassVar[str] = "count"
    event_rank: ClassVar[int] = 0
    params: ClassVar[tuple[str, ...]] = ("rate",)
    statistic_keys: ClassVar[tuple[str, ...]] = ("x",)
    moment_keys: ClassVar[tuple[str, ...]] = ("x",)

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
