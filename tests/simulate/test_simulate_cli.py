"""``ppvi sample`` and ``ppvi evidence`` end to end, on fits made by ``ppvi run`` (two small compiled models)."""

from __future__ import annotations

import json
import math
import shutil
import warnings

import numpy as np
import pytest
from scipy import special

import ppvi
from conftest import MODELS, run_cli
from simulate_cases import hand_result


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """beta_bernoulli fitted by ``ppvi run``, its model and data copied beside the result."""
    folder = tmp_path_factory.mktemp("simulate")
    for name in ("beta_bernoulli.ppvi", "beta_bernoulli.json"):
        shutil.copy(MODELS / name, folder / name)
    from ppvi.cli import main

    assert main(["run", str(folder / "beta_bernoulli.ppvi"), "--out", str(folder / "r.json"), "--quiet"]) == 0
    return folder


def test_evidence_of_an_exact_fit_is_the_closed_form(fitted, capsys):
    """The mean field is exact for Beta–Bernoulli: log p̂ = ELBO = betaln(a + s, b + n − s) − betaln(a, b)."""
    code, out, err = run_cli(["evidence", fitted / "beta_bernoulli.ppvi", "--given", fitted / "r.json",
                              "--samples", 200, "--seed", 1], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert list(doc) == ["elbo", "log_evidence", "stderr", "gap", "khat", "samples"]
    y = np.asarray(json.loads((fitted / "beta_bernoulli.json").read_text())["y"])
    exact = special.betaln(2 + y.sum(), 2 + len(y) - y.sum()) - special.betaln(2, 2)
    assert doc["log_evidence"] == pytest.approx(exact, abs=1e-9) and doc["elbo"] == pytest.approx(exact, abs=1e-9)
    assert abs(doc["gap"]) < 1e-9 and doc["khat"] == "-Infinity" and doc["samples"] == 200


def test_evidence_of_new_data_is_the_closed_form_predictive(fitted, capsys):
    """`--data` of other content: log E_q(θ)[p(y_new | θ)] = betaln(a + k, b + n − k) − betaln(a, b) for the fit's
    q(θ) = Beta(a, b), against the held-out bound k ψ(a) + (n − k) ψ(b) − n ψ(a + b)."""
    y = np.asarray(json.loads((fitted / "beta_bernoulli.json").read_text())["y"])
    a, b = 2 + y.sum(), 2 + len(y) - y.sum()
    new = np.r_[np.ones(7), np.zeros(3)]
    (fitted / "new.json").write_text(json.dumps({"y": new.astype(int).tolist()}))
    code, out, err = run_cli(["evidence", fitted / "beta_bernoulli.ppvi", "--given", fitted / "r.json",
                              "--samples", 2000, "--seed", 1, "--data", fitted / "new.json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    exact = special.betaln(a + 7, b + 3) - special.betaln(a, b)
    assert doc["elbo"] == pytest.approx(7 * special.digamma(a) + 3 * special.digamma(b) - 10 * special.digamma(a + b),
                                        rel=1e-9)
    assert abs(doc["log_evidence"] - exact) < 3 * doc["stderr"] < 0.1 and doc["khat"] < 0.5
    assert doc["gap"] == pytest.approx(doc["log_evidence"] - doc["elbo"]) and exact > doc["elbo"]


def test_sample_prior_and_predictive_write_npz(fitted, capsys):
    model, result = fitted / "beta_bernoulli.ppvi", fitted / "r.json"
    code, _, err = run_cli(["sample", model, "--draws", 7, "--dim", "N=3", "--out", fitted / "prior.npz"], capsys)
    assert code == 0, err
    with np.load(fitted / "prior.npz") as z:
        assert sorted(z) == ["theta", "y"] and z["y"].shape == (7, 3) and z["theta"].shape == (7,)
    code, _, err = run_cli(["sample", model, "--given", result, "--draws", 5, "--out", fitted / "post.npz"], capsys)
    assert code == 0, err
    with np.load(fitted / "post.npz") as z:
        assert z["y"].shape == (5, 40) and set(np.unique(z["y"])) <= {0, 1}


@pytest.mark.parametrize("argv, message", [
    (["sample", "{model}", "--draws", "3", "--out", "{dir}/x.npz"],
     "beta_bernoulli.ppvi:8:5: error: no size for dim `N`\n    dim N\n        ^\nhint: pass --dim N="),
    (["sample", "{model}", "--draws", "3", "--out", "{dir}/x.json", "--dim", "N=2"], "unknown result format `.json`"),
    (["sample", "{model}", "--given", "{dir}/r.json", "--dim", "N=2", "--draws", "3", "--out", "{dir}/x.npz"],
     "--dim with --given"),
    (["sample", str(MODELS / "linreg.ppvi"), "--draws", "3", "--out", "{dir}/x.npz", "--dim", "N=2"],
     "linreg.ppvi:18:6: error: covariate `X` has no value"),
    (["evidence", "{model}", "--given", "{dir}/r.json", "--samples", "0"], "argument --samples: 0 is not ≥ 1"),
    (["evidence", "{model}", "--samples", "5"], "the following arguments are required: --given"),
    (["evidence", str(MODELS / "gmm.ppvi"), "--given", "{dir}/r.json", "--samples", "5"],
     "r.json is not a fit of this model"),
    (["evidence", "{model}", "--given", "{dir}/r.json", "--samples", "5", "--per-datum"],
     "beta_bernoulli.ppvi:15:1: error: the evidence per data point needs every latent inside the data plate"),
    (["evidence", "{model}", "--given", "{dir}/r.json", "--samples", "5", "--data", "{dir}/bad.json"],
     "bad.json: error: `y[1]` = 2.0 must be 0 or 1 (`y` is binary)"),
])
def test_mistakes_exit_2_with_a_diagnostic(fitted, capsys, argv, message):
    y = json.loads((fitted / "beta_bernoulli.json").read_text())["y"]
    (fitted / "bad.json").write_text(json.dumps({"y": [2 * v for v in y]}))
    argv = [a.format(model=fitted / "beta_bernoulli.ppvi", dir=fitted) for a in argv]
    code, out, err = run_cli(argv, capsys)
    assert code == 2 and message in err and "Traceback" not in err, err


def test_em_mixture_per_datum_evidence_is_its_log_likelihood():
    """EM's q(z) is exact given the params, so every weight is p(x_n): per-datum log p̂(x_n) sum to the fit's
    objective, the log-likelihood, to round-off."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ppvi.PPVIWarning)
        r = ppvi.load(str(MODELS / "em_gmm.ppvi")).fit()
    assert r.objective == "log_likelihood"
    e = r.evidence(100, per_datum=True, seed=0)
    assert e.log_evidence == pytest.approx(r.elbo, rel=1e-10) and e.stderr < 1e-10
    assert e.per_datum["log_evidence"].shape == (300,) and math.isinf(e.khat)
    mu, tau, w = r.params["mu"], r.params["tau"], r.params["weights"]
    x = r.data["x"]
    each = special.logsumexp(np.log(w) + 0.5 * np.log(tau / (2 * np.pi)) - 0.5 * tau * (x[:, None] - mu) ** 2, axis=1)
    assert e.per_datum["log_evidence"] == pytest.approx(each, rel=1e-10)


def test_per_datum_evidence_from_a_saved_result(tmp_path, capsys):
    """A result saved to a file (no data file named: its data were Python objects) with --data of the same
    content: the JSON holds per_datum arrays whose sum is log_evidence."""
    rng = np.random.default_rng(5)
    v = rng.normal(size=(4, 3))
    params = {"b": rng.normal(size=2), "W": rng.normal(size=(3, 2)), "beta": np.ones(3)}
    text = (MODELS / "binary_sparse_coding.ppvi").read_text().replace("dim M = 10", "dim M = 2")
    (tmp_path / "bsc.ppvi").write_text(text)
    r = hand_result(text, {"h": ("Bernoulli", {"p": np.full((4, 2), 0.5)})}, {"v": v}, params=params)
    r.save(str(tmp_path / "r.json"))
    np.savez(tmp_path / "v.npz", v=v)
    code, out, err = run_cli(["evidence", tmp_path / "bsc.ppvi", "--given", tmp_path / "r.json", "--samples", 400,
                              "--per-datum", "--data", tmp_path / "v.npz"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    per = doc["per_datum"]
    assert sorted(per) == ["khat", "log_evidence", "stderr"] and len(per["log_evidence"]) == 4
    assert doc["log_evidence"] == pytest.approx(sum(per["log_evidence"]))
    code, _, err = run_cli(["evidence", tmp_path / "bsc.ppvi", "--given", tmp_path / "r.json", "--samples", 4],
                           capsys)
    assert code == 2 and "the data of the fit are needed (`v`) but not at hand" in err
