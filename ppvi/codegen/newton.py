"""The compiled Newton update of a Normal q inside an exp link (docs/derivation.md, section 10).

Each element of q runs, in the update kernel's element loop,

    m, v ← q's mean and variance;  f ← 𝓛's part (the terms that read q) + ½ log v; where f = −∞, shrink v
        (then m) until it is finite (feasible)
    repeat (at most MAX_STEPS): ∇𝓛, ∇²𝓛 in (⟨x⟩, ⟨x²⟩) at (m, v) -> the Newton direction d in (m, v)
        (newton_direction);  stop when ∇fᵀd ≤ tol·(1 + |f|)
        t ← 1 (halved until v + t·d_v > 0);  halve t until f(m + t d_m, v + t d_v) ≥ f + 10⁻⁴ t ∇fᵀd,
        the trial written into q's moments so that the objective reads it; no such t: keep (m, v), stop;
        where ∇fᵀd ≤ NEAR·(1 + |f|) only t itself, taken if f does not decrease, and stop
    q's parameters, moments and entropy from (m, v) (finish_normal_mv)

the same steps as the reference evaluator (ppvi.derive.newton.newton_normal), so every update is monotone.
Each exp link's exponent E_n that q reads over a plate is kept per point and moved by the element's share
(exponent_caches; docs/derivation.md, section 10, "Cost"), so an evaluation costs O(N), not O(N·D).

Where q's elements share an exponent (``Newton.blocked``, one element axis), the update kernel takes joint Newton
steps over all of them instead (newton_block; section 10, "Block steps"): the same line search and stops, on the
whole q at once; a scalar q whose moments enter the shared exponent (an intercept: ``Newton.joint``, decided by
derive.newton.join_blocks) moves in the same steps, its (m, v) after the elements', and its own plain update is none.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ppvi.codegen.emit import Block, Writer, assign, axis_order, ex, let, name_ref, ordered, read, structure
from ppvi.codegen.ir import Break, Call, Expr, Note, Range, Ref
from ppvi.derive.newton import ARMIJO, FEASIBLE, MAX_HALVINGS, MAX_STEPS, NEAR, STATS, TOL


def newton_element(mw, q, w: Writer, levels: list[Block]) -> None:
    """The Newton update of the element of ``q`` whose loops are ``levels`` (ModuleWriter ``mw``'s names): from
    q's (m, v), a start where 𝓛 is finite (:func:`_feasible`), the damped Newton steps (:func:`_steps`), then q's
    finish from (m, v)."""
    nt = q.newton
    names = mw.names
    damped = bool(w.snapshot_bases)
    if damped:       # the damped (parallel) schedule: the same monotone Newton steps on the live q; η stored after
        w.self_bases, w.snapshot_bases = w.snapshot_bases, frozenset()
    el = levels[-1]
    at = [names.index(i) for i in q.index] or ["0"]
    mean, x2 = name_ref(names.qparam(q.var, "mean"), *at), name_ref(names.moment(q.var, "x2"), *at)
    m, v, f, ft, t, ok = (w.tmp(s) for s in ("m", "v", "f", "ft", "t", "ok"))
    dm, dv, slope = w.tmp("dm"), w.tmp("dv"), w.tmp("slope")
    sd = name_ref(names.qparam(q.var, "sd"), *at)     # (v from sd: ⟨x²⟩ − m² loses a v below ε·m²)
    el.post += [mw._note("Newton steps on the exact ELBO", q.var), let(m, mean.text, mean),
                let(v, f"{sd.text} * {sd.text}", sd)]
    cached, exps, settle = exponent_caches(mw, q, w, levels)
    goal = nt.objective.xreplace(cached)

    def objective(host: Block, outer: list[Block], into: str, var: Expr) -> None:
        """``into`` = 𝓛's part + ½ log(var), its sums (which read q's own moments) computed in ``host``."""
        value = w.expr(goal, outer + [host], len(outer))
        host.post.append(let(into, f"{value.text} + 0.5 * math.log({var.text})", value, var))

    start = Block()
    el.post.append(start)
    objective(start, levels, f, ex(v, v))
    _feasible(w, levels, objective, (m, v, f), (mean, x2))
    step = Block(Range("_it", str(MAX_STEPS), reads=frozenset()))
    el.post.append(step)
    inner = levels + [step]
    for loops in fill_exps(w, exps, cached, inner):
        step.pre.append(loops[0])          # (before the derivatives' sums, which go to step.pre as they are written)
    _steps(w, nt, exps, levels, step, objective, (m, v, f, ft, t, ok, dm, dv, slope), (mean, x2))
    one = lambda arr: name_ref(arr, *at)  # noqa: E731
    el.post += [Note("q's parameters, moments and entropy from (m, v)"),
                Call("finish_normal_mv", (Expr(m, frozenset({m})), Expr(v, frozenset({v}))),
                     (one(names.qparam(q.var, "mean")), one(names.qparam(q.var, "sd")), one(names.moment(q.var, "x2")),
                      one(names.entropy(q.var))))]
    el.post += settle
    if damped:           # η of the new q, (m/v, −1/(2v)): the damped schedule's next step moves from it
        el.post += [assign(name_ref(names.natural(q.var, "x"), *at), ex(f"{m} / {v}", m, v)),
                    assign(name_ref(names.natural(q.var, "x2"), *at), ex(f"-0.5 / {v}", v))]


def _feasible(w: Writer, levels: list[Block], objective, mvf: tuple, q: tuple) -> None:
    """Where 𝓛 = −∞ at the start (E[e^ψ] overflows): v shrinks by 16 down to 10⁻⁸ of its start, then m halves
    (derive.newton.feasible), q's mean and ⟨x²⟩ (``q``) following."""
    (m, v, f), (mean, x2), el = mvf, q, levels[-1]
    floor = w.tmp("floor")
    el.post.append(let(floor, f"1e-8 * {v}", v))
    fix = Block(Range("_fx", str(FEASIBLE), reads=frozenset()))
    el.post.append(fix)
    finite = Block(test=ex(f"math.isfinite({f})", f))
    finite.post.append(Break())
    shrink = Block(test=ex(f"{v} / 16.0 >= {floor}", v, floor))
    shrink.post.append(let(v, f"{v} / 16.0", v))
    halve = Block(test=ex(f"not ({v} / 16.0 >= {floor})", v, floor))
    halve.post.append(let(m, f"0.5 * {m}", m))
    fix.post += [finite, shrink, halve, assign(mean, ex(m, m)), assign(x2, ex(f"{m} * {m} + {v}", m, v))]
    again = Block()
    fix.post.append(again)
    objective(again, levels + [fix], f, ex(v, v))


