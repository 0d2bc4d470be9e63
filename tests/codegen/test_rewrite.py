"""The symbolic rewrites (codegen.rewrite): each rule against sums computed here by plain loops, the list's order
against the docs, and the driver as the one place that applies a rule."""

from __future__ import annotations

import ast
import dataclasses
import itertools
import re
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from ppvi.codegen import rewrite
from ppvi.codegen.emit import Block, CodegenError, Names, Writer, place_sums
from ppvi.codegen.ir import PlateSum, SumPlace
from ppvi.codegen.rewrite import REWRITES, Scope
from ppvi.derive.lower import before

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------ the sum rules
N, KK, J, II = sp.Symbol("N"), 3, 2, sp.Symbol("I")
n, k, j, i = sp.Idx("n", (0, N - 1)), sp.Idx("k", (0, KK - 1)), sp.Idx("j", (0, J - 1)), sp.Idx("i", (0, II - 1))
a, b, c, d = (sp.IndexedBase(x) for x in "abcd")


def plate_sum(limits, factors) -> PlateSum:
    sizes = {n: None, k: KK, j: J, i: None}
    return PlateSum(tuple(limits), tuple(factors), n, tuple((lim[0], sizes[lim[0]]) for lim in limits))


def evaluate(parts, values: dict, sizes: dict) -> float:
    """The product of the parts' sums, by plain loops in NumPy (written here, not the writer's)."""
    total = 1.0
    for p in parts:
        limits = p.limits + p.outer
        f = sp.lambdify([lim[0] for lim in limits] + list(values), sp.Mul(*p.factors))
        grid = np.meshgrid(*(np.arange(int(sp.sympify(hi).subs(sizes)) + 1) for _, _, hi in limits), indexing="ij")
        total *= float(np.sum(f(*grid, *values.values()) * np.ones_like(grid[0], dtype=float)))
    return total


def _arrays():
    rng = np.random.default_rng(0)
    return {a: rng.normal(size=5), b: rng.normal(size=KK), c: rng.normal(size=(5, 4)), d: rng.normal(size=(KK, J))}


def test_separate_makes_a_product_of_the_sums_of_factors_on_disjoint_indices():
    """Σ_{n,k,i,j} a[n] c[n, i] · 2 b[k] d[k, j] = (Σ_{n,i} 2 a[n] c[n, i]) (Σ_{k,j} b[k] d[k, j]): the plate's part
    first (with the constant), the other in the order of its limits; the value is the same."""
    s = plate_sum([(n, 0, N - 1), (k, 0, KK - 1), (i, 0, II - 1), (j, 0, J - 1)],
                  [sp.Integer(2), a[n], b[k], c[n, i], d[k, j]])
    parts = rewrite.separate(s)
    assert [p.limits for p in parts] == [((n, 0, N - 1), (i, 0, II - 1)), ((k, 0, KK - 1), (j, 0, J - 1))]
    assert [p.factors for p in parts] == [(2, a[n], c[n, i]), (b[k], d[k, j])]
    assert [p.plate for p in parts] == [n, None]
    sizes = {N: 5, II: 4}
    assert evaluate(parts, _arrays(), sizes) == pytest.approx(evaluate((s,), _arrays(), sizes), rel=1e-12)


def test_separate_keeps_a_sum_whose_factors_share_indices():
    """A factor reading both sides (c[n, k]) joins them, and so does a bound (Σ_{j ≤ n}); Σ_k 1 stays with the
    plate."""
    joined = plate_sum([(n, 0, N - 1), (k, 0, KK - 1)], [a[n], b[k], c[n, k]])
    assert rewrite.separate(joined) == (joined,)
    bounded = plate_sum([(n, 0, N - 1), (j, 0, n)], [a[n], b[j]])
    assert rewrite.separate(bounded) == (bounded,)
    counted = plate_sum([(n, 0, N - 1), (k, 0, KK - 1)], [a[n]])
    assert rewrite.separate(counted) == (counted,)


