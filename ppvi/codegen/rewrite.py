"""The writer's symbolic rewrites as one ordered list of rules (``REWRITES``), applied by one driver (:func:`rewrite`).

A rule is a plain function: an expression rule maps a SymPy expression to an equal one (``e, at -> e``), a sum rule
maps an ir.PlateSum, a sum over the data plate, to the sums whose product it is (``s, at -> (s, …)``).  Each is
exact (finite sums, deltas, indicators), so any subset applied in any order leaves the value alone: the order
only decides which shape the writer prints.  ``at`` (a :class:`Scope`) is what a rule may read of the place the
expression is written: the data plate, whether the writer updates elements, the statistics.  A rule that does
not apply there returns its input.  The order, and why:

    around_shifts     every read of data under a Normal and of the means that locate them around the data's
                      shift c, the powers of c cancelled (codegen.centre): data far from zero keep their
                      scatter.  First: the rules after it then shape the centred sums.
    through_offsets   Σ_i [i + c = o] f(i) -> [lo ≤ o − c ≤ hi] f(o − c): a chain's neighbour read once, not
                      by a pass over the plate.  First: it removes sums the others would move about.
    through_deltas    Σ_t [o = g(t)] f(g(t), t) -> Σ_t [o = g(t)] f(o, t), what no longer reads t moved out.
                      After through_offsets (an offset delta is not a data-valued one), before interchange,
                      which then sees the factors that left the sum.
    interchange       Σ_j A(j) Σ_i g(j, i) c(i) -> Σ_i c(i) Σ_j A(j) g(j, i) where only c varies with the
                      element being updated: the inner sum is then computed once.  Only where the writer
                      updates elements (``Scope.updates``).  Before statistics: a swapped sum over the plate
                      may now be a statistic.
    statistics        a sum over the data plate as Σ_F c(F) · Σ_n s(n, F), the inner sum a statistic
                      (codegen.statistics registers it).  Only where the module has statistics.
    narrow            Σ_n over the plate swapped inward when c carries indices the rest does not: the pass over
                      the data fills a smaller array.  After statistics, which it would otherwise pre-empt.
    scaled_into_sums  a constant below TINY multiplies each term of the sum it scales (no overflow of the sum
                      alone).  Last of the expression rules: it changes no sum's shape, only where c sits.
    separate          (a sum rule) a sum of a product whose factors read disjoint sets of its indices as the
                      product of their sums.  First of the sum rules: ``split`` then sees each part's own dims.
    split             (a sum rule) the dims the model fixes summed outside the statistic when the plate (and the
                      data's dims) stay inside.

The expression rules run on every whole expression the writer is given (``emit.Writer.top``), before any of it
is written.  The sum rules run from the sum stage (``emit.place_sums``, through :func:`shaped`), also before any
text: on each sum over the plate in what the expression rules leave, and in the parts they make of one (the inner
sum of a split part, :func:`built`: fixed points of the rules, recorded all the same); the writer prints the
shapes the stage hands it.  Every application is recorded, the stages of an expression in ``Names.rewrites`` (``ppvi derive MODEL --dump rewrites``), of a sum in
``Statistics.sums`` (``--dump sums``).  docs/architecture.md, "Adding a rewrite rule".
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import sympy as sp

from ppvi.codegen.ir import PlateSum
from ppvi.derive.lower import before


TINY = 1e-150        # a constant factor smaller than this multiplies each term of the sum it scales (scaled_into_sums)
SPLIT_MAX = 1024     # values of the fixed dims, at most, for ``split`` to take them out of a statistic


@dataclass(frozen=True)
class Scope:
    """What a rule may read of the place an expression is written (emit.Writer.scope)."""

    big: frozenset = frozenset()       # the data plate's size symbols
    updates: bool = False              # the writer updates elements (reads its own moments or an element's index)
    varies: Callable | None = None     # e -> it changes from one element of the update to the next
    reads: Callable | None = None      # e -> it reads the moments the update writes
    stats: object = None               # codegen.statistics.Statistics, or None where the kernel has none
    centring: object = None            # codegen.centre.Centring: the shifts of data far from zero, or None
    fresh: object = None               # derive's fresh summation indices (the expansion's copies of a sum)
    fixed: Callable | None = None      # a size -> its extent where the model fixes it (K = 3), else None
    rank: dict | None = None           # variables' and dims' places in the model (emit.Names.rank)


@dataclass(frozen=True)
class Rule:
    """A rewrite, ``fn``, over a SymPy expression (``on`` = "expr") or over an ir.PlateSum (``on`` = "sum"); its
    name is the function's."""

    fn: Callable
    on: str

    @property
    def name(self) -> str:
        return self.fn.__name__


