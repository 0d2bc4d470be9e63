"""The numerically stable forms equal the plain ones and do not overflow."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from ppvi.families import family
from ppvi.families.stable import log_sigmoid, logsumexp, sigmoid, softplus, stable_logsumexp, stable_softplus

z = sp.Symbol("z")


@pytest.mark.parametrize("value", [-700.0, -30.0, -1.5, 0.0, 0.7, 30.0, 700.0])
def test_stable_softplus(value: float) -> None:
    expected = np.logaddexp(0.0, value)
    assert float(stable_softplus(z).subs(z, value)) == pytest.approx(expected, rel=1e-14)
    assert float(sp.N(softplus(z).subs(z, value), 30)) == pytest.approx(expected, rel=1e-14)
    assert float(sp.N(log_sigmoid(z).subs(z, value), 30)) == pytest.approx(-np.logaddexp(0.0, -value), rel=1e-14)
    assert float(sp.N(sigmoid(z).subs(z, value), 30)) == pytest.approx(np.exp(-np.logaddexp(0.0, -value)), rel=1e-14)


def test_stable_forms_survive_float_evaluation() -> None:
    big = np.array([1000.0, -1000.0, 3.0])
    softplus_np = sp.lambdify(z, stable_softplus(z), "numpy")
    np.testing.assert_allclose(softplus_np(big), np.logaddexp(0.0, big), rtol=1e-14)
    terms = sp.symbols("t0:3")
    lse = sp.lambdify(terms, stable_logsumexp(terms), "numpy")
    with np.errstate(over="raise"):
        assert lse(1000.0, 999.0, -5.0) == pytest.approx(np.logaddexp.reduce([1000.0, 999.0, -5.0]), rel=1e-14)


def test_families_use_softplus_and_logsumexp() -> None:
    assert family("Bernoulli").log_normaliser({"x": z}) == softplus(z)
    eta = sp.Matrix(sp.symbols("e0:3"))
    assert family("Categorical", 3).log_normaliser({"onehot": eta}) == logsumexp(list(eta))
