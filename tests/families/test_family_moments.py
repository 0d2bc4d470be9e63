"""Expected statistics against closed forms computed independently with
scipy.special, against numerical integration, and against Monte Carlo."""

from __future__ import annotations

import numpy as np
import pytest
from family_cases import CASES, EXPONENTIAL, SEEDS, close, exact_params, num
from scipy import special, stats

POINTS = [(name, seed) for name in EXPONENTIAL for seed in SEEDS]


def moments(name: str, seed: int) -> tuple[dict, dict]:
    case = CASES[name]
    params = case.point(seed)[0]
    return params, case.family.expectations(exact_params(params))


@pytest.mark.parametrize("seed", SEEDS)
def test_normal_moments(seed: int) -> None:
    p, m = moments("Normal", seed)
    dist = stats.norm(p["mean"], p["sd"])
    close(m["x"], dist.mean())
    close(m["x2"], dist.moment(2))


@pytest.mark.parametrize("seed", SEEDS)
def test_gamma_moments(seed: int) -> None:
    p, m = moments("Gamma", seed)
    close(m["x"], p["shape"] / p["rate"])
    close(m["logx"], special.digamma(p["shape"]) - np.log(p["rate"]))
    close(m["logx"], stats.gamma(p["shape"], scale=1 / p["rate"]).expect(np.log), rtol=1e-7)


@pytest.mark.parametrize("seed", SEEDS)
def test_beta_moments(seed: int) -> None:
    p, m = moments("Beta", seed)
    a, b = p["a"], p["b"]
    close(m["x"], stats.beta(a, b).mean())
    close(m["logx"], special.digamma(a) - special.digamma(a + b))
    close(m["log1mx"], special.digamma(b) - special.digamma(a + b))
    close(m["logx"], stats.beta(a, b).expect(np.log), rtol=1e-7)
    close(m["log1mx"], stats.beta(a, b).expect(lambda x: np.log1p(-x)), rtol=1e-7)


@pytest.mark.parametrize("seed", SEEDS)
def test_dirichlet_moments_from_beta_marginals(seed: int) -> None:
    """π_k ~ Beta(α_k, α₀ − α_k) under Dirichlet(α)."""
    p, m = moments("Dirichlet", seed)
    alpha = p["alpha"]
    close(m["x"], stats.dirichlet(alpha).mean())
    marginal_logs = [stats.beta(a, alpha.sum() - a).expect(np.log) for a in alpha]
    close(m["logp"], marginal_logs, rtol=1e-7)


@pytest.mark.parametrize("seed", SEEDS)
def test_mvnormal_moments(seed: int) -> None:
    p, m = moments("MvNormal", seed)
    dist = stats.multivariate_normal(p["mean"], p["cov"])
    close(m["x"], dist.mean)
    close(m["xxT"], dist.cov + np.outer(dist.mean, dist.mean))


@pytest.mark.parametrize("seed", SEEDS)
def test_wishart_moments(seed: int) -> None:
    """E[log|X|] = Σ_{i=1}^{D} ψ((ν + 1 − i)/2) + D log 2 + log|W| (Bartlett)."""
    p, m = moments("Wishart", seed)
    df, scale = p["df"], p["scale"]
    dim = scale.shape[0]
    close(m["X"], stats.wishart(df, scale).mean())
    expected_logdet = (
        sum(special.digamma((df + 1 - i) / 2) for i in range(1, dim + 1))
        + dim * np.log(2)
        + np.linalg.slogdet(scale)[1]
    )
    close(m["logdet"], expected_logdet)


@pytest.mark.parametrize("seed", SEEDS)
def test_discrete_and_exponential_moments(seed: int) -> None:
    for name, key in [("Bernoulli", "x"), ("Poisson", "x"), ("Exponential", "x")]:
        case = CASES[name]
        params = case.point(seed)[0]
        close(case.family.expectations(exact_params(params))[key], case.scipy(params).mean())
    p, m = moments("Categorical", seed)
    close(m["onehot"], p["p"])
    p, m = moments("Exponential", seed)
    close(m["logx"], stats.expon(scale=1 / p["rate"]).expect(np.log), rtol=1e-7)


SAMPLE_STATISTICS = {
    "x": lambda s: s,
    "x2": lambda s: s**2,
    "logx": np.log,
    "log1mx": lambda s: np.log1p(-s),
    "onehot": lambda s: s,
    "logp": np.log,
    "xxT": lambda s: np.einsum("ni,nj->nij", s, s),
    "logdet": lambda s: np.linalg.slogdet(s)[1],
    "X": lambda s: s,
}


@pytest.mark.parametrize("name", EXPONENTIAL)
def test_moments_agree_with_monte_carlo(name: str) -> None:
    """Every moment key against the sample average of T over scipy draws (5 standard errors)."""
    case = CASES[name]
    params = case.point(7)[0]
    samples = np.asarray(case.scipy(params).rvs(size=40_000, random_state=np.random.default_rng(7)), dtype=float)
    moments_ = case.family.expectations(exact_params(params))
    assert set(moments_) == set(case.family.moment_keys)
    for key, expected in moments_.items():
        values = SAMPLE_STATISTICS[key](samples)
        standard_error = values.std(axis=0) / np.sqrt(len(values))
        assert np.all(
            np.abs(values.mean(axis=0) - np.reshape(num(expected), values.shape[1:])) <= 5 * standard_error + 1e-12
        ), key
