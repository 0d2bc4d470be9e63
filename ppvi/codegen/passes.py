"""Passes over the kernel IR (codegen.ir), listed once, in the order they run.

Each pass maps a Module to a Module and reads nothing but the IR.  The order, and why:

    linear_eta  a kernel whose η of a local vector latent the writer wrote as features × weights (the weights
                filled once, before any element) keeps that form where the weights read nothing the kernel
                writes (its latent's q) and its elements run over the data plate; else the same kernel with η
                summed element by element takes its place.  First: every other pass reads the kernels it
                leaves (block_step a blocked step's η product, fuse the update it fuses a share into).
    group_block the group block (LDA's per-document E-step: a group latent and the local latent's members of
                each group, iterated together) is kept where the group latent's update reads none of the
                members' arrays (it reads them only through the statistics the block refills); then no local
                step is made.  Before the other passes that choose kernels: the block fills the statistics
                itself, so which local step ``fuse`` makes, if any, depends on it.
    factored_softmax
                the kept block's members' softmax is factored (e^a once per pass, e^b once per member, Σ_t p_t
                without forming p) where the rows they refill are counts.  Right after ``group_block``, which
                decides which block there is; before ``fuse`` and the passes that change loops, so that the
                kernel it puts in place is read and flagged as any other.
    block_step  a Categorical's blocked local step (its points a block at a time) is kept where it has a matrix
                product (η of a block as Φ W, a statistic as Uᵀ R), and replaces that latent's share; else it
                goes, and the share stays.  After ``group_block`` (no local step beside a kept block), before
                ``fuse``, which makes the local step of what is left.
    block_size  a blocked step whose η is a matrix product (K × B per thread) takes blocks of at most
                BLOCK_ETA_FLOATS // K points.  Right after ``block_step``, which decides which blocked steps stay;
                it changes one number of the kernel, nothing another pass reads.
    fuse        the local step: the update of the last latent of a sweep that feeds the statistics, with each
                element's share of them added while the element is in cache (the writer leaves the updates
                and the shares, ir.Share, apart).  After ``group_block`` (no local step where a block fills
                the statistics); early, so that the kernel it makes is hoisted and flagged as any other.
    fast_elbo   the ELBO read off the last local update is kept where the full ELBO makes passes over the data
                plate of its own.  Before the passes that change loops (it reads the loops as lowered).
    two_colour  a latent whose elements read each other only through data matrices (an Ising grid's adjacency)
                gets its colour kernel in the plan where its plan is sequential and no other step replaces its
                update: the engine colours the matrices' graph and, if it is bipartite, updates one colour in
                parallel, then the other.  After ``fuse`` (a fused local step takes the update's place),
                before the passes that change loops, so that the kernel is hoisted and flagged as any other.
    scatter_rows
                an update that scatters over the data plate by index data (``_a[int(user[r]), k] += …``) gets a
                rows kernel beside it: its rows in parallel, each over the data sorted by row when they are
                bound (codegen.scatter), which the engine takes on a large plate.  After the passes that choose
                kernels (``fuse``, ``two_colour``: an update they replace needs none), before the passes that
                change loops, so that the rows kernel is hoisted and flagged as any other.
    chunk_elbo  the full ELBO gets a variant with its sums over the data plate in fixed chunks on threads, which
                the engine takes on a large plate (codegen.scatter).  With ``scatter_rows``, and for the same
                reasons: after the passes that choose kernels, before those that change loops.
    dead_loops  a loop whose body only binds indices (and comments) is removed: the blocked local step leaves
                one where each point's η is a column of the block's matrix product.  Before ``parallel``,
                which reads the loops that remain.
    hoist       a statement (or a whole loop) that reads nothing its loop changes is moved before the loop, out
                of as many loops as allow it: factor analysis' q(z) precision, the same for every point, is
                then factorised once per sweep.  After ``dead_loops`` (a loop it would empty is gone first,
                nothing to read), before ``parallel``.
    parallel    a kernel with a prange loop is compiled with parallel=True: last, so that a pass which adds
                or removes a parallel loop is reflected in the flag.

The symbolic rewrites the writer makes before it writes an expression (through offsets and deltas, interchange,
statistic separation, narrowing, and the sum rules ``separate`` and ``split`` over an ir.PlateSum) are not passes
over the IR: they are the rules of codegen.rewrite.REWRITES, in their order there, applied by its one driver.  A
sum is still a text leaf of the IR once lowered (ir.Expr), and the kernel that reads it (Σ_k t[k]) and the
statistics kernel that fills it are written from its rewritten shape; docs/architecture.md says what moving
them needs.

Most of code generation's decisions are still taken while the IR is lowered (codegen.module writes the
kernels): docs/architecture.md lists them and the ones that are passes.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from ppvi.codegen.ir import (Assign, Bind, Call, Expr, Factored, If, Kernel, LinearEta, Loop, Module, Note, Ref,
                             Share, accumulates, breaks, part_range, reads, walk, writes)
from ppvi.codegen.plan import ArrayNames, BlockPlan, KernelSpec, Plan
from ppvi.codegen.scatter import chunk_elbo, scatter_rows


def linear_eta(m: Module) -> Module:
    """Of each kernel the writer wrote with η as features × weights (ir.LinearEta: the weights W_j filled once,
    before any element; η[a] = Σ_j v_j W_j[a] for each), keep that form where it is sound and pays
    (:func:`weights_hold`); else put the same kernel with η summed element by element in its place, and in the
    plan.  Every candidate is dropped."""
    kernels, plan = m.kernels, m.plan
    for c in m.linear:
        linear = m.kernel(c.kernel)
        if weights_hold(m, linear, c):
            continue
        kernels = tuple(c.direct if k is linear else k for k in kernels)
        info = plan.latents[c.latent]
        spec = KernelSpec(c.direct.name, c.direct.params)
        info = dataclasses.replace(info, **{f: spec for f in ("update", "damped")
                                            if getattr(info, f) is not None and getattr(info, f).name == c.kernel})
        plan = dataclasses.replace(plan, latents={**plan.latents, c.latent: info})
    return dataclasses.replace(m, kernels=kernels, plan=plan, linear=())


def weights_hold(m: Module, k: Kernel, c: LinearEta) -> bool:
    """The weights, filled once at the start of ``k``, stay right for every element: their fills read no array
    of the latent's q (its state and aliases: what the update writes as it goes; a group block's members'
    η read the group's moments it refills, for one); and they pay: ``k``'s elements run over the data plate
    (a loop over its chunks, or whose bounds read its size), many elements for one fill."""
    info = m.plan.latents[c.latent]
    owned = set(info.state) | set(info.aliases) | set(info.aliases.values())
    fills = [n for n in walk(k.body) if not isinstance(n, (Loop, If)) and (writes(n) or frozenset()) & set(c.weights)]
    read = [reads(n) for n in fills]
    many = any(isinstance(n, Loop) and (n.axis == "chunk" or m.plate in n.range.reads) for n in walk(k.body))
    return bool(fills) and None not in read and not frozenset().union(*read) & owned and many


def group_block(m: Module) -> Module:
    """Keep the first group block the writer made (ir.Module.blocks, in model order) whose group latent's update
    reads no array of the members' q (their state or its aliases): the group latent then reads the members only
    through the statistics the block fills group by group, so a block's passes are exact coordinate updates
    of that group alone.  Its kernel stays and the plan gets its entry; the local step's candidates (the
    blocked step, the shares) go, since the block fills the statistics it reads itself.  Every other block
    kernel is dropped."""
    lat = m.plan.latents

    def sound(b: BlockPlan) -> bool:
        group, member = b.members
        return not set(lat[group].update.args) & (set(lat[member].state) | set(lat[member].aliases))
    chosen = next((b for b in m.blocks if sound(b)), None)
    kernels = [k for k in m.kernels if k.role != "block" or (chosen is not None and k.latent == chosen.members[0])]
    if chosen is None:
        return dataclasses.replace(m, kernels=tuple(kernels), blocks=())
    kernels = [k for k in kernels if k.role != "local_step"]
    return dataclasses.replace(m, kernels=tuple(kernels), plan=dataclasses.replace(m.plan, block=chosen),
                               blocks=(), shares=())


def factored_softmax(m: Module) -> Module:
    """The kept group block (Plan.block) is replaced by its factored form (ir.Factored, the writer's candidate
    where each member's η is a + b, a the group's) when the plain block's members refill every row the
    factored one refills as counts: see :func:`counts`.  Then Σ_t p_t, all the passes before the last need,
    is e^a ∘ Σ_t e^b_t / (e^a · e^b_t): one dot product and one axpy per member, no exp per member and pass.
    A row that takes anything else of a member (Σ_t [d = by[t]] p_t x_t) needs each member's p: the plain
    block stays.  The plan's block then calls the factored kernel (its parameters are its own); every
    candidate is dropped."""
    block = m.plan.block if m.plan is not None else None
    f = next((f for f in m.factored if block is not None and f.latent == block.members[0]), None)
    plain = next((k for k in m.kernels if k.role == "block" and f is not None and k.latent == f.latent), None)
    if plain is None or not counts(plain, f):
        return dataclasses.replace(m, factored=())
    plan = dataclasses.replace(m.plan, block=dataclasses.replace(
        block, kernel=KernelSpec(f.kernel.name, tuple(f.kernel.params))))
    return dataclasses.replace(m, kernels=tuple(f.kernel if k is plain else k for k in m.kernels), plan=plan,
                               factored=())


def counts(plain: Kernel, f: Factored) -> bool:
    """In the plain block, the loops over the members (``f.axis``) say what they write (no text), and write
    each of ``f.rows`` only by ``add_to(row[...], p[...])`` of the members' q (``f.p``), at least once: each
    row is Σ_t p_t over the group's members."""
    loops = [n for n in walk(plain.body) if isinstance(n, Loop) and n.axis == f.axis]
    if not loops or any(writes(loop) is None for loop in loops):
        return False
    added = set()
    for n in walk(tuple(loops)):
        if isinstance(n, (Loop, If)) or not writes(n) & set(f.rows):
            continue
        if not (isinstance(n, Call) and n.fn == "add_to" and not n.results and len(n.args) == 2
                and isinstance(n.args[0], Ref) and isinstance(n.args[1], Expr) and f.p in n.args[1].reads):
            return False
        added.add(n.args[0].name)
    return added == set(f.rows)


