"""Point estimates: the M-step for params (19.2, 19.8) and MAP for point latents (19.11–19.13).

Both maximise the expected log joint 𝓛 in one quantity with q held fixed.
Each element P_a gets an exact coordinate update derived from the
stationarity condition ∂𝓛/∂P_a = 0:

* ``closed_form`` — the condition mentions P only at P_a: SymPy solves it
  (mixture means, precisions, β of sparse coding, a logistic bias …);
* ``newton`` — 𝓛 is quadratic in P_a (the condition is linear in it, though
  other elements of P appear): P_a − g/g′ is the exact maximiser with the
  others fixed (W of binary sparse coding: a linear regression on E[hhᵀ]);
* ``simplex`` — P lies on the simplex and enters as Σ_k c_k log P_k: the
  Lagrange multiplier gives P_k = c_k / Σ_k c_k (mixture weights);
* ``unit_columns`` — P's columns have norm 1: each column becomes u/‖u‖, u the
  gradient without the column's own quadratic term (the remark after 19.16);
* ``soft_threshold`` — a point latent with a Laplace prior under a Gaussian
  likelihood: the exact coordinate step of L1-regularised least squares (19.16);
* ``gradient`` — none of the above: the runtime takes gradient steps with a
  backtracking line search on the ELBO (generalised EM: the ELBO still rises).

Elements are updated one after another (coordinate ascent), so the ELBO never
decreases.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from ppvi.derive.canonical import canonical, is_zero, normal_form
from ppvi.derive.expectation import collapse
from ppvi.derive.lower import Gates, Lowering, not_a_double
from ppvi.derive.symbols import MomentSymbol, Symbols
from ppvi.families.registry import unit_of_distribution
from ppvi.language.check import CheckedModel

_SPARE = ("a", "b", "c", "r", "s", "u", "w", "y")


@dataclass(frozen=True)
class PointUpdate:
    var: str
    kind: str                         # "param" | "point"
    index: tuple[sp.Idx, ...]
    method: str
    value: sp.Expr                    # the new element (or c_k, u, or the gradient; see the module doc)
    support: str
    extra: dict = field(default_factory=dict)


def _element_index(model: CheckedModel, syms: Symbols, var: str) -> tuple[sp.Idx, ...]:
    v = model.variables[var]
    prior = model.prior(var)
    if v.kind == "latent" and prior is not None:
        plates = dict(prior.plates)
        idx = [syms.index(i, plates[i]) for i in prior.target_index]
        rest = v.shape[len(idx):]
    else:
        idx, rest = [], v.shape
    used = {str(i) for i in idx}
    for dim in rest:
        first = dim.lower() if isinstance(dim, str) and len(dim) == 1 else None
        name = next(n for n in ((first,) if first else ()) + _SPARE if n and n not in used)
        used.add(name)
        idx.append(syms.index(name, dim))
    return tuple(idx)


def _element(base: sp.Basic, at: tuple) -> sp.Expr:
    return base[at] if at else base


def _mentions(e: sp.Expr, base: sp.Basic, at: tuple) -> tuple[bool, bool]:
    """(mentions the element P_a, mentions any other element of P).

    Structural, on purpose: the closed form substitutes for P_a where it is written, so an
    element written P[user[t]] counts as another element even where a delta makes it P_a."""
    own = other = False
    target = _element(base, at)
    for node in sp.preorder_traversal(e):
        if node == target:
            own = True
        elif isinstance(node, sp.Indexed) and node.base == base:
            other = True
    return own, other


def point_update(model: CheckedModel, syms: Symbols, expected: dict[int, sp.Expr], var: str, kind: str,
                 partial, low: Lowering) -> PointUpdate:
    """The exact coordinate update of one param or point latent (see the module doc)."""
    v = model.variables[var]
    rank = len(v.shape)
    base = syms.var(var, rank)
    at = _element_index(model, syms, var)
    support = v.support
    total = sp.Add(*expected.values())
    prior = model.prior(var) if kind == "point" else None
    if prior is not None and unit_of_distribution(prior.dist).sparse:
        smooth = sp.Add(*(e for fid, e in expected.items() if fid != prior.id))
        if _smooth(smooth):
            return _soft_threshold(syms, smooth, var, base, at, prior, partial, low)
    g = canonical(partial(total, base, at))
    el = _element(base, at)
    if not _smooth(g):
        # |h − y| in a likelihood (a Laplace's location): ∂L/∂h holds sign(h − y), a subgradient; no root
        # formula or curvature exists, and the line search keeps every accepted step an ascent
        return PointUpdate(var, kind, at, "gradient", g, support)
    if support == "simplex":
        c = canonical(collapse(sp.expand(g * el)))
        if _mentions(c, base, at) != (False, False):
            # [k = c[n]] P[k] / P[c[n]] is 1: the normal form says so, whatever the spelling
            c = canonical(normal_form(c))
        if _mentions(c, base, at) == (False, False):
            return PointUpdate(var, kind, at, "simplex", c, support)
        return PointUpdate(var, kind, at, "gradient", g, support)
    if support == "unit_columns":
        g1 = canonical(partial(g, base, at))
        u = canonical(collapse(sp.expand(g - g1 * el)))
        return PointUpdate(var, kind, at, "unit_columns", u, support)
    own, other = _mentions(g, base, at)
    if own and not other:
        t = sp.Dummy("t", positive=True) if support == "positive" else sp.Dummy("t", real=True)
        roots = _roots(g.xreplace({el: t}), t)
        if len(roots) == 1:
            return PointUpdate(var, kind, at, "closed_form", canonical(roots[0]), support)
    g1 = canonical(partial(g, base, at))
    own1, other1 = _mentions(g1, base, at)
    if not is_zero(g1) and not (own1 or other1):
        return PointUpdate(var, kind, at, "newton", canonical(el - g / g1), support, {"curvature": g1})
    return PointUpdate(var, kind, at, "gradient", g, support)


#: Functions a closed form may not hold: not smooth, or with no code (roots of polynomials past degree 4…).
_NONSMOOTH = (sp.sign, sp.Abs, sp.DiracDelta, sp.Heaviside, sp.Piecewise)
_NO_CODE = _NONSMOOTH + (sp.CRootOf, sp.RootSum, sp.LambertW)


def _roots(g: sp.Expr, t: sp.Dummy) -> list[sp.Expr]:
    """The real roots of g(t) = 0 that code can compute, by SymPy's solve — which sees only t, numbers, and
    symbols standing for the rest: every subexpression free of t (and of enclosing summation indices) is one
    symbol, and so is every array of ours (posify and kin rebuild what they substitute into, which our
    moment classes cannot survive).  A closed form is an optimisation: where solve fails, none."""
    hidden: dict[sp.Basic, sp.Basic] = {}

    def hide(e: sp.Expr, bound: frozenset) -> sp.Expr:
        if e.is_Number or e is t or e.is_Atom and not isinstance(e, (MomentSymbol, sp.IndexedBase)):
            return e
        if not e.has(t) and not (e.free_symbols & bound):
            return hidden.setdefault(e, sp.Dummy("c", real=True))
        if isinstance(e, sp.Indexed):
            base = hidden.setdefault(e.base, sp.IndexedBase(sp.Dummy("a")))
            return base[e.indices]
        if isinstance(e, sp.Sum):
            inner = bound | {i for i, _, _ in e.limits}
            return sp.Sum(hide(e.function, inner), *e.limits)
        return e.func(*(hide(a, bound) for a in e.args))

    try:
        roots = sp.solve(hide(g, frozenset()), t, check=False, simplify=False)
    except Exception:                    # noqa: BLE001  (solve's failures are its own; see the docstring)
        return []
    shown = {v: k for k, v in hidden.items()}
    # a root is a formula in everything but t itself (solve returns the part of an equation it could not
    # invert as a "root" still holding t), with functions that code can compute, and numbers a double holds
    return [r.xreplace(shown) for r in roots
            if not r.has(t, sp.I, *_NO_CODE) and r.is_real is not False and not_a_double(r) is None]


def _smooth(e: sp.Expr) -> bool:
    return not e.has(*_NONSMOOTH)


def _soft_threshold(syms, smooth, var, base, at, prior, partial, low) -> PointUpdate:
    """MAP under a Laplace prior: minimise A/2 (h − m)² + λ|h − c| coordinate-wise (Lasso, 19.16)."""
    g = canonical(partial(smooth, base, at))
    a = canonical(-partial(g, base, at))
    own, other = _mentions(a, base, at)
    scope = {i: idx for (i, _), idx in zip(prior.plates, at)}
    args = {name: low.lower(expr, scope, Gates()).scalar() for name, expr in prior.args}
    lam, center = 1 / args["scale"], args["loc"]
    if own or other or is_zero(a):
        return PointUpdate(var, "point", at, "gradient", g, "real")
    el = _element(base, at)
    weight = canonical(lam)
    if at and center == 0:
        # The whole example at once: ½ hᵀAh − cᵀh + λ‖h‖₁ with A = −∂²L/∂h_i∂h_j, c = ∂L/∂h at h = 0.
        j = syms.fresh(str(at[-1].label), _dim_of(at[-1]))
        other = at[:-1] + (j,)
        gram = canonical(-partial(g, base, other))
        linear = canonical(collapse(g.replace(lambda x: isinstance(x, sp.Indexed) and x.base == base,
                                              lambda x: sp.S.Zero)))
        example = set(at[:-1])
        if not (_mentions(gram, base, at) != (False, False) or gram.free_symbols & example
                or weight.free_symbols & example):
            return PointUpdate(var, "point", at, "feature_sign", linear, "real",
                               {"gram": gram, "gram_index": j, "weight": weight})
    return PointUpdate(var, "point", at, "soft_threshold", canonical(el + g / a), "real",
                       {"curvature": a, "weight": weight, "center": canonical(center)})


def _dim_of(i: sp.Idx):
    size = i.upper + 1
    return size.name if isinstance(size, sp.Symbol) else int(size)
