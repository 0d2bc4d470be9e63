"""Warm starts (``fit(init=…)``, ``ppvi run --init``): an earlier result's q and params, set consistently;
mistakes in the start reported naming the variable; and ``tol`` = 0 (run to ``max_iter``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import ppvi
from conftest import MODELS, run_cli
from ppvi.errors import PPVIError

# together the families of q: MvNormal, Wishart, Dirichlet, Categorical (gmm); Normal, Gamma (normal_gamma);
# Beta and a Categorical over a Bernoulli likelihood (bernoulli_mixture); Bernoulli with params
# (binary_sparse_coding); a MAP point (sparse_coding)
WARM = ["gmm", "normal_gamma", "bernoulli_mixture", "binary_sparse_coding", "sparse_coding"]


@pytest.fixture(scope="module")
def converged():
    """Each model's fit to tol 1e-12; sparse coding's (its slow dictionary) 20 sweeps: only its state is used."""
    return {name: ppvi.load(str(MODELS / f"{name}.ppvi")).fit(tol=0 if name == "sparse_coding" else 1e-12,
                                                               max_iter=20 if name == "sparse_coding" else 300)
            for name in WARM}


@pytest.mark.parametrize("name", WARM[:-1])
def test_a_fit_continued_from_its_converged_result_converges_in_one_sweep(name, converged):
    first = converged[name]
    assert first.converged
    again = ppvi.load(str(MODELS / f"{name}.ppvi")).fit(init=first, tol=1e-10)
    assert again.fit.iterations == 1 and again.converged
    assert again.elbo == pytest.approx(first.elbo, rel=1e-10)


@pytest.mark.parametrize("name", WARM)
def test_the_start_sets_every_moment_and_entropy_as_the_fit_left_them(name, converged):
    """q from the standard parameters, through η and the family's finish: the state equals the source's."""
    first = converged[name].fit.program
    model = ppvi.load(str(MODELS / f"{name}.ppvi"))
    from ppvi.infer.warm import Start

    p = type(first).build(first.model, first.module, _bound(model, first))
    p.initialise(np.random.default_rng(99), Start.of(converged[name]))
    for key in first.snapshot():
        if key[:2] in ("q_", "m_", "h_", "v_"):
            assert p.state[key] == pytest.approx(first.state[key], rel=1e-10, abs=1e-12), key
    assert p.elbo() == pytest.approx(converged[name].elbo, rel=1e-12)


def _bound(model, program):
    from ppvi.io.data import bind, source_of

    return bind(model.checked, source_of(None, model.checked))


@pytest.mark.parametrize("name, via", [("gmm", "result"), ("gmm", "json"), ("gmm", "npz"), ("gmm", "dict"),
                                       ("bernoulli_mixture", "result"), ("sparse_coding", "result")])
def test_five_sweeps_then_five_more_equal_ten_straight_through(name, via, tmp_path):
    """The state after a sweep is the q's standard parameters and the params (the statistics are summed
    again from the local q); so a fit stopped and continued takes the same steps as one that was not."""
    model = ppvi.load(str(MODELS / f"{name}.ppvi"))
    straight = model.fit(max_iter=10, tol=0, seed=3)
    first = model.fit(max_iter=5, tol=0, seed=3)
    start = {"result": first, "dict": first.to_dict()}.get(via)
    if start is None:
        start = str(tmp_path / f"r.{via}")
        first.save(start)
    rest = model.fit(max_iter=5, tol=0, init=start, seed=77)
    assert first.elbo_trace + rest.elbo_trace == pytest.approx(straight.elbo_trace, rel=1e-12)
    for name, q in straight.q.items():
        for key, value in q.items():
            if key != "family":
                assert rest.q[name][key] == pytest.approx(value, rel=1e-9, abs=1e-12), (name, key)


def test_restarts_after_a_warm_start_are_random(tmp_path):
    model = ppvi.load(str(MODELS / "gmm_1d.ppvi"))
    first = model.fit()
    r = model.fit(init=first, restarts=3)
    assert len(r.fit.restart_elbos) == 3 and r.fit.restart_elbos[0] == pytest.approx(first.elbo, rel=1e-8)
    assert r.elbo >= first.elbo - 1e-8 * abs(first.elbo)


# ------------------------------------------------------------------------------------- mistakes
@pytest.fixture(scope="module")
def gmm_1d_result(tmp_path_factory):
    path = tmp_path_factory.mktemp("warm") / "r.json"
    ppvi.load(str(MODELS / "gmm_1d.ppvi")).fit().save(str(path))
    return path


def _edited(gmm_1d_result, tmp_path, edit) -> str:
    r = json.loads(gmm_1d_result.read_text())
    edit(r)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(r))
    return str(path)


def _error(call) -> str:
    with pytest.raises(PPVIError) as e:
        call()
    return e.value.format()


def test_a_start_from_data_of_other_sizes_names_the_variable(gmm_1d_result):
    x = np.loadtxt(MODELS / "gmm_1d.csv", delimiter=",", skiprows=1)
    model = ppvi.load(str(MODELS / "gmm_1d.ppvi"))
    msg = _error(lambda: model.fit({"eruptions": x[:100]}, init=str(gmm_1d_result)))
    assert msg.startswith(f"{gmm_1d_result}: error: q(z) `p` has shape (272, 3) in the start, but (100, 3) in this fit")
    assert "same sizes" in msg
    msg = _error(lambda: model.fit(dims={"K": 4}, init=str(gmm_1d_result)))
    assert "q(pi) `alpha` has shape (3,) in the start, but (4,) in this fit" in msg


@pytest.mark.parametrize("edit, expected", [
    (lambda r: r["q"].update(muu=r["q"].pop("mu")), "the start holds q(muu), but `muu` is not a latent of model "
                                                    "`gmm_1d`\nhint: did you mean `mu`?"),
    (lambda r: r["q"]["tau"].update(family="Normal"), "q(tau) in the start is 'Normal'; this model's q(tau) is Gamma"),
    (lambda r: r["q"]["mu"]["sd"].__setitem__(0, -1.0), "q(mu) in the start is not a valid Normal: `sd` must be > 0"),
    (lambda r: r["q"]["mu"].pop("sd"), "q(mu) in the start has no `sd`"),
    (lambda r: r["q"]["z"]["p"][0].__setitem__(0, 0.9),
     "q(z) in the start is not a valid Categorical: each row of `p`"),
    (lambda r: r["q"]["mu"]["mean"].__setitem__(1, None), "q(mu) `mean` in the start has entries that are not finite"),
    (lambda r: r["q"]["mu"].update(mean="a"), "q(mu) `mean` in the start is not an array of numbers"),
    (lambda r: r.update(q={}), "not a ppvi result"),
])
def test_mistakes_in_a_start_are_user_errors(gmm_1d_result, tmp_path, edit, expected):
    path = _edited(gmm_1d_result, tmp_path, edit)
    msg = _error(lambda: ppvi.load(str(MODELS / "gmm_1d.ppvi")).fit(init=path))
    assert msg.startswith(f"{path}: error: ") and expected in msg


def test_params_in_a_start_are_checked_and_used(tmp_path):
    model = ppvi.load(str(MODELS / "em_gmm.ppvi"))
    r = model.fit().to_dict()
    bad = dict(r, params=dict(r["params"], tau=-r["params"]["tau"]))
    assert "param `tau` in the start is not positive: entries must be > 0" in _error(lambda: model.fit(init=bad))
    assert "model `em_gmm` does not have" in _error(lambda: model.fit(init={"params": {"sigma": 1.0}}))
    given = {"params": {"weights": [0.2, 0.3, 0.5], "mu": [-2.0, 1.0, 4.0], "tau": [1.0, 4.0, 2.0]}}
    fit = model.fit(init=given, max_iter=1, tol=0)        # q(z) by an E-step for the held params, then a sweep
    assert fit.fit.iterations == 1 and np.all(np.isfinite(fit.q["z"]["p"]))


def test_cli_init(gmm_1d_result, tmp_path, capsys):
    out = tmp_path / "again.json"
    code, _, err = run_cli(["run", MODELS / "gmm_1d.ppvi", "--init", gmm_1d_result, "--out", out, "--quiet"], capsys)
    assert code == 0, err
    assert json.loads(out.read_text())["iterations"] <= 2
    code, _, err = run_cli(["run", MODELS / "gmm_1d.ppvi", "--init", tmp_path / "missing.json"], capsys)
    assert code == 2 and err.startswith(f"{tmp_path / 'missing.json'}: error: cannot read the result")
    (tmp_path / "r.txt").write_text("{}")
    code, _, err = run_cli(["run", MODELS / "gmm_1d.ppvi", "--init", tmp_path / "r.txt"], capsys)
    assert code == 2 and "unknown result format `.txt`" in err
    code, _, err = run_cli(["run", MODELS / "gmm_1d.ppvi", "--init", MODELS / "gmm_1d.csv"], capsys)
    assert code == 2 and "error:" in err and "Traceback" not in err
    for name, text in (("list.json", "[1, 2]"), ("twice.json", '{"q": {}, "q": {}}'), ("bad.json", '{"q": {"mu": 1,}}'),
                       ("bad.npz", "not a zip")):
        (tmp_path / name).write_text(text)
        code, _, err = run_cli(["run", MODELS / "gmm_1d.ppvi", "--init", tmp_path / name], capsys)
        assert code == 2 and err.startswith(f"{tmp_path / name}") and "cannot read the result" in err, err


@pytest.mark.parametrize("init", [42, "", b"r.json", [1.0]])
def test_init_of_another_type_is_a_user_error(init):
    msg = _error(lambda: ppvi.load(str(MODELS / "gmm_1d.ppvi")).fit(init=init))
    assert msg.startswith(f"fit: error: init={init!r}: init is None, a Result, the path of a result file")


# ------------------------------------------------------------------------------------- tol = 0
def test_tol_zero_runs_to_max_iter(tmp_path, capsys):
    r = ppvi.load(str(MODELS / "gmm_1d.ppvi")).fit(tol=0, max_iter=400)
    assert r.fit.iterations == 400 and not r.converged               # (long past the ELBO's last change)
    out = tmp_path / "r.json"
    code, _, err = run_cli(["run", MODELS / "gmm_1d.ppvi", "--tol", "0", "--max-iter", "7", "--out", out, "--quiet"],
                           capsys)
    assert code == 0, err
    assert json.loads(out.read_text())["iterations"] == 7


@pytest.mark.parametrize("flags, message", [
    (["--tol=-1e-3"], "-1e-3 is not a number ≥ 0"),
    (["--tol", "nan"], "nan is not a number ≥ 0"),
    (["--max-iter", "0"], "0 is not ≥ 1"),
    (["--restarts", "0"], "0 is not ≥ 1"),
    (["--damping", "0"], "0 is not a positive number"),
    (["--damping", "1.5"], "1.5 is not in (0, 1]"),
])
def test_run_flags_out_of_range_are_user_errors(flags, message, capsys):
    code, _, err = run_cli(["run", MODELS / "gmm_1d.ppvi", *flags], capsys)
    assert code == 2 and message in err and err.startswith("ppvi run: error: argument")