def _steps(w: Writer, nt, exps: dict, levels: list[Block], step: Block, objective, tmp: tuple, q: tuple) -> None:
    """One Newton step in ``step`` (the loop over steps): the gradient and Hessian in (⟨x⟩, ⟨x²⟩), the
    direction, then a line search that halves t until 𝓛 rises (:func:`accept_or_halve`); stop when the slope is
    below TOL, or after the full step NEAR allows."""
    (m, v, f, ft, t, ok, dm, dv, slope), (mean, x2) = tmp, q
    inner = levels + [step]
    gradient = {s: e.xreplace(exps) for s, e in nt.gradient.items()}
    hessian = {k: e.xreplace(exps) for k, e in nt.hessian.items()}
    grads = []
    for s in STATS:
        g = w.tmp("g")
        step.post.append(assign(Ref(g), w.expr(gradient[s], inner, len(levels))))
        grads.append(g)
    hess = []
    for key in (("x", "x"), ("x", "x2"), ("x2", "x2")):
        h = w.tmp("h")
        step.post.append(assign(Ref(h), w.expr(hessian[key], inner, len(levels))))
        hess.append(h)
    step.post.append(Call("newton_direction", tuple(ex(a, a) for a in [m, v] + grads + hess),
                          (Ref(dm), Ref(dv), Ref(slope))))
    done = Block(test=ex(f"not ({slope} > {TOL!r} * (1.0 + abs({f})))", slope, f))
    done.post.append(Break())
    last = w.tmp("last")      # one full step, then stop (derive.newton.NEAR)
    step.post += [done, let(last, f"{slope} <= {NEAR!r} * (1.0 + abs({f}))", slope, f),
                  Call("newton_first_step", (ex(v, v), ex(dv, dv)), (Ref(t),)), let(ok, "False"), let(ft, f, f)]
    search = Block(Range("_ls", str(MAX_HALVINGS), reads=frozenset()))
    step.post.append(search)
    search.post += [assign(mean, ex(f"{m} + {t} * {dm}", m, t, dm)),
                    assign(x2, ex(f"({m} + {t} * {dm}) ** 2 + {v} + {t} * {dv}", m, t, dm, v, dv))]
    trial = Block()
    search.post.append(trial)
    objective(trial, inner + [search], ft, ex(f"{v} + {t} * {dv}", v, t, dv))
    failed = accept_or_halve(search, f, ft, t, ok, slope, last)
    failed.post += [assign(mean, ex(m, m)), assign(x2, ex(f"{m} * {m} + {v}", m, v)), Break()]
    ended = Block(test=ex(last, last))
    ended.post.append(Break())
    step.post += [failed, let(m, f"{m} + {t} * {dm}", m, t, dm), let(v, f"{v} + {t} * {dv}", v, t, dv),
                  let(f, ft, ft), ended]


def accept_or_halve(search: Block, f: str, ft: str, t: str, ok: str, slope: str, last: str) -> Block:
    """The end of a line search's trial (derive.newton.ascend): accept where f rises enough (Armijo; the last step:
    where it does not fall), else halve t; returns the block run when no trial was accepted (for the caller's
    restore)."""
    accept = Block(test=ex(f"{ft} >= {f} and ({last} or {ft} >= {f} + {ARMIJO!r} * {t} * {slope})",
                           ft, f, last, t, slope))
    accept.post += [let(ok, "True"), Break()]
    once = Block(test=ex(last, last))
    once.post.append(Break())
    search.post += [accept, once, let(t, f"0.5 * {t}", t)]
    return Block(test=ex(f"not {ok}", ok))


