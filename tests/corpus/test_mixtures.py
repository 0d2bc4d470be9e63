"""Mixture corpus models against one more sweep of hand-written mean-field updates (PRML 10.2,
Blei et al. 2017, Latouche et al. 2012, Nigam et al. 2000), planted values, real labels, and the
closed-form evidence of a fully observed conjugate classifier."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from corpus import make_data as corpus_data
from corpus.registry import case
from corpus.support import (adjusted_rand, beta_elog, columns, data, dirichlet_elog, fit, fitted, gamma_elog,
                            gamma_mean, mvnormal_outer, normal_m2, require, softmax_rows, wishart_mean)

RTOL, ATOL_P = 1e-5, 1e-6


def onehot(idx: np.ndarray, k: int) -> np.ndarray:
    return np.eye(k)[idx]


# ---------------------------------------------------------------- Blei, Kucukelbir & McAuliffe 2017

@pytest.fixture(scope="module")
def blei():
    c, r, d = fitted("unit_variance_gmm",
                     "const sigma = 5.0", "const w[K] = 0.25", "mu[k] ~ Normal(0, sd = sigma)",
                     "c[n] ~ Categorical(w)", "x[n] ~ Normal(mu[c[n]], 1)",
                     restarts=4)       # (two planted means 1.1 apart: one start may merge them and split another)
    return c, r, d["x"]


def test_unit_variance_gmm_is_the_cavi_fixed_point_of_blei_et_al(blei):
    _, r, x = blei
    q = r.q
    m, s2 = q["mu"]["mean"], q["mu"]["sd"] ** 2
    phi = softmax_rows(x[:, None] * m - (s2 + m ** 2) / 2)                         # eq. 26
    Nk = q["c"]["p"].sum(0)
    m_new = (q["c"]["p"] * x[:, None]).sum(0) / (1 / 25.0 + Nk)                   # eq. 34
    assert q["c"]["p"] == pytest.approx(phi, abs=ATOL_P)
    assert m == pytest.approx(m_new, rel=RTOL)
    assert s2 == pytest.approx(1 / (1 / 25.0 + Nk), rel=RTOL)


def test_unit_variance_gmm_recovers_the_planted_means(blei):
    from corpus.make_data import unit_variance_gmm

    _, r, _ = blei
    truth = np.sort(unit_variance_gmm()[1]["mu"])
    assert np.sort(r.q["mu"]["mean"]) == pytest.approx(truth, abs=0.3)


# ---------------------------------------------------------------- Normal–Gamma components, PRML 10.2 in 1-D

NG_PRIOR = {"alpha0": 0.1, "m0": 0.0, "beta0": 0.5, "a0": 1.0, "b0": 1.0}


def ng_sweep(x: np.ndarray, R: np.ndarray) -> tuple[dict, np.ndarray]:
    """One round of PRML 10.2's VB-GMM in one dimension (the Wishart a Gamma(a, b), a = ν/2, b = 1/(2W)) from
    the responsibilities R: q(π) and q(μₖ, λₖ) = N(mₖ, (βₖλₖ)⁻¹) Gamma(aₖ, bₖ) by 10.58–10.63, then R by
    10.64–10.67 (E[λ(x − μ)²] = E[λ](x − m)² + 1/β)."""
    p = NG_PRIOR
    Nk = R.sum(0)
    xbar = (R * x[:, None]).sum(0) / Nk
    S = (R * (x[:, None] - xbar) ** 2).sum(0)
    beta = p["beta0"] + Nk
    q = {"alpha": p["alpha0"] + Nk, "beta": beta, "m": (p["beta0"] * p["m0"] + Nk * xbar) / beta,
         "a": p["a0"] + Nk / 2, "b": p["b0"] + S / 2 + p["beta0"] * Nk * (xbar - p["m0"]) ** 2 / (2 * beta)}
    e_lam, e_log_lam = q["a"] / q["b"], special.digamma(q["a"]) - np.log(q["b"])
    log_rho = (special.digamma(q["alpha"]) - special.digamma(q["alpha"].sum()) + 0.5 * e_log_lam
               - 0.5 * np.log(2 * np.pi) - 0.5 * (e_lam * (x[:, None] - q["m"]) ** 2 + 1 / q["beta"]))
    return q, softmax_rows(log_rho)


def ng_elbo(x: np.ndarray, q: dict, R: np.ndarray) -> float:
    """PRML 10.70–10.77 in one dimension: E[log p(x, z, π, μ, λ)] − E[log q], q(μ, λ) Normal–Gamma."""
    p = NG_PRIOR
    K = len(q["m"])
    e_lam, e_log_lam = q["a"] / q["b"], special.digamma(q["a"]) - np.log(q["b"])
    e_log_pi = special.digamma(q["alpha"]) - special.digamma(q["alpha"].sum())
    quad = e_lam * (x[:, None] - q["m"]) ** 2 + 1 / q["beta"]
    lik = (R * (0.5 * e_log_lam - 0.5 * np.log(2 * np.pi) - 0.5 * quad)).sum()
    lz = (R * e_log_pi).sum()
    lpi = special.gammaln(K * p["alpha0"]) - K * special.gammaln(p["alpha0"]) + (p["alpha0"] - 1) * e_log_pi.sum()
    llam = (p["a0"] * np.log(p["b0"]) - special.gammaln(p["a0"]) + (p["a0"] - 1) * e_log_lam - p["b0"] * e_lam).sum()
    lmu = (0.5 * np.log(p["beta0"] / (2 * np.pi)) + 0.5 * e_log_lam
           - 0.5 * p["beta0"] * (e_lam * (q["m"] - p["m0"]) ** 2 + 1 / q["beta"])).sum()
    h_z = -special.xlogy(R, R).sum()
    al = q["alpha"]
    h_pi = (special.gammaln(al).sum() - special.gammaln(al.sum()) + (al.sum() - K) * special.digamma(al.sum())
            - ((al - 1) * special.digamma(al)).sum())
    h_lam = (q["a"] - np.log(q["b"]) + special.gammaln(q["a"]) + (1 - q["a"]) * special.digamma(q["a"])).sum()
    h_mu = (0.5 * (1 + np.log(2 * np.pi)) - 0.5 * np.log(q["beta"]) - 0.5 * e_log_lam).sum()
    return lik + lz + lpi + llam + lmu + h_z + h_pi + h_lam + h_mu


def ng_q(r) -> dict:
    """A fit's q(π), q(μ, λ) in PRML's parameters; q(λ) reported beside it is the pair's Gamma marginal."""
    q = r.q["mu"]
    assert q.family == "NormalGamma" and q.pair == "lam"
    np.testing.assert_array_equal([q["shape"], q["rate"]], [r.q["lam"]["shape"], r.q["lam"]["rate"]])
    return {"alpha": r.q["pi"]["alpha"], "m": q["mean"], "beta": q["beta"], "a": q["shape"], "b": q["rate"]}


