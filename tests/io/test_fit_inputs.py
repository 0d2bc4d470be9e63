"""What ``Model.fit`` takes (issue 15, build 1; DESIGN §7): data as a path, dict, DataFrame, Series or
ndarray; dims by keyword; every argument checked like the command line's flags, with ``ppvi.PPVIError``.

The fits share one compiled model (gamma_poisson: one count variable); a fit from each kind of input must
equal the fit from the file beside the model.  Argument mistakes are raised before anything is compiled.
"""

from __future__ import annotations

import math
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest

import ppvi
from conftest import MODELS
from ppvi.errors import PPVIWarning
from ppvi.io.data import from_python

POISSON = MODELS / "gamma_poisson.ppvi"
COUNTS = pd.read_csv(MODELS / "gamma_poisson.csv")["discoveries"].to_numpy()


@pytest.fixture(scope="module")
def model():
    return ppvi.load(str(POISSON))


@pytest.fixture(scope="module")
def reference(model):
    return model.fit(max_iter=50).elbo


def test_ppvi_error_is_exported():
    assert ppvi.PPVIError is ppvi.errors.PPVIError and "PPVIError" in ppvi.__all__


@pytest.mark.parametrize("kind", ["ndarray", "path", "str", "dict", "dict of list", "dict of Series",
                                  "DataFrame", "Series", "int ndarray", "nullable Int64 column"])
def test_every_kind_of_input_fits_the_same(model, reference, kind):
    frame = pd.DataFrame({"discoveries": COUNTS})
    data = {"ndarray": COUNTS.astype(float), "path": pathlib.Path(POISSON.with_suffix(".csv")),
            "str": str(POISSON.with_suffix(".csv")), "dict": {"discoveries": COUNTS},
            "dict of list": {"discoveries": COUNTS.tolist()}, "dict of Series": {"discoveries": frame["discoveries"]},
            "DataFrame": frame, "Series": frame["discoveries"], "int ndarray": COUNTS.astype(np.int32),
            "nullable Int64 column": frame.astype("Int64")}[kind]
    assert model.fit(data, max_iter=50).elbo == reference


@pytest.mark.parametrize("data, needle", [
    ([1, 2, 3], "cannot read data from a builtins.list"),
    (42, "cannot read data from a builtins.int"),
    (b"models/gamma_poisson.csv", "cannot read data from a builtins.bytes"),
    ("", "fit: error: data='': a data path is a non-empty str"),
    ({"discoveries": "1 2 3"}, "`discoveries` is a str, not an array of numbers"),
    ({"discoveries": [[1, 2], [3]]}, "its rows have different lengths"),
    ({3: [1, 2]}, "keys are variable names (str), not int"),
    ({"discoveries": ["a", "b"]}, "`discoveries` is not numeric (dtype <U1)"),
    ({"discovery": [1, 2]}, "data variable `discoveries` is missing\nhint: did you mean `discovery`?"),
    (pd.DataFrame({"discoveries": [1.0, np.nan, 2.0]}, index=[10, 11, 12]),
     "column `discoveries` has a missing value at row 1 (index label 11)"),
    (pd.DataFrame({"discoveries": ["1", "2"]}), "column `discoveries` is not numeric (dtype "),
    ({"discoveries": np.array([1.0, np.nan])}, "`discoveries[1]` is nan, a missing value"),
])
def test_data_mistakes(model, data, needle):
    with pytest.raises(ppvi.PPVIError) as e:
        model.fit(data)
    assert needle in e.value.format(), e.value.format()


def test_an_array_for_a_model_with_two_data_variables():
    lda = ppvi.load(str(MODELS / "lda.ppvi"))
    with pytest.raises(ppvi.PPVIError, match=r"one data variable; this one has `doc`, `word`"):
        lda.fit(np.zeros(3))


def src_dtype(frame) -> str:
    return str(frame.assign(label=["a"] * len(frame))["label"].dtype)


