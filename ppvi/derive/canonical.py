"""Canonical forms: no decision of a derivation depends on how an index is spelled.

Two forms of an expression in index notation:

* :func:`canonical` — the form a derivation keeps and prints.  Every
  summation index is renamed by its position: its range and its nesting depth
  (the first sum over N binds ``n′``, a sum over N inside it ``n″``).  Equal
  sums are then equal expressions whatever the user called the loop
  variable, and SymPy combines them.
* :func:`normal_form` — the form decisions are made on (does η depend on the
  latent's own moments? is a coefficient zero?).  Products are expanded into
  monomials Σ_bound c·Π factors; a Kronecker delta that binds a summation
  index is summed out, deltas between free indices are replaced by one
  representative per class; each monomial's summation indices are ordered by
  what they index, not by their names, then named by position.  A polynomial
  in the atoms (moments, data, functions of them) that is identically zero
  has normal form 0, however its terms were spelled (issue 14, item 2: two
  sums differing only in a bound index's name; a product left unexpanded).

Bound indices in both forms are labelled by :class:`~ppvi.derive.symbols.BoundLabel`,
which never equals a free or fresh index: renaming cannot capture.
"""

from __future__ import annotations

import itertools
import math

import sympy as sp
from sympy.core.sorting import default_sort_key

from ppvi.derive.symbols import BoundLabel

#: Most orderings of tied summation indices a monomial's normal form tries (then it keeps the first).
MAX_ORDERINGS = 120


def stem(lo: sp.Expr, hi: sp.Expr) -> str:
    """The name a summation index over lo..hi is given: its dim's, in lower case (``i`` for a number).

    The dim is read off the upper end, so a sliced plate's sum (t over T[2:], lo = 2, hi = T − 1) is
    named by T like the whole plate's."""
    size = hi + 1
    return size.name.lower() if isinstance(size, sp.Symbol) else "i"


def bound_index(lo: sp.Expr, hi: sp.Expr, primes: int) -> sp.Idx:
    return sp.Idx(BoundLabel(stem(lo, hi) + "′" * primes, integer=True), (lo, hi))


def _placeholder(lo: sp.Expr, hi: sp.Expr) -> sp.Idx:
    """A summation index no other can equal: renaming through it never captures."""
    return sp.Idx(sp.Dummy("c", integer=True), (lo, hi))


# ---------------------------------------------------------------- canonical
def canonical(e: sp.Expr) -> sp.Expr:
    """Rename every summation index over a plate by its range and nesting depth (n′, n″, …)."""
    return _canonical(e, 0)


def _canonical(e: sp.Expr, depth: int) -> sp.Expr:
    if isinstance(e, sp.Sum):
        limits = [lim for lim in e.limits]
        plate = [isinstance(i, sp.Idx) for i, _, _ in limits]
        tmp = {i: _placeholder(lo, hi) for (i, lo, hi), p in zip(limits, plate) if p}
        body = _canonical(e.function.xreplace(tmp), depth + len(limits))
        final = [(bound_index(lo, hi, depth + n + 1) if p else i, lo, hi)
                 for n, ((i, lo, hi), p) in enumerate(zip(limits, plate))]
        body = body.xreplace({tmp[i]: f for (i, _, _), (f, _, _) in zip(limits, final) if i in tmp})
        return sp.Sum(body, *final)
    if not e.args or isinstance(e, (sp.Indexed, sp.Idx, sp.IndexedBase)):
        return e
    return e.func(*(_canonical(a, depth) for a in e.args))


# -------------------------------------------------------------- normal form
def is_zero(e: sp.Expr) -> bool:
    """Whether ``e`` is identically zero as a polynomial in its atoms (see the module doc)."""
    return normal_form(e) == 0


def normal_form(e: sp.Expr, depth: int = 0) -> sp.Expr:
    """``e`` as a sum of canonical monomials; like terms combine (see the module doc)."""
    return sp.Add(*(_monomial(limits, factors, depth) for limits, factors in _expand(sp.sympify(e))))


def without_zero_terms(e: sp.Expr) -> sp.Expr:
    """``e`` less the terms of its sum that are zero alone or cancel in pairs (normal forms that sum to
    0); every other term is kept as written, so the form the code generator reads does not change."""
    terms = list(sp.Add.make_args(e))
    if len(terms) < 2 or not e.has(sp.Sum):
        return e
    forms = [normal_form(t) for t in terms]
    keep = [f != 0 for f in forms]
    for i in range(len(terms)):
        for j in range(i + 1, len(terms)):
            if keep[i] and keep[j] and forms[i] + forms[j] == 0:
                keep[i] = keep[j] = False
    return e if all(keep) else sp.Add(*(t for t, k in zip(terms, keep) if k))


Monomial = tuple[list, list]      # (summation limits, factors)