def exponent_caches(mw, q, w: Writer, levels: list[Block]) -> tuple[dict, dict, list]:
    """Each exponent E_n of an exp link that q's moments enter over a plate (E[ψ_n] + Var[ψ_n]/2, ``Newton.shares``),
    kept per n in a kernel array A, so that an evaluation costs O(N) rather than O(N·D) (docs/performance.md):

        A[n] ← E_n at the kernel's start (once: O(N·D));  for each element: R[n] ← A[n] − share_n (its moments
        as they are), E_n read as R[n] + share_n (the trial written into q's moments);  at its end
        A[n] ← R[n] + share_n (the new moments)

    like the residual of coordinate-descent lasso.  The cached form is E_n itself, up to rounding.  Returns
    ({exp(E): exp(R[n] + share)} for the objective, {exp(E): X[n]} for the derivatives, which read e^{E_n} from
    an array X filled once a Newton step (fill_exps), the lines that move A on after the element's update); the
    element's first lines (R) are appended to its level here."""
    fn, el = levels[0], levels[-1]
    names = mw.names
    element = set(q.index)
    swap, exps, settle = {}, {}, []
    for exponent, part in ordered_shares(q, names.rank):
        plate = axis_order(exponent, {i for i in exponent.free_symbols if isinstance(i, sp.Idx)} - element, None,
                           names.rank)
        a, r, x = w.tmp("A"), w.tmp("R"), w.tmp("X")
        bases = {x: sp.IndexedBase(sp.Symbol(x)) for x in (a, r, x)}
        w.scratch.update({b: x for x, b in bases.items()})
        w.self_bases = w.self_bases | frozenset(bases.values())   # (they change with the element: never hoisted)
        with names.watch() as sizes:
            shape = ex(f"np.empty(({', '.join(w.int_value(i.upper + 1) for i in plate)},))")
        shape = Expr(shape.text, frozenset(sizes))
        at = [names.index(i) for i in plate]
        fn.pre += [mw._note("the exponent of the exp link per point, moved by each element's share", q.var),
                   assign(Ref(a), shape), assign(Ref(r), shape), assign(Ref(x), shape)]
        loops = w._loops([(i, 0, i.upper) for i in plate])
        loops[-1].post.append(assign(name_ref(a, *at), w.expr(exponent, [fn] + loops, len(loops))))
        fn.pre.append(loops[0])
        for into, dest, src, form in ((el.post, r, a, "{} - ({})"), (settle, a, r, "{} + {}")):
            loops = w._loops([(i, 0, i.upper) for i in plate])
            share = w.expr(part, levels + loops, len(levels) + len(loops) - 1)
            value = ex(form.format(name_ref(src, *at).text, share.text), name_ref(src, *at), share)
            loops[-1].post.append(assign(name_ref(dest, *at), value))
            into.append(loops[0])
        swap[sp.exp(exponent)] = sp.exp(bases[r][tuple(plate)] + part)
        exps[sp.exp(exponent)] = bases[x][tuple(plate)]
    return swap, exps, settle


def fill_exps(w: Writer, exps: dict, cached: dict, levels: list[Block]):
    """X[n] = e^{R[n] + share} for every cached exponent, once a Newton step: each of the derivatives' sums reads
    it where it would take an exp of its own (five in all)."""
    for key, exp_n in exps.items():
        plate = list(exp_n.indices)
        loops = w._loops([(i, 0, i.upper) for i in plate])
        value = w.expr(cached[key], levels + loops, len(levels) + len(loops) - 1)
        loops[-1].post.append(assign(name_ref(w.array(exp_n.base), *(w.names.index(i) for i in plate)), value))
        yield loops


def blocks(q) -> bool:
    """Whether q's update kernel takes block steps (newton_block): derive.newton.block_step, the derivation's."""
    from ppvi.derive.newton import block_step

    return block_step(q)