# ------------------------------------------------------------ expression rules
def _swap(e: sp.Expr, worth) -> sp.Expr:
    """Bottom-up: Σ_j A(j) Σ_i g(j, i) c(i) -> Σ_i c(i) Σ_j A(j) g(j, i) wherever ``worth(e, A, g_j, c, i)``.

    c are the factors of the inner summand that do not involve j; the swap is exact (finite sums)."""
    if not e.args or isinstance(e, (sp.Indexed, sp.Idx, sp.IndexedBase)):
        return e
    e = e.func(*(_swap(a, worth) for a in e.args))
    if not isinstance(e, sp.Sum) or len(e.limits) != 1:
        return e
    j = e.limits[0][0]
    factors = sp.Mul.make_args(e.function)
    inner = [f for f in factors if isinstance(f, sp.Sum) and len(f.limits) == 1 and f.function.has(j)]
    if len(inner) != 1:
        return e
    t = inner[0]
    a = sp.Mul(*(f for f in factors if f is not t))
    g = sp.Mul.make_args(t.function)
    gj = sp.Mul(*(f for f in g if f.has(j)))
    c = sp.Mul(*(f for f in g if not f.has(j)))
    if c == 1 or not worth(e, a, gj, c, t.limits[0][0]):
        return e
    return sp.Sum(c * sp.Sum(a * gj, e.limits[0]), t.limits[0])


def interchange(e: sp.Expr, at: Scope) -> sp.Expr:
    """Swap when only c varies during the kernel: the inner sum then no longer reads what the update
    changes and is computed once (a Gram matrix WᵀβW in 19.44, E[hhᵀ] for the regression of W).  Over the
    data plate A may also vary with the element, as long as it does not ``reads`` what the update writes:
    the inner sum is then an array over the elements filled by one pass over the data (PMF: Σ_k′ ⟨P[u, k′]⟩
    Σ_t [u = user[t]] ⟨Q[item[t], k]⟩ ⟨Q[item[t], k′]⟩, the pass filling an array over (u, k, k′)).  Sound: a
    swap of two finite sums.  Only where the writer updates elements (``at.updates``)."""
    if not at.updates:
        return e

    def worth(s, a, gj, c, i):
        over = sp.sympify(s.limits[0][2]) + 1 in at.big
        return (not at.varies(a) or (over and not at.reads(a))) and at.varies(c) and not at.varies(gj)
    return _swap(e, worth)


def through_deltas(e: sp.Expr, at: Scope | None = None) -> sp.Expr:
    """Σ_t [o = g(t)] f(g(t), t) -> Σ_t [o = g(t)] f(o, t) (exact: the delta vanishes where g(t) ≠ o), then the
    factors that no longer read the summation moved out: ⟨P[user[t], k′]⟩ under [u = user[t]] is ⟨P[u, k′]⟩,
    read once per element u rather than once per rating t, and the rest of the sum a scatter over the data
    that does not read the update's own moments.  Sound: where g(t) ≠ o the delta makes the term 0 either way."""
    if not e.args or isinstance(e, (sp.Indexed, sp.Idx, sp.IndexedBase)):
        return e
    e = e.func(*(through_deltas(a) for a in e.args))
    if not isinstance(e, sp.Sum):
        return e
    bound = {i for i, _, _ in e.limits}
    factors = sp.Mul.make_args(e.function)
    sub = {}
    for f in factors:
        if isinstance(f, sp.KroneckerDelta):
            for o, g in (f.args, f.args[::-1]):
                if isinstance(g, sp.Indexed) and g.free_symbols & bound and not o.free_symbols & bound:
                    sub[g] = o
                    break
    if not sub:
        return e
    factors = [f if isinstance(f, sp.KroneckerDelta) else _read_at(f, sub) for f in factors]
    outside = [f for f in factors if not f.free_symbols & bound]
    if not outside and all(a == b for a, b in zip(factors, sp.Mul.make_args(e.function))):
        return e
    return sp.Mul(*outside) * sp.Sum(sp.Mul(*(f for f in factors if f.free_symbols & bound)), *e.limits)