def _expand(e: sp.Expr) -> list[Monomial]:
    """Products distributed over sums; every summation index a fresh placeholder (so the two
    copies of a sum in a square never share one)."""
    if isinstance(e, sp.Add):
        return [m for a in e.args for m in _expand(a)]
    if isinstance(e, sp.Mul):
        return _product([_expand(a) for a in e.args])
    if isinstance(e, sp.Pow) and e.exp.is_Integer and e.exp > 0 and isinstance(e.base, (sp.Add, sp.Mul, sp.Sum)):
        return _product([_expand(e.base) for _ in range(int(e.exp))])
    if isinstance(e, sp.Sum):
        tmp = {i: _placeholder(lo, hi) for i, lo, hi in e.limits}
        limits = [(tmp[i], lo, hi) for i, lo, hi in e.limits]
        return [(limits + lims, fs) for lims, fs in _expand(e.function.xreplace(tmp))]
    return [([], [e])]


def _product(parts: list[list[Monomial]]) -> list[Monomial]:
    out: list[Monomial] = [([], [])]
    for terms in parts:
        out = [(la + lb, fa + fb) for la, fa in out for lb, fb in terms]
    return out


def _monomial(limits: list, factors: list, depth: int) -> sp.Expr:
    limits, factors = _sum_out_deltas(list(limits), list(factors))
    if any(f == 0 for f in factors):
        return sp.S.Zero
    for lim in [lim for lim in limits if not any(f.has(lim[0]) for f in factors)]:
        limits.remove(lim)
        factors.append(lim[2] - lim[1] + 1)          # Σ_i c = (range)·c
    factors = _free_deltas(factors)
    if any(f == 0 for f in factors):
        return sp.S.Zero
    # Functions of sums (log Σ…, ψ(Σ α)) in normal form too, their indices named past this monomial's.
    inner = depth + len(limits)
    factors = [_normal_atom(f, inner) for f in factors]
    coeff = sp.Mul(*(f for f in factors if f.is_Number))
    body = sp.Mul(*(f for f in factors if not f.is_Number))
    if not limits:
        return coeff * body
    best = None
    for order in _orderings(limits, body):
        final = [(bound_index(lo, hi, depth + n + 1), lo, hi) for n, (_, lo, hi) in enumerate(order)]
        cand = sp.Sum(body.xreplace({i: f for (i, _, _), (f, _, _) in zip(order, final)}), *final)
        key = default_sort_key(cand)
        if best is None or key < best[0]:
            best = (key, cand)
    return coeff * best[1]


def _sum_out_deltas(limits: list, factors: list) -> tuple[list, list]:
    """Σ_i δ(i, a) f(i) = f(a): every delta that binds a summation index is summed out."""
    while True:
        bound = {lim[0] for lim in limits}
        for f in factors:
            if not isinstance(f, sp.KroneckerDelta):
                continue
            a, b = f.args
            i, other = (a, b) if a in bound and not b.has(a) else (b, a) if b in bound and not a.has(b) else (None, None)
            if i is not None:
                rest = list(factors)
                rest.remove(f)
                factors = [g.xreplace({i: other}) for g in rest]
                limits = [lim for lim in limits if lim[0] != i]
                break
        else:
            return limits, factors


def _free_deltas(factors: list) -> list:
    """δ(a, b) between free indices: each class of equal indices gets one representative, which
    replaces the others in every factor (δ(a, b) f(a, b) = δ(a, b) f(a, a))."""
    deltas = [f for f in factors if isinstance(f, sp.KroneckerDelta)]
    if not deltas:
        return factors
    parent: dict = {}

    def find(x):
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for d in deltas:
        ra, rb = find(d.args[0]), find(d.args[1])
        if ra != rb:
            parent[max(ra, rb, key=default_sort_key)] = min(ra, rb, key=default_sort_key)
    members = {x for d in deltas for x in d.args}
    rep = {x: find(x) for x in members}
    sub = {x: r for x, r in rep.items() if x != r}
    out = [f.xreplace(sub) for f in factors if not isinstance(f, sp.KroneckerDelta)]
    out += [sp.KroneckerDelta(r, x) for x, r in sorted(sub.items(), key=lambda kv: default_sort_key(kv[0]))]
    return out


def _normal_atom(f: sp.Expr, depth: int) -> sp.Expr:
    if not f.has(sp.Sum) or isinstance(f, (sp.Indexed, sp.Idx, sp.IndexedBase)):
        return f
    return f.func(*(normal_form(a, depth) for a in f.args))


def _orderings(limits: list, body: sp.Expr):
    """The monomial's summation indices sorted by what they index (a signature free of their
    names); indices with equal signatures are tried in every order, up to MAX_ORDERINGS."""
    bound = [lim[0] for lim in limits]
    me, other = sp.Symbol("_me"), sp.Symbol("_other")
    factors = sp.Mul.make_args(body)

    def signature(i) -> tuple:
        sub = {j: other for j in bound}
        sub[i] = me
        return tuple(sorted(default_sort_key(f.xreplace(sub)) for f in factors if f.has(i)))

    keyed = sorted((((default_sort_key(hi - lo), signature(i)), (i, lo, hi)) for i, lo, hi in limits),
                   key=lambda kv: kv[0])
    groups = [[lim for _, lim in g] for _, g in itertools.groupby(keyed, key=lambda kv: kv[0])]
    if math.prod(math.factorial(len(g)) for g in groups) > MAX_ORDERINGS:
        yield [lim for g in groups for lim in g]
        return
    for combo in itertools.product(*(itertools.permutations(g) for g in groups)):
        yield [lim for g in combo for lim in g]
