"""Shared fixtures of the family tests: random parameter points, the scipy
distribution each family must agree with, and conversion helpers.

Parameters are drawn as floats, handed to scipy as they are and to the
families as 40-digit SymPy Floats (exact copies of the same binary numbers),
so differences measure the formulas, not rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp
from scipy import stats

from ppvi.families import FAMILIES, Density, family

DIGITS = 40
RTOL = 1e-10
SEEDS = (0, 1, 2)


def exact(value: Any) -> Any:
    """A float, int or array as SymPy: Float(…, 40 digits), Integer, or Matrix
    (1-D arrays become columns)."""
    if isinstance(value, np.ndarray):
        if value.ndim == 1:
            return sp.Matrix([exact(v) for v in value])
        return sp.Matrix([[exact(v) for v in row] for row in value])
    if isinstance(value, (int, np.integer)):
        return sp.Integer(int(value))
    return sp.Float(float(value), DIGITS)


def exact_params(params: dict[str, Any]) -> dict[str, Any]:
    return {name: exact(v) for name, v in params.items()}


def num(expr: Any) -> float | np.ndarray:
    """Evaluate a SymPy scalar or matrix to float / numpy (columns → 1-D)."""
    if isinstance(expr, sp.MatrixBase):
        out = np.array([[num(e) for e in expr.row(i)] for i in range(expr.rows)])
        return out.reshape(-1) if expr.cols == 1 else out
    value = sp.N(expr, 30)
    assert value.is_real, f"not a real number: {value}"
    return float(value)


def close(actual: Any, expected: Any, rtol: float = RTOL, atol: float = 1e-12) -> None:
    """|actual − expected| ≤ atol + rtol·|expected|, SymPy values evaluated first."""
    if isinstance(actual, (sp.Basic, sp.MatrixBase)):
        actual = num(actual)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def random_spd(rng: np.random.Generator, dim: int) -> np.ndarray:
    a = rng.normal(size=(dim, dim))
    return a @ a.T / dim + 0.5 * np.eye(dim)


@dataclass(frozen=True)
class Case:
    """A family at random points, with the scipy distribution it must match."""

    name: str
    draw_params: Callable[[np.random.Generator], dict[str, Any]]
    scipy: Callable[[dict[str, Any]], Any]
    draw_x: Callable[[np.random.Generator, dict[str, Any]], Any]
    dim: int | None = None
    scipy_x: Callable[[Any, dict[str, Any]], Any] = field(default=lambda x, params: x)
    scipy_mean: Callable[[Any, dict[str, Any]], Any] = field(default=lambda dist, params: dist.mean())

    @property
    def family(self) -> Density:
        return family(self.name, self.dim)

    def point(self, seed: int) -> tuple[dict[str, Any], Any]:
        """Parameters and a value x drawn from them."""
        rng = np.random.default_rng(seed)
        params = self.draw_params(rng)
        return params, self.draw_x(rng, params)

    def scipy_logdensity(self, params: dict[str, Any], x: Any) -> float:
        dist = self.scipy(params)
        logdensity = dist.logpmf if hasattr(dist, "logpmf") else dist.logpdf
        return float(logdensity(self.scipy_x(x, params)))


K = 4
D = 3

CASES: dict[str, Case] = {
    case.name: case
    for case in (
        Case(
            "Normal",
            lambda rng: {"mean": rng.normal(0, 3), "sd": rng.uniform(0.2, 3)},
            lambda p: stats.norm(p["mean"], p["sd"]),
            lambda rng, p: rng.normal(p["mean"], p["sd"]),
        ),
        Case(
            "MvNormal",
            lambda rng: {"mean": rng.normal(0, 2, size=D), "cov": random_spd(rng, D)},
            lambda p: stats.multivariate_normal(p["mean"], p["cov"]),
            lambda rng, p: rng.multivariate_normal(p["mean"], p["cov"]),
            dim=D,
            scipy_mean=lambda dist, p: dist.mean,
        ),
        Case(
            "Gamma",
            lambda rng: {"shape": rng.uniform(0.3, 5), "rate": rng.uniform(0.2, 4)},
            lambda p: stats.gamma(p["shape"], scale=1 / p["rate"]),
            lambda rng, p: rng.gamma(p["shape"], 1 / p["rate"]),
        ),
        Case(
            "Beta",
            lambda rng: {"a": rng.uniform(0.3, 5), "b": rng.uniform(0.3, 5)},
            lambda p: stats.beta(p["a"], p["b"]),
            lambda rng, p: float(np.clip(rng.beta(p["a"], p["b"]), 1e-6, 1 - 1e-6)),
        ),
        Case(
            "Bernoulli",
            lambda rng: {"p": rng.uniform(0.05, 0.95)},
            lambda p: stats.bernoulli(p["p"]),
            lambda rng, p: int(rng.random() < p["p"]),
        ),
        Case(
            "Categorical",
            lambda rng: {"p": rng.dirichlet(np.full(K, 2.0))},
            lambda p: stats.multinomial(1, p["p"]),
            lambda rng, p: int(rng.choice(K, p=p["p"])),
            dim=K,
            scipy_x=lambda x, p: np.eye(K, dtype=int)[x],
            scipy_mean=lambda dist, p: float(np.arange(K) @ p["p"]),
        ),
        Case(
            "Dirichlet",
            lambda rng: {"alpha": rng.uniform(0.3, 4, size=K)},
            lambda p: stats.dirichlet(p["alpha"]),
            lambda rng, p: rng.dirichlet(p["alpha"]),
            dim=K,
            scipy_mean=lambda dist, p: p["alpha"] / p["alpha"].sum(),
        ),
        Case(
            "Wishart",
            lambda rng: {"df": rng.uniform(D - 1 + 0.5, D + 6), "scale": random_spd(rng, D)},
            lambda p: stats.wishart(p["df"], p["scale"]),
            lambda rng, p: stats.wishart(p["df"], p["scale"]).rvs(random_state=rng),
            dim=D,
        ),
        Case(
            "Poisson",
            lambda rng: {"rate": rng.uniform(0.3, 8)},
            lambda p: stats.poisson(p["rate"]),
            lambda rng, p: int(rng.poisson(p["rate"])),
        ),
        Case(
            "Exponential",
            lambda rng: {"rate": rng.uniform(0.2, 4)},
            lambda p: stats.expon(scale=1 / p["rate"]),
            lambda rng, p: rng.exponential(1 / p["rate"]),
        ),
        Case(
            "Laplace",
            lambda rng: {"loc": rng.normal(0, 3), "scale": rng.uniform(0.2, 3)},
            lambda p: stats.laplace(p["loc"], p["scale"]),
            lambda rng, p: rng.laplace(p["loc"], p["scale"]),
        ),
        Case(
            "Binomial",
            lambda rng: {"n": int(rng.integers(1, 30)), "p": rng.uniform(0.05, 0.95)},
            lambda p: stats.binom(p["n"], p["p"]),
            lambda rng, p: int(rng.binomial(p["n"], p["p"])),
        ),
        Case(
            "NegativeBinomial",
            lambda rng: {"r": rng.uniform(0.5, 8), "p": rng.uniform(0.05, 0.8)},
            lambda p: stats.nbinom(p["r"], 1 - p["p"]),          # (SciPy counts failures: p ↔ 1 − p)
            lambda rng, p: int(rng.negative_binomial(p["r"], 1 - p["p"])),
        ),
        Case(
            "Multinomial",
            lambda rng: {"n": int(rng.integers(1, 8)), "p": rng.dirichlet(np.full(K, 2.0))},
            lambda p: stats.multinomial(p["n"], p["p"]),
            lambda rng, p: rng.multinomial(p["n"], p["p"]),
            dim=K,
            scipy_mean=lambda dist, p: p["n"] * p["p"],
        ),
    )
}

# (PolyaGamma has no scipy law, nor a closed-form density: tests/families/test_polya_gamma.py checks it)
EXPONENTIAL = tuple(name for name, fam in FAMILIES.items() if fam.exponential and name in CASES)