def test_split_sums_the_fixed_dims_outside_the_statistic():
    """Σ_{n,k,i} a[n] c[n, k] c[n, i]: k (K = 3, fixed) goes outside, n and i (the data's) stay inside; the value
    is the same.  No plate, a fixed span over SPLIT_MAX values, or bounds across the two sides: unchanged."""
    s = plate_sum([(n, 0, N - 1), (k, 0, KK - 1), (i, 0, II - 1)], [a[n], c[n, k], c[n, i]])
    (out,) = rewrite.split(s)
    assert out.limits == ((n, 0, N - 1), (i, 0, II - 1)) and out.outer == ((k, 0, KK - 1),)
    sizes = {N: 5, II: 4}
    assert evaluate((out,), _arrays(), sizes) == pytest.approx(evaluate((s,), _arrays(), sizes), rel=1e-12)
    assert rewrite.split(dataclasses.replace(s, plate=None)) == (dataclasses.replace(s, plate=None),)
    big = dataclasses.replace(s, sizes=((n, None), (k, rewrite.SPLIT_MAX + 1), (i, None)))
    assert rewrite.split(big) == (big,)
    across = plate_sum([(n, 0, N - 1), (k, 0, KK - 1), (i, 0, k)], [a[n], c[n, i]])
    assert rewrite.split(across) == (across,)
    log = {}
    assert rewrite.rewrite(s, Scope(), log) == (out,) and log[s] == (("separate", (s,)), ("split", (out,)))
    apart = plate_sum([(n, 0, N - 1), (k, 0, KK - 1), (i, 0, II - 1)], [a[n], c[n, i], d[k, 0]])
    # (separated first: no fixed dim left inside)
    assert [p.outer for p in rewrite.rewrite(apart, Scope(), {})] == [(), ()]


# ------------------------------------------------------------------ the list, the driver, the record
# ------------------------------------------------------------------ the sum stage (emit.place_sums)
def _stage(**kw) -> Scope:
    """A writer's scope for the sum stage: N is the data plate, a whole-number extent is one the model fixes."""
    return Scope(**{"big": frozenset({N}), "fixed": lambda size: int(size) if size.is_Integer else None, "rank": {},
                    "reads": lambda e: False, **kw})


def test_the_sum_stage_shapes_a_sum_over_the_plate_before_any_text():
    """Σ_{n,k,i} a[n] c[n, k] c[n, i] where the module has statistics: the stage places it as the product the sum
    rules make (split: Σ_k outside of the array Σ_{n,i} over k), written by hand here, records the stages for
    ``--dump sums``, and places the part's inner sum inside the loop over k as a statistic."""
    e = sp.Sum(a[n] * c[n, k] * c[n, i], (n, 0, N - 1), (k, 0, KK - 1), (i, 0, II - 1))
    log: dict = {}
    places = place_sums(e, (None,), 0, _stage(stats=object()), log)
    factors = sp.Mul.make_args(e.function)
    whole = PlateSum(e.limits, factors, n, ((n, None), (k, KK), (i, None)))
    part = dataclasses.replace(whole, limits=((n, 0, N - 1), (i, 0, II - 1)), outer=((k, 0, KK - 1),))
    assert places[(e, (None,), 0)] == SumPlace("shaped", 0, (part,))
    assert dict(log[whole]) == {"separate": (whole,), "split": (part,)}
    inner = sp.Sum(sp.Mul(*factors), (n, 0, N - 1), (i, 0, II - 1))
    assert places[(inner, (None, k), 0)] == SumPlace("statistic", 0)
    # separate: (Σ_n a[n]) (Σ_j d[0, j]), the plate's part first; the other computed by a loop where it is read
    e = sp.Sum(a[n] * d[0, j], (n, 0, N - 1), (j, 0, J - 1))
    places = place_sums(e, (None,), 0, _stage(stats=object()), {})
    first, second = places[(e, (None,), 0)].parts
    assert (first.limits, first.factors, second.limits, second.factors) == \
        (((n, 0, N - 1),), (a[n],), ((j, 0, J - 1),), (d[0, j],))
    assert places[(sp.Sum(d[0, j], (j, 0, J - 1)), (None,), 0)] == SumPlace("loop", 0)
    # no statistics in the module (a statistics kernel's own writer): no sum rule, one pass over the data
    assert place_sums(e, (None,), 0, _stage(), {})[(e, (None,), 0)] == SumPlace("pass", 0)


def test_the_sum_stage_places_each_sum_at_its_loops():
    """Inside loops over (n, k): Σ_j b[k] d[k, j] reads only k, so it is one small array over k filled before the
    loop over n; the same sum reading the update's own moments (d) stays at the element's loop (pinned); Σ_n a[n]
    reads no index of the loops, one pass over the plate before them."""
    ctx = (None, n, k)
    s = sp.Sum(b[k] * d[k, j], (j, 0, J - 1))
    assert place_sums(s, ctx, 2, _stage(), {})[(s, ctx, 2)] == SumPlace("array", 0)
    own = _stage(reads=lambda e: e.has(d))
    assert place_sums(s, ctx, 2, own, {})[(s, ctx, 2)] == SumPlace("loop", 2)
    total = sp.Sum(a[n], (n, 0, N - 1))
    places = place_sums(2 * total * b[k], ctx, 2, _stage(), {})
    assert places == {(total, ctx, 2): SumPlace("pass", 0)}


