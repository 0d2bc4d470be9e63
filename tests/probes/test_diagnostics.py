"""Diagnostics point at the right place and never carry the user's bytes to the terminal raw."""

from __future__ import annotations

import pytest

from conftest import run_cli
from ppvi.errors import Diagnostic, Span, source_lines

TAIL = "dim N\ndata x[N]\nmu ~ Normla(0, 1)\nfor n in N:\n    x[n] ~ Normal(mu, 1)\n"


@pytest.mark.parametrize("separator", ["\x0c", "\u2028", "\u2029", "\x1c", "\x85", "\x0b"])
def test_a_line_separator_in_a_comment_leaves_the_caret_on_the_right_line(separator, tmp_path, capsys):
    """Only \\n ends a line of a model (as for the lexer): Python's splitlines also breaks at form feeds,
    U+2028 and their kin, and the caret went under another line."""
    path = tmp_path / "m.ppvi"
    path.write_text(f"# a comment{separator}with a separator\n" + TAIL, encoding="utf-8")
    code, _, err = run_cli(["check", path], capsys)
    assert code == 2
    head, line, caret = err.splitlines()[:3]
    assert head.startswith(f"{path}:4:6: error: unknown distribution")
    assert line.strip() == "mu ~ Normla(0, 1)" and caret.strip() == "^~~~~~"
    assert line.index("Normla") == caret.index("^")


def test_control_characters_never_reach_the_terminal(tmp_path, capsys):
    """An escape sequence in a comment or a name's line is shown escaped, caret still aligned."""
    path = tmp_path / "m.ppvi"
    path.write_text("dim N\ndata x[N]\nmu ~ Normla(0, 1)   # \x1b[2J\x1b]0;owned\x07 \x9b\u202e\n"
                    "for n in N:\n    x[n] ~ Normal(mu, 1)\n", encoding="utf-8")
    code, _, err = run_cli(["check", path], capsys)
    assert code == 2
    assert not any(ch in err for ch in "\x1b\x07\x9b\u202e")
    assert "\\x1b[2J" in err
    head, line, caret = err.splitlines()[:3]
    assert line.index("Normla") == caret.index("^")


def test_source_lines_split_only_at_newlines():
    assert source_lines("a\x0cb\u2028c\r\nd\n") == ["a\x0cb\u2028c", "d"]
    assert source_lines("a\n\nb") == ["a", "", "b"] and source_lines("") == []


def test_a_diagnostic_escapes_its_message_and_hint():
    d = Diagnostic("bad \x1b[31m thing", "f\x1b.ppvi", Span(1, 3), "x = \x1b[0m y", "try \x07 this")
    text = d.format()
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b" in text and "\\x07" in text


@pytest.mark.parametrize("n", [60, 1000, 5000])
def test_a_long_flat_sum_is_not_nesting(n, tmp_path, capsys):
    """A regression on many covariates is one flat sum, not n levels of nesting: it was refused as
    "nesting deeper than 64 levels" from about 60 terms.  Mixed + and − (and * and /) keep their meaning."""
    from ppvi.derive import derive
    from ppvi.language import loads

    terms = " + ".join(f"{i % 7}.0 * w" if i % 3 else f"w / {i + 1}.0" for i in range(n)) + " - 2.0 * w + w"
    src = f"dim N\ndata x[N]\nw ~ Normal(0, 1)\nfor n in N:\n    x[n] ~ Normal({terms}, 1)\n"
    model = loads(src)
    if n == 60:
        import sympy as sp
        d = derive(model)
        coef = sum((i % 7) if i % 3 else 1.0 / (i + 1) for i in range(n)) - 2.0 + 1.0
        # the data term of q(w)'s η for x: Σ_n x_n · coef (precision 1): compare the coefficient
        eta = d.q["w"].natural["x2"]
        N = d.syms.dims["N"]
        assert abs(float(eta.subs(N, 1)) - (-(coef ** 2) / 2 - 0.5)) < 1e-9