def newton_block(mw, q, w: Writer, levels: list[Block]) -> None:
    """The joint Newton update of every element of ``q`` (docs/derivation.md, section 10, "Block steps"), in place of
    its element loop ``levels[-1]``: the steps of derive.newton.newton_block,

        M, V ← q's means and variances;  f ← 𝓛's part + ½ Σ log V (shrunk to a finite f as newton_element's)
        repeat: X[n] ← e^{E_n} (each shared exponent, in full);  the Gram matrices Fᵀ diag(w) F of the sums over
                the data plate (gram_form, write_grams);  G_s[a], H_st[a, b] read off them (a, b over q's axis);
                newton_block_direction -> (DM, DV), ∇fᵀd;  the same stops and line search as newton_element,
                each trial written into q's moments so that the objective reads it
        q's parameters, moments and entropy from (M, V)

    Each evaluation of f is O(N·D) (every exponent moves); each step one O(N·D) pass for the exponents and the
    weights, then one matrix product of the (N × (1 + F·D)) features per weight (BLAS), where the cross Hessian as
    written takes five scalar sums over N per pair of elements."""
    from ppvi.derive.newton import block_of

    fn, el = levels[0], levels[-1]
    fn.post.remove(el)
    members = q.newton.joint.members if q.newton.joint else ()
    blk = block_of(q.newton, q.index, tuple(mw.d.q[k].newton for k in members))
    (j,), (j2,) = q.index, blk.partner
    w.element = w.element | {j2}           # (j2 varies with the pair as j does: nothing reading it is hoisted)
    # (the members' moments change with every trial, as q's own: nothing reading them is hoisted)
    w.self_bases = w.self_bases | frozenset(b for k in members for _, b in mw.d.q[k].newton.own)
    size = w.int_value(j.upper + 1)
    vectors = [w.tmp(s) for s in ("M", "V", "DM", "DV", "G", "G", "floor")]
    hs = {key: w.tmp("H") for key in (("x", "x"), ("x", "x2"), ("x2", "x"), ("x2", "x2"))}
    bw = BlockWriter(mw, w, q, j, j2, size, *vectors, *(w.tmp(s) for s in ("f", "ft", "t", "ok", "slope", "last")),
                     hs, members)
    fn.pre += [mw._note("block Newton steps on the exact ELBO: every element at once", q.var)]
    fn.pre += [let(a, f"np.empty(({bw.total},))", size) for a in (bw.m, bw.v, bw.dm, bw.dv, bw.g1, bw.g2, bw.floor)]
    fn.pre += [let(a, f"np.empty(({bw.total}, {bw.total}))", size) for a in bw.hs.values()]
    exps, fills = block_exponents(bw, fn)
    block_start(bw, fn)
    step = Block(Range("_it", str(MAX_STEPS), reads=frozenset()))
    fn.post.append(step)
    block_derivatives(bw, fn, step, blk, exps, fills)
    block_search(bw, fn, step)
    finish = bw.loop(j)
    one = lambda arr: name_ref(arr, mw.names.index(j))  # noqa: E731
    moments = tuple(ex(bw.at(a).text, bw.at(a)) for a in (bw.m, bw.v))
    finish.post += [Note("q's parameters, moments and entropy from (m, v)"),
                    Call("finish_normal_mv", moments, (one(bw.mean), one(bw.sd), one(bw.x2), one(bw.ent)))]
    fn.post.append(finish)
    for k, var in enumerate(bw.members):
        mom = tuple(ex(bw.member(a, k).text, bw.member(a, k)) for a in (bw.m, bw.v))
        fn.post.append(Call("finish_normal_mv", mom, tuple(name_ref(bw.qarray(var, a), "0") for a in
                                                             ("mean", "sd", "x2", "entropy"))))


@dataclass(frozen=True)
class BlockWriter:
    """What the parts of one block Newton update share (newton_block): the writers, q and its element axis j
    (j2: the partner of a pair), the axis' size and the kernel's temporaries (vectors over j: means M, variances
    V, the direction DM, DV, the gradient G1, G2, the feasibility floor; scalars: f, the trial's ft, the step t,
    whether accepted, the slope ∇fᵀd, whether the last step; hs: the cross Hessian's matrices by statistic pair)."""

    mw: object
    w: Writer
    q: object
    j: sp.Idx
    j2: sp.Idx
    size: str
    m: str
    v: str
    dm: str
    dv: str
    g1: str
    g2: str
    floor: str
    f: str
    ft: str
    t: str
    ok: str
    slope: str
    last: str
    hs: dict
    members: tuple[str, ...] = ()     # Joint.members: scalar q's whose (m, v) follow the elements' in the vectors

    @property
    def total(self) -> str:
        """The vectors' length: the elements and the members."""
        return f"{self.size} + {len(self.members)}" if self.members else self.size

    def member(self, arr: str, k: int) -> Ref:
        """The member k's entry of a vector."""
        return Ref(arr, (ex(f"{self.size} + {k}", self.size),))

    def qarray(self, var: str, what: str) -> str:
        """A member's q array: its mean, sd, ⟨x²⟩ or entropy."""
        names = self.mw.names
        return {"mean": names.qparam(var, "mean"), "sd": names.qparam(var, "sd"), "x2": names.moment(var, "x2"),
                "entropy": names.entropy(var)}[what]

    @property
    def objective_expr(self) -> sp.Expr:
        """The part of 𝓛 the step moves: q's, or with members the joint's."""
        nt = self.q.newton
        return nt.joint.objective if nt.joint else nt.objective

    @property
    def mean(self) -> str:
        return self.mw.names.qparam(self.q.var, "mean")

    @property
    def sd(self) -> str:
        return self.mw.names.qparam(self.q.var, "sd")

    @property
    def x2(self) -> str:
        return self.mw.names.moment(self.q.var, "x2")

    @property
    def ent(self) -> str:
        return self.mw.names.entropy(self.q.var)

    def loop(self, i: sp.Idx) -> Block:
        return Block(Range(self.mw.names.index(i), self.size, reads=frozenset({self.size})), i)

    def at(self, arr: str, i: sp.Idx | None = None) -> Ref:
        return name_ref(arr, self.mw.names.index(i or self.j))

    def write(self, into: Block, mt: Expr, vt: Expr, step: str = "") -> None:
        """q's moments at the trial (M + t·DM, V + t·DV) element by element, so that the objective reads it; each
        member's at M[D + k] (+ ``step``·DM[D + k]) likewise."""
        lp = self.loop(self.j)
        lp.post += [assign(self.at(self.mean), mt), assign(self.at(self.x2), ex(f"({mt.text}) ** 2 + {vt.text}", mt, vt))]
        into.post.append(lp)
        for k, var in enumerate(self.members):
            m, v = (read(r) for r in (self.member(self.m, k), self.member(self.v, k)))
            if step:
                m, v = (ex(f"{a.text} + {step} * {d.text}", a, step, d) for a, d in
                        ((m, self.member(self.dm, k)), (v, self.member(self.dv, k))))
            into.post += [assign(name_ref(self.qarray(var, "mean"), "0"), m),
                          assign(name_ref(self.qarray(var, "x2"), "0"), ex(f"({m.text}) ** 2 + {v.text}", m, v))]

    def objective(self, outer: list[Block], into: str, logs: Expr) -> None:
        """``into`` = 𝓛's part + ``logs`` (the entropy's ½ Σ log V), its sums computed in a block of outer[-1]."""
        host = Block()
        outer[-1].post.append(host)
        value = self.w.expr(self.objective_expr, outer + [host], len(outer))
        host.post.append(let(into, f"{value.text} + {logs.text}", value, logs))


