"""Draws from a fitted q, their log q, and intervals, on a whole result."""

from __future__ import annotations


import numpy as np
import pytest
from scipy import stats

import ppvi
from result_fits import gmm  # (a shared fixture)


def test_sample_every_latent_with_a_leading_draws_axis(gmm):
    x = gmm.sample(7, seed=1)
    assert list(x) == ["pi", "mu", "Lambda", "z"]
    assert x["pi"].shape == (7, 6) and x["mu"].shape == (7, 6, 2) and x["Lambda"].shape == (7, 6, 2, 2)
    assert x["z"].shape == (7, 272) and x["z"].dtype.kind == "i"
    np.testing.assert_allclose(x["pi"].sum(-1), 1)
    assert (np.linalg.eigvalsh(x["Lambda"]) > 0).all()
    again = gmm.sample(7, seed=1)
    assert all(np.array_equal(x[k], again[k]) for k in x)
    assert not np.array_equal(gmm.sample(7, seed=2)["mu"], x["mu"])
    assert list(gmm.sample(2, var_names="mu")) == ["mu"]


def test_log_q_of_a_draw_is_the_sum_of_scipys_log_densities(gmm):
    x = gmm.sample(3, seed=4)
    alpha = np.asarray(gmm.q["pi"]["alpha"])
    mean, cov = np.asarray(gmm.q["mu"]["mean"]), np.asarray(gmm.q["mu"]["cov"])
    df, scale = np.asarray(gmm.q["Lambda"]["df"]), np.asarray(gmm.q["Lambda"]["scale"])
    p = np.asarray(gmm.q["z"]["p"])
    for i in range(3):
        want_rest = sum(stats.multivariate_normal(mean[k], cov[k]).logpdf(x["mu"][i, k])
                        + stats.wishart(df[k], scale[k]).logpdf(x["Lambda"][i, k]) for k in range(6))
        want_rest += np.log(p[np.arange(272), x["z"][i]]).sum()
        got = gmm.log_q({k: v[i:i + 1] for k, v in x.items() if k != "pi"})[0]
        assert got == pytest.approx(want_rest, rel=1e-9)
        # q(pi) has α = 0.01 on the four empty components: their draws are below 1e-300, kept positive
        assert gmm.log_q({"pi": x["pi"][i:i + 1]})[0] == pytest.approx(stats.dirichlet(alpha).logpdf(x["pi"][i]),
                                                                      rel=1e-9)
    assert np.isfinite(gmm.log_q(gmm.sample(50, seed=5))).all()


def test_interval_of_every_entry(gmm):
    lo, hi = gmm.interval(0.9)["mu"]
    mean, sd = np.asarray(gmm.q["mu"]["mean"]), np.sqrt(np.diagonal(gmm.q["mu"]["cov"], axis1=1, axis2=2))
    np.testing.assert_allclose(lo, stats.norm(mean, sd).ppf(0.05), rtol=1e-12)
    np.testing.assert_allclose(hi, stats.norm(mean, sd).ppf(0.95), rtol=1e-12)
    assert "z" not in gmm.interval(0.9) and gmm.interval(0.5)["Lambda"][0].shape == (6, 2, 2)


def test_mistakes_are_ppvi_errors(gmm):
    for n in (0, -1, 2.5, True, "10"):
        with pytest.raises(ppvi.PPVIError, match="n="):
            gmm.sample(n)
    with pytest.raises(ppvi.PPVIError, match="seed="):
        gmm.sample(2, seed=-1)
    with pytest.raises(ppvi.PPVIError, match="no latent `muu`") as e:
        gmm.sample(2, var_names=["muu"])
    assert "did you mean `mu`?" in e.value.format()
    with pytest.raises(ppvi.PPVIError, match="expected"):
        gmm.log_q({"mu": np.zeros((2, 3))})
