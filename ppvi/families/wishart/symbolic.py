"""Wishart(df, scale) on D×D positive-definite matrices, mean df·scale
(Bishop's W(Λ | W, ν), PRML B.78–B.82).

Statistics T = (log|X|, X), η = ((ν − D − 1)/2, −W⁻¹/2), h = 1,
A(η) = (ν/2) log|W| + (νD/2) log 2 + log Γ_D(ν/2) with
ν = 2η_logdet + D + 1 and W = (−2 sym(η_X))⁻¹.
The q of a precision matrix under 19.56 (PRML §10.2).
Values are explicit matrices for an int D, or matrix expressions for a
symbolic D (log Γ_D then holds an unevaluated Sum).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import sympy as sp
from sympy.logic.boolalg import Boolean

from ..base import (
    Dim,
    MatrixFamily,
    Params,
    Stats,
    Value,
    as_matrix,
    logdet,
    positive_definite,
    sum_over,
    symmetric_part,
)
from ..special import digamma, lgamma

__all__ = ["Wishart", "log_multivariate_gamma"]


def log_multivariate_gamma(a: sp.Expr, dim: Dim) -> sp.Expr:
    """log Γ_D(a) = D(D − 1)/4 · log π + Σ_{i=1}^{D} log Γ(a + (1 − i)/2)."""
    return dim * (dim - 1) * sp.log(sp.pi) / 4 + sum_over(lambda i: lgamma(a + (1 - i) / 2), 1, dim)


@dataclass(frozen=True)
class Wishart(MatrixFamily):
    """Wishart(ν, W): p(X) = B(W, ν) |X|^{(ν−D−1)/2} exp(−½ Tr(W⁻¹X)) (PRML B.78)."""

    name: ClassVar[str] = "Wishart"
    support: ClassVar[str] = "pd_matrix"
    event_rank: ClassVar[int] = 2
    params: ClassVar[tuple[str, ...]] = ("df", "scale")
    statistic_keys: ClassVar[tuple[str, ...]] = ("logdet", "X")
    moment_keys: ClassVar[tuple[str, ...]] = ("logdet", "X")

    def log_normalising_constant(self, df: sp.Expr, log_det_scale: sp.Expr, dim: Dim) -> sp.Expr:
        """−log B(W, ν) = (ν/2) log|W| + (νD/2) log 2 + log Γ_D(ν/2) (PRML B.79)."""
        return df * log_det_scale / 2 + df * dim * sp.log(2) / 2 + log_multivariate_gamma(df / 2, dim)

    def expected_logdet(self, df: sp.Expr, scale: Value) -> sp.Expr:
        """E[log|X|] = Σ_{i=1}^{D} ψ((ν + 1 − i)/2) + D log 2 + log|W| (PRML B.81)."""
        dim = self.size(scale)
        return sum_over(lambda i: digamma((df + 1 - i) / 2), 1, dim) + dim * sp.log(2) + logdet(scale)

    def statistics(self, x: Any) -> Stats:
        x = as_matrix(x)
        return {"logdet": logdet(x), "X": x}

    def natural_from_standard(self, params: Params) -> Stats:
        df, scale = self.unpack(params)
        return {"logdet": (df - self.size(scale) - 1) / 2, "X": -scale.inv() / 2}

    def standard_from_natural(self, eta: Params) -> dict[str, Value]:
        scale = (-2 * symmetric_part(as_matrix(eta["X"]))).inv()
        return {"df": 2 * eta["logdet"] + self.size(scale) + 1, "scale": scale}

    def log_normaliser(self, eta: Params) -> sp.Expr:
        """A(η) = −log B(W, ν) with log|W| = −log|−2 sym(η_X)| (no inverse needed)."""
        precision = -2 * symmetric_part(as_matrix(eta["X"]))
        dim = self.size(precision)
        return self.log_normalising_constant(2 * eta["logdet"] + dim + 1, -logdet(precision), dim)

    def base_measure(self, x: Any) -> sp.Expr:
        return sp.S.Zero

    def expectations(self, params: Params) -> Stats:
        """E[X] = νW (PRML B.80), E[log|X|] as in ``expected_logdet``."""
        df, scale = self.unpack(params)
        return {"logdet": self.expected_logdet(df, scale), "X": df * scale}

    def valid_natural(self, eta: Params) -> Boolean:
        """ν > D − 1 (η_logdet > −1) and −sym(η_X) positive definite."""
        return sp.And(sp.sympify(eta["logdet"]) > -1, positive_definite(-symmetric_part(as_matrix(eta["X"]))))

    def log_density(self, x: Any, params: Params) -> sp.Expr:
        df, scale = self.unpack(params)
        x = as_matrix(x)
        return (
            (df - self.size(scale) - 1) * logdet(x) / 2
            - sp.trace(scale.inv() * x) / 2
            - self.log_normalising_constant(df, logdet(scale), self.size(scale))
        )

    def mean(self, params: Params) -> Value:
        df, scale = self.unpack(params)
        return df * scale

    def entropy(self, params: Params) -> sp.Expr:
        """−log B(W, ν) − (ν − D − 1)/2 · E[log|X|] + νD/2 (PRML B.82)."""
        df, scale = self.unpack(params)
        dim = self.size(scale)
        return (
            self.log_normalising_constant(df, logdet(scale), dim)
            - (df - dim - 1) * self.expected_logdet(df, scale) / 2
            + df * dim / 2
        )