def ordered_shares(q, rank: dict) -> list[tuple[sp.Expr, sp.Expr]]:
    """q's shared exponents and the element's share of each (``Newton.shares``) in emit.ordered's order: the
    derivation's follows SymPy's order of the names, and the exponents' order is the order their terms are added in."""
    parts = dict(q.newton.shares)
    return [(e, parts[e]) for e in ordered(list(parts), {i: ("e", k) for k, i in enumerate(q.index)}, rank)]


def block_exponents(bw: BlockWriter, fn: Block) -> tuple[dict, list]:
    """A kernel array X per shared exponent E (over its plate), to hold e^E each step: {e^E: X's read} for the
    derivatives, and (E, plate, X) to fill them (block_derivatives)."""
    w, names = bw.w, bw.mw.names
    exps, fills = {}, []
    for exponent, _ in ordered_shares(bw.q, names.rank):
        plate = axis_order(exponent, {i for i in exponent.free_symbols if isinstance(i, sp.Idx)} - {bw.j}, None,
                           names.rank)
        x = w.tmp("X")
        base = sp.IndexedBase(sp.Symbol(x))
        w.scratch[base] = x
        w.self_bases = w.self_bases | frozenset({base})      # (it changes with every step: never hoisted)
        with names.watch() as sizes:
            shape = ", ".join(w.int_value(i.upper + 1) for i in plate)
        fn.pre.append(let(x, f"np.empty(({shape},))", *sizes))
        exps[sp.exp(exponent)] = base[tuple(plate)]
        fills.append((exponent, plate, x))
    return exps, fills


def block_start(bw: BlockWriter, fn: Block) -> None:
    """(M, V) from q, f at them; where f is not finite, newton_block_feasible's moves (derive.newton.feasible_block)."""
    start = bw.loop(bw.j)
    sd = bw.at(bw.sd)
    start.post += [assign(bw.at(bw.m), ex(bw.at(bw.mean).text, bw.at(bw.mean))),
                   assign(bw.at(bw.v), ex(f"{sd.text} * {sd.text}", sd)),
                   assign(bw.at(bw.floor), ex(f"1e-8 * {bw.at(bw.v).text}", bw.at(bw.v)))]
    fn.post.append(start)
    for k, var in enumerate(bw.members):
        sd, mean = name_ref(bw.qarray(var, "sd"), "0"), name_ref(bw.qarray(var, "mean"), "0")
        fn.post += [assign(bw.member(bw.m, k), read(mean)),
                    assign(bw.member(bw.v, k), ex(f"{sd.text} * {sd.text}", sd)),
                    assign(bw.member(bw.floor, k), ex(f"1e-8 * {bw.member(bw.v, k).text}", bw.member(bw.v, k)))]
    logs = ex(f"newton_block_logs({bw.v}, {bw.v}, 0.0)", bw.v)
    bw.objective([fn], bw.f, logs)
    fix = Block(Range("_fx", str(FEASIBLE), reads=frozenset()))
    fn.post.append(fix)
    finite = Block(test=ex(f"math.isfinite({bw.f})", bw.f))
    finite.post.append(Break())
    fix.post += [finite, Call("newton_block_feasible", (Ref(bw.m), Ref(bw.v), ex(bw.floor, bw.floor)))]
    bw.write(fix, ex(bw.at(bw.m).text, bw.at(bw.m)), ex(bw.at(bw.v).text, bw.at(bw.v)))
    bw.objective([fn, fix], bw.f, logs)