@pytest.fixture(scope="module")
def ng_mixture():
    c, r, d = fitted("gmm_normal_gamma", "const alpha0[K] = 0.1", "const m0 = 0.0", "const beta0 = 0.5",
                     "const a0 = 1.0", "const b0 = 1.0", "lam[k] ~ Gamma(a0, b0)",
                     "mu[k] ~ Normal(m0, precision = beta0 * lam[k])", "x[n] ~ Normal(mu[z[n]], precision = lam[z[n]])",
                     "approximate mu, lam jointly")
    return c, r, d["x"]


def test_gmm_normal_gamma_one_sweep_is_prml_10_2(ng_mixture):
    """From an early state of the fit (3 sweeps), one more sweep of ppvi (its schedule: q(π) and q(μ, λ), then
    q(z)) is one round of the NumPy VB-GMM, and its ELBO is PRML's bound there: to 1e-10."""
    c, _, x = ng_mixture
    early = fit(c, max_iter=3, tol=0.0)
    step = fit(c, init=early, max_iter=1, tol=0.0)
    q, R = ng_sweep(x, early.q["z"]["p"])
    got = ng_q(step)
    for k in ("alpha", "m", "beta", "a", "b"):
        np.testing.assert_allclose(got[k], q[k], rtol=1e-10, atol=1e-12, err_msg=k)
    np.testing.assert_allclose(step.q["z"]["p"], R, rtol=0, atol=1e-10)
    assert step.elbo == pytest.approx(ng_elbo(x, got, step.q["z"]["p"]), rel=1e-10, abs=1e-10)


