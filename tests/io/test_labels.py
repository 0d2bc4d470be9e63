"""Labels in index data (ppvi.io.labels): strings or a pandas Categorical where ``index(K)`` data expect codes.

The codes are checked against a coding made here independently (``numpy.unique``'s sorted labels, the
Categorical's category order); the fits once against a fit of those codes.  One model is compiled for all
the fits (multilevel_regression: county[N] : index(J)); the reading tests need no compiled model.
"""

from __future__ import annotations

import functools
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ppvi
from conftest import MODELS, assert_golden, run_cli
from ppvi.errors import PPVIError
from ppvi.io.data import bind, source_of
from ppvi.language import loads

MULTILEVEL = MODELS / "multilevel_regression.ppvi"
GOLDEN = Path(__file__).parent / "labels_golden"
# two index columns of one dim: a pairwise comparison, player a[n] against player b[n]
PAIRS = loads("""model pairs
dim N, K
data a[N] : index(K)
data b[N] : index(K)
data y[N]
for k in K:
    w[k] ~ Normal(0, sd = 1)
for n in N:
    y[n] ~ Normal(w[a[n]] - w[b[n]], sd = 1)
""", "<pairs>")


@functools.cache
def _multilevel() -> ppvi.Model:
    return ppvi.load(str(MULTILEVEL))


@functools.cache
def _frame() -> pd.DataFrame:
    """The model's data with each county a name; the names' sorted order is not the codes' (c00 is county 24)."""
    df = pd.read_csv(MODELS / "multilevel_regression.csv")
    names = np.array([f"c{24 - j:02d}" for j in range(25)])
    return df.assign(county=names[df.county])


def _bound(data, model=None, **dims):
    m = model or _multilevel().checked
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ppvi.PPVIWarning)
        return bind(m, source_of(data, m), dims)


def _error(data, model=None, **dims) -> str:
    with pytest.raises(PPVIError) as e:
        _bound(data, model, **dims)
    return e.value.format()


# ----------------------------------------------------------------- reading and coding
def test_labels_are_coded_in_sorted_order_from_csv_frame_json_and_dict(tmp_path):
    df = _frame()
    labels, codes = np.unique(df.county.to_numpy(), return_inverse=True)
    df.to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "d.json").write_text(json.dumps({k: df[k].tolist() for k in df}))
    given = [df, tmp_path / "d.csv", tmp_path / "d.json", {k: df[k].to_numpy() for k in df},
             {"county": df.county.tolist(), "x": df.x, "y": df.y}]
    for data in given:
        b = _bound(str(data) if not isinstance(data, (dict, pd.DataFrame)) else data)
        assert b.labels == {"J": tuple(labels)} and b.sizes["J"] == 25
        np.testing.assert_array_equal(b.arrays["county"], codes)
        assert b.arrays["county"].dtype == np.int64


def test_a_categorical_gives_its_category_order_and_its_size():
    df = _frame()
    order = [f"c{j:02d}" for j in range(25)][::-1] + ["nobody"]        # an unused category last
    b = _bound(df.assign(county=pd.Categorical(df.county, categories=order)))
    assert b.labels["J"] == tuple(order) and b.sizes["J"] == 26
    np.testing.assert_array_equal(b.arrays["county"], [order.index(c) for c in df.county])
    b = _bound({"county": pd.Categorical(df.county, categories=order), "x": df.x, "y": df.y})
    assert b.labels["J"] == tuple(order)


def test_two_columns_of_one_dim_share_one_map():
    data = {"a": ["bo", "al", "cy"], "b": ["dee", "bo", "al"], "y": [1.0, 0.0, -1.0]}
    b = _bound(data, PAIRS)
    assert b.labels == {"K": ("al", "bo", "cy", "dee")} and b.sizes["K"] == 4
    np.testing.assert_array_equal(b.arrays["a"], [1, 0, 2])
    np.testing.assert_array_equal(b.arrays["b"], [3, 1, 0])
    frame = pd.DataFrame({"a": pd.Categorical(["x", "y"], ["y", "x"]), "b": ["y", "y"], "y": [0.0, 1.0]})
    b = _bound(frame, PAIRS)
    assert b.labels["K"] == ("y", "x") and b.arrays["a"].tolist() == [1, 0] and b.arrays["b"].tolist() == [0, 0]


def test_codes_are_read_as_before():
    b = _bound(pd.read_csv(MODELS / "multilevel_regression.csv"))
    assert b.labels == {} and b.sizes["J"] == 25


