"""ArviZ InferenceData from a result (``to_arviz``, ``ppvi export``)."""

from __future__ import annotations

import json
import sys
import warnings

import numpy as np
import pytest

import ppvi
from conftest import MODELS, run_cli
from result_fits import components, gmm, quiet_fit  # (gmm: a shared fixture)

az = pytest.importorskip("arviz")


@pytest.fixture(scope="module")
def idata(gmm):
    return gmm.to_arviz(draws=400, seed=2)


def test_groups_dims_and_attrs(gmm, idata):
    assert set(idata.groups()) == {"posterior", "variational", "observed_data", "sample_stats"}
    post = idata.posterior
    assert post["mu"].dims == ("chain", "draw", "K", "D") and post["mu"].shape == (1, 400, 6, 2)
    assert post["Lambda"].dims == ("chain", "draw", "K", "D", "D_1") and post["z"].dims == ("chain", "draw", "N")
    assert idata.observed_data["x"].dims == ("N", "D")
    np.testing.assert_array_equal(idata.observed_data["x"], gmm.data["x"])
    v = idata.variational
    np.testing.assert_array_equal(v["mu.cov"], gmm.q["mu"]["cov"]) and v["z.p"].dims == ("N", "K")
    assert v["Lambda.df"].dims == ("K",)
    attrs = post.attrs
    assert attrs["inference_library"] == "ppvi" and attrs["inference_library_version"] == ppvi.__version__
    assert "mean-field" in attrs["algorithm"] and attrs["elbo"] == gmm.elbo and attrs["converged"] == 1


def test_log_q_of_each_draw(gmm, idata):
    draws = {k: idata.posterior[k].values[0] for k in gmm.q}
    np.testing.assert_allclose(idata.sample_stats["log_q"].values[0], gmm.log_q(draws), rtol=1e-12)


def test_arviz_summary_accepts_it(gmm, idata):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # (one chain: ArviZ warns that R-hat needs two)
        table = az.summary(idata, var_names=["mu", "pi"], kind="stats")
    mean, sd = np.asarray(gmm.q["mu"]["mean"]), np.sqrt(np.diagonal(gmm.q["mu"]["cov"], axis1=1, axis2=2))
    for k in components(gmm)[0]:
        for d in (0, 1):
            assert abs(table.loc[f"mu[{k}, {d}]", "mean"] - mean[k, d]) < 5 * sd[k, d] / np.sqrt(400) + 1e-3


def test_export_command_writes_netcdf(gmm, tmp_path, capsys):
    gmm.save(str(tmp_path / "r.json"))
    out = tmp_path / "r.nc"
    code, _, err = run_cli(["export", tmp_path / "r.json", "--draws", "50", "--out", out], capsys)
    assert code == 0, err
    back = az.from_netcdf(str(out))
    assert back.posterior["mu"].shape == (1, 50, 6, 2) and "observed_data" in back.groups()
    assert back.posterior.attrs["model"] == "gmm"


def test_export_mistakes_exit_2(gmm, tmp_path, capsys):
    gmm.save(str(tmp_path / "r.json"))
    code, _, err = run_cli(["export", tmp_path / "r.json", "--out", tmp_path / "r.csv"], capsys)
    assert code == 2 and "unknown export format `.csv`" in err
    code, _, err = run_cli(["export", tmp_path / "r.json", "--out", tmp_path / "no" / "r.nc"], capsys)
    assert code == 2 and "no such folder" in err
    code, _, err = run_cli(["export", tmp_path / "nope.json", "--out", tmp_path / "r.nc"], capsys)
    assert code == 2 and "cannot read" in err
    code, _, err = run_cli(["export", tmp_path / "r.json", "--draws", "0", "--out", tmp_path / "r.nc"], capsys)
    assert code == 2 and "--draws" in err


