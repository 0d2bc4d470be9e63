"""New data under a fitted q (``Result.predict``, ``Result.score``, ``ppvi run --given``): the local q against
the textbook's updates with the globals held (PRML 10.46 with 10.64–10.67; Blei et al. 2003's per-document
E-step), the score against the closed-form ELBO, and the command line's mistakes (golden messages)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import special, stats

import ppvi
from conftest import MODELS, assert_golden, run_cli
from ppvi.errors import PPVIError

HERE = Path(__file__).parent
GOLDEN = HERE / "golden" / "predict"


# ------------------------------------------------------------------ fixtures: one GMM, one LDA
@pytest.fixture(scope="module")
def faithful():
    x = np.loadtxt(MODELS / "gmm.csv", delimiter=",", skiprows=1)
    return x


@pytest.fixture(scope="module")
def gmm(faithful):
    """models/gmm.ppvi (K = 6, D = 2) fitted to the first 200 eruptions; the other 72 are new."""
    return ppvi.load(str(MODELS / "gmm.ppvi")).fit({"x": faithful[:200]}, tol=1e-10)


@pytest.fixture(scope="module")
def lda():
    """models/lda.ppvi fitted (20 sweeps: any q(φ) will do) to the first 80 documents; 20 new ones."""
    with np.load(MODELS / "lda.npz") as f:
        doc, word = f["doc"], f["word"]
    old = doc < 80
    fit = ppvi.load(str(MODELS / "lda.ppvi")).fit({"doc": doc[old], "word": word[old]}, tol=0, max_iter=20,
                                                  dims={"V": 50})
    return fit, doc[~old] - 80, word[~old]


def gmm_log_rho(r, x):
    """ln ρ_nk of PRML 10.46 from the given q(π) q(μ) q(Λ): E[ln π_k] (10.66), E[ln|Λ_k|] (10.65) and the
    expected quadratic form, ν_k (x − m_k)ᵀ W_k (x − m_k) + ν_k tr(W_k S_k) — 10.64, whose D/β_k is
    tr(E[Λ_k] Cov[μ_k]) and, with q(μ_k) = N(m_k, S_k) apart from q(Λ_k), is ν_k tr(W_k S_k)."""
    alpha = r.q["pi"]["alpha"]
    m, s = r.q["mu"]["mean"], r.q["mu"]["cov"]
    nu, w = r.q["Lambda"]["df"], r.q["Lambda"]["scale"]
    k, d = m.shape
    e_ln_pi = special.digamma(alpha) - special.digamma(alpha.sum())
    e_ln_det = np.array([special.digamma((nu[j] + 1 - np.arange(1, d + 1)) / 2).sum() + d * np.log(2)
                         + np.linalg.slogdet(w[j])[1] for j in range(k)])
    diff = x[:, None, :] - m[None]                                              # [N, K, D]
    quad = nu * (np.einsum("nkd,kde,nke->nk", diff, w, diff) + np.einsum("kde,ked->k", w, s))
    return e_ln_pi + 0.5 * e_ln_det - 0.5 * d * np.log(2 * np.pi) - 0.5 * quad


# ------------------------------------------------------------------ mixture: PRML 10.64–10.67
def test_responsibilities_are_prml_10_67_under_the_given_q(gmm, faithful):
    new = faithful[200:]
    p = gmm.predict({"x": new})
    log_rho = gmm_log_rho(gmm, new)
    r = np.exp(log_rho - special.logsumexp(log_rho, axis=1, keepdims=True))          # 10.49, 10.67
    assert p.q["z"]["p"].shape == (72, 6)
    np.testing.assert_allclose(p.q["z"]["p"], r, rtol=0, atol=1e-10)
    assert np.array_equal(p.q["z"]["p"].argmax(1), r.argmax(1))
    assert p.predicted and not gmm.predicted and p.converged


def test_the_globals_are_held_never_updated(gmm, faithful):
    p = gmm.predict({"x": faithful[200:]})
    for name in ("pi", "mu", "Lambda"):
        assert p.q[name] == gmm.q[name]
    assert p.provenance.given["model_sha256"] == gmm.provenance.model_sha256
    assert p.provenance.dims["N"] == 72 and p.provenance.dims["K"] == 6


def test_score_is_each_points_local_elbo_and_sums_to_the_elbo_without_the_globals_terms(gmm, faithful):
    new = faithful[200:]
    s = gmm.score({"x": new})
    log_rho = gmm_log_rho(gmm, new)
    # at q(z_n) ∝ ρ_nk:  Σ_k r_nk ln ρ_nk − Σ_k r_nk ln r_nk = ln Σ_k ρ_nk
    np.testing.assert_allclose(s, special.logsumexp(log_rho, axis=1), rtol=1e-10, atol=1e-10)
    # the prediction's ELBO = Σ_n s_n + the globals' expected log priors and entropies, in closed form
    p = gmm.predict({"x": new})
    np.testing.assert_allclose(p.elbo, s.sum() + _gmm_global_terms(gmm), rtol=1e-10)


def _gmm_global_terms(r) -> float:
    """E_q[ln p(π)] + E_q[ln p(μ)] + E_q[ln p(Λ)] + H[q(π)] + H[q(μ)] + H[q(Λ)] for models/gmm.ppvi's priors
    (alpha0 = 0.01, m0 = 0, P0 = 0.1 I, nu0 = D + 2, W0 = I / nu0), PRML B.21, B.79–B.82."""
    alpha = r.q["pi"]["alpha"]
    m, s = r.q["mu"]["mean"], r.q["mu"]["cov"]
    nu, w = r.q["Lambda"]["df"], r.q["Lambda"]["scale"]
    k, d = m.shape
    a0, p0, nu0 = np.full(k, 0.01), 0.1 * np.eye(d), d + 2.0
    w0 = np.eye(d) / nu0
    e_ln_pi = special.digamma(alpha) - special.digamma(alpha.sum())
    total = special.gammaln(a0.sum()) - special.gammaln(a0).sum() + ((a0 - 1) * e_ln_pi).sum()
    total += stats.dirichlet(alpha).entropy()
    for j in range(k):
        total += (0.5 * np.linalg.slogdet(p0)[1] - 0.5 * d * np.log(2 * np.pi)
                  - 0.5 * (m[j] @ p0 @ m[j] + np.trace(p0 @ s[j])))
        total += stats.multivariate_normal(m[j], s[j]).entropy()
        e_ln_det = special.digamma((nu[j] + 1 - np.arange(1, d + 1)) / 2).sum() + d * np.log(2) + \
            np.linalg.slogdet(w[j])[1]
        ln_b = -0.5 * nu0 * np.linalg.slogdet(w0)[1] - 0.5 * nu0 * d * np.log(2) - special.multigammaln(nu0 / 2, d)
        total += ln_b + 0.5 * (nu0 - d - 1) * e_ln_det - 0.5 * nu[j] * np.trace(np.linalg.inv(w0) @ w[j])
        total += stats.wishart(df=nu[j], scale=w[j]).entropy()
    return float(total)


def test_score_of_shuffled_points_is_the_shuffled_score(gmm, faithful):
    s = gmm.score({"x": faithful[:200]})
    perm = np.random.default_rng(3).permutation(200)
    np.testing.assert_allclose(gmm.score({"x": faithful[:200][perm]}), s[perm], rtol=1e-12, atol=1e-12)
    assert s.mean() > gmm.score({"x": faithful[:200] + 3.0}).mean()     # far from every component: lower


def test_a_saved_result_predicts_as_the_live_one(gmm, faithful, tmp_path):
    gmm.save(tmp_path / "r.npz")
    again = ppvi.load_result(tmp_path / "r.npz").predict({"x": faithful[200:]})
    live = gmm.predict({"x": faithful[200:]})
    np.testing.assert_array_equal(again.q["z"]["p"], live.q["z"]["p"])
    assert again.provenance.given["held_sha256"] == live.provenance.given["held_sha256"]     # the same globals
    again.save(tmp_path / "p.json")
    assert ppvi.load_result(tmp_path / "p.json") == again


def test_refine_bounds_the_sweeps(lda):
    fit, doc, word = lda
    start = fit.predict({"doc": doc, "word": word}, refine=0)                      # the start's E-step alone
    assert start.iterations == 0 and start.elbo_trace == () and np.isfinite(start.elbo)
    assert fit.predict({"doc": doc, "word": word}, refine=2, tol=0).iterations == 2


# ------------------------------------------------------------------ LDA: Blei et al.'s E-step with fixed topics
def test_new_documents_topics_are_the_fixed_topic_e_step(lda):
    fit, doc, word = lda
    p = fit.predict({"doc": doc, "word": word}, tol=0, max_iter=60)
    lam = fit.q["phi"]["alpha"]                                                   # q(φ_k) = Dir(λ_k)
    e_log_beta = special.digamma(lam) - special.digamma(lam.sum(1, keepdims=True))   # [K, V]
    alpha = 0.5
    k = lam.shape[0]
    for d in range(doc.max() + 1):
        w = word[doc == d]
        gamma = np.full(k, alpha + len(w) / k)                                    # Blei et al. fig. 6
        for _ in range(10000):
            log_phi = e_log_beta[:, w].T + special.digamma(gamma)                # [N_d, K]
            phi = np.exp(log_phi - special.logsumexp(log_phi, axis=1, keepdims=True))
            new = alpha + phi.sum(0)
            done = np.max(np.abs(new - gamma)) < 1e-13
            gamma = new
            if done:
                break
        np.testing.assert_allclose(p.q["theta"]["alpha"][d], gamma, rtol=1e-8)
        np.testing.assert_allclose(p.q["z"]["p"][doc == d], phi, atol=1e-8)
    assert p.q["phi"] == fit.q["phi"]


def test_lda_scores_one_number_per_document(lda):
    fit, doc, word = lda
    s = fit.score({"doc": doc, "word": word}, tol=1e-12)
    assert s.shape == (20,) and np.all(s < 0)
    p = fit.predict({"doc": doc, "word": word}, tol=1e-12)
    lam, eta = fit.q["phi"]["alpha"], 0.1
    e_log_beta = special.digamma(lam) - special.digamma(lam.sum(1, keepdims=True))
    glob = sum(special.gammaln(eta * 50) - 50 * special.gammaln(eta) + ((eta - 1) * e_log_beta[j]).sum()
               + stats.dirichlet(lam[j]).entropy() for j in range(lam.shape[0]))
    np.testing.assert_allclose(p.elbo, s.sum() + glob, rtol=1e-9)


# ------------------------------------------------------------------ mistakes
def test_mistakes_are_ppvi_errors(gmm, faithful, lda):
    with pytest.raises(PPVIError, match="dim D is 2 in the fit given"):
        gmm.predict({"x": np.ones((5, 3))})
    with pytest.raises(PPVIError, match="refine is None"):
        gmm.predict({"x": faithful}, refine=-1)
    with pytest.raises(PPVIError, match="dim K = 3 was asked for"):
        gmm.predict({"x": faithful}, dims={"K": 3})
    fit, doc, word = lda
    with pytest.raises(PPVIError, match="out of range for index"):
        fit.predict({"doc": doc, "word": word + 50})


def test_a_model_without_local_latents_has_nothing_to_predict_but_scores():
    m = ppvi.load(str(MODELS / "normal_gamma.ppvi"))
    r = m.fit()
    x = np.asarray(r.data["waiting"])
    with pytest.raises(PPVIError, match="nothing to predict"):
        r.predict({"waiting": x})
    s = r.score({"waiting": x[:5]})
    mu, tau = r.q["mu"], r.q["tau"]
    e_tau, e_log_tau = tau["shape"] / tau["rate"], special.digamma(tau["shape"]) - np.log(tau["rate"])
    expected = 0.5 * e_log_tau - 0.5 * np.log(2 * np.pi) - 0.5 * e_tau * ((x[:5] - mu["mean"]) ** 2 + mu["sd"] ** 2)
    np.testing.assert_allclose(s, expected, rtol=1e-10)


# ------------------------------------------------------------------ the command line
@pytest.fixture(scope="module")
def given_file(gmm, faithful, tmp_path_factory):
    d = tmp_path_factory.mktemp("given")
    gmm.save(d / "r.json")
    np.savez(d / "new.npz", x=faithful[200:])
    return d


def test_run_given_writes_the_prediction(given_file, gmm, faithful, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(given_file)
    code, out, err = run_cli(["run", MODELS / "gmm.ppvi", "--given", "r.json", "--data", "new.npz",
                              "--out", tmp_path / "pred.json", "--quiet"], capsys)
    assert code == 0, err
    doc = json.loads((tmp_path / "pred.json").read_text())
    assert doc["provenance"]["given"]["path"] == str(given_file / "r.json")
    np.testing.assert_allclose(np.asarray(doc["q"]["z"]["p"]), gmm.predict({"x": faithful[200:]}).q["z"]["p"],
                               atol=1e-14)
    first = str(ppvi.load_result(tmp_path / "pred.json").summary(width=200)).splitlines()[0]
    assert first.startswith(f"prediction given {given_file / 'r.json'} (its global q held fixed): ELBO "), first


def test_a_predictions_summary_says_it_is_one(gmm, faithful):
    first = str(gmm.predict({"x": faithful[200:]}).summary()).splitlines()[0]
    assert first.startswith("prediction (the global q of a result held fixed): ELBO "), first


CLI_MISTAKES = {
    "missing": ["run", "{gmm}", "--given", "nothere.json", "--data", "new.npz"],
    "other_model": ["run", "{gmm_1d}", "--given", "r.json", "--data", "new.npz"],
    "with_init": ["run", "{gmm}", "--given", "r.json", "--init", "r.json", "--data", "new.npz"],
    "with_restarts": ["run", "{gmm}", "--given", "r.json", "--restarts", "3", "--data", "new.npz"],
    "other_dim": ["run", "{gmm}", "--given", "r.json", "--data", "wide.npz"],
}


@pytest.mark.parametrize("case", sorted(CLI_MISTAKES))
def test_run_given_mistakes(case, given_file, faithful, capsys, monkeypatch, update_golden):
    monkeypatch.chdir(given_file)
    np.savez(given_file / "wide.npz", x=np.ones((4, 3)))
    argv = [a.format(gmm=MODELS / "gmm.ppvi", gmm_1d=MODELS / "gmm_1d.ppvi") for a in CLI_MISTAKES[case]]
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and "Traceback" not in err and "internal" not in err
    golden = GOLDEN / f"{case}.expected"
    assert_golden(golden, err, update_golden)


def test_a_prediction_that_runs_out_of_sweeps_warns(lda):
    fit, doc, word = lda
    with pytest.warns(ppvi.PPVIWarning, match="stopped after max_iter = 1"):
        p = fit.predict({"doc": doc, "word": word}, max_iter=1, tol=1e-15)
    assert not p.converged and p.iterations == 1 and "max_iter = 1" in p.warnings[0]
