"""Extreme but valid data: no NaN, no infinite ELBO (log space, log-sum-exp, softplus)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

import ppvi
from conftest import MODELS


def test_all_ones_coin_flips_at_a_million():
    y = np.ones(1_000_000, dtype=np.int64)
    r = ppvi.load(str(MODELS / "beta_bernoulli.ppvi")).fit({"y": y})
    a, b = 2.0, 2.0
    assert r.elbo == pytest.approx(special.betaln(a + y.size, b) - special.betaln(a, b), rel=1e-10)


def test_huge_counts():
    y = np.array([10**9, 3 * 10**9, 0, 7])
    r = ppvi.load(str(MODELS / "gamma_poisson.ppvi")).fit({"discoveries": y})
    assert np.isfinite(r.elbo) and np.isfinite(float(r.q["rate"]["mean"]))


@pytest.mark.parametrize("scale", [1e-6, 1e6])
def test_mixture_on_badly_scaled_data(scale):
    x = np.loadtxt(MODELS / "gmm_1d.csv", delimiter=",", skiprows=1) * scale
    r = ppvi.load(str(MODELS / "gmm_1d.ppvi")).fit({"eruptions": x}, max_iter=300)
    assert np.isfinite(r.elbo)
    assert np.all(np.isfinite(r.q["z"]["p"])) and np.allclose(r.q["z"]["p"].sum(1), 1)
    assert np.all(np.diff(r.elbo_trace) >= -1e-9 * np.abs(r.elbo_trace[1:]))


def test_binary_units_with_enormous_logits(tmp_path):
    """Logits of ±1e4: q(h) saturates at 0 or 1 without log(0) in the entropy."""
    text = ("dim N, D\ndim M = 3\ndata v[N, D]\ndata b[M]\ndata W[D, M]\ndata beta[D] : positive\n"
            "for n in N:\n    for i in M:\n        h[n, i] ~ Bernoulli(sigmoid(b[i]))\n"
            "    for j in D:\n        v[n, j] ~ Normal(sum(i in M: W[j, i] * h[n, i]), precision = beta[j])\n")
    path = tmp_path / "m.ppvi"
    path.write_text(text)
    rng = np.random.default_rng(0)
    W = rng.normal(size=(4, 3))
    r = ppvi.load(str(path)).fit({"v": rng.normal(size=(5, 4)) * 100, "b": np.array([1e4, -1e4, 0.0]),
                                   "W": W, "beta": np.full(4, 1e3)})
    p = r.q["h"]["p"]
    assert np.isfinite(r.elbo) and np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))


def test_em_with_a_component_far_from_every_point():
    """A start with one mean a million away from the data: its responsibilities underflow to exactly 0,
    so its M-step is 0/0 (any mean and precision maximise; the previous ones are kept) and its weight
    goes to 0, making every E[log p] term of it 0 · log 0 = 0.  The fit must still be exact EM: the
    final value is log p(x; θ) of the final θ, computed here by log-sum-exp, and one more EM step of
    PRML 9.23–9.27 (in NumPy) leaves θ where it is."""
    import json

    data = json.loads((MODELS / "em_gmm.json").read_text())
    x = np.asarray(data["x"], dtype=float)
    start = {"x": x, "mu": np.array([-2.0, 1.0, 1e6]), "tau": np.array([1.0, 4.0, 2.0]),
             "weights": np.array([0.5, 0.3, 0.2])}
    r = ppvi.load(str(MODELS / "em_gmm.ppvi")).fit(start, max_iter=2000, tol=1e-13)
    w, mu, tau = (np.asarray(r.params[k], dtype=float) for k in ("weights", "mu", "tau"))
    assert w[2] == 0.0 and mu[2] == 1e6 and tau[2] == 2.0        # the empty component, kept as it was
    assert np.all(np.diff(r.elbo_trace) >= -1e-9 * np.abs(r.elbo_trace[1:]))

    with np.errstate(divide="ignore"):
        logp = np.log(w) + 0.5 * np.log(tau / (2 * np.pi)) - 0.5 * tau * (x[:, None] - mu) ** 2
    loglik = special.logsumexp(logp, axis=1)
    assert r.elbo == pytest.approx(loglik.sum(), rel=1e-10)
    resp = np.exp(logp - loglik[:, None])
    nk = resp.sum(0)
    live = nk > 0
    assert list(live) == [True, True, False]
    mu_next = (resp[:, live] * x[:, None]).sum(0) / nk[live]
    var_next = (resp[:, live] * (x[:, None] - mu_next) ** 2).sum(0) / nk[live]
    assert np.allclose(nk / x.size, w, atol=1e-6)
    assert np.allclose(mu_next, mu[live], rtol=1e-5)
    assert np.allclose(1 / var_next, tau[live], rtol=1e-5)


# ---------------------------------------------------------------- data far from zero (codegen.centre)
def _normal_gamma_cavi(x: np.ndarray, m0: float, s0: float, a0: float, b0: float, sweeps: int = 500):
    """Mean-field CAVI of μ ~ N(m0, s0²), τ ~ Gamma(a0, b0), x ~ N(μ, 1/τ) (PRML 10.1.3 with μ's own prior),
    in centred form: every square of the data and of μ formed around c = mean(x).  -> (m, s, a, b, ELBO)."""
    N, c = x.size, x.mean()
    S1, S2 = np.sum(x - c), np.sum((x - c) ** 2)
    a, m, s2 = a0 + N / 2, c, np.var(x)      # from q(μ) at the data, in their basin
    for _ in range(sweeps):
        scatter = S2 - 2 * (m - c) * S1 + N * ((m - c) ** 2 + s2)       # E Σ(x − μ)²
        b = b0 + scatter / 2
        et = a / b
        prec = 1 / s0 ** 2 + N * et
        m = c + ((m0 - c) / s0 ** 2 + et * S1) / prec
        s2 = 1 / prec
    scatter = S2 - 2 * (m - c) * S1 + N * ((m - c) ** 2 + s2)
    b = b0 + scatter / 2
    et, elog = a / b, special.digamma(a) - np.log(b)
    elbo = (N / 2 * elog - N / 2 * np.log(2 * np.pi) - et * scatter / 2
            - 0.5 * np.log(2 * np.pi * s0 ** 2) - ((m - m0) ** 2 + s2) / (2 * s0 ** 2)
            + a0 * np.log(b0) - special.gammaln(a0) + (a0 - 1) * elog - b0 * et
            + 0.5 * np.log(2 * np.pi * np.e * s2) + a - np.log(b) + special.gammaln(a) + (1 - a) * special.digamma(a))
    return m, np.sqrt(s2), a, b, elbo


@pytest.mark.long
def test_normal_gamma_on_data_far_from_zero():
    """models/normal_gamma.ppvi's mean field on data of mean 1e8 and sd 1, μ's prior mean moved there too (with
    the model's own N(0, 100²) such data have no basin of their own: τ ~ 1e-16 and μ near 0 is the only fixed
    point): q and the ELBO those of the centred NumPy CAVI.  On main Σx² − 2⟨μ⟩Σx + N⟨μ²⟩ lost the scatter."""
    from ppvi.api import Model
    from ppvi.language import loads

    x = np.random.default_rng(2).normal(1e8, 1.0, size=60)
    text = (MODELS / "normal_gamma.ppvi").read_text()
    assert "const m0 = 0.0" in text and "const s0 = 100.0" in text and "const b0 = 1.0" in text
    model = Model(loads(text.replace("const m0 = 0.0", "const m0 = 100000000.0"), "far.ppvi"))
    r = model.fit({"waiting": x}, tol=1e-14, max_iter=500)
    m, s, a, b, elbo = _normal_gamma_cavi(x, 1e8, 100.0, 1.0, 1.0)
    assert abs(float(r.q["mu"]["mean"]) - m) <= 1e-8 * s + 4 * np.spacing(m)      # (1e8's grid: 1.5e-8)
    np.testing.assert_allclose([float(r.q["mu"]["sd"]), float(r.q["tau"]["shape"]), float(r.q["tau"]["rate"])],
                               [s, a, b], rtol=1e-8)
    assert r.elbo == pytest.approx(elbo, rel=1e-10)


GMM_PRIOR_AT = "const m0 = 0.0"


@pytest.mark.long
def test_mixture_is_shift_invariant():
    """gmm_1d with its data and μ's prior mean moved by 1e8 gives the responsibilities of the data where they
    were, to 1e-8 (the data moved back exactly: x + 1e8 − 1e8 is x's double rounded to 1e8's grid)."""
    from ppvi.api import Model
    from ppvi.language import loads

    moved = np.loadtxt(MODELS / "gmm_1d.csv", delimiter=",", skiprows=1)[:80] + 1e8
    text = (MODELS / "gmm_1d.ppvi").read_text()
    assert GMM_PRIOR_AT in text
    far = Model(loads(text.replace(GMM_PRIOR_AT, "const m0 = 100000000.0"), "far.ppvi"))
    near = ppvi.load(str(MODELS / "gmm_1d.ppvi"))
    r_far = far.fit({"eruptions": moved}, tol=1e-15, max_iter=3000)
    r_near = near.fit({"eruptions": moved - 1e8}, tol=1e-15, max_iter=3000)
    np.testing.assert_allclose(r_far.q["z"]["p"], r_near.q["z"]["p"], atol=1e-8)
    np.testing.assert_allclose(np.asarray(r_far.q["mu"]["mean"]) - 1e8, r_near.q["mu"]["mean"], atol=1e-7)
    assert r_far.elbo == pytest.approx(r_near.elbo, rel=1e-8)


INTERCEPT = """dim N
data x[N]
data y[N]
b ~ Normal(0.0, sd = 1000000000.0)
w ~ Normal(0.0, sd = 1000.0)
tau ~ Gamma(1.0, 1.0)
for n in N:
    y[n] ~ Normal(b + w * x[n], precision = tau)
"""


@pytest.mark.long
def test_regression_with_a_large_intercept():
    """y = 1e8 + 2x + noise (sd 0.5): the intercept is located by y's shift, so q(τ) keeps the residuals'
    scatter; q against a NumPy CAVI of the same mean field (residuals formed first)."""
    from ppvi.api import Model
    from ppvi.language import loads

    rng = np.random.default_rng(3)
    x = rng.normal(0.0, 1.0, size=40)
    y = 1e8 + 2 * x + rng.normal(0.0, 0.5, size=40)
    r = Model(loads(INTERCEPT, "intercept.ppvi")).fit({"x": x, "y": y}, tol=1e-15, max_iter=5000)
    N = x.size
    mb, vb, mw, vw, a, bt = 0.0, 1.0, 0.0, 1.0, 1.0 + N / 2, 1.0
    for _ in range(5000):
        et = a / bt
        pb = 1e-18 + N * et
        mb = mb + (et * np.sum(y - mb - mw * x) - 1e-18 * mb) / pb      # (τΣ(y − wx) + 0/σ²)/pb, residuals first
        vb = 1 / pb
        pw = 1e-6 + et * np.sum(x ** 2)
        mw = et * np.sum(x * (y - mb)) / pw
        vw = 1 / pw
        resid = y - mb - mw * x
        bt = 1.0 + 0.5 * (np.sum(resid ** 2) + N * vb + np.sum(x ** 2) * vw)
    assert abs(float(r.q["b"]["mean"]) - mb) <= 1e-6 * np.sqrt(vb)
    np.testing.assert_allclose([float(r.q["w"]["mean"]), float(r.q["tau"]["rate"])], [mw, bt], rtol=1e-8)
