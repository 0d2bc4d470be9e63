"""`factor EXPR` and `latent NAME[shape] : binary|real` (DESIGN §7): parsed, checked, turned into factors."""

from __future__ import annotations

from ppvi.language import ast, loads, parse
from ppvi.language.check import ENERGY, FLAT

ISING = """\
dim N
data J[N, N]
data h[N]
latent s[N] : binary
latent x : real
factor -x ^ 2 + x * s[0]
for i in N:
    factor h[i] * s[i]
    for j in N:
        factor J[i, j] * s[i] * s[j]
"""


def test_factor_statement_and_priorless_latent_parse_with_spans():
    m = parse(ISING)
    decl = m.statements[3]
    assert isinstance(decl, ast.VarDecl) and decl.kind == "latent" and decl.support.name.id == "binary"
    top = m.statements[5]
    assert isinstance(top, ast.Energy) and isinstance(top.expr, ast.BinOp) and top.span.line == 6
    loop = m.statements[6]
    assert isinstance(loop.body[0], ast.Energy) and isinstance(loop.body[1].body[0], ast.Energy)
    assert loop.body[1].body[0].span.line == 10 and loop.body[1].body[0].span.col == 9


def test_checked_model_has_a_flat_factor_per_latent_then_the_energy_terms():
    m = loads(ISING)
    assert m.variables["s"].kind == "latent" and m.variables["s"].support == "binary"
    assert m.variables["x"].support == "real" and m.unnormalised
    flat = [f for f in m.factors if f.dist == FLAT]
    assert [(f.target, f.plates) for f in flat] == [("s", (("n", "N"),)), ("x", ())]
    assert m.prior("s").dist == FLAT and m.prior("s").target_index == ("n",)
    energy = [f for f in m.factors if f.dist == ENERGY]
    assert [f.plates for f in energy] == [(), (("i", "N"),), (("i", "N"), ("j", "N"))]
    assert [(f.target, f.parents) for f in energy] == [("x", ("s",)), ("s", ("h",)), ("s", ("J",))]
    assert all(f.energy and not f.observed for f in energy)


def test_a_directed_model_is_normalised():
    assert not loads("x ~ Normal(0, 1)\n").unnormalised
