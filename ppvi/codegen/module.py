"""A derivation -> one generated Python module: an update kernel per latent and the ELBO kernel.

The module carries its own description (``PLAN``, a codegen.plan.Plan: which
arrays each kernel reads and writes, their shapes in terms of dims, the aliases
between moments and parameters), so a cached module runs without SymPy.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from contextlib import contextmanager
from dataclasses import dataclass, field

import sympy as sp

from ppvi import __version__
from ppvi.codegen.centre import Centring, centre
from ppvi.codegen.chain import chain_state, write_chain_kernel, write_gaussian_kernel
from ppvi.codegen.emit import (CHUNK, REPEAT, Block, CodegenError, Names, Writer, accumulate, add, assign, ex, let,
                              name_ref, read)
from ppvi.codegen.ir import (Assign, Bind, Break, Call, Colouring, Expr, Factored, Kernel, LinearEta, Module, Note,
                             Pass, Range, Ref, Share, StatisticArray, part_range)
from ppvi.codegen.passes import run_passes
from ppvi.codegen.plan import ArrayNames, BlockPlan, ElboPlan, KernelSpec, LatentPlan, Plan, PointPlan, StatsPlan
from ppvi.codegen.printer import module_source
from ppvi.codegen.rewrite import monomials, renamed
from ppvi.codegen.statistics import CHUNKS, Statistics, count_loops, feature_key, feature_order
from ppvi.derive.colouring import coupling, parity
from ppvi.derive.expectation import collapse
from ppvi.derive.meanfield import Derivation, QFactor
from ppvi.derive.render import Whiteboard
from ppvi.derive.symbols import MomentBase, MomentSymbol
from ppvi.graph.order import order
from ppvi.language.missing import imputed


# family -> [(array role, mangled-name maker, extra axes)], the first of each alias group owning the memory.
# extra axes: "" none, "e" one event axis, "ee" two event axes.
STATE = {
    "Normal": [("q", "mean", ""), ("q", "sd", ""), ("m", "x2", "")],
    "Gamma": [("q", "shape", ""), ("q", "rate", ""), ("m", "x", ""), ("m", "logx", "")],
    "Beta": [("q", "a", ""), ("q", "b", ""), ("m", "x", ""), ("m", "logx", ""), ("m", "log1mx", "")],
    "Bernoulli": [("q", "p", "")],
    "Categorical": [("q", "p", "e")],
    "Dirichlet": [("q", "alpha", "e"), ("m", "logp", "e"), ("m", "x", "e")],
    "MvNormal": [("q", "mean", "e"), ("q", "cov", "ee"), ("m", "xxT", "ee")],
    "Wishart": [("q", "df", ""), ("q", "scale", "ee"), ("m", "X", "ee"), ("m", "logdet", "")],
    "PolyaGamma": [("q", "b", ""), ("q", "c", ""), ("m", "x", ""), ("m", "base", "")],
    "Poisson": [("q", "rate", ""), ("m", "lfact", "")],
    "Binomial": [("q", "n", ""), ("q", "p", ""), ("m", "x", ""), ("m", "lchoose", "")],
    "NegativeBinomial": [("q", "r", ""), ("q", "p", ""), ("m", "x", ""), ("m", "lnb", "")],
}
# moments that are another array under a second name
ALIASES = {
    "Normal": {("m", "x"): ("q", "mean")},
    "Bernoulli": {("m", "x"): ("q", "p"), ("m", "x2"): ("q", "p")},
    "Categorical": {("m", "onehot"): ("q", "p")},
    "Poisson": {("m", "x"): ("q", "rate")},
    "MvNormal": {("m", "x"): ("q", "mean")},
}


def _mangle(names: Names, var: str, role: str, what: str) -> str:
    return names.qparam(var, what) if role == "q" else names.moment(var, what)


# A blocked local step (Blocked): about this many floats in a block's feature rows (32 KB, in cache).
BLOCK_FLOATS = 4096
# (and at most passes.BLOCK_ETA_FLOATS in a block's η where it is a matrix product: passes.block_size)
# The group block (ModuleWriter.block_kernel): passes per group and sweep at most (as scikit-learn's
# max_doc_update_iter), and the relative change of the group latent's η that ends them.
BLOCK_PASSES = 100
BLOCK_TOL = 1e-4


def _dim_name(i: sp.Idx) -> str | int:
    s = i.upper + 1
    return s.name if isinstance(s, sp.Symbol) else int(s)


def _event_dim(q: QFactor) -> str | int | None:
    if q.extra is not None:
        return _dim_name(q.extra)
    return _dim_name(q.event[0]) if q.event else None


def state_arrays(q: QFactor, names: Names) -> dict[str, tuple]:
    """Arrays q owns: mangled name -> shape (dim names and ints); rank-0 scalars are shape [1]."""
    plates = [_dim_name(i) for i in q.index]
    ev = _event_dim(q)
    out = {}
    for role, what, axes in STATE[q.family]:
        shape = plates + [ev] * len(axes)
        out[_mangle(names, q.var, role, what)] = tuple(shape) or (1,)
    out[names.entropy(q.var)] = tuple(plates) or (1,)
    if q.family == "Categorical":
        # log Σ_k e^η: with H, the latent's whole share of the ELBO
        out[names.log_normaliser(q.var)] = tuple(plates) or (1,)
    return out


def aliases(q: QFactor, names: Names) -> dict[str, str]:
    """The moments of q that are another of its arrays under a second name: alias -> owner."""
    return {names.moment_name(q.var, a[1]): _mangle(names, q.var, *b) for a, b in ALIASES.get(q.family, {}).items()}


def _eta_rank(stat: str, family: str) -> int:
    """How many event axes the natural parameter of ``stat`` has for one element."""
    return {"onehot": 1, "logp": 1, "xxT": 2, "X": 2}.get(stat, 1 if family == "MvNormal" and stat == "x" else 0)


def _self_bases(d: Derivation, var: str) -> frozenset:
    return frozenset(m for (v, _), m in d.syms.moments.items() if v == var)


def _parallel_axis(q: QFactor, bases: frozenset) -> bool:
    """True when elements differing in the first plate axis never read each other's moments."""
    if not q.index:
        return False
    first = q.index[0]
    for eta in q.natural.values():
        for node in sp.preorder_traversal(eta):
            if (isinstance(node, sp.Indexed) and node.base in bases and node.indices[0] != first) or \
                    isinstance(node, MomentSymbol) and node in bases:
                return False
    return True


def _reads(g: sp.Expr, data: str, n: sp.Idx) -> bool:
    """g is data[n]."""
    return isinstance(g, sp.Indexed) and str(g.base.label) == data and tuple(g.indices) == (n,)


def _symmetric_pair(v: sp.Expr, inside: list):
    """Two summation limits over the same range that v is symmetric in (x[n, d] x[n, e]), or None."""
    for a, b in itertools.combinations(inside, 2):
        if (a[1], a[2]) == (b[1], b[2]) and v.xreplace({a[0]: b[0], b[0]: a[0]}) == v:
            return a, b
    return None


def _exact_em(d: Derivation) -> bool:
    """Every mean-field latent is local and exact given θ (no other latent in its update): then the
    ELBO right after its update is the log-likelihood log p(v; θ) (EM, 19.2)."""
    if not d.q or d.point:
        return False
    for v, q in d.q.items():
        if q.scope != "local":
            return False
        for e in q.natural.values():
            for node in sp.preorder_traversal(e):
                base = node.base if isinstance(node, sp.Indexed) else node
                if isinstance(base, (MomentBase, MomentSymbol)):
                    return False
    return True


@dataclass
class Blocked:
    """The local step of a Categorical z[n] in blocks of _B points, per chunk (see update_kernel):
        for each block: ``features`` (a loop over its points filling rows of feature matrices),
                        ``between`` (η of the whole block as one matrix product),
                        the points' updates, then ``after`` (the statistics as matrix products).
    Matrix products go to BLAS (np.dot); a block's matrices stay in cache.  (At B ≥ 8 points a product
    stays below OpenBLAS's threshold for threads of its own, 262,144 multiply-adds, while features × K
    < 32,768: D ≤ 79 at K = 10.)"""
    features: Block
    between: list = field(default_factory=list)
    after: list = field(default_factory=list)
    widths: list = field(default_factory=list)      # the feature counts, for the block size
    alloc: list = field(default_factory=list)       # the block's matrices, allocated once per chunk
    phi_keys: list = field(default_factory=list)    # Φ's columns (statistics.feature_key), in order
    eta: str | None = None                          # the block's η (K × B), when it is a matrix product


@dataclass
class GroupBlock:
    """The group block (ModuleWriter.block_kernel) while it is written: ``fn`` the kernel's body, ``head`` its
    first lines (tables every group reads), ``group`` the loop over groups (prange), ``before`` a group's lines
    before its passes, ``rep`` the passes until the group latent's η settles.  Lines go to these places by
    name, never by the position of another block."""
    fn: Block
    head: Block
    group: Block
    before: Block
    rep: Block
    at: str             # the group's index
    start: str          # c_start__<by>: where each group's members begin in ``order``
    order: str          # c_order__<by>: the members t, sorted by group
    t: sp.Idx           # the member index

    def members(self, names: Names, numbered: bool = False) -> Block:
        """A loop over the group's members t; ``numbered``: also their place _j in the group."""
        b = Block(Range("_g", f"{self.start}[{self.at} + 1]", f"{self.start}[{self.at}]",
                        reads=frozenset({self.start, self.at})), self.t)
        b.pre.append(Bind(names.index(self.t), f"{self.order}[_g]", frozenset({self.order, "_g"})))
        if numbered:
            b.pre.append(Bind("_j", f"_g - {self.start}[{self.at}]", frozenset({"_g", self.start, self.at})))
        return b