def _read_at(f: sp.Expr, sub: dict) -> sp.Expr:
    """f with g(t) read as o where it indexes an array (⟨P[user[t], k′]⟩ -> ⟨P[u, k′]⟩), nowhere else: a value
    compared or multiplied (a ragged chain's [seq[t] < seq[t−1] + 1]) stays g(t), as a scatter into row g(t)
    reads it, never o, which its pass does not bind."""
    return f.replace(lambda n: isinstance(n, sp.Indexed) and any(i in sub for i in n.indices),
                     lambda n: n.base[tuple(sub.get(i, i) for i in n.indices)])


def around_shifts(e: sp.Expr, at: Scope | None = None) -> sp.Expr:
    """e read around the shifts of ``at.centring`` (codegen.centre: x − c for a datum, ⟨μ⟩ − c for a mean that
    locates it, ⟨μ²⟩ as (⟨μ⟩ − c)² + Var μ), expanded so that the powers of c cancel.  Sound: the substitution is
    an identity for any c (c = 0 gives e back), and what remains of c is completed into squares."""
    if at is None or at.centring is None:
        return e
    from ppvi.codegen.centre import centre     # (centre imports derive's symbols; kept out of this module's import)

    return centre(e, at.centring, at.fresh)


def through_offsets(e: sp.Expr, at: Scope | None = None) -> sp.Expr:
    """Σ_{i=lo}^{hi} [i + c = o] f(i) -> [lo ≤ o − c ≤ hi] f(o − c) for a whole number c ≠ 0 and o free of i: a
    chain's neighbour read through an offset (Σ_{i≥1} [i − 1 = t] ⟨x[i]⟩ is ⟨x[t + 1]⟩ where t + 1 < T), one
    read instead of a pass over the plate per element.  Sound: the delta keeps the one term i = o − c, and the
    indicator says whether it is in the range.  (derive.expectation.collapse resolves c = 0.)"""
    if not e.args or isinstance(e, (sp.Indexed, sp.Idx, sp.IndexedBase)):
        return e
    e = e.func(*(through_offsets(a) for a in e.args))
    if not isinstance(e, sp.Sum):
        return e
    factors = sp.Mul.make_args(e.function)
    for n, (i, lo, hi) in enumerate(e.limits):
        for f in factors:
            if not isinstance(f, sp.KroneckerDelta):
                continue
            for side, o in (f.args, f.args[::-1]):
                c = side - i
                if c.is_Integer and c != 0 and i not in o.free_symbols:
                    at_ = o - c
                    rest = sp.Mul(*(g for g in factors if g is not f)).xreplace({i: at_})
                    inside = before(sp.sympify(lo) - 1, at_) * before(at_, sp.sympify(hi) + 1)
                    limits = e.limits[:n] + e.limits[n + 1:]
                    return through_offsets(inside * (sp.Sum(rest, *limits) if limits else rest))
    return e


def statistics(e: sp.Expr, at: Scope) -> sp.Expr:
    """Each sum over the data plate as Σ_F c(F) · Σ_n s(n, F): whatever does not vary with n (global moments,
    params) moved out, so the inner sum is a statistic of the local step (codegen.statistics).  Nested sums are
    flattened and products expanded, Σ_n r[n,k] Σ_d x[n,d] Σ_e Λ[k,e,d] x[n,e] -> Σ_{d,e} Λ[k,e,d] Σ_n r[n,k]
    x[n,d] x[n,e].  A sum that does not separate entirely is left as it was.  Only where the module has
    statistics (``at.stats``: what a statistic may read, the data-valued indices, fresh indices).  Sound:
    products distribute over finite sums, and sums of finite sums commute."""
    return e if at.stats is None else _statistics(e, at.stats)


def _statistics(e: sp.Expr, stats) -> sp.Expr:
    if not isinstance(e, sp.Basic) or not e.args or isinstance(e, (sp.Indexed, sp.Idx, sp.IndexedBase)):
        return e
    if isinstance(e, sp.Sum) and any(sp.sympify(hi) + 1 in stats.big for _, _, hi in e.limits):
        done = _separated(e, stats)
        if done is not None:
            return done
        return e
    return e.func(*(_statistics(a, stats) for a in e.args))


def _separated(e: sp.Sum, stats) -> sp.Expr | None:
    """Σ over the plate as Σ_F c(F) · Σ_n s(n, F), every term so, or None."""
    terms = monomials(e, stats.fresh)
    if terms is None:
        return None
    out = []
    for limits, factors in terms:
        big = [lim for lim in limits if sp.sympify(lim[2]) + 1 in stats.big]
        if len(big) != 1:
            return None
        n = big[0][0]
        unscattered = _unscatter(limits, factors, n, stats)
        if unscattered is None:
            return None
        limits, factors = unscattered
        inner = sp.Mul(*(f for f in factors if f.has(n)))
        outer = sp.Mul(*(f for f in factors if not f.has(n)))
        if not stats.accepts(inner):
            return None
        rest = [lim for lim in limits if lim[0] != n]
        stat = sp.Sum(inner, big[0])
        out.append(sp.Sum(outer * stat, *rest) if rest else outer * stat)
    return sp.Add(*out)


