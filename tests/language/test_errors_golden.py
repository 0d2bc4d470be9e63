"""Every user error in a model prints FILE:LINE:COL, the line, a caret and a hint; exit status 2.

Golden files: ``bad/NAME.ppvi`` with the expected stderr in ``bad/NAME.expected``.
Regenerate with ``pytest --update-golden`` and read the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import assert_golden, run_cli

BAD = Path(__file__).parent / "bad"
CASES = sorted(p.name for p in BAD.glob("*.ppvi"))


@pytest.mark.parametrize("name", CASES)
def test_error_message(name, capsys, monkeypatch, update_golden):
    monkeypatch.chdir(BAD)
    code, out, err = run_cli(["check", name], capsys)
    assert code == 2, f"exit {code}, stderr:\n{err}"
    assert out == ""
    assert "Traceback" not in err
    first = err.splitlines()[0]
    assert first.startswith(f"{name}:") and ": error: " in first
    expected = BAD / (name[:-5] + ".expected")
    assert_golden(expected, err, update_golden)


def test_every_golden_file_has_a_model():
    orphans = [p.name for p in BAD.glob("*.expected") if not (BAD / (p.stem + ".ppvi")).exists()]
    assert not orphans


def test_missing_file(capsys, tmp_path):
    code, _, err = run_cli(["check", tmp_path / "nope.ppvi"], capsys)
    assert code == 2 and "cannot read model" in err


def test_multiple_errors_reported_in_one_pass(capsys, monkeypatch):
    monkeypatch.chdir(BAD)
    _, _, err = run_cli(["check", "multiple_errors.ppvi"], capsys)
    assert err.count(": error: ") == 3


@pytest.mark.parametrize("name", ["wishart_scale_data_expression", "mvnormal_precision_expression"])
def test_a_named_matrix_hint_gives_a_model_that_checks(name):
    """Each declaration the hint suggests for a matrix written as an expression, put before the line
    and named in place of the expression, gives a model `ppvi check` accepts (it once suggested a const
    holding an expression over data, which check refuses)."""
    import re

    from ppvi import PPVIError
    from ppvi.language import loads

    text = (BAD / f"{name}.ppvi").read_text()
    with pytest.raises(PPVIError) as caught:
        loads(text)
    (d,) = caught.value.diagnostics
    lines = text.splitlines()
    line = lines[d.span.line - 1]
    expr = line[d.span.col - 1: d.span.end_col - 1]
    suggested = re.findall(r"`((?:const|data) P\[[^`]*)`", d.hint or "")
    assert suggested
    for declaration in suggested:
        fixed = lines[: d.span.line - 1] + [declaration, line.replace(expr, "P")] + lines[d.span.line:]
        loads("\n".join(fixed) + "\n")
