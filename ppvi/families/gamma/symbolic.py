"""Gamma(shape, rate) with mean shape/rate (PRML B.26–B.31, b = rate).

Statistics T = (log x, x), η = (shape − 1, −rate), h = 1,
A(η) = log Γ(η_logx + 1) − (η_logx + 1) log(−η_x).
The q of a precision or a Poisson rate under 19.56.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import sympy as sp
from sympy.logic.boolalg import Boolean

from ..base import ExponentialFamily, Params, Stats
from ..special import digamma, lgamma

__all__ = ["Gamma"]


@dataclass(frozen=True)
class Gamma(ExponentialFamily):
    """Gamma(shape a, rate b): p(x) = bᵃ xᵃ⁻¹ e^{−bx} / Γ(a) on x > 0."""

    name: ClassVar[str] = "Gamma"
    support: ClassVar[str] = "positive"
    event_rank: ClassVar[int] = 0
    params: ClassVar[tuple[str, ...]] = ("shape", "rate")
    statistic_keys: ClassVar[tuple[str, ...]] = ("logx", "x")
    moment_keys: ClassVar[tuple[str, ...]] = ("logx", "x")

    def statistics(self, x: Any) -> Stats:
        return {"logx": sp.log(x), "x": x}

    def natural_from_standard(self, params: Params) -> Stats:
        shape, rate = self.unpack(params)
        return {"logx": shape - 1, "x": -rate}

    def standard_from_natural(self, eta: Params) -> dict[str, sp.Expr]:
        return {"shape": eta["logx"] + 1, "rate": -eta["x"]}

    def log_normaliser(self, eta: Params) -> sp.Expr:
        shape = eta["logx"] + 1
        return lgamma(shape) - shape * sp.log(-eta["x"])

    def base_measure(self, x: Any) -> sp.Expr:
        return sp.S.Zero

    def expectations(self, params: Params) -> Stats:
        """E[x] = a/b, E[log x] = ψ(a) − log b (PRML B.27, B.30)."""
        shape, rate = self.unpack(params)
        return {"logx": digamma(shape) - sp.log(rate), "x": shape / rate}

    def valid_natural(self, eta: Params) -> Boolean:
        return sp.And(sp.sympify(eta["logx"]) > -1, sp.sympify(eta["x"]) < 0)

    def log_density(self, x: Any, params: Params) -> sp.Expr:
        shape, rate = self.unpack(params)
        return shape * sp.log(rate) - lgamma(shape) + (shape - 1) * sp.log(x) - rate * x

    def mean(self, params: Params) -> sp.Expr:
        shape, rate = self.unpack(params)
        return shape / rate

    def entropy(self, params: Params) -> sp.Expr:
        """log Γ(a) − (a − 1)ψ(a) − log b + a (PRML B.31)."""
        shape, rate = self.unpack(params)
        return lgamma(shape) - (shape - 1) * digamma(shape) - sp.log(rate) + shape