def _unscatter(limits: list, factors: list, n: sp.Idx, stats) -> tuple[list, list] | None:
    """A global read at a data-valued index, E[log θ][doc[t], k], becomes Σ_j E[log θ][j, k] [j = doc[t]]:
    the delta then makes Σ_t [j = doc[t]] r[t, k] a (scattered) statistic, an array the size of θ.
    At most one data-valued index per term (None otherwise): two would make the statistic an array over
    every pair of their values — ⟨P[user[t], k]⟩ ⟨Q[item[t], k]⟩ over users × items, or, squared, over
    (items × users)² — where the data hold only the pairs that occur; such a sum stays a pass over the
    data plate in the kernel that reads it."""
    scattered = sum(isinstance(f, sp.KroneckerDelta) and f.has(n) for f in factors)
    scattered += sum(isinstance(i, sp.Indexed) and i.has(n) and str(i.base.label) in stats.ranges
                     for f in factors if isinstance(f, sp.Indexed) and f.has(n) and not stats.accepts(f)
                     for i in f.indices)
    if scattered > 1:
        return None
    out = []
    for f in factors:
        if not isinstance(f, sp.Indexed) or not f.has(n) or stats.accepts(f):
            out.append(f)
            continue
        idx = list(f.indices)
        for p, i in enumerate(idx):
            if isinstance(i, sp.Indexed) and i.has(n) and str(i.base.label) in stats.ranges:
                j = stats.fresh("j", stats.ranges[str(i.base.label)])
                limits = limits + [(j, 0, j.upper)]
                out.append(sp.KroneckerDelta(j, i))
                idx[p] = j
        out.append(f.base[tuple(idx)])
    return limits, out


def narrow(e: sp.Expr, at: Scope) -> sp.Expr:
    """Swap over a data-plate j when c carries indices F the rest does not: the pass over the data
    then fills a smaller array (Σ_n r[n,k] x[n,e] over (k, e) instead of Σ_n r[n,k] Σ_e Λ[k,d,e]
    x[n,e] over (k, d), D times less work) and c is applied once afterwards.  Sound: a swap of two finite
    sums.  Only where there is a data plate."""
    if not at.big:
        return e
    return _swap(e, lambda s, a, gj, c, i: sp.sympify(s.limits[0][2]) + 1 in at.big
                 and bool((_indices(c) - {i}) - _indices(a * gj)))


def _indices(e: sp.Expr) -> set:
    return {s for s in e.free_symbols if isinstance(s, sp.Idx)}


def scaled_into_sums(e: sp.Expr, at: Scope | None = None) -> sp.Expr:
    """c·Σ_i f(i) -> Σ_i c·f(i) where |c| < TINY.  The sum alone may pass the largest float when the product
    does not: `variance = 1e308` gives −½·10⁻³⁰⁸·Σ_k ⟨x[k]²⟩ with every ⟨x[k]²⟩ near 10³⁰⁸, so Σ_k overflows
    to ∞ while every −½·10⁻³⁰⁸·⟨x[k]²⟩ is −½.  Only constants that small (they come of extreme ones) pay for
    the multiplication in the loop.  Sound: multiplication distributes over a finite sum."""
    if not any(0 < abs(n) < TINY for n in e.atoms(sp.Float, sp.Rational)):
        return e
    return _scaled(e)


def _scaled(e: sp.Expr) -> sp.Expr:
    if not e.args or isinstance(e, (sp.Indexed, sp.Idx, sp.IndexedBase)):
        return e
    e = e.func(*(_scaled(a) for a in e.args))
    if not isinstance(e, sp.Mul) or not e.args[0].is_Number or not abs(e.args[0]) < TINY:
        return e
    c, rest = e.args[0], e.args[1:]
    s = next((a for a in rest if isinstance(a, sp.Sum)), None)
    if s is None:
        return e
    inner = _scaled(sp.Mul(c, s.function, evaluate=False)) if isinstance(s.function, sp.Sum) else c * s.function
    return sp.Mul(*(a for a in rest if a is not s)) * sp.Sum(inner, *s.limits)