def test_gmm_normal_gamma_is_a_fixed_point_and_finds_the_planted_components(ng_mixture):
    _, r, x = ng_mixture
    q, R = ng_sweep(x, r.q["z"]["p"])
    got = ng_q(r)
    for k in ("alpha", "m", "beta", "a", "b"):
        assert got[k] == pytest.approx(q[k], rel=RTOL)
    assert r.q["z"]["p"] == pytest.approx(R, abs=ATOL_P)
    truth = corpus_data.gmm_normal_gamma()[1]
    order = np.argsort(got["m"])[got["alpha"][np.argsort(got["m"])] > 1]     # (the components in use, by mean)
    assert got["m"][order] == pytest.approx(truth["means"], abs=0.3)
    assert np.sqrt(got["b"] / got["a"])[order] == pytest.approx(truth["sds"], rel=0.2)      # 1/√E[λ]


# ---------------------------------------------------------------- Poisson mixture

@pytest.fixture(scope="module")
def poisson():
    c, r, d = fitted("poisson_mixture",
                     "const alpha0[K] = 1.0", "lam[k] ~ Gamma(1, 0.1)", "counts[n] ~ Poisson(lam[z[n]])")
    return c, r, d["counts"]


def test_poisson_mixture_is_a_fixed_point(poisson):
    _, r, x = poisson
    q = r.q
    R = q["z"]["p"]
    Nk = R.sum(0)
    assert q["pi"]["alpha"] == pytest.approx(1 + Nk, rel=RTOL)
    assert q["lam"]["shape"] == pytest.approx(1 + R.T @ x, rel=RTOL)
    assert q["lam"]["rate"] == pytest.approx(0.1 + Nk, rel=RTOL)
    logits = dirichlet_elog(q["pi"]["alpha"]) + x[:, None] * gamma_elog(q["lam"]) - gamma_mean(q["lam"])
    assert R == pytest.approx(softmax_rows(logits), abs=ATOL_P)


def test_poisson_mixture_recovers_the_planted_rates(poisson):
    from corpus.make_data import poisson_mixture

    _, r, _ = poisson
    truth = poisson_mixture()[1]
    assert np.sort(gamma_mean(r.q["lam"])) == pytest.approx(truth["rates"], rel=0.15)


# ---------------------------------------------------------------- latent class analysis

@pytest.fixture(scope="module")
def lca():
    c, r, d = fitted("categorical_mixture",
                     "const alpha0[K] = 1.0", "const beta0[V] = 0.5", "theta[k, d] ~ Dirichlet(beta0)",
                     "answers[n, d] ~ Categorical(theta[z[n], d])")
    return c, r, d["answers"]


def test_categorical_mixture_is_a_fixed_point(lca):
    _, r, x = lca
    q = r.q
    R = q["z"]["p"]
    V = q["theta"]["alpha"].shape[-1]
    X = onehot(x, V)                                                # [N, D, V]
    assert q["pi"]["alpha"] == pytest.approx(1 + R.sum(0), rel=RTOL)
    assert q["theta"]["alpha"] == pytest.approx(0.5 + np.einsum("nk,ndv->kdv", R, X), rel=RTOL)
    Elt = dirichlet_elog(q["theta"]["alpha"])                     # [K, D, V]
    logits = dirichlet_elog(q["pi"]["alpha"]) + np.einsum("ndv,kdv->nk", X, Elt)
    assert R == pytest.approx(softmax_rows(logits), abs=ATOL_P)