def test_the_writer_refuses_a_sum_the_stage_did_not_place():
    """The writer prints only what the sum stage decided: a sum reaching its printer without the stage is an
    error, the same sum through an entry point (which stages it first) is written."""
    w = Writer(Names(), {N: "n_N"}, big=frozenset({N}))
    s = sp.Sum(a[n], (n, 0, N - 1))
    with pytest.raises(CodegenError, match="did not place"):
        w._value(s, [Block()], 0)
    fn = Block()
    assert w.value(s, [fn], 0).startswith("_a")       # (the pass's array, filled before the body)
    assert w.places[(s, (None,), 0)] == SumPlace("pass", 0)


def test_the_rules_are_listed_in_the_order_the_docs_give():
    """REWRITES' names in order = the order docs/architecture.md and the module docstring list them."""
    names = [r.name for r in REWRITES]
    assert names == ["around_shifts", "through_offsets", "through_deltas", "interchange", "statistics", "narrow",
                     "scaled_into_sums", "separate", "split"]
    doc = (ROOT / "docs/architecture.md").read_text()
    section = doc[doc.index("### The rewrite rules"):]
    assert re.findall(r"^\d+\. `(\w+)`", section, re.M)[:len(names)] == names
    assert re.findall(r"^    (\w+) ", rewrite.__doc__, re.M) == names
    assert all(r.fn.__doc__ and "Sound" in r.fn.__doc__ for r in REWRITES)     # (each says why it is exact)


def _calls(tree: ast.AST):
    """(the function it is in, the call's func node) for every call."""
    def visit(node, where):
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else where
            if isinstance(child, ast.Call):
                yield inner, child.func
            yield from visit(child, inner)
    yield from visit(tree, None)


def _rule_calls(path: Path, rules: set) -> list:
    """(function, rule) for each call of a rule in the module at ``path``: by the name it was imported under from
    codegen.rewrite, through the module (``rewrite.split``), or, in rewrite.py, by its own name."""
    tree = ast.parse(path.read_text())
    home = path.name == "rewrite.py"
    direct = {r: r for r in rules} if home else {}
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "ppvi.codegen.rewrite":
            direct.update({a.asname or a.name: a.name for a in node.names if a.name in rules})
        elif isinstance(node, ast.ImportFrom) and node.module == "ppvi.codegen":
            modules |= {a.asname or a.name for a in node.names if a.name == "rewrite"}
        elif isinstance(node, ast.Import):
            modules |= {a.asname for a in node.names if a.name == "ppvi.codegen.rewrite" and a.asname}
    out = []
    for where, f in _calls(tree):
        if isinstance(f, ast.Name) and f.id in direct:
            out.append((where, direct[f.id]))
        elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in modules and \
                f.attr in rules:
            out.append((where, f.attr))
    return out


def test_only_the_driver_applies_a_rule():
    """No module of ppvi calls a rule but codegen.rewrite's driver (``rewrite``), and a rule itself only to recurse."""
    rules = {r.fn.__name__ for r in REWRITES}
    allowed = {("rewrite.py", "rewrite", r) for r in rules} | {("rewrite.py", r, r) for r in rules}
    found = [(path.name, where, rule) for path in sorted((ROOT / "ppvi").rglob("*.py"))
             if path.name == "rewrite.py" or re.search(r"codegen(\.| import )rewrite", path.read_text())
             for where, rule in _rule_calls(path, rules)]
    assert found and not set(found) - allowed


def test_the_writer_prints_what_the_driver_hands_it_and_the_record_shows_each_rule():
    """Σ_{i=1}^{T-1} [i − 1 = t] x[i] through a writer: the driver makes it [0 ≤ t] [t < T − 1] x[t + 1]
    (through_offsets; checked by hand at every t), the record holds the stages, and the text reads x at t + 1, no
    loop over i."""
    T = sp.Symbol("T")
    i, t = sp.Idx("i", (0, T - 1)), sp.Idx("t", (0, T - 1))
    x = sp.IndexedBase("x")
    e = sp.Sum(sp.KroneckerDelta(i - 1, t) * x[i], (i, 1, T - 1))
    names = Names()
    w = Writer(names, {T: "n_T"})
    text = w.top(e, [Block()])
    [((whole, done), stages)] = names.rewrites.items()
    assert whole == e and [s for s, _ in stages] == [r.name for r in REWRITES if r.on == "expr"]
    assert stages[0] == ("around_shifts", e)         # (no shifts in this writer: the first rule leaves e)
    assert done == stages[1][1] == before(0, t + 1) * before(t + 1, T) * x[t + 1]
    for n in range(5):       # (the value at every t, T = 5: the sum by hand)
        xs = {x[k]: 10.0 ** k for k in range(6)}
        want = sum(xs[x[k]] for k in range(1, 5) if k - 1 == n)
        assert float(done.subs(t, n).subs(T, 5).replace(before, lambda a, b: 1 if a < b else 0).xreplace(xs)) == want
    assert "for " not in text and "min(" in text


