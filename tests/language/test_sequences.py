"""Sequences (DESIGN §7): offsets along a plate, sliced plates, first elements by their own statements."""

from __future__ import annotations

import pytest

from conftest import MODELS
from ppvi.errors import PPVIError
from ppvi.language import ast
from ppvi.language.check import check
from ppvi.language.parser import parse

HMM = (MODELS / "sequences" / "hmm.ppvi").read_text()     # the example: z[0], then z[t] for t in T[1:]


def checked(text: str):
    return check(parse(text, "m.ppvi"))


def test_sliced_loop_parses_with_its_start():
    loop = [s for s in parse(HMM).statements if isinstance(s, ast.Loop)][1]
    assert (loop.var.id, loop.dim.id, loop.start) == ("t", "T", 1)
    assert loop.start_span.line == 19


def test_hmm_is_a_chain_with_its_first_element():
    m = checked(HMM)
    chain = m.chains["z"]
    assert (chain.axis, chain.dim, chain.start, chain.lag) == (0, "T", 1, 1)
    body, first = m.factors[chain.body], m.factors[chain.firsts[0]]
    assert body.slices == (("t", 1),) and body.target_index == ("t",) and body.fixed == ()
    assert first.fixed == ((0, 0),) and first.target_index == () and first.plates == ()
    z = m.variables["z"]
    assert (z.shape, z.support, z.support_dim) == (("T",), "index", "K")
    assert m.approximations == {"z": "jointly"}
    assert "z" not in body.parents          # a chain reads itself only through its own elements


def test_second_order_chain_over_several_sequences():
    m = checked("""\
dim S, T
for s in S:
    x[s, 0] ~ Normal(0, 1)
    x[s, 1] ~ Normal(x[s, 0], 1)
    for t in T[2:]:
        x[s, t] ~ Normal(0.5 * x[s, t-1] + 0.2 * x[s, t-2], 1)
""")
    c = m.chains["x"]
    assert (c.axis, c.start, c.lag, len(c.firsts)) == (1, 2, 2, 2)
    assert [m.factors[i].fixed for i in c.firsts] == [((1, 0),), ((1, 1),)]


def test_observed_chain_needs_no_first_statement():
    m = checked("""\
dim T
data y[T]
rho ~ Normal(0, 1)
for t in T[1:]:
    y[t] ~ Normal(rho * y[t-1], 1)
""")
    assert m.chains["y"].firsts == () and m.variables["y"].kind == "data"


def test_offset_into_another_variable_is_range_checked():
    ok = checked("""\
dim T
data u[T]
for t in T[1:]:
    x[t] ~ Normal(u[t-1], 1)
x[0] ~ Normal(0, 1)
""")
    assert ok.chains["x"].lag == 0
    with pytest.raises(PPVIError, match=r"`t-2` reads element -1 of axis 0 of `u` when t = 1"):
        checked("dim T\ndata u[T]\nx[0] ~ Normal(0, 1)\nfor t in T[1:]:\n    x[t] ~ Normal(u[t-2], 1)\n")
    with pytest.raises(PPVIError, match=r"reads past the end of axis 0 of `u`"):
        checked("dim T\ndata u[T]\nfor t in T:\n    x[t] ~ Normal(u[t+1], 1)\n")


def test_plain_models_have_no_chains():
    m = checked("dim N\ndata x[N]\nmu ~ Normal(0, 1)\nfor n in N:\n    x[n] ~ Normal(mu, 1)\n")
    assert m.chains == {} and all(f.fixed == () and f.slices == () for f in m.factors)