def test_categorical_mixture_recovers_the_planted_classes(lca):
    from corpus.make_data import categorical_mixture

    _, r, _ = lca
    truth = categorical_mixture()[1]
    assert adjusted_rand(truth["z"], r.q["z"]["p"].argmax(1)) > 0.8


# ---------------------------------------------------------------- diagonal-covariance mixture (wine)

@pytest.fixture(scope="module")
def diag():
    return fitted("diag_gmm",
                  "const alpha0[K] = 1.0", "mu[k, d] ~ Normal(0, sd = 10)", "tau[k, d] ~ Gamma(1, 1)",
                  "x[n, d] ~ Normal(mu[z[n], d], precision = tau[z[n], d])", read=columns, restarts=5)


def _diag_sweep(x, R, q, alpha0=1.0):
    """PRML 10.2 with an independent Normal(0, 10^2) x Gamma(1, 1) prior on each (mean, precision)."""
    Nk = R.sum(0)
    Et, Elt = gamma_mean(q["tau"]), gamma_elog(q["tau"])
    prec = 1 / 100 + Nk[:, None] * Et
    mean = Et * (R.T @ x) / prec
    Em, Em2 = q["mu"]["mean"], normal_m2(q["mu"])
    sq = (R.T @ x ** 2) - 2 * (R.T @ x) * Em + Nk[:, None] * Em2      # Σ_n r_nk E(x − μ)²
    rate = 1 + 0.5 * sq
    shape = 1 + Nk[:, None] / 2
    e2 = x[:, None, :] ** 2 - 2 * x[:, None, :] * Em + Em2              # [N, K, D]
    logits = dirichlet_elog(q["pi"]["alpha"]) + 0.5 * (Elt - np.log(2 * np.pi) - Et * e2).sum(-1)
    return alpha0 + Nk, mean, prec, shape, rate, softmax_rows(logits)


def test_diag_gmm_is_a_fixed_point(diag):
    _, r, x = diag
    q = r.q
    alpha, mean, prec, shape, rate, R = _diag_sweep(x, q["z"]["p"], q)
    assert q["pi"]["alpha"] == pytest.approx(alpha, rel=RTOL)
    assert q["mu"]["mean"] == pytest.approx(mean, rel=RTOL, abs=1e-6)
    assert q["mu"]["sd"] == pytest.approx(prec ** -0.5, rel=RTOL)
    assert q["tau"]["shape"] == pytest.approx(np.broadcast_to(shape, rate.shape), rel=RTOL)
    assert q["tau"]["rate"] == pytest.approx(rate, rel=RTOL)
    assert q["z"]["p"] == pytest.approx(R, abs=ATOL_P)


def test_diag_gmm_finds_the_wine_cultivars(diag):
    """scikit-learn's GaussianMixture(3, covariance_type="diag") reaches ARI 0.86 - 0.92 on these data
    (5 seeds); the best of ppvi's 5 starts must do as well (single starts end at ARI 0.76 for 3 of 5 seeds)."""
    from sklearn.datasets import load_wine

    _, r, _ = diag
    assert adjusted_rand(load_wine().target, r.q["z"]["p"].argmax(1)) > 0.85


# ---------------------------------------------------------------- tied covariance (iris)

@pytest.fixture(scope="module")
def tied():
    return fitted("tied_gmm",
                  "const alpha0[K] = 1.0", "const m0[D] = 0.0", "const P0[D, D] = 0.01 * eye(D)",
                  "const nu0 = D + 2", "const W0[D, D] = eye(D) / nu0", "Lambda ~ Wishart(nu0, W0)",
                  "mu[k] ~ MvNormal(m0, precision = P0)", "x[n] ~ MvNormal(mu[z[n]], precision = Lambda)",
                  read=columns, seed=1)       # seed 0 ends in one component (below)


