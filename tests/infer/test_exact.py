"""Fits where the answer is known in closed form (issue: `ppvi run`, tests 1–3)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import special, stats

import ppvi
from conftest import MODELS, SEED_19_57, plain_kernels


def fit_text(tmp_path, text: str, data: dict, **kw):
    """An inline model's fit on a few points, its kernels as plain Python (nothing compiled for a closed form;
    compiled = interpreted, binary sparse coding's damped parallel step among them: test_differential.py)."""
    path = tmp_path / "model.ppvi"
    path.write_text(text)
    kw = {"tol": 1e-14, "max_iter": 5000, **kw}
    with plain_kernels():
        return ppvi.load(str(path)).fit(data, **kw)


def test_beta_bernoulli_matches_the_exact_posterior_and_evidence():
    r = ppvi.load(str(MODELS / "beta_bernoulli.ppvi")).fit(tol=1e-14)
    y = np.asarray(__import__("json").load(open(MODELS / "beta_bernoulli.json"))["y"])
    a, b = 2.0, 2.0
    s, n = y.sum(), len(y)
    assert float(r.q["theta"]["a"]) == pytest.approx(a + s, rel=1e-12)
    assert float(r.q["theta"]["b"]) == pytest.approx(b + n - s, rel=1e-12)
    assert r.elbo == pytest.approx(special.betaln(a + s, b + n - s) - special.betaln(a, b), rel=1e-8)


def test_gamma_poisson_matches_the_exact_posterior_and_evidence():
    r = ppvi.load(str(MODELS / "gamma_poisson.ppvi")).fit(tol=1e-14)
    y = np.loadtxt(MODELS / "gamma_poisson.csv", delimiter=",", skiprows=1)
    text = (MODELS / "gamma_poisson.ppvi").read_text()
    assert "rate ~ Gamma(a, b)" in text
    a, b = _const(text, "a"), _const(text, "b")
    S, N = y.sum(), len(y)
    assert float(r.q["rate"]["shape"]) == pytest.approx(a + S, rel=1e-12)
    assert float(r.q["rate"]["rate"]) == pytest.approx(b + N, rel=1e-12)
    log_evidence = (a * np.log(b) - special.gammaln(a) + special.gammaln(a + S) - (a + S) * np.log(b + N)
                    - special.gammaln(y + 1).sum())
    assert r.elbo == pytest.approx(log_evidence, rel=1e-8)


