"""Reading .csv data: nothing silently misread (issue 15, build 1).

Each file is written here the way users write them (pandas' ``to_csv``, a spreadsheet's export) and read
through :func:`ppvi.io.data.read_file` against a bundled model; the arrays are compared with what the file
holds, written independently in the test.  One case runs the whole command.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import ppvi
from conftest import MODELS, run_cli
from ppvi.errors import PPVIError
from ppvi.io.data import read_file

GMM = ppvi.load(str(MODELS / "gmm.ppvi")).checked          # one 2-D data variable: x[N, D]
GMM_1D = ppvi.load(str(MODELS / "gmm_1d.ppvi")).checked    # one 1-D data variable: eruptions[N]
FAITHFUL = pd.read_csv(MODELS / "gmm.csv")                 # eruptions, waiting (standardised)


def _write(tmp_path, text: str, name: str = "d.csv", encoding: str = "utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return str(p)


def _error(path, model) -> str:
    with pytest.raises(PPVIError) as e:
        read_file(path, model)
    return e.value.format()


# ----------------------------------------------------------------- the row index pandas writes
def test_pandas_index_column_is_dropped_with_a_note(tmp_path):
    path = str(tmp_path / "x.csv")
    FAITHFUL.to_csv(path)                                  # pandas writes the row index by default
    src = read_file(path, GMM)
    np.testing.assert_array_equal(src.arrays["x"], FAITHFUL[["eruptions", "waiting"]].to_numpy())
    assert [d.severity for d in src.notes] == ["note"]
    assert src.notes[0].format().startswith(f"{path}: note: the first column has no name: read as the row index")


def test_index_column_pandas_read_back_and_wrote_again(tmp_path):
    first, again = str(tmp_path / "a.csv"), str(tmp_path / "b.csv")
    FAITHFUL.to_csv(first)
    pd.read_csv(first).to_csv(again, index=False)          # the header now begins `Unnamed: 0`
    src = read_file(again, GMM)
    assert src.arrays["x"].shape == (272, 2) and len(src.notes) == 1


def test_named_column_beside_an_index_column(tmp_path):
    path = str(tmp_path / "e.csv")
    FAITHFUL[["eruptions"]].to_csv(path)
    src = read_file(path, GMM_1D)
    np.testing.assert_array_equal(src.arrays["eruptions"], FAITHFUL["eruptions"].to_numpy())


def test_whole_table_notes_a_column_of_row_numbers(tmp_path):
    frame = FAITHFUL.reset_index()                          # a named index is written as a column `index`
    path = str(tmp_path / "r.csv")
    frame.to_csv(path, index=False)
    src = read_file(path, GMM)
    assert src.arrays["x"].shape == (272, 3)               # a named column is data: kept, but noted
    assert "column `index` holds the row numbers 0, 1, …, 271" in src.notes[0].message


# ----------------------------------------------------------------- cells that are not numbers
def test_one_empty_cell_is_an_error_at_its_line_and_column(tmp_path):
    frame = FAITHFUL.copy()
    frame.iloc[5, 1] = np.nan
    path = str(tmp_path / "hole.csv")
    frame.to_csv(path, index=False)
    line = open(path).read().splitlines()[6]
    col = line.index(",") + 2
    assert _error(path, GMM).splitlines() == [
        f"{path}:7:{col}: error: an empty cell in column `waiting`: a missing value",
        f"    {line}",
        "    " + " " * (col - 1) + "^",
        "hint: impute it, or declare `waiting` with `: missing` where it is drawn"]


@pytest.mark.parametrize("token", ["NA", "nan", "NULL", "#N/A", "n/a"])
def test_missing_value_tokens_in_the_only_column(tmp_path, token):
    path = _write(tmp_path, f"eruptions\n3.6\n{token}\n2.1\n")
    assert _error(path, GMM_1D).startswith(f"{path}:3:1: error: `{token}` in column `eruptions`: a missing value")


def test_text_in_a_used_column_is_an_error(tmp_path):
    path = _write(tmp_path, 'eruptions,note\n3.6,a\n"4.1x",b\n')
    assert _error(path, GMM_1D).splitlines()[:3] == [
        f"{path}:3:1: error: `4.1x` in column `eruptions` is not a number", '    "4.1x",b', "    ^~~~~~"]


def test_text_in_an_unused_column_is_not_read(tmp_path):
    path = _write(tmp_path, "note,eruptions\nfirst,3.6\n,1.8\nNA,2.0\n")
    np.testing.assert_array_equal(read_file(path, GMM_1D).arrays["eruptions"], [3.6, 1.8, 2.0])


def test_infinite_value(tmp_path):
    path = _write(tmp_path, "eruptions\n3.6\n1e400\n")
    assert _error(path, GMM_1D).startswith(f"{path}:3:1: error: `1e400` in column `eruptions` is not finite")


def test_whole_table_leaves_out_a_text_column_with_a_note(tmp_path):
    path = _write(tmp_path, "a,b,species\n1,2,setosa\n3,4,virginica\n5,6,setosa\n")
    src = read_file(path, GMM)
    np.testing.assert_array_equal(src.arrays["x"], [[1, 2], [3, 4], [5, 6]])
    assert src.notes[0].format() == f"{path}: note: column 3 `species` holds text, not numbers: left out"


def test_whole_table_leaves_out_an_empty_unnamed_last_column(tmp_path):
    path = _write(tmp_path, "a,b,\n1,2,\n3,4,\n")           # a trailing delimiter on every line
    src = read_file(path, GMM)
    np.testing.assert_array_equal(src.arrays["x"], [[1, 2], [3, 4]])
    assert "column 3 has no name and no values" in src.notes[0].message


def test_whole_table_missing_value_is_an_error(tmp_path):
    path = _write(tmp_path, "a,b\n1,2\n3,NA\n")
    assert _error(path, GMM).startswith(f"{path}:3:3: error: `NA` in column `b`: a missing value")


# ----------------------------------------------------------------- delimiters and records
@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_delimiter_is_sniffed(tmp_path, sep):
    path = str(tmp_path / "s.csv")
    FAITHFUL.to_csv(path, sep=sep, index=False)
    np.testing.assert_array_equal(read_file(path, GMM).arrays["x"], FAITHFUL.to_numpy())


def test_decimal_comma_is_an_error_with_a_hint(tmp_path):
    path = _write(tmp_path, "eruptions;waiting\n3,6;79\n1,8;54\n")
    err = _error(path, GMM_1D)
    assert err.startswith(f"{path}:2:1: error: `3,6` in column `eruptions` is not a number")
    assert "hint: the decimal point is `.`" in err


def test_record_with_too_many_fields(tmp_path):
    path = _write(tmp_path, "a,b\n1,2\n1,000.5,4\n")
    err = _error(path, GMM)
    assert err.startswith(f"{path}:3:1: error: this record has 3 fields but the header (line 1) has 2")
    assert "thousands separator" in err


def test_record_with_too_few_fields(tmp_path):
    path = _write(tmp_path, "a,b\n1,2\n3\n")
    assert _error(path, GMM).startswith(f"{path}:3:1: error: this record has 1 fields but the header")


def test_blank_lines(tmp_path):
    assert read_file(_write(tmp_path, "a,b\n1,2\n\n3,4\n\n"), GMM).arrays["x"].shape == (2, 2)
    np.testing.assert_array_equal(read_file(_write(tmp_path, "eruptions\n1\n2\n\n\n"), GMM_1D).arrays["eruptions"],
                                  [1, 2])
    # in a one-column file a blank line between values is an empty cell
    path = _write(tmp_path, "eruptions\n1\n\n2\n")
    assert _error(path, GMM_1D).startswith(f"{path}:3:1: error: an empty cell in column `eruptions`: a missing value")


def test_quoted_fields_crlf_and_byte_order_mark(tmp_path):
    path = _write(tmp_path, '\ufeff"eruptions","note"\r\n"3.5","a, b"\r\n 4.0 ,"say ""hi"""\r\n')
    np.testing.assert_array_equal(read_file(path, GMM_1D).arrays["eruptions"], [3.5, 4.0])


