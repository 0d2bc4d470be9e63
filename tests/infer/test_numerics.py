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