def test_tied_gmm_is_a_fixed_point(tied):
    _, r, x = tied
    q = r.q
    R = q["z"]["p"]
    N, D = x.shape
    P0, nu0 = 0.01 * np.eye(D), D + 2.0
    Nk = R.sum(0)
    EL = wishart_mean(q["Lambda"]).reshape(D, D)
    cov = np.linalg.inv(P0 + Nk[:, None, None] * EL)
    mean = np.einsum("kde,ke->kd", cov, (R.T @ x) @ EL)                 # EL symmetric
    Emm = mvnormal_outer(q["mu"])
    m = q["mu"]["mean"]
    S = (x.T * R.sum(1)) @ x - sum(np.outer(R[:, k] @ x, m[k]) + np.outer(m[k], R[:, k] @ x) - Nk[k] * Emm[k]
                                   for k in range(len(Nk)))
    scale = np.linalg.inv(np.linalg.inv(np.eye(D) / nu0) + S)
    quad = (np.einsum("nd,de,ne->n", x, EL, x)[:, None] - 2 * x @ EL @ m.T
            + np.einsum("de,ked->k", EL, Emm)[None, :])
    logits = dirichlet_elog(q["pi"]["alpha"]) - 0.5 * quad
    assert q["pi"]["alpha"] == pytest.approx(1 + Nk, rel=RTOL)
    assert q["mu"]["mean"] == pytest.approx(mean, rel=RTOL, abs=1e-6)
    assert q["mu"]["cov"] == pytest.approx(cov, rel=RTOL, abs=1e-12)
    assert float(np.squeeze(q["Lambda"]["df"])) == pytest.approx(nu0 + N, rel=1e-10)
    assert q["Lambda"]["scale"].reshape(D, D) == pytest.approx(scale, rel=RTOL, abs=1e-10)
    assert R == pytest.approx(softmax_rows(logits), abs=ATOL_P)


def test_tied_gmm_finds_the_iris_species_from_every_seed(tied):
    from sklearn.datasets import load_iris

    c, _, _ = tied
    species = load_iris().target
    aris = [adjusted_rand(species, fit(c, seed=s, tol=1e-6, max_iter=200).q["z"]["p"].argmax(1))
            for s in range(5)]
    assert min(aris) > 0.5, aris


# ---------------------------------------------------------------- stochastic block model

@pytest.fixture(scope="module")
def blocks():
    c, r, d = fitted("sbm",
                     "const alpha0[K] = 1.0", "eta[k, l] ~ Beta(1, 1)", "z[i] ~ Categorical(pi)",
                     "A[i, j] ~ Bernoulli(eta[z[i], z[j]])")
    return c, r, d["A"].astype(float)


def test_sbm_is_a_fixed_point(blocks):
    """Latouche, Birmelé & Ambroise (2012) for a directed graph with self-loops: the factor A[i, i]
    reads z[i] twice, so E[z_ik z_il] = r_ik δ_kl there, not r_ik r_il."""
    _, r, A = blocks
    q = r.q
    R = q["z"]["p"]
    V, K = R.shape
    dA = np.diag(A)
    off = A - np.diag(dA)
    ones_off = 1 - np.eye(V)
    on = R.T @ off @ R + np.diag(R.T @ dA)                           # Σ_ij E[z_ik z_jl] A_ij
    total = R.T @ ones_off @ R + np.diag(R.sum(0))
    assert q["eta"]["a"] == pytest.approx(1 + on, rel=RTOL)
    assert q["eta"]["b"] == pytest.approx(1 + total - on, rel=RTOL)
    El, El1 = beta_elog(q["eta"])
    logits = (dirichlet_elog(q["pi"]["alpha"])
              + off @ R @ El.T + (ones_off - off) @ R @ El1.T            # i → j, j ≠ i: η[z_i, z_j]
              + off.T @ R @ El + (ones_off - off).T @ R @ El1            # j → i, j ≠ i: η[z_j, z_i]
              + dA[:, None] * np.diag(El) + (1 - dA)[:, None] * np.diag(El1))   # i → i: η[z_i, z_i]
    assert R == pytest.approx(softmax_rows(logits), abs=ATOL_P)


