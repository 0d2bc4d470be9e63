"""Results you can use: a data object that displays, summarises, saves and loads without losing anything."""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import math
import sys
import time
import warnings

import numpy as np
import pytest

import ppvi
from conftest import MODELS, run_cli
from result_fits import fitted, gmm, gmm_1d, quiet_fit  # (gmm, gmm_1d: shared fixtures)
from ppvi.result import Q, Result

# Every example model round-trips with --long; by default the two whose kernels the other result tests
# compile anyway (Normal, Gamma, MvNormal, Wishart, Dirichlet, Categorical) and a small one (Beta); every family
# and params also in a Result made by hand.
FAST = ("gmm", "gmm_1d", "beta_bernoulli")
EXAMPLES = [pytest.param(p, id=p.stem, marks=() if p.stem in FAST else pytest.mark.long)
            for p in sorted(MODELS.glob("*.ppvi"))]


# ----------------------------------------------------------------- display
def test_repr_is_short(gmm):
    """It was 30 kB (the dataclass repr of the live fit, every array of the state)."""
    text = repr(gmm)
    assert len(text) < 300, text
    assert "gmm" in text and "converged" in text and "MvNormal" in text


def test_html_display(gmm):
    page = gmm._repr_html_()
    assert page.startswith("<div") and "<table>" in page and "Dirichlet" in page and len(page) < 20_000


def test_documented_properties(gmm):
    assert isinstance(gmm.iterations, int) and gmm.iterations == len(gmm.elbo_trace) > 1
    assert gmm.converged is True and gmm.interrupted is False and gmm.seconds > 0
    assert gmm.elbo == gmm.elbo_trace[-1] and gmm.warnings == ()
    assert gmm.objective == "elbo"
    assert gmm.q["mu"].family == "MvNormal" and gmm.q["mu"].axes == ("K", "D")
    assert gmm.q["Lambda"].axes == ("K", "D", "D") and gmm.q["z"].categories == "K"
    assert set(gmm.q["mu"]) == {"family", "mean", "cov"} and gmm.q["mu"]["mean"].shape == (6, 2)
    assert gmm.axes == {"x": ("N", "D")}


def test_the_result_is_data_not_a_view_of_later_changes(gmm):
    with pytest.raises(ValueError):
        gmm.q["mu"]["mean"][0, 0] = 1.0           # read-only: a user cannot change q in place by mistake


def test_stopping_at_max_iter_warns(tmp_path, capsys):
    with pytest.warns(ppvi.PPVIWarning, match=r"stopped after max_iter = 3 iterations without converging") as rec:
        r = ppvi.load(str(MODELS / "gmm_1d.ppvi")).fit(max_iter=3)
    assert rec[0].message.diagnostic.severity == "warning" and rec[0].filename == __file__
    assert not r.converged and len(r.warnings) == 1 and "max_iter = 3" in r.warnings[0]
    code, _, err = run_cli(["run", MODELS / "gmm_1d.ppvi", "--max-iter", "3", "--quiet"], capsys)
    assert code == 0 and f"{MODELS / 'gmm_1d.ppvi'}: warning: stopped after max_iter = 3" in err
    assert "hint: raise max_iter (--max-iter)" in err
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # tol = 0 asks for max_iter sweeps: nothing to warn about
        ppvi.load(str(MODELS / "gmm_1d.ppvi")).fit(max_iter=3, tol=0)


# ----------------------------------------------------------------- files
def test_round_trip_json_and_npz_equal(gmm, tmp_path):
    for ext in ("json", "npz"):
        path = tmp_path / f"r.{ext}"
        gmm.save(str(path))
        back = ppvi.load_result(str(path))
        assert back == gmm, ext
        assert back.fit is None and back.provenance == gmm.provenance
        assert str(back.summary(width=100)) == str(gmm.summary(width=100))
        np.testing.assert_array_equal(back.sample(5, seed=3)["Lambda"], gmm.sample(5, seed=3)["Lambda"])


def declared_shapes(family: str, value: tuple[int, ...], categories: int | None = None) -> dict[str, tuple]:
    """The shape of each standard parameter (DESIGN §3) of a q whose value has shape ``value`` (its plates,
    then its event axes): one parameter per value entry, a covariance per vector, a df per matrix."""
    if family == "Categorical":
        return {"p": (*value, categories)}
    if family == "MvNormal":
        return {"mean": value, "cov": (*value, value[-1])}
    if family == "Wishart":
        return {"df": value[:-2], "scale": value}
    names = {"Normal": ("mean", "sd"), "Gamma": ("shape", "rate"), "Beta": ("a", "b"), "Bernoulli": ("p",),
             "Dirichlet": ("alpha",), "point": ("value",)}[family]
    return {name: value for name in names}


