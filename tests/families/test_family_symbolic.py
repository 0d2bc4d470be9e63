"""Symbolic-size forms: with a Symbol for K or D, substituting a concrete size
and numbers gives the same values as the int-size form (which the other tests
check against scipy)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import sympy as sp
from family_cases import close, exact, num, random_spd

from ppvi.families import family

SIZE = sp.Symbol("K", integer=True, positive=True)
SIZE_VALUE = 4


def concrete_vector(expr: Any, fam: Any, index: int | None, numbers: dict[str, np.ndarray]) -> Any:
    """Fix the free index to ``index``, the size to SIZE_VALUE, expand the sums
    and put in the numbers of each IndexedBase named in ``numbers``."""
    if index is not None:
        expr = expr.xreplace({fam.k: sp.Integer(index)})
    expr = sp.sympify(expr).subs(SIZE, SIZE_VALUE).doit()
    values = {sp.IndexedBase(name)[i]: exact(v) for name, vector in numbers.items() for i, v in enumerate(vector)}
    return expr.xreplace(values)


def component(expr: Any, fam: Any, index: int | None, numbers: dict[str, np.ndarray]) -> float:
    return num(concrete_vector(expr, fam, index, numbers))


def agree(symbolic: Any, explicit: Any, fam: Any, numbers: dict[str, np.ndarray]) -> None:
    if isinstance(explicit, sp.MatrixBase):
        for i in range(len(explicit)):
            close(component(symbolic, fam, i, numbers), num(explicit[i]))
    else:
        close(component(symbolic, fam, None, numbers), num(explicit))


COMMON: list[tuple[str, Callable]] = [
    ("entropy", lambda f, p, x: f.entropy(p)),
    ("mean", lambda f, p, x: f.mean(p)),
    ("log_density", lambda f, p, x: f.log_density(x, p)),
    ("log_normaliser", lambda f, p, x: f.log_normaliser(f.natural_from_standard(p))),
    ("log_density_natural", lambda f, p, x: f.log_density_natural(x, f.natural_from_standard(p))),
]
"""(label, f(family, params, x)) pairs evaluated in both forms."""


def vector_cases(name: str) -> list[tuple[str, Callable]]:
    """COMMON plus every natural parameter, moment and standard parameter."""
    common = list(COMMON)
    common += [
        (f"natural:{key}", lambda f, p, x, key=key: f.natural_from_standard(p)[key])
        for key in family(name).statistic_keys
    ]
    common += [(f"moment:{key}", lambda f, p, x, key=key: f.expectations(p)[key]) for key in family(name).moment_keys]
    common += [
        (f"standard:{key}", lambda f, p, x, key=key: f.standard_from_natural(f.natural_from_standard(p))[key])
        for key in family(name).params
    ]
    return common


rng = np.random.default_rng(3)
ALPHA = rng.uniform(0.3, 4, size=SIZE_VALUE)
PROBS = rng.dirichlet(np.ones(SIZE_VALUE))
SIMPLEX_POINT = rng.dirichlet(np.ones(SIZE_VALUE))


def cases(pairs: list[tuple[str, Callable]]) -> Any:
    return pytest.mark.parametrize(("label", "f"), pairs, ids=[label for label, _ in pairs])


@cases(vector_cases("Dirichlet"))
def test_symbolic_dirichlet_matches_int_size(label: str, f: Callable) -> None:
    symbolic = family("Dirichlet", SIZE)
    explicit = family("Dirichlet", SIZE_VALUE)
    value = f(symbolic, {"alpha": sp.IndexedBase("alpha")}, sp.IndexedBase("x"))
    expected = f(explicit, {"alpha": exact(ALPHA)}, exact(SIMPLEX_POINT))
    agree(value, expected, symbolic, {"alpha": ALPHA, "x": SIMPLEX_POINT})


@pytest.mark.parametrize("x", range(SIZE_VALUE))
@cases([*vector_cases("Categorical"), ("onehot", lambda f, p, x: f.statistics(x)["onehot"])])
def test_symbolic_categorical_matches_int_size(label: str, f: Callable, x: int) -> None:
    symbolic = family("Categorical", SIZE)
    explicit = family("Categorical", SIZE_VALUE)
    value = f(symbolic, {"p": sp.IndexedBase("p")}, sp.Integer(x))
    expected = f(explicit, {"p": exact(PROBS)}, sp.Integer(x))
    agree(value, expected, symbolic, {"p": PROBS})


def test_symbolic_dirichlet_validity_is_per_component() -> None:
    fam = family("Dirichlet", SIZE)
    condition = fam.valid_natural(fam.natural_from_standard({"alpha": sp.IndexedBase("alpha")}))
    for alpha, valid in [(ALPHA, True), (np.array([1.0, -0.5, 2.0, 1.0]), False)]:
        per_component = [bool(concrete_vector(condition, fam, i, {"alpha": alpha})) for i in range(SIZE_VALUE)]
        assert all(per_component) is valid


def test_symbolic_vector_family_keeps_sums_unevaluated() -> None:
    fam = family("Dirichlet", SIZE)
    entropy = fam.entropy({"alpha": sp.IndexedBase("alpha")})
    assert entropy.has(sp.Sum) and SIZE in entropy.free_symbols
    assert fam.expectations({"alpha": sp.IndexedBase("alpha")})["logp"].has(fam.k)


# ---------------------------------------------------------------- matrices

DIM = sp.Symbol("D", integer=True, positive=True)
DIM_VALUE = 3


def concrete_matrix(expr: Any, numbers: dict[str, Any]) -> Any:
    """D → DIM_VALUE, then each MatrixSymbol / Symbol named in ``numbers`` by its value."""
    expr = expr.subs(DIM, DIM_VALUE)
    values = {}
    for name, value in numbers.items():
        if isinstance(value, np.ndarray):
            shape = value.shape if value.ndim == 2 else (value.shape[0], 1)
            values[sp.MatrixSymbol(name, *shape)] = sp.ImmutableMatrix(exact(value))
        else:
            values[sp.Symbol(name)] = exact(value)
    return expr.xreplace(values).doit()


MATRIX_RNG = np.random.default_rng(5)
MATRIX_NUMBERS = {
    "MvNormal": {
        "mean": MATRIX_RNG.normal(size=DIM_VALUE),
        "cov": random_spd(MATRIX_RNG, DIM_VALUE),
        "x": MATRIX_RNG.normal(size=DIM_VALUE),
    },
    "Wishart": {
        "df": DIM_VALUE + 1.7,
        "scale": random_spd(MATRIX_RNG, DIM_VALUE),
        "x": random_spd(MATRIX_RNG, DIM_VALUE),
    },
}


def symbols_for(name: str) -> dict[str, Any]:
    shapes = {
        "mean": (DIM, 1),
        "cov": (DIM, DIM),
        "scale": (DIM, DIM),
        "x": (DIM, 1) if name == "MvNormal" else (DIM, DIM),
    }
    return {
        key: sp.MatrixSymbol(key, *shapes[key]) if key in shapes else sp.Symbol(key) for key in MATRIX_NUMBERS[name]
    }


@pytest.mark.parametrize("name", ["MvNormal", "Wishart"])
@cases([*COMMON, ("valid", lambda f, p, x: f.valid_natural(f.natural_from_standard(p)))])
def test_symbolic_matrix_family_matches_int_size(name: str, label: str, f: Callable) -> None:
    symbols = symbols_for(name)
    numbers = MATRIX_NUMBERS[name]
    params = {key: value for key, value in symbols.items() if key != "x"}
    value = concrete_matrix(f(family(name, DIM), params, symbols["x"]), numbers)
    expected = f(family(name, DIM_VALUE), {key: exact(numbers[key]) for key in params}, exact(numbers["x"]))
    if label == "valid":
        value = value.replace(
            lambda e: isinstance(e, sp.assumptions.assume.AppliedPredicate),
            lambda e: sp.sympify(bool(np.all(np.linalg.eigvalsh(num(sp.ImmutableMatrix(e.arguments[0]).doit())) > 0))),
        )
        assert bool(value) is bool(expected) is True
    else:
        close(value, num(expected))


@pytest.mark.parametrize("name", ["MvNormal", "Wishart"])
def test_symbolic_matrix_moments_and_round_trip(name: str) -> None:
    symbols = symbols_for(name)
    numbers = MATRIX_NUMBERS[name]
    params = {key: value for key, value in symbols.items() if key != "x"}
    symbolic, explicit = family(name, DIM), family(name, DIM_VALUE)
    exact_params = {key: exact(numbers[key]) for key in params}
    for key in symbolic.moment_keys:
        close(
            concrete_matrix(symbolic.expectations(params)[key], numbers), num(explicit.expectations(exact_params)[key])
        )
    back = symbolic.standard_from_natural(symbolic.natural_from_standard(params))
    for key in symbolic.params:
        close(concrete_matrix(back[key], numbers), num(exact_params[key]))
