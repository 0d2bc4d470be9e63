"""MvNormal(mean, cov) on ℝᴰ (PRML B.37–B.41).

Statistics T = (x, xxᵀ), η = (Λμ, −Λ/2) with Λ = Σ⁻¹,
A(η) = ½ η_xᵀ Λ⁻¹ η_x − ½ log|Λ| where Λ = −2 sym(η_xxT),
log h = −(D/2) log 2π.  Only the symmetric part of η_xxT enters (xᵀMx =
xᵀ sym(M) x), so ``standard_from_natural`` and ``valid_natural`` use it.
Values are explicit D×1 / D×D sympy matrices for an int D, or matrix
expressions (``MatrixSymbol``; Inverse, Determinant, Trace) for a symbolic D.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import sympy as sp
from sympy.logic.boolalg import Boolean

from ..base import MatrixFamily, Params, Stats, Value, as_matrix, logdet, positive_definite, quadratic, symmetric_part

__all__ = ["MvNormal", "precision_form", "standard_params"]


def precision_form(params: Params) -> tuple[Value, Value, sp.Expr]:
    """(mean μ, precision Λ, log|Λ|) from "mean" and exactly one of "cov",
    "precision" (the language's MvNormal constructors)."""
    given = [name for name in ("cov", "precision") if name in params]
    if len(given) != 1:
        raise ValueError(f"MvNormal needs exactly one of cov, precision; got {given or 'none'}")
    mean = as_matrix(params["mean"])
    if given == ["cov"]:
        cov = as_matrix(params["cov"])
        return mean, cov.inv(), -logdet(cov)
    precision = as_matrix(params["precision"])
    return mean, precision, logdet(precision)


def standard_params(mean: Any, cov: Any = None, *, precision: Any = None) -> dict[str, Value]:
    """The standard {mean, cov} from either cov or precision."""
    if (cov is None) == (precision is None):
        raise ValueError("MvNormal needs exactly one of cov, precision")
    return {"mean": as_matrix(mean), "cov": as_matrix(cov) if precision is None else as_matrix(precision).inv()}


@dataclass(frozen=True)
class MvNormal(MatrixFamily):
    """MvNormal(μ, Σ); ``params`` may give precision= instead of cov."""

    name: ClassVar[str] = "MvNormal"
    support: ClassVar[str] = "real_vector"
    event_rank: ClassVar[int] = 1
    params: ClassVar[tuple[str, ...]] = ("mean", "cov")
    statistic_keys: ClassVar[tuple[str, ...]] = ("x", "xxT")
    moment_keys: ClassVar[tuple[str, ...]] = ("x", "xxT")

    def _log_2pi(self, like: Value) -> sp.Expr:
        return self.size(like) * sp.log(2 * sp.pi) / 2

    def statistics(self, x: Any) -> Stats:
        x = as_matrix(x)
        return {"x": x, "xxT": x * x.T}

    def natural_from_standard(self, params: Params) -> Stats:
        mean, precision, _ = precision_form(params)
        return {"x": precision * mean, "xxT": -precision / 2}

    def standard_from_natural(self, eta: Params) -> dict[str, Value]:
        cov = (-2 * symmetric_part(as_matrix(eta["xxT"]))).inv()
        return {"mean": cov * as_matrix(eta["x"]), "cov": cov}

    def log_normaliser(self, eta: Params) -> sp.Expr:
        eta_x = as_matrix(eta["x"])
        precision = -2 * symmetric_part(as_matrix(eta["xxT"]))
        return quadratic(eta_x, precision.inv()) / 2 - logdet(precision) / 2

    def base_measure(self, x: Any) -> sp.Expr:
        return -self._log_2pi(as_matrix(x))

    def expectations(self, params: Params) -> Stats:
        """E[x] = μ, E[xxᵀ] = Σ + μμᵀ."""
        std = standard_params(**params)
        mean = std["mean"]
        return {"x": mean, "xxT": std["cov"] + mean * mean.T}

    def valid_natural(self, eta: Params) -> Boolean:
        """−sym(η_xxT) positive definite."""
        return positive_definite(-symmetric_part(as_matrix(eta["xxT"])))

    def log_density(self, x: Any, params: Params) -> sp.Expr:
        mean, precision, log_det_precision = precision_form(params)
        r = as_matrix(x) - mean
        return log_det_precision / 2 - self._log_2pi(mean) - quadratic(r, precision) / 2

    def mean(self, params: Params) -> Value:
        return as_matrix(params["mean"])

    def entropy(self, params: Params) -> sp.Expr:
        """(D/2)(1 + log 2π) − ½ log|Λ| (PRML B.41)."""
        mean, _, log_det_precision = precision_form(params)
        return self.size(mean) / 2 + self._log_2pi(mean) - log_det_precision / 2