def block_derivatives(bw: BlockWriter, fn: Block, step: Block, blk, exps: dict, fills: list) -> None:
    """A step's e^E, the gradient G_s[a] and cross Hessian H_st[a, b] read off the Gram matrices (gram_form)."""
    w, names, j, j2 = bw.w, bw.mw.names, bw.j, bw.j2
    nt = bw.q.newton
    for exponent, plate, x in fills:
        loops = w._loops([(i, 0, i.upper) for i in plate])
        value = w.expr(exponent, [fn, step] + loops, 1 + len(loops))
        loops[-1].post.append(assign(name_ref(x, *(names.index(i) for i in plate)), ex(f"math.exp({value.text})", value)))
        step.post.append(loops[0])
    keys = list(bw.hs)
    # (the members' entries: gradient, cross terms with the element j (both ways round: H_st[D + k, j] is
    # ∂g_t(j)/∂⟨T_s(k)⟩), among the members)
    ji = ex(names.index(j), names.index(j))
    extra = [(bw.member(g, k), blk.gradient[k][s], 0) for k in range(len(bw.members))
             for s, g in zip(STATS, (bw.g1, bw.g2))]
    extra += [(Ref(h, (ji, bw.member(h, k).index[0])), blk.cross[k][key], 1) for k in range(len(bw.members))
              for key, h in bw.hs.items()]
    extra += [(Ref(h, (bw.member(h, k).index[0], ji)), blk.cross[k][key[::-1]], 1)
              for k in range(len(bw.members)) for key, h in bw.hs.items()]
    extra += [(Ref(h, (bw.member(h, k).index[0], bw.member(h, k2).index[0])), blk.among[k][k2][key], 0)
              for k in range(len(bw.members)) for k2 in range(len(bw.members)) for key, h in bw.hs.items()]
    grams = gram_form([nt.gradient[s].xreplace(exps) for s in STATS] +
                      [blk.hessian[key].xreplace(exps) for key in keys] + [e.xreplace(exps) for _, e, _ in extra],
                      j, j2, frozenset(e.base for e in exps.values()), names.rank)
    views = write_grams(bw.mw, w, grams, fn, step, j)
    rows = bw.loop(j)
    step.post.append(rows)
    for s, g in zip(STATS, (bw.g1, bw.g2)):
        value = w.expr(grams.rewritten[STATS.index(s)].xreplace(views), [fn, step, rows], 2)
        rows.post.append(assign(bw.at(g), value))
    cols = bw.loop(j2)
    rows.post.append(cols)
    for n, h in enumerate(bw.hs.values()):
        pair = name_ref(h, names.index(j), names.index(j2))
        value = w.expr(grams.rewritten[len(STATS) + n].xreplace(views), [fn, step, rows, cols], 3)
        cols.post.append(assign(pair, value))
    for (into, _, per_row), e in zip(extra, grams.rewritten[len(STATS) + len(keys):]):
        host = rows if per_row else step
        value = w.expr(e.xreplace(views), [fn, step, rows] if per_row else [fn, step], 2 if per_row else 1)
        host.post.append(assign(into, value))


def block_search(bw: BlockWriter, fn: Block, step: Block) -> None:
    """A step's direction, its stops and its line search (as newton_element's), the move of (M, V) it accepts."""
    m, v, dm, dv, f, ft, t, ok, slope, last = (bw.m, bw.v, bw.dm, bw.dv, bw.f, bw.ft, bw.t, bw.ok, bw.slope,
                                                bw.last)
    step.post.append(Call("newton_block_direction", (ex(m, m), ex(v, v), ex(bw.g1, bw.g1), ex(bw.g2, bw.g2)) +
                          tuple(ex(h, h) for h in bw.hs.values()) + (Ref(dm), Ref(dv)), (Ref(slope),)))
    done = Block(test=ex(f"not ({slope} > {TOL!r} * (1.0 + abs({f})))", slope, f))
    done.post.append(Break())
    step.post += [done, let(last, f"{slope} <= {NEAR!r} * (1.0 + abs({f}))", slope, f),
                  Call("newton_block_first_step", (ex(v, v), ex(dv, dv)), (Ref(t),)), let(ok, "False"), let(ft, f, f)]
    search = Block(Range("_ls", str(MAX_HALVINGS), reads=frozenset()))
    step.post.append(search)
    trial = [ex(f"{bw.at(a).text} + {t} * {bw.at(d).text}", bw.at(a), t, bw.at(d)) for a, d in ((m, dm), (v, dv))]
    bw.write(search, *trial, t)
    bw.objective([fn, step, search], ft, ex(f"newton_block_logs({v}, {dv}, {t})", v, dv, t))
    failed = accept_or_halve(search, f, ft, t, ok, slope, last)
    bw.write(failed, ex(bw.at(m).text, bw.at(m)), ex(bw.at(v).text, bw.at(v)))
    failed.post.append(Break())
    step.post.append(failed)
    move = bw.loop(bw.j)
    move.post += [assign(bw.at(a), e) for a, e in zip((m, v), trial)]
    moves = [assign(bw.member(a, k), ex(f"{bw.member(a, k).text} + {t} * {bw.member(d, k).text}",
                                        bw.member(a, k), t, bw.member(d, k)))
             for k in range(len(bw.members)) for a, d in ((m, dm), (v, dv))]
    ended = Block(test=ex(last, last))
    ended.post.append(Break())
    step.post += [move, *moves, let(f, ft, ft), ended]