def test_a_csv_column_of_text_and_numbers_is_labels_with_a_note(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("county,x,y\n1984,0,1.5\nThe Matrix,1,0.5\n2,0,1\n")
    m = _multilevel().checked
    source = source_of(str(path), m)
    assert [n.severity for n in source.notes] == ["note"] and "every cell is read as a label" in source.notes[0].message
    b = bind(m, source)
    assert b.labels["J"] == ("1984", "2", "The Matrix") and b.arrays["county"].tolist() == [0, 2, 1]


def test_a_numeric_block_before_the_first_label_keeps_its_cells(tmp_path, monkeypatch):
    monkeypatch.setattr("ppvi.io.csv_file.BLOCK", 2)       # (the first block all numbers, then a label)
    path = tmp_path / "d.csv"
    path.write_text("county,x,y\n3,0,1.5\n10,1,0.5\nzed,0,1\n")
    b = _bound(str(path))
    assert b.labels["J"] == ("10", "3", "zed") and b.arrays["county"].tolist() == [1, 0, 2]


def test_labels_beyond_a_given_size_are_an_error():
    assert "`county` has 25 labels but J = 20 (as given)" in _error(_frame(), J=20)
    b = _bound(_frame(), J=30)          # (more codes than labels: the last 5 have none)
    assert b.sizes["J"] == 30 and len(b.labels["J"]) == 25


@pytest.mark.parametrize("case, data, needle", [
    ("mixed", {"county": ["c1", 2], "x": [0, 1], "y": [0, 1]}, "`county[1]` is a number (2) but `county[0]` is the "
                                                               "label 'c1'"),
    ("text elsewhere", {"county": ["c1", "c2"], "x": ["a", "b"], "y": [0, 1]}, "only index data (`: index(K)`) may "
                                                                               "hold labels"),
    ("a categorical elsewhere", {"county": [0, 1], "x": pd.Categorical(["a", "b"]), "y": [0, 1]},
     "`x` holds text (labels), but only index data"),
    ("labels and codes", {"a": ["x", "y"], "b": [0, 1], "y": [0, 1]}, "`a` holds labels but `b` codes"),
])
def test_mistakes(case, data, needle):
    assert needle in _error(data, PAIRS if "a" in data else None)


def test_categoricals_must_agree():
    a = pd.Categorical(["x", "y"], ["x", "y"])
    assert "are Categoricals of one dim with other categories" in _error(
        {"a": a, "b": pd.Categorical(["x", "y"], ["y", "x"]), "y": [0, 1]}, PAIRS)
    assert "`b[1]` = 'z' is not a category of K" in _error({"a": a, "b": ["x", "z"], "y": [0, 1]}, PAIRS)


def test_a_missing_label_is_missing(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("county,x,y\nc1,0,1\n,1,2\n")
    assert _error(str(path)).startswith(f"{path}:3:1: error: an empty cell in column `county`: a missing value")
    df = _frame().copy()
    df.loc[3, "county"] = None
    assert "`county[3]` is nan, a missing value" in _error(df)


GOLDEN_CASES = {
    "csv_missing_label": ("d.csv", "county,x,y\nc1,0,1.5\n,1,0.5\n", []),
    "json_mixed": ("d.json", json.dumps({"county": ["c1", 7], "x": [0, 1], "y": [0.5, 1.5]}), []),
    "beyond_dim": ("d.csv", "county,x,y\nc1,0,1.5\nc2,1,0.5\nc3,1,0.5\n", ["--dim", "J=2"]),
}


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_golden_errors(case, tmp_path, capsys, monkeypatch, update_golden):
    name, text, flags = GOLDEN_CASES[case]
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_text(text)
    code, _, err = run_cli(["run", MULTILEVEL, "--data", name, "--quiet", *flags], capsys)
    assert code == 2 and "Traceback" not in err
    assert_golden(GOLDEN / f"{case}.expected", err, update_golden)


def test_strings_in_an_npz_or_in_chunks_are_refused(tmp_path, capsys):
    df = _frame()
    np.savez(tmp_path / "d.npz", county=df.county.to_numpy(dtype=str), x=df.x, y=df.y)
    code, _, err = run_cli(["run", MULTILEVEL, "--data", tmp_path / "d.npz", "--quiet"], capsys)
    assert code == 2 and "`county` is not numeric (dtype <U3)" in err and "an .npz holds codes" in err
    with pytest.raises(PPVIError, match="data read in chunks holds codes"):
        _multilevel().fit(tmp_path / "d.npz", chunk_size=100)


# ----------------------------------------------------------------- fits (one compiled model)
@functools.cache
def _fits() -> tuple[ppvi.Result, ppvi.Result]:
    """The labelled data fitted from a DataFrame, and their codes (numpy.unique's) fitted from a .csv."""
    import tempfile

    df = _frame()
    codes = np.unique(df.county.to_numpy(), return_inverse=True)[1]
    with tempfile.TemporaryDirectory() as d:
        path = f"{d}/codes.csv"
        df.assign(county=codes).to_csv(path, index=False)
        coded = _multilevel().fit(path)
    return _multilevel().fit(df), coded


def test_a_labelled_fit_is_the_fit_of_its_codes_and_keeps_the_labels():
    labelled, coded = _fits()
    assert labelled.labels == {"J": tuple(f"c{j:02d}" for j in range(25))} and coded.labels == {}
    assert labelled.elbo == coded.elbo
    np.testing.assert_array_equal(labelled.q["a"].mean, coded.q["a"].mean)


def test_a_frame_and_a_csv_fit_share_the_compiled_kernels():
    """pandas' copy-on-write columns are read-only arrays: numba types them apart and compiled every kernel again."""
    from numba.core.registry import CPUDispatcher

    labelled, coded = _fits()
    module = labelled.fit.program.module
    assert module is coded.fit.program.module
    # the model's own kernels: the runtime's helpers it imports are shared by every model a worker fits
    kernels = [f for f in vars(module).values() if isinstance(f, CPUDispatcher) and f.signatures
               and f.py_func.__module__ == module.__name__]
    assert kernels and all(len(f.signatures) == 1 for f in kernels), [(f.__name__, f.signatures) for f in kernels]


def test_the_labels_are_shown_wherever_the_codes_were():
    r = _fits()[0]
    text = str(r.summary())
    assert "  [c03]" in text and "  [3]" not in text
    frame = r.summary().to_frame()
    assert "a[c24]" in frame.index and "b[c00]" in frame.index
    assert "<td>[c07]</td>" in r._repr_html_()
    idata = r.to_arviz(draws=5, data=None)
    assert list(idata.posterior.coords["J"].values[:2]) == ["c00", "c01"]
    assert idata.posterior["a"].sel(J="c05").shape == (1, 5)


def test_the_labels_are_in_the_result_files(tmp_path):
    r = _fits()[0]
    for ext in ("json", "npz"):
        r.save(tmp_path / f"r.{ext}")
        back = ppvi.load_result(tmp_path / f"r.{ext}")
        assert back.labels == r.labels and back == r
    assert json.loads((tmp_path / "r.json").read_text())["labels"]["J"][:2] == ["c00", "c01"]
    assert "labels" not in _fits()[1].to_dict()


def test_new_data_are_coded_by_the_results_map(tmp_path):
    """The first 40 rows hold two counties: coded by themselves they would be 0 and 1."""
    r = _fits()[0]
    r.save(tmp_path / "r.json")
    new = _frame().iloc[:40]
    expect = _fits()[1].score(pd.read_csv(MODELS / "multilevel_regression.csv").iloc[:40]
                              .assign(county=lambda d: np.unique(_frame().county, return_inverse=True)[1][:40]))
    for given in (r, ppvi.load_result(tmp_path / "r.json")):
        np.testing.assert_allclose(given.score(new), expect, rtol=1e-12)
    bad = new.assign(county=["zed"] + list(new.county[1:]))
    with pytest.raises(PPVIError, match=r"`county\[0\]` = 'zed' is not one of the 25 labels of J in the fitted result"):
        r.score(bad)


def test_a_start_codes_the_data_by_its_labels():
    """The data given again as a Categorical of the reverse order: the start's map wins, so the start is the
    optimum already (coded by the Categorical's own order the rows of q would be reversed)."""
    r = _fits()[0]
    df = _frame()
    reversed_ = df.assign(county=pd.Categorical(df.county, categories=list(r.labels["J"])[::-1]))
    again = _multilevel().fit(reversed_, init=r)
    assert again.labels == r.labels and again.iterations <= 2
    np.testing.assert_allclose(again.q["a"].mean, r.q["a"].mean, rtol=1e-4)      # (both within √tol of the optimum)


def test_a_categoricals_components_are_shown_by_their_labels():
    """A Categorical over a dim with labels (made here: no fit) lists each component by its label."""
    from ppvi.result import Q, Result

    p = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.0, 1.0, 0.0]])
    r = Result("m", -1.0, (-1.0,), 1, True, {"z": Q("Categorical", {"p": p}, ("N",), "K")}, {},
               labels={"K": ("alice", "bob", "carol")})
    text = str(r.summary())
    assert "   alice" in text and "     bob" in text and "carol" not in text        # (carol is empty)
    frame = r.summary().components_frame()
    assert frame["label"].tolist() == ["alice", "bob", "carol"] and frame["component"].tolist() == [0, 1, 2]
    assert "<td>alice</td>" in r._repr_html_()