# ------------------------------------------------------------------ the expression rules, each on its own
def _value(e: sp.Expr, values: dict) -> float:
    """e, its sums written out term by term (SymPy's doit), with every array entry replaced (twice: an entry read
    at a data value, P[user[t]], is P's once user[t] is a number)."""
    for _ in range(2):
        e = e.xreplace(values)
    return float(e)


def _arrays_for(e: sp.Expr, shapes: dict, seed: int = 1) -> dict:
    """Random entries for each array of ``shapes`` (``user``: rows 0..2, a data-valued index)."""
    rng = np.random.default_rng(seed)
    out = {}
    for base, shape in shapes.items():
        for at in np.ndindex(*shape):
            out[base[at]] = sp.Integer(int(rng.integers(0, 3))) if base.label.name == "user" else float(rng.normal())
    return out


def _rule_cases():
    """(rule, example, scope, the arrays' shapes, the form the rule must give)."""
    U, D = 3, 3
    nn, tt = sp.Idx("n", (0, 3)), sp.Idx("t", (0, 3))
    jj, ii, uu = sp.Idx("j", (0, D - 1)), sp.Idx("i", (0, D - 1)), sp.Idx("u", (0, U - 1))
    A, g, cc, r, x, L, P, y, user = (sp.IndexedBase(s) for s in ("A", "g", "c", "r", "x", "L", "P", "y", "user"))
    # c varies with the element, A and g do not: Σ_i c[i] Σ_j A[j] g[j, i], the inner sum computed once
    e = sp.Sum(A[jj] * sp.Sum(g[jj, ii] * cc[ii], (ii, 0, D - 1)), (jj, 0, D - 1))
    want = sp.Sum(cc[ii] * sp.Sum(A[jj] * g[jj, ii], (jj, 0, D - 1)), (ii, 0, D - 1))
    updates = Scope(updates=True, varies=lambda e: e.has(cc), reads=lambda e: False)
    yield pytest.param("interchange", e, updates, {A: (D,), g: (D, D), cc: (D,)}, want, id="interchange")
    # Σ_n r[n] Σ_i L[1, i] x[n, i] over the plate (4 points): Σ_i L[1, i] Σ_n r[n] x[n, i], an array over i alone
    e = sp.Sum(r[nn] * sp.Sum(L[jj, ii] * x[nn, ii], (ii, 0, D - 1)), (nn, 0, 3))
    want = sp.Sum(L[jj, ii] * sp.Sum(r[nn] * x[nn, ii], (nn, 0, 3)), (ii, 0, D - 1))
    yield pytest.param("narrow", e, Scope(big=frozenset({sp.Integer(4)})), {r: (4,), L: (D, D), x: (4, D)}, want,
                       id="narrow")
    # Σ_t [u = user[t]] P[user[t]] y[t]: P[u] Σ_t [u = user[t]] y[t], P read once per u
    e = sp.Sum(sp.KroneckerDelta(uu, user[tt]) * P[user[tt]] * y[tt], (tt, 0, 3))
    want = P[uu] * sp.Sum(sp.KroneckerDelta(uu, user[tt]) * y[tt], (tt, 0, 3))
    yield pytest.param("through_deltas", e, Scope(), {P: (U,), y: (4,), user: (4,)}, want, id="through_deltas")


@pytest.mark.parametrize("name, e, at, shapes, want", _rule_cases())
def test_each_expression_rule_gives_its_form_and_keeps_the_value(name, e, at, shapes, want):
    """Each rule on its own gives the form its docstring says and leaves the value (every sum written out term by
    term, at every free index) alone; interchange and narrow return their input where they do not apply."""
    fn = next(r.fn for r in REWRITES if r.name == name)
    out = fn(e, at)
    assert out == want
    values = _arrays_for(e, shapes)
    free = sorted((s for s in e.free_symbols if isinstance(s, sp.Idx)), key=str)     # (j for narrow, u for deltas)
    terms, got = e.doit(), out.doit()
    for at_free in itertools.product(*(range(int(s.upper) + 1) for s in free)):
        fixed = dict(zip(free, map(sp.Integer, at_free)))
        assert _value(got.xreplace(fixed), values) == pytest.approx(_value(terms.xreplace(fixed), values), rel=1e-12)
    if name != "through_deltas":
        assert fn(e, Scope()) == e