@pytest.mark.parametrize("path", EXAMPLES)
def test_every_example_round_trips(path, tmp_path):
    r = fitted(path.stem, max_iter=5)
    dims = r.provenance.dims
    for name, q in r.q.items():
        value = tuple(dims[a] for a in q.axes)
        k = dims.get(q.categories) if q.family == "Categorical" else None
        assert {p: np.shape(a) for p, a in q.params.items()} == declared_shapes(q.family, value, k), name
        assert q.shape == value and np.shape(q.mean) == value, name
    for ext in ("json", "npz"):
        r.save(str(tmp_path / f"r.{ext}"))
        assert ppvi.load_result(str(tmp_path / f"r.{ext}")) == r, ext


def test_every_family_round_trips(tmp_path):
    """A Result of every family (and a param), made by hand: what a Bernoulli or a point q writes is read back."""
    rng = np.random.default_rng(4)
    spd = np.array([[2.0, 0.3], [0.3, 1.0]])
    families = {"Normal": {"mean": rng.normal(size=3), "sd": rng.random(3) + 0.1},
                "MvNormal": {"mean": rng.normal(size=(3, 2)), "cov": np.stack([spd] * 3)},
                "Gamma": {"shape": rng.random((3, 2)) + 1, "rate": rng.random((3, 2)) + 1},
                "Beta": {"a": rng.random(3) + 1, "b": rng.random(3) + 1},
                "Bernoulli": {"p": np.array([0.0, 0.25, 1.0])},
                "Categorical": {"p": rng.dirichlet(np.ones(4), size=3)},
                "Dirichlet": {"alpha": rng.random((3, 4)) + 0.5},
                "Wishart": {"df": np.array(5.0), "scale": spd},
                "point": {"value": np.array([1.5, -np.inf, np.nan])}}
    q = {f.lower(): Q(f, params, ("N", "D", "D")[:posterior_ndim(f, params)], "K" if f == "Categorical" else None)
         for f, params in families.items()}
    r = Result(model="every", elbo=-np.inf, elbo_trace=(np.nan, -np.inf), iterations=2, converged=False, q=q,
               params={"w": np.arange(3.0)}, axes={"w": ("N",)}, objective="log_joint")
    for ext in ("json", "npz"):
        r.save(str(tmp_path / f"r.{ext}"))
        back = ppvi.load_result(str(tmp_path / f"r.{ext}"))
        assert back == r, ext
        assert {k: e.axes for k, e in back.q.items()} == {k: e.axes for k, e in q.items()}
    draws = back.sample(3, seed=0)
    assert set(draws) == set(q) and all(draws[k].shape == (3, *q[k].shape) for k in q)


def posterior_ndim(family: str, params: dict) -> int:
    """The number of axes of a value of q (the test's own reading of DESIGN §3)."""
    first = {"Categorical": "p", "Wishart": "scale", "point": "value"}.get(family, next(iter(params)))
    return np.ndim(params[first]) - (family == "Categorical")


def test_nan_and_infinity_are_kept(gmm_1d, tmp_path):
    """JSON has no NaN: they were written as null, and lost."""
    state = gmm_1d.fit.program.state
    saved = state["q_mu__mean"].copy(), state["q_tau__rate"].copy()
    state["q_mu__mean"][0] = np.nan
    state["q_tau__rate"][1] = np.inf
    state["q_tau__rate"][2] = -np.inf
    try:
        gmm_1d.save(str(tmp_path / "r.json"))
        gmm_1d.save(str(tmp_path / "r.npz"))
        raw = json.loads((tmp_path / "r.json").read_text())
        assert raw["q"]["mu"]["mean"][0] == "NaN" and raw["q"]["tau"]["rate"][1:] == ["Infinity", "-Infinity"]
        for ext in ("json", "npz"):
            back = ppvi.load_result(str(tmp_path / f"r.{ext}"))
            assert np.isnan(back.q["mu"]["mean"][0]) and back.q["tau"]["rate"][1] == np.inf
            assert back == gmm_1d
    finally:
        state["q_mu__mean"][...], state["q_tau__rate"][...] = saved