def monomials(e: sp.Expr, fresh: Callable, cap: int = 64) -> list | None:
    """e as Σ_terms Σ_limits Π factors: [(limits, factors)], or None (too many terms, or a summation
    index bound twice, which flattening would confuse).  (Σ_i a_i)² becomes Σ_i Σ_i' a_i a_i'."""
    if isinstance(e, sp.Sum):
        inner = monomials(e.function, fresh, cap)
        if inner is None:
            return None
        return [(list(lims) + list(e.limits), fs) for lims, fs in inner]
    if isinstance(e, sp.Add):
        out = []
        for a in e.args:
            t = monomials(a, fresh, cap)
            if t is None or len(out) + len(t) > cap:
                return None
            out += t
        return out
    if isinstance(e, sp.Pow) and e.exp.is_Integer and 2 <= e.exp <= 4 and isinstance(e.base, (sp.Sum, sp.Add)):
        copies = [e.base] + [renamed(e.base, fresh) for _ in range(int(e.exp) - 1)]
        return monomials(sp.Mul(*copies, evaluate=False), fresh, cap)
    if isinstance(e, sp.Mul):
        out = [([], [])]
        for a in e.args:
            t = monomials(a, fresh, cap)
            if t is None or len(out) * len(t) > cap:
                return None
            out = [(l1 + l2, f1 + f2) for l1, f1 in out for l2, f2 in t]
        for lims, _ in out:
            bound = [lim[0] for lim in lims]
            if len(set(bound)) != len(bound):
                return None
        return out
    return [([], [e])]


def renamed(e: sp.Expr, fresh: Callable) -> sp.Expr:
    """e with every summation index replaced by a fresh one (a second copy of a sum in a product)."""
    sub = {}
    for node in sp.preorder_traversal(e):
        if isinstance(node, sp.Sum):
            for i, _, _ in node.limits:
                if i not in sub:
                    stem = str(i.label).rstrip("′")
                    size = i.upper + 1
                    sub[i] = fresh(stem, size.name if isinstance(size, sp.Symbol) else int(size))
    return e.xreplace(sub)


# ------------------------------------------------------------------- sum rules
def separate(s: PlateSum, at: Scope | None = None) -> tuple[PlateSum, ...]:
    """The sums whose product is ``s``: its factors grouped by the summation indices they read, two groups joined
    when a factor (or a limit's bound) reads indices of both.  The group of the plate comes first, the others in
    the order of their first limit; a factor that reads no index goes with the plate's, and so does a limit no
    factor reads (Σ_b 1 stays where it was).  One group: (s,).  Sound: a sum of a product of factors on disjoint
    indices is the product of their sums (finite sums)."""
    if s.outer or s.plate is None:
        return (s,)
    group = {lim[0]: lim[0] for lim in s.limits}

    def find(i):
        while group[i] != i:
            i = group[i]
        return i

    def join(indices) -> None:
        roots = sorted({find(i) for i in indices}, key=lambda r: [lim[0] for lim in s.limits].index(r))
        for r in roots[1:]:
            group[r] = roots[0]
    for f in s.factors:
        join(s.bound(f))
    for i, lo, hi in s.limits:
        join({i} | s.bound(lo) | s.bound(hi))
    plate = find(s.plate)
    home = {f: find(next(iter(s.bound(f)))) if s.bound(f) else plate for f in s.factors}
    roots = [plate] + [r for r in dict.fromkeys(find(lim[0]) for lim in s.limits)
                       if r != plate and any(h == r for h in home.values())]
    if len(roots) == 1:
        return (s,)
    parts = []
    for r in roots:
        mine = [lim for lim in s.limits if find(lim[0]) == r or (r == plate and find(lim[0]) not in roots)]
        parts.append(dataclasses.replace(s, limits=tuple(mine), factors=tuple(f for f in s.factors if home[f] == r),
                                         plate=s.plate if r == plate else None))
    return tuple(parts)