def block_step(m: Module) -> Module:
    """Of a Categorical's two local-step candidates, its blocked step (a kernel of role local_step the writer
    made: its points a block of _B at a time, codegen.module.Blocked) and its Share (fused by ``fuse`` into the
    update), the blocked step is kept where it computes something as a matrix product (an ``np.dot`` call: η of
    the block's points as Hᵀ = Wᵀ Φᵀ, or a statistic Σ_n u(n) r[n, k] as Uᵀ R), BLAS work no per-point loop
    does as fast; the latent's share then goes.  A blocked step with no product updates and sums point by
    point, in blocks: the share fused into the update does the same with no blocks, so the blocked step goes."""
    def products(k: Kernel) -> bool:
        return any(isinstance(n, Call) and n.fn == "np.dot" for n in walk(k.body))
    kept = {k.latent for k in m.kernels if k.role == "local_step" and products(k)}
    return dataclasses.replace(m, kernels=tuple(k for k in m.kernels if k.role != "local_step" or k.latent in kept),
                               shares=tuple(s for s in m.shares if s.latent not in kept))


BLOCK_ETA_FLOATS = 2 ** 20
"""At most this many floats in a blocked step's η, K × B per thread (8 MB): at K = 10⁵ a block of 256 points
held two copies of the whole q(z) of 272 points (issue 21, item 11)."""


