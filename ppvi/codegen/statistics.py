"""The map/reduce split: sums over the data plate that only the local step changes.

A sum over the data plate whose summand reads nothing but data, constants and
local variables (the q of z[n], h[n, i], MAP codes) is an *expected sufficient
statistic* of the local step: Σ_n r[n, k], Σ_n r[n, k] x[n, d] x[n, e],
Σ_t [v = word[t]] r[t, k] (19.56 is linear in them).  Every kernel that needs
one (a global update, a param's M-step, the ELBO) reads it from a ``t_``
array instead of passing over the data itself, and one generated kernel,
``statistics``, fills all of them in a single pass:

    map     for each of C fixed chunks of the data plate (prange): the chunk's
            partial sums, into row c of a partials array;
    reduce  Σ_c partials[c] in the order c = 0, 1, …, C − 1.

C depends only on the sizes (never on the thread count), so results are the
same for any number of threads.  The runtime (ppvi.infer.program) runs the
pass whenever a local variable has changed since the last one and a kernel
is about to read a statistic.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable

import sympy as sp

from ppvi.codegen.emit import (CHUNK, Block, Names, Writer, accumulate, add, assign, axis_order, ex, let, name_ref,
                               structure)
from ppvi.codegen.ir import Assign, Call, Expr, Loop, Note, Range, Ref, part_range
from ppvi.derive.qfamily import ParamBase
from ppvi.derive.symbols import Gate, MomentBase, MomentSymbol

CHUNKS = 64                 # at most; fixed, so results never depend on the number of threads
PARTIALS = 1024 ** 2        # floats of partial sums kept at once (8 MB): bounds C for big statistics,
MIN_CHUNKS = 8              # down to this many (scattered adds into partials that outgrow the caches
                            # cost more than the threads save: LDA's topic counts, 2.5x slower at C = 20)


@dataclass
class Statistic:
    name: str
    expr: sp.Sum            # canonical: free indices a0, a1, … in array order; data-plate index _n
    axes: tuple             # the canonical free indices, in array order
    scatter: tuple | None   # (delta, o, g): the sum fills row g(t) of axis o
    mirror: tuple | None = None   # (i, j): symmetric in axes i < j; only j ≥ i is summed, then copied


@dataclass
class Statistics:
    """The registry of statistics, shared by all kernels of one module."""

    names: Names
    dims: dict
    big: frozenset                      # the data plate's size symbol
    local: frozenset                    # names of the local variables (latent or MAP)
    inputs: frozenset                   # names of data and constants
    fresh: Callable                     # (stem, dim) -> a new summation index (derive.symbols.Symbols.fresh)
    ranges: dict                        # data of support index(M) -> M
    found: dict = field(default_factory=dict)     # canonical expr -> Statistic
    reads: list = field(default_factory=list)     # (statistic, the index at each axis), every ref in order
    sums: dict = field(default_factory=dict)      # ir.PlateSum met -> its parts after each sum rule (--dump sums)

    def accepts(self, e: sp.Expr) -> bool:
        """The summand reads only data, constants, dims and local variables."""
        ok = self.local | self.inputs
        labels = set()
        for node in sp.preorder_traversal(e):
            if isinstance(node, Gate):
                return False
            base = node.base if isinstance(node, sp.Indexed) else node
            if isinstance(base, (MomentBase, MomentSymbol, ParamBase)):
                if base.var not in self.local:
                    return False
            elif isinstance(base, sp.IndexedBase) and str(base.label) not in ok:
                return False
            if isinstance(base, sp.IndexedBase):
                labels.add(base.label)
        scalars = (s for s in e.free_symbols if type(s) is sp.Symbol and s not in labels)
        return all(s in self.dims or s.name in ok for s in scalars)

    def ref(self, e: sp.Sum, free: set, scatter, depth: dict | None = None) -> str | None:
        """``t_i[…]`` for the statistic e (registered on first sight), or None when e is not one; ``depth``:
        the nesting level of the loop binding each free index (see emit.axis_order)."""
        big = [lim for lim in e.limits if sp.sympify(lim[2]) + 1 in self.big]
        if len(big) != 1 or not self.accepts(e):
            return None
        # The same statistic may come with its axes in another order (Σ_t r[t,k] [v = word[t]] over (k, v)
        # in one kernel, over (v, k) in another): one array serves both.
        first = axis_order(e, free, scatter[1] if scatter is not None else None, self.names.rank, depth)
        for axes in [first] + [list(p) for p in itertools.permutations(first) if list(p) != first]:
            canon, expr = self._canonical(e, axes, big[0][0])
            stat = self.found.get(expr)
            if stat is not None:
                break
        else:
            axes = first
            canon, expr = self._canonical(e, axes, big[0][0])
            sc = None
            if scatter is not None:
                delta, o, g = scatter
                sc = (delta.xreplace(canon), canon[o], g.xreplace(canon))
            ax = tuple(canon[i] for i in axes)
            mirror = None
            if sc is None:
                for i, j in itertools.combinations(range(len(ax)), 2):
                    a, b = ax[i], ax[j]
                    if (a.lower, a.upper) == (b.lower, b.upper) and expr.xreplace({a: b, b: a}) == expr:
                        mirror = (i, j)
                        break
            stat = Statistic(self.names.statistic(len(self.found)), expr, ax, sc, mirror)
            self.found[expr] = stat
        self.reads.append((stat, tuple(axes)))
        at = [self.names.index(i) for i in axes]
        return f"{self.names.touch(stat.name)}[{', '.join(at) if at else '0'}]"

    @staticmethod
    def _canonical(e: sp.Sum, axes: list, n: sp.Idx) -> tuple[dict, sp.Expr]:
        """Free indices a0, a1, … in array order, the data-plate index _n, the others b<depth>_<position> by
        where their sums nest (never by their names)."""
        canon = {i: sp.Idx(f"a{k}", (i.lower, i.upper)) for k, i in enumerate(axes)}
        # the whole plate, whatever the sum's own range (a chain's Σ_{t≥1} carries it in its limits): one
        # plate index for every statistic, and Σ_{t≥1} ξ[t] the same statistic from any kernel
        hi = next(h for i, _, h in e.limits if i == n)
        canon[n] = sp.Idx("_n", (0, hi))
        return canon, _bound_by_depth(e.xreplace(canon), 0, frozenset(canon.values()))

    def shapes(self) -> dict[str, list]:
        """Array name -> shape in dim names and ints (as in the module's PLAN)."""
        out = {}
        for s in self.found.values():
            shape = []
            for i in s.axes:
                size = i.upper + 1
                shape.append(size.name if isinstance(size, sp.Symbol) else int(size))
            out[s.name] = shape or [1]
        return out

    def plate_index(self) -> sp.Idx:
        """The canonical data-plate index _n of the statistics."""
        lims = next(iter(self.found.values())).expr.limits
        return next(i for i, _, hi in lims if sp.sympify(hi) + 1 in self.big)

    def chunks(self, w: Writer) -> Assign:
        """C, the number of chunks: at most CHUNKS, fewer (down to MIN_CHUNKS) when the partial sums would be
        big; a fixed number, whatever the threads."""
        with self.names.watch() as seen:
            floats = " + ".join(_size(w, s) for s in self.found.values())
            size = w.int_value(self.plate_index().upper + 1)
        return let("_C", f"max(1, min({CHUNKS}, {size}, max({MIN_CHUNKS}, {PARTIALS} // ({floats}))))", *seen)

    def map(self, fn: Block, levels: list[Block], n: sp.Idx, only: list[Statistic] | None = None,
            direct: bool = False, blocked=None, onehot: sp.IndexedBase | None = None) -> None:
        """Each statistic's partial sum over element n, into row ``_ch`` of its partials (allocated in fn);
        ``levels[-1]`` is the body of the loop over n, inside the loop over chunks.  ``direct``: added
        into the ``t_`` array itself (one thread owns the rows it fills: see ModuleWriter.block_kernel).
        ``blocked`` (codegen.module.Blocked): a statistic Σ_n u(n, …) r[n, k] of the latent whose moments
        are ``onehot`` is summed a block at a time, as Uᵀ R (_by_blocks)."""
        w = Writer(self.names, self.dims)
        canon = self.plate_index()
        forms: list = []
        for s in (self.found.values() if only is None else only):
            with self.names.watch() as seen:
                shape = [w.int_value(i.upper + 1) for i in s.axes] or ["1"]
            if not direct:
                fn.pre.append(let(f"_p{s.name}", f"np.zeros((_C, {', '.join(shape)}))", "_C", *seen))
            form = self._block_form(s, n, onehot) if blocked is not None else None
            if form is not None:
                forms.append((s, *form))
                continue
            lv = levels
            lv[-1].post.append(Note(f"statistic {s.name}: this point's share"))
            rest = [lim for lim in s.expr.limits if lim[0] != canon]
            guard = self._within(s, n, w)
            if guard is not None:          # a sum over part of the plate (a chain's t ≥ 1): the other points add nothing
                lv[-1].post.append(guard)
                lv = lv[:-1] + [guard]
            body_expr = s.expr.function.xreplace({canon: n})
            o = g = None
            if s.scatter is not None:
                delta, o, g = (x.xreplace({canon: n}) for x in s.scatter)
                body_expr = sp.Mul(*(f for f in sp.Mul.make_args(body_expr) if f != delta))
            others = [i for i in s.axes if i != o]
            loops = w._loops(list(rest) + self._span(s, others))
            inner = lv + loops
            # Each factor multiplied in at the outermost loop where its indices are bound (x[n,d] x[n,e]
            # once per (d, e), not once per k): the innermost loop is then one multiply-add per entry.
            factors = w.ordered(sp.Mul.make_args(body_expr), inner)
            deepest = [max([j for j, b in enumerate(loops) if b.index in f.free_symbols], default=-1)
                       for f in factors]
            product = None
            for j in range(-1, len(loops) - 1):
                here = [w.expr(f, inner, 0, top=False) for f, dj in zip(factors, deepest) if dj == j]
                if here:
                    tmp = w.tmp("u")
                    line = assign(Ref(tmp), product_of(([product] if product else []) + here))
                    (lv[-1].post if j < 0 else loops[j].pre).append(line)
                    product = Expr(tmp, frozenset({tmp}))
            last = [w.expr(f, inner, 0, top=False) for f, dj in zip(factors, deepest) if dj == len(loops) - 1]
            body = product_of(([product] if product else []) + last)
            with self.names.watch() as seen:
                where = [w.index_value(g, inner, 0) if i == o else self.names.index(i) for i in s.axes] or ["0"]
            index = tuple(Expr(x, frozenset(seen)) for x in where)
            dest = Ref(self.names.touch(s.name), index) if direct else \
                Ref(f"_p{s.name}", (Expr("_ch", frozenset({"_ch"})),) + index)
            (loops[-1] if loops else lv[-1]).post.append(accumulate(dest, body))
            if loops:
                lv[-1].post.append(loops[0])
        if forms:
            self._by_blocks(forms, fn, levels, blocked, onehot, w)

    def _within(self, s: Statistic, n: sp.Idx, w: Writer) -> Block | None:
        """A conditional on the point n when s sums over part of the plate only (``Σ_{t=1}^{T-1}``), else None.
        It binds n for the writer as the loop it stands in does: a sum of the statistic that reads n (a ragged
        chain's Σ_d F[d, e] x[n-1, e] times its restart indicator) is placed inside it, not before the loop."""
        canon = self.plate_index()
        _, lo, hi = next(lim for lim in s.expr.limits if lim[0] == canon)
        with self.names.watch() as seen:
            at = self.names.index(n)
            tests = ([f"{at} >= {w.int_value(lo)}"] if sp.sympify(lo) != 0 else []) + \
                ([f"{at} <= {w.int_value(hi)}"] if sp.sympify(hi) != canon.upper else [])
        return Block(index=n, test=Expr(" and ".join(tests), frozenset(seen))) if tests else None

    def _block_form(self, s: Statistic, n: sp.Idx, onehot) -> tuple | None:
        """(u, span, k) when s = Σ_n u(n, i…) r[n, k]: k one of its axes, r the moments ``onehot`` of the
        blocked latent, u reading neither, i… (the other axes) over ``span``; else None."""
        canon = self.plate_index()
        if onehot is None or s.scatter is not None or not s.axes or len(s.expr.limits) != 1 or \
                sp.sympify(s.expr.limits[0][1]) != 0 or sp.sympify(s.expr.limits[0][2]) != canon.upper:
            return None
        factors = sp.Mul.make_args(s.expr.function)
        r = [f for f in factors if isinstance(f, sp.Indexed) and f.base == onehot]
        if len(r) != 1 or len(r[0].indices) != 2 or r[0].indices[0] != canon or r[0].indices[1] not in s.axes:
            return None
        k = r[0].indices[1]
        if any(f.has(k) for f in factors if f is not r[0]) or (s.mirror and s.axes.index(k) in s.mirror):
            return None
        u = sp.Mul(*(f for f in factors if f is not r[0])).xreplace({canon: n})
        return u, self._span(s, [i for i in s.axes if i != k]), k

    def _by_blocks(self, forms: list, fn: Block, levels: list[Block], bk, onehot, w: Writer) -> None:
        """The statistics Σ_n u(n, i…) r[n, k] (``forms``: (statistic, u, span, k)) for a block of points at
        once: U[b, f] = u(point b, feature f), the features f all (i…) of all of them side by side, and
        Σ_b U[b, f] r[b, k] = (Uᵀ R)[f, k], one matrix product (BLAS) instead of a multiply-add per point and
        entry.  When the features are those of η's Φ, in the same order (a conjugate mixture: η and the
        statistics both read x's sufficient statistics), U is Φ."""
        size = w.int_value(forms[0][3].upper + 1)
        forms = sorted(forms, key=lambda f: feature_order(f[1], f[2], self.names.rank))
        shared = [feature_key(u, span) for _, u, span, _ in forms] == bk.phi_keys
        u_, width = ("_Phi", "_F") if shared else ("_U", "_FU")
        rows = self.names.moment(onehot.var, "onehot")
        bk.alloc.append(let("_T", f"np.empty(({width}, {size}))", width, size))
        bk.after += [Call("np.dot", (Expr(f"{u_}[:_nb].T", frozenset({u_, "_nb"})),
                                     Expr(f"{rows}[_b0:_b0 + _nb]", frozenset({rows, "_b0", "_nb"})), Ref("_T"))),
                     let("_fu", "0")]
        if not shared:
            fn.pre.append(let("_FU", "0"))
            bk.alloc.append(let("_U", "np.zeros((_B, _FU))", "_B", "_FU"))
            bk.widths.append("_FU")
            bk.features.post.append(let("_fu", "0"))
        for s, u, span, k in forms:
            if not shared:
                fn.pre.append(count_loops(w, span, "_FU"))
                feats = [bk.features] + w._loops(span)
                feats[-1].post += [assign(name_ref("_U", "_b", "_fu"), w.expr(u, levels[:-1] + feats, 0, top=False)),
                                   add("_fu", "1", "_fu")]
                if len(feats) > 1:
                    bk.features.post.append(feats[1])
            over = w._loops(span)
            kl = w._loops([(k, 0, k.upper)])
            where = [self.names.index(i) for i in s.axes]
            kl[-1].post.append(accumulate(name_ref(f"_p{s.name}", "_ch", *where),
                                          ex(f"_T[_fu, {self.names.index(k)}]", "_T", "_fu", self.names.index(k))))
            (over[-1].post if over else bk.after).extend([kl[0], add("_fu", "1", "_fu")])
            if over:
                bk.after.append(over[0])

    @staticmethod
    def _span(s: Statistic, axes) -> list:
        """Loop limits over ``axes``; for a symmetric statistic the second of the pair from the first on."""
        pair = (s.axes[s.mirror[0]], s.axes[s.mirror[1]]) if s.mirror else (None, None)
        return [(i, pair[0] if i == pair[1] else 0, i.upper) for i in axes]

    def reduce(self, fn: Block) -> None:
        """Σ_c partials[c] into each ``t_`` array, in the fixed order c = 0, 1, …"""
        w = Writer(self.names, self.dims)
        for s in self.found.values():
            loops = w._loops(self._span(s, s.axes))
            at = [self.names.index(i) for i in s.axes] or ["0"]
            total = Loop(Range("_c", "_C", reads=frozenset({"_C"})),
                         (add("_r", name_ref(f"_p{s.name}", "_c", *at).text, name_ref(f"_p{s.name}", "_c", *at)),))
            body = [let("_r", "0.0"), total, assign(name_ref(self.names.touch(s.name), *at), ex("_r", "_r"))]
            if s.mirror is not None:
                i, j = s.mirror
                swapped = list(s.axes)
                swapped[i], swapped[j] = swapped[j], swapped[i]
                body.append(assign(name_ref(s.name, *(self.names.index(a) for a in swapped)), ex("_r", "_r")))
            if loops:
                loops[-1].post += body
                fn.post.append(loops[0])
            else:
                fn.post += body

    def kernel(self) -> Block:
        """The body of ``statistics``: the map over chunks of the data plate (in parallel; serial once
        passes.fuse has made a local step that fills them every sweep), then the reduce."""
        w = Writer(self.names, self.dims)
        fn = Block()
        n = self.plate_index()
        size = w.int_value(n.upper + 1)
        fn.pre.append(self.chunks(w))
        chunk = Block(Range("_ch", "_C", parallel=True, reads=frozenset({"_C"})), CHUNK)
        loop = Block(part_range(self.names.index(n), size, "_C"), n)
        chunk.post.append(loop)
        self.map(fn, [fn, loop], n)
        fn.post.append(chunk)
        self.reduce(fn)
        return fn


def _bound_by_depth(e: sp.Expr, depth: int, keep: frozenset) -> sp.Expr:
    """Each summation index (other than ``keep``) renamed b<depth>_<position>: equal sums up to the names of
    their bound indices become equal expressions."""
    if isinstance(e, sp.Sum):
        sub, limits = {}, []
        for pos, (i, lo, hi) in enumerate(e.limits):
            lo, hi = sp.sympify(lo).xreplace(sub), sp.sympify(hi).xreplace(sub)
            sub[i] = i if i in keep else sp.Idx(f"b{depth}_{pos}", (lo, hi))
            limits.append((sub[i], lo, hi))
        return sp.Sum(_bound_by_depth(e.function.xreplace(sub), depth + 1, keep), *limits)
    if not e.args or isinstance(e, (sp.Indexed, sp.Idx, sp.IndexedBase)):
        return e
    return e.func(*(_bound_by_depth(a, depth, keep) for a in e.args))


def feature_order(v: sp.Expr, span: list, rank: dict) -> tuple:
    """Where a feature v over the loops ``span`` goes among η's features and the blocked statistics': by
    :func:`ppvi.codegen.emit.structure` with the loops by position, so both lists come out in one order, and
    neither in an order of names."""
    return structure(v, {i: ("c", j) for j, (i, _, _) in enumerate(span)}, rank)


def feature_key(v: sp.Expr, span: list) -> tuple:
    """A feature v over the loops ``span`` up to the names of their indices (x[n, d] x[n, e] for e ≥ d is
    x[n, a0] x[n, a1] for a1 ≥ a0): matches the columns of two feature matrices."""
    rename = {i: sp.Idx(f"_c{j}", (0, hi)) for j, (i, _, hi) in enumerate(span)}
    return sp.sympify(v).xreplace(rename), tuple((sp.sympify(lo).xreplace(rename), hi) for _, lo, hi in span)


def count_loops(w: Writer, span: list, counter: str) -> Block | Assign:
    """Loops over ``span`` that add 1 to ``counter`` (a triangular span's size, without a formula)."""
    loops = w._loops(span)
    if not loops:
        return add(counter, "1", counter)
    loops[-1].post.append(add(counter, "1", counter))
    return loops[0]


def product_of(factors: list[Expr]) -> Expr:
    """f₁ * f₂ * …, reading what each reads (1.0 for none)."""
    return Expr(" * ".join(f.text for f in factors) or "1.0", frozenset().union(*(f.reads for f in factors)))


def _size(w: Writer, s: Statistic) -> str:
    return " * ".join(w.int_value(i.upper + 1) for i in s.axes) or "1"