@dataclass(frozen=True)
class Gram:
    """One weighted Gram matrix Fᵀ diag(w) F over a data plate: ``plate`` its index, ``weight`` w(n) (the factors
    of a summand that read n alone: e^{E_n} times data), ``features`` the columns' u_f(n, j) at q's element index j
    (data only; column block 0 is the constant 1, one column, then D columns per feature)."""

    plate: sp.Idx
    weight: sp.Expr
    features: tuple[sp.Expr, ...]


@dataclass(frozen=True)
class GramForm:
    """Expressions with their sums over a data plate read off Gram matrices: ``rewritten[i]`` is the i-th input
    with each such sum replaced by ``GramEntry`` reads c·G_g[f_a, f_b][j_a, j_b] (``grams[g]``); a sum that is no
    Gram entry (a summand that reads two elements in one factor, or q's moments in a feature) stays as written."""

    rewritten: tuple[sp.Expr, ...]
    grams: tuple[Gram, ...]


class GramEntry(sp.Function):
    """G_g[f_a, f_b][j_a, j_b] (args g, f_a, f_b, j_a, j_b): the (f_a, j_a), (f_b, j_b) entry of Gram matrix g; its
    view array is bound when the kernel is written (write_grams)."""


def gram_form(exprs: list[sp.Expr], j: sp.Idx, j2: sp.Idx, weights: frozenset, rank: dict | None = None) -> GramForm:
    """Each sum Σ_n c·u(n, j)·u'(n, j2)·w(n) of ``exprs`` (one plate index n; u, u' products of data factors
    reading j or j2 (the partner) with n; w reading n alone and one of the arrays ``weights``, e^{E_n}; c not
    reading n) as c·(Fᵀ diag(w) F)[(u, j), (u', j2)], where F's columns are the constant and each feature u at every
    j: the cross Hessian's O(D²) sums over N become one matrix product (docs/derivation.md, section 10).

    The Gram matrices and each one's feature columns go in emit.ordered's order (``rank``: Names.rank), never in
    the order SymPy's traversal meets them, which follows the names: the columns set the generated code's reads
    and the order of the terms that read them."""
    def weighted(e: sp.Expr) -> bool:
        return any(isinstance(b, sp.Indexed) and b.base in weights for b in sp.preorder_traversal(e))

    found: dict[sp.Sum, list] = {}

    def discover(e: sp.Sum) -> sp.Expr:
        if e not in found and weighted(e):
            found[e] = _gram_terms(e, j, j2, weighted)
        return e

    for e in exprs:
        _outer_sums(e, discover)
    terms = [t for ts in found.values() if ts for t in ts]
    rank = rank or {}
    grams = [(g[0], g[1]) for g in ordered(list(dict.fromkeys(sp.Tuple(p, w) for p, _, _, _, w in terms)), {}, rank)]
    # (the simplest first, the data themselves before their powers and products)
    features = {p: sorted(dict.fromkeys(u for q, _, a, b, _ in terms if q == p for u in (a, b) if u != 1),
                          key=lambda u: (sp.count_ops(u), structure(u, {p: ("n",), j: ("j",)}, rank)))
                for p in dict.fromkeys(p for p, _ in grams)}

    def entry(e: sp.Sum) -> sp.Expr:
        if not found.get(e):
            return e
        out = []
        for p, c, a, b, w in found[e]:
            fa, fb = (features[p].index(u) + 1 if u != 1 else 0 for u in (a, b))
            out.append(c * GramEntry(grams.index((p, w)), fa, fb, j if fa else 0, j2 if fb else 0))
        return sp.Add(*out)

    rewritten = tuple(_outer_sums(e, entry) for e in exprs)
    return GramForm(rewritten, tuple(Gram(p, wt, tuple(features[p])) for p, wt in grams))


def _outer_sums(e: sp.Expr, f) -> sp.Expr:
    """e with each sum not inside another replaced by f(sum)."""
    if isinstance(e, sp.Sum):
        return f(e)
    if not e.args or isinstance(e, (sp.Indexed, sp.Idx, sp.IndexedBase)):
        return e
    return e.func(*(_outer_sums(a, f) for a in e.args))


