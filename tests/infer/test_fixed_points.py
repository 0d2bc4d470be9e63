"""At convergence, one more sweep of updates written by hand from the literature leaves q unchanged.

The hand-written sweeps below follow PRML §10.1.3 and §10.2 (with the
independent priors our example models use) and Blei, Ng & Jordan (2003); they
share no code with ppvi.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

import ppvi
from conftest import MODELS


def fit(stem: str, **kw):
    kw = {"tol": 1e-300, "max_iter": 3000, **kw}   # past the ELBO tolerance: q itself settles
    r = ppvi.load(str(MODELS / f"{stem}.ppvi")).fit(**kw)
    assert np.all(np.diff(r.elbo_trace) >= -1e-9 * np.abs(r.elbo_trace[1:])), "the ELBO decreased"
    return r


def test_normal_gamma_prml_10_1_3():
    r = fit("normal_gamma")
    x = np.loadtxt(MODELS / "normal_gamma.csv", delimiter=",", skiprows=1)
    text = (MODELS / "normal_gamma.ppvi").read_text()
    c = {k: float(line.split("=")[1].split("#")[0]) for line in text.splitlines() if line.startswith("const ")
         for k in [line.split()[1]]}
    m0, s0, a0, b0 = c["m0"], c["s0"], c["a0"], c["b0"]
    q = r.q
    Etau = q["tau"]["shape"] / q["tau"]["rate"]
    lam = 1 / s0 ** 2 + len(x) * Etau
    m = (m0 / s0 ** 2 + Etau * x.sum()) / lam
    Emu2 = m ** 2 + 1 / lam
    aN = a0 + len(x) / 2
    bN = b0 + 0.5 * np.sum(x ** 2 - 2 * x * m + Emu2)
    assert float(q["mu"]["mean"]) == pytest.approx(m, rel=1e-7)
    assert float(q["mu"]["sd"]) == pytest.approx(lam ** -0.5, rel=1e-7)
    assert float(q["tau"]["shape"]) == pytest.approx(aN, rel=1e-10)
    assert float(q["tau"]["rate"]) == pytest.approx(bN, rel=1e-7)


def test_bayesian_mixture_1d_prml_10_2():
    r = fit("gmm_1d")
    x = np.loadtxt(MODELS / "gmm_1d.csv", delimiter=",", skiprows=1)
    q = r.q
    K = len(q["pi"]["alpha"])
    text = (MODELS / "gmm_1d.ppvi").read_text()
    assert "mu[k] ~ Normal(m0, sd = 10)" in text and "tau[k] ~ Gamma(1, 1)" in text
    alpha0 = 1.0 if "const alpha0[K] = 1.0" in text else pytest.skip("prior changed")
    resp = q["z"]["p"]
    # one hand-written sweep: globals from the responsibilities, then the responsibilities
    Nk = resp.sum(0)
    alpha = alpha0 + Nk
    Etau = q["tau"]["shape"] / q["tau"]["rate"]
    lam = 1 / 100 + Etau * Nk
    m = (0.0 / 100 + Etau * (resp.T @ x)) / lam
    Emu2 = m ** 2 + 1 / lam
    shape = 1 + Nk / 2
    rate = 1 + 0.5 * (resp * (x[:, None] ** 2 - 2 * x[:, None] * m + Emu2)).sum(0)
    Elogtau = special.digamma(shape) - np.log(rate)
    Elogpi = special.digamma(alpha) - special.digamma(alpha.sum())
    Etau = shape / rate
    logrho = Elogpi + 0.5 * Elogtau - 0.5 * np.log(2 * np.pi) - 0.5 * Etau * (x[:, None] ** 2 - 2 * x[:, None] * m + Emu2)
    new_resp = np.exp(logrho - special.logsumexp(logrho, axis=1, keepdims=True))
    assert q["pi"]["alpha"] == pytest.approx(alpha, rel=1e-6)
    assert q["mu"]["mean"] == pytest.approx(m, rel=1e-6, abs=1e-8)
    assert q["tau"]["rate"] == pytest.approx(rate, rel=1e-6)
    assert resp == pytest.approx(new_resp, abs=1e-6)


def test_lda_blei_ng_jordan():
    r = fit("lda", max_iter=1500)
    f = np.load(MODELS / "lda.npz")
    doc, word = f["doc"], f["word"]
    q = r.q
    text = (MODELS / "lda.ppvi").read_text()
    c = {line.split()[1].split("[")[0]: float(line.split("=")[1].split("#")[0]) for line in text.splitlines()
         if line.startswith("const ")}
    phi_r = q["z"]["p"]                      # Blei's φ_tk, per token
    gamma, lam = q["theta"]["alpha"], q["phi"]["alpha"]
    M, K = gamma.shape
    V = lam.shape[1]
    new_gamma = c["alpha"] + np.stack([np.bincount(doc, weights=phi_r[:, k], minlength=M) for k in range(K)], 1)
    new_lam = c["eta"] + np.stack([np.bincount(word, weights=phi_r[:, k], minlength=V) for k in range(K)], 0)
    Elogtheta = special.digamma(gamma) - special.digamma(gamma.sum(1, keepdims=True))
    Elogbeta = special.digamma(lam) - special.digamma(lam.sum(1, keepdims=True))
    logphi = Elogtheta[doc] + Elogbeta[:, word].T
    new_phi = np.exp(logphi - special.logsumexp(logphi, axis=1, keepdims=True))
    assert gamma == pytest.approx(new_gamma, rel=1e-5)
    assert lam == pytest.approx(new_lam, rel=1e-5)
    assert phi_r == pytest.approx(new_phi, abs=1e-5)


def test_bayesian_mixture_multivariate():
    r = fit("gmm", max_iter=1500)
    x = np.loadtxt(MODELS / "gmm.csv", delimiter=",", skiprows=1)
    q = r.q
    text = (MODELS / "gmm.ppvi").read_text()
    assert "const P0[D, D] = 0.1 * eye(D)" in text and "const W0[D, D] = eye(D) / nu0" in text
    D = x.shape[1]
    P0, nu0, m0 = 0.1 * np.eye(D), D + 2.0, np.zeros(D)
    W0inv = np.linalg.inv(np.eye(D) / nu0)
    resp = q["z"]["p"]
    Nk = resp.sum(0)
    K = len(Nk)
    EL = q["Lambda"]["df"][:, None, None] * q["Lambda"]["scale"]
    prec = P0 + Nk[:, None, None] * EL
    cov = np.linalg.inv(prec)
    mean = np.einsum("kde,ke->kd", cov, P0 @ m0 + np.einsum("kde,ke->kd", EL, resp.T @ x))
    Emm = cov + mean[:, :, None] * mean[:, None, :]
    S = np.stack([(resp[:, k, None, None] * (x[:, :, None] * x[:, None, :] - x[:, :, None] * mean[k][None, None, :]
                                            - mean[k][None, :, None] * x[:, None, :] + Emm[k])).sum(0)
                  for k in range(K)])
    df = nu0 + Nk
    scale = np.linalg.inv(W0inv + S)
    assert q["mu"]["mean"] == pytest.approx(mean, abs=1e-6)
    assert q["Lambda"]["df"] == pytest.approx(df, rel=1e-8)
    assert q["Lambda"]["scale"] == pytest.approx(scale, rel=1e-5, abs=1e-8)
