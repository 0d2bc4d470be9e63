"""Beta(a, b) on (0, 1) (PRML B.6–B.9).

Statistics T = (log x, log(1 − x)), η = (a − 1, b − 1), h = 1,
A(η) = log B(η_logx + 1, η_log1mx + 1) with B(a, b) = Γ(a)Γ(b)/Γ(a + b).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import sympy as sp
from sympy.logic.boolalg import Boolean

from ..base import ExponentialFamily, Params, Stats
from ..special import digamma, lgamma

__all__ = ["Beta", "log_beta_function"]


def log_beta_function(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    """log B(a, b) = log Γ(a) + log Γ(b) − log Γ(a + b)."""
    return lgamma(a) + lgamma(b) - lgamma(a + b)


@dataclass(frozen=True)
class Beta(ExponentialFamily):
    """Beta(a, b): p(x) = xᵃ⁻¹ (1 − x)ᵇ⁻¹ / B(a, b)."""

    name: ClassVar[str] = "Beta"
    support: ClassVar[str] = "unit_interval"
    event_rank: ClassVar[int] = 0
    params: ClassVar[tuple[str, ...]] = ("a", "b")
    statistic_keys: ClassVar[tuple[str, ...]] = ("logx", "log1mx")
    moment_keys: ClassVar[tuple[str, ...]] = ("logx", "log1mx", "x")

    def statistics(self, x: Any) -> Stats:
        return {"logx": sp.log(x), "log1mx": sp.log(1 - x)}

    def natural_from_standard(self, params: Params) -> Stats:
        a, b = self.unpack(params)
        return {"logx": a - 1, "log1mx": b - 1}

    def standard_from_natural(self, eta: Params) -> dict[str, sp.Expr]:
        return {"a": eta["logx"] + 1, "b": eta["log1mx"] + 1}

    def log_normaliser(self, eta: Params) -> sp.Expr:
        return log_beta_function(eta["logx"] + 1, eta["log1mx"] + 1)

    def base_measure(self, x: Any) -> sp.Expr:
        return sp.S.Zero

    def expectations(self, params: Params) -> Stats:
        """E[log x] = ψ(a) − ψ(a + b), E[log(1 − x)] = ψ(b) − ψ(a + b), E[x] = a/(a + b)."""
        a, b = self.unpack(params)
        return {
            "logx": digamma(a) - digamma(a + b),
            "log1mx": digamma(b) - digamma(a + b),
            "x": a / (a + b),
        }

    def valid_natural(self, eta: Params) -> Boolean:
        return sp.And(sp.sympify(eta["logx"]) > -1, sp.sympify(eta["log1mx"]) > -1)

    def log_density(self, x: Any, params: Params) -> sp.Expr:
        a, b = self.unpack(params)
        return (a - 1) * sp.log(x) + (b - 1) * sp.log(1 - x) - log_beta_function(a, b)

    def mean(self, params: Params) -> sp.Expr:
        a, b = self.unpack(params)
        return a / (a + b)

    def entropy(self, params: Params) -> sp.Expr:
        """log B(a, b) − (a − 1)ψ(a) − (b − 1)ψ(b) + (a + b − 2)ψ(a + b)."""
        a, b = self.unpack(params)
        return (
            log_beta_function(a, b)
            - (a - 1) * digamma(a)
            - (b - 1) * digamma(b)
            + (a + b - 2) * digamma(a + b)
        )
