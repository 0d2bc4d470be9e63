"""Hierarchical and conjugate corpus models against hand-written mean-field updates, closed-form
evidence and quadrature of the exact posterior.

Each fixed-point test applies one more sweep of the updates written here from the textbook to
ppvi's converged q and asserts nothing moves; the quadratures integrate the exact posterior
(the latents with conjugate conditionals integrated out analytically), which bounds the ELBO.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, special, stats

from corpus.registry import case
from corpus.support import data, fit, fitted, gamma_mean, normal_m2, require

RTOL = 1e-5


# ---------------------------------------------------------------- eight schools (BDA 5.5)

@pytest.fixture(scope="module")
def schools():
    return fitted("eight_schools",
                  "mu ~ Normal(m0, sd = s0)", "prec ~ Gamma(1, 100)", "const s0 = 100.0", "const m0 = 0.0",
                  "theta[j] ~ Normal(mu, precision = prec)", "y[j] ~ Normal(theta[j], sd = sigma[j])")


def test_eight_schools_is_a_fixed_point(schools):
    _, r, d = schools
    y, s2 = d["y"], d["sigma"] ** 2
    q = r.q
    Ep, Emu, Emu2 = gamma_mean(q["prec"]), float(q["mu"]["mean"]), float(normal_m2(q["mu"]))
    th_prec = Ep + 1 / s2
    th_mean = (Ep * Emu + y / s2) / th_prec
    mu_prec = 1 / 100.0 ** 2 + len(y) * Ep
    mu_mean = Ep * np.sum(q["theta"]["mean"]) / mu_prec
    Eth, Eth2 = q["theta"]["mean"], normal_m2(q["theta"])
    rate = 100.0 + 0.5 * np.sum(Eth2 - 2 * Eth * Emu + Emu2)
    assert q["theta"]["mean"] == pytest.approx(th_mean, rel=RTOL)
    assert q["theta"]["sd"] == pytest.approx(th_prec ** -0.5, rel=RTOL)
    assert float(q["mu"]["mean"]) == pytest.approx(mu_mean, rel=RTOL)
    assert float(q["mu"]["sd"]) == pytest.approx(mu_prec ** -0.5, rel=RTOL)
    assert float(q["prec"]["shape"]) == pytest.approx(1 + len(y) / 2, rel=1e-12)
    assert float(q["prec"]["rate"]) == pytest.approx(rate, rel=RTOL)


def _schools_log_marginal(y, s2, prec):
    """log p(y | prec): theta and mu integrated out, y ~ N(0, diag(s2 + 1/prec) + 100^2 11^T)."""
    cov = np.diag(s2 + 1 / prec) + 100.0 ** 2
    return stats.multivariate_normal(np.zeros(len(y)), cov).logpdf(y)


def test_eight_schools_elbo_is_below_the_log_evidence_by_quadrature(schools):
    _, r, d = schools
    y, s2 = d["y"], d["sigma"] ** 2
    prior = stats.gamma(1.0, scale=1 / 100.0)

    def integrand(u, shift):                  # over u = log prec (Jacobian e^u)
        p = np.exp(u)
        return np.exp(prior.logpdf(p) + u + _schools_log_marginal(y, s2, p) - shift)

    grid = np.linspace(-15, 5, 401)
    shift = max(prior.logpdf(np.exp(u)) + u + _schools_log_marginal(y, s2, np.exp(u)) for u in grid)
    val, err = integrate.quad(integrand, -30, 12, args=(shift,), points=[-8, -4, 0], limit=200)
    log_evidence = shift + np.log(val)
    assert r.elbo <= log_evidence + 1e-9
    assert r.elbo > log_evidence - 1.0        # KL(q || p) of a mean field on 10 latents: small, not huge
    # the posterior mean of the school effects, exactly: E[theta_j | y] = E_prec[shrunk estimate]
    def post_mean(p):
        v = s2 + 1 / p
        mu_hat = (np.sum(y / v)) / (np.sum(1 / v) + 1 / 100.0 ** 2)
        return (p * mu_hat + y / s2) / (p + 1 / s2)
    w = np.array([integrand(u, shift) for u in grid])
    exact = (w[:, None] * np.array([post_mean(np.exp(u)) for u in grid])).sum(0) / w.sum()
    assert r.q["theta"]["mean"] == pytest.approx(exact, abs=2.0)   # points on the SAT scale (sd 9-18)


# ---------------------------------------------------------------- one-way random effects

@pytest.fixture(scope="module")
def groups():
    return fitted("hier_normal",
                  "mu ~ Normal(0, sd = 100)", "tau_theta ~ Gamma(1, 1)", "tau_y ~ Gamma(1, 1)",
                  "theta[j] ~ Normal(mu, precision = tau_theta)", "y[n] ~ Normal(theta[group[n]], precision = tau_y)")


def test_hier_normal_is_a_fixed_point(groups):
    _, r, d = groups
    g, y = d["group"], d["y"]
    q = r.q
    J = len(q["theta"]["mean"])
    n_j = np.bincount(g, minlength=J)
    s_j = np.bincount(g, weights=y, minlength=J)
    Et, Ey = gamma_mean(q["tau_theta"]), gamma_mean(q["tau_y"])
    Emu, Emu2 = float(q["mu"]["mean"]), float(normal_m2(q["mu"]))
    prec = Et + n_j * Ey
    mean = (Et * Emu + Ey * s_j) / prec
    Eth, Eth2 = q["theta"]["mean"], normal_m2(q["theta"])
    mu_prec = 1e-4 + J * Et
    assert Eth == pytest.approx(mean, rel=RTOL)
    assert q["theta"]["sd"] == pytest.approx(prec ** -0.5, rel=RTOL)
    assert float(q["mu"]["mean"]) == pytest.approx(Et * Eth.sum() / mu_prec, rel=RTOL)
    assert float(q["tau_theta"]["rate"]) == pytest.approx(1 + 0.5 * np.sum(Eth2 - 2 * Eth * Emu + Emu2), rel=RTOL)
    assert float(q["tau_y"]["rate"]) == pytest.approx(1 + 0.5 * np.sum(y ** 2 - 2 * y * Eth[g] + Eth2[g]), rel=RTOL)


def test_hier_normal_recovers_the_planted_group_means(groups):
    from corpus.make_data import hier_normal

    _, r, _ = groups
    truth = hier_normal()[1]
    z = (r.q["theta"]["mean"] - truth["theta"]) / r.q["theta"]["sd"]      # each within 4 posterior sds
    assert np.abs(z).max() < 4
    assert gamma_mean(r.q["tau_y"]) == pytest.approx(1.0, rel=0.2)


# ---------------------------------------------------------------- varying intercepts and slopes

@pytest.fixture(scope="module")
def radon():
    return fitted("multilevel_regression",
                  "mu_a ~ Normal(0, sd = 10)", "mu_b ~ Normal(0, sd = 10)", "tau_a ~ Gamma(1, 1)",
                  "tau_b ~ Gamma(1, 1)", "tau_y ~ Gamma(1, 1)", "a[j] ~ Normal(mu_a, precision = tau_a)",
                  "b[j] ~ Normal(mu_b, precision = tau_b)",
                  "y[n] ~ Normal(a[county[n]] + b[county[n]] * x[n], precision = tau_y)")


def test_multilevel_regression_is_a_fixed_point(radon):
    _, r, d = radon
    g, x, y = d["county"], d["x"].astype(float), d["y"]
    q = r.q
    J = len(q["a"]["mean"])
    Ea, Ea2, Eb, Eb2 = q["a"]["mean"], normal_m2(q["a"]), q["b"]["mean"], normal_m2(q["b"])
    Ety, Eta, Etb = gamma_mean(q["tau_y"]), gamma_mean(q["tau_a"]), gamma_mean(q["tau_b"])
    Ema, Emb = float(q["mu_a"]["mean"]), float(q["mu_b"]["mean"])
    cnt = lambda w: np.bincount(g, weights=w, minlength=J)          # noqa: E731
    a_prec = Eta + Ety * cnt(np.ones_like(x))
    a_mean = (Eta * Ema + Ety * cnt(y - Eb[g] * x)) / a_prec
    b_prec = Etb + Ety * cnt(x ** 2)
    b_mean = (Etb * Emb + Ety * cnt(x * (y - Ea[g]))) / b_prec
    resid2 = y ** 2 + Ea2[g] + x ** 2 * Eb2[g] - 2 * y * Ea[g] - 2 * y * x * Eb[g] + 2 * x * Ea[g] * Eb[g]
    assert Ea == pytest.approx(a_mean, rel=RTOL, abs=1e-8)
    assert q["a"]["sd"] == pytest.approx(a_prec ** -0.5, rel=RTOL)
    assert Eb == pytest.approx(b_mean, rel=RTOL, abs=1e-8)
    assert q["b"]["sd"] == pytest.approx(b_prec ** -0.5, rel=RTOL)
    assert Ema == pytest.approx(Eta * Ea.sum() / (0.01 + J * Eta), rel=RTOL)
    assert Emb == pytest.approx(Etb * Eb.sum() / (0.01 + J * Etb), rel=RTOL)
    assert float(q["tau_a"]["rate"]) == pytest.approx(
        1 + 0.5 * np.sum(Ea2 - 2 * Ea * Ema + normal_m2(q["mu_a"])), rel=RTOL)
    assert float(q["tau_y"]["rate"]) == pytest.approx(1 + 0.5 * resid2.sum(), rel=RTOL)


def test_multilevel_regression_recovers_the_planted_population(radon):
    from corpus.make_data import examples

    _, r, _ = radon
    truth = examples.multilevel_regression()[1]
    q = r.q
    assert float(q["mu_a"]["mean"]) == pytest.approx(truth["mu_a"], abs=0.2)
    assert float(q["mu_b"]["mean"]) == pytest.approx(truth["mu_b"], abs=0.2)
    assert gamma_mean(q["tau_y"]) ** -0.5 == pytest.approx(truth["sd_y"], rel=0.1)
    assert np.corrcoef(q["a"]["mean"], truth["a"])[0, 1] > 0.8


# ---------------------------------------------------------------- pumps (Gelfand & Smith 1990)

ALPHA, C, D = 1.802, 0.1, 1.0


@pytest.fixture(scope="module")
def pumps():
    return fitted("hier_gamma_poisson",
                  "const alpha = 1.802", "const c = 0.1", "const d = 1.0", "beta ~ Gamma(c, d)",
                  "lam[i] ~ Gamma(alpha, beta)", "x[i] ~ Poisson(lam[i] * t[i])")


def test_pumps_is_a_fixed_point(pumps):
    _, r, d = pumps
    x, t = d["x"], d["t"]
    q = r.q
    Eb = gamma_mean(q["beta"])
    assert q["lam"]["shape"] == pytest.approx(ALPHA + x, rel=1e-10)
    assert q["lam"]["rate"] == pytest.approx(Eb + t, rel=RTOL)
    assert float(q["beta"]["shape"]) == pytest.approx(C + len(x) * ALPHA, rel=1e-10)
    assert float(q["beta"]["rate"]) == pytest.approx(D + np.sum(gamma_mean(q["lam"])), rel=RTOL)


def _pumps_log_joint_beta(beta, x, t):
    """log p(beta) + log p(x | beta), each lam integrated out (a negative binomial in x)."""
    lp = C * np.log(D) - special.gammaln(C) + (C - 1) * np.log(beta) - D * beta      # Gamma(c, d) prior
    return lp + np.sum(ALPHA * np.log(beta) + special.gammaln(ALPHA + x) - special.gammaln(ALPHA)
                       - special.gammaln(x + 1) + x * np.log(t) - (ALPHA + x) * np.log(beta + t))


def test_pumps_against_the_exact_posterior_by_quadrature(pumps):
    _, r, d = pumps
    x, t = d["x"], d["t"]
    grid = np.linspace(-6, 4, 2001)                          # u = log beta
    lj = np.array([_pumps_log_joint_beta(np.exp(u), x, t) + u for u in grid])
    shift = lj.max()
    val, _ = integrate.quad(lambda u: np.exp(_pumps_log_joint_beta(np.exp(u), x, t) + u - shift), -30, 10,
                            points=[-2, 0, 2], limit=200)
    log_evidence = shift + np.log(val)
    assert r.elbo <= log_evidence + 1e-9
    assert r.elbo > log_evidence - 0.5
    w = np.exp(lj - shift)
    beta = np.exp(grid)
    exact_lam = (w[:, None] * (ALPHA + x) / (beta[:, None] + t)).sum(0) / w.sum()
    exact_beta = (w * beta).sum() / w.sum()
    # mean field keeps E[lam_i] within a few per cent of the exact posterior mean here
    assert gamma_mean(r.q["lam"]) == pytest.approx(exact_lam, rel=0.05)
    assert float(gamma_mean(r.q["beta"])) == pytest.approx(exact_beta, rel=0.1)


# ---------------------------------------------------------------- Normal-Gamma, PRML 10.1.3

@pytest.fixture(scope="module")
def coupled():
    c, r, d = fitted("normal_gamma_coupled",
                     "const mu0 = 0.0", "const lambda0 = 0.1", "const a0 = 1.0", "const b0 = 1.0",
                     "tau ~ Gamma(a0, b0)", "mu ~ Normal(mu0, precision = lambda0 * tau)",
                     "sepal_width[n] ~ Normal(mu, precision = tau)")
    return c, r, d["sepal_width"]


def test_normal_gamma_coupled_is_the_prml_fixed_point(coupled):
    _, r, x = coupled
    mu0, lam0, a0, b0, N = 0.0, 0.1, 1.0, 1.0, len(x)
    q = r.q
    Etau = gamma_mean(q["tau"])
    muN = (lam0 * mu0 + x.sum()) / (lam0 + N)                                    # 10.26
    lamN = (lam0 + N) * Etau                                                     # 10.27
    Emu, Emu2 = muN, muN ** 2 + 1 / lamN
    aN = a0 + (N + 1) / 2                                                        # 10.29
    bN = b0 + 0.5 * (np.sum(x ** 2 - 2 * x * Emu + Emu2) + lam0 * (Emu2 - 2 * mu0 * Emu + mu0 ** 2))  # 10.30
    assert float(q["mu"]["mean"]) == pytest.approx(muN, rel=1e-10)
    assert float(q["mu"]["sd"]) == pytest.approx(lamN ** -0.5, rel=RTOL)
    assert float(q["tau"]["shape"]) == pytest.approx(aN, rel=1e-10)
    assert float(q["tau"]["rate"]) == pytest.approx(bN, rel=RTOL)


def test_normal_gamma_coupled_elbo_is_below_the_closed_form_evidence(coupled):
    _, r, x = coupled
    mu0, lam0, a0, b0, N = 0.0, 0.1, 1.0, 1.0, len(x)
    xbar = x.mean()
    lamN, aN = lam0 + N, a0 + N / 2
    bN = b0 + 0.5 * np.sum((x - xbar) ** 2) + lam0 * N * (xbar - mu0) ** 2 / (2 * lamN)
    log_evidence = (special.gammaln(aN) - special.gammaln(a0) + a0 * np.log(b0) - aN * np.log(bN)
                    + 0.5 * np.log(lam0 / lamN) - N / 2 * np.log(2 * np.pi))
    assert r.elbo < log_evidence
    assert r.elbo > log_evidence - 0.1          # the true posterior nearly factorises at N = 150


# ---------------------------------------------------------------- groups of coin flips

def test_beta_bernoulli_groups_exact_posterior_and_evidence():
    c = case("beta_bernoulli_groups")
    require(c, "const a = 1.5", "const b = 6.0", "theta[j] ~ Beta(a, b)", "y[n] ~ Bernoulli(theta[group[n]])")
    r = fit(c)
    d = data(c)
    g, y = d["group"], d["y"]
    J = g.max() + 1
    s = np.bincount(g, weights=y, minlength=J)
    n = np.bincount(g, minlength=J)
    a, b = 1.5, 6.0
    assert r.q["theta"]["a"] == pytest.approx(a + s, rel=1e-12)
    assert r.q["theta"]["b"] == pytest.approx(b + n - s, rel=1e-12)
    log_evidence = np.sum(special.betaln(a + s, b + n - s) - special.betaln(a, b))
    assert r.elbo == pytest.approx(log_evidence, rel=1e-10)


# ---------------------------------------------------------------- Wishart precision, prior from data

def test_wishart_precision_is_the_exact_posterior_and_evidence():
    c = case("wishart_precision")
    require(c, "data nu0", "data W0[D, D]", "Lambda ~ Wishart(nu0, W0)",
            "x[n] ~ MvNormal(mean, precision = Lambda)")
    r = fit(c)
    d = data(c)
    x, mu, nu0, W0 = d["x"], d["mean"], float(d["nu0"]), d["W0"]
    N, D = x.shape
    S = (x - mu).T @ (x - mu)
    WN = np.linalg.inv(np.linalg.inv(W0) + S)                                # PRML 2.155 posterior
    nuN = nu0 + N

    # Bayes' rule at any Λ (here I): log p(x) = log p(x | Λ) + log p(Λ) − log p(Λ | x)
    L = np.eye(D)
    log_evidence = (stats.multivariate_normal(mu, np.linalg.inv(L)).logpdf(x).sum()
                    + stats.wishart(df=nu0, scale=W0).logpdf(L) - stats.wishart(df=nuN, scale=WN).logpdf(L))
    assert float(np.squeeze(r.q["Lambda"]["df"])) == pytest.approx(nuN, rel=1e-12)
    assert np.reshape(r.q["Lambda"]["scale"], (D, D)) == pytest.approx(WN, rel=1e-10, abs=1e-14)
    assert r.elbo == pytest.approx(log_evidence, rel=1e-10)