def _const(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(f"const {name} ="):
            return float(line.split("=")[1].split("#")[0])
    raise KeyError(name)


def test_dirichlet_categorical_matches_the_exact_posterior_and_evidence():
    r = ppvi.load(str(MODELS / "dirichlet_categorical.ppvi")).fit(tol=1e-14)
    c = np.load(MODELS / "dirichlet_categorical.npz")["c"]
    K = 5
    counts = np.bincount(c, minlength=K)
    alpha = np.ones(K)
    assert r.q["pi"]["alpha"] == pytest.approx(alpha + counts, rel=1e-12)
    log_evidence = (special.gammaln(alpha.sum()) - special.gammaln(alpha.sum() + len(c))
                    + np.sum(special.gammaln(alpha + counts) - special.gammaln(alpha)))
    assert r.elbo == pytest.approx(log_evidence, rel=1e-8)


def test_normal_with_known_precision(tmp_path):
    text = "dim N\nconst m0 = 1.5\nconst s0 = 2.0\ndata x[N]\nmu ~ Normal(m0, sd = s0)\n" \
           "for n in N:\n    x[n] ~ Normal(mu, precision = 0.8)\n"
    x = np.random.default_rng(3).normal(1.0, 1.2, size=9)
    r = fit_text(tmp_path, text, {"x": x})
    lam = 1 / 4 + 0.8 * len(x)
    assert float(r.q["mu"]["sd"]) == pytest.approx(lam ** -0.5, rel=1e-12)
    assert float(r.q["mu"]["mean"]) == pytest.approx((1.5 / 4 + 0.8 * x.sum()) / lam, rel=1e-12)
    cov = 4.0 * np.ones((9, 9)) + np.eye(9) / 0.8
    assert r.elbo == pytest.approx(stats.multivariate_normal(np.full(9, 1.5), cov).logpdf(x), rel=1e-8)


def test_seed_gaussian_19_57(tmp_path):
    v, w = 1.3, np.array([1.0, -0.5])
    # The ELBO is flat (quadratic) at its maximum: iterate on well past its own tolerance.
    r = fit_text(tmp_path, SEED_19_57, {"v": v}, tol=1e-300, max_iter=300)
    exact_mean = np.linalg.solve(np.eye(2) + np.outer(w, w), w * v)
    assert r.q["h"]["mean"] == pytest.approx(exact_mean, abs=1e-9)
    assert r.q["h"]["sd"] == pytest.approx((1 + w ** 2) ** -0.5, rel=1e-12)
    assert r.elbo < stats.norm(0, np.sqrt(1 + w @ w)).logpdf(v)
    assert np.all(np.diff(r.elbo_trace) >= -1e-12)


BSC_FIXED = """
dim N, D
dim M = 6
data v[N, D]
data b[M]
data W[D, M]
data beta[D] : positive
for n in N:
    for i in M:
        h[n, i] ~ Bernoulli(sigmoid(b[i]))
    for j in D:
        v[n, j] ~ Normal(sum(i in M: W[j, i] * h[n, i]), precision = beta[j])
"""


def assert_19_44(hh, v, W, b, beta, tol):
    """Every unit satisfies the fixed point 19.44."""
    B = np.diag(beta)
    N, M = hh.shape
    for n in range(N):
        for i in range(M):
            z = (b[i] + v[n] @ B @ W[:, i] - 0.5 * W[:, i] @ B @ W[:, i]
                 - sum(W[:, j] @ B @ W[:, i] * hh[n, j] for j in range(M) if j != i))
            assert hh[n, i] == pytest.approx(special.expit(z), abs=tol)


def test_binary_sparse_coding_fixed_point_is_19_44_and_elbo_is_19_36(tmp_path):
    rng = np.random.default_rng(7)
    N, D, M = 5, 4, 6
    W, b, beta = rng.normal(size=(D, M)), rng.normal(size=M), rng.uniform(0.5, 2.0, size=D)
    h_true = rng.random((N, M)) < 0.3
    v = h_true @ W.T + rng.normal(size=(N, D)) / np.sqrt(beta)
    r = fit_text(tmp_path, BSC_FIXED, {"v": v, "b": b, "W": W, "beta": beta}, tol=1e-300, max_iter=500)
    hh = r.q["h"]["p"]
    assert_19_44(hh, v, W, b, beta, 1e-8)
    total = 0.0
    for n in range(N):
        h = hh[n]
        prior = np.sum(h * (special.log_expit(b) - np.log(h)) + (1 - h) * (special.log_expit(-b) - np.log1p(-h)))
        quad = np.array([v[n, j] ** 2 - 2 * v[n, j] * W[j] @ h
                         + sum(W[j, a] ** 2 * h[a] + sum(W[j, a] * W[j, c] * h[a] * h[c] for c in range(M) if c != a)
                               for a in range(M)) for j in range(D)])
        total += prior + 0.5 * np.sum(np.log(beta / (2 * np.pi)) - beta * quad)            # 19.35–19.36
    assert r.elbo == pytest.approx(total, rel=1e-10)
    # ELBO ≤ log p(v), with log p(v) by enumerating the 2^M configurations of h.
    log_pv = 0.0
    for n in range(N):
        terms = []
        for bits in itertools.product([0, 1], repeat=M):
            h = np.array(bits, dtype=float)
            lp = np.sum(h * special.log_expit(b) + (1 - h) * special.log_expit(-b))
            lp += np.sum(stats.norm(W @ h, beta ** -0.5).logpdf(v[n]))
            terms.append(lp)
        log_pv += special.logsumexp(terms)
    assert r.elbo <= log_pv + 1e-9


def test_damped_parallel_schedule_reaches_the_same_fixed_point(tmp_path):
    """19.4.1: all units from the previous values, then a step α; the fixed point is still 19.44's."""
    rng = np.random.default_rng(8)
    N, D, M = 4, 5, 6
    W, b, beta = rng.normal(size=(D, M)), rng.normal(size=M), rng.uniform(0.5, 2.0, size=D)
    v = (rng.random((N, M)) < 0.3) @ W.T + rng.normal(size=(N, D)) / np.sqrt(beta)
    r = fit_text(tmp_path, BSC_FIXED, {"v": v, "b": b, "W": W, "beta": beta}, tol=1e-300, max_iter=3000,
                 damping=0.5)
    assert_19_44(r.q["h"]["p"], v, W, b, beta, 1e-7)


def test_damped_mixture_matches_the_sequential_optimum():
    seq = ppvi.load(str(MODELS / "gmm_1d.ppvi")).fit(seed=0, tol=1e-12)
    damped = ppvi.load(str(MODELS / "gmm_1d.ppvi")).fit(seed=0, tol=1e-12, damping=0.6, max_iter=3000)
    assert damped.elbo == pytest.approx(seq.elbo, rel=1e-6)
