"""The derived ELBO (19.7) against closed-form evidence, and under coordinate ascent."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from helpers import SEED_19_57, derivation
from ppvi.derive.numeric import Env
from reference import elbo, moments, sweep, update

RNG = np.random.default_rng(19)


def test_beta_bernoulli_elbo_is_the_log_evidence():
    d = derivation("beta_bernoulli")
    y = RNG.integers(0, 2, size=25)
    a, b = 2.0, 3.0
    env = Env({"y": y, "a": a, "b": b}, {}, {"N": len(y)})
    update(d, "theta", env)
    s = y.sum()
    log_evidence = special.betaln(a + s, b + len(y) - s) - special.betaln(a, b)
    assert elbo(d, env) == pytest.approx(log_evidence, rel=1e-10, abs=1e-10)


def test_gamma_poisson_elbo_is_the_log_evidence():
    d = derivation("gamma_poisson")
    y = RNG.poisson(4.0, size=30)
    a, b = 2.0, 0.5
    env = Env({"discoveries": y, "a": a, "b": b}, {}, {"N": len(y)})
    update(d, "rate", env)
    S, N = y.sum(), len(y)
    log_evidence = (a * np.log(b) - special.gammaln(a) + special.gammaln(a + S) - (a + S) * np.log(b + N)
                    - special.gammaln(y + 1).sum())
    assert elbo(d, env) == pytest.approx(log_evidence, rel=1e-10)


def test_dirichlet_categorical_elbo_is_the_log_evidence():
    d = derivation("dirichlet_categorical")
    K = 5
    c = RNG.integers(0, K, size=40)
    alpha = RNG.random(K) + 0.5
    env = Env({"c": c, "alpha": alpha}, {}, {"N": len(c), "K": K})
    update(d, "pi", env)
    counts = np.bincount(c, minlength=K)
    log_evidence = (special.gammaln(alpha.sum()) - special.gammaln(alpha.sum() + len(c))
                    + np.sum(special.gammaln(alpha + counts) - special.gammaln(alpha)))
    assert elbo(d, env) == pytest.approx(log_evidence, rel=1e-10)


KNOWN_PRECISION = """
dim N
const m0 = 1.5
const s0 = 2.0
const tau = 0.8
data x[N]
mu ~ Normal(m0, sd = s0)
for n in N:
    x[n] ~ Normal(mu, precision = tau)
"""


def test_normal_with_known_precision_elbo_is_the_log_evidence():
    d = derivation(KNOWN_PRECISION)
    x = RNG.normal(1.0, 1.2, size=9)
    env = Env({"x": x, "m0": 1.5, "s0": 2.0, "tau": 0.8}, {}, {"N": len(x)})
    update(d, "mu", env)
    cov = 2.0 ** 2 * np.ones((9, 9)) + np.eye(9) / 0.8
    log_evidence = stats.multivariate_normal(np.full(9, 1.5), cov).logpdf(x)
    assert elbo(d, env) == pytest.approx(log_evidence, rel=1e-10)


def test_seed_gaussian_converges_to_exact_means_and_19_66_sds():
    d = derivation(SEED_19_57)
    w, v = np.array([1.0, -0.5]), 1.3
    env = Env({"w": w, "v": v}, {("h", "x"): np.zeros(2), ("h", "x2"): np.ones(2)}, {"H": 2})
    trace = []
    for _ in range(200):
        sweep(d, env)
        trace.append(elbo(d, env))
    # Exact posterior of h: precision I + wwᵀ, mean (I + wwᵀ)⁻¹ w v.
    exact_mean = np.linalg.solve(np.eye(2) + np.outer(w, w), w * v)
    assert env.arrays["mean(h)"] == pytest.approx(exact_mean, abs=1e-10)
    assert env.arrays["sd(h)"] == pytest.approx((1 + w ** 2) ** -0.5)
    assert np.all(np.diff(trace) >= -1e-12)
    log_evidence = stats.norm(0, np.sqrt(1 + w @ w)).logpdf(v)
    assert trace[-1] < log_evidence


def test_mixture_elbo_never_decreases_under_sequential_updates():
    d = derivation("gmm_1d")
    x = np.concatenate([RNG.normal(-2, 0.5, 30), RNG.normal(3, 1.0, 30)])
    K = 3
    r = np.random.default_rng(0).dirichlet(np.ones(K), size=len(x))
    env = Env({"eruptions": x, "alpha0": np.full(K, 1.0), "m0": 0.0},
              {("z", "onehot"): r, ("tau", "x"): np.ones(K), ("tau", "logx"): np.zeros(K)}, {"N": len(x), "K": K})
    env.arrays["p(z)"] = r
    # Start from the responsibilities: global q's first, then z.
    for v in ("pi", "mu", "tau"):
        update(d, v, env)
    trace = [elbo(d, env)]
    for _ in range(8):
        for v in ("z", "pi", "mu", "tau"):
            update(d, v, env)
            trace.append(elbo(d, env))
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[:-1])), np.diff(trace)
    assert trace[-1] > trace[0]
