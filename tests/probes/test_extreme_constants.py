"""Valid but extreme constants and data (issue 21, items 8 and 9): a fit whose every quantity is a float64 gives that
fit, never an ELBO of ±∞ reported as an internal fault; a model that truly leaves double precision is the
user's positioned error, exit 2."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import run_cli

# The fuzz's find: five components under a prior of variance 10³⁰⁸, only the first one seen by the data.
# The ELBO's −½·10⁻³⁰⁸·Σ_k ⟨g0[k]²⟩ summed five moments near 10³⁰⁸ before scaling them: ∞, then "the ELBO
# became -inf", exit 1.
VAST = """\
dim K = 5
dim N
data y[N]
for k in K:
    g0[k] ~ Normal(2.5, variance = 1e308)
for n in N:
    y[n] ~ Normal(g0[0], sd = 1)
"""
V, M0 = 1e308, 2.5


def test_a_prior_of_variance_1e308_fits_to_the_exact_posterior_and_evidence(tmp_path, capsys):
    """q(g0[0]) is the conjugate posterior N(m, 1/λ), λ = 1/v + N, m = (m0/v + Σy)/λ; the other four keep their
    prior (KL 0); so the ELBO is log p(y), written by Bayes' rule at m: log p(y | m) + log p(m) − log p(m | y)."""
    y = np.random.default_rng(1).normal(0.3, 1.0, 12)
    (tmp_path / "vast.ppvi").write_text(VAST)
    np.savez(tmp_path / "vast.npz", y=y)
    code, _, err = run_cli(["run", tmp_path / "vast.ppvi", "--quiet", "--out", tmp_path / "r.json"], capsys)
    assert code == 0, err
    r = json.loads((tmp_path / "r.json").read_text())

    n = len(y)
    lam = 1 / V + n
    m = (M0 / V + y.sum()) / lam
    log_lik = -0.5 * n * math.log(2 * math.pi) - 0.5 * ((y - m) ** 2).sum()
    log_prior = -0.5 * math.log(2 * math.pi) - 0.5 * math.log(V) - (m - M0) ** 2 / (2 * V)
    log_post = 0.5 * math.log(lam / (2 * math.pi))
    assert r["elbo"] == pytest.approx(log_lik + log_prior - log_post, rel=1e-12)
    q = r["q"]["g0"]
    np.testing.assert_allclose(q["mean"], [m] + [M0] * 4, rtol=1e-12)
    np.testing.assert_allclose(q["sd"], [lam ** -0.5] + [V ** 0.5] * 4, rtol=1e-12)


def test_a_tiny_factor_multiplies_each_term_of_the_sum_it_scales():
    """The code generator's rewrite on its own: c·Σ_i f(i) is Σ_i c·f(i) when |c| < TINY, also through nested
    sums; an ordinary factor stays outside (the loop keeps its one multiplication)."""
    import sympy as sp

    from ppvi.codegen.rewrite import TINY, scaled_into_sums

    i, j = sp.Idx("i", 5), sp.Idx("j", 3)
    x = sp.IndexedBase("x")
    tiny = sp.Float(TINY / 10)
    inner = sp.Sum(x[i, j], (j, 0, 2))
    got = scaled_into_sums(tiny * sp.Sum(inner, (i, 0, 4)) + 2)
    assert got == sp.Sum(sp.Sum(tiny * x[i, j], (j, 0, 2)), (i, 0, 4)) + 2
    ordinary = sp.Float(-0.5) * sp.Sum(x[i, 0], (i, 0, 4))
    assert scaled_into_sums(ordinary) == ordinary
    for e in (tiny * sp.Sum(x[i, 0], (i, 0, 4)), tiny * sp.Sum(inner, (i, 0, 4))):   # the same value, exactly
        values = {x[a, b]: (a + 1) * 10.0 ** (300 + b) for a in range(5) for b in range(3)}
        assert float(scaled_into_sums(e).doit().xreplace(values)) == pytest.approx(float(e.doit().xreplace(values)))


# (a name starting REFUSED_: the harness checks that derive refuses it with a PPVIError)
REFUSED_OUTSIDE_DOUBLES = "dim N\ndata y[N]\ng ~ Normal(1e300, sd = 1)\nfor n in N:\n    y[n] ~ Normal(g, sd = 1)\n"


def test_a_model_outside_double_precision_is_a_positioned_error(tmp_path, capsys):
    """A prior mean of 10³⁰⁰ under sd 1 puts 10⁶⁰⁰ into the log density: not representable, so the constant is
    named with its position, exit 2 (never exit 1)."""
    (tmp_path / "m.ppvi").write_text(REFUSED_OUTSIDE_DOUBLES)
    np.savez(tmp_path / "m.npz", y=np.ones(3))
    code, _, err = run_cli(["run", tmp_path / "m.ppvi", "--quiet"], capsys)
    assert code == 2, err
    assert err.startswith(f"{tmp_path / 'm.ppvi'}:3:12: error:") and "double precision" in err


@pytest.mark.parametrize("scale", [1e154, 1e200])
def test_data_whose_squares_pass_double_precision_are_the_users_error(tmp_path, capsys, scale):
    """Item 8: data × 10¹⁵⁴ and beyond (the same model as above: no second compilation).  Their sums of squares
    (the statistics Σ y²) are not floats, and the ELBO became ±∞ or NaN: "internal error", exit 1, after numpy's
    overflow warnings on stderr.  Now the data's declaration is named, exit 2, and nothing else is printed."""
    import warnings

    (tmp_path / "vast.ppvi").write_text(VAST)
    np.savez(tmp_path / "vast.npz", y=np.random.default_rng(1).normal(0.3, 1.0, 12) * scale)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)         # numpy's overflow warnings would be printed
        code, _, err = run_cli(["run", tmp_path / "vast.ppvi", "--quiet"], capsys)
    assert code == 2, err
    assert err.startswith(f"{tmp_path / 'vast.ppvi'}:3:6: error: data `y` are too large for double precision")
    assert "hint: rescale the data" in err
