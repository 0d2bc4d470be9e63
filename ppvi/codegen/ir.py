"""The kernel IR: what code generation decided, as plain frozen data, before any text is printed.

    Module      the kernels of one model, its statistics and its schedule (the plan the engine runs)
    Kernel      a name, its parameters (the arrays it reads or writes, by mangled name), flags, a body
    Loop        ``for var in [p]range(start, stop, step)`` over a body; ``parallel`` is a prange
    If          a body run when ``test`` holds, else ``orelse`` (an ``elif`` when that is one If)
    Assign      ``target[index] = value``, ``+= value`` or ``/= value``: the array (or temporary) written, its
                index, the value read
    Call        ``results = fn(args)``: a runtime helper, its arguments (an argument that is a Ref is written
                in place) and where its results go
    Expr        an expression's text (a leaf for now) and every name it reads
    Break       ``break``: leaves the innermost loop (passes.hoist moves nothing out of a loop that holds one)
    Pass        ``pass``: a loop that computes nothing on purpose (its note says why)
    Bind        a loop's element index computed from its counter (``i1_n = _b0 + _b``): defines, computes nothing
    Note        provenance: which η, statistic or ELBO term the code below computes, from which model line
    Share       the statistics' share of one element of an update, before passes.fuse makes the local step of it
    (BlockPlan) a group block the writer made (a kernel of role block), before passes.group_block keeps it or not
    Factored    a group block's kernel with its members' softmax factored, before passes.factored_softmax puts it in
                the plain block's place or not
    Colouring   a latent's two-colour update (a kernel of role colour), before passes.two_colour plans it or not
    PlateSum    a sum over the data plate as the writer meets it, before the sum rules (codegen.rewrite) decide
                its shape: a product of independent sums, the fixed dims summed outside the statistic
    SumPlace    how and at which of the writer's loops one sum is computed, as the sum stage (emit.place_sums)
                decided before any text of its expression is written: the writer only reads it

The passes (``ppvi.codegen.passes``) map a Module to a Module; the printer (``ppvi.codegen.printer``) only
prints one.  docs/architecture.md describes the pipeline and which decisions are passes today.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from ppvi.codegen.plan import BlockPlan, KernelSpec, Plan


@dataclass(frozen=True)
class Expr:
    """An expression: its Python text, and every name it reads (arrays, scalars, loop indices, temporaries)."""

    text: str
    reads: frozenset = frozenset()


@dataclass(frozen=True)
class Ref:
    """An element (or a slice) of an array, or a whole name when ``index`` is empty: what a statement writes."""

    name: str
    index: tuple[Expr, ...] = ()
    whole: bool = False             # every element of it (``a[i][...]``): written in place, all at once

    @property
    def text(self) -> str:
        text = f"{self.name}[{', '.join(i.text for i in self.index)}]" if self.index else self.name
        return text + "[...]" if self.whole else text

    @property
    def reads(self) -> frozenset:
        """The names its index reads (the array itself is what is written)."""
        return frozenset().union(*(i.reads for i in self.index))


@dataclass(frozen=True)
class Assign:
    """``target = value`` (op ``=``), or ``target += value`` / ``target /= value`` (an update in place: it also
    reads the target)."""

    target: Ref
    value: Expr
    op: str = "="


@dataclass(frozen=True)
class Call:
    """``results = fn(args)`` (no results: a call for its effect).  An argument that is a Ref is an array the
    callee writes in place (a finish writes q's row); an Expr is only read."""

    fn: str
    args: tuple
    results: tuple[Ref, ...] = ()


@dataclass(frozen=True)
class Break:
    """``break``: leave the innermost enclosing loop (a Newton step's line search, a group block's passes)."""


@dataclass(frozen=True)
class Pass:
    """``pass``: an element loop whose update another kernel makes (kept, so its note says so)."""


@dataclass(frozen=True)
class Bind:
    """``var = value``: the model index a loop's counter stands for, for the rest of the loop's body; ``reads``
    the names ``value`` reads (None: not known)."""

    var: str
    value: str
    reads: frozenset | None = None


@dataclass(frozen=True)
class Note:
    """A comment for the reader of the generated code (printed escaped: it holds no text of the model's)."""

    text: str


@dataclass(frozen=True)
class Range:
    """The iteration of a loop: ``var`` over range(start, stop, step) (start 0 and step 1 when None)."""

    var: str
    stop: str
    start: str | None = None
    step: str | None = None
    parallel: bool = False          # prange: the iterations run on threads
    reads: frozenset | None = None  # the names its bounds read (None: not known)
    part: tuple[str, str] | None = None     # (size, chunks): chunk _ch's share of range(size) (see part_range)
    over: Expr | None = None        # iterates over this expression's values (``enumerate(a.ravel())``) instead,
                                    # ``var`` then names every target (``_i, _e``)

    @property
    def binds(self) -> frozenset:
        """The names each iteration binds."""
        return frozenset(self.var.split(", "))


def part_range(var: str, size: str, chunks: str) -> Range:
    """``var`` over chunk ``_ch``'s share of range(size) cut in ``chunks`` fixed parts (whatever the threads)."""
    return Range(var, f"(_ch + 1) * {size} // {chunks}", f"_ch * {size} // {chunks}",
                 reads=frozenset({"_ch", size, chunks}), part=(size, chunks))


@dataclass(frozen=True)
class Loop:
    range: Range
    body: tuple = ()
    axis: str | None = None         # what it runs over, for reading the IR: a model index's label, "repeat",
                                    # "chunk" (the fixed chunks of the data plate, _ch)


@dataclass(frozen=True)
class If:
    test: Expr
    body: tuple = ()
    orelse: tuple = ()              # () or one If, run when ``test`` fails (printed as ``elif``)


Node = Union[Assign, Call, Break, Pass, Bind, Note, Loop, If]


@dataclass(frozen=True)
class Kernel:
    """A generated function.  ``params``: every array it reads or writes, sorted (how the engine calls it);
    ``role``: update, damped, local_step, point, elbo, statistics or block; ``latent``: whose update it is
    (of an elbo kernel: the latent whose moments it leaves out, the fast ELBO)."""

    name: str
    params: tuple[str, ...]
    body: tuple
    role: str
    latent: str | None = None
    parallel: bool = False          # compiled with parallel=True (it has a prange loop)
    contract: bool = False          # a·b + c may be one fused multiply-add
    returns: str | None = None
    doc: str = ""                   # what it computes and from which model line (printed as a comment)


@dataclass(frozen=True)
class StatisticArray:
    """A statistic of the local step (codegen.statistics): its array, shape in dims, and the sum it holds."""

    name: str
    shape: tuple
    expr: str
    scatter: str | None = None
    mirror: tuple | None = None


@dataclass(frozen=True)
class Share:
    """The statistics' share of one element of ``latent``'s update, for the pass that fuses them (passes.fuse):
    ``head`` before the chunks (C, the partial sums' arrays), ``point`` in the element's loop (it reads the
    element's index, the one the update's loop binds), ``tail`` after them (the reduce, in a fixed order);
    ``params`` every array the three name."""

    latent: str
    head: tuple
    point: tuple
    tail: tuple
    params: frozenset
    doc: str = ""           # the local step's provenance comment


@dataclass(frozen=True)
class Factored:
    """The group block of ``latent`` (its group latent) with the members' softmax factored, for the pass that
    keeps it (passes.factored_softmax): where each member's η is a + b, a read off the group and b off the member
    alone, e^a is formed once per pass and e^b once per member, and the passes before the last add up
    Σ_t p_t as one dot product and one axpy per member, never forming p.  ``kernel`` the whole block;
    ``rows`` the statistics' rows it refills that way, as counts (Σ over the members of their p); ``p`` the
    members' q array; ``axis`` the members' index label (the plain block's loops over them)."""

    latent: str
    kernel: Kernel
    rows: tuple[str, ...]
    p: str
    axis: str


@dataclass(frozen=True)
class PlateSum:
    """Σ over ``limits`` of the product of ``factors`` (SymPy expressions): a sum over the data plate (index
    ``plate``) as the writer meets it, before the sum rules (codegen.rewrite) decide its shape.  A limit is
    ``(index, lo, hi)``; ``sizes`` pairs each summation index with its extent where the model fixes it (an int:
    K, the atoms) or None where the data give it (the plate, U, I, a vocabulary).  ``outer``: limits summed
    outside, over the array the inner sum fills (rewrite.split)."""

    limits: tuple
    factors: tuple
    plate: object
    sizes: tuple
    outer: tuple = ()

    def size(self, index) -> int | None:
        """The extent of a summation index where the model fixes it, else None."""
        return next(n for i, n in self.sizes if i == index)

    def bound(self, x) -> frozenset:
        """The summation indices (inner or outer) an expression reads."""
        names = {lim[0] for lim in self.limits + self.outer}
        return frozenset(s for s in getattr(x, "free_symbols", ()) if s in names)


@dataclass(frozen=True)
class SumPlace:
    """How the writer computes one sum, decided by the sum stage (codegen.emit.place_sums) before any text is written.

    ``how``: ``shaped`` (the product of ``parts``, the sum rules' shape of a sum over the data plate), ``statistic``
    (an array the local step fills, codegen.statistics; one pass before the element loops where the statistics
    refuse it), ``pass`` (one pass over the data, before the element loops: a scatter by ``scatter`` or an
    invariant sum), ``array`` (a small array over its free indices, filled before the loops it does not depend
    on), ``loop`` (accumulated by loops placed before the body of the writer's loop ``at``).  ``at``: that loop,
    its position among the writer's (0 for the kernel's body)."""

    how: str
    at: int = 0
    parts: tuple = ()                   # (PlateSum, ...) where ``shaped``
    scatter: tuple | None = None        # (the delta, its free index o, g) where a pass scatters into row g


@dataclass(frozen=True)
class Colouring:
    """A latent's two-colour update, for passes.two_colour: its kernel (role ``colour``) and the data matrices
    whose nonzero entries couple the latent's elements (derive.colouring), as the plan would list them."""

    var: str
    kernel: KernelSpec
    pattern: tuple[str, ...]


@dataclass(frozen=True)
class LinearEta:
    """A kernel whose η of a local vector latent the writer wrote as features × weights (η[a] = Σ_j v_j W_j[a]:
    v_j what changes from element to element, W_j the rest, filled once per kernel, before any element), for
    the pass that keeps that form or not (passes.linear_eta).  ``kernel`` its name; ``weights`` the arrays W_j
    (the temporaries the kernel fills once); ``direct`` the same kernel with η summed element by element, which
    takes its place where the weights would not hold for the whole kernel."""

    kernel: str
    latent: str
    weights: tuple[str, ...]
    direct: Kernel


@dataclass(frozen=True)
class Module:
    version: str
    kernels: tuple[Kernel, ...]
    statistics: tuple[StatisticArray, ...] = ()
    plan: Plan | None = None                     # the schedule, as the engine reads it (PLAN; codegen.plan)
    shares: tuple[Share, ...] = ()               # what passes.fuse may fuse into an update (not printed)
    plate: str | None = None                     # the data plate's size, as the kernels spell it
    blocks: tuple[BlockPlan, ...] = ()           # group blocks passes.group_block may keep (not printed)
    factored: tuple[Factored, ...] = ()          # what passes.factored_softmax may put in a block's place
    colourings: tuple[Colouring, ...] = ()       # two-colour updates passes.two_colour may plan (not printed)
    sums: tuple = ()                             # (ir.PlateSum, its parts after each sum rule): --dump sums only
    rewrites: tuple = ()                         # (expression, its stages after each rule): --dump rewrites only
    places: tuple = ()                           # ((sum, its loops' indices, pinned), SumPlace): --dump sums only
    linear: tuple[LinearEta, ...] = ()           # the kernels passes.linear_eta may write η directly (not printed)

    def kernel(self, name: str) -> Kernel:
        return next(k for k in self.kernels if k.name == name)


def walk(body: tuple):
    """Every node of a body, depth first, parents before their children (an If's body before its orelse)."""
    for node in body:
        yield node
        if isinstance(node, (Loop, If)):
            yield from walk(node.body)
        if isinstance(node, If):
            yield from walk(node.orelse)


def reads(node) -> frozenset | None:
    """Every name a node reads that it does not bind itself (a loop: its bounds and its body, not its own index);
    None when an index binding or loop bounds in it do not say what they read."""
    if isinstance(node, Assign):
        return node.value.reads | node.target.reads | ({node.target.name} if node.op != "=" else frozenset())
    if isinstance(node, Call):
        args = frozenset().union(*(a.reads | ({a.name} if isinstance(a, Ref) else frozenset()) for a in node.args))
        return args.union(*(r.reads for r in node.results))
    if isinstance(node, (Note, Break, Pass)):
        return frozenset()
    if isinstance(node, Bind):
        return node.reads
    if isinstance(node, If):
        inner = [reads(n) for n in node.body + node.orelse]
        return None if None in inner else node.test.reads.union(*inner)
    if isinstance(node, Loop):
        inner = [reads(n) for n in node.body]
        if node.range.reads is None or None in inner:
            return None
        return node.range.reads | (frozenset().union(*inner) - node.range.binds)
    raise TypeError(f"not an IR node: {node!r}")


def writes(node) -> frozenset | None:
    """Every name a node writes, but the indices of its own loops (each loop binds its index afresh, and no
    statement after it reads it)."""
    if isinstance(node, Assign):
        return frozenset({node.target.name})
    if isinstance(node, Call):
        return frozenset(r.name for r in node.results) | frozenset(a.name for a in node.args if isinstance(a, Ref))
    if isinstance(node, (Note, Break, Pass)):
        return frozenset()
    if isinstance(node, Bind):
        return frozenset({node.var})
    if isinstance(node, If):
        return frozenset().union(*(writes(n) for n in node.body + node.orelse))
    if isinstance(node, Loop):
        inner = [writes(n) for n in node.body]
        return frozenset().union(*inner) - node.range.binds
    raise TypeError(f"not an IR node: {node!r}")


def accumulates(node) -> frozenset:
    """The names a node updates from their own value (``+=``, ``x = x / 16``) without assigning them in it
    first: a loop-carried value.  (A call's array written in place is its output: a callee that also reads it
    stands in a loop that breaks, which passes.hoist leaves alone.)"""
    assigned, added = set(), set()
    for n in walk((node,)):
        if isinstance(n, Assign):
            if n.op != "=" or n.target.name in n.value.reads:
                added |= {n.target.name} - assigned
            if n.op == "=":
                assigned.add(n.target.name)
    return frozenset(added)


def breaks(node) -> bool:
    """Whether a node holds a ``break`` that leaves a loop around it (one not inside a loop of its own)."""
    if isinstance(node, Break):
        return True
    return isinstance(node, If) and any(breaks(n) for n in node.body + node.orelse)