def test_only_newline_ends_a_line(tmp_path):
    """A form feed or U+2028 in a text cell is not a line end (str.splitlines would split there)."""
    path = _write(tmp_path, "eruptions,note\n3.5,a\x0cb\n4.0,c\u2028d\n")
    np.testing.assert_array_equal(read_file(path, GMM_1D).arrays["eruptions"], [3.5, 4.0])
    path = _write(tmp_path, "eruptions\r3.5\r4.0\r", "mac.csv")       # a lone carriage return: one line
    assert _error(path, GMM_1D).startswith(f"{path}:1:1: error: cannot read the record: a carriage return (\\r) "
                                           "alone ends a line")


def test_header_of_numbers_is_not_column_names(tmp_path):
    path = _write(tmp_path, "3.6,79\n1.8,54\n")
    assert _error(path, GMM).startswith(f"{path}:1:1: error: the first line holds numbers, not column names")


def test_pandas_default_column_labels_are_names(tmp_path):
    path = str(tmp_path / "m.csv")
    pd.DataFrame(FAITHFUL.to_numpy()).to_csv(path, index=False)   # header `0,1`
    np.testing.assert_array_equal(read_file(path, GMM).arrays["x"], FAITHFUL.to_numpy())


def test_a_used_column_named_twice(tmp_path):
    path = _write(tmp_path, "eruptions,eruptions\n1,2\n")
    assert "column `eruptions` appears more than once" in _error(path, GMM_1D)