def block_size(m: Module) -> Module:
    """A blocked local step's block size B (the step of its loop over blocks, set once at the kernel's top) is
    bounded by BLOCK_ETA_FLOATS // K where η of the block's points is a matrix product (:func:`eta_product`: an
    ``np.dot`` in the loop over blocks whose result a call then reads: Hᵀ = Wᵀ Φᵀ, K × B per thread) — K the
    columns of the product's left operand, the weights W.  The writer bounds B by the feature rows alone (in
    cache, between 8 and 256 points); a block whose only products are its statistics (Uᵀ R) holds nothing of
    size K × B, and keeps that bound."""
    def bounded(k: Kernel) -> Kernel:
        blocks = [n for n in walk(k.body) if isinstance(n, Loop) and n.range.step is not None]
        eta = [c for b in blocks for c in [eta_product(b.body)] if c is not None]
        if k.role != "local_step" or len(blocks) != 1 or not eta or len(eta[0].args[0].reads) != 1:
            return k
        (w,) = eta[0].args[0].reads
        step = blocks[0].range.step

        def bound(n):
            if not (isinstance(n, Assign) and n.op == "=" and n.target == Ref(step)):
                return n
            return dataclasses.replace(n, value=Expr(f"max(1, min({n.value.text}, {BLOCK_ETA_FLOATS} // {w}.shape[1]))",
                                                     n.value.reads | {w}))
        return dataclasses.replace(k, body=tuple(map(bound, k.body)))
    return dataclasses.replace(m, kernels=tuple(map(bounded, m.kernels)))


