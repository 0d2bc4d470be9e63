"""Reading data with missing entries (issue 17, build 4): a variable declared ``: missing`` may hold NaN
(npz), null (json), an empty or NA cell (csv) or NaN in a DataFrame; ``bind`` returns the mask and puts a
value of the support in its place.  Every other missing value stays the positioned error it was."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ppvi.errors import PPVIError
from ppvi.io.data import bind, from_python, read_file
from ppvi.language.check import check
from ppvi.language.parser import parse

MODEL = """\
dim N
dim D = 2
dim K = 4
const a[K] = 1.0
data x[N]
data y[N] : count missing
data z[N, D] : missing
pi ~ Dirichlet(a)
mu ~ Normal(0.0, 1.0)
for n in N:
    y[n] ~ Categorical(pi)
    for d in D:
        z[n, d] ~ Normal(mu * x[n], 1.0)
"""
WHOLE = """\
dim N, D
data x[N, D] : missing
mu ~ Normal(0.0, 1.0)
for n in N:
    for d in D:
        x[n, d] ~ Normal(mu, 1.0)
"""


def _model(text: str):
    return check(parse(text, "m.ppvi"))


M = _model(MODEL)
X = np.array([0.5, 1.5, 2.5])
Y = np.array([3.0, np.nan, 0.0])
Z = np.array([[1.0, np.nan], [np.nan, np.nan], [0.25, 2.0]])


def _expect(bound) -> None:
    assert bound.sizes == {"N": 3, "D": 2, "K": 4}
    np.testing.assert_array_equal(bound.missing["y"], np.isnan(Y))
    np.testing.assert_array_equal(bound.missing["z"], np.isnan(Z))
    assert "x" not in bound.missing
    assert bound.arrays["y"].dtype == np.int64 and bound.arrays["y"].tolist() == [3, 0, 0]
    np.testing.assert_array_equal(bound.arrays["z"], np.nan_to_num(Z))
    np.testing.assert_array_equal(bound.arrays["x"], X)


def test_npz_nan(tmp_path):
    path = str(tmp_path / "d.npz")
    np.savez(path, x=X, y=Y, z=Z)
    _expect(bind(M, read_file(path, M)))


def test_json_null(tmp_path):
    path = tmp_path / "d.json"
    none = (lambda a: [None if np.isnan(v) else v for v in a])
    path.write_text(json.dumps({"x": X.tolist(), "y": none(Y), "z": [none(r) for r in Z]}))
    _expect(bind(M, read_file(str(path), M)))


def test_dataframe_nan():
    frame = pd.DataFrame({"x": X, "y": Y})
    _expect(bind(M, from_python({"x": frame["x"], "y": frame["y"], "z": Z}, M)))


def test_csv_empty_and_na_cells_written_by_pandas(tmp_path):
    model = _model(WHOLE)
    frame = pd.DataFrame(Z, columns=["a", "b"])
    path = str(tmp_path / "d.csv")
    frame.to_csv(path, index=False)                     # NaN -> an empty cell
    assert open(path).read().splitlines()[2] == ","
    bound = bind(model, read_file(path, model))
    np.testing.assert_array_equal(bound.missing["x"], np.isnan(Z))
    counts = _model("dim N\ndim K = 4\nconst a[K] = 1.0\ndata y[N] : count missing\npi ~ Dirichlet(a)\n"
                    "for n in N:\n    y[n] ~ Categorical(pi)\n")
    (tmp_path / "e.csv").write_text("x,y\n0.5,3\n1.5,NA\n2.5,\n")
    bound = bind(counts, read_file(str(tmp_path / "e.csv"), counts))
    assert bound.missing["y"].tolist() == [False, True, True] and bound.arrays["y"].tolist() == [3, 0, 0]


def test_complete_data_has_no_mask(tmp_path):
    path = str(tmp_path / "d.npz")
    np.savez(path, x=X, y=np.nan_to_num(Y), z=np.nan_to_num(Z))
    assert bind(M, read_file(path, M)).missing == {}


def _error(path, model=M) -> str:
    with pytest.raises(PPVIError) as e:
        bind(model, read_file(path, model))
    return e.value.format()


def test_nan_elsewhere_stays_an_error(tmp_path):
    npz = str(tmp_path / "d.npz")
    np.savez(npz, x=np.array([0.5, np.nan, 1.0]), y=Y, z=Z)
    assert _error(npz).splitlines() == [f"{npz}: error: `x[1]` is nan, a missing value: data must be finite",
                                        "hint: impute it, or declare `x` with `: missing` where it is drawn"]
    (tmp_path / "d.json").write_text(json.dumps({"x": [0.5, None, 1], "y": [1, 2, 3], "z": Z.tolist()}))
    assert "`x[1]` is null, a missing value" in _error(str(tmp_path / "d.json"))
    (tmp_path / "d.csv").write_text("x,y\n0.5,1\n,2\n")
    assert _error(str(tmp_path / "d.csv"), _model(MODEL.replace("z[N, D] : missing", "z[N, D]"))).startswith(
        f"{tmp_path / 'd.csv'}:3:1: error: an empty cell in column `x`: a missing value")


def test_what_is_there_is_still_checked(tmp_path):
    npz = str(tmp_path / "d.npz")
    np.savez(npz, x=X, y=np.array([1.5, np.nan, 0.0]), z=Z)
    assert "`y[0]` = 1.5 must be a whole number ≥ 0" in _error(npz)
    np.savez(npz, x=X, y=Y, z=np.where(np.isnan(Z), np.inf, Z))
    assert "`z[0, 1]` is inf: data must be finite" in _error(npz)