def test_without_arviz_a_clear_error(gmm, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "arviz", None)          # (import arviz raises ImportError)
    with pytest.raises(ppvi.PPVIError, match="ArviZ is not installed") as e:
        gmm.to_arviz(draws=10)
    assert 'pip install "ppvi[arviz]"' in e.value.format()
    gmm.save(str(tmp_path / "r.json"))
    code, _, err = run_cli(["export", tmp_path / "r.json", "--out", tmp_path / "r.nc"], capsys)
    assert code == 2 and "ArviZ is not installed" in err and "Traceback" not in err


def test_observed_data_from_the_provenance_or_given(tmp_path):
    x = np.array([1.0, 1.1, 0.9, 3.0, 3.2, 2.8])
    r = quiet_fit(MODELS / "gmm_1d.ppvi", {"eruptions": x}, max_iter=5)
    r.save(str(tmp_path / "r.npz"))
    back = ppvi.load_result(str(tmp_path / "r.npz"))
    with pytest.warns(ppvi.PPVIWarning, match="observed_data is left out: the result names no data file"):
        assert "observed_data" not in back.to_arviz(draws=5).groups()
    given = back.to_arviz(draws=5, data={"eruptions": x})
    np.testing.assert_array_equal(given.observed_data["eruptions"], x)
    with pytest.raises(ppvi.PPVIError, match="6"):
        back.to_arviz(draws=5, data={"eruptions": x[:4]})       # not the data q(z) was fitted to


def test_a_wishart_over_no_plate(tmp_path):
    """A scalar Wishart's df was written with shape (1,) (its state's), and named by the scale's first dim."""
    doc = {"model": "w", "elbo": -1.0, "elbo_trace": [-1.0], "iterations": 1, "converged": True, "params": {},
           "q": {"Lambda": {"family": "Wishart", "mean": [[[5.0, 0.0], [0.0, 5.0]]], "df": [5.0],
                            "scale": [[1.0, 0.0], [0.0, 1.0]]}},
           "axes": {"Lambda": ["D", "D"]}}
    (tmp_path / "w.json").write_text(json.dumps(doc))
    with pytest.warns(ppvi.PPVIWarning, match="observed_data is left out"):
        i = ppvi.load_result(str(tmp_path / "w.json")).to_arviz(draws=50, seed=1)
    assert i.variational["Lambda.df"].dims == () and float(i.variational["Lambda.df"]) == 5.0
    assert i.variational["Lambda.scale"].dims == ("D", "D_1") and i.posterior["Lambda"].shape == (1, 50, 2, 2)


def test_restarts_are_chains(tmp_path):
    """Each restart's q is a chain (kept while q is small); the result file keeps only the best start."""
    x = np.array([1.0, 1.1, 0.9, 3.0, 3.2, 2.8, 1.05, 2.9])
    r = quiet_fit(MODELS / "gmm_1d.ppvi", {"eruptions": x}, restarts=3, max_iter=20)
    assert len(r.chains) == 3 and r.chains[r.restart] == dict(r.q) and len(r.chain_elbos) == 3
    i = r.to_arviz(draws=200, seed=4)
    assert i.posterior["mu"].shape == (3, 200, 3) and list(i.posterior.chain.values) == [0, 1, 2]
    for c, q in enumerate(r.chains):
        # each chain's draws come from its own restart's q, and log_q is under that q
        draws = {k: i.posterior[k].values[c] for k in r.q}
        np.testing.assert_allclose(i.sample_stats["log_q"].values[c], _log_q_under(r, q, draws), rtol=1e-12)
        assert np.all(np.abs(draws["mu"].mean(0) - q["mu"]["mean"]) < 5 * q["mu"]["sd"] / np.sqrt(200))
    np.testing.assert_array_equal(i.sample_stats["elbo"].values, r.chain_elbos)
    assert r.chain_elbos[r.restart] == r.elbo
    r.save(str(tmp_path / "r.json"))
    back = ppvi.load_result(str(tmp_path / "r.json"))
    assert back == r and back.chains == ()
    assert back.to_arviz(draws=10, data={"eruptions": x}).posterior["mu"].shape == (1, 10, 3)


def _log_q_under(r, q, draws):
    import dataclasses

    return dataclasses.replace(r, q=q, chains=()).log_q(draws)
