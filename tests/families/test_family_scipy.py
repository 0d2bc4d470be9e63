"""Log densities, entropies and means agree with scipy.stats at random points."""

from __future__ import annotations

import math

import pytest
from family_cases import CASES, EXPONENTIAL, SEEDS, close, exact, exact_params

POINTS = [(name, seed) for name in CASES for seed in SEEDS]


@pytest.mark.parametrize(("name", "seed"), POINTS)
def test_log_density_matches_scipy(name: str, seed: int) -> None:
    case = CASES[name]
    params, x = case.point(seed)
    close(case.family.log_density(exact(x), exact_params(params)), case.scipy_logdensity(params, x))


# (NegativeBinomial's entropy is a series whose terms SymPy's evalf does not sum in reasonable time; its q's
# entropy, relative to its base measure, is checked in tests/infer/test_missing_counts.py and by the harness)
@pytest.mark.parametrize(("name", "seed"), [(n, s) for n, s in POINTS if n != "NegativeBinomial"])
def test_entropy_matches_scipy(name: str, seed: int) -> None:
    case = CASES[name]
    params, _ = case.point(seed)
    close(case.family.entropy(exact_params(params)), float(case.scipy(params).entropy()))


@pytest.mark.parametrize(("name", "seed"), POINTS)
def test_mean_matches_scipy(name: str, seed: int) -> None:
    case = CASES[name]
    params, _ = case.point(seed)
    close(case.family.mean(exact_params(params)), case.scipy_mean(case.scipy(params), params))


@pytest.mark.parametrize(("name", "seed"), [(n, s) for n, s in POINTS if n in EXPONENTIAL])
def test_natural_form_matches_scipy(name: str, seed: int) -> None:
    """Σ η·T(x) − A(η) + log h(x), from the natural parameters, is the log density."""
    case = CASES[name]
    fam = case.family
    params, x = case.point(seed)
    eta = fam.natural_from_standard(exact_params(params))
    close(fam.log_density_natural(exact(x), eta), case.scipy_logdensity(params, x))


@pytest.mark.parametrize("x", [0, 1, 3])
def test_categorical_log_density_is_log_p_x(x: int) -> None:
    p = [0.1, 0.2, 0.3, 0.4]
    close(CASES["Categorical"].family.log_density(x, {"p": p}), math.log(p[x]))
