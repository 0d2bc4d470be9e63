"""Bernoulli(p) on {0, 1} (PRML B.1–B.5), kept in log space.

Statistic T = x (x² = x on {0, 1}), natural parameter the logit
η = log p − log(1 − p), A(η) = softplus(η) = log(1 + e^η), h = 1, p = σ(η).
For evaluation A lowers to ``stable.stable_softplus``; log p = −softplus(−η)
and log(1 − p) = −softplus(η) (docs/derivation.md).  The q of 19.44 is Bernoulli with
η the argument of σ there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import sympy as sp
from sympy.logic.boolalg import Boolean

from ..base import ExponentialFamily, Params, Stats
from ..stable import sigmoid, softplus

__all__ = ["Bernoulli"]


@dataclass(frozen=True)
class Bernoulli(ExponentialFamily):
    """Bernoulli(p): p(x) = pˣ (1 − p)¹⁻ˣ."""

    name: ClassVar[str] = "Bernoulli"
    support: ClassVar[str] = "binary"
    event_rank: ClassVar[int] = 0
    params: ClassVar[tuple[str, ...]] = ("p",)
    statistic_keys: ClassVar[tuple[str, ...]] = ("x",)
    moment_keys: ClassVar[tuple[str, ...]] = ("x",)

    def statistics(self, x: Any) -> Stats:
        return {"x": sp.sympify(x)}

    def natural_from_standard(self, params: Params) -> Stats:
        p = self.unpack(params)[0]
        return {"x": sp.log(p) - sp.log(1 - p)}

    def standard_from_natural(self, eta: Params) -> dict[str, sp.Expr]:
        return {"p": sigmoid(eta["x"])}

    def log_normaliser(self, eta: Params) -> sp.Expr:
        return softplus(eta["x"])

    def base_measure(self, x: Any) -> sp.Expr:
        return sp.S.Zero

    def expectations(self, params: Params) -> Stats:
        return {"x": self.unpack(params)[0]}

    def valid_natural(self, eta: Params) -> Boolean:
        """Every real logit is valid."""
        return sp.true

    def log_density(self, x: Any, params: Params) -> sp.Expr:
        p = self.unpack(params)[0]
        return x * sp.log(p) + (1 - x) * sp.log(1 - p)

    def mean(self, params: Params) -> sp.Expr:
        return self.unpack(params)[0]

    def entropy(self, params: Params) -> sp.Expr:
        """−p log p − (1 − p) log(1 − p) (PRML B.5)."""
        p = self.unpack(params)[0]
        return -p * sp.log(p) - (1 - p) * sp.log(1 - p)
