"""What a model's text can do to ``derive`` and ``check`` output (issue 21, item 13).

The ELBO labels and the factor table quoted model lines, comments included, and the
headers name the file: a terminal control sequence there reached the terminal raw, and a
form feed or U+2028 in a comment (a line break to Python's ``str.splitlines``, not to the
lexer) made every later label quote the line before its statement.  The labels now quote
the statement alone (test_statement_labels.py); the file name still reaches the header.
"""

from __future__ import annotations

import json

import pytest

from conftest import run_cli

HOSTILE = "\x1b[2J\x1b]0;owned\x07 \x9b31m \u202e"
MODEL = ("# a comment with a form feed\x0c and a line separator\u2028 and a paragraph separator\u2029\n"
         "dim N\ndata x[N]\n"
         f"mu ~ Normal(0, 10)   # {HOSTILE}\n"
         "for n in N:\n    x[n] ~ Normal(mu, 1)\n")
RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\u2028", "\u2029", "\x0c")


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "m\x1b[31m.ppvi"
    path.write_text(MODEL, encoding="utf-8")
    return path


@pytest.mark.parametrize("argv", [["derive"], ["derive", "--format", "latex"], ["derive", "--format", "json"],
                                  ["check"], ["check", "--format", "json"]])
def test_no_control_character_reaches_the_terminal(model, argv, capsys):
    code, out, err = run_cli([argv[0], model, *argv[1:]], capsys)
    assert code == 0, err
    assert not [ch for ch in RAW if ch in out]


def test_the_elbo_labels_quote_the_lines_of_their_statements(model, capsys):
    code, out, _ = run_cli(["derive", model, "--format", "json"], capsys)
    labels = json.loads(out)["elbo_labels"]
    assert labels[0] == "E[log p] of `mu ~ Normal(0, 10)`"
    assert labels[1] == "E[log p] of `x[n] ~ Normal(mu, 1)`"
    code, out, _ = run_cli(["derive", model], capsys)
    assert "  E[log p] of `x[n] ~ Normal(mu, 1)`:" in out.splitlines()


def test_the_factor_table_quotes_the_lines_of_its_statements(model, capsys):
    code, out, _ = run_cli(["check", model, "--format", "json"], capsys)
    factors = json.loads(out)["factors"]
    assert [f["line"] for f in factors] == [4, 6]
    assert factors[1]["text"] == "x[n] ~ Normal(mu, 1)"