def test_file_keys_keep_their_meaning_and_carry_provenance(gmm, tmp_path):
    gmm.save(str(tmp_path / "r.json"))
    d = json.loads((tmp_path / "r.json").read_text())
    assert {"model", "elbo", "elbo_trace", "iterations", "converged", "q", "params"} <= set(d)
    assert d["model"] == "gmm" and d["elbo"] == gmm.elbo and d["elbo_trace"] == list(gmm.elbo_trace)
    assert d["q"]["mu"]["family"] == "MvNormal" and np.shape(d["q"]["mu"]["cov"]) == (6, 2, 2)
    assert set(d["q"]["Lambda"]) == {"family", "mean", "df", "scale"}
    p = d["provenance"]
    model_text = (MODELS / "gmm.ppvi").read_text()
    assert p["ppvi"] == ppvi.__version__ and p["model_text"] == model_text
    assert p["model_sha256"] == hashlib.sha256(model_text.encode()).hexdigest()
    assert p["data_path"] == str(MODELS / "gmm.csv")
    assert p["data_sha256"] == hashlib.sha256((MODELS / "gmm.csv").read_bytes()).hexdigest()
    assert p["dims"] == {"N": 272, "D": 2, "K": 6}
    assert (p["seed"], p["tol"], p["max_iter"], p["damping"], p["restarts"], p["schedule"]) == \
        (0, 1e-8, 1000, None, 1, "sequential")
    # the schedule by the model's structure (docs/architecture.md): a location (mu) before its scale (Lambda)
    assert p["sweep"] == ["mu", "pi", "Lambda", "z"] and d["warnings"] == []


def test_provenance_of_python_data():
    x = np.array([1.0, 1.2, 0.9, 3.0, 3.1, 2.9])
    r = quiet_fit(MODELS / "gmm_1d.ppvi", {"eruptions": x}, max_iter=5)     # (damped: more kernels to compile)
    assert r.provenance.data_path is None and r.provenance.schedule == "sequential" and r.provenance.damping is None
    from ppvi.io.results import sha256_of_arrays

    assert r.provenance.data_sha256 == sha256_of_arrays({"eruptions": x})
    assert r.provenance.data_sha256 != sha256_of_arrays({"eruptions": x + 1e-12})


def test_extension_decides_and_unknown_is_an_error(gmm, tmp_path):
    for bad in ("r.csv", "r"):
        with pytest.raises(ppvi.PPVIError, match="unknown result format"):
            gmm.save(str(tmp_path / bad))
        with pytest.raises(ppvi.PPVIError, match="unknown result format"):
            ppvi.load_result(str(tmp_path / bad))
    gmm.save(str(tmp_path / "UPPER.NPZ"))
    assert ppvi.load_result(str(tmp_path / "UPPER.NPZ")) == gmm


@pytest.mark.parametrize("content, key", [
    (b"not json", None),
    (b"[1, 2]", "(top level)"),
    (json.dumps({"model": "m", "elbo": "x", "elbo_trace": [1], "iterations": 1, "converged": True,
                 "q": {}}).encode(), "elbo"),
    (json.dumps({"model": "m", "elbo": 1, "elbo_trace": [1], "iterations": 1, "converged": True,
                 "q": {"mu": {"family": "Normal", "mean": [0], "sd": "wide"}}}).encode(), "q/mu/sd"),
    (json.dumps({"model": "m", "elbo": 1, "elbo_trace": [1], "iterations": 1, "converged": True,
                 "q": {"mu": {"family": "Cauchy"}}}).encode(), "q/mu/family"),
])
def test_a_file_that_is_not_a_result_is_a_ppvi_error(tmp_path, content, key):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(ppvi.PPVIError) as e:
        ppvi.load_result(str(path))
    assert e.value.format().startswith(f"{path}: error: not a ppvi result file")
    if key:
        assert f"`{key}`" in e.value.format()
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ppvi.PPVIError, match="not a ppvi result file"):
        ppvi.load_result(str(tmp_path / "bad.npz"))
    with pytest.raises(ppvi.PPVIError, match="cannot read"):
        ppvi.load_result(str(tmp_path / "missing.json"))


def test_a_file_of_the_first_layout_loads(tmp_path):
    """Written before provenance, axes and the NaN strings: null was a non-finite number."""
    old = {"model": "gmm_1d", "elbo": -313.7, "elbo_trace": [-400.0, None, -313.7], "iterations": 3,
           "converged": True, "params": {},
           "q": {"mu": {"family": "Normal", "mean": [1.0, 2.0], "sd": [0.1, None]},
                 "z": {"family": "Categorical", "mean": [0.2], "p": [[0.8, 0.2]]}}}
    (tmp_path / "old.json").write_text(json.dumps(old))
    r = ppvi.load_result(str(tmp_path / "old.json"))
    assert r.provenance is None and r.objective == "elbo" and math.isnan(r.elbo_trace[1])
    assert r.q["mu"].axes == ("mu_dim_0",) and np.isnan(r.q["mu"]["sd"][1]) and r.q["z"].categories == "z_dim_1"
    assert "z  Categorical over z_dim_1 = 2" in str(r.summary())