def eta_product(body: tuple) -> Call | None:
    """The ``np.dot`` call of ``body`` whose result (its last argument, written in place) a later call of the
    same body reads: the block's η, which the block's finish reads column by column."""
    for at, n in enumerate(body):
        if isinstance(n, Call) and n.fn == "np.dot" and isinstance(n.args[-1], Ref):
            out = n.args[-1].name
            if any(isinstance(c, Call) and any(out in a.reads for a in c.args if isinstance(a, Expr))
                   for c in body[at + 1:]):
                return n
    return None


def fuse(m: Module) -> Module:
    """The local step: the last latent of a sweep that feeds the statistics (in the schedule's order: local
    latents, then MAP latents) updates them as it updates itself, in one pass over the data plate, when its
    update runs over the plate's chunks in parallel.  Its kernel is the update with each element's share of
    the statistics (the module's ir.Share, written for that element's index) added after the element, the
    chunks C the statistics' (their partial sums are per chunk), and the reduce after the chunks; a blocked
    local step ``block_step`` kept (a Categorical's) is kept as it is.  The stand-alone statistics pass, then
    run only at the start and after a restore, goes serial (it compiles in a fraction of the time and fills
    the same chunks).  Every other candidate is dropped, and so are the shares.  No local step where a group
    block fills the statistics itself."""
    candidates = {k.latent: k for k in m.kernels if k.role == "local_step"}
    shares = {s.latent: s for s in m.shares}
    chosen = _last_feeding(m.plan) if not any(k.role == "block" for k in m.kernels) else None
    kernels = [k for k in m.kernels if k.role != "local_step" or k.latent == chosen]
    step = candidates.get(chosen)
    if step is None and chosen in shares:
        update = next(k for k in m.kernels if k.latent == chosen and k.role in ("update", "point"))
        step = _fused(update, shares[chosen])
        if step is not None:
            at = next(n for n, k in enumerate(kernels) if k.role == "statistics")
            kernels.insert(at + 1, step)
    if step is None:
        if chosen is not None and chosen in m.plan.latents and m.plan.latents[chosen].chain is not None:
            # a chain's block is serial, one sequence after another: the statistics over its marginals are a
            # small fraction of it, and threads started every sweep cost more than they save
            kernels = [_serial(k) if k.role == "statistics" else k for k in kernels]
        return dataclasses.replace(m, kernels=tuple(kernels), shares=())
    spec = KernelSpec(step.name, tuple(step.params))
    plan = m.plan
    if chosen in plan.latents:
        plan = dataclasses.replace(plan, latents={
            **plan.latents, chosen: dataclasses.replace(plan.latents[chosen], local_step=spec)})
    else:
        plan = dataclasses.replace(plan, points={
            **plan.points, chosen: dataclasses.replace(plan.points[chosen], local_step=spec)})
    kernels = [_serial(k) if k.role == "statistics" else k for k in kernels]
    return dataclasses.replace(m, kernels=tuple(kernels), plan=plan, shares=())


def _last_feeding(plan: Plan) -> str | None:
    """The latent updated last in a sweep of those whose moments the statistics read."""
    lat, pts = plan.latents, plan.points
    order = [v for v in lat if lat[v].scope == "local"] + [v for v in pts if pts[v].kind == "point"]
    feeding = [v for v in order if plan.entry(v).feeds]
    return feeding[-1] if feeding else None


