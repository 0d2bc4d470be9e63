"""Dirichlet(alpha) on the probability simplex (PRML B.15–B.18).

Statistics T = (log π_k)_k, η_k = α_k − 1, h = 1,
A(η) = Σ_k log Γ(η_k + 1) − log Γ(Σ_k (η_k + 1)).
E[log π_k] = ψ(α_k) − ψ(α₀), α₀ = Σ_k α_k (PRML B.21 for the mean α_k/α₀).
Vectors are explicit for an int K or indexed by ``self.k`` for a symbolic K
(see ``base.IndexedVectorFamily``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import sympy as sp
from sympy.logic.boolalg import Boolean

from ..base import IndexedVectorFamily, Params, Stats, Value
from ..special import digamma, lgamma

__all__ = ["Dirichlet"]


@dataclass(frozen=True)
class Dirichlet(IndexedVectorFamily):
    """Dirichlet(α): p(π) = Γ(α₀)/Π_k Γ(α_k) · Π_k π_k^{α_k − 1}."""

    name: ClassVar[str] = "Dirichlet"
    support: ClassVar[str] = "simplex"
    event_rank: ClassVar[int] = 1
    params: ClassVar[tuple[str, ...]] = ("alpha",)
    statistic_keys: ClassVar[tuple[str, ...]] = ("logp",)
    moment_keys: ClassVar[tuple[str, ...]] = ("logp", "x")

    def log_multivariate_beta(self, alpha: Value) -> sp.Expr:
        """log B(α) = Σ_k log Γ(α_k) − log Γ(α₀)."""
        return self.total(self.map(lgamma, alpha)) - lgamma(self.total(alpha))

    def statistics(self, x: Any) -> Stats:
        return {"logp": self.map(sp.log, self.vector(x))}

    def natural_from_standard(self, params: Params) -> Stats:
        return {"logp": self.map(lambda a: a - 1, self.unpack(params)[0])}

    def standard_from_natural(self, eta: Params) -> dict[str, Value]:
        return {"alpha": self.map(lambda e: e + 1, self.vector(eta["logp"]))}

    def log_normaliser(self, eta: Params) -> sp.Expr:
        return self.log_multivariate_beta(self.standard_from_natural(eta)["alpha"])

    def base_measure(self, x: Any) -> sp.Expr:
        return sp.S.Zero

    def expectations(self, params: Params) -> Stats:
        alpha = self.unpack(params)[0]
        alpha0 = self.total(alpha)
        return {
            "logp": self.map(lambda a: digamma(a) - digamma(alpha0), alpha),
            "x": self.map(lambda a: a / alpha0, alpha),
        }

    def valid_natural(self, eta: Params) -> Boolean:
        """η_k > −1 for every k (α_k > 0)."""
        return self.all(lambda e: e > -1, self.vector(eta["logp"]))

    def log_density(self, x: Any, params: Params) -> sp.Expr:
        """Σ_k (α_k − 1) log π_k − log B(α)."""
        return self.log_density_natural(x, self.natural_from_standard(params))

    def mean(self, params: Params) -> Value:
        return self.expectations(params)["x"]

    def entropy(self, params: Params) -> sp.Expr:
        """log B(α) + (α₀ − K)ψ(α₀) − Σ_k (α_k − 1)ψ(α_k)."""
        alpha = self.unpack(params)[0]
        alpha0 = self.total(alpha)
        return (
            self.log_multivariate_beta(alpha)
            + (alpha0 - self.size(alpha)) * digamma(alpha0)
            - self.inner(self.map(lambda a: a - 1, alpha), self.map(digamma, alpha))
        )
