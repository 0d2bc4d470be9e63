"""Exponential(rate) on x > 0: Gamma(1, rate).

Statistic T = x, η = −rate, A(η) = −log(−η), h = 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import sympy as sp
from sympy.logic.boolalg import Boolean

from ..base import ExponentialFamily, Params, Stats
from ..special import digamma

__all__ = ["Exponential"]


@dataclass(frozen=True)
class Exponential(ExponentialFamily):
    """Exponential(λ): p(x) = λ e^{−λx}."""

    name: ClassVar[str] = "Exponential"
    support: ClassVar[str] = "positive"
    event_rank: ClassVar[int] = 0
    params: ClassVar[tuple[str, ...]] = ("rate",)
    statistic_keys: ClassVar[tuple[str, ...]] = ("x",)
    moment_keys: ClassVar[tuple[str, ...]] = ("x", "logx")

    def statistics(self, x: Any) -> Stats:
        return {"x": sp.sympify(x)}

    def natural_from_standard(self, params: Params) -> Stats:
        return {"x": -self.unpack(params)[0]}

    def standard_from_natural(self, eta: Params) -> dict[str, sp.Expr]:
        return {"rate": -eta["x"]}

    def log_normaliser(self, eta: Params) -> sp.Expr:
        return -sp.log(-eta["x"])

    def base_measure(self, x: Any) -> sp.Expr:
        return sp.S.Zero

    def expectations(self, params: Params) -> Stats:
        """E[x] = 1/λ, E[log x] = ψ(1) − log λ = −γ − log λ."""
        rate = self.unpack(params)[0]
        return {"x": 1 / rate, "logx": digamma(1) - sp.log(rate)}

    def valid_natural(self, eta: Params) -> Boolean:
        return sp.sympify(eta["x"]) < 0

    def log_density(self, x: Any, params: Params) -> sp.Expr:
        rate = self.unpack(params)[0]
        return sp.log(rate) - rate * x

    def mean(self, params: Params) -> sp.Expr:
        return 1 / self.unpack(params)[0]

    def entropy(self, params: Params) -> sp.Expr:
        """1 − log λ."""
        return 1 - sp.log(self.unpack(params)[0])
