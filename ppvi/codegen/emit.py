"""Derived SymPy expressions -> Python source with Numba kernels.

Plates become loops, never unrolled.  Every ``Sum`` is computed at the
outermost loop level where all its free indices are bound (loop-invariant
hoisting), and a sum carrying a Kronecker delta between an output index and a
data-valued index (``Σ_t [d = doc[t]] …``) is materialised once by a scatter
loop over t instead of being re-summed for every d.  Sums that read the moments
of the variable being updated stay inside its element loop, so sequential
updates see the newest values (19.44 is a Gauss–Seidel sweep).  Those places,
and the sum rules' shapes of the sums over the data plate, are decided by the
sum stage (:func:`place_sums`) for a whole expression before any of its text is
written; the writer prints what it is given (``Writer.sum``).

Names are mangled by a prefix-free scheme (:class:`Names`): nothing a model
names can collide with, or inject into, the generated Python, and nothing the
generator decides depends on how a name is spelt (:func:`structure`).
"""

from __future__ import annotations

import itertools
import math
from contextlib import contextmanager
from dataclasses import dataclass, field, fields

import sympy as sp

from ppvi.codegen.ir import Assign, Expr, If, Loop, PlateSum, Range, Ref, SumPlace
from ppvi.codegen.rewrite import Scope, built, rewrite, scatter_delta, shaped
from ppvi.codegen.plan import PLAN_TYPES, ArrayNames
from ppvi.derive.lower import before, inverse, sigmoid
from ppvi.derive.qfamily import ParamBase
from ppvi.derive.symbols import Gate, MomentBase, MomentSymbol, centred, lgamma, lmvgamma, logdet, shift, softplus


class CodegenError(Exception):
    pass