def split(s: PlateSum, at: Scope | None = None) -> tuple[PlateSum]:
    """Σ_{n,b,d} f(n, b, d), n the plate, b over dims the model fixes and d over dims the data give, as Σ_b of
    the array Σ_{n,d} f(n, b, d) over b (``outer``): that statistic's partial sums are independent adds over b,
    not a chain of them per point, and often one the module has already (Σ_{n,k} r[n,k] is Σ_k of Σ_n r[n,k]).
    Only while the plate stays inside, when b spans at most SPLIT_MAX values (an array over a vocabulary or D²
    would crowd out the chunks, codegen.statistics.PARTIALS), and when no bound of either side reads an index
    of the other.  Sound: a reordering of finite sums."""
    if s.outer or s.plate is None:
        return (s,)
    fixed = tuple(lim for lim in s.limits if s.size(lim[0]) is not None)
    inner = tuple(lim for lim in s.limits if lim not in fixed)
    if not fixed or math.prod(s.size(lim[0]) for lim in fixed) > SPLIT_MAX:
        return (s,)
    out, ins = {lim[0] for lim in fixed}, {lim[0] for lim in inner}
    if any(s.bound(x) & ins for _, lo, hi in fixed for x in (lo, hi)) or \
            any(s.bound(x) & out for _, lo, hi in inner for x in (lo, hi)):
        return (s,)
    return (dataclasses.replace(s, limits=inner, outer=fixed),)


# ------------------------------------------------------- a sum as the sum rules see it
def scatter_delta(e: sp.Sum, free: set | None = None):
    """A delta [o = g(t)] in e's summand, o an index free in e (``free``: e's free indices, where known) and g
    reading its summation indices: (delta, o, g), the scatter the writer materialises e by; else None."""
    deltas = [f for f in sp.Mul.make_args(e.function) if isinstance(f, sp.KroneckerDelta)]
    if not deltas:
        return None
    free = {s for s in e.free_symbols if isinstance(s, sp.Idx)} if free is None else free
    bound = {i for i, _, _ in e.limits}
    for f in deltas:
        a, b = f.args
        for o, g in ((a, b), (b, a)):
            if o in free and isinstance(o, sp.Idx) and g.free_symbols & bound and o not in g.free_symbols:
                return f, o, g
    return None


def plate_sum(e: sp.Sum, at: Scope) -> PlateSum | None:
    """e as an ir.PlateSum when exactly one of its limits runs over the data plate (``at.big``), each index with
    its extent where the model fixes it (``at.fixed``); else None."""
    plate = [i for i, _, hi in e.limits if sp.sympify(hi) + 1 in at.big]
    if len(plate) != 1:
        return None
    sizes = tuple((i, at.fixed(sp.sympify(hi) - sp.sympify(lo) + 1)) for i, lo, hi in e.limits)
    return PlateSum(tuple(e.limits), sp.Mul.make_args(e.function), plate[0], sizes)


def built(p: PlateSum) -> sp.Expr:
    """The SymPy value of a part, without its ``outer`` limits (the writer's loops around it)."""
    function = sp.Mul(*p.factors)
    return sp.Sum(function, *p.limits) if p.limits else function


def shaped(e: sp.Sum, at: Scope, log: dict) -> tuple[PlateSum, ...] | None:
    """The sums whose product e is under the sum rules of REWRITES (recorded in ``log``), or None where e is no
    single sum over the data plate or they leave it whole."""
    whole = plate_sum(e, at)
    if whole is None:
        return None
    parts = rewrite(whole, Scope(), log)
    return None if parts == (whole,) else parts


# ------------------------------------------------------------ the list and its driver
REWRITES: tuple[Rule, ...] = (
    Rule(around_shifts, "expr"),
    Rule(through_offsets, "expr"),
    Rule(through_deltas, "expr"),
    Rule(interchange, "expr"),
    Rule(statistics, "expr"),
    Rule(narrow, "expr"),
    Rule(scaled_into_sums, "expr"),
    Rule(separate, "sum"),
    Rule(split, "sum"),
)


def rewrite(x, at: Scope, log: dict):
    """The rules of REWRITES that take ``x`` (a SymPy expression or an ir.PlateSum), in order: the expression they
    leave (for a PlateSum, the sums whose product it is).  Each stage, (rule's name, result), is recorded in
    ``log``: under x for a sum (a sum's shape reads nothing of where it is, so a sum met again is not redone),
    under (x, result) for an expression (the same expression may be rewritten otherwise elsewhere)."""
    if isinstance(x, PlateSum):
        if x not in log:
            parts, stages = (x,), []
            for r in (r for r in REWRITES if r.on == "sum"):
                parts = tuple(q for p in parts for q in r.fn(p, at))
                stages.append((r.name, parts))
            log[x] = tuple(stages)
        return log[x][-1][1]
    e, stages = x, []
    for r in (r for r in REWRITES if r.on == "expr"):
        e = r.fn(e, at)
        stages.append((r.name, e))
    log.setdefault((x, e), tuple(stages))
    return e