def test_missing_variable_lists_the_columns(tmp_path):
    from ppvi.io.data import bind

    path = _write(tmp_path, "eruption,waiting\n1,2\n")
    poisson = ppvi.load(str(MODELS / "gamma_poisson.ppvi")).checked
    with pytest.raises(PPVIError, match="data variable `discoveries` is missing\nhint: the data has: eruption, "
                                        "waiting"):
        bind(poisson, read_file(path, poisson))
    with pytest.raises(PPVIError, match="hint: did you mean `eruption`"):
        bind(GMM_1D, read_file(path, GMM_1D))


def test_not_utf8(tmp_path):
    path = _write(tmp_path, "eruptions\n3.6\ncaf\xe9\n", encoding="latin-1")
    assert _error(path, GMM_1D).startswith(f"{path}: error: line 3 is not UTF-8 text (byte 0xe9)")


def test_error_placed_in_a_later_block(tmp_path):
    """Rows are converted a block at a time; an error far into the file names its own line."""
    n = 70_000
    values = np.arange(n) / 7.0
    lines = ["eruptions"] + [repr(v) for v in values.tolist()]
    lines[69_001] = "oops"
    path = _write(tmp_path, "\n".join(lines) + "\n")
    assert _error(path, GMM_1D).startswith(f"{path}:69002:1: error: `oops` in column `eruptions` is not a number")
    lines[69_001] = repr(values[69_000].item())
    path = _write(tmp_path, "\n".join(lines) + "\n", "ok.csv")
    np.testing.assert_array_equal(read_file(path, GMM_1D).arrays["eruptions"], values)


def test_blank_line_at_the_end_of_a_block_then_data(tmp_path):
    from ppvi.io.csv_file import BLOCK

    lines = ["eruptions"] + ["1.5"] * (BLOCK - 1) + ["", "2.5"]
    path = _write(tmp_path, "\n".join(lines) + "\n")
    assert _error(path, GMM_1D).startswith(f"{path}:{BLOCK + 1}:1: error: an empty cell in column `eruptions`")


def test_control_characters_in_a_shown_line_are_escaped(tmp_path):
    path = _write(tmp_path, "eruptions,note\n\x1b[31mred,x\n")
    err = _error(path, GMM_1D)
    assert "\x1b" not in err and "\\x1b[31mred" in err


# ----------------------------------------------------------------- the whole command
def test_run_notes_the_index_column_and_fits_the_two_columns(tmp_path, capsys):
    indexed, plain = tmp_path / "indexed.csv", tmp_path / "plain.csv"
    FAITHFUL.to_csv(indexed)
    FAITHFUL.to_csv(plain, index=False)
    flags = ["--max-iter", "3", "--tol", "0", "--quiet", "--out"]      # (--tol 0: three sweeps, no warning)
    code, _, err = run_cli(["run", MODELS / "gmm.ppvi", "--data", indexed, *flags, tmp_path / "a.json"], capsys)
    assert code == 0 and err.startswith(f"{indexed}: note: the first column has no name"), err
    code, _, err = run_cli(["run", MODELS / "gmm.ppvi", "--data", plain, *flags, tmp_path / "b.json"], capsys)
    assert code == 0 and err == ""
    import json
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    assert a["elbo"] == b["elbo"] and np.shape(a["q"]["mu"]["mean"]) == (6, 2)


MULTILEVEL = ppvi.load(str(MODELS / "multilevel_regression.ppvi")).checked   # county[N] : index(J)


def test_text_in_a_column_that_is_not_an_index_is_not_a_number(tmp_path):
    """(Text in the column of `index(J)` data is labels: tests/io/test_labels.py.)"""
    path = _write(tmp_path, "county,x,y\n0,low,1.4\n", name="x.csv")
    message = _error(path, MULTILEVEL)
    assert "`low` in column `x` is not a number" in message and "hint" not in message
