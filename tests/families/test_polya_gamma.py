"""The Pólya-Gamma family PG(b, c) (Polson, Scott & Windle 2013), q of a logistic link's weight ω.

Checked against PG's definition as an infinite sum of Gammas, ω = (1/2π²) Σ_k g_k / ((k − ½)² + c²/4π²),
g_k ~ Gamma(b, 1), from which the mean is a series and the Laplace transform a product (independent of the
closed forms b tanh(c/2)/(2c) and cosh^{−b}); the ELBO's ω-part, −E[ω]s/2 + H_h[q], must be maximised
exactly at c² = s (the update 19.56 gives), and the kernel's finish must agree with the symbolic family,
stay finite at c = 0 and c → ∞ and be continuous where it switches to the series.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp
from scipy import optimize

from ppvi.codegen.runtime import finish_polya_gamma
from ppvi.families import family
from ppvi.io import posterior

PG = family("PolyaGamma")
POINTS = [(1.0, 0.0), (1.0, 0.3), (1.0, 2.5), (7.0, 0.01), (12.5, 4.0), (3.0, 40.0)]
TERMS = 200_000


def _series_mean(b: float, c: float) -> float:
    k = np.arange(1, TERMS + 1)
    head = np.sum(b / ((k - 0.5) ** 2 + c * c / (4 * math.pi ** 2)))
    return (head + b / TERMS) / (2 * math.pi ** 2)              # the tail Σ_{k>K} 1/k² ≈ 1/K


def _series_log_laplace(b: float, t: float) -> float:
    """log E_{PG(b,0)}[e^{−tω}] = −b Σ_k log(1 + t / (2π²(k − ½)²)) (each g_k's Gamma transform)."""
    k = np.arange(1, TERMS + 1)
    return -b * (np.sum(np.log1p(t / (2 * math.pi ** 2 * (k - 0.5) ** 2))) + t / (2 * math.pi ** 2 * TERMS))


def _value(e) -> float:
    return float(sp.N(e, 30))


@pytest.mark.parametrize(("b", "c"), [p for p in POINTS if p[1] > 0])
def test_the_mean_is_the_series_of_the_definition(b, c):
    assert _value(PG.expectations({"b": b, "c": c})["x"]) == pytest.approx(_series_mean(b, c), rel=1e-6)


@pytest.mark.parametrize(("b", "c"), [p for p in POINTS if p[1] > 0])
def test_the_log_normaliser_is_the_laplace_transform_and_its_gradient_the_mean(b, c):
    eta = {"x": -c * c / 2, "base": b}
    assert _value(PG.log_normaliser(eta)) == pytest.approx(_series_log_laplace(b, c * c / 2), rel=1e-6)
    s = sp.Symbol("s", negative=True)
    grad = sp.diff(PG.log_normaliser({"x": s, "base": b}), s).subs(s, eta["x"])
    assert _value(grad) == pytest.approx(_value(PG.expectations({"b": b, "c": c})["x"]), rel=1e-12)


@pytest.mark.parametrize("b", [1.0, 6.0])
@pytest.mark.parametrize("s", [0.04, 1.0, 30.0])
def test_the_update_maximises_the_elbo_in_q_omega(b, s):
    """L(c) = −E[ω] s/2 + H_h[q] (ω's part of the ELBO when E[ψ²] = s) is largest at c = √s, where it is
    −b log cosh(√s/2): the Jaakkola–Jordan bound's value."""
    def part(c: float) -> float:
        params = {"b": b, "c": c}
        return _value(-PG.expectations(params)["x"] * s / 2 + PG.entropy(params))

    best = optimize.minimize_scalar(lambda c: -part(c), bounds=(1e-6, 50), method="bounded",
                                    options={"xatol": 1e-10})
    assert best.x == pytest.approx(math.sqrt(s), rel=1e-4)
    assert part(math.sqrt(s)) == pytest.approx(-b * math.log(math.cosh(math.sqrt(s) / 2)), rel=1e-12, abs=1e-14)
    assert _value(PG.entropy({"b": b, "c": 1.3})) < 0                # −KL(q ‖ PG(b, 0)) < 0 for c ≠ 0


@pytest.mark.parametrize(("b", "c"), POINTS)
def test_the_kernel_finish_is_the_family(b, c):
    out = finish_polya_gamma(-c * c / 2, b)
    assert out[0] == b and out[1] == pytest.approx(c, rel=1e-15, abs=0) and out[3] == 0.0
    if c > 0:
        params = {"b": sp.Float(b, 30), "c": sp.Float(c, 30)}
        assert out[2] == pytest.approx(_value(PG.expectations(params)["x"]), rel=1e-13)
        assert out[4] == pytest.approx(_value(PG.entropy(params)), rel=1e-9, abs=1e-15)
    else:
        assert out[2] == b / 4 and out[4] == 0.0


def test_the_kernel_finish_is_stable_near_zero_and_far_out():
    below, above = finish_polya_gamma(-(1e-3 * (1 - 1e-12)) ** 2 / 2, 1.0), finish_polya_gamma(-(1e-3) ** 2 / 2, 1.0)
    assert below[2] == pytest.approx(above[2], rel=1e-14)            # the series meets tanh(c/2)/(2c)
    assert below[4] == pytest.approx(above[4], rel=1e-8)             # … and H's closed form
    for c in (1e-300, 1e-8, 1e3, 1e8, 1e150):
        b, c_out, mean, _, h = finish_polya_gamma(-c * c / 2, 2.0)
        assert all(map(math.isfinite, (c_out, mean, h)))
        assert 0 < mean <= 0.5 and h <= 0
    assert finish_polya_gamma(-1e16 / 2, 1.0)[2] == pytest.approx(0.5e-8, rel=1e-12)   # tanh → 1: b/(2c)
    assert all(map(math.isnan, finish_polya_gamma(0.5, 1.0)))        # not a PG: NaN, for the caller to report


def test_draws_have_the_family_mean_and_variance():
    b, c = np.array([1.0, 4.0, 2.0]), np.array([0.0, 1.5, 6.0])
    draws = posterior.sample("PolyaGamma", {"b": b, "c": c}, 20_000, np.random.default_rng(0))
    mean, var = posterior.mean("PolyaGamma", {"b": b, "c": c}), posterior.variance("PolyaGamma", {"b": b, "c": c})
    assert mean == pytest.approx([0.25, 4 * math.tanh(0.75) / 3, 2 * math.tanh(3) / 12], rel=1e-12)
    assert var[0] == pytest.approx(1 / 24)
    assert np.all(np.abs(draws.mean(0) - mean) < 5 * np.sqrt(var / len(draws)))
    assert draws.var(0) == pytest.approx(var, rel=0.05)