def test_dataframe_as_a_whole_table():
    """A model whose one data variable is 2-D takes every numeric column; text columns are noted."""
    gmm = ppvi.load(str(MODELS / "gmm.ppvi")).checked
    frame = pd.read_csv(MODELS / "gmm.csv")
    src = from_python(frame.assign(label=["a"] * len(frame)), gmm)
    np.testing.assert_array_equal(src.arrays["x"], frame.to_numpy())
    assert [n.message for n in src.notes] == [f"column `label` is not numeric (dtype {src_dtype(frame)}): left out"]
    src = from_python({"x": frame}, gmm)                  # a DataFrame as one variable of a dict
    np.testing.assert_array_equal(src.arrays["x"], frame.to_numpy())


def test_notes_are_warnings_for_the_api(model, tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame({"discoveries": COUNTS}).to_csv(path)     # with pandas' index column
    with pytest.warns(PPVIWarning, match="the first column has no name") as record:
        model.fit(path, max_iter=5)
    assert record[0].filename == __file__                   # points at the caller's line
    assert record[0].message.diagnostic.severity == "note"


# ----------------------------------------------------------------- dims by keyword
def test_dims_by_keyword(model, reference):
    assert model.fit(COUNTS, N=100, max_iter=50).elbo == reference
    assert model.fit(COUNTS, dims={"N": 100}, max_iter=50).elbo == reference
    with pytest.raises(ppvi.PPVIError, match=r"`discoveries` has 100 entries on axis 0 but dim N = 5"):
        model.fit(COUNTS, N=5)


@pytest.mark.parametrize("kwargs, needle", [
    ({"K": 3}, "fit: error: fit() has no option or dim `K`\nhint: options and dims: data, dims, seed"),
    ({"max_iters": 5}, "fit() has no option or dim `max_iters`\nhint: did you mean `max_iter`?"),
    ({"N": 0}, "fit: error: N=0: a dim's size is at least 1 and at most 2147483647"),
    ({"N": 2**31}, "N=2147483648: a dim's size is at least 1"),
    ({"N": 3.0}, "N=3.0: a dim's size is a whole number, not float"),
    ({"N": True}, "N=True: a dim's size is a whole number, not bool"),
    ({"dims": {"Q": 2}}, "Q=2: the model has no dim `Q`"),
    ({"dims": [("N", 3)]}, "dims=[('N', 3)]: dims is a dict"),
    ({"dims": {"N": 100}, "N": 100}, "dim `N` is given twice"),
])
def test_dim_mistakes(model, kwargs, needle):
    with pytest.raises(ppvi.PPVIError) as e:
        model.fit(COUNTS, **kwargs)
    assert needle in e.value.format(), e.value.format()


# ----------------------------------------------------------------- the fit's options
@pytest.mark.parametrize("option, value, rule", [
    ("damping", 0, "damping is None or a number in (0, 1]"),
    ("damping", 1.5, "damping is None or a number in (0, 1]"),
    ("damping", math.nan, "damping is None or a number in (0, 1]"),
    ("damping", True, "damping is None or a number in (0, 1]"),
    ("damping", "0.5", "damping is None or a number in (0, 1]"),
    ("tol", -1, "tol is a number ≥ 0"),
    ("tol", math.nan, "tol is a number ≥ 0"),
    ("tol", math.inf, "tol is a number ≥ 0"),
    ("tol", None, "tol is a number ≥ 0"),
    ("max_iter", 0, "max_iter is a whole number ≥ 1"),
    ("max_iter", 2.5, "max_iter is a whole number ≥ 1"),
    ("max_iter", True, "max_iter is a whole number ≥ 1"),
    ("restarts", 0, "restarts is a whole number ≥ 1"),
    ("restarts", -3, "restarts is a whole number ≥ 1"),
    ("seed", -5, "seed is a whole number ≥ 0"),
    ("seed", 1.5, "seed is a whole number ≥ 0"),
    ("seed", False, "seed is a whole number ≥ 0"),
    ("on_iteration", 3, "on_iteration is None or a function"),
])
def test_option_mistakes(model, option, value, rule):
    with pytest.raises(ppvi.PPVIError) as e:
        model.fit(COUNTS, **{option: value})
    assert e.value.format().startswith(f"fit: error: {option}={value!r}: {rule}"), e.value.format()


def test_options_at_their_edges(model):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = model.fit(COUNTS, tol=0, damping=1, seed=np.int64(3), max_iter=np.int32(3), restarts=np.uint8(1))
    assert fit.fit.trace and np.isfinite(fit.elbo)
