"""Parsing: the language of DESIGN.md §2 reaches the AST with correct structure and spans."""

from __future__ import annotations

import pytest

from ppvi.errors import PPVIError
from ppvi.language import ast, loads, parse

DESIGN_EXAMPLE = """\
model gaussian_mixture            # optional header naming the model

dim N, D                          # sizes, taken from data shapes when not given
dim K = 3                         # a default

const alpha0[K] = 1.0             # scalar fill
const w[2] = [1.0, -0.5]          # literal
const m0 = 0.0

data x[N]
data y[N] : binary

param W[D, K]
param beta[D] : positive

pi ~ Dirichlet(alpha0)
for k in K:
    mu[k] ~ Normal(m0, sd = 10)
    tau[k] ~ Gamma(1, 1)
for n in N:
    z[n] ~ Categorical(pi)
    x[n] ~ Normal(mu[z[n]], precision = tau[z[n]])
"""


def test_design_example_parses_and_checks():
    m = loads(DESIGN_EXAMPLE)
    assert m.name == "gaussian_mixture"
    assert m.dims["K"].default == 3 and m.dims["N"].default is None
    kinds = {n: v.kind for n, v in m.variables.items()}
    assert kinds == {"alpha0": "const", "w": "const", "m0": "const", "x": "data", "y": "data", "W": "param",
                     "beta": "param", "pi": "latent", "mu": "latent", "tau": "latent", "z": "latent"}
    assert m.variables["pi"].shape == ("K",) and m.variables["pi"].support == "simplex"
    assert m.variables["z"].support == "index" and m.variables["z"].support_dim == "K"
    assert m.variables["beta"].support == "positive"
    x = next(f for f in m.factors if f.target == "x")
    assert x.observed and x.dist == "Normal" and [a for a, _ in x.args] == ["mean", "precision"]
    assert set(x.parents) == {"mu", "z", "tau"}
    assert x.plates == (("n", "N"),)


def test_precedence_and_associativity():
    mod = parse("a ~ Normal(-2 ^ 3 ^ 2 * 4 - 1, 1)\n")
    e = mod.statements[0].dist.args[0].value
    # ((-(2 ^ (3 ^ 2))) * 4) - 1
    assert isinstance(e, ast.BinOp) and e.op == "-"
    mul = e.left
    assert mul.op == "*" and isinstance(mul.left, ast.Neg)
    pw = mul.left.operand
    assert pw.op == "^" and pw.right.op == "^"


def test_spans_point_at_source():
    mod = parse("dim N\ndata x[N]\nfor n in N:\n    x[n] ~ Normal(0, sd = 2)\n")
    draw = mod.statements[2].body[0]
    assert (draw.target.span.line, draw.target.span.col) == (4, 5)
    kw = draw.dist.args[1]
    assert kw.keyword.id == "sd" and (kw.keyword.span.line, kw.keyword.span.col) == (4, 22)


@pytest.mark.parametrize("name", ["lambda", "class", "import", "print", "def", "None", "exec", "eval", "__import__"])
def test_python_keywords_are_ordinary_names(name):
    m = loads(f"dim N\ndata x[N]\n{name} ~ Gamma(1, 1)\nfor n in N:\n    x[n] ~ Normal(0, precision = {name})\n")
    assert m.variables[name].kind == "latent"


def test_comments_blank_lines_continuations_and_brackets():
    text = ("# header\n\n\ndim N   # trailing\ndata x[N]\nmu ~ Normal(0,\n            1)  # joined\n"
            "for n in N:\n\n    # inside\n    x[n] ~ Normal(mu, \\\n  1)\n# end, no newline")
    m = loads(text)
    assert {"mu", "x"} <= set(m.variables)


def test_nested_loops_and_sum():
    m = loads("dim N, D\ndim M = 4\ndata v[N, D]\nparam W[D, M]\nfor n in N:\n    for i in M:\n"
              "        h[n, i] ~ Bernoulli(0.5)\n    for j in D:\n"
              "        v[n, j] ~ Normal(sum(i in M: W[j, i] * h[n, i]), 1)\n")
    assert m.variables["h"].shape == ("N", "M")
    v = next(f for f in m.factors if f.target == "v")
    assert v.plates == (("n", "N"), ("j", "D")) and set(v.parents) == {"W", "h"}


def test_vector_events_and_matrices():
    m = loads("dim N, D\ndim K = 2\nconst P[D, D] = eye(D)\nconst nu = D + 1\nconst m0[D] = 0.0\n"
              "data x[N, D]\nfor k in K:\n    mu[k] ~ MvNormal(m0, precision = P)\n"
              "    L[k] ~ Wishart(nu, P)\nfor n in N:\n    x[n] ~ MvNormal(mu[0], cov = P)\n")
    assert m.variables["mu"].shape == ("K", "D")
    assert m.variables["L"].shape == ("K", "D", "D")


def test_huge_nesting_never_raises_recursion_error():
    deep = "(" * 5000 + "1" + ")" * 5000
    m = loads(f"a ~ Normal({deep}, 1)\n")  # parentheses alone do not nest the tree
    assert "a" in m.variables
    with pytest.raises(PPVIError, match="nesting deeper"):
        loads("a ~ Normal(" + "-" * 5000 + "1, 1)\n")
    with pytest.raises(PPVIError, match="nesting deeper"):
        loads("a ~ Normal(" + "exp(" * 3000 + "1" + ")" * 3000 + ", 1)\n")


def test_deeply_nested_loops_are_refused_cleanly():
    text = "".join(f"dim D{i} = 2\n" for i in range(70))
    text += "".join("    " * i + f"for i{i} in D{i}:\n" for i in range(70)) + "    " * 70 + "a ~ Normal(0, 1)\n"
    with pytest.raises(PPVIError):
        loads(text)


def test_crlf_line_endings():
    m = loads("dim N\r\ndata x[N]\r\nfor n in N:\r\n    x[n] ~ Normal(0, 1)\r\n")
    assert m.variables["x"].kind == "data"