def _fused(update: Kernel, share: Share) -> Kernel | None:
    """The update with the share added to each element of its parallel loop over chunks (None if it has none,
    its elements not updated a chunk at a time, or if the share does not read that loop's element index)."""
    point = frozenset().union(*(r for r in map(reads, share.point) if r is not None))

    def chunk(node):
        if isinstance(node, Loop) and node.axis == "chunk" and node.range.parallel:
            parts = [n for n in node.body if isinstance(n, Loop) and n.range.part is not None]
            if len(parts) == 1 and parts[0].range.var in point:      # (the share is of this loop's element)
                part = parts[0]
                inner = Loop(part_range(part.range.var, part.range.part[0], "_C"), part.body + share.point, part.axis)
                return Loop(dataclasses.replace(node.range, stop="_C", reads=frozenset({"_C"})),
                            tuple(inner if n is part else n for n in node.body), node.axis)
        return None
    found = [(n, loop) for n, loop in enumerate(map(chunk, update.body)) if loop is not None]
    if len(found) != 1:
        return None
    at, loop = found[0]
    body = share.head + update.body[:at] + (loop,) + update.body[at + 1:] + share.tail
    return Kernel(ArrayNames.kernel("local_step", share.latent), tuple(sorted(set(update.params) | share.params)), body,
                  "local_step", share.latent, contract=update.contract, doc=share.doc)


def _serial(k: Kernel) -> Kernel:
    """The kernel with its loops over chunks run one after another."""
    def body(nodes: tuple) -> tuple:
        return tuple(dataclasses.replace(n, range=dataclasses.replace(n.range, parallel=False), body=body(n.body))
                     if isinstance(n, Loop) and n.axis == "chunk" else
                     dataclasses.replace(n, body=body(n.body)) if isinstance(n, (Loop, If)) else n for n in nodes)
    return dataclasses.replace(k, body=body(k.body))


def fast_elbo(m: Module) -> Module:
    """The fast ELBO (an elbo kernel with a ``latent``: the ELBO right after that latent's update, its data-plate
    terms read off the update's log Σ e^η, see ModuleWriter._last_local) is kept only where the full ELBO
    passes over the data plate itself (a loop whose bounds read the plate's size): where every data-plate term
    is a statistic, the full ELBO is as cheap."""
    fast = next((k for k in m.kernels if k.role == "elbo" and k.latent is not None), None)
    if fast is None:
        return m
    full = next(k for k in m.kernels if k.role == "elbo" and k.latent is None)
    passes = any(isinstance(n, Loop) and (n.range.reads is None or m.plate in n.range.reads) for n in walk(full.body))
    if m.plate is None or not passes:
        return dataclasses.replace(m, kernels=tuple(k for k in m.kernels if k is not fast))
    elbo = dataclasses.replace(m.plan.elbo, fast=KernelSpec(fast.name, tuple(fast.params)), fast_after=fast.latent)
    return dataclasses.replace(m, plan=dataclasses.replace(m.plan, elbo=elbo))


def two_colour(m: Module) -> Module:
    """Plan each two-colour update the writer made (ir.Colouring: a latent whose elements read each other only
    through data matrices, derive.colouring) where the latent's plan runs its elements in order (``sequential``),
    it is global (a local latent's elements are split into chunks of the data plate by the streamed and
    memoized engines; a colouring holds indices into the whole) and nothing else takes its step (a fused local
    step, a chain's block, a Normal–Gamma pair): the plan gets the kernel and the matrices whose graph the
    engine colours.  Every other colour kernel is dropped."""
    latents, keep = dict(m.plan.latents), set()
    for c in m.colourings:
        info = latents.get(c.var)
        if info is not None and info.sequential and info.scope == "global" and info.local_step is None \
                and info.chain is None and info.pair is None:
            latents[c.var] = dataclasses.replace(info, colour=c.kernel, pattern=c.pattern)
            keep.add(c.kernel.name)
    dropped = {c.kernel.name for c in m.colourings} - keep
    return dataclasses.replace(m, kernels=tuple(k for k in m.kernels if k.name not in dropped), colourings=(),
                               plan=dataclasses.replace(m.plan, latents=latents))


def dead_loops(m: Module) -> Module:
    """Remove every loop that computes nothing: a body of index bindings and notes only (innermost first, so a
    loop left empty by the removal goes too).  A conditional stays: its test may be a call that acts."""
    def body(nodes: tuple) -> tuple:
        out = []
        for n in nodes:
            if isinstance(n, (Loop, If)):
                n = dataclasses.replace(n, body=body(n.body))
                if isinstance(n, Loop) and all(isinstance(c, (Bind, Note)) for c in n.body):
                    continue
            out.append(n)
        return tuple(out)
    return dataclasses.replace(m, kernels=tuple(dataclasses.replace(k, body=body(k.body)) for k in m.kernels))


