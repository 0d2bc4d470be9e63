"""Exponential links: a Gaussian q updated by Newton steps on the exact ELBO (docs/derivation.md, section 10).

``y ~ Poisson(exp(ψ))`` (also ``Exponential(exp(ψ))``, ``Gamma(a, exp(ψ))``) with ψ affine in real latents
puts E[e^ψ] = exp(E[ψ] + Var[ψ]/2) into the expected log joint 𝓛: closed form, exact, but not linear in a
latent's moments (⟨x⟩, ⟨x²⟩), so 19.56 names no family.  q(x_a) stays Normal by choice, N(m, v), and its
(m, v) maximise the ELBO restricted to it,

    f(m, v) = 𝓛(⟨x_a⟩ = m, ⟨x_a²⟩ = m² + v) + ½ log v + const,

which is concave in (m, v): 𝓛 is a linear function of (m, m² + v) with a negative coefficient of the square,
plus terms −c·exp(α m + α² v/2 + …) with c ≥ 0.  The derivation gives the gradient and Hessian of 𝓛 in the
moments at a generic element; the update takes Newton steps in (m, v), each accepted only where a
backtracking line search finds the exact f increased, so every update is monotone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import sympy as sp

from ppvi.derive.canonical import canonical
from ppvi.families.registry import unit_of, unit_of_distribution

STATS = ("x", "x2")
ARMIJO = 1e-4          # sufficient increase: f(trial) ≥ f + ARMIJO·t·∇fᵀd
MAX_HALVINGS = 40     # t down to 10⁻¹²: a smaller step changes f by less than its rounding
MAX_STEPS = 100
FEASIBLE = 80          # moves at most towards a finite f (feasible)
TOL = 1e-15            # stop where ∇fᵀd (twice the predicted increase) is below TOL·(1 + |f|): rounding
NEAR = 1e-10           # ∇fᵀd below NEAR·(1 + |f|): one last full step (if f does not decrease), then stop — the
                       # next decrement, about its square, is below f's rounding, which over N terms exceeds TOL·|f|


@dataclass(frozen=True)
class Newton:
    """What the Newton update of a Normal q(x_a) reads, at the generic element of its QFactor.

    ``gradient[s]`` is ∂𝓛/∂⟨T_s(x_a)⟩ and ``hessian[(s, t)]`` ∂²𝓛/∂⟨T_s⟩∂⟨T_t⟩ (s, t in x, x2), both
    reading x_a's own moments; ``objective`` is the part of 𝓛 that x's moments enter (the expected terms of
    the factors that read x, summed over their plates); ``links`` the exp-link factors among them."""

    gradient: dict[str, sp.Expr]
    hessian: dict[tuple[str, str], sp.Expr]
    objective: sp.Expr
    links: tuple[int, ...]
    separable: bool = False     # the objective reads q's own moments at the element only (a local latent)
    shares: tuple[tuple[sp.Expr, sp.Expr], ...] = ()    # (ψ-exponent E, the element's share of it): see share
    own: tuple[tuple[str, sp.Basic], ...] = ()     # (statistic, q's moment base): what block_of differentiates in
    blocked: bool = False       # q's elements share an exponent: a joint Newton step over all of them applies (block_of)
    joint: "Joint | None" = None    # a block q's step also moves these scalar q's (join_blocks)
    joined: str | None = None   # a scalar q moved by this block q's step (join_blocks): its own update is none


@dataclass(frozen=True)
class Joint:
    """The scalar Normal q's that enter a block q's shared exponent (an intercept ``b`` in exp(b + Σ_j x_nj w_j)),
    moved by its block step with it (docs/derivation.md, section 10, "Block steps"): ``members`` their names, in
    the order of their coordinates after the block q's elements; ``objective`` the part of 𝓛 that any moment of
    the block q or a member enters."""

    members: tuple[str, ...]
    objective: sp.Expr


@dataclass(frozen=True)
class Block:
    """The cross Hessian of 𝓛 in two elements' moments, for a joint Newton step over all of q's elements (and the
    derivatives in its joint's members' moments: ``gradient``, ``cross``, ``among``, empty without members).

    ``hessian[(s, t)]`` is ∂²𝓛/∂⟨T_s(x_a)⟩∂⟨T_t(x_b)⟩ with a = the element (``Newton``'s index) and b = ``partner``,
    a second generic element over the same ranges (s, t in x, x2; a KroneckerDelta(a, b) carries the diagonal's
    own terms, so a = b gives ``Newton.hessian``)."""

    partner: tuple[sp.Idx, ...]
    hessian: dict[tuple[str, str], sp.Expr]
    gradient: tuple[dict[str, sp.Expr], ...] = ()     # [k][s] ∂𝓛/∂⟨T_s(member k)⟩
    cross: tuple[dict[tuple[str, str], sp.Expr], ...] = ()   # [k][(s, t)] ∂g_s(a)/∂⟨T_t(member k)⟩ (reads a)
    among: tuple[tuple[dict[tuple[str, str], sp.Expr], ...], ...] = ()  # [k][l][(s, t)] ∂g_s(k)/∂⟨T_t(l)⟩


def reads_own_exp(e: sp.Expr, own: set) -> bool:
    """Whether an exponential in ``e`` reads one of the moment bases ``own``."""
    return any(isinstance(n, sp.exp) and any(isinstance(b, sp.Indexed) and b.base in own or b in own
                                             for b in sp.preorder_traversal(n))
               for n in sp.preorder_traversal(e))


def derive_newton(total: sp.Expr, expected: dict[int, sp.Expr], gradient: dict[str, sp.Expr],
                  own: dict[str, tuple[sp.Basic, tuple]], partial: Callable, links: tuple[int, ...]) -> Newton:
    """The Hessian of 𝓛 in x_a's moments (from the gradient ``gradient``), and x's part of 𝓛."""
    hessian = {}
    for i, s in enumerate(STATS):
        for t in STATS[i:]:
            hessian[(s, t)] = canonical(partial(gradient[s], *own[t]))
    bases = {m for m, _ in own.values()}
    element = next(iter(own.values()))[1]
    terms = [t for e in expected.values() for t in sp.Add.make_args(sp.expand(e, deep=False))
             if _reads(t, bases)]
    restricted = [_at_element(t, bases, element) for t in terms]
    separable = all(r is not None for r in restricted)
    objective = sp.Add(*(restricted if separable else terms))
    shares = () if separable else exponent_shares([objective, *gradient.values(), *hessian.values()], bases, element)
    return Newton(gradient, hessian, objective, links, separable, shares,
                  tuple((t, own[t][0]) for t in STATS), bool(shares and element))


def block_of(nt: Newton, element: tuple[sp.Idx, ...], members: tuple[Newton, ...] = ()) -> Block:
    """The cross Hessian ∂g_s(a)/∂⟨T_t(b)⟩ of the gradient at the element a (q's ``element`` index), in a partner b
    over a's ranges: what a joint Newton step over every element of q needs where they share an exponent
    (``nt.blocked``; docs/derivation.md, section 10, "Block steps").  With ``members`` (the Newton of each of
    ``nt.joint``'s scalar q's) also their gradients and the cross terms between them and the elements.  Derived on
    demand, not with q (it costs about half a derivation's time).  The partner's names carry a 2 (unprimed: primes
    are the summation indices')."""
    from ppvi.derive.meanfield import partial

    partner = tuple(sp.Idx(f"{i.name}2", (i.lower, i.upper)) for i in element)
    own = dict(nt.own)
    hessian = {(s, t): canonical(partial(nt.gradient[s], own[t], partner)) for s in STATS for t in STATS}
    if not members:
        return Block(partner, hessian)
    bases = [dict(k.own) for k in members]
    cross = tuple({(s, t): canonical(partial(nt.gradient[s], b[t], ())) for s in STATS for t in STATS} for b in bases)
    among = tuple(tuple({(s, t): canonical(partial(k.gradient[s], b[t], ())) for s in STATS for t in STATS}
                        for b in bases) for k in members)
    return Block(partner, hessian, tuple(k.gradient for k in members), cross, among)


def join_blocks(d):
    """The derivation with each scalar Normal q whose moments enter a block q's shared exponent (the intercept b of
    ψ_n = b + Σ_j x_nj w_j) joined to that q's block step (``Newton.joint``, ``Newton.joined``): one joint Newton
    step in the (m, v) of every element and every member, the cross terms included (docs/derivation.md, section 10,
    "Block steps").  A scalar joins the first such block q (in q's order); it keeps its own steps in the damped
    schedule, which has no block step."""
    import dataclasses

    q = dict(d.q)
    joined: dict[str, list[str]] = {}
    for var, qf in d.q.items():
        if not block_step(qf):
            continue
        exponents = [e for e, _ in qf.newton.shares]
        for other, qo in d.q.items():
            nt = qo.newton
            if qo.index or nt is None or nt.blocked or q[other].newton.joined or unit_of(qo.family).event or \
                    not any(_reads(e, {b for _, b in nt.own}) for e in exponents):
                continue
            joined.setdefault(var, []).append(other)
            q[other] = dataclasses.replace(qo, newton=dataclasses.replace(nt, joined=var))
    for var, members in joined.items():
        bases = {b for v in (var, *members) for _, b in d.q[v].newton.own}
        terms = [t for e in d.expected.values() for t in sp.Add.make_args(sp.expand(e, deep=False)) if _reads(t, bases)]
        joint = Joint(tuple(members), sp.Add(*terms))
        q[var] = dataclasses.replace(q[var], newton=dataclasses.replace(q[var].newton, joint=joint))
    return dataclasses.replace(d, q=q)


def block_step(q) -> bool:
    """Whether q's plain update takes block steps: q's elements share an exponent (``Newton.blocked``) over one
    element axis."""
    return q.newton is not None and q.newton.blocked and len(q.index) == 1


def exponent_shares(exprs: list[sp.Expr], bases: set, element: tuple) -> tuple[tuple[sp.Expr, sp.Expr], ...]:
    """(E, its element's share) for each exponent E of ``exprs`` that reads q's own moments over a plate (E[ψ_n] +
    Var[ψ_n]/2, free in n) and whose share :func:`share` finds: the compiled update keeps E per n and moves it by
    the share's change alone (docs/derivation.md, section 10, "Cost")."""
    out = {}
    for e in exprs:
        for n in sp.preorder_traversal(e):
            if isinstance(n, sp.exp) and n.args[0] not in out and _reads(n.args[0], bases) and \
                    {i for i in n.args[0].free_symbols if isinstance(i, sp.Idx)} - set(element):
                g = share(n.args[0], bases, element)
                if g is not None:
                    out[n.args[0]] = g
    return tuple(out.items())


def share(exponent: sp.Expr, bases: set, element: tuple) -> sp.Expr | None:
    """The terms of ``exponent`` that read q's own moments, at the element: E = rest + share, the rest constant in
    the element's moments.  A term c·Σ_P g(P) whose g reads the moments only at P (P over the element's ranges)
    shares g at the element; a term outside a sum must read them only at the element.  None otherwise (a
    product of two elements: the exponent would not be affine in them)."""
    out = []
    for term in sp.Add.make_args(sp.expand(exponent, deep=False)):
        if not _reads(term, bases):
            continue
        coeff, sums = term.as_independent(sp.Sum, as_Add=False)
        if isinstance(sums, sp.Sum) and not _reads(coeff, bases):
            plate = tuple(lim[0] for lim in sums.limits)
            if len(plate) != len(element) or any(sp.sympify(lo) != 0 or sp.sympify(hi) != j.upper
                                                  for (_, lo, hi), j in zip(sums.limits, element)):
                return None
            g = sums.function
        elif not isinstance(sums, sp.Sum):
            plate, g = tuple(element), term
            coeff = sp.S.One
        else:
            return None
        for n in sp.preorder_traversal(g):
            if isinstance(n, sp.Indexed) and n.base in bases and tuple(n.indices) != plate:
                return None
            if isinstance(n, sp.Sum) and _reads(n, bases):
                return None
        out.append(coeff * g.xreplace(dict(zip(plate, element))))
    return sp.Add(*out)


def _reads(e: sp.Expr, bases: set) -> bool:
    return any(isinstance(n, sp.Indexed) and n.base in bases or n in bases for n in sp.preorder_traversal(e))


def _at_element(term: sp.Expr, bases: set, element: tuple) -> sp.Expr | None:
    """The summand of ``term`` = c·Σ_P g(P) at the element's plate index, where g reads q's own moments only
    at P (each element of a local latent enters its own data point's terms): what f needs of 𝓛, the rest being
    constant in the element.  None where the term is not of that form (a global latent: ψ_n reads every w[d])."""
    if not element:
        return None
    coeff, sums = term.as_independent(sp.Sum, as_Add=False)
    if not isinstance(sums, sp.Sum) or _reads(coeff, bases) or len(sums.limits) != len(element):
        return None
    plate = tuple(lim[0] for lim in sums.limits)
    for n in sp.preorder_traversal(sums.function):
        if isinstance(n, sp.Indexed) and n.base in bases and tuple(n.indices[:len(plate)]) != plate:
            return None
        if isinstance(n, sp.Symbol) and n in bases:
            return None
    return coeff * sums.function.xreplace(dict(zip(plate, element)))


def in_m_v(m: float, v: float, g: dict[str, float], h: dict[tuple[str, str], float]) -> tuple[np.ndarray, np.ndarray]:
    """∇f and ∇²f in (m, v) from 𝓛's derivatives in (μ₁, μ₂) = (m, m² + v), with f = 𝓛 + ½ log v."""
    g1, g2 = g["x"], g["x2"]
    h11, h12, h22 = h[("x", "x")], h[("x", "x2")], h[("x2", "x2")]
    grad = np.array([g1 + 2 * m * g2, g2 + 0.5 / v])
    hess = np.array([[h11 + 4 * m * h12 + 4 * m * m * h22 + 2 * g2, h12 + 2 * m * h22],
                     [h12 + 2 * m * h22, h22 - 0.5 / (v * v)]])
    return grad, hess


def direction(grad: np.ndarray, hess: np.ndarray) -> np.ndarray:
    """The Newton direction −H⁻¹∇f where H is negative definite (f is concave: it always is, up to
    rounding), else the gradient scaled by the largest curvature (an ascent direction all the same)."""
    a, b, c = hess[0, 0], hess[0, 1], hess[1, 1]
    det = a * c - b * b
    if a < 0 and det > 0:
        return -np.array([c * grad[0] - b * grad[1], a * grad[1] - b * grad[0]]) / det
    return grad / max(abs(a), abs(c), 1e-300)


def newton_normal(m: float, v: float, derivatives: Callable[[float, float], tuple[dict, dict]],
                  value: Callable[[float, float], float], tol: float = TOL) -> tuple[float, float, int]:
    """(m, v) of one Normal element after Newton steps with a backtracking line search (:func:`ascend`) on the
    exact f(m, v) = ``value(m, v)`` (𝓛's part plus ½ log v); ``derivatives(m, v)`` gives 𝓛's gradient and
    Hessian in the moments.  Returns (m, v, steps)."""
    m, v, f = feasible(m, v, value)

    def step(m, v):
        grad, hess = in_m_v(m, v, *derivatives(m, v))
        d = direction(grad, hess)
        return float(grad @ d), d[0], d[1]

    return ascend(m, v, f, step, value, tol, MAX_STEPS)


def ascend(m, v, f: float, step: Callable, value: Callable, tol: float, max_steps: int) -> tuple:
    """Newton steps from a feasible (m, v) with f = ``value(m, v)``: ``step(m, v)`` gives the decrement ∇fᵀd and
    the direction d = (dm, dv) (of one element: floats; of a block: arrays).  A step is taken only where f increases (Armijo), and v stays
    positive; stops when the decrement ∇fᵀd falls below ``tol``·(1 + |f|), when no step increases f, or after one
    full step (taken where f does not decrease) from a decrement below NEAR·(1 + |f|).  Returns (m, v, steps)."""
    for k in range(max_steps):
        slope, dm, dv = step(m, v)
        if not math.isfinite(slope) or slope <= tol * (1.0 + abs(f)):
            return m, v, k
        t = 1.0
        while np.any(v + t * dv <= 0.0):
            t *= 0.5
        if slope <= NEAR * (1.0 + abs(f)):      # (a last step: no halvings, which rounding alone would drive)
            mt, vt = m + t * dm, v + t * dv
            ft = value(mt, vt)
            return (mt, vt, k + 1) if ft >= f else (m, v, k)
        for _ in range(MAX_HALVINGS):
            mt, vt = m + t * dm, v + t * dv
            ft = value(mt, vt)
            if math.isfinite(ft) and ft >= f + ARMIJO * t * slope:
                break
            t *= 0.5
        else:
            return m, v, k
        if ft < f:         # (ARMIJO·t·slope underflowed) never a decrease
            return m, v, k
        m, v, f = mt, vt, ft
    return m, v, max_steps


def in_m_v_block(m: np.ndarray, v: np.ndarray, g: dict[str, np.ndarray],
                 h: dict[tuple[str, str], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """∇f and ∇²f in (m, v) ∈ R^{2K} (m first) from 𝓛's gradient (K-vectors) and cross Hessian (K×K, ``h[(s, t)]
    [a, b]`` = ∂g_s(a)/∂⟨T_t(b)⟩), with f = 𝓛(μ₁ = m, μ₂ = m² + v) + ½ Σ log v: the chain rule of ``in_m_v``
    with a ≠ b kept,

        ∂²f/∂m_a∂m_b = H₁₁ + 2m_b H₁₂ + 2m_a H₂₁ + 4m_a m_b H₂₂ + 2δ_ab g₂(a),
        ∂²f/∂m_a∂v_b = H₁₂ + 2m_a H₂₂,   ∂²f/∂v_a∂v_b = H₂₂ − δ_ab/(2v_a²)."""
    g1, g2 = g["x"], g["x2"]
    h11, h12, h21, h22 = h[("x", "x")], h[("x", "x2")], h[("x2", "x")], h[("x2", "x2")]
    grad = np.concatenate([g1 + 2 * m * g2, g2 + 0.5 / v])
    mm = h11 + 2 * h12 * m[None, :] + 2 * m[:, None] * h21 + 4 * np.outer(m, m) * h22 + np.diag(2 * g2)
    mv = h12 + 2 * m[:, None] * h22
    vv = h22 - np.diag(0.5 / (v * v))
    hess = np.block([[mm, mv], [mv.T, vv]])
    return grad, 0.5 * (hess + hess.T)       # (symmetric up to rounding: H₂₁ = H₁₂ᵀ)


def block_direction(grad: np.ndarray, hess: np.ndarray) -> np.ndarray:
    """The Newton direction −H⁻¹∇f by a Cholesky factor of −H where H is negative definite (f is concave), else
    the gradient scaled by the largest curvature, as ``direction``."""
    try:
        c = np.linalg.cholesky(-hess)
    except np.linalg.LinAlgError:
        return grad / max(float(np.max(np.abs(np.diag(hess)))), 1e-300)
    return np.linalg.solve(c.T, np.linalg.solve(c, grad))


def newton_block(m: np.ndarray, v: np.ndarray, derivatives: Callable, value: Callable,
                 tol: float = TOL, max_steps: int = MAX_STEPS) -> tuple[np.ndarray, np.ndarray, int]:
    """(m, v) of all of q's elements after joint Newton steps in (m, v) ∈ R^{2K}, with ``newton_normal``'s line
    search, feasibility moves and stopping rules on the exact f = ``value(m, v)`` (𝓛's part plus ½ Σ log v);
    ``derivatives(m, v)`` gives 𝓛's gradient (K-vectors) and cross Hessian (K×K).  Every step increases f."""
    k = len(m)
    m, v, f = feasible_block(m, v, value)

    def step(m, v):
        grad, hess = in_m_v_block(m, v, *derivatives(m, v))
        d = block_direction(grad, hess)
        return float(grad @ d), d[:k], d[k:]

    return ascend(m, v, f, step, value, tol, max_steps)


def feasible_block(m: np.ndarray, v: np.ndarray, value: Callable) -> tuple[np.ndarray, np.ndarray, float]:
    """``feasible`` for all elements at once: v shrinks by 16 (down to 10⁻⁸ of its start), then m halves."""
    f, floor = value(m, v), 1e-8 * v
    for _ in range(FEASIBLE):
        if math.isfinite(f):
            break
        m, v = (m, v / 16.0) if np.all(v / 16.0 >= floor) else (0.5 * m, v)
        f = value(m, v)
    return m, v, f


def feasible(m: float, v: float, value: Callable[[float, float], float]) -> tuple[float, float, float]:
    """(m, v, f) with f finite if a few moves make it so: where f = −∞ (E[e^ψ] overflows: a broad start against
    covariates of large scale), v shrinks by 16 at a time down to 10⁻⁸ of its start, then m halves towards 0.
    From f = −∞ (or NaN) no move decreases f; the Newton steps then start from a finite f."""
    f, floor = value(m, v), 1e-8 * v
    for _ in range(FEASIBLE):
        if math.isfinite(f):
            break
        v, m = (v / 16.0, m) if v / 16.0 >= floor else (v, 0.5 * m)
        f = value(m, v)
    return m, v, f


def is_link(f) -> bool:
    """Whether factor ``f`` is ``Poisson(exp(ψ))``, ``Exponential(exp(ψ))`` or ``Gamma(a, exp(ψ))``."""
    from ppvi.language import ast

    rate = dict(f.args).get("rate")
    return unit_of_distribution(f.dist).exp_link and isinstance(rate, ast.Call) and rate.func.id == "exp"



def reference_update(q, env, element: tuple[int, ...] = ()) -> tuple[float, float, int]:
    """The Newton update of one element of the Normal q ``q`` (a QFactor with ``newton``) by the reference
    evaluator (ppvi.derive.numeric): the moments of ``env`` are read and the element's (x, x²) replaced in
    place by the result.  Slow and plain: what the compiled update is checked against."""
    from ppvi.derive.numeric import evaluate

    nt = q.newton
    bound = dict(zip(q.index, element))
    mx, mx2 = env.moments[(q.var, "x")], env.moments[(q.var, "x2")]
    at = tuple(element) if element else ()

    def put(m: float, v: float) -> None:
        if at:
            mx[at], mx2[at] = m, m * m + v
        else:
            env.moments[(q.var, "x")], env.moments[(q.var, "x2")] = np.asarray(m), np.asarray(m * m + v)

    def derivatives(m: float, v: float):
        put(m, v)
        return ({s: evaluate(e, env, bound) for s, e in nt.gradient.items()},
                {k: evaluate(e, env, bound) for k, e in nt.hessian.items()})

    def value(m: float, v: float) -> float:
        put(m, v)
        return evaluate(nt.objective, env) + 0.5 * math.log(v)

    m0 = float(env.moments[(q.var, "x")][at] if at else env.moments[(q.var, "x")])
    v0 = float((env.moments[(q.var, "x2")][at] if at else env.moments[(q.var, "x2")])) - m0 * m0
    m, v, steps = newton_normal(m0, v0, derivatives, value)
    put(m, v)
    return m, v, steps


def reference_block_update(q, env, block: Block | None = None, max_steps: int = MAX_STEPS,
                           members: tuple = ()) -> tuple[np.ndarray, np.ndarray, int]:
    """The joint Newton update of every element of q (a QFactor whose ``newton.blocked`` is set) and of its joint's
    ``members`` (their QFactors, in ``Joint.members``' order) by the reference evaluator, from its ``block``
    (block_of, derived here if not given): the moments in ``env`` replaced by the result.  Returns (m, v, steps),
    flat: q's elements in their order, then the members."""
    from ppvi.derive.numeric import evaluate

    nt = q.newton
    blk = block if block is not None else block_of(nt, q.index, tuple(k.newton for k in members))
    mx, mx2 = env.moments[(q.var, "x")], env.moments[(q.var, "x2")]
    shape, size = mx.shape, mx.size
    cells = [dict(zip(q.index, a)) for a in np.ndindex(*shape)]
    names = [k.var for k in members]
    objective = nt.joint.objective if members else nt.objective

    def put(m: np.ndarray, v: np.ndarray) -> None:
        mx[...] = m[:size].reshape(shape)
        mx2[...] = (m[:size] ** 2 + v[:size]).reshape(shape)
        for k, var in enumerate(names):
            a, b = m[size + k], v[size + k]
            env.moments[(var, "x")], env.moments[(var, "x2")] = np.asarray(a), np.asarray(a * a + b)

    def derivatives(m: np.ndarray, v: np.ndarray):
        put(m, v)
        g = {s: np.array([evaluate(e, env, a) for a in cells] + [evaluate(gk[s], env) for gk in blk.gradient])
             for s, e in nt.gradient.items()}
        h = {}
        for (s, t), e in blk.hessian.items():
            rows = [[evaluate(e, env, a | dict(zip(blk.partner, b.values()))) for b in cells] +
                    [evaluate(c[(s, t)], env, a) for c in blk.cross] for a in cells]
            rows += [[evaluate(c[(t, s)], env, a) for a in cells] + [evaluate(kl[(s, t)], env) for kl in among]
                     for c, among in zip(blk.cross, blk.among)]
            h[(s, t)] = np.array(rows)
        return g, h

    def value(m: np.ndarray, v: np.ndarray) -> float:
        if np.any(v <= 0):
            return -math.inf
        put(m, v)
        return evaluate(objective, env) + 0.5 * float(np.sum(np.log(v)))

    m0 = np.concatenate([mx.ravel(), [float(env.moments[(var, "x")]) for var in names]])
    x20 = np.concatenate([mx2.ravel(), [float(env.moments[(var, "x2")]) for var in names]])
    m, v, steps = newton_block(m0, x20 - m0 * m0, derivatives, value, max_steps=max_steps)
    put(m, v)
    return m, v, steps