def test_the_plots_legend_names_the_labels():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    figure = _fits()[0].plot(var_names=["a"])
    legends = [t.get_text() for ax in figure.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert "a[c00]" in legends and "a[0]" not in legends


@pytest.mark.long
def test_lda_with_words_and_documents_as_labels():
    """A vocabulary and document names: a held dim (V) keeps the fit's map in predict and partial_fit, a free
    one (M, the documents) is each new data's own.  Checked against the same fits and streams of the codes."""
    with np.load(MODELS / "lda.npz") as f:
        doc, word = f["doc"], f["word"]
    vocab = np.array([f"w{v:02d}" for v in range(50)])          # (sorted as the codes: the same fit)
    names = np.array([f"d{d:03d}" for d in range(100)])
    old = doc < 80
    model = ppvi.load(str(MODELS / "lda.ppvi"))
    coded = model.fit({"doc": doc[old], "word": word[old]}, tol=0, max_iter=20, dims={"V": 50})
    labelled = model.fit({"doc": names[doc[old]], "word": pd.Categorical(vocab[word[old]], categories=vocab)},
                         tol=0, max_iter=20)
    assert labelled.labels == {"M": tuple(names[:80]), "V": tuple(vocab)}
    np.testing.assert_array_equal(labelled.q["phi"]["alpha"], coded.q["phi"]["alpha"])
    # new documents named in the reverse of their codes' order: their q follows the names' sorted order
    new = np.array([f"new{19 - d:02d}" for d in range(20)])
    by_code = coded.predict({"doc": doc[~old] - 80, "word": word[~old]})
    by_label = labelled.predict({"doc": new[doc[~old] - 80], "word": vocab[word[~old]]})
    assert by_label.labels == {"M": tuple(sorted(new)), "V": tuple(vocab)}
    np.testing.assert_allclose(by_label.q["theta"]["alpha"][::-1], by_code.q["theta"]["alpha"], rtol=1e-10)
    with pytest.raises(PPVIError, match="`word\\[0\\]` = 'zebra' is not one of the 50 labels of V"):
        labelled.predict({"doc": ["a", "a"], "word": ["zebra", "w01"]})
    # a stream: the words by the first batch's map, each batch's documents by its own
    by_code, by_label = ppvi.load(str(MODELS / "lda.ppvi")), ppvi.load(str(MODELS / "lda.ppvi"))
    for b in range(4):
        at = (doc >= 20 * b) & (doc < 20 * b + 20)
        words = vocab[word[at]]
        a = by_code.partial_fit({"doc": doc[at] - 20 * b, "word": word[at]}, total_size=80, V=50)
        r = by_label.partial_fit({"doc": names[doc[at]], "word": pd.Categorical(words, vocab) if b == 0 else words},
                                 total_size=80)
        assert r.labels == {"M": tuple(names[20 * b:20 * b + 20]), "V": tuple(vocab)}
        np.testing.assert_allclose(r.q["phi"]["alpha"], a.q["phi"]["alpha"], rtol=1e-12)


def test_the_command_line_writes_the_labels_and_starts_from_them(tmp_path, capsys):
    _frame().to_csv(tmp_path / "d.csv", index=False)
    out = ["--quiet", "--out"]
    code, _, err = run_cli(["run", MULTILEVEL, "--data", tmp_path / "d.csv", *out, tmp_path / "r.json"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "r.json").read_text())["labels"] == {"J": [f"c{j:02d}" for j in range(25)]}
    rest = _frame()[lambda d: d.county != "c00"]        # (coded afresh, c01 would be 0 and J = 24)
    rest.to_csv(tmp_path / "rest.csv", index=False)
    code, _, err = run_cli(["run", MULTILEVEL, "--data", tmp_path / "rest.csv", "--init", tmp_path / "r.json",
                            *out, tmp_path / "s.json"], capsys)
    assert code == 0, err
    r, s = (json.loads((tmp_path / f).read_text()) for f in ("r.json", "s.json"))
    assert s["labels"] == r["labels"] and s["provenance"]["dims"]["J"] == 25
