"""Data far from zero: a Normal's data and the means that locate them, read around a shift (docs/derivation.md,
"Data far from zero").

Derive gives E_q[τ(x − μ)²] expanded, Σx² − 2⟨μ⟩Σx + N⟨μ²⟩: at data mean 10⁸ and sd 1 every term is ~10¹⁶
and their sum, the scatter, is lost to rounding.  Here each data array x observed by a ``Normal`` statement
gets a shift c (its mean, computed once when the data are bound: ``c_shift__x``), and every scalar
Normal-q latent located by it (a bare term of the statement's mean, and up the chain of Normal statements
whose value it is) is read around the same c.  In a kernel's expression that reads such a latent,

    x = (x − c) + c,    ⟨μ⟩ = (⟨μ⟩ − c) + c,    ⟨μ²⟩ = (⟨μ⟩ − c)² + Var μ + 2c(⟨μ⟩ − c) + c²,

then the expression is expanded into Σ_limits Π factors, where the powers of c cancel exactly (SymPy adds
equal terms), and what is left of c is written as a square or a difference completed in c: −½β₀(c − m₀)²,
never −½β₀c² + β₀cm₀ − ½β₀m₀².  (x − c) and (⟨μ⟩ − c) are opaque (:class:`centred`), one subtraction each.
The rewrite is exact for any c (c = 0 is the expansion as derived), so an engine that binds another c (a
streamed fit's first chunk) is right too.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ppvi.derive.qfamily import ParamBase
from ppvi.derive.symbols import MomentBase, MomentSymbol, centred, shift

MAX_TERMS = 512      # a longer expansion is left as derived


@dataclass(frozen=True)
class Centring:
    """Which data arrays are read around their shift, and which latents around whose."""

    data: frozenset[str]
    latents: dict[str, str]      # scalar Normal-q latent -> the data array whose shift it takes

    @classmethod
    def of(cls, d) -> "Centring":
        """From a Derivation: the data a ``Normal`` statement observes, and the latents its mean adds."""
        from ppvi.families import UNITS, unit_of

        def shifted(name: str) -> bool:
            return name in UNITS and UNITS[name].shifted

        model = d.model
        normal = {v for v, q in d.q.items()
                  if unit_of(q.family).shifted and not q.event and v not in d.point}
        seeds: dict[str, str] = {}
        for f in model.factors:
            v = model.variables.get(f.target)
            if shifted(f.dist) and f.observed and not f.partial and v is not None and v.kind == "data":
                seeds.setdefault(f.target, f.target)
        latents = dict(seeds)
        changed = True
        while changed:
            changed = False
            for f in model.factors:
                if not shifted(f.dist) or f.target not in latents or f.arg("mean") is None:
                    continue
                for name in _added(f.arg("mean"), model.variables):
                    if name in normal and name not in latents:
                        latents[name] = latents[f.target]
                        changed = True
        scalars = frozenset(v.name for v in model.variables.values() if v.kind in ("const", "data") and not v.shape)
        return cls(frozenset(seeds) - scalars, {v: c for v, c in latents.items() if v in normal and c not in scalars})


def _added(e, variables) -> list[str]:
    """The variables a mean adds as a bare term: ``mu``, ``b0`` in ``b0 + w * x[n]``, or an element picked by a
    latent label, ``mu[z[n]]``.  Not an element per datum (``h[n]``) nor one picked by index data
    (``a[county[n]]``): the local step and the scatter statistics read those as they are (a shift there would
    reach into the group block's and the scatter's own sums), and their data stay unshifted as derived."""
    from ppvi.language import ast

    if isinstance(e, ast.BinOp) and e.op in "+-":
        return _added(e.left, variables) + _added(e.right, variables)
    if isinstance(e, ast.Name):
        return [e.id]
    if isinstance(e, ast.Index) and all(
            isinstance(i, ast.Index) and getattr(variables.get(i.base.id), "kind", None) == "latent"
            for i in e.indices):
        return [e.base.id]
    return []


def centre(e: sp.Expr, c: Centring, fresh) -> sp.Expr:
    """e read around the shifts (see the module's docstring), or e itself where it reads no shifted latent,
    reads one inside a function, or expands to more than MAX_TERMS terms."""
    if not c.latents or not isinstance(e, sp.Basic):
        return e
    dummies: dict = {}
    sub = _substitution(e, c, dummies)
    # (data alone are read around their shift too: then an update that reads Σ r x, the mean's, and one that
    # reads Σ r (x − c), the precision's, read one statistic, and a point's η and its statistics one feature row)
    if not sub or _inside_function(e, set(sub)):
        return e
    from ppvi.codegen.rewrite import monomials

    data = any(isinstance(m, sp.Indexed) and not isinstance(m.base, MomentBase) for m in sub)
    element, outside = None, sp.S.Zero
    if not data:
        # a prior's term, Σ_k E[(μ_k − m₀)²] with derive's constant sums multiplied out (K m₀²): its square is
        # completed element by element, so the terms go back under one sum over the elements
        terms = monomials(e, fresh, MAX_TERMS)
        split = _elements(terms) if terms is not None else None
        if split is None:
            return e
        element, e, outside = split
        sub = _substitution(e, c, dummies)
    terms = monomials(e.xreplace(sub), fresh, MAX_TERMS)
    if terms is None:
        return e if element is None else sp.Sum(e, element) + outside
    total = sp.Add(*(_term(limits, factors) for limits, factors in terms))
    devs = {}
    if not data:
        # completed in ⟨μ⟩ − c too: ((⟨μ⟩ − c) + (c − m₀))², right wherever q(μ) sits (by the data, or far from
        # them by its prior)
        devs = {d: sp.Dummy("d") for d in sorted(total.atoms(centred), key=sp.default_sort_key)}
        total = total.xreplace(devs)
    out = _complete(total, list(devs.values()) + list(dummies.values()))
    out = out.xreplace({v: d for d, v in devs.items()})
    if element is not None:
        out = sp.Sum(out, element)
    back = {k: shift(sp.Symbol(name)) for name, k in dummies.items()}
    return (out + outside).xreplace(back)


def _substitution(e: sp.Expr, c: Centring, dummies: dict) -> dict:
    """Each located moment and shifted datum in e -> its centred form (a Dummy per shift, kept in ``dummies``)."""
    def c_of(data: str) -> sp.Expr:
        return dummies.setdefault(data, sp.Dummy(f"c_{data}"))

    sub = {}
    for node in sp.preorder_traversal(e):
        base = node.base if isinstance(node, sp.Indexed) else node
        if isinstance(base, (MomentBase, MomentSymbol)) and base.var in c.latents and base.stat in ("x", "x2"):
            k = c_of(c.latents[base.var])
            at = node.indices if isinstance(node, sp.Indexed) else (0,)
            mean = node if base.stat == "x" else (MomentBase(base.var, "x")[at] if isinstance(node, sp.Indexed)
                                                  else MomentSymbol(base.var, "x"))
            dev = centred(mean, k)
            if base.stat == "x":
                sub[node] = dev + k
            else:
                sub[node] = dev ** 2 + ParamBase(base.var, "sd")[at] ** 2 + 2 * k * dev + k ** 2
        elif isinstance(node, sp.Indexed) and str(base.label) in c.data and type(base) is sp.IndexedBase:
            sub[node] = centred(node, c_of(str(base.label))) + c_of(str(base.label))
    return sub


def _elements(terms: list) -> tuple | None:
    """Terms without data as (the one sum over a latent's elements or None, the summands' terms, what stays
    outside it); None where the terms sum over more than one axis or over axes of two lengths."""
    ranges = {(sp.sympify(lo), sp.sympify(hi)) for limits, _ in terms for _, lo, hi in limits}
    if any(len(limits) > 1 for limits, _ in terms) or len(ranges) > 1:
        return None
    if not ranges:
        return None, sp.Add(*(sp.Mul(*factors) for _, factors in terms)), sp.S.Zero
    lo, hi = ranges.pop()
    size, j = hi - lo + 1, sp.Idx("_e", (lo, hi))
    inside, outside = [], []
    for limits, factors in terms:
        f = sp.Mul(*factors)
        if limits:
            inside.append(([], [f.xreplace({limits[0][0]: j})]))
        elif size in sp.Mul.make_args(f) and not (f / size).has(*size.free_symbols):
            inside.append(([], [f / size]))
        else:
            outside.append(f)
    return (j, lo, hi), sp.Add(*(f for _, (f,) in inside)), sp.Add(*outside)


def _inside_function(e: sp.Expr, atoms: set) -> bool:
    """Whether an atom is read other than through sums, products and integer powers."""
    if e in atoms:
        return False
    if isinstance(e, (sp.Add, sp.Mul, sp.Sum)) or (isinstance(e, sp.Pow) and e.exp.is_Integer and e.exp > 0):
        parts = e.args if not isinstance(e, sp.Sum) else (e.function,)
        return any(_inside_function(a, atoms) for a in parts)
    if isinstance(e, sp.Pow):
        return _inside_function(e.base, atoms) or _inside_function(e.exp, atoms) if e.has(*atoms) else False
    return any(e.has(a) for a in atoms) if e.args else False


def _term(limits: list, factors: list) -> sp.Expr:
    """Σ_limits Π factors with its bound indices named by position (equal sums become equal expressions) and the
    sums that no factor reads multiplied out as their lengths."""
    kept, scale, rename = [], sp.S.One, {}
    factors = list(factors)
    for pos, (i, lo, hi) in enumerate(limits):
        lo, hi = sp.sympify(lo).xreplace(rename), sp.sympify(hi).xreplace(rename)
        reads = any(f.has(i) for f in factors) or any(sp.sympify(b).has(i) for _, a, z in limits[pos + 1:]
                                                       for b in (a, z))
        if not reads:
            scale *= hi - lo + 1
            continue
        j = sp.Idx(f"_s{pos}", (lo, hi))
        rename[i] = j
        factors = [f.xreplace({i: j}) for f in factors]
        limits = limits[:pos + 1] + [(a, sp.sympify(x).xreplace({i: j}), sp.sympify(z).xreplace({i: j}))
                                     for a, x, z in limits[pos + 1:]]
        kept.append((j, lo, hi))
    bound = {j for j, _, _ in kept}
    inner = sp.Mul(*(f for f in factors if f.free_symbols & bound))
    outer = sp.Mul(*(f for f in factors if not f.free_symbols & bound))
    return scale * outer * (sp.Sum(inner, *kept) if kept else inner)


def _complete(total: sp.Expr, ks: list) -> sp.Expr:
    """Terms grouped by what they read besides numbers, shifts, sizes and scalar consts; in each group's coefficient
    the powers of a shift k completed: a₂k² + a₁k + a₀ = a₂(k + a₁/2a₂)² + (a₀ − a₁²/4a₂), a₁k + a₀ =
    a₁(k + r) + (a₀ − a₁r) with r the terms of a₀/a₁ that are a number times one scalar (−m₀)."""
    def coefficient(f: sp.Expr) -> bool:
        return not (f.has(sp.Indexed, sp.Sum, centred) or f.atoms(MomentSymbol))

    groups: dict = {}
    for t in sp.Add.make_args(total):
        coef = sp.Mul(*(f for f in sp.Mul.make_args(t) if coefficient(f)))
        key = sp.Mul(*(f for f in sp.Mul.make_args(t) if not coefficient(f)))
        groups[key] = groups.get(key, sp.S.Zero) + coef
    out = []
    for key, coef in groups.items():
        done = []
        for k in ks:        # (the deviations first: what is left of them is then free of them)
            if coef.has(k):
                part, coef = _complete_one(_expand(coef), k)
                done.append(part)
        out.append(key * (sp.Add(*done) + coef))
    return sp.Add(*out)


def _complete_one(coef: sp.Expr, k: sp.Dummy) -> tuple[sp.Expr, sp.Expr]:
    """(the part of coef that reads k, as a square or a product completed in k; the rest, free of k)."""
    parts = sp.collect(coef, k, evaluate=False)
    if not set(parts) <= {sp.S.One, k, k ** 2}:
        return coef, sp.S.Zero
    a2, a1, a0 = (parts.get(p, sp.S.Zero) for p in (k ** 2, k, sp.S.One))
    if a2 != 0:
        r = sp.cancel(a1 / (2 * a2))
        if r.has(k):
            return coef, sp.S.Zero
        return a2 * (k + r) ** 2, _expand(a0 - sp.cancel(a1 ** 2 / (4 * a2)))
    r = sp.Add(*(u for u in sp.Add.make_args(_expand(sp.cancel(a0 / a1)))
                 if len(u.free_symbols) == 1 and u.as_coeff_Mul()[1] in u.free_symbols))
    return a1 * (k + r), _expand(a0 - a1 * r)


def _expand(e: sp.Expr) -> sp.Expr:
    """Products and integer powers multiplied out; logs and powers of products left as they are."""
    return sp.expand(e, log=False, power_base=False, power_exp=False)