class ModuleWriter:
    """``fixed``: dims written into the kernels as literals (see cache.fixed_sizes): loops over a component axis
    then have a trip count the compiler knows, and are unrolled and vectorised whole — 1.3–1.4× on the
    mixture's local step at K = 10.  Dims the data determine stay arguments."""

    def __init__(self, d: Derivation, fixed: dict[str, int] | None = None):
        self.d = d
        # sums and loops in the canonical order of the model's structure (docs/architecture.md, "The schedule
        # and the canonical order"): reordering independent statements changes no bit of the generated code
        canonical = order(d.model)
        self.names = Names(rank={**canonical.variables,
                                 **{d.syms.dims[k]: n for k, n in canonical.dims.items() if k in d.syms.dims}})
        self.names.centring, self.names.fresh = Centring.of(d), d.syms.fresh
        for q in d.q.values():
            self.names.aliases.update(aliases(q, self.names))
        for b in getattr(d, "blocks", {}).values():      # a Categorical chain's marginals are its q's p
            self.names.aliases.update(chain_state(b, self.names)[1])
        fixed = fixed or {}
        self.dims = {d.syms.dims[n]: str(int(fixed[n])) if n in fixed else self.names.dim(n) for n in d.syms.dims}
        plate = d.graph.data_plate
        self.big = frozenset({d.syms.dims[plate]} if plate in d.syms.dims else ())
        nodes = d.graph.nodes
        self.stats = Statistics(
            self.names, self.dims, self.big,
            local=frozenset(v for v, n in nodes.items() if n.kind == "latent" and n.scope == "local"),
            inputs=frozenset(v for v, n in nodes.items() if n.kind in ("data", "const")),
            fresh=d.syms.fresh,
            ranges={v.name: v.support_dim for v in d.model.variables.values()
                    if v.kind == "data" and v.support == "index" and v.support_dim is not None})
        self.kernels: list[Kernel] = []
        self.stat_reads: dict[str, list] = {}    # latent -> the statistics its update reads, and where
        self.blocked: Blocked | None = None      # while the blocked local step is written
        self.shares: list[Share] = []            # the statistics' shares of the updates passes.fuse may fuse
        # the plan's entries as the kernels are written (module() makes the Plan of them)
        self.latents: dict[str, LatentPlan] = {}
        self.points: dict[str, PointPlan] = {}
        self.elbo: ElboPlan | None = None
        self.stats_plan: StatsPlan | None = None
        self.blocks: list[BlockPlan] = []        # the group blocks passes.group_block may keep (candidates)
        self.factored: list[Factored] = []       # the same blocks, softmax factored (passes.factored_softmax)
        self.colourings: list[Colouring] = []    # two-colour updates (passes.two_colour)
        self.weights: list[str] = []             # the linear η's weights of the kernel being written
        self.linear: list[tuple] = []            # (kernel, latent, weights) with η as features × weights
        self.candidates: list[LinearEta] = []    # the same kernels with η written directly (passes.linear_eta)
        # data with missing entries (ppvi.language.missing): their q's finish runs only where the mask is set
        self.missing = frozenset(imputed(d.model))
        self.masks = {v: self.names.constant("missing", v) for v in sorted(self.missing)}

    # -------------------------------------------------------------- kernels
    def update_kernel(self, q: QFactor, damped: bool = False, blocked: bool = False, linear: bool = True) -> None:
        """q's update; ``damped``: every element from the moments before the update (Jacobi), and the
        natural parameters moved only part of the way, η ← (1 − α) η_old + α η (19.4.1).

        ``blocked``: the blocked local step of a Categorical (Blocked): each chunk of the data plate updates
        its points a block at a time and adds up their statistics (codegen.statistics) as matrix products;
        the chunks' sums are reduced after.  A candidate for passes.fuse, which keeps it or drops it (the
        local step of any other latent is the pass's fusion of its update with the statistics' Share).

        ``linear``: a local vector latent's η as features × weights where it takes that form (_linear_eta);
        such a kernel is a candidate for passes.linear_eta, beside the same kernel with η written directly
        (``linear=False``, written by :meth:`direct_kernels` after every other kernel).
        """
        self.names.begin()
        self.weights = []
        bases = _self_bases(self.d, q.var)
        w = Writer(self.names, self.dims, bases, snapshot=damped, big=self.big, element=frozenset(q.index),
                   stats=self.stats)
        mark = len(self.stats.reads)
        fn = Block()
        # Threads only over the data plate: for a handful of components a parallel loop costs more to load
        # and start than it saves.
        over_plate = bool(q.index) and q.index[0].upper + 1 in self.big
        parallel = over_plate and (damped or _parallel_axis(q, bases)) and \
            (q.newton is None or q.newton.separable)   # (a Newton q's line search reads every element otherwise)
        chunks = "_C" if blocked else str(CHUNKS)
        if blocked:
            fn.pre.append(self.stats.chunks(w))
        levels, alloc = self._element_loops(q, w, fn, parallel, chunks, blocked)
        self._element(q, w, levels, len(levels) - 1, alloc, damped, linear)
        role = "local_step" if blocked else "damped" if damped else "update"
        name = self.names.kernel(role, q.var)
        if self.weights:
            self.linear.append((name, q.var, tuple(self.weights)))
        if blocked:
            self.stats.map(fn, levels, q.index[0], blocked=self.blocked,
                           onehot=self.d.syms.moments.get((q.var, "onehot")))
            self.stats.reduce(fn)
            self._close_blocked(fn, levels, alloc)
            self._function(name, fn, returns=None, role=role, latent=q.var)
            return
        self._function(name, fn, returns=None, role=role, latent=q.var)
        if damped:
            self.latents[q.var] = dataclasses.replace(self.latents[q.var], damped=self._spec(name))
            return
        self.stat_reads[q.var] = self.stats.reads[mark:]
        self.latents[q.var] = LatentPlan(
            q.family, self._spec(name), state_arrays(q, self.names), aliases(q, self.names), q.scope,
            tuple(_dim_name(i) for i in q.index), _event_dim(q), bool(bases & self._read_bases(q)))

    def colour_kernel(self, q: QFactor, pattern: tuple[str, ...]) -> None:
        """q's update two colours at a time, colour 0's elements in parallel, then colour 1's.  With a
        ``pattern`` (derive.colouring.coupling: the elements read each other only through those data matrices)
        the engine's colouring gives the elements (``c_colour__<var>``: colour 0's first; ``c_colours__<var>``:
        where each colour starts, and the end); without, the colours are (Σ indices) mod 2
        (derive.colouring.parity: a grid written with offsets).  A candidate for passes.two_colour."""
        self.names.begin()
        w = Writer(self.names, self.dims, _self_bases(self.d, q.var), big=self.big, element=frozenset(q.index),
                   stats=self.stats)
        side = Block(Range("_c", "2", reads=frozenset()))
        levels = [side]
        if pattern:
            elements, starts = self.names.constant("colour", q.var), self.names.constant("colours", q.var)
            each = Block(Range("_k", f"{starts}[_c + 1]", f"{starts}[_c]", parallel=True,
                               reads=frozenset({starts, "_c"})), q.index[0])
            each.pre.append(Bind(self.names.index(q.index[0]), f"{elements}[_k]", frozenset({elements, "_k"})))
            levels.append(each)
        else:
            outer: list[str] = []
            for n, i in enumerate(q.index):
                size, name = w.int_value(i.upper + 1), self.names.index(i)
                parity = f"({' + '.join(outer)} + _c) % 2" if outer else "_c"
                if n < len(q.index) - 1:
                    b = Block(Range(name, size, parallel=n == 0, reads=frozenset({size})), i)
                elif n == 0:        # (one axis: its elements of one parity, counted under prange)
                    b = Block(Range("_k", f"({size} - _c + 1) // 2", parallel=True, reads=frozenset({size, "_c"})), i)
                    b.pre.append(Bind(name, "2 * _k + _c", frozenset({"_k", "_c"})))
                else:
                    b = Block(Range(name, size, parity, "2", reads=frozenset({size, "_c", *outer})), i)
                levels[-1].post.append(b)
                levels.append(b)
                outer.append(name)
        if pattern:
            side.post.append(levels[-1])
        fn = Block()
        fn.post.append(side)
        self._element(q, w, levels, len(levels) - 1, None)
        name = self.names.kernel("colour", q.var)
        self._function(name, fn, returns=None, role="colour", latent=q.var)
        self.colourings.append(Colouring(q.var, self._spec(name), tuple(ArrayNames.variable(a) for a in pattern)))

    def _element_loops(self, q: QFactor, w: Writer, fn: Block, parallel: bool, chunks: str,
                       blocked: bool) -> tuple[list[Block], Block | None]:
        """The loops over q's elements: (the levels, the innermost last; the chunk's body, where scratch arrays
        are allocated once per chunk, or None).  ``parallel``: the first axis in fixed chunks under prange;
        ``blocked``: each chunk in blocks of _B points (Blocked), the element loop over a block's points."""
        levels, alloc = [fn], None
        for n, i in enumerate(q.index):
            size = w.int_value(i.upper + 1)
            if n == 0 and parallel:
                chunk = Block(Range("_ch", chunks, parallel=True, reads=frozenset({chunks})), CHUNK)
                levels[-1].post.append(chunk)
                alloc = chunk
                if blocked:
                    chunk.pre += [let("_lo", f"_ch * {size} // {chunks}", "_ch", size, chunks),
                                  let("_hi", f"(_ch + 1) * {size} // {chunks}", "_ch", size, chunks)]
                    blk = Block(Range("_b0", "_hi", "_lo", "_B", reads=frozenset({"_hi", "_lo", "_B"})))
                    blk.pre.append(let("_nb", "min(_B, _hi - _b0)", "_B", "_hi", "_b0"))
                    chunk.post.append(blk)
                    levels.append(blk)

                    def point_loop(i=i) -> Block:
                        """A loop over the block's points: point _b is element _b0 + _b."""
                        loop = Block(Range("_b", "_nb", reads=frozenset({"_nb"})), i)
                        loop.pre.append(Bind(self.names.index(i), "_b0 + _b", frozenset({"_b0", "_b"})))
                        return loop
                    self.blocked = Blocked(point_loop())
                    b = point_loop()
                else:
                    b = self._chunk_part(i, size, chunks)
                    chunk.post.append(b)
            else:
                b = Block(Range(self.names.index(i), size, reads=frozenset({size})), i)
                levels[-1].post.append(b)
            levels.append(b)
        return levels, alloc

    def _close_blocked(self, fn: Block, levels: list[Block], alloc: Block) -> None:
        """A block's body in order: its features, η as matrix products (between), the points' updates, the
        statistics as matrix products (after); the block's matrices once per chunk, _B from their widths."""
        bk = self.blocked
        blk = levels[-2]
        blk.post += ([bk.features] if bk.features.post else []) + bk.between + [levels[-1]] + bk.after
        alloc.pre += bk.alloc
        widths = " + ".join(bk.widths) or "1"
        # (the step of the loop over blocks: passes.block_size bounds it where the block's η is a K × B product)
        fn.pre.append(assign(Ref("_B"), Expr(f"max(8, min(256, {BLOCK_FLOATS} // ({widths})))", frozenset(bk.widths))))
        self.blocked = None

    def _element(self, q: QFactor, w: Writer, levels: list[Block], pinned: int, alloc: Block | None,
                 damped: bool = False, linear: bool = True, entropy: bool = True) -> dict[str, str]:
        """The update of one element of q (its loops are ``levels``): η, then the family's finish.
        Returns the names of the η temporaries.  ``linear``: η of a local vector latent as features
        × weights (weights computed once per kernel, so only where nothing they read changes within it).
        ``entropy=False``: a Dirichlet's moments only (its entropy left to the caller: dirichlet_entropy)."""
        el = levels[-1]
        at = [self.names.index(i) for i in q.index]
        eta = {}
        if q.newton is not None:        # an exp link's Normal q: Newton steps (codegen.newton), in either schedule
            from ppvi.codegen.newton import blocks, newton_block, newton_element
            if q.newton.joined and not damped:      # (moved by the block step of q.newton.joined: no update here)
                levels[-1].post += [self._note("no update here: another q's block step moves the mean and variance",
                                               q.var), Pass()]
            elif blocks(q) and not damped:        # (elements that share an exponent: one joint step over them all)
                newton_block(self, q, w, levels)
            else:
                newton_element(self, q, w, levels)
            return eta
        if q.family in ("Normal", "Gamma", "Beta", "Bernoulli", "PolyaGamma", "Poisson", "Binomial",
                        "NegativeBinomial"):
            for s, e in q.natural.items():
                if (q.family, s) == ("Poisson", "lfact"):
                    continue        # (1, the prior's coefficient of −log x!: the finish needs only η[x])
                v = w.expr(e, levels, pinned)
                eta[s] = w.tmp("eta")
                el.post += [self._note(f"eta[{s}]", q.var), assign(Ref(eta[s]), v)]
        else:
            self._vector_eta(q, w, levels, pinned, eta, alloc, linear)
        if damped:
            self._damp(q, eta, el, at)
        self._finish(q, w, eta, at, el, alloc, entropy)
        return eta

    def _damp(self, q: QFactor, eta: dict[str, str], el: Block, at: list[str]) -> None:
        """η ← (1 − α) η_old + α η, and η kept for the next damped step (19.4.1)."""
        for s_, name in eta.items():
            old = self.names.natural(q.var, s_)
            ref = (name_ref(old, *at) if at else Ref(old)) if _eta_rank(s_, q.family) else \
                name_ref(old, *(at or ["0"]))
            alpha = name_ref(self.names.damping(), "0")
            el.post.append(let(name, f"(1.0 - {alpha.text}) * {ref.text} + {alpha.text} * {name}", alpha, ref, name))
            el.post.append(assign(dataclasses.replace(ref, whole=_eta_rank(s_, q.family)), ex(name, name)))

    def _finish(self, q: QFactor, w: Writer, eta: dict[str, str], at: list[str], el: Block, alloc: Block | None,
                entropy: bool) -> None:
        """The family's finish of one element: from η to q's parameters, moments and entropy (codegen.runtime)."""
        row = lambda arr: name_ref(arr, *at) if at else Ref(arr)  # noqa: E731     (q's row: an array of its own)
        one = lambda arr: name_ref(arr, *(at or ["0"]))  # noqa: E731              (one number)
        qn = lambda p: self.names.qparam(q.var, p)  # noqa: E731
        mn = lambda s: self.names.moment(q.var, s)  # noqa: E731
        h = one(self.names.entropy(q.var))
        fam = q.family
        e = {s_: Expr(name, frozenset({name})) for s_, name in eta.items()}
        finish = None
        if fam == "Normal":
            finish = Call("finish_normal", (e["x"], e["x2"]), (one(qn("mean")), one(qn("sd")), one(mn("x2")), h))
        elif fam == "Gamma":
            finish = Call("finish_gamma", (e["x"], e["logx"]),
                          (one(qn("shape")), one(qn("rate")), one(mn("x")), one(mn("logx")), h))
        elif fam == "Beta":
            finish = Call("finish_beta", (e["logx"], e["log1mx"]),
                          (one(qn("a")), one(qn("b")), one(mn("x")), one(mn("logx")), one(mn("log1mx")), h))
        elif fam == "Bernoulli":
            finish = Call("finish_bernoulli", (e["x"],), (one(qn("p")), h))
        elif fam == "PolyaGamma":
            finish = Call("finish_polya_gamma", (e["x"], e["base"]),
                          (one(qn("b")), one(qn("c")), one(mn("x")), one(mn("base")), h))
        elif fam == "Poisson":
            finish = Call("finish_poisson", (e["x"],), (one(qn("rate")), one(mn("lfact")), h))
        elif fam == "Binomial":
            finish = Call("finish_binomial", (e["x"], e["lchoose"]),
                          (one(qn("n")), one(qn("p")), one(mn("x")), one(mn("lchoose")), h))
        elif fam == "NegativeBinomial":
            finish = Call("finish_negative_binomial", (e["x"], e["lnb"]),
                          (one(qn("r")), one(qn("p")), one(mn("x")), one(mn("lnb")), h))
        elif fam == "Categorical" and self.blocked is not None and self.blocked.eta is not None:
            rows = (Expr("_b0:_b0 + _nb", frozenset({"_b0", "_nb"})),)     # (a Call: passes.block_size reads it)
            self.blocked.between.append(Call("finish_categorical_block", (
                Expr(self.blocked.eta, frozenset({self.blocked.eta})), Expr("_nb", frozenset({"_nb"})),
                Ref(qn("p"), rows), Ref(self.names.entropy(q.var), rows), Ref(self.names.log_normaliser(q.var), rows),
                Ref("_m"), Ref("_s"), Ref("_t"))))
        elif fam == "Categorical":
            finish = Call("finish_categorical", (e["onehot"], row(qn("p"))),
                          (h, one(self.names.log_normaliser(q.var))))
        elif fam == "Dirichlet" and not entropy:
            finish = Call("dirichlet_moments", (e["logp"], row(qn("alpha")), row(mn("logp")), row(mn("x"))))
        elif fam == "Dirichlet":
            finish = Call("finish_dirichlet", (e["logp"], row(qn("alpha")), row(mn("logp")), row(mn("x"))), (h,))
        elif fam == "MvNormal":
            self._finish_mvnormal(q, w, e, at, el, alloc)
            return
        elif fam == "Wishart":
            finish = Call("finish_wishart", (e["logdet"], e["X"], row(qn("scale")), row(mn("X"))),
                          (one(qn("df")), one(mn("logdet")), h))
        self._put_finish(q, finish, h, at, el)

    def _put_finish(self, q: QFactor, finish: Call | None, h: Ref, at: list[str], el: Block) -> None:
        """The finish of one element into its loop's body ``el`` (only where the entry is missing, for a latent
        of missing data), and a superposition's entropy scaled by its count."""
        if finish is not None and q.var in self.missing:
            # only a missing entry is a latent: an observed one keeps the point mass at the datum
            mask = self.names.constant("missing", q.var)
            el.post.append(Block(test=read(name_ref(mask, *(at or ["0"]))), post=[finish]))
        elif finish is not None:
            el.post.append(finish)
        if q.replicas is not None:
            # a superposition's allocation stands for y draws sharing this q: H[Multinomial(y, p)] relative to
            # its coefficient is y·H[q] (docs/derivation.md, section 9.1)
            y = self.names.variable(str(q.replicas.base if q.index else q.replicas))
            count = f"{y}[{', '.join(at)}]" if at else f"{y}[0]"
            el.post.append(assign(h, Expr(f"{count} * {h.name}[{', '.join(at or ['0'])}]",
                                          frozenset({y, h.name, *at}))))

    def _finish_mvnormal(self, q: QFactor, w: Writer, e: dict[str, Expr], at: list[str], el: Block,
                         alloc: Block | None) -> None:
        """A MvNormal's finish of one element (see _finish)."""
        row = lambda arr: name_ref(arr, *at) if at else Ref(arr)  # noqa: E731
        h = name_ref(self.names.entropy(q.var), *(at or ["0"]))
        mean, cov, xxt = row(self.names.qparam(q.var, "mean")), row(self.names.qparam(q.var, "cov")), \
            row(self.names.moment(q.var, "xxT"))
        if q.var in self.missing:
            # a row of data with missing entries: q of its missing block given the observed ones, in one call
            # that also leaves a complete row alone (the mask is per entry: families/mvnormal/finish.py)
            mask = self.names.constant("missing", q.var)
            el.post.append(Call("finish_mvnormal_missing", (e["x"], e["xxT"], read(name_ref(mask, *at)), mean, cov,
                                                            xxt), (h,)))
            return
        # Σ from η_xxᵀ, then μ = Σ η_x: two calls, so that a Σ the same for every element is computed once
        # (passes.hoist: factor analysis' local step)
        sigma, hs = w.tmp("cov"), w.tmp("hs")
        size = w.int_value(q.event[0].upper + 1)
        new = assign(Ref(sigma), Expr(f"np.empty(({size}, {size}))", self._dim_reads(q.event[:1])))
        alloc.post.insert(0, new) if alloc else el.post.append(new)
        el.post.append(Call("mvnormal_covariance", (e["xxT"], Ref(sigma)), (Ref(hs),)))
        el.post.append(Call("finish_mvnormal_mean", (e["x"], Expr(sigma, frozenset({sigma})),
                                                     Expr(hs, frozenset({hs})), mean, cov, xxt), (h,)))

    def _note(self, what: str, var: str) -> Note:
        """Provenance of the code that follows: ``what`` of the q of ``var``, and the model line that draws it."""
        return Note(f"{what} of q on model line {self.d.model.variables[var].span.line}")

    def _read_bases(self, q: QFactor) -> set:
        out = set()
        for e in q.natural.values():
            for node in sp.preorder_traversal(e):
                if isinstance(node, sp.Indexed):
                    out.add(node.base)
                elif isinstance(node, MomentSymbol):
                    out.add(node)
        return out

    def _vector_eta(self, q: QFactor, w: Writer, levels, pinned, eta, alloc: Block | None = None,
                    linear: bool = True) -> None:
        """η over the event axes of one element, into small local arrays (allocated in ``alloc``)."""
        el = levels[-1]
        axes_of = {"onehot": [q.extra], "logp": list(q.event), "x": list(q.event),
                   "xxT": list(q.event[:1]) + [q.extra], "X": list(q.event), "logdet": []}
        for s, e in q.natural.items():
            axes = axes_of[s]
            name = w.tmp("eta")
            eta[s] = name
            el.post.append(self._note(f"eta[{s}]", q.var))
            if not axes:
                el.post.append(assign(Ref(name), w.expr(e, levels, pinned, top=False)))
                continue
            shape = ", ".join(w.int_value(a.upper + 1) for a in axes)
            slot = Block()          # η's array, unless a blocked step's η is a column of the block's product
            (alloc or el).post.insert(0, slot) if alloc else el.post.append(slot)
            made = self._linear_eta(w, levels, pinned, name, axes, e) if linear and q.scope == "local" else None
            if made in (None, name):
                slot.post.append(assign(Ref(name), Expr(f"np.empty(({shape},))", self._dim_reads(axes))))
            if made is not None:
                eta[s] = made
                continue
            loops = w._loops([(a, 0, a.upper) for a in axes])
            v = w.expr(e, levels + loops, pinned)
            loops[-1].post.append(assign(name_ref(name, *(self.names.index(a) for a in axes)), v))
            el.post.append(loops[0])

    def _linear_eta(self, w: Writer, levels, pinned, name: str, axes: list, e: sp.Expr) -> str | None:
        """η[a] = Σ_j v_j · W_j[…, a]: v_j what varies from element to element (x[n, d], x[n, d] x[n, e]),
        W_j the rest, computed once per kernel with the event axes last.  The loop over a is then the
        innermost, over contiguous memory (it vectorises), and η is a sum of a few such sweeps instead
        of K separate sums with the coefficients recomputed for each element.  In a blocked local step
        (self.blocked) with one event axis, the features of a block's points are rows of Φ and η of the
        whole block is H = Φ W, one matrix product.  Returns the name of η (None, and nothing emitted,
        when e does not take this form)."""
        features = self._features(w, axes, e)
        if features is None:
            return None
        fn, el = levels[0], levels[-1]
        for a in axes:
            self.names.index(a)     # (the event axes' loop indices numbered before the features')
        bk = self.blocked if len(axes) == 1 else None
        if bk is None:
            zero = w._loops([(a, 0, a.upper) for a in axes])
            zero[-1].post.append(assign(name_ref(name, *(self.names.index(a) for a in axes)), Expr("0.0")))
            el.post.append(zero[0])
        else:
            # feature f of the block's point _b in Φ[_b, f], its weights in W[f, :] (f counted in the same
            # order in both); F counted first
            fn.pre.append(let("_F", "0"))
            fill = [let("_f", "0")]
            bk.features.post.append(let("_f", "0"))
            bk.widths.append("_F")
        for v, inside, coefs in features:
            span, full, weights = self._weights(w, fn, v, inside, coefs, axes)
            if bk is not None:
                self._block_feature(w, bk, levels, pinned, v, span, name_ref(weights, *full), axes, fill)
            else:
                self._feature_sweep(w, levels, pinned, name, v, span, name_ref(weights, *full), axes)
        if bk is None:
            return name
        # η of the block's points as the columns of Hᵀ = Wᵀ Φᵀ (K × B): its finish runs along the points
        size = w.int_value(axes[0].upper + 1)
        fn.pre += [let("_W", f"np.empty((_F, {size}))", "_F", size)] + fill
        bk.alloc += [let("_Phi", "np.zeros((_B, _F))", "_B", "_F"), let("_Ht", f"np.empty(({size}, _B))", size, "_B")]
        bk.alloc += [let(a, "np.empty(_B)", "_B") for a in ("_m", "_s", "_t")]
        bk.between.append(Call("np.dot", (Expr("_W.T", frozenset({"_W"})), Expr("_Phi.T", frozenset({"_Phi"})),
                                          Ref("_Ht"))))     # (a Call: passes.block_step reads the product)
        bk.eta = "_Ht"
        return "_Ht"

    def _features(self, w: Writer, axes: list, e: sp.Expr) -> list | None:
        """e as Σ_j v_j c_j: [(v_j, the summation limits it spans, its coefficients)] in feature_order (None when
        e is no such sum, or a v_j reads the event axes).  x[n, d] Σ_d … and x[n, d′] Σ_d′ … are one feature:
        terms are matched up to renaming their summation indices."""
        terms = monomials(centre(e, self.names.centring, self.d.syms.fresh), self.d.syms.fresh)
        if terms is None:
            return None
        groups: dict = {}      # canonical v -> [v, its summation limits, coefficients]
        for limits, factors in terms:
            v = sp.Mul(*(f for f in factors if w.varies(f)))
            c = sp.Mul(*(f for f in factors if not w.varies(f)))
            if set(axes) & v.free_symbols:
                return None
            inside = [lim for lim in limits if v.has(lim[0])]
            other = [lim for lim in limits if not v.has(lim[0])]
            c = sp.Sum(c, *other) if other else c
            for perm in itertools.permutations(inside):
                key = v.xreplace({lim[0]: sp.Idx(f"_c{j}", (lim[1], lim[2])) for j, lim in enumerate(perm)})
                if key in groups:
                    g = groups[key]
                    # (its own summation indices renamed first, so none captures a renamed free one)
                    g[2].append(renamed(c, self.d.syms.fresh).xreplace({a[0]: b[0] for a, b in zip(perm, g[1])}))
                    break
            else:
                key = v.xreplace({lim[0]: sp.Idx(f"_c{j}", (lim[1], lim[2])) for j, lim in enumerate(inside)})
                groups[key] = [v, inside, [c]]
        return sorted(groups.values(), key=lambda g: feature_order(g[0], g[1], self.names.rank))

    def _weights(self, w: Writer, fn: Block, v: sp.Expr, inside: list, coefs: list, axes: list):
        """W_j, the weights of the feature v, filled once per kernel (the event axes last): (the loops v spans,
        the index names of W_j, its name).  A v symmetric in two indices spans only e ≥ d, with
        W[d, e] + W[e, d] off the diagonal (half the work)."""
        coef = sp.Add(*coefs)
        span = list(inside)
        pair = _symmetric_pair(v, inside)
        if pair is not None:
            (d, lo, hi), (e, _, _) = pair
            coef = coef + (1 - sp.KroneckerDelta(d, e)) * coef.xreplace({d: e, e: d})
            span = [(i, d if i == e else l, h) for i, l, h in inside]
        weights = w.tmp("w")
        self.weights.append(weights)
        full = [(i, l if not isinstance(l, sp.Idx) else 0, h) for i, l, h in span] + [(a, 0, a.upper) for a in axes]
        with self.names.watch() as sizes:
            shape = ", ".join(w.int_value(sp.sympify(h) + 1) for _, _, h in full)
        fn.pre.append(assign(Ref(weights), Expr(f"np.zeros(({shape},))", frozenset(sizes))))
        hl = w._loops(span + [(a, 0, a.upper) for a in axes])
        value = w.expr(coef, [fn] + hl, 0)      # (an Assign: passes.linear_eta reads what the weights read)
        where = [self.names.index(i) for i, _, _ in full]
        hl[-1].post.append(assign(name_ref(weights, *where), value))
        fn.pre.append(hl[0])
        return span, where, weights

    def _feature_sweep(self, w: Writer, levels, pinned, name: str, v: sp.Expr, span: list, weight: Ref,
                       axes: list) -> None:
        """η[a] += v · W[…, a] for one element: v once per point of its span, then a sweep over a."""
        el = levels[-1]
        vl = w._loops(span)
        host = vl[-1] if vl else el
        feature = w.tmp("v")
        if v != 1:
            host.post.append(assign(Ref(feature), w.expr(v, levels + vl, pinned, top=False)))
        al = w._loops([(a, 0, a.upper) for a in axes])
        term = Expr(f"{feature} * {weight.text}", weight.reads | {feature, weight.name}) if v != 1 else \
            Expr(weight.text, weight.reads | {weight.name})
        al[-1].post.append(accumulate(name_ref(name, *(self.names.index(a) for a in axes)), term))
        host.post.append(al[0])
        if vl:
            el.post.append(vl[0])

    def _block_feature(self, w: Writer, bk: Blocked, levels, pinned, v: sp.Expr, span: list, weight: Ref,
                       axes: list, fill: list) -> None:
        """The feature v in a blocked local step: its columns of Φ (one per point of its span, for each point of
        the block) and the same rows of W (``fill``), in the same order."""
        at = [self.names.index(a) for a in axes]
        bk.phi_keys.append(feature_key(v, span))
        levels[0].pre.append(count_loops(w, span, "_F"))
        wl = w._loops(span)
        al = w._loops([(a, 0, a.upper) for a in axes])
        al[-1].post.append(assign(name_ref("_W", "_f", *at), read(weight)))
        (wl[-1].post if wl else fill).extend([al[0], add("_f", "1", "_f")])
        if wl:
            fill.append(wl[0])
        feats = [bk.features] + w._loops(span)
        value = Expr("1.0") if v == 1 else w.expr(v, levels[:-1] + feats, pinned, top=False)
        feats[-1].post += [assign(name_ref("_Phi", "_b", "_f"), value), add("_f", "1", "_f")]
        if len(feats) > 1:
            bk.features.post.append(feats[1])

    def _chunk_part(self, i, size: str, chunks: str) -> Block:
        """The loop over chunk _ch's share of index i: fixed bounds, whatever the threads."""
        return Block(part_range(self.names.index(i), size, chunks), i)

    def _dim_reads(self, axes: list) -> frozenset:
        """The names the sizes of ``axes`` read (a dim the data determine: its argument)."""
        return frozenset(self.dims[a.upper + 1] for a in axes if a.upper + 1 in self.dims)

    def point_kernel(self, pu) -> None:
        """The exact coordinate update of a param or MAP latent (see ppvi.derive.mstep)."""
        self.names.begin()
        v = self.d.model.variables[pu.var]
        base = self.d.syms.var(pu.var, len(v.shape))
        w = Writer(self.names, self.dims, frozenset({base}), big=self.big, stats=self.stats)
        fn = Block()
        target = self.names.variable(pu.var)
        reads_self = any((isinstance(n, sp.Indexed) and n.base == base and tuple(n.indices) != tuple(pu.index))
                         for n in sp.preorder_traversal(pu.value))
        at = [self.names.index(i) for i in pu.index]
        el = name_ref(target, *(at or ["0"]))
        name = self.names.kernel("update", pu.var)
        if pu.method == "feature_sign":
            self._feature_sign(pu, w, fn, target)
        elif pu.method in ("simplex", "unit_columns"):
            self._normalised(pu, w, fn, el)
        else:
            self._coordinates(pu, w, fn, el, at, base, reads_self)
        self._function(name, fn, returns=None, role="point", latent=pu.var)
        self.points[pu.var] = PointPlan(self._spec(name), pu.kind, pu.method, reads_self)

    def _feature_sign(self, pu, w: Writer, fn: Block, target: str) -> list[Block]:
        """Each example's L1 problem solved exactly by feature-sign search (runtime.feature_sign): the Gram
        matrix and the weights once, the right-hand side per example; over the data plate in fixed chunks
        (prange), as a latent's update, so that passes.fuse can add the statistics' share.  Returns the loops
        over the examples."""
        *outer, coord = pu.index
        j = pu.extra["gram_index"]
        m = w.int_value(coord.upper + 1)
        fn.post.append(let("_A", f"np.empty(({m}, {m}))", m))
        la = w._loops([(coord, 0, coord.upper), (j, 0, j.upper)])
        va = w.expr(pu.extra["gram"], [fn] + la, 0, top=False)
        la[-1].post.append(assign(name_ref("_A", self.names.index(coord), self.names.index(j)), va))
        fn.post.append(la[0])
        fn.post.append(let("_lam", f"np.empty({m})", m))
        ll = w._loops([(coord, 0, coord.upper)])
        ll[-1].post.append(assign(name_ref("_lam", self.names.index(coord)),
                                  w.expr(pu.extra["weight"], [fn] + ll, 0, top=False)))
        fn.post.append(ll[0])
        levels = [fn]
        chunk = None
        for n, i in enumerate(outer):
            size = w.int_value(i.upper + 1)
            if n == 0 and i.upper + 1 in self.big:
                chunk = Block(Range("_ch", str(CHUNKS), parallel=True, reads=frozenset({str(CHUNKS)})), CHUNK)
                b = self._chunk_part(i, size, str(CHUNKS))
                chunk.post.append(b)
                levels[-1].post.append(chunk)
            else:
                b = Block(Range(self.names.index(i), size, parallel=n == 0, reads=frozenset({size})), i)
                levels[-1].post.append(b)
            levels.append(b)
        host = levels[-1]
        # (not _c: the reduce's counter)
        (chunk.pre if chunk is not None else host.post).append(let("_rhs", f"np.empty({m})", m))
        lc = w._loops([(coord, 0, coord.upper)])
        vc = w.expr(pu.value, levels + lc, len(levels) - 1, top=False)
        lc[-1].post.append(assign(name_ref("_rhs", self.names.index(coord)), vc))
        host.post.append(lc[0])
        row = name_ref(target, *(self.names.index(i) for i in outer))
        host.post.append(Call("feature_sign", (ex("_A", "_A"), ex("_rhs", "_rhs"), ex("_lam", "_lam"), row)))
        return levels

    def _normalised(self, pu, w: Writer, fn: Block, el: Ref) -> None:
        """A param kept on the simplex (its last axis) or with unit columns (its first): the maximiser along
        that axis, normalised, written where it is finite."""
        # the normalised axis: the last (simplex) or the first (columns); loop the others outside
        axis = len(pu.index) - 1 if pu.method == "simplex" else 0
        outer = [i for n, i in enumerate(pu.index) if n != axis]
        levels = [fn]
        for i in outer:
            size = w.int_value(i.upper + 1)
            b = Block(Range(self.names.index(i), size, reads=frozenset({size})), i)
            levels[-1].post.append(b)
            levels.append(b)
        host = levels[-1]
        ax = pu.index[axis]
        tmp, size = w.tmp("c"), w.int_value(ax.upper + 1)
        host.post.append(let(tmp, f"np.empty(({size},))", size))
        loops = w._loops([(ax, 0, ax.upper)])
        val = w.expr(pu.value, levels + loops, len(levels) - 1)
        loops[-1].post.append(assign(name_ref(tmp, self.names.index(ax)), val))
        host.post.append(loops[0])
        if pu.method == "simplex":
            host.post += [let("_z", f"{tmp}.sum()", tmp),
                          Block(test=ex(f"_z > 0.0 and np.all({tmp} >= 0.0)", "_z", tmp))]
        else:
            host.post += [let("_z", f"math.sqrt(({tmp} * {tmp}).sum())", tmp),
                          Block(test=ex("_z > 0.0 and math.isfinite(_z)", "_z"))]
        host.post[-1].post.append(Assign(Ref(tmp), ex("_z", "_z"), "/="))
        put = Block(Range(self.names.index(ax), size, reads=frozenset({size})), ax)
        at = name_ref(tmp, self.names.index(ax))
        put.post.append(Block(test=ex(f"math.isfinite({at.text}) and _z > 0.0", at, "_z"),
                              post=[assign(el, read(at))]))
        host.post.append(put)

    def _coordinates(self, pu, w: Writer, fn: Block, el: Ref, at: list[str], base, reads_self: bool) -> None:
        """The closed-form maximiser of each entry (a Newton step, a soft threshold, or a gradient for the line
        search), in coordinate passes until nothing moves where the entries of one example read each other."""
        levels = [fn]
        first_free = bool(pu.index) and not any(
            isinstance(n, sp.Indexed) and n.base == base and n.indices[0] != pu.index[0]
            for n in sp.preorder_traversal(pu.value))
        parallel = first_free and pu.method != "gradient" and (not reads_self or len(pu.index) > 1) \
            and pu.index[0].upper + 1 in self.big          # threads only over the data plate
        # A MAP latent coupled within an example is solved exactly per example: coordinate passes
        # over the last axis until nothing moves ("exact on each subproblem").
        passes = pu.kind == "point" and reads_self and len(pu.index) >= 1 and pu.method != "gradient"
        for n, i in enumerate(pu.index):
            size = w.int_value(i.upper + 1)
            b = Block(Range(self.names.index(i), size, parallel=n == 0 and parallel, reads=frozenset({size})), i)
            if passes and n == len(pu.index) - 1:
                # a level of its own: sums that do not read h are computed before it, once
                rep = Block(Range("_pass", "10000", reads=frozenset()), REPEAT)
                rep.post += [let("_delta", "0.0"), let("_size", "0.0"), b,
                             Block(test=ex("_delta <= 1e-14 * (1.0 + _size)", "_delta", "_size"), post=[Break()])]
                levels[-1].post.append(rep)
            else:
                levels[-1].post.append(b)
            levels.append(b)
        host = levels[-1]
        pinned = len(levels) - 1
        if passes:
            host.post.append(let("_old", el.text, el))
        self._coordinate(pu, w, levels, pinned, el, at, passes)

    def _coordinate(self, pu, w: Writer, levels: list[Block], pinned: int, el: Ref, at: list[str],
                    passes: bool) -> None:
        """One entry's maximiser, in the innermost of ``levels`` (see _coordinates); ``passes``: it also adds its
        change to the pass's _delta and _size."""
        host = levels[-1]
        val = w.expr(pu.value, levels, pinned)
        if pu.method == "gradient":
            host.post.append(assign(name_ref(self.names.gradient(pu.var), *(at or ["0"])), val))
        elif pu.method == "soft_threshold":
            a = w.expr(pu.extra["curvature"], levels, pinned, top=False)
            lam = w.expr(pu.extra["weight"], levels, pinned, top=False)
            c = w.expr(pu.extra["center"], levels, pinned, top=False)
            shrunk = ex("_c + (_r - _t if _r > _t else (_r + _t if _r < -_t else 0.0))", "_c", "_r", "_t")
            host.post += [assign(Ref("_m"), val), assign(Ref("_a"), a),
                          Block(test=ex("_a > 0.0 and math.isfinite(_m)", "_a", "_m"),
                                post=[assign(Ref("_c"), c), let("_t", f"{lam.text} / _a", lam, "_a"),
                                      let("_r", "_m - _c", "_m", "_c"), assign(el, shrunk)])]
        else:
            ok = ex("math.isfinite(_m)" + (" and _m > 0.0" if pu.support == "positive" else ""), "_m")
            if pu.method == "newton":
                curvature = w.expr(pu.extra["curvature"], levels, pinned, top=False)
                ok = ex(f"{ok.text} and ({curvature.text}) < 0.0", ok, curvature)
            # (closed form: the unique root is infinite (for a positive entry, also ≤ 0: a statistic that vanishes,
            # rounded below 0): the objective grows without bound along this entry.  Written as +inf for the engine
            # to report (Program.update); NaN (0/0: no data on the entry) keeps the entry.)
            infinite = Block(test=ex("not math.isnan(_m)", "_m"), post=[assign(el, Expr("math.inf"))]) \
                if pu.method == "closed_form" else None
            host.post += [assign(Ref("_m"), val), Block(test=ok, post=[assign(el, ex("_m", "_m"))], orelse=infinite)]
        if passes:      # (never with a gradient: see _coordinates)
            host.post += [let("_delta", f"max(_delta, abs({el.text} - _old))", "_delta", el, "_old"),
                          let("_size", f"max(_size, abs({el.text}))", "_size", el)]

    def elbo_kernel(self, name: str = "expected_log_joint", without: str | None = None) -> list[str]:
        """Σ_f E_q[log f], term by term (returns their labels); ``without`` a latent: its moments set to 0 (the
        fast ELBO, see _last_local: a candidate that passes.fast_elbo keeps or drops)."""
        self.names.begin()
        w = Writer(self.names, self.dims, big=self.big, stats=self.stats)
        fn = Block()
        labels = []
        fn.post.append(let("_terms", "np.zeros(%d)" % len(self.d.model.factors)))
        zero = self.d.syms.moments.get((without, "onehot")) if without else None
        for n, (label, e) in enumerate(t for t in self.d.elbo_terms() if t[0].startswith("E[")):
            if zero is not None:
                e = collapse(e.replace(lambda x: isinstance(x, sp.Indexed) and x.base == zero, lambda x: sp.S.Zero))
            v = w.expr(e, [fn], 0)
            fn.post += [Note(f"E[log p] of the factor on model line {self.d.model.factors[n].span.line}"),
                        assign(name_ref("_terms", str(n)), v)]
            labels.append(label)
        self._function(name, fn, returns="_terms", role="elbo", latent=without)
        return labels

    def _last_local(self) -> str | None:
        """The latent updated last in a sweep, when the ELBO can be read off its update.

        𝓛 is linear in the moments r of a Categorical latent that does not read its own moments, with
        coefficients η = ∂𝓛/∂r, so 𝓛 + H[q] = 𝓛|_{r=0} + Σ_n log Σ_k e^{η_nk} right after its update:
        the data-plate terms need not be evaluated a second time.
        """
        locals_ = [v for v, q in self.d.q.items() if q.scope == "local"]
        if not locals_ or self.d.point:
            return None
        last = self.d.q[locals_[-1]]
        if last.family != "Categorical" or self.latents[last.var].sequential or last.var in self.missing \
                or last.replicas is not None:       # (its share is y·log Σ e^η: not the log normaliser)
            return None
        return last.var

    def statistics_kernel(self) -> None:
        """The local step's statistics (see codegen.statistics), and which updates make them stale."""
        if not self.stats.found:
            return
        self.names.begin()
        self._function("statistics", self.stats.kernel(), returns=None, role="statistics")
        args = set(self._args("statistics"))
        for var, info in self.latents.items():
            self.latents[var] = dataclasses.replace(info, feeds=bool(args & (set(info.state) | set(info.aliases))))
        for var, info in self.points.items():
            self.points[var] = dataclasses.replace(info, feeds=self.names.variable(var) in args)
        self.stats_plan = StatsPlan(self._spec("statistics"),
                                    {k: tuple(v) for k, v in self.stats.shapes().items()})

    def local_steps(self) -> None:
        """What passes.fuse may make the local step of: the statistics' Share of every latent whose update runs
        over the data plate in parallel chunks, and for a Categorical also its blocked step (passes.block_step
        keeps it or not).  (Written with a group block too: passes.group_block keeps the block, which fills the
        statistics it reads itself, or these.)"""
        for var, info in list(self.latents.items()):
            q = self.d.q.get(var)
            if q is None or info.chain is not None or not info.feeds or q.scope != "local" or not self._chunked(q):
                continue
            if q.family == "Categorical" and len(q.index) == 1 and var not in self.missing:
                self.update_kernel(q, blocked=True)
            self.shares.append(self._share(var, q.index[0]))
        for var, info in self.points.items():
            pu = self.d.points[var]
            if info.feeds and pu.kind == "point" and pu.method == "feature_sign" and len(pu.index) == 2 and \
                    pu.index[0].upper + 1 in self.big:
                self.shares.append(self._share(var, pu.index[0]))

    def _chunked(self, q: QFactor) -> bool:
        """q's update runs over the data plate in parallel chunks (see update_kernel)."""
        return bool(q.index) and q.index[0].upper + 1 in self.big and _parallel_axis(q, _self_bases(self.d, q.var))

    def _share(self, var: str, n: sp.Idx) -> Share:
        """The statistics' share of the element n of ``var``'s update (ir.Share), for passes.fuse."""
        self.names.begin()
        w = Writer(self.names, self.dims)
        head, point, tail = Block(), Block(), Block()
        head.pre.append(self.stats.chunks(w))
        self.stats.map(head, [head, point], n)
        self.stats.reduce(tail)
        return Share(var, head.lower(), point.lower(), tail.lower(), frozenset(self.names.reads),
                     self._doc("local_step", var))

    def _groupings(self) -> list[tuple[str, str, str]]:
        """Every (g, z, by), in model order, where a global latent g[d] may be a *group* latent of the only
        local latent z[t]: z reads g only at g[by[t], …] (by: index data over the data plate), and the
        statistics g reads are scattered by the same by[t] into its own row d (Σ_t [d = doc[t]] r[t, k]).
        If g also reads z through nothing else (passes.group_block reads that off the kernels), q(g[d]) and
        the q(z[t]) of the t with by[t] = d form a block that no other group reads: it can be iterated to
        convergence on its own, in cache, one group per thread (LDA's per-document E-step)."""
        lat = self.latents
        locals_ = [v for v in lat if lat[v].scope == "local"]
        if self.d.point or len(locals_) != 1 or locals_[0] not in self.d.q or lat[locals_[0]].chain is not None:
            # (not a chain's block)
            return []
        z = self.d.q[locals_[0]]
        if len(z.index) != 1 or z.index[0].upper + 1 not in self.big or \
                not _parallel_axis(z, _self_bases(self.d, z.var)):
            return []       # (a member is one element: z[t], not z[t, j])
        t = z.index[0]
        keys: dict[str, set] = {}
        for e in z.natural.values():
            for node in sp.preorder_traversal(e):
                if isinstance(node, sp.Indexed) and isinstance(node.base, MomentBase) and node.base.var != z.var:
                    first = node.indices[0]
                    by = str(first.base.label) if isinstance(first, sp.Indexed) and first.indices == (t,) else None
                    keys.setdefault(node.base.var, set()).add(by if by in self.stats.ranges else None)
        out = []
        for var, by in sorted(keys.items(), key=lambda item: self.names.rank[item[0]]):   # (model order)
            g = self.d.q.get(var)
            if g is None or len(by) != 1 or None in by or g.scope != "global" or len(g.index) != 1:
                continue
            by = next(iter(by))
            if str(g.index[0].upper + 1) != str(self.stats.ranges[by]) or \
                    not _parallel_axis(g, _self_bases(self.d, g.var)):
                continue
            reads = self.stat_reads[var]
            canon = self.stats.plate_index()
            # every statistic g reads is scattered by by[t] along its first axis, read at g's own row d
            if reads and all(s.scatter is not None and s.scatter[1] == s.axes[0] and _reads(s.scatter[2], by, canon)
                             and axes[0] == g.index[0] for s, axes in reads):
                out.append((var, z.var, by))
        return out

    def block_kernel(self, var: str, local: str, by: str) -> None:
        """The group block: for each group d (prange), from the group's rows of the statistics q(g[d]) reads
        (Σ over its members t, by[t] = d; the statistics pass runs first if they are stale), passes of
            q(g[d]) from the rows,
            q(z[t]) of every member, adding its share to the rows anew,
        until g[d]'s η changes by less than BLOCK_TOL of its size (at most BLOCK_PASSES).  Each step is an
        exact coordinate update (19.44 applied to one block of the sweep), so the ELBO still never
        decreases; members are found through ``c_order__<by>`` (t sorted by group) and ``c_start__<by>``.

        Where z's η splits as a + b (_factored), the block with the members' softmax factored is written too,
        first (ir.Factored, its names numbered as they always were): passes.factored_softmax puts it in the
        plain block's place where the rows are counts."""
        g, z = self.d.q[var], self.d.q[local]
        parts = self._factored(z, _self_bases(self.d, var), by, g.index[0])
        if parts is not None:
            kernel, rows = self._block(var, local, by, parts)
            self.factored.append(Factored(var, kernel, rows, self.names.moment(local, "onehot"),
                                          str(z.index[0].label)))
        kernel, _ = self._block(var, local, by, None)
        self.kernels.append(kernel)
        stats = {s.name: s for s, _ in self.stat_reads[var]}
        self.blocks.append(BlockPlan(self._spec("local_block"), (var, local), f"{var}, {local}", by,
                                     _dim_name(g.index[0]), tuple(stats)))

    def _block(self, var: str, local: str, by: str,
               parts: tuple[sp.Expr, sp.Expr] | None) -> tuple[Kernel, tuple[str, ...]]:
        """The group block's kernel (see block_kernel), its members' softmax factored by ``parts`` (a, b) or
        not (None); and the rows its members refill."""
        self.names.begin()
        g, z = self.d.q[var], self.d.q[local]
        d = g.index[0]
        gb, zb = _self_bases(self.d, var), _self_bases(self.d, local)
        w = Writer(self.names, self.dims, gb, big=self.big, element=frozenset(g.index), stats=self.stats)
        at = self.names.index(d)
        rep = Block(Range("_pass", str(BLOCK_PASSES), reads=frozenset()), REPEAT)
        rep.pre += [let("_delta", "0.0"), let("_size", "0.0")]
        size = w.int_value(d.upper + 1)
        group = Block(Range(at, size, parallel=True, reads=frozenset({size})), d)
        gl = GroupBlock(Block(), Block(), group, Block(), rep,
                        at, self.names.constant("start", by), self.names.constant("order", by), z.index[0])
        gl.fn.post += [gl.head, gl.group]
        gl.group.post += [gl.before, rep]      # (the rows on entry: the statistics pass, run first if stale)
        stats = list({s.name: s for s, _ in self.stat_reads[var]}.values())     # what q(g) reads
        changing = [s for s in stats if self._row_changes(s, zb)]
        # (a Dirichlet's entropy, lgamma per entry, only once the passes are over)
        eta = self._element(g, w, [gl.fn, gl.group, rep], 2, gl.group, entropy=False)
        self._until_settled(gl, eta, g.family)
        # Each member's q, and at once its share of the rows for the next pass (so on leaving, the
        # rows agree with the members' final q).
        wz = Writer(self.names, self.dims, zb | gb, big=self.big, element=frozenset(z.index), stats=self.stats)
        wz._tmp = w._tmp         # one kernel: temporaries numbered on from g's
        if parts is None:
            each = gl.members(self.names)
            self._element(z, wz, [gl.fn, gl.group, rep, each], 3, gl.group, linear=False)
            self._fill_rows(gl, w, changing, local, each)
            rep.post += [each, Block(test=ex(f"_delta <= {BLOCK_TOL!r} * _size", "_delta", "_size"), post=[Break()])]
        else:
            last = gl.members(self.names, numbered=True)       # the members' exact q, in the last pass
            finish = Block()
            last.post.append(finish)
            self._fill_rows(gl, w, changing, local, last)
            self._factored_members(z, wz, parts, gl, last, finish, [self.names.touch(s.name) for s in changing])
        if g.family == "Dirichlet":
            gl.group.post.append(Call("dirichlet_entropy", (read(name_ref(self.names.qparam(var, "alpha"), at)),
                                                            read(name_ref(self.names.moment(var, "logp"), at))),
                                      (name_ref(self.names.entropy(var), at),)))
        kernel = self._kernel("local_block", gl.fn, returns=None, role="block", latent=var, contract=True)
        return kernel, tuple(s.name for s in changing)

    @staticmethod
    def _row_changes(s, zb: frozenset) -> bool:
        """Whether a row of the group block reads the members' q (Σ [d = g[t]] y[t]² is the same on every pass)."""
        return any(isinstance(n, sp.Indexed) and n.base in zb for n in sp.preorder_traversal(s.expr))

    def _row_counts(self, s, local: str) -> bool:
        """Whether a row is the counts Σ_{t in d} r[t, k] (the member's whole row at once: add_to)."""
        onehot = self.d.syms.moments.get((local, "onehot"))
        summand = sp.Mul(*(f for f in sp.Mul.make_args(s.expr.function) if f != s.scatter[0]))
        return onehot is not None and len(s.axes) == 2 and summand == onehot[self.stats.plate_index(), s.axes[1]]

    def _fill_rows(self, gl: GroupBlock, w: Writer, changing: list, local: str, each: Block) -> None:
        """Zero the group's rows that read the members (in the passes, ``gl.rep``), then add each member's share
        inside ``each``."""
        general = []
        for s in changing:
            others = [(i, 0, i.upper) for i in s.axes[1:]]
            zero = w._loops(others)
            where = [gl.at] + [self.names.index(i) for i, _, _ in others]
            (zero[-1].post if zero else gl.rep.post).append(assign(name_ref(self.names.touch(s.name), *where),
                                                                   Expr("0.0")))
            if zero:
                gl.rep.post.append(zero[0])
            if not self._row_counts(s, local):
                general.append(s)
            else:       # (a Call, so that passes.factored_softmax reads that the row is counts)
                p, t = self.names.moment(local, "onehot"), self.names.index(gl.t)
                each.post.append(Call("add_to", (name_ref(self.names.touch(s.name), gl.at),
                                                 Expr(f"{p}[{t}]", frozenset({p, t})))))
        if general:
            self.stats.map(gl.fn, [gl.fn, gl.group, gl.rep, each], gl.t, only=general, direct=True)

    @staticmethod
    def _until_settled(gl: GroupBlock, eta: dict, family: str) -> None:
        """The passes end when the group latent's η moved by less than BLOCK_TOL of its size: each pass adds
        |η − η_prev| and |η| up (η_prev kept from the last pass, set before the first)."""
        for s_, name in eta.items():
            prev = f"_prev_{name[1:]}"
            if _eta_rank(s_, family):
                gl.before.post.append(let(prev, f"np.full({name}.size, np.inf)", name))
                each = Block(Range("_i, _e", "", over=ex(f"enumerate({name}.ravel())", name), reads=frozenset({name})))
                each.post += [add("_delta", f"abs(_e - {prev}[_i])", "_e", prev, "_i"), add("_size", "abs(_e)", "_e"),
                              assign(name_ref(prev, "_i"), ex("_e", "_e"))]
                gl.rep.post.append(each)
            else:
                gl.before.post.append(let(prev, "np.inf"))
                gl.rep.post += [add("_delta", f"abs({name} - {prev})", name, prev), add("_size", f"abs({name})", name),
                                let(prev, name, name)]

    def _factored_members(self, z: QFactor, wz: Writer, parts: tuple[sp.Expr, sp.Expr], gl: GroupBlock,
                          last: Block, finish: Block, rows: list[str]) -> None:
        """The members' passes when q(z) = softmax(a + b) (see _factored) and the rows that change are all
        counts: e^(b − max b) once per group and member (or once per value of the data b reads: _table),
        e^(a − max a) once per pass; no exp per member and pass.

        A pass whose g update moved η by less than BLOCK_TOL (or the last allowed) is the last: its members
        (``last``, which already refills the rows) get their exact q, H and log Σ e^η (exp_product_finish, in
        ``finish``, its first lines).  Earlier passes only need the counts, and form no p: Σ_t p_t = e^a ∘
        Σ_t e^b_t / (e^a · e^b_t), one dot product and one axpy per member (add_shares); a member whose product
        underflows takes the log-space route (finish_categorical)."""
        a, b = parts
        t, k = z.index[0], z.extra
        fn, group, rep, at = gl.fn, gl.group, gl.rep, gl.at
        ti, kn, ks = self.names.index(t), self.names.index(k), wz.int_value(k.upper + 1)
        fixed = gl.members(self.names, numbered=True)
        kl = wz._loops([(k, 0, k.upper)])
        table = self._table(b, t)
        row = lambda arr, *at: read(name_ref(arr, *at))  # noqa: E731   (an element, read)
        if table is None:
            kl[-1].post.append(assign(name_ref("_bb", "_j", kn), wz.expr(b, [fn, group, fixed] + kl, 2)))
            fixed.post += [kl[0], Call("exp_factor", (row("_bb", "_j"), name_ref("_eb", "_j")),
                                       (name_ref("_mb", "_j"),))]
        else:
            # b = f(word[t]): its factor once per value of the data (V of them), not once per member (T)
            u, v, bv = table
            vn, size = self.names.index(v), wz.int_value(v.upper + 1)
            tab = Block(Range(vn, size, parallel=True, reads=frozenset({size})), v)
            tl = wz._loops([(k, 0, k.upper)])
            tl[-1].post.append(assign(name_ref("_bt", vn, kn), wz.expr(bv, [fn, tab] + tl, 1)))
            tab.post += [tl[0], Call("exp_factor", (row("_bt", vn), name_ref("_et", vn)), (name_ref("_mt", vn),))]
            gl.head.post += [let(x, f"np.empty(({size}, {ks}))", size, ks) for x in ("_bt", "_et")] + \
                [let("_mt", f"np.empty({size})", size), tab]
            with self.names.watch() as seen:
                value = wz.index_value(u, [fn, group, fixed], 2)
            fixed.pre.append(let("_r", value, *seen))
            kl[-1].post += [assign(name_ref("_bb", "_j", kn), row("_bt", "_r", kn)),
                            assign(name_ref("_eb", "_j", kn), row("_et", "_r", kn))]
            fixed.post += [kl[0], assign(name_ref("_mb", "_j"), row("_mt", "_r"))]
        nm = ex(f"{gl.start}[{at} + 1] - {gl.start}[{at}]", gl.start, at)
        eta = wz.tmp("eta")
        gl.before.post += [let(x, f"np.empty(({nm.text}, {ks}))", nm, ks) for x in ("_bb", "_eb")] + \
            [let("_mb", f"np.empty({nm.text})", nm)] + [let(x, f"np.empty({ks})", ks) for x in ("_aa", "_ea", eta)] + \
            [fixed]
        kl = wz._loops([(k, 0, k.upper)])
        kl[-1].post.append(assign(name_ref("_aa", kn), wz.expr(a, [fn, group, rep] + kl, 2)))
        rep.post += [kl[0], Call("exp_factor", (ex("_aa", "_aa"), Ref("_ea")), (Ref("_ma"),))]
        p = name_ref(self.names.qparam(z.var, "p"), ti)
        h, lse = name_ref(self.names.entropy(z.var), ti), name_ref(self.names.log_normaliser(z.var), ti)
        finish.post.append(Call("exp_product_finish", (ex("_ea", "_ea"), row("_eb", "_j"), ex("_ma", "_ma"),
                                                       row("_mb", "_j"), ex("_aa", "_aa"), row("_bb", "_j"), Ref(eta), p),
                                (h, lse)))
        rep.post.append(Block(test=ex(f"_delta <= {BLOCK_TOL!r} * _size or _pass == {BLOCK_PASSES - 1}",
                                      "_delta", "_size", "_pass"), post=[last, Break()]))
        gl.before.post += [let("_acc", f"np.empty({ks})", ks), let("_sb", f"np.empty({nm.text})", nm)]
        self._count_members(wz, gl, k, eta, (p, h, lse), rows)

    def _count_members(self, wz: Writer, gl: GroupBlock, k: sp.Idx, eta: str, q: tuple[Ref, Ref, Ref],
                       rows: list[str]) -> None:
        """A pass before the last of _factored_members: the members' counts Σ_t p_t added to the rows as
        e^a ∘ Σ_t e^b_t / (e^a · e^b_t) (add_shares, add_product); a member whose product underflows by
        finish_categorical (its q: ``q``, its p, H and log Σ e^η)."""
        (p, h, lse), kn, at = q, self.names.index(k), gl.at
        each = gl.members(self.names, numbered=True)
        zero = wz._loops([(k, 0, k.upper)])
        zero[-1].post.append(assign(name_ref("_acc", kn), Expr("0.0")))
        gl.rep.post.append(zero[0])
        eta_loop = wz._loops([(k, 0, k.upper)])
        eta_loop[-1].post.append(assign(name_ref(eta, kn), ex(f"_aa[{kn}] + _bb[_j, {kn}]", "_aa", kn, "_bb", "_j")))
        each.post.append(Block(test=ex("not _sb[_j] >= 1e-20", "_sb", "_j"), post=[
            eta_loop[0], Call("finish_categorical", (ex(eta, eta), p), (h, lse))] +
            [Call("add_to", (name_ref(r, at), read(p))) for r in rows]))
        # (the test acts: add_shares fills _acc and _sb)
        gl.rep.post.append(Block(test=ex("add_shares(_ea, _eb, _acc, _sb)", "_ea", "_eb", "_acc", "_sb"), post=[each]))
        gl.rep.post += [Call("add_product", (name_ref(r, at), ex("_ea", "_ea"), ex("_acc", "_acc"))) for r in rows]

    def _table(self, b: sp.Expr, t: sp.Idx) -> tuple[sp.Expr, sp.Idx, sp.Expr] | None:
        """(u, v, b with u replaced by v) when b reads the member t only through u = data[t], one value of
        index data (LDA's word[t]): b then takes one of range(data) values, v ranging over them."""
        uses = {n for n in sp.preorder_traversal(b) if isinstance(n, sp.Indexed) and n.indices == (t,)
                and str(n.base.label) in self.stats.ranges}
        if len(uses) != 1:
            return None
        u = next(iter(uses))
        v = self.d.syms.fresh("w", self.stats.ranges[str(u.base.label)])
        bv = b.xreplace({u: v})
        return None if t in bv.free_symbols else (u, v, bv)

    def _factored(self, z: QFactor, gb: frozenset, by: str, d: sp.Idx) -> tuple[sp.Expr, sp.Expr] | None:
        """z's η (Categorical) as a + b: a the terms that read the group latent, with by[t] replaced by the
        group d (so a is one vector per group), b the rest; None when z is not Categorical or a still
        depends on the member t."""
        e = z.natural.get("onehot") if z.family == "Categorical" else None
        if e is None:
            return None
        t = z.index[0]
        reads = [any(isinstance(n, sp.Indexed) and n.base in gb for n in sp.preorder_traversal(term))
                 for term in sp.Add.make_args(e)]
        a = sp.Add(*(term for term, r in zip(sp.Add.make_args(e), reads) if r))
        b = sp.Add(*(term for term, r in zip(sp.Add.make_args(e), reads) if not r))
        a = a.replace(lambda n: isinstance(n, sp.Indexed) and _reads(n, by, t), lambda n: d)
        if a == 0 or t in a.free_symbols:
            return None
        return a, b

    # ------------------------------------------------------------- module
    def _function(self, name: str, body: Block, returns: str | None, role: str,
                  latent: str | None = None, contract: bool = False) -> None:
        """The kernel ``name`` (see _kernel), one of the module's."""
        self.kernels.append(self._kernel(name, body, returns, role, latent, contract))

    def _kernel(self, name: str, body: Block, returns: str | None, role: str,
                latent: str | None = None, contract: bool = False) -> Kernel:
        """The kernel ``name`` whose body has been written since ``names.begin()``: its parameters are the
        names the writer handed out meanwhile.  ``contract``: a·b + c may be one fused multiply-add (the
        flags of the runtime helpers a kernel inlines, vexp's polynomial among them, are the kernel's own)."""
        return Kernel(name, tuple(sorted(self.names.reads)), body.lower(), role, latent,
                      contract=contract, returns=returns, doc=self._doc(role, latent))

    def _doc(self, role: str, latent: str | None) -> str:
        """What a kernel computes, and from which model line (its provenance comment)."""
        line = f" on model line {self.d.model.variables[latent].span.line}" if latent else ""
        return {"update": f"The update of q of the latent{line} (19.56)",
                "damped": f"The damped (parallel) update of q of the latent{line} (19.4.1)",
                "colour": f"The update of q of the latent{line} two colours at a time, each colour in parallel",
                "local_step": f"The local step: the update of the latent{line}, and the statistics it feeds",
                "point": f"The exact coordinate update of the point estimate{line}",
                "elbo": "E_q[log p] of every factor (the entropies are added by the engine)",
                "statistics": f"The statistics of the local step: {', '.join(s.name for s in self.stats.found.values())}",
                "block": f"The group block of the latent{line} and the local latent that reads it",
                "chain": f"The update of the chain{line}: its potentials, then its block (forward-backward or a sweep)"}[role]

    def _args(self, name: str) -> list[str]:
        """The parameters of the kernel ``name``, as the plan lists them."""
        return list(next(k for k in reversed(self.kernels) if k.name == name).params)    # (the last written)

    def _spec(self, name: str) -> KernelSpec:
        """The kernel ``name`` as the plan calls it."""
        return KernelSpec(name, tuple(self._args(name)))

    def write(self) -> None:
        """Every kernel, and the plan, as the IR the passes start from."""
        gaussian = getattr(self.d, "gaussian", {})
        for q in self.d.q.values():
            if q.var in gaussian:        # (its mean-field q gives the block's potentials: one kernel for the chain)
                write_gaussian_kernel(self, gaussian[q.var])
                continue
            self.update_kernel(q)
            self.update_kernel(q, damped=True)
            pattern = coupling(self.d, q.var)
            if pattern is not None or parity(self.d, q.var):
                self.colour_kernel(q, pattern or ())
        for b in getattr(self.d, "blocks", {}).values():
            write_chain_kernel(self, b)
        for pu in self.d.points.values():
            self.point_kernel(pu)
        labels = self.elbo_kernel()
        self.elbo = ElboPlan(self._spec("expected_log_joint"), tuple(labels))
        last = self._last_local()
        if last is not None:
            self.elbo_kernel("expected_log_joint_fast", without=last)
        self.statistics_kernel()
        for group in self._groupings() if self.stats.found else ():
            self.block_kernel(*group)
        if self.stats.found:
            self.local_steps()
        self.direct_kernels()

    def direct_kernels(self) -> None:
        """Each kernel written with η as features × weights, again with η summed element by element: the
        candidate passes.linear_eta puts in its place where the weights would not hold for the whole kernel.
        Written last, and aside (what the writer records meanwhile is put back as it was), so that the names
        every other kernel numbers are those of the module without candidates.  A direct η whose sums over the
        data plate would be statistics the statistics kernel does not fill (SBM's damped z: Σ_j A[i, j] E[z_j])
        is not offered: that kernel is written already."""
        for name, var, weights in self.linear:
            role = next(k.role for k in self.kernels if k.name == name)
            count, found = len(self.kernels), set(self.stats.found)
            with self.aside():
                self.update_kernel(self.d.q[var], damped=role == "damped", blocked=role == "local_step", linear=False)
                if len(self.kernels) != count + 1:
                    raise CodegenError(f"{name}: its direct η wrote another kernel")
                direct, offered = self.kernels[-1], set(self.stats.found) == found
            if offered:
                self.candidates.append(LinearEta(name, var, weights, direct))

    @contextmanager
    def aside(self):
        """Whatever is written inside leaves no trace in the writer's records: the kernels, the plans, the
        statistics' (found, read, sums met) and the names' (rewrites, places, derived constants) are put back,
        in place, as they were on entry."""
        records = (self.kernels, self.stats.reads, self.latents, self.stat_reads, self.stats.found, self.stats.sums,
                   self.names.rewrites, self.names.places, self.names.derived)
        kept = [copy.copy(r) for r in records]
        try:
            yield
        finally:
            for mine, old in zip(records, kept):
                mine.clear()
                (mine.extend if isinstance(mine, list) else mine.update)(old)

    def source(self) -> str:
        self.write()
        return module_source(run_passes(self.module()))

    def module(self) -> Module:
        """The IR as lowered: every kernel as the writer left it (before the passes of codegen.passes)."""
        arrays = self.stats.shapes()
        text = Whiteboard({**{v: len(q.index) for v, q in self.d.q.items()},
                           **{v: len(b.outer) + 1 for v, b in getattr(self.d, "blocks", {}).items()}}).doprint
        stats = tuple(StatisticArray(s.name, tuple(arrays[s.name]), text(s.expr),
                                     None if s.scatter is None else text(s.scatter[0]), s.mirror)
                      for s in self.stats.found.values())
        plate = self.dims[next(iter(self.big))] if self.big else None
        latents = {v: dataclasses.replace(p, pair=self.d.model.pairs[v]) if v in self.d.model.pairs else p
                   for v, p in self.latents.items()}
        plan = Plan(latents, dict(self.points), self.elbo, dict(self.names.derived), tuple(self.d.point),
                    _exact_em(self.d), self.stats_plan, None, dict(self.masks))
        return Module(__version__, tuple(self.kernels), stats, plan, tuple(self.shares), plate, tuple(self.blocks),
                      tuple(self.factored), tuple(self.colourings), tuple(self.stats.sums.items()),
                      tuple((e, stages) for (e, _), stages in self.names.rewrites.items()),
                      tuple(self.names.places.items()), tuple(self.candidates))


def lower(d: Derivation, fixed: dict[str, int] | None = None) -> Module:
    """The kernel IR of a derivation, specialised to the ``fixed`` dims, before the passes of codegen.passes."""
    w = ModuleWriter(d, fixed)
    w.write()
    return w.module()


def generate(d: Derivation, fixed: dict[str, int] | None = None) -> str:
    """The generated module's source for a derivation, specialised to the ``fixed`` dims."""
    return module_source(run_passes(lower(d, fixed)))
