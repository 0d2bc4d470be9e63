"""What the ELBO labels and the factor table quote: a statement's own text, never the comment after it.

A label used to be the whole first line of its statement: a trailing ``# …`` comment came along (nile, hmm,
lds_noise) and a statement spanning lines lost its continuation.  The grammar has no strings, so ``#`` always
opens a comment.
"""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from ppvi.derive.meanfield import derive
from ppvi.graph import build
from ppvi.language import loads

MODEL = """# a model whose statements carry comments, span lines and continue with a backslash
dim N                       # observations
data x[N]
mu ~ Normal(0,              # a comment inside the brackets
            precision = 0.01)   # and one after them
tau ~ Gamma(1, 1)           # weak
for n in N:
    x[n] ~ Normal(mu, \\
                  precision = tau)  # the likelihood
factor -(mu*mu) / 2#no space before this comment
"""
TEXTS = ["mu ~ Normal(0, precision = 0.01)", "tau ~ Gamma(1, 1)", "x[n] ~ Normal(mu, precision = tau)",
         "factor -(mu*mu) / 2"]


@pytest.fixture(scope="module")
def model():
    return loads(MODEL)


def test_the_elbo_labels_quote_each_statement_alone(model):
    labels = [label for label, _ in derive(model).elbo_terms()][:4]
    assert labels == [f"E[log p] of `{t}`" for t in TEXTS[:3]] + [f"E[energy] of `{TEXTS[3]}`"]


def test_the_factor_table_quotes_each_statement_alone(model):
    assert [f.text for f in build(model).factors] == TEXTS
    assert [f.line for f in build(model).factors] == [4, 6, 8, 10]


def test_derive_prints_no_comment_of_the_model(tmp_path, capsys):
    path = tmp_path / "m.ppvi"
    path.write_text(MODEL, encoding="utf-8")
    code, out, err = run_cli(["derive", path], capsys)
    assert code == 0, err
    assert "#" not in out and not [w for w in ("brackets", "weak", "likelihood", "observations") if w in out]
    assert "  E[log p] of `x[n] ~ Normal(mu, precision = tau)`:" in out.splitlines()
    code, out, _ = run_cli(["derive", path, "--format", "json"], capsys)
    assert json.loads(out)["elbo_labels"][:2] == [f"E[log p] of `{t}`" for t in TEXTS[:2]]


@pytest.mark.parametrize("text, want", [
    ("dim N\r\nmu ~ Normal(0, 1)  # crlf\r\n", "mu ~ Normal(0, 1)"),
    ("dim N\nmu ~ Normal(0, 1)# no newline at the end", "mu ~ Normal(0, 1)"),
    ("dim N\nmu ~ Normal(  # one\n    # a whole comment line\n\n    0, (1\n  ))\n", "mu ~ Normal(0, (1))"),
    ("dim N # \u2028 a line separator\x0c in a comment\nmu ~ Normal(0, 1)  # \x1b[2J\n", "mu ~ Normal(0, 1)"),
])
def test_statement_text(text, want):
    m = loads(text)
    assert m.statement(m.factors[0]) == want


def test_a_flat_factor_quotes_its_declaration():
    m = loads("dim N\ndata y[N]\nlatent s[N] : binary   # spins\nfor i in N:\n    factor y[i] * s[i]  # field\n")
    assert sorted(m.statement(f) for f in m.factors) == ["factor y[i] * s[i]", "latent s[N] : binary"]