def literal(value) -> str:
    """The one way a value enters generated source: a Python literal that evaluates to it and does nothing
    else.  Strings are escaped to ASCII (quotes, newlines, control and line-separator characters
    included); numbers must be finite; containers nest; the plan's dataclasses (codegen.plan) are a call of
    their class, a fixed name of the module's, with their fields as keywords.  Anything else is refused
    (docs/SECURITY.md)."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return repr(int(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CodegenError(f"a non-finite constant {value!r} reached code generation")
        return repr(value)
    if isinstance(value, str):
        return ascii(value)
    if isinstance(value, (list, tuple)):
        inner = ", ".join(literal(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    if type(value) in PLAN_TYPES:
        return f"{type(value).__name__}(" + ", ".join(
            f"{f.name}={literal(getattr(value, f.name))}" for f in fields(value)
            if not (f.metadata.get("omit_default") and getattr(value, f.name) == f.default)) + ")"
    raise CodegenError(f"no literal for {type(value).__name__}")


# -------------------------------------------------------------------- names
FIXED = ("statistics", "expected_log_joint", "expected_log_joint_fast", "expected_log_joint_large", "local_block",
         "PLAN") + \
    tuple(t.__name__ for t in PLAN_TYPES)


@dataclass
class Names:
    """Every name of the generated module that is made from a model's name, and the arrays behind them.

    The scheme is prefix-free: a generated name is a kind prefix, then the user's identifier (for a
    moment, parameter or η also ``__`` and a fixed word without underscores: ``m_X__x``, ``q_X__mean``,
    ``e_X__x2``), and no kind prefix is a prefix of another or of a fixed name.  So two different
    (kind, identifier) pairs never give one name, whatever the user wrote (``mu`` and ``mu_damped``:
    ``damped_mu`` and ``update_mu_damped``), and no generated name is a name of the module's own.

        v_<name>        data, params, constants          n_<dim>          sizes the data determine
        q_<var>__<p>    q's standard parameters          m_<var>__<stat>  moments ⟨T(x)⟩ that own an array
        h_<var>         entropies                        l_<var>          log Σ e^η of a Categorical
        e_<var>__<s>    natural parameters (damped)      o_<name>         a copy taken before an update
        g_<var>         a param's gradient               t_<int>          statistics of the local step
        c_<what>__<name>  derived at bind time (inv, logdet, order, start); c__damping the step α
        i<int>_<label>  loop indices (numbered; an identifier never starts with a digit)
        update_<var>, damped_<var>, local_step_<var>     kernels (a long one cut short with a hash: see kernel)
        statistics, expected_log_joint[_fast], local_block, PLAN and the plan's classes (Plan, KernelSpec,
        ...), np, math, njit, prange and the runtime's helpers: the module's own names; temporaries begin
        with ``_``, which no kind does.

    Every spelling is codegen.plan.ArrayNames', which the engine binds arrays by too; this class hands the
    names out while kernels are written, and records which kernel reads them.

    A moment that is another array under a second name (a Normal's ⟨x⟩ is its mean: ``aliases``) is
    resolved to the array that owns the memory, so no kernel receives one array under two names
    (Numba's parallel loops assume distinct arguments do not overlap).  Which arrays a kernel takes is
    what was handed out (or touched) while it was written (``reads``), never a pattern over the text.  ``rank``: a variable's or a
    dim's place in the model (declaration order), the only thing any ordering in code generation reads
    of a name (see :func:`structure`).
    """

    rank: dict = field(default_factory=dict)               # variable name or dim Symbol -> declaration position
    aliases: dict[str, str] = field(default_factory=dict)  # m_<var>__<stat> -> the array that owns it
    idx: dict[sp.Basic, str] = field(default_factory=dict)
    derived: dict[str, tuple[str, str]] = field(default_factory=dict)   # mangled -> (kind, const name)
    issued: set[str] = field(default_factory=set)
    reads: set[str] = field(default_factory=set)       # issued names referenced since begin(): a kernel's params
    watchers: list[set] = field(default_factory=list)  # open watch()es: every name written into text meanwhile
    rewrites: dict = field(default_factory=dict)       # codegen.rewrite's record: (expr, result) -> stages
    places: dict = field(default_factory=dict)         # the sum stage's, every writer's (--dump sums)
    _count: itertools.count = field(default_factory=itertools.count)
    # data far from zero (codegen.centre): the shifts every writer of the module reads its expressions around,
    # and derive's fresh summation indices (derive.symbols.Symbols.fresh) the expansion takes copies with
    centring: object = None
    fresh: object = None

    def _issue(self, name: str) -> str:
        self.issued.add(name)
        self.reads.add(name)
        return self.seen(name)

    def seen(self, name: str) -> str:
        """``name`` goes into the text being written: every open watch() records it."""
        for w in self.watchers:
            w.add(name)
        return name

    @contextmanager
    def watch(self):
        """The names written into text while it is open (what an expression reads: an Expr's ``reads``).  It
        may hold more (the names of a sum hoisted on the way, or of a temporary made for a target): a pass that
        reads it only ever assumes too much is read."""
        seen: set[str] = set()
        self.watchers.append(seen)
        try:
            yield seen
        finally:
            self.watchers.pop()

    def begin(self) -> None:
        """A kernel starts: from now on every name handed out or touched is one of its parameters."""
        self.reads = set()

    def touch(self, name: str) -> str:
        """``name``, handed out before, is referenced again (a statistic's array, a dim's size); literals pass."""
        if name in self.issued:
            self.reads.add(name)
            self.seen(name)
        return name

    # every spelling is ArrayNames' (codegen.plan), the one place the engine's names come from too
    def variable(self, name: str) -> str:
        return self._issue(ArrayNames.variable(name))

    moment_name = staticmethod(ArrayNames.moment)   # the moment's own name, before aliases are resolved

    def moment(self, var: str, stat: str) -> str:
        name = ArrayNames.moment(var, stat)
        return self._issue(self.aliases.get(name, name))

    def qparam(self, var: str, param: str) -> str:
        return self._issue(ArrayNames.qparam(var, param))

    def dim(self, name: str) -> str:
        return self._issue(ArrayNames.size(name))

    def entropy(self, var: str) -> str:
        return self._issue(ArrayNames.entropy(var))

    def log_normaliser(self, var: str) -> str:
        return self._issue(ArrayNames.log_normaliser(var))

    def natural(self, var: str, stat: str) -> str:
        return self._issue(ArrayNames.natural(var, stat))

    def snapshot(self, name: str) -> str:
        return self._issue(ArrayNames.snapshot(name))

    def gradient(self, var: str) -> str:
        return self._issue(ArrayNames.gradient(var))

    def statistic(self, number: int) -> str:
        return self._issue(ArrayNames.statistic(number))

    def constant(self, what: str, name: str) -> str:
        return self._issue(ArrayNames.constant(what, name))

    def damping(self) -> str:
        return self._issue(ArrayNames.damping())

    kernel = staticmethod(ArrayNames.kernel)

    def index(self, i: sp.Basic) -> str:
        if i not in self.idx:
            label = str(i.label if isinstance(i, sp.Idx) else i)
            stem = label.rstrip("′")
            self.idx[i] = f"i{next(self._count)}_{stem}"
        return self.seen(self.idx[i])

    def array_of(self, base: sp.Basic) -> tuple[str, bool]:
        """(mangled array name, is it a rank-0 quantity stored as shape (1,))."""
        if isinstance(base, MomentSymbol):
            return self.moment(base.var, base.stat), True
        if isinstance(base, MomentBase):
            return self.moment(base.var, base.stat), False
        if isinstance(base, ParamBase):
            return self.qparam(base.var, base.param), False
        if isinstance(base, Gate):
            raise CodegenError("a gate survived the expectation")
        if isinstance(base, sp.IndexedBase):
            return self.variable(str(base.label)), False
        if isinstance(base, sp.Symbol):
            return self.variable(base.name), True
        raise CodegenError(f"no array for {base!r}")


# --------------------------------------------------------------- structure
REPEAT = sp.Dummy("repeat")     # the index of a loop of repeated passes (Block.index): no model index equals it
CHUNK = sp.Dummy("chunk")       # the index of the loop over the data plate's fixed chunks (_ch): Loop.axis "chunk"


def structure(e: sp.Basic, env: dict, rank: dict, depth: int = 0) -> tuple:
    """A key of e that reads nothing of how names are spelt: variables and dims by their place in the model
    (``rank``), indices by what binds them (``env``: a loop of the kernel; an enclosing sum, by nesting depth
    and position; any other by its range), numbers by value, commutative arguments as a sorted multiset.
    Where every index is bound, equal keys mean the same computation up to renaming, so ordering by it (the
    terms of a sum as they are emitted, a statistic's axes, η's features) gives the same code, and the same
    rounding, whatever the names — where SymPy's own order of arguments follows the names."""
    if e in env:
        return env[e]
    if isinstance(e, sp.Idx):
        return ("i", structure(e.upper, env, rank, depth))
    if e.is_Number or isinstance(e, sp.NumberSymbol):
        return ("0", float(e))
    if isinstance(e, (MomentBase, MomentSymbol, ParamBase, Gate)):
        tag, what = {MomentBase: ("m", "stat"), MomentSymbol: ("m", "stat"), ParamBase: ("p", "param"),
                     Gate: ("g", "var")}[type(e)]
        place = rank.get(e.var)
        return (tag, place, getattr(e, what)) if place is not None else (tag + "?", e.var, getattr(e, what))
    if isinstance(e, sp.IndexedBase):
        place = rank.get(str(e.label))
        return ("v", place) if place is not None else ("v?", str(e.label))
    if isinstance(e, sp.Symbol):
        if e in rank:
            return ("d", rank[e])
        place = rank.get(e.name)
        return ("v", place) if place is not None else ("s?", e.name)
    if isinstance(e, sp.Indexed):
        return ("x", structure(e.base, env, rank, depth), tuple(structure(i, env, rank, depth) for i in e.indices))
    if isinstance(e, sp.Sum):
        inner, ranges = dict(env), []
        for pos, (i, lo, hi) in enumerate(e.limits):
            ranges.append((structure(lo, inner, rank, depth), structure(hi, inner, rank, depth)))
            inner[i] = ("b", depth, pos)
        return ("S", tuple(ranges), structure(e.function, inner, rank, depth + 1))
    args = tuple(structure(a, env, rank, depth) for a in e.args)
    if isinstance(e, (sp.Add, sp.Mul, sp.KroneckerDelta)):
        return ({sp.Add: "+", sp.Mul: "*"}.get(type(e), "δ"), tuple(sorted(args)))
    return ("f", type(e).__name__, args)


def ordered(args, env: dict, rank: dict) -> list:
    """``args`` by :func:`structure` (ties are the same computation: their order is immaterial)."""
    keyed = [(structure(a, env, rank), n) for n, a in enumerate(args)]
    return [args[n] for _, n in sorted(keyed)]


def axis_order(e: sp.Expr, free, first: sp.Basic | None, rank: dict, depth: dict | None = None) -> list:
    """The free indices of e in an order that reads nothing of their names: ``first`` (a scatter's axis)
    first, then each by the places it takes in e — which arrays it indexes, at which positions — and its
    range.  Indices that tie take the same places: the array is symmetric in them, and they go in the order
    of the loops that bind them (``depth``: index -> nesting level), so the reads too are the same code
    whatever the names."""
    places: dict = {i: [] for i in free}
    for node in sp.preorder_traversal(e):
        if isinstance(node, sp.Indexed):
            base = structure(node.base, {}, rank)
            for pos, i in enumerate(node.indices):
                if i in places:
                    places[i].append((base, pos))
    env = {i: ("i",) for i in free}
    key = {i: (i != first, sorted(places[i]), structure(i.upper, env, rank)) for i in free}
    depth = depth or {}
    return sorted(free, key=lambda i: (key[i], depth.get(i, -1), str(i)))


# ------------------------------------------------------------- the sum stage
def place_sums(e: sp.Expr, ctx: tuple, pinned: int, at: Scope, log: dict) -> dict:
    """The sum stage: every sum the writer meets while it writes e inside loops whose indices are ``ctx`` (None for
    a level without one), ``pinned`` the innermost of them that a sum reading the update's own moments stays
    in, decided before any of e's text is written: {(sum, its loops' indices, pinned): ir.SumPlace}.

    A sum over the data plate that reads neither the update's own moments nor scatters by a delta is shaped by
    the sum rules (codegen.rewrite.shaped, recorded in ``log`` for ``--dump sums``).  Any other sum is computed
    at the outermost loop where its free indices are bound: in one pass before the element loops when it runs
    over the plate or scatters (a statistic where the module has them), as a small array when loops it does not
    depend on enclose it, else by loops there.  The stage goes down as the writer will (a sum's body inside the
    loops that compute it, each part of a shaped sum as the writer builds it), so every sum the writer meets
    is placed; some it does not meet are too (the body of a sum the statistics then hold)."""
    out: dict = {}
    _visit(e, ctx, pinned, at, log, out)
    return {key: place for key, place in out.items() if place is not None}


def _visit(x, ctx: tuple, pinned: int, at: Scope, log: dict, out: dict) -> None:
    if isinstance(x, sp.Sum):
        _place(x, ctx, pinned, at, log, out)
    elif isinstance(x, sp.Basic) and x.args and (x, ctx, pinned) not in out:
        out[x, ctx, pinned] = None          # (a node seen here before: its sums are placed; dropped at the end)
        for a in x.args:
            _visit(a, ctx, pinned, at, log, out)


def _place(s: sp.Sum, ctx: tuple, pinned: int, at: Scope, log: dict, out: dict) -> None:
    key = (s, ctx, pinned)
    if key in out:
        return
    free = {i for i in s.free_symbols if isinstance(i, sp.Idx)}
    own = bool(at.reads and at.reads(s))          # reads the update's own moments: stays inside its element loop
    target = max([pinned if own else 0] + [n for n, i in enumerate(ctx) if i is not None and i in free])
    scatter = scatter_delta(s, free)
    parts = shaped(s, at, log) if at.stats is not None and not own and scatter is None else None
    if parts is not None:
        out[key] = SumPlace("shaped", target, parts)
        for p in parts:     # (a part with outer limits: its inner sum inside the loops over them)
            outer = tuple(i for i, _, _ in p.outer)
            inside = (ctx[:target + 1] + outer, min(pinned, target)) if outer else (ctx, pinned)
            _visit(built(p), *inside, at, log, out)
        return
    over = any(sp.sympify(hi) + 1 in at.big for _, _, hi in s.limits)
    skipped = [i for i in ctx[1:target] if i is not None and i not in free]
    if not own and (scatter is not None or over) and (scatter is not None or target > 0 or not free):
        # a statistic of the local step, or computed once, before any element loop, in one pass
        out[key] = SumPlace("statistic" if at.stats is not None and over else "pass", 0, scatter=scatter)
    elif not own and skipped and free and (REPEAT in skipped or not any(i.upper + 1 in at.big for i in free)):
        # loops it does not depend on enclose it (Σ_d' μ[k, d'] Λ[k, d', d] inside the loop over n): one small
        # array over its free indices, filled before them (inside repeated passes: always worth it)
        out[key] = SumPlace("array", 0)
    else:
        out[key] = SumPlace("loop", target)
        _visit(s.function, ctx[:target + 1] + tuple(i for i, _, _ in s.limits), min(pinned, target), at, log, out)
        return
    # the pass that fills it (Writer._materialise): the plate's limits first, then the array's other axes
    o = scatter[1] if scatter is not None else None
    axes = axis_order(s, free, o, at.rank)
    limits = sorted(s.limits, key=lambda lim: sp.sympify(lim[2]) + 1 not in at.big)
    body = s.function if scatter is None else sp.Mul(*(f for f in sp.Mul.make_args(s.function) if f is not scatter[0]))
    inner = ctx[:1] + tuple(i for i, _, _ in limits) + tuple(i for i in axes if i != o)
    _visit(body, inner, 0, at, log, out)


# ------------------------------------------------------------------ offsets
def _offset(i: sp.Expr) -> tuple[sp.Idx, int] | None:
    """``t + c`` (an index and a whole number c ≠ 0) -> (t, c); else None."""
    if isinstance(i, sp.Add) and len(i.args) == 2:
        c, j = sorted(i.args, key=lambda a: not a.is_Integer)
        if c.is_Integer and isinstance(j, sp.Idx):
            return j, int(c)
    return None



# --------------------------------------------------------------- statements
def ex(text: str, *parts: str | Expr | Ref) -> Expr:
    """The expression ``text``, built of ``parts``: the names it reads (a str: one name; an Expr: what it reads;
    a Ref: its array and what its index reads)."""
    return Expr(text, frozenset().union(*(
        {p} if isinstance(p, str) else p.reads | {p.name} if isinstance(p, Ref) else p.reads for p in parts)))


def read(ref: Ref) -> Expr:
    """An element (or a whole array) read as a value: its text, reading its array and what its index reads."""
    return Expr(ref.text, ref.reads | {ref.name})


def name_ref(name: str, *index: str) -> Ref:
    """``name[index…]`` where each index is one name (a loop's index, a temporary) or a literal."""
    return Ref(name, tuple(Expr(i, frozenset({i})) for i in index))


def assign(target: Ref, value: Expr) -> Assign:
    return Assign(target, value)


def accumulate(target: Ref, value: Expr) -> Assign:
    return Assign(target, value, "+=")


def let(name: str, text: str, *parts: str | Expr | Ref) -> Assign:
    """``name = text``: a temporary (or a whole array) set to an expression built of ``parts`` (see :func:`ex`)."""
    return Assign(Ref(name), ex(text, *parts))


def add(name: str, text: str, *parts: str | Expr | Ref) -> Assign:
    """``name += text`` (see :func:`let`)."""
    return Assign(Ref(name), ex(text, *parts), "+=")


# ------------------------------------------------------------------- blocks
@dataclass
class Block:
    """The writer's scratch for a loop level (``head``), a conditional (``test``, with an ``orelse`` Block for
    an elif) or the function body (neither): IR nodes and nested Blocks, ``pre`` (what gets hoisted to it)
    before ``post``.  :meth:`lower` freezes it into the IR (codegen.ir); a line of text is refused."""

    head: Range | None = None
    index: sp.Basic | None = None
    pre: list = field(default_factory=list)       # IR nodes or nested Blocks, in order
    post: list = field(default_factory=list)
    test: Expr | None = None
    orelse: Block | None = None                   # a conditional's elif (a Block with a test)

    def lower(self) -> tuple:
        """The body as IR nodes; a Block with neither head nor test is a group: its nodes in its place."""
        out = []
        for item in self.pre + self.post:
            if isinstance(item, Block):
                out += item.lower() if item.head is None and item.test is None else [item.node()]
            else:
                if isinstance(item, str):
                    raise CodegenError(f"a line of text reached the kernel IR: {item!r}")
                out.append(item)
        return tuple(out)

    def node(self) -> Loop | If:
        if self.test is not None:
            return If(self.test, self.lower(), (self.orelse.node(),) if self.orelse is not None else ())
        axis = {REPEAT: "repeat", CHUNK: "chunk"}.get(self.index) or \
            (str(self.index.label) if isinstance(self.index, sp.Idx) else None)
        return Loop(self.head, self.lower(), axis)


# ---------------------------------------------------------------- the writer
class Writer:
    """Emits the lines computing expressions, hoisting each sum as far out as it can go."""

    def __init__(self, names: Names, dims: dict[sp.Symbol, str], self_bases: frozenset = frozenset(),
                 snapshot: bool = False, big: frozenset = frozenset(), element: frozenset = frozenset(),
                 stats=None):
        self.names = names
        self.stats = stats               # codegen.statistics.Statistics: data-plate sums the local step fills
        self.element = element           # the indices of the elements being updated (their loops are outermost)
        self.big = big                   # dims of the data plate: sums over them are chunked reductions
        self.dims = dims                 # dim symbol -> mangled name
        # Moments of the variable being updated.  With ``snapshot`` (the parallel, damped schedule) they
        # are read from a copy taken before the update (``o_`` arrays): every element sees the old values.
        self.self_bases = frozenset() if snapshot else self_bases
        self.snapshot_bases = self_bases if snapshot else frozenset()
        self._tmp = itertools.count()
        self._memo: dict = {}
        self._memo_reads: dict = {}      # what a remembered value's text names (see _recall)
        self.scratch: dict[sp.Basic, str] = {}   # IndexedBase -> a kernel's own array (codegen.newton's caches)
        self.places: dict = {}           # the sum stage's: (sum, its loops' indices, pinned) -> ir.SumPlace

    def tmp(self, stem: str) -> str:
        return self.names.seen(f"_{stem}{next(self._tmp)}")

    def expr(self, e: sp.Expr, levels: list[Block], pinned: int = 0, top: bool = True) -> Expr:
        """:meth:`top` (or :meth:`value`, ``top=False``) as an IR expression: the text and the names it reads."""
        return self._watched(self.staged(e, levels, pinned, top), levels, pinned)

    def _watched(self, e: sp.Expr, levels: list[Block], pinned: int) -> Expr:
        with self.names.watch() as seen:
            text = self._value(e, levels, pinned)
        return Expr(text, frozenset(seen))

    def staged(self, e: sp.Expr, levels: list[Block], pinned: int = 0, top: bool = True) -> sp.Expr:
        """e through the stages before any of its text is written: the expression rules of codegen.rewrite
        (``top``: a whole value the writer is given), then the sum stage (:func:`place_sums`) over what they
        leave, whose places the writer reads as it prints (:meth:`sum`)."""
        at = self.scope()
        if top:
            e = rewrite(e, at, self.names.rewrites)
        placed = place_sums(e, tuple(lv.index for lv in levels), pinned, at,
                            self.stats.sums if self.stats is not None else {})
        self.places.update(placed)
        self.names.places.update(placed)
        return e

    # ----------------------------------------------------------- values
    def varies(self, e: sp.Expr) -> bool:
        """Changes from one element of the update to the next: reads its own moments or its index."""
        return self._reads_self(e) or bool(self.element & e.free_symbols)

    def top(self, e: sp.Expr, levels: list[Block], pinned: int = 0) -> str:
        """Python source for a whole expression: first rewritten by the rules of codegen.rewrite (so invariant
        sums can be hoisted) and its sums placed by the sum stage, then printed as it is."""
        return self._value(self.staged(e, levels, pinned), levels, pinned)

    def value(self, e: sp.Expr, levels: list[Block], pinned: int = 0) -> str:
        """Python source for e as it is (no expression rule), its sums placed by the sum stage and emitted into
        ``levels``."""
        return self._value(self.staged(e, levels, pinned, top=False), levels, pinned)

    def index_value(self, i: sp.Expr, levels, pinned, clamp: bool = True) -> str:
        """An index position (:meth:`_index_value`) of an index the writer is given."""
        return self._index_value(self.staged(i, levels, pinned, top=False), levels, pinned, clamp)

    def scope(self) -> Scope:
        """What the rewrite rules may read of this writer, as it is now (codegen.newton widens its bases)."""
        return Scope(self.big, bool(self.self_bases or self.element), self.varies, self._reads_self, self.stats,
                     self.names.centring, self.names.fresh, self._fixed, self.names.rank)

    def _value(self, e: sp.Expr, levels: list[Block], pinned: int = 0) -> str:
        """Python source for e, with its sums emitted into ``levels``."""
        if isinstance(e, sp.Sum):
            return self.sum(e, levels, pinned)
        if isinstance(e, (sp.Idx,)) or e in self.names.idx:
            return self.names.index(e)
        if e.is_Integer:
            return f"{int(e)}.0" if abs(int(e)) < 2**53 else literal(float(e))
        if e.is_Number:
            return literal(float(e))
        if e is sp.pi:
            return "math.pi"
        if e is sp.E:
            return "math.e"
        if isinstance(e, sp.Symbol) and e in self.dims:
            return f"float({self.names.touch(self.dims[e])})"
        if isinstance(e, (sp.Symbol, MomentSymbol)):
            return f"{self.array(e)}[0]"
        if isinstance(e, sp.Indexed):
            return f"{self.array(e.base)}[{', '.join(self._index_value(i, levels, pinned) for i in e.indices)}]"
        if isinstance(e, (sp.Add, sp.Mul, sp.Pow)):
            return self._arithmetic(e, levels, pinned)
        return self._function(e, levels, pinned)

    def _arithmetic(self, e: sp.Add | sp.Mul | sp.Pow, levels: list[Block], pinned: int) -> str:
        """A sum, a product (x log y as xlogy; negative powers as one division) or a power."""
        if isinstance(e, sp.Add):
            return "(" + " + ".join(self._value(a, levels, pinned) for a in self.ordered(e.args, levels)) + ")"
        if isinstance(e, sp.Mul):
            args = self.ordered(e.args, levels)
            log = next((a for a in args if isinstance(a, sp.log) and not a.args[0].is_number), None)
            weight = e.func(*(a for a in args if a is not log)) if log is not None else None
            if weight is not None and not weight.is_number:
                # x log y where x may vanish: 0 there, also at y = 0 (runtime.xlogy)
                return f"xlogy({self._value(weight, levels, pinned)}, {self._value(log.args[0], levels, pinned)})"
            num, den = [], []
            for a in args:
                if isinstance(a, sp.Pow) and a.exp.is_Number and a.exp < 0:
                    den.append(self._value(a.base ** -a.exp, levels, pinned))
                else:
                    num.append(self._value(a, levels, pinned))
            s = " * ".join(num) if num else "1.0"
            return f"({s} / ({' * '.join(den)}))" if den else f"({s})"
        base = self._value(e.base, levels, pinned)       # (a power)
        if e.exp == -1:
            return f"(1.0 / {base})"
        if e.exp == sp.S.Half:
            return f"math.sqrt({base})"
        if e.exp.is_Integer:
            return f"({base} ** {int(e.exp)})"
        return f"({base} ** {self._value(e.exp, levels, pinned)})"

    def _function(self, e: sp.Expr, levels: list[Block], pinned: int) -> str:
        """A Kronecker delta, a matrix's inverse or log-determinant (derived at bind time), or a function the
        runtime or math provides."""
        if isinstance(e, sp.KroneckerDelta):
            a, b = (self._index_value(x, levels, pinned, clamp=False) for x in e.args)
            return f"(1.0 if {a} == {b} else 0.0)"
        if isinstance(e, before):
            a, b = (self._index_value(x, levels, pinned, clamp=False) for x in e.args)
            return f"(1.0 if {a} < {b} else 0.0)"
        if isinstance(e, inverse):
            m, d, f = e.args
            name = self.derived("inv", m)
            pre = [self._index_value(i, levels, pinned) for i in (m.indices if isinstance(m, sp.Indexed) else ())]
            return f"{name}[{', '.join(pre + [self._index_value(d, levels, pinned), self._index_value(f, levels, pinned)])}]"
        if isinstance(e, logdet):
            m = e.args[0]
            name = self.derived("logdet", m)
            pre = [self._index_value(i, levels, pinned) for i in (m.indices if isinstance(m, sp.Indexed) else ())]
            return f"{name}[{', '.join(pre) if pre else '0'}]"
        if isinstance(e, shift):
            return f"{self.derived('shift', e.args[0])}[0]"
        if isinstance(e, centred):
            return f"({self._value(e.args[0], levels, pinned)} - {self._value(e.args[1], levels, pinned)})"
        if isinstance(e, lmvgamma):
            return f"lmvgamma({self._value(e.args[0], levels, pinned)}, int({self._value(e.args[1], levels, pinned)}))"
        if isinstance(e, sp.polygamma):
            if e.args[0] != 0:
                raise CodegenError(f"polygamma of order {e.args[0]}")
            return f"digamma({self._value(e.args[1], levels, pinned)})"
        fn = {sp.log: "math.log", sp.exp: "math.exp", lgamma: "math.lgamma", sp.loggamma: "math.lgamma",
              softplus: "softplus", sigmoid: "sigmoid", sp.Abs: "abs", sp.sign: "np.sign"}.get(type(e))
        if fn is not None:
            return f"{fn}({self._value(e.args[0], levels, pinned)})"
        raise CodegenError(f"cannot generate code for {type(e).__name__}: {e}")

    def env(self, levels: list[Block]) -> dict:
        """The indices the loops of ``levels`` bind, by depth (for :func:`structure`)."""
        return {lv.index: ("L", n) for n, lv in enumerate(levels) if lv.index is not None}

    def ordered(self, args, levels: list[Block]) -> list:
        """Terms or factors in the order they are emitted: by :func:`structure`, never by their names."""
        return ordered(list(args), self.env(levels), self.names.rank)

    def array(self, base: sp.Basic) -> str:
        if base in self.scratch:
            return self.names.seen(self.scratch[base])
        name, _ = self.names.array_of(base)
        return self.names.snapshot(name) if base in self.snapshot_bases else name

    def _index_value(self, i: sp.Expr, levels, pinned, clamp: bool = True) -> str:
        """An index position: an integer expression (loop index, literal, or data value).  ``clamp``: a
        subscript (an offset kept inside its axis); a delta's or an indicator's argument is not."""
        if isinstance(i, sp.Idx) or i in self.names.idx:
            return self.names.index(i)
        if i.is_Integer:
            return str(int(i))
        offset = _offset(i)
        if offset is not None and not clamp:
            j, c = offset
            return f"({self.names.index(j)} {'+' if c > 0 else '-'} {abs(c)})"
        if offset is not None:
            # a chain's neighbour, t ± c: read only under an indicator of its range (through_offsets), so kept
            # inside the axis (never a read past its end, whose bits may be a NaN that 0 · NaN keeps)
            j, c = offset
            edge = self._last(j) if c > 0 else "0"      # (the axis's ends: j's own range may be a slice)
            return f"{'min' if c > 0 else 'max'}({self.names.index(j)} {'+' if c > 0 else '-'} {abs(c)}, {edge})"
        if isinstance(i, sp.Indexed):
            name, _ = self.names.array_of(i.base)
            return f"int({name}[{', '.join(self._index_value(j, levels, pinned) for j in i.indices)}])"
        return f"int({self._value(i, levels, pinned)})"

    def _last(self, j: sp.Idx) -> str:
        """The last position of j's axis, ``n_T - 1``."""
        size = sp.sympify(j.upper) + 1
        return str(int(size) - 1) if size.is_Integer else f"{self.int_value(size)} - 1"

    def derived(self, kind: str, m: sp.Basic) -> str:
        base = m.base if isinstance(m, sp.Indexed) else m
        const = str(base.label if isinstance(base, sp.IndexedBase) else base)
        name = self.names.constant(kind, const)
        self.names.derived[name] = (kind, const)
        return name

    # ------------------------------------------------------------- sums
    def _recall(self, key) -> str:
        """A sum computed before at the same place: its text, whose names go into the text again (Names.watch)."""
        for name in self._memo_reads.get(key, (self._memo[key],)):
            self.names.seen(name)
        return self._memo[key]

    def _free_indices(self, e: sp.Expr) -> set:
        return {s for s in e.free_symbols if isinstance(s, sp.Idx)}

    def _reads_self(self, e: sp.Expr) -> bool:
        return bool(self.self_bases) and any(
            (isinstance(n, sp.Indexed) and n.base in self.self_bases) or n in self.self_bases
            for n in sp.preorder_traversal(e))

    def sum(self, e: sp.Sum, levels: list[Block], pinned: int) -> str:
        """e where and as the sum stage placed it (ir.SumPlace): the writer decides nothing here."""
        place = self.places.get((e, tuple(lv.index for lv in levels), pinned))
        if place is None:
            raise CodegenError(f"a sum the sum stage did not place reached the writer: {e}")
        if place.how == "shaped":
            return self._write_shaped(e, place.parts, levels, pinned, place.at)
        free = self._free_indices(e)
        if place.how == "statistic":
            depth = {i: n for n, lv in enumerate(levels) if (i := lv.index) is not None}
            ref = self.stats.ref(e, free, place.scatter, depth)
            return ref if ref is not None else self._materialise(e, place.scatter, free, levels)
        if place.how in ("pass", "array"):
            return self._materialise(e, place.scatter, free, levels)
        return self._accumulate(e, e.limits, e.function, levels, pinned, place.at)

    def _accumulate(self, e: sp.Sum, limits, function: sp.Expr, levels: list[Block], pinned: int,
                    target: int) -> str:
        """e = Σ_limits function, by loops placed before the body of ``levels[target]``."""
        host = levels[target]
        key = (id(host), e)
        if key in self._memo:      # the same sum at the same place: compute it once
            return self._recall(key)
        acc = self.tmp("s")
        self._memo[key] = acc
        loops = self._loops(limits)
        inner = levels[: target + 1] + loops
        body = self._watched(function, inner, pinned if pinned <= target else target)
        loops[-1].post.append(accumulate(Ref(acc), body))
        host.pre.append(assign(Ref(acc), Expr("0.0")))
        host.pre.append(loops[0])
        return acc

    def _fixed(self, size: sp.Expr) -> int | None:
        """The extent a dim the model fixes gives (K = 3: its name is the number), or None."""
        value = self.dims.get(size, "") if isinstance(size, sp.Symbol) else str(size) if size.is_Integer else ""
        return int(value) if value.isdigit() else None

    def _write_shaped(self, e: sp.Sum, parts: tuple[PlateSum, ...], levels: list[Block], pinned: int,
                      target: int) -> str:
        """The product of ``parts``: a part with ``outer`` limits by a loop over them around its inner sum (a
        statistic over them, SymPy would merge the two Sums again), any other by :meth:`value`."""
        out = []
        for p in parts:
            inner = built(p)
            if p.outer:
                out.append(self._accumulate(sp.Sum(sp.Mul(*p.factors), *p.limits, *p.outer) if len(parts) > 1 else e,
                                            p.outer, inner, levels, pinned, target))
            else:
                out.append(self._value(inner, levels, pinned))
        return out[0] if len(out) == 1 else "(" + " * ".join(out) + ")"

    def _loops(self, limits) -> list[Block]:
        blocks = []
        for (i, lo, hi) in limits:
            lo, end = sp.sympify(lo), sp.sympify(hi) + 1
            with self.names.watch() as seen:
                bounds = self.int_value(end), None if lo == 0 else self.int_value(lo)
            b = Block(Range(self.names.index(i), *bounds, reads=frozenset(seen)), i)
            if blocks:
                blocks[-1].post.append(b)   # after whatever gets hoisted into the outer loop
            blocks.append(b)
        return blocks

    def int_value(self, e: sp.Expr) -> str:
        e = sp.sympify(e)
        if e.is_Integer:
            return str(int(e))
        if isinstance(e, sp.Symbol) and e in self.dims:
            return self.names.touch(self.dims[e])
        return f"int({self.value(e, [Block()], 0)})"

    def _materialise(self, e: sp.Sum, scatter, free: set, levels: list[Block]) -> str:
        """Σ_t f(t, F) (or Σ_t [o = g(t)] f(t, F)) for every F at once, before the element loops.

        The summation over the data plate runs outermost, so each data point is read once per
        kernel, and a delta against a data value becomes a scatter into row g(t).  The pass is
        serial: the result does not depend on the thread count.
        """
        axes = axis_order(e, free, scatter[1] if scatter is not None else None, self.names.rank)
        key = (id(levels[0]), e)
        if key in self._memo:
            return self._recall(key)
        arr = self.tmp("a")
        ref = f"{arr}[{', '.join(self.names.index(i) for i in axes)}]" if axes else f"{arr}[0]"
        self._memo[key] = ref
        self._memo_reads[key] = (arr, *(self.names.index(i) for i in axes))
        fn = levels[0]
        with self.names.watch() as sized:
            shape = [self.int_value(i.upper + 1) for i in axes] or ["1"]
        limits = sorted(e.limits, key=lambda lim: sp.sympify(lim[2]) + 1 not in self.big)
        o, g, body_expr = None, None, e.function
        if scatter is not None:
            delta, o, g = scatter
            body_expr = sp.Mul(*(f for f in sp.Mul.make_args(e.function) if f is not delta))
        fn.pre.append(assign(Ref(arr), Expr(f"np.zeros(({', '.join(shape)},))", frozenset(sized))))
        loops = self._loops(limits)
        others = [i for i in axes if i != o]
        # symmetric in two axes (Σ_t ⟨Q[item[t], k]⟩ ⟨Q[item[t], k′]⟩): only k′ ≥ k summed, then copied
        pair = next(((a, b) for a, b in itertools.combinations(others, 2) if (a.lower, a.upper) == (b.lower, b.upper)
                     and body_expr.xreplace({a: b, b: a}) == body_expr), None)
        if others:
            more = self._loops([(i, pair[0] if pair and i == pair[1] else 0, i.upper) for i in others])
            loops[-1].post.append(more[0])
            loops += more
        inner = [fn] + loops
        body = self._watched(body_expr, inner, 0)
        where = []
        for i in axes:      # (each position with the names it reads: passes.scatter_rows reads the scatter's)
            with self.names.watch() as seen:
                text = self._index_value(g, inner, 0) if i == o else self.names.index(i)
            where.append(Expr(text, frozenset(seen)))
        loops[-1].post.append(accumulate(Ref(arr, tuple(where) or (Expr("0"),)), body))
        fn.pre.append(loops[0])
        if pair:
            copy = self._loops([(i, pair[0] + 1 if i == pair[1] else 0, i.upper) for i in axes])    # (b > a)
            swapped = [self.names.index(pair[1] if i == pair[0] else pair[0] if i == pair[1] else i) for i in axes]
            src = name_ref(arr, *(self.names.index(i) for i in axes))
            copy[-1].post.append(assign(name_ref(arr, *swapped), read(src)))
            fn.pre.append(copy[0])
        return ref
