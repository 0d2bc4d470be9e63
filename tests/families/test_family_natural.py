"""Natural parameters: E[T] = ∇A(η), natural ↔ standard round trips, and the
validity conditions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import sympy as sp
from family_cases import CASES, EXPONENTIAL, SEEDS, close, exact, exact_params, num

from ppvi.families import family

POINTS = [(name, seed) for name in EXPONENTIAL for seed in SEEDS]


def symbolic_like(value: object, name: str) -> object:
    """Fresh symbols shaped like ``value`` (independent entries for matrices)."""
    if isinstance(value, sp.MatrixBase):
        return sp.Matrix(value.rows, value.cols, sp.symbols(f"{name}_0:{len(value)}"))
    return sp.Symbol(name)


def symbols_of(value: object) -> list[sp.Symbol]:
    return list(value) if isinstance(value, sp.MatrixBase) else [value]


@pytest.mark.parametrize(("name", "seed"), POINTS)
def test_expected_statistics_are_gradient_of_log_normaliser(name: str, seed: int) -> None:
    """∂A/∂η_s evaluated at η(params) equals E[T_s] for every statistic s."""
    case = CASES[name]
    fam = case.family
    params = exact_params(case.point(seed)[0])
    eta = fam.natural_from_standard(params)
    eta_sym = {key: symbolic_like(eta[key], f"eta_{key}") for key in fam.statistic_keys}
    at = {
        s: v for key in fam.statistic_keys for s, v in zip(symbols_of(eta_sym[key]), symbols_of(eta[key]), strict=True)
    }
    log_normaliser = fam.log_normaliser(eta_sym)
    moments = fam.expectations(params)
    for key in fam.statistic_keys:
        gradient = [sp.diff(log_normaliser, s).xreplace(at) for s in symbols_of(eta_sym[key])]
        close(np.array([num(g) for g in gradient]), np.ravel(num(moments[key])), rtol=1e-9)


@pytest.mark.parametrize(("name", "seed"), POINTS)
def test_standard_natural_standard_round_trip(name: str, seed: int) -> None:
    case = CASES[name]
    fam = case.family
    params = exact_params(case.point(seed)[0])
    back = fam.standard_from_natural(fam.natural_from_standard(params))
    assert set(back) == set(fam.params)
    for key in fam.params:
        close(back[key], num(params[key]))


@pytest.mark.parametrize(("name", "seed"), [(n, s) for n, s in POINTS if n != "Categorical"])
def test_natural_standard_natural_round_trip(name: str, seed: int) -> None:
    """From a valid η perturbed off the image of the sampled parameters."""
    case = CASES[name]
    fam = case.family
    eta = fam.natural_from_standard(exact_params(case.point(seed)[0]))
    eta = {key: value * sp.Float("1.1", 40) for key, value in eta.items()}
    assert bool(fam.valid_natural(eta))
    back = fam.natural_from_standard(fam.standard_from_natural(eta))
    for key in fam.statistic_keys:
        close(back[key], num(eta[key]))


def test_categorical_natural_parameters_are_defined_up_to_a_constant() -> None:
    fam = family("Categorical", 3)
    eta = {"onehot": sp.Matrix([0.3, -1.2, 2.0])}
    shifted = {"onehot": eta["onehot"] + sp.Matrix([5.0] * 3)}
    close(fam.standard_from_natural(shifted)["p"], num(fam.standard_from_natural(eta)["p"]))
    back = num(fam.natural_from_standard(fam.standard_from_natural(eta))["onehot"])
    differences = back - np.array([0.3, -1.2, 2.0])
    close(differences, np.full(3, differences[0]))
    close(fam.standard_from_natural(eta)["p"], np.exp([0.3, -1.2, 2.0]) / np.exp([0.3, -1.2, 2.0]).sum())


def test_bernoulli_natural_parameter_is_the_logit() -> None:
    fam = family("Bernoulli")
    close(fam.natural_from_standard({"p": sp.Float(0.8)})["x"], np.log(4.0))
    close(fam.standard_from_natural({"x": sp.Float(-2.0)})["p"], 1 / (1 + np.exp(2.0)))
    close(fam.log_normaliser({"x": sp.Float(-2.0)}), np.log1p(np.exp(-2.0)))


INVALID = {
    "Normal": [{"x": 1.0, "x2": 0.5}, {"x": 1.0, "x2": 0.0}],
    "Gamma": [{"logx": -1.5, "x": -1.0}, {"logx": -1.0, "x": -1.0}, {"logx": 1.0, "x": 0.0}, {"logx": 1.0, "x": 1.0}],
    "Beta": [{"logx": -2.0, "log1mx": 1.0}, {"logx": 1.0, "log1mx": -1.0}],
    "Exponential": [{"x": 2.0}, {"x": 0.0}],
    "Dirichlet": [{"logp": [1.0, -1.5, 0.0, 2.0]}],
    "MvNormal": [
        {"x": [0, 0, 0], "xxT": [[0.5, 0, 0], [0, -1, 0], [0, 0, -1]]},
        {"x": [0, 0, 0], "xxT": [[-1, -2, 0], [-2, -1, 0], [0, 0, -1]]},
        {"x": [0, 0, 0], "xxT": [[-1, 0, 0], [0, -1, 0], [0, 0, 1]]},
    ],
    "Wishart": [
        {"logdet": -1.2, "X": [[-1, 0, 0], [0, -1, 0], [0, 0, -1]]},
        {"logdet": 0.5, "X": [[1, 0, 0], [0, -1, 0], [0, 0, -1]]},
        {"logdet": 0.5, "X": [[-1, -2, 0], [-2, -1, 0], [0, 0, -1]]},
        {"logdet": 0.5, "X": [[-1, 0, 0], [0, -1, 0], [0, 0, 1]]},
    ],
}


def as_sympy(value: object) -> object:
    return sp.Matrix(value) if isinstance(value, list) else sp.Float(value)


@pytest.mark.parametrize(("name", "eta"), [(name, eta) for name, etas in INVALID.items() for eta in etas])
def test_valid_natural_rejects_invalid_points(name: str, eta: dict) -> None:
    fam = CASES[name].family
    assert not bool(fam.valid_natural({key: as_sympy(v) for key, v in eta.items()}))


@pytest.mark.parametrize(("name", "seed"), POINTS)
def test_valid_natural_accepts_the_image_of_valid_parameters(name: str, seed: int) -> None:
    case = CASES[name]
    fam = case.family
    assert bool(fam.valid_natural(fam.natural_from_standard(exact_params(case.point(seed)[0]))))


@pytest.mark.parametrize("name", ["Bernoulli", "Categorical", "Poisson"])
def test_every_real_natural_parameter_is_valid(name: str) -> None:
    fam = CASES[name].family
    eta = {
        key: sp.Matrix([-30.0, 0.0, 7.5, 1.0]) if name == "Categorical" else sp.Float(-30.0)
        for key in fam.statistic_keys
    }
    assert bool(fam.valid_natural(eta))


def test_non_symmetric_coefficient_uses_its_symmetric_part() -> None:
    fam = family("MvNormal", 2)
    eta = {"x": sp.Matrix([1.0, 2.0]), "xxT": sp.Matrix([[-1.0, 0.6], [-0.2, -2.0]])}
    cov = np.linalg.inv(-2 * np.array([[-1.0, 0.2], [0.2, -2.0]]))
    std = fam.standard_from_natural(eta)
    close(std["cov"], cov)
    close(std["mean"], cov @ np.array([1.0, 2.0]))


@pytest.mark.parametrize(("spread", "value"), list(itertools.product(["sd", "variance", "precision"], [0.5, 2.0])))
def test_normal_accepts_sd_variance_precision(spread: str, value: float) -> None:
    from scipy import stats

    sd = {"sd": value, "variance": np.sqrt(value), "precision": 1 / np.sqrt(value)}[spread]
    params = {"mean": exact(1.5), spread: exact(value)}
    fam = family("Normal")
    close(fam.log_density(exact(0.3), params), stats.norm(1.5, sd).logpdf(0.3))
    close(fam.entropy(params), stats.norm(1.5, sd).entropy())
    close(fam.standard_from_natural(fam.natural_from_standard(params))["sd"], sd)


def test_mvnormal_accepts_precision() -> None:
    from scipy import stats

    cov = np.array([[2.0, 0.3], [0.3, 1.0]])
    params = {"mean": exact(np.array([1.0, -1.0])), "precision": exact(np.linalg.inv(cov))}
    fam = family("MvNormal")
    x = np.array([0.2, 0.7])
    close(fam.log_density(exact(x), params), stats.multivariate_normal([1.0, -1.0], cov).logpdf(x))
    close(fam.entropy(params), stats.multivariate_normal([1.0, -1.0], cov).entropy())
    close(fam.expectations(params)["xxT"], cov + np.outer([1.0, -1.0], [1.0, -1.0]))


@pytest.mark.parametrize("params", [{"mean": 0}, {"mean": 0, "sd": 1, "precision": 1}])
def test_normal_needs_exactly_one_spread(params: dict) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        family("Normal").log_density(0, params)