def hoist(m: Module) -> Module:
    """Loop-invariant code motion, innermost loops first, so what leaves one loop may leave the next (see
    :func:`invariant` for what may move)."""
    def body(nodes: tuple) -> tuple:
        out = []
        for n in nodes:
            if isinstance(n, If):
                n = dataclasses.replace(n, body=body(n.body))
            elif isinstance(n, Loop):
                n = dataclasses.replace(n, body=body(n.body))
                moved, kept = invariant(n)
                out += moved
                n = dataclasses.replace(n, body=kept)
            out.append(n)
        return tuple(out)
    return dataclasses.replace(m, kernels=tuple(dataclasses.replace(k, body=body(k.body)) for k in m.kernels))


def invariant(loop: Loop) -> tuple[tuple, tuple]:
    """(the nodes of the loop's body that may run once before it, in order; the rest).  Only in a loop whose
    every node says what it reads (an index binding, an inner loop's bounds: their reads) and that does not
    break at its level (ir.breaks: an iteration may end it early; a break moved out would leave another loop).  A
    node moves when

        it writes only temporaries (``_`` names: the kernel's own scratch, no array of the engine's), none
            that the loop's bounds read;
        it reads nothing that the nodes that stay, or the nodes after it, write — nor the loop's index;
        nothing that stays writes what it writes, and nothing that stays and comes before it reads it;
        what it adds to (``+=``, or ``x = f(x)``: ir.accumulates) was assigned by a node before it that moves
            too (else the value is carried from one iteration to the next).

    Then every iteration computes the same values there, so computing them once is the same program.  (A loop
    of no iterations now computes them anyway: generated temporaries are read only where they are made.)
    A comment moves with the node after it."""
    body = loop.body
    info = [(n, reads(n), writes(n)) for n in body]
    if loop.range.reads is None or any(r is None or w is None for _, r, w in info) or any(map(breaks, body)):
        return (), body
    code = [i for i, (n, _, _) in enumerate(info) if not isinstance(n, Note)]
    movable = {i for i in code if all(x.startswith("_") for x in info[i][2])
               and not info[i][2] & loop.range.reads and loop.range.var not in info[i][1]}
    changed = True
    while changed:
        changed = False
        kept = [i for i in code if i not in movable]
        kept_writes = frozenset({loop.range.var}).union(*(info[i][2] for i in kept))
        for i in sorted(movable):
            _, r, w = info[i]
            later = frozenset().union(*(info[j][2] for j in code if j > i))
            before = frozenset().union(*(info[j][2] for j in movable if j < i))
            if r & (kept_writes | later) or w & kept_writes or \
                    any(info[j][1] & w for j in kept if j < i) or not accumulates(body[i]) <= before:
                movable.discard(i)
                changed = True
    moves = set(movable)
    for i in range(len(body) - 1, -1, -1):      # a comment goes with the code it describes
        if isinstance(body[i], Note) and i + 1 < len(body) and (i + 1) in moves:
            moves.add(i)
    return tuple(body[i] for i in sorted(moves)), tuple(n for i, n in enumerate(body) if i not in moves)


def parallel(m: Module) -> Module:
    """parallel=True exactly on the kernels that have a prange loop (Numba ignores prange otherwise)."""
    def flag(k: Kernel) -> Kernel:
        return dataclasses.replace(k, parallel=any(isinstance(n, Loop) and n.range.parallel for n in walk(k.body)))
    return dataclasses.replace(m, kernels=tuple(flag(k) for k in m.kernels))


PASSES: tuple[tuple[str, Callable[[Module], Module]], ...] = (
    ("linear_eta", linear_eta),
    ("group_block", group_block),
    ("factored_softmax", factored_softmax),
    ("block_step", block_step),
    ("block_size", block_size),
    ("fuse", fuse),
    ("fast_elbo", fast_elbo),
    ("two_colour", two_colour),
    ("scatter_rows", scatter_rows),
    ("chunk_elbo", chunk_elbo),
    ("dead_loops", dead_loops),
    ("hoist", hoist),
    ("parallel", parallel),
)
NAMES = ("lower",) + tuple(name for name, _ in PASSES)


def run_passes(m: Module, until: str | None = None) -> Module:
    """The passes in order, up to and including ``until`` ("lower": none of them; None: all)."""
    if until == "lower":
        return m
    for name, fn in PASSES:
        m = fn(m)
        if name == until:
            break
    return m