def test_parameters_take_their_declared_shapes_on_loading(tmp_path):
    """The first layout wrote a Wishart's df over no plate as [1] (rank-0 state is stored as shape (1,)); a
    parameter shared along an axis may come as [K, 1] for a q over [K, D]: each gets its declared shape."""
    old = {"model": "m", "elbo": -1.0, "elbo_trace": [-1.0], "iterations": 1, "converged": True, "params": {},
           "q": {"Lambda": {"family": "Wishart", "mean": [[[4.0, 0.0], [0.0, 4.0]]], "df": [4.0],
                            "scale": [[1.0, 0.0], [0.0, 1.0]]},
                 "tau": {"family": "Gamma", "mean": [[1.0, 2.0, 3.0]] * 2, "shape": [[3.0], [5.0]],
                         "rate": [[3.0, 1.5, 1.0], [5.0, 2.5, 5 / 3]]}}}
    (tmp_path / "old.json").write_text(json.dumps(old))
    r = ppvi.load_result(str(tmp_path / "old.json"))
    assert r.q["Lambda"]["df"].shape == () and r.q["Lambda"].shape == (2, 2) and r.q["Lambda"].axes == (
        "Lambda_dim_0", "Lambda_dim_1")
    assert r.q["Lambda"]["mean"] == pytest.approx(4 * np.eye(2)) and r.sample(3)["Lambda"].shape == (3, 2, 2)
    assert r.q["tau"]["shape"].tolist() == [[3.0] * 3, [5.0] * 3] and r.q["tau"].shape == (2, 3)
    assert r.q["tau"]["mean"] == pytest.approx(np.array([[1.0, 2.0, 3.0]] * 2))
    assert r.sample(4)["tau"].shape == (4, 2, 3)
    old["q"]["tau"]["shape"] = [[3.0, 1.0]]
    (tmp_path / "bad.json").write_text(json.dumps(old))
    with pytest.raises(ppvi.PPVIError, match="`q/tau/shape` should be"):
        ppvi.load_result(str(tmp_path / "bad.json"))


def _big_result(n: int) -> Result:
    p = np.random.default_rng(0).dirichlet(np.ones(6), size=n)
    return Result(model="m", elbo=-1.0, elbo_trace=(-2.0, -1.0), iterations=2, converged=True,
                  q={"z": Q("Categorical", {"p": p}, ("N",), "K"),
                     "mu": Q("Normal", {"mean": np.zeros(6), "sd": np.ones(6)}, ("K",))}, params={})


def test_large_local_arrays_are_written_fast(tmp_path):
    """A 10⁶-point mixture's q(z): NPZ well under a second; JSON by the C encoder, with no Python call per
    number (a few hundred more Python calls for 10⁵ points than for 10³; it was a call per number, 16 s)."""
    from ppvi.io.results import to_json

    big = _big_result(10 ** 6)
    start = time.process_time()
    big.save(str(tmp_path / "big.npz"))
    assert time.process_time() - start < 1.0
    assert ppvi.load_result(str(tmp_path / "big.npz")) == big

    def python_calls(r: Result) -> int:
        count = 0

        def profile(frame, event, arg):
            nonlocal count
            count += event == "call"
        gc.disable()              # (a collection runs the callbacks others registered: not ours to count)
        sys.setprofile(profile)
        try:
            to_json(r)
        finally:
            sys.setprofile(None)
            gc.enable()
        return count

    # a few calls per piece of 2¹⁶ numbers (written as they are made, io.results.JSON_PIECE), none per number:
    # 6·10⁵ numbers more cost a few hundred calls, not 6·10⁵
    assert python_calls(_big_result(10 ** 5)) - python_calls(_big_result(10 ** 3)) < 1000


def test_the_cli_writes_what_load_result_reads(tmp_path, capsys):
    out = tmp_path / "r.npz"
    code, _, err = run_cli(["run", MODELS / "gmm_1d.ppvi", "--out", out, "--quiet", "--seed", "1"], capsys)
    assert code == 0, err
    r = ppvi.load_result(str(out))
    assert r.provenance.seed == 1 and r.provenance.model_path == str(MODELS / "gmm_1d.ppvi")
    assert r.q["z"]["p"].shape == (272, 3)


def test_equality_sees_every_field(gmm):
    assert gmm == dataclasses.replace(gmm, fit=None, data=None)
    assert gmm != dataclasses.replace(gmm, elbo=gmm.elbo + 1e-12)
    q = dict(gmm.q)
    q["mu"] = Q("MvNormal", {"mean": gmm.q["mu"]["mean"] + 0.0, "cov": gmm.q["mu"]["cov"] * (1 + 1e-15)}, ("K", "D"))
    assert gmm != dataclasses.replace(gmm, q=q)
