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
