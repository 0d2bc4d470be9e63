"""Normal(mean, sd): the univariate Gaussian (PRML B.32–B.35).

Statistics T = (x, x²), natural parameters η = (μ/σ², −1/(2σ²)),
A(η) = −η_x²/(4η_x2) − ½ log(−2η_x2), log h = −½ log 2π.
This is the family 19.56 yields when the expected log joint is quadratic in x
(the Gaussian example 19.57–19.67; the maximum-entropy argument 19.50–19.54).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import sympy as sp
from sympy.logic.boolalg import Boolean

from ..base import ExponentialFamily, Params, Stats

__all__ = ["Normal", "precision_form", "standard_params"]

_ALTERNATIVES = ("sd", "precision", "variance")


def precision_form(params: Params) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """(mean, precision τ, log τ) from a dict with "mean" and exactly one of
    "sd", "precision", "variance" (the language's Normal constructors).
    log τ is written as a sum of logs so it stays linear in log sd etc."""
    given = [name for name in _ALTERNATIVES if name in params]
    if len(given) != 1:
        raise ValueError(f"Normal needs exactly one of {', '.join(_ALTERNATIVES)}; got {given or 'none'}")
    (name,) = given
    spread = sp.sympify(params[name])
    mean = sp.sympify(params["mean"])
    if name == "sd":
        return mean, spread**-2, -2 * sp.log(spread)
    if name == "variance":
        return mean, 1 / spread, -sp.log(spread)
    return mean, spread, sp.log(spread)


def standard_params(mean: Any, sd: Any = None, *, precision: Any = None, variance: Any = None) -> dict[str, sp.Expr]:
    """The standard {mean, sd} from any one of sd, precision or variance."""
    given = {"mean": mean, "sd": sd, "precision": precision, "variance": variance}
    mean, tau, _ = precision_form({k: v for k, v in given.items() if v is not None})
    return {"mean": mean, "sd": 1 / sp.sqrt(tau)}


@dataclass(frozen=True)
class Normal(ExponentialFamily):
    """Normal(mean, sd); ``params`` may give precision= or variance= instead of sd."""

    name: ClassVar[str] = "Normal"
    support: ClassVar[str] = "real"
    event_rank: ClassVar[int] = 0
    params: ClassVar[tuple[str, ...]] = ("mean", "sd")
    statistic_keys: ClassVar[tuple[str, ...]] = ("x", "x2")
    moment_keys: ClassVar[tuple[str, ...]] = ("x", "x2")

    def statistics(self, x: Any) -> Stats:
        return {"x": x, "x2": x**2}

    def natural_from_standard(self, params: Params) -> Stats:
        mean, tau, _ = precision_form(params)
        return {"x": tau * mean, "x2": -tau / 2}

    def standard_from_natural(self, eta: Params) -> dict[str, sp.Expr]:
        tau = -2 * eta["x2"]
        return {"mean": eta["x"] / tau, "sd": 1 / sp.sqrt(tau)}

    def log_normaliser(self, eta: Params) -> sp.Expr:
        return -(eta["x"] ** 2) / (4 * eta["x2"]) - sp.log(-2 * eta["x2"]) / 2

    def base_measure(self, x: Any) -> sp.Expr:
        return -sp.log(2 * sp.pi) / 2

    def expectations(self, params: Params) -> Stats:
        mean, tau, _ = precision_form(params)
        return {"x": mean, "x2": mean**2 + 1 / tau}

    def valid_natural(self, eta: Params) -> Boolean:
        return sp.sympify(eta["x2"]) < 0

    def log_density(self, x: Any, params: Params) -> sp.Expr:
        mean, tau, log_tau = precision_form(params)
        return (log_tau - sp.log(2 * sp.pi) - tau * (x - mean) ** 2) / 2

    def mean(self, params: Params) -> sp.Expr:
        return precision_form(params)[0]

    def entropy(self, params: Params) -> sp.Expr:
        """½ (1 + log 2π) − ½ log τ (PRML B.35)."""
        _, _, log_tau = precision_form(params)
        return (1 + sp.log(2 * sp.pi) - log_tau) / 2