def test_sbm_recovers_the_planted_blocks(blocks):
    from corpus.make_data import sbm

    _, r, _ = blocks
    assert adjusted_rand(sbm()[1]["z"], r.q["z"]["p"].argmax(1)) > 0.9


# ---------------------------------------------------------------- semi-supervised (iris)

@pytest.fixture(scope="module")
def semi():
    return fitted("semi_supervised",
                  "mu[k, d] ~ Normal(0, sd = 10)", "tau[k, d] ~ Gamma(1, 1)",
                  "x_lab[l, d] ~ Normal(mu[y_lab[l], d], precision = tau[y_lab[l], d])",
                  "x_unl[u, d] ~ Normal(mu[z[u], d], precision = tau[z[u], d])")


def test_semi_supervised_is_a_fixed_point(semi):
    """The diagonal mixture's sweep with the labelled points' responsibilities one-hot."""
    _, r, d = semi
    q = r.q
    x = np.vstack([d["x_lab"], d["x_unl"]])
    L = len(d["x_lab"])
    R = np.vstack([onehot(d["y_lab"], 3), q["z"]["p"]])
    alpha, mean, prec, shape, rate, R_new = _diag_sweep(x, R, q)
    assert q["pi"]["alpha"] == pytest.approx(alpha, rel=RTOL)
    assert q["mu"]["mean"] == pytest.approx(mean, rel=RTOL, abs=1e-6)
    assert q["mu"]["sd"] == pytest.approx(prec ** -0.5, rel=RTOL)
    assert q["tau"]["rate"] == pytest.approx(rate, rel=RTOL)
    assert q["z"]["p"] == pytest.approx(R_new[L:], abs=ATOL_P)


def test_semi_supervised_labels_the_unlabelled_flowers(semi):
    from corpus.make_data import semi_supervised

    _, r, _ = semi
    truth = semi_supervised()[1]["y_unl"]
    # classes named by the labelled points; diagonal classes confuse a few versicolor and virginica
    assert np.mean(r.q["z"]["p"].argmax(1) == truth) > 0.85


# ---------------------------------------------------------------- mixture of unigrams

@pytest.fixture(scope="module")
def unigrams():
    return fitted("mixture_of_unigrams",
                  "const alpha0[K] = 1.0", "const eta[V] = 0.1", "phi[k] ~ Dirichlet(eta)",
                  "z[d] ~ Categorical(pi)", "word[t] ~ Categorical(phi[z[doc[t]]])")


def test_mixture_of_unigrams_is_a_fixed_point(unigrams):
    _, r, d = unigrams
    doc, word = d["doc"], d["word"]
    q = r.q
    R = q["z"]["p"]                                           # [M, K]
    M, K = R.shape
    V = q["phi"]["alpha"].shape[1]
    counts = np.zeros((M, V))
    np.add.at(counts, (doc, word), 1.0)
    assert q["pi"]["alpha"] == pytest.approx(1 + R.sum(0), rel=RTOL)
    assert q["phi"]["alpha"] == pytest.approx(0.1 + R.T @ counts, rel=RTOL)
    logits = dirichlet_elog(q["pi"]["alpha"]) + counts @ dirichlet_elog(q["phi"]["alpha"]).T
    assert R == pytest.approx(softmax_rows(logits), abs=ATOL_P)


def test_mixture_of_unigrams_recovers_the_planted_topics(unigrams):
    from corpus.make_data import mixture_of_unigrams

    _, r, _ = unigrams
    assert adjusted_rand(mixture_of_unigrams()[1]["z"], r.q["z"]["p"].argmax(1)) > 0.9


# ---------------------------------------------------------------- mixture of regressions

