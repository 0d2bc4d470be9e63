"""codegen.centre: a Normal's data and the means that locate them read around a shift (docs/derivation.md,
"Data far from zero").  The rewrite must be an identity for every value of the shift, cancel the shift out
of the data's quadratic, and leave no square of a number far from zero to subtract."""

from __future__ import annotations

import numpy as np
import sympy as sp

from conftest import MODELS
from ppvi.codegen.centre import Centring, centre
from ppvi.derive import derive
from ppvi.derive.qfamily import ParamBase
from ppvi.derive.symbols import MomentSymbol, centred, shift
from ppvi.language import loads


HIERARCHY = """dim J
data y[J]
m ~ Normal(0.0, sd = 10.0)
mu ~ Normal(m, sd = 1.0)
tau ~ Gamma(1.0, 1.0)
for j in J:
    theta[j] ~ Normal(mu, precision = tau)
    y[j] ~ Normal(theta[j] + mu, sd = 1.0)
"""


def _derived(name: str):
    d = derive(loads((MODELS / f"{name}.ppvi").read_text(), f"{name}.ppvi"))
    return d, Centring.of(d)


def _undone(e: sp.Expr, c: sp.Symbol) -> sp.Expr:
    """The centred form read back in the moments: (a − c) as a − c, the shift as c, sd² as ⟨μ²⟩ − ⟨μ⟩²."""
    e = e.replace(lambda n: isinstance(n, shift), lambda n: c)
    e = e.replace(lambda n: isinstance(n, centred), lambda n: n.args[0] - n.args[1])
    sd = ParamBase("mu", "sd")[0]
    return e.xreplace({sd: sp.sqrt(MomentSymbol("mu", "x2") - MomentSymbol("mu", "x") ** 2)})


def _same(a: sp.Expr, b: sp.Expr, d) -> bool:
    """a = b identically, read at N = 4 (the sums written out over waiting[0..3])."""
    at = {d.syms.dims["N"]: 4}
    return sp.expand(a.xreplace(at).doit() - b.xreplace(at).doit()) == 0


def _loose(e: sp.Expr) -> bool:
    """The shift read other than inside a (a − c)."""
    return e.replace(lambda n: isinstance(n, centred), lambda n: sp.Symbol("dev")).has(shift)


def test_the_shifts_follow_the_normal_statements():
    assert _derived("normal_gamma")[1] == Centring(frozenset({"waiting"}), {"mu": "waiting"})
    # μ locates y, m locates μ: a hierarchy's mean takes its children's shift; τ's precision is no location, and
    # θ[j], an element per datum, is read as derived (the local step's), nor is an element picked by index data
    d = derive(loads(HIERARCHY, "h.ppvi"))
    assert Centring.of(d) == Centring(frozenset({"y"}), {"mu": "y", "m": "y"})
    assert _derived("multilevel_regression")[1].latents == {}


def test_the_rewrite_is_exact_and_cancels_the_shift_out_of_the_likelihood():
    d, c = _derived("normal_gamma")
    k = sp.Symbol("c")
    for fid, e in d.expected.items():
        out = centre(e, c, d.syms.fresh)
        assert _same(_undone(out, k), e, d)
    likelihood = centre(d.expected[2], c, d.syms.fresh)
    assert not _loose(likelihood)            # Σ(x − c)², (⟨μ⟩ − c), Var μ: no c left alone
    assert likelihood.has(centred) and not likelihood.has(MomentSymbol("mu", "x2"))
    eta = centre(d.q["tau"].natural["x"], c, d.syms.fresh)
    assert not _loose(eta) and _same(_undone(eta, k), d.q["tau"].natural["x"], d)


def test_what_is_left_of_the_shift_is_a_completed_square():
    """λ's η reads β₀(c − m0)², never β₀(c² − 2cm0 + m0²) (at c ≈ m0 ≈ 1e8 a difference of 1e16s); μ's prior
    term, which reads no data, ((⟨μ⟩ − c) + (c − m0))², right wherever q(μ) sits."""
    d, c = _derived("normal_gamma_joint")
    m0, k = sp.Symbol("m0", real=True), shift(sp.Symbol("waiting"))
    dev = centred(MomentSymbol("mu", "x"), k)
    for e, base in ((d.q["lam"].natural["x"], k - m0), (d.expected[1], dev + k - m0)):
        out = centre(e, c, d.syms.fresh)
        squares = [p for p in out.atoms(sp.Pow) if p.exp == 2 and _loose(p.base)]
        assert squares and all(sp.expand(p.base ** 2 - base ** 2) == 0 for p in squares)


def test_data_alone_are_read_around_their_shift_too():
    """μ's η reads τ Σ x: read as τ Σ (x − c) + c τ N, so that it and λ's η read one statistic, Σ (x − c), the
    same value; an expression reading neither data nor a located latent is left as derived."""
    d, c = _derived("normal_gamma")
    k = sp.Symbol("c")
    eta = d.q["mu"].natural["x"]
    out = centre(eta, c, d.syms.fresh)
    assert out.has(centred) and _same(_undone(out, k), eta, d)
    prior = d.q["tau"].natural["logx"]
    assert centre(prior, c, d.syms.fresh) == prior