def _gram_terms(e: sp.Sum, j: sp.Idx, j2: sp.Idx, weighted) -> list | None:
    """A sum over one whole data plate p as its terms (p, c, u, u', w) (gram_form), None where a term is no
    Gram entry."""
    if len(e.limits) != 1:
        return None
    p, lo, hi = e.limits[0]
    if sp.sympify(lo) != 0 or sp.sympify(hi) != p.upper:
        return None
    split = []
    for term in sp.Add.make_args(sp.expand(e.function)):
        parts = _factors(term, p, j, j2)
        if parts is None:
            return None
        w = sp.Mul(*parts["w"])
        if not weighted(w) or {i for i in w.free_symbols if isinstance(i, sp.Idx)} - {p}:
            return None
        a, b = sp.Mul(*parts["a"]), sp.Mul(*parts["b"]).xreplace({j2: j})
        if (a.free_symbols | b.free_symbols) & {i for i in e.free_symbols if isinstance(i, sp.Idx)} - {j}:
            return None
        split.append((p, sp.Mul(*parts["c"]), a, b, w))
    return split


def _factors(term: sp.Expr, p: sp.Idx, j: sp.Idx, j2: sp.Idx) -> dict | None:
    """A summand's factors by what they read: "c" not the plate p, "a" j (with p), "b" j2 (with p), "w" p alone;
    None where a factor reads both elements or is no data (an exponent not cached in X: the sum stays)."""
    from ppvi.derive.qfamily import ParamBase
    from ppvi.derive.symbols import MomentBase

    parts = {"c": [], "a": [], "b": [], "w": []}
    for f in sp.Mul.make_args(term):
        free = f.free_symbols
        if p not in free:
            parts["c"].append(f)
        elif j in free and j2 in free or any(
                isinstance(b.base if isinstance(b, sp.Indexed) else b, (MomentBase, ParamBase, GramEntry))
                or isinstance(b, sp.Sum) for b in sp.preorder_traversal(f)):
            return None
        elif j in free or j2 in free:
            parts["a" if j in free else "b"].append(f)
        else:
            parts["w"].append(f)
    return parts


def write_grams(mw, w: Writer, form: GramForm, fn: Block, step: Block, j: sp.Idx) -> dict:
    """The Gram matrices of ``form`` in the kernel: each plate's features F (N × (1 + F·D), data only: filled once,
    before the steps), each weight w(n) and its product Fᵀ diag(w) F (weighted_gram: one BLAS product) once a
    step, after the exponents; returns {GramEntry: a read of the view of G's (f_a, f_b) block} for the
    expressions."""
    names = mw.names
    size = w.int_value(j.upper + 1)
    mats, views = {}, {}
    used = set().union(*(x.atoms(GramEntry) for x in form.rewritten))
    for p in dict.fromkeys(g.plate for g in form.grams):
        feats = next(g.features for g in form.grams if g.plate == p)
        f, n = w.tmp("F"), w.int_value(p.upper + 1)
        width = f"1 + {len(feats)} * {size}" if feats else "1"
        fn.pre += [Note("the features of the sums over the data plate, a column each: their Gram matrices are products"),
                   let(f, f"np.empty(({n}, {width}))", n, size)]
        loops = w._loops([(p, 0, p.upper)])
        row = Expr(names.index(p), frozenset({names.index(p)}))
        loops[-1].post.append(assign(Ref(f, (row, Expr("0"))), Expr("1.0")))
        for c, u in enumerate(feats):
            cols = w._loops([(j, 0, j.upper)])
            value = w.expr(u, [fn] + loops + cols, 1 + len(cols))
            col = Expr(f"1 + {c} * {size} + {names.index(j)}", frozenset({size, names.index(j)}))
            cols[-1].post.append(assign(Ref(f, (row, col)), value))
            loops[-1].post.append(cols[0])
        fn.pre.append(loops[0])
        mats[p] = (f, n, width)
    for g, gram in enumerate(form.grams):
        f, n, width = mats[gram.plate]
        wt, scratch, out = w.tmp("w"), w.tmp("S"), w.tmp("Gram")
        fn.pre += [let(wt, f"np.empty(({n},))", n), let(scratch, f"np.empty(({n}, {width}))", n, size),
                   let(out, f"np.empty(({width}, {width}))", size)]
        loops = w._loops([(gram.plate, 0, gram.plate.upper)])
        value = w.expr(gram.weight, [fn, step] + loops, 1 + len(loops))
        loops[-1].post.append(assign(name_ref(wt, names.index(gram.plate)), value))
        step.post += [loops[0], Call("weighted_gram", (Expr(f, frozenset({f})), Expr(wt, frozenset({wt})),
                                                       name_ref(scratch), name_ref(out)))]

        def span(c: int) -> str:
            return "0:1" if c == 0 else f"1 + {c - 1} * {size}:1 + {c} * {size}"
        for fa, fb in sorted({(int(e.args[1]), int(e.args[2])) for e in used if int(e.args[0]) == g}):
            view = w.tmp("G")
            fn.pre.append(let(view, f"{out}[{span(fa)}, {span(fb)}]", out, size))
            base = sp.IndexedBase(sp.Symbol(view))
            w.scratch[base] = view
            w.self_bases = w.self_bases | frozenset({base})      # (refilled every step: never hoisted)
            views[(g, fa, fb)] = base
    return {e: views[(int(e.args[0]), int(e.args[1]), int(e.args[2]))][e.args[3], e.args[4]] for e in used}
