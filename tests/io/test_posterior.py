"""Each family of q as a law: draws against q's moments, log densities and quantiles against scipy.stats."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ppvi.io import posterior

RNG = np.random.default_rng(7)
N = 40_000


def _spd(d: int, scale: float) -> np.ndarray:
    a = RNG.normal(size=(d, d))
    return scale * (a @ a.T + d * np.eye(d)) / d


# Each case: family, standard parameters over a plate of 2 or 3 (small and extreme values included).
CASES = {
    "Normal": {"mean": np.array([0.0, -3.0, 1e3]), "sd": np.array([1.0, 0.01, 50.0])},
    "MvNormal": {"mean": np.array([[0.0, 1.0], [5.0, -2.0]]), "cov": np.stack([_spd(2, 1.0), _spd(2, 0.01)])},
    "Gamma": {"shape": np.array([0.3, 2.0, 500.0]), "rate": np.array([1.0, 0.1, 50.0])},
    "Beta": {"a": np.array([0.2, 2.0, 300.0]), "b": np.array([0.5, 5.0, 100.0])},
    "Bernoulli": {"p": np.array([0.01, 0.5, 0.97])},
    "Categorical": {"p": np.array([[0.2, 0.5, 0.3], [0.0, 0.999, 0.001]])},
    "Dirichlet": {"alpha": np.array([[0.05, 0.5, 2.0, 10.0], [100.0, 50.0, 1.0, 0.01]])},
    "Wishart": {"df": np.array([4.0, 30.0]), "scale": np.stack([_spd(3, 0.5), _spd(3, 0.02)])},
    "point": {"value": np.array([1.5, -2.0])},
}


def _scipy(family: str, p: dict, i: int):
    """scipy.stats' law of element i of the plate."""
    if family == "Normal":
        return stats.norm(p["mean"][i], p["sd"][i])
    if family == "MvNormal":
        return stats.multivariate_normal(p["mean"][i], p["cov"][i])
    if family == "Gamma":
        return stats.gamma(p["shape"][i], scale=1 / p["rate"][i])
    if family == "Beta":
        return stats.beta(p["a"][i], p["b"][i])
    if family == "Bernoulli":
        return stats.bernoulli(p["p"][i])
    if family == "Dirichlet":
        return stats.dirichlet(p["alpha"][i])
    if family == "Wishart":
        return stats.wishart(p["df"][i], p["scale"][i])
    raise AssertionError(family)


@pytest.fixture(scope="module")
def draws():
    rng = np.random.default_rng(2024)
    return {f: posterior.sample(f, p, N, rng) for f, p in CASES.items()}


@pytest.mark.parametrize("family", list(CASES))
def test_draws_have_qs_mean_and_variance(family, draws):
    """Monte Carlo: the mean of N draws is within 5 standard errors of E_q, their variance within 5 standard
    errors of Var_q (the standard error of a variance from the fourth central moment of the draws)."""
    x, p = draws[family], CASES[family]
    assert x.shape == (N, *posterior.value_shape(family, p))
    if family == "Categorical":
        onehot = x[..., None] == np.arange(p["p"].shape[-1])
        m = onehot.mean(0)
        np.testing.assert_array_less(np.abs(m - p["p"]), 5 * np.sqrt(p["p"] * (1 - p["p"]) / N) + 1e-12)
        return
    want_mean, want_var = posterior.mean(family, p), posterior.variance(family, p)
    err = 5 * np.sqrt(want_var / N) + 1e-12
    np.testing.assert_array_less(np.abs(x.mean(0) - want_mean), err)
    centred = x - x.mean(0)
    m4 = (centred ** 4).mean(0)
    var_err = 5 * np.sqrt(np.maximum(m4 - want_var ** 2, 0) / N) + 1e-12
    np.testing.assert_array_less(np.abs(x.var(0) - want_var), var_err)


@pytest.mark.parametrize("family", [f for f in CASES if f not in ("Categorical", "point")])
def test_log_density_of_a_draw_is_scipys(family, draws):
    p = CASES[family]
    x = draws[family][:5]
    want = np.zeros(5)
    for i in range(len(next(iter(p.values())))):
        law = _scipy(family, p, i)
        xi = x[:, i]
        if family == "Wishart":
            want += [law.logpdf(w) for w in xi]
        elif family == "Dirichlet":
            want += [law.logpdf(w) for w in xi]
        elif family == "Bernoulli":
            want += law.logpmf(xi)
        else:
            want += law.logpdf(xi)
    np.testing.assert_allclose(posterior.log_density(family, p, x), want, rtol=1e-9, atol=1e-9)


def test_categorical_log_density_is_log_p_of_the_label():
    p = CASES["Categorical"]
    x = np.array([[0, 1], [2, 2]])
    want = [np.log(0.2) + np.log(0.999), np.log(0.3) + np.log(0.001)]
    np.testing.assert_allclose(posterior.log_density("Categorical", p, x), want)


def test_categorical_draws_never_take_a_label_of_probability_zero(draws):
    assert not (draws["Categorical"][:, 1] == 0).any()


def test_dirichlet_draws_with_tiny_alpha_stay_on_the_simplex():
    """α = 10⁻³ underflows every Gamma(α) draw to 0 (0/0 when normalised); log space keeps them."""
    alpha = np.full((3, 50), 1e-3)
    x = posterior.sample("Dirichlet", {"alpha": alpha}, 200, np.random.default_rng(1))
    assert np.isfinite(x).all() and np.allclose(x.sum(-1), 1)
    b = posterior.sample("Beta", {"a": np.array([1e-3]), "b": np.array([1e-3])}, 200, np.random.default_rng(1))
    assert np.isfinite(b).all()


@pytest.mark.parametrize("prob", [0.05, 0.5, 0.975])
@pytest.mark.parametrize("family", ["Normal", "MvNormal", "Gamma", "Beta", "Bernoulli", "Dirichlet"])
def test_quantiles_are_scipys(family, prob):
    p = CASES[family]
    got = posterior.quantile(family, p, prob)
    for i in range(got.shape[0]):
        if family == "MvNormal":
            want = stats.norm(p["mean"][i], np.sqrt(np.diag(p["cov"][i]))).ppf(prob)
        elif family == "Dirichlet":
            a = p["alpha"][i]
            want = stats.beta(a, a.sum() - a).ppf(prob)
        else:
            want = _scipy(family, p, i).ppf(prob)
        np.testing.assert_allclose(got[i], want, rtol=1e-10)


def test_wishart_quantiles_diagonal_exact_off_diagonal_by_draws():
    p = CASES["Wishart"]
    lo, hi = (posterior.quantile("Wishart", p, x) for x in (0.05, 0.95))
    for i in range(2):
        diag = np.diag(p["scale"][i])
        want = stats.chi2(p["df"][i]).ppf([0.05, 0.95])[:, None] * diag
        np.testing.assert_allclose([np.diag(lo[i]), np.diag(hi[i])], want, rtol=1e-10)
        w = stats.wishart(p["df"][i], p["scale"][i]).rvs(size=20_000, random_state=3)
        q = np.quantile(w[:, 0, 1], [0.05, 0.95])
        sd = np.sqrt(posterior.variance("Wishart", p)[i, 0, 1])
        np.testing.assert_allclose([lo[i, 0, 1], hi[i, 0, 1]], q, atol=0.1 * sd)


def test_wishart_variance_matches_scipys():
    p = CASES["Wishart"]
    for i in range(2):
        np.testing.assert_allclose(posterior.variance("Wishart", p)[i], stats.wishart(p["df"][i], p["scale"][i]).var(),
                                   rtol=1e-12)