@pytest.fixture(scope="module")
def mixreg():
    return fitted("mixture_of_regressions",
                  "const alpha0[K] = 1.0", "const m0[D] = 0.0", "const P0[D, D] = 0.01 * eye(D)",
                  "w[k] ~ MvNormal(m0, precision = P0)", "tau[k] ~ Gamma(1, 1)",
                  "y[n] ~ Normal(dot(X[n], w[z[n]]), precision = tau[z[n]])", restarts=5)


@pytest.mark.long     # (its fit takes 20 s; CI fits it 12 sweeps in plain Python: harness test_metamorphic)
def test_mixture_of_regressions_is_a_fixed_point(mixreg):
    _, r, d = mixreg
    X, y = d["X"], d["y"]
    q = r.q
    R = q["z"]["p"]
    D = X.shape[1]
    Nk = R.sum(0)
    Et = gamma_mean(q["tau"])
    P0 = 0.01 * np.eye(D)
    prec = P0 + Et[:, None, None] * np.einsum("nk,nd,ne->kde", R, X, X)
    cov = np.linalg.inv(prec)
    mean = np.einsum("kde,ke->kd", cov, Et[:, None] * (R * y[:, None]).T @ X)
    Eww = mvnormal_outer(q["w"])
    e2 = (y[:, None] ** 2 - 2 * y[:, None] * (X @ q["w"]["mean"].T)
          + np.einsum("nd,kde,ne->nk", X, Eww, X))
    rate = 1 + 0.5 * (R * e2).sum(0)
    logits = (dirichlet_elog(q["pi"]["alpha"]) + 0.5 * gamma_elog(q["tau"]) - 0.5 * np.log(2 * np.pi)
              - 0.5 * Et * e2)
    assert q["pi"]["alpha"] == pytest.approx(1 + Nk, rel=RTOL)
    assert q["w"]["mean"] == pytest.approx(mean, rel=RTOL, abs=1e-6)
    assert q["w"]["cov"] == pytest.approx(cov, rel=RTOL, abs=1e-12)
    assert q["tau"]["shape"] == pytest.approx(1 + Nk / 2, rel=RTOL)
    assert q["tau"]["rate"] == pytest.approx(rate, rel=RTOL)
    assert R == pytest.approx(softmax_rows(logits), abs=ATOL_P)


@pytest.mark.long
def test_mixture_of_regressions_recovers_the_planted_lines(mixreg):
    _, r, _ = mixreg
    truth = corpus_data.mixture_of_regressions()[1]
    order = np.argsort(r.q["w"]["mean"][:, 0])[::-1]
    assert r.q["w"]["mean"][order] == pytest.approx(truth["w"][np.argsort(truth["w"][:, 0])[::-1]], abs=0.2)


# ---------------------------------------------------------------- naive Bayes: every class observed

def test_naive_bayes_exact_posterior_and_evidence():
    c = case("naive_bayes")
    require(c, "const alpha0[K] = 1.0", "theta[k, d] ~ Beta(1, 1)", "label[n] ~ Categorical(pi)",
            "x[n, d] ~ Bernoulli(theta[label[n], d])")
    r = fit(c)
    d = data(c)
    lab, x = d["label"], d["x"].astype(float)
    K = 10
    Y = onehot(lab, K)
    n_k = Y.sum(0)
    s = Y.T @ x                                                     # [K, D] ones per class and pixel
    assert r.q["pi"]["alpha"] == pytest.approx(1 + n_k, rel=1e-12)
    assert r.q["theta"]["a"] == pytest.approx(1 + s, rel=1e-12)
    assert r.q["theta"]["b"] == pytest.approx(1 + n_k[:, None] - s, rel=1e-12)
    log_evidence = (special.gammaln(K) - special.gammaln(K + len(lab)) + special.gammaln(1 + n_k).sum()
                    + np.sum(special.betaln(1 + s, 1 + n_k[:, None] - s) - special.betaln(1, 1)))
    assert r.elbo == pytest.approx(log_evidence, rel=1e-10)
