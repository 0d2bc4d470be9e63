"""Each kind of bad data: exit status 2 and a message naming the variable, the entry and the rule."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import MODELS, run_cli

GAMMA_POISSON = MODELS / "gamma_poisson.ppvi"
LDA = MODELS / "lda.ppvi"


def _json(tmp_path, name, obj):
    p = tmp_path / name
    p.write_text(json.dumps(obj))
    return p


@pytest.mark.parametrize("case, data, needle", [
    ("nan", {"discoveries": [1, 2, float("nan")]}, "`discoveries[2]` is nan"),
    ("negative count", {"discoveries": [1, -2, 3]}, "`discoveries[1]` = -2.0 must be a whole number ≥ 0"),
    ("non-integer count", {"discoveries": [1, 2.5, 3]}, "`discoveries[1]` = 2.5 must be a whole number"),
    ("missing variable", {"other": [1, 2]}, "data variable `discoveries` is missing"),
    ("shape mismatch", {"discoveries": [[1, 2], [3, 4]]}, "has 2 axes but is declared with 1"),
    ("empty data", {"discoveries": []}, "`discoveries` is empty"),
])
def test_bad_counts(tmp_path, capsys, case, data, needle):
    path = _json(tmp_path, "d.json", data)
    code, out, err = run_cli(["run", GAMMA_POISSON, "--data", path, "--quiet"], capsys)
    assert code == 2, err
    assert err.startswith(f"{path}: error: ") and needle in err and "Traceback" not in err


def test_index_out_of_range(tmp_path, capsys):
    f = np.load(MODELS / "lda.npz")
    doc, word = f["doc"].copy(), f["word"].copy()
    path = tmp_path / "lda.npz"
    np.savez(path, doc=doc, word=word)
    code, _, err = run_cli(["run", LDA, "--data", path, "--dim", "V=10", "--quiet"], capsys)
    first = int(np.flatnonzero(word >= 10)[0])
    assert code == 2 and f"`word[{first}]` = {word[first]} is out of range for index(V) with V = 10" in err


def test_unreadable_files(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    code, _, err = run_cli(["run", GAMMA_POISSON, "--data", bad, "--quiet"], capsys)
    assert code == 2 and "not an .npz file" in err
    code, _, err = run_cli(["run", GAMMA_POISSON, "--data", tmp_path / "none.json", "--quiet"], capsys)
    assert code == 2 and "cannot read data" in err
    txt = tmp_path / "d.txt"
    txt.write_text("1 2 3")
    code, _, err = run_cli(["run", GAMMA_POISSON, "--data", txt, "--quiet"], capsys)
    assert code == 2 and "unknown data format" in err
    broken = tmp_path / "broken.json"
    broken.write_text("{ not json")
    code, _, err = run_cli(["run", GAMMA_POISSON, "--data", broken, "--quiet"], capsys)
    assert code == 2 and err.startswith(f"{broken}:1:3: error: not valid JSON: Expecting property name")


def test_binary_data_must_be_0_or_1(tmp_path, capsys):
    path = _json(tmp_path, "y.json", {"y": [0, 1, 2]})
    code, _, err = run_cli(["run", MODELS / "beta_bernoulli.ppvi", "--data", path, "--quiet"], capsys)
    assert code == 2 and "`y[2]` = 2.0 must be 0 or 1" in err


@pytest.mark.parametrize("dist, value, needle", [
    ("Categorical(pi)", 7, "`y[1]` = 7 is out of range for index(K) with K = 4"),
    ("Bernoulli(rho)", 3, "`y[1]` = 3.0 must be 0 or 1"),
])
def test_counts_drawn_by_a_categorical_or_a_bernoulli_are_checked_against_its_values(tmp_path, capsys, dist,
                                                                                        value, needle):
    """`data y : count` drawn by Categorical over K = 4 (or a Bernoulli): a 7 (a 3) was accepted and the fit
    went on silently (pi's counts with the 7 counted elsewhere); the law narrows the declared support."""
    model = tmp_path / "c.ppvi"
    model.write_text(f"dim N\ndim K = 4\nconst a[K] = 1.0\ndata y[N] : count\npi ~ Dirichlet(a)\nrho ~ Beta(1, 1)\n"
                     f"for n in N:\n    y[n] ~ {dist}\n")
    path = _json(tmp_path, "y.json", {"y": [1, value, 2]})
    code, _, err = run_cli(["check", model], capsys)
    assert code == 0, err
    code, _, err = run_cli(["run", model, "--data", path, "--quiet"], capsys)
    assert code == 2 and err.startswith(f"{path}: error: ") and needle in err, err


@pytest.mark.parametrize("flags, needle", [
    (["--dim", "Q=3"], "the model has no dim `Q`"),
    (["--dim", "K"], "expected NAME=INT"),
    (["--max-iter", "0"], "is not ≥ 1"),
    (["--tol", "-1"], "is not a number ≥ 0"),
    (["--seed", "x"], "argument --seed: 'x' is not a whole number"),
    (["--seed", "-5"], "argument --seed: -5 is not ≥ 0"),
])
def test_bad_flags(capsys, flags, needle):
    code, _, err = run_cli(["run", MODELS / "gmm_1d.ppvi", "--quiet", *flags], capsys)
    assert code == 2 and needle in err and "Traceback" not in err
