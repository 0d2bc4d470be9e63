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
"""

from __future__ import annotations

import sympy as sp

from ppvi.codegen.emit import Block, Writer, axis_order, name_ref
from ppvi.codegen.ir import Call, Expr, Note, Range
from ppvi.derive.newton import ARMIJO, FEASIBLE, MAX_HALVINGS, MAX_STEPS, NEAR, STATS, TOL


def newton_element(mw, q, w: Writer, levels: list[Block]) -> None:
    """The Newton update of the element of ``q`` whose loops are ``levels`` (ModuleWriter ``mw``'s names)."""
    nt = q.newton
    names = mw.names
    damped = bool(w.snapshot_bases)
    if damped:       # the damped (parallel) schedule: the same monotone Newton steps on the live q; η stored after
        w.self_bases, w.snapshot_bases = w.snapshot_bases, frozenset()
    el = levels[-1]
    at = [names.index(i) for i in q.index] or ["0"]
    mean, x2 = name_ref(names.qparam(q.var, "mean"), *at).text, name_ref(names.moment(q.var, "x2"), *at).text
    m, v, f, ft, t, ok = (w.tmp(s) for s in ("m", "v", "f", "ft", "t", "ok"))
    dm, dv, slope = w.tmp("dm"), w.tmp("dv"), w.tmp("slope")
    sd = name_ref(names.qparam(q.var, "sd"), *at).text     # (v from sd: ⟨x²⟩ − m² loses a v below ε·m²)
    el.post += [mw._note("Newton steps on the exact ELBO", q.var), f"{m} = {mean}", f"{v} = {sd} * {sd}"]
    cached, exps, settle = exponent_caches(mw, q, w, levels)
    goal = nt.objective.xreplace(cached)
    gradient = {s: e.xreplace(exps) for s, e in nt.gradient.items()}
    hessian = {k: e.xreplace(exps) for k, e in nt.hessian.items()}

    def objective(host: Block, outer: list[Block], into: str, var: str) -> None:
        """``into`` = 𝓛's part + ½ log(var), its sums (which read q's own moments) computed in ``host``."""
        value = w.expr(goal, outer + [host], len(outer))
        host.post.append(f"{into} = {value.text} + 0.5 * math.log({var})")

    start = Block()
    el.post.append(start)
    objective(start, levels, f, v)
    # f = −∞ (E[e^ψ] overflows): v shrinks by 16 down to 10⁻⁸ of its start, then m halves (derive.newton.feasible)
    floor = w.tmp("floor")
    el.post.append(f"{floor} = 1e-8 * {v}")
    fix = Block(Range("_fx", str(FEASIBLE), reads=frozenset()))
    el.post.append(fix)
    finite = Block(test=f"math.isfinite({f})")
    finite.post.append("break")
    shrink = Block(test=f"{v} / 16.0 >= {floor}")
    shrink.post.append(f"{v} = {v} / 16.0")
    halve = Block(test=f"not ({v} / 16.0 >= {floor})")
    halve.post.append(f"{m} = 0.5 * {m}")
    fix.post += [finite, shrink, halve, f"{mean} = {m}", f"{x2} = {m} * {m} + {v}"]
    again = Block()
    fix.post.append(again)
    objective(again, levels + [fix], f, v)
    step = Block(Range("_it", str(MAX_STEPS), reads=frozenset()))
    el.post.append(step)
    inner = levels + [step]
    for loops in fill_exps(w, exps, cached, inner):
        step.pre.append(loops[0])          # (before the derivatives' sums, which go to step.pre as they are written)
    grads = []
    for s in STATS:
        g = w.tmp("g")
        step.post.append(f"{g} = {w.expr(gradient[s], inner, len(levels)).text}")
        grads.append(g)
    hess = []
    for key in (("x", "x"), ("x", "x2"), ("x2", "x2")):
        h = w.tmp("h")
        step.post.append(f"{h} = {w.expr(hessian[key], inner, len(levels)).text}")
        hess.append(h)
    step.post.append(f"{dm}, {dv}, {slope} = newton_direction({m}, {v}, {', '.join(grads + hess)})")
    done = Block(test=f"not ({slope} > {TOL!r} * (1.0 + abs({f})))")
    done.post.append("break")
    last = w.tmp("last")      # one full step, then stop (derive.newton.NEAR)
    step.post += [done, f"{last} = {slope} <= {NEAR!r} * (1.0 + abs({f}))",
                  f"{t} = newton_first_step({v}, {dv})", f"{ok} = False", f"{ft} = {f}"]
    search = Block(Range("_ls", str(MAX_HALVINGS), reads=frozenset()))
    step.post.append(search)
    search.post += [f"{mean} = {m} + {t} * {dm}", f"{x2} = ({m} + {t} * {dm}) ** 2 + {v} + {t} * {dv}"]
    trial = Block()
    search.post.append(trial)
    objective(trial, inner + [search], ft, f"{v} + {t} * {dv}")
    accept = Block(test=f"{ft} >= {f} and ({last} or {ft} >= {f} + {ARMIJO!r} * {t} * {slope})")
    accept.post += [f"{ok} = True", "break"]
    once = Block(test=last)
    once.post.append("break")
    search.post += [accept, once, f"{t} = 0.5 * {t}"]
    failed = Block(test=f"not {ok}")
    failed.post += [f"{mean} = {m}", f"{x2} = {m} * {m} + {v}", "break"]
    ended = Block(test=last)
    ended.post.append("break")
    step.post += [failed, f"{m} = {m} + {t} * {dm}", f"{v} = {v} + {t} * {dv}", f"{f} = {ft}", ended]
    one = lambda arr: name_ref(arr, *at)  # noqa: E731
    el.post += [Note("q's parameters, moments and entropy from (m, v)"),
                Call("finish_normal_mv", (Expr(m, frozenset({m})), Expr(v, frozenset({v}))),
                     (one(names.qparam(q.var, "mean")), one(names.qparam(q.var, "sd")), one(names.moment(q.var, "x2")),
                      one(names.entropy(q.var))))]
    el.post += settle
    if damped:           # η of the new q, (m/v, −1/(2v)): the damped schedule's next step moves from it
        el.post += [f"{name_ref(names.natural(q.var, 'x'), *at).text} = {m} / {v}",
                    f"{name_ref(names.natural(q.var, 'x2'), *at).text} = -0.5 / {v}"]


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
    for exponent, part in q.newton.shares:
        plate = axis_order(exponent, {i for i in exponent.free_symbols if isinstance(i, sp.Idx)} - element, None,
                           names.rank)
        a, r, x = w.tmp("A"), w.tmp("R"), w.tmp("X")
        bases = {x: sp.IndexedBase(sp.Symbol(x)) for x in (a, r, x)}
        w.scratch.update({b: x for x, b in bases.items()})
        w.self_bases = w.self_bases | frozenset(bases.values())   # (they change with the element: never hoisted)
        shape = ", ".join(w.int_value(i.upper + 1) for i in plate)
        at = ", ".join(names.index(i) for i in plate)
        fn.pre += [mw._note("the exponent of the exp link per point, moved by each element's share", q.var),
                   f"{a} = np.empty(({shape},))", f"{r} = np.empty(({shape},))", f"{x} = np.empty(({shape},))"]
        loops = w._loops([(i, 0, i.upper) for i in plate])
        loops[-1].post.append(f"{a}[{at}] = {w.expr(exponent, [fn] + loops, len(loops)).text}")
        fn.pre.append(loops[0])
        for into, line in ((el.post, f"{r}[{at}] = {a}[{at}] - ({{}})"), (settle, f"{a}[{at}] = {r}[{at}] + {{}}")):
            loops = w._loops([(i, 0, i.upper) for i in plate])
            share = w.expr(part, levels + loops, len(levels) + len(loops) - 1).text
            loops[-1].post.append(line.format(share))
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
        value = w.expr(cached[key], levels + loops, len(levels) + len(loops) - 1).text
        loops[-1].post.append(f"{w.array(exp_n.base)}[{', '.join(w.names.index(i) for i in plate)}] = {value}")
        yield loops
