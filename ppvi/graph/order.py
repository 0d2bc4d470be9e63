"""A canonical order of a model's variables, dims and factors that reads nothing of names or statement order.

Colour refinement (1-dimensional Weisfeiler–Leman) over the model as a graph: a variable starts coloured by
its kind, support, approximation and number of axes, a dim by its default and whether it is the data plate.
Each round recolours

- a variable by its colour, its shape (the dims' colours), a constant's value, and the multiset of the
  factors it appears in, each written with the variable's own occurrences marked (so ``x ~ N(a - b, 1)``
  tells a from b);
- a dim by its colour, the (variable, axis) pairs it is an axis of and the (factor, depth) loops over it;

where a factor is written as its distribution, its target, its plates and every argument's expression tree
with variables and dims as their colours, loop variables by (depth, place in the target, dim) and ``+`` and
``*`` chains as multisets.  Colours are numbered by sorting their descriptions, so a renamed or reordered
model gets the same numbers.  The rounds stop when no class splits.

Variables of one final colour are structurally alike (as far as refinement sees: truly symmetric in every
model met so far, an automorphism of the model taking one to the other).  They are ordered by declaration,
which a renaming keeps; a reordering that swaps two of them gives the model back up to that automorphism,
and so the same fit with their names exchanged (tests/harness compares fits through it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ppvi.language import ast
from ppvi.language.check import CheckedModel, Factor, walk

Key = tuple


@dataclass(frozen=True)
class Order:
    """Canonical positions: ``variables`` and ``dims`` by name, ``factors`` by id; ``level`` of a latent or
    param: 0 if its prior reads no latent or param, else one more than the highest it reads."""

    variables: dict[str, int]
    dims: dict[str, int]
    factors: dict[int, int]
    level: dict[str, int]
    role: dict[str, int]

    def sort(self, names) -> list[str]:
        """``names`` (latents, params) parents first (level); then by role, a location before a scale (a
        Normal's mean before its precision: the two M-steps in this order are EM's joint maximiser); then
        canonical position."""
        return sorted(names, key=lambda n: (self.level.get(n, 0), self.role.get(n, 99), self.variables[n]))


def _chain(e: ast.Expr, op: str) -> list[ast.Expr]:
    """The operands of an associative chain a op b op c (however the parser nested it)."""
    if isinstance(e, ast.BinOp) and e.op == op:
        return _chain(e.left, op) + _chain(e.right, op)
    return [e]


def _expr(e: ast.Expr, colour: dict[str, Key], bound: dict[str, Key], me: str | None) -> Key:
    match e:
        case ast.Num(value=v):
            return ("n", float(v))
        case ast.Name(id=n):
            if n in bound:
                return bound[n]
            return ("me",) if n == me else colour[n]
        case ast.Index(base=b, indices=ix):
            return ("x", _expr(b, colour, bound, me), tuple(_expr(i, colour, bound, me) for i in ix))
        case ast.BinOp(op=op) if op in ("+", "*"):
            return (op, tuple(sorted((_expr(a, colour, bound, me) for a in _chain(e, op)), key=repr)))
        case ast.BinOp(op=op, left=left, right=right):
            return (op, _expr(left, colour, bound, me), _expr(right, colour, bound, me))
        case ast.Neg(operand=o):
            return ("neg", _expr(o, colour, bound, me))
        case ast.Call(func=f, args=args):
            return ("call", f.id, tuple(_expr(a, colour, bound, me) for a in args))
        case ast.PlateSum(var=v, dim=d, body=body):
            inner = {**bound, v.id: ("sum", len(bound), colour[d.id])}
            return ("S", colour[d.id], _expr(body, colour, inner, me))
        case ast.Vector(items=items):
            return ("vec", tuple(_expr(i, colour, bound, me) for i in items))
    raise TypeError(f"no key for {type(e).__name__}")


def _factor(f: Factor, colour: dict[str, Key], me: str | None = None) -> Key:
    """A factor's description at the current colours (``me``: a variable whose occurrences are marked)."""
    bound = {var: ("loop", depth, f.target_index.index(var) if var in f.target_index else -1, colour[dim])
             for depth, (var, dim) in enumerate(f.plates)}
    target = ("me",) if f.target == me else colour[f.target]
    args = tuple(sorted((name, _expr(e, colour, bound, me)) for name, e in f.args))
    return (f.dist, f.observed, target, tuple(colour[d] for _, d in f.plates), args)


def _extent(s, colour: dict[str, Key]) -> Key:
    return colour[s] if isinstance(s, str) else ("size", int(s))


def _number(descriptions: dict[str, Key], tag: str) -> dict[str, Key]:
    """Each description's place among the distinct ones, sorted by their text: names never enter."""
    distinct = sorted({repr(d) for d in descriptions.values()})
    place = {d: i for i, d in enumerate(distinct)}
    return {n: (tag, place[repr(d)]) for n, d in descriptions.items()}


def _refine(model: CheckedModel, colour: dict[str, Key], uses: dict[str, list[Factor]]) -> dict[str, Key]:
    """Rounds of refinement from ``colour`` until no class splits."""
    variables, dims, factors = model.variables, model.dims, model.factors
    classes = len(set(colour.values()))
    for _ in range(len(colour) + 1):
        var = {n: (colour[n], tuple(_extent(s, colour) for s in v.shape),
                   _extent(v.support_dim, colour) if v.support_dim is not None else None,
                   _expr(v.value, colour, {}, n) if v.value is not None else None,
                   tuple(sorted((repr(_factor(f, colour, n)) for f in uses.get(n, ())))))
               for n, v in variables.items()}
        dim = {n: (colour[n],
                   tuple(sorted(repr((colour[v.name], axis)) for v in variables.values()
                                for axis, s in enumerate(v.shape) if s == n)),
                   tuple(sorted(repr((_factor(f, colour), depth)) for f in factors
                                for depth, (_, d) in enumerate(f.plates) if d == n)))
               for n in dims}
        colour = {**_number(var, "v"), **_number(dim, "d")}
        if len(set(colour.values())) == classes:
            break
        classes = len(set(colour.values()))
    return colour


def order(model: CheckedModel, tiebreak: Callable[[str], str] | None = None) -> Order:
    """The canonical order of ``model``'s variables, dims and factors (see the module's docstring).

    Where refinement leaves a class of several members, one member is set apart and refinement runs
    again (so the choice propagates: setting ``user`` before ``item`` puts P[user[t]] before Q[item[t]]):
    the member with the least ``tiebreak`` (a data variable's values, where the caller has them), then the
    first declared."""
    from ppvi.graph.factor_graph import _data_plate

    plate = _data_plate(model)
    variables, dims, factors = model.variables, model.dims, model.factors
    uses: dict[str, list[Factor]] = {}
    for f in factors:
        for n in {f.target, *f.parents}:
            uses.setdefault(n, []).append(f)
    colour = _refine(model, {**_number({n: (v.kind, v.support, len(v.shape), model.approximations.get(n))
                                        for n, v in variables.items()}, "v"),
                             **_number({n: (d.default, n == plate) for n, d in dims.items()}, "d")}, uses)
    declared = {n: i for i, n in enumerate([*variables, *dims])}
    while True:
        members: dict[Key, list[str]] = {}
        for n in declared:
            members.setdefault(colour[n], []).append(n)
        # variables first: a data variable's values may break a tie that dims (whose sizes are data) share
        tied = sorted((c for c, ns in members.items() if len(ns) > 1), key=lambda c: (c[0] != "v", repr(c)))
        if not tied:
            break
        first = min(members[tied[0]], key=lambda n: ((tiebreak(n) if tiebreak and n in variables else ""), declared[n]))
        colour = _refine(model, {**colour, first: (colour[first][0], -1, colour[first][1])}, uses)
    ranked = sorted(colour, key=lambda n: colour[n])
    described = {f.id: repr(_factor(f, colour)) for f in factors}
    return Order(variables={n: i for i, n in enumerate(r for r in ranked if r in variables)},
                 dims={n: i for i, n in enumerate(r for r in ranked if r in dims)},
                 factors={fid: i for i, fid in enumerate(sorted(described, key=lambda i: (described[i], i)))},
                 level=_levels(model), role=_roles(model))


def _roles(model: CheckedModel) -> dict[str, int]:
    """Each variable's first place among the arguments of a distribution it is read in (the signature's
    order: location, then scale or precision)."""
    from ppvi.language.distributions import SIGNATURES

    role: dict[str, int] = {}
    for f in model.factors:
        sig = SIGNATURES.get(f.dist)          # (PolyaGamma, and the `pg` weight, are the checker's own)
        names = [p.name for p in sig.params] if sig else [n for n, _ in f.args if n != "pg"]
        for arg, e in f.args:
            for node in walk(e):
                if isinstance(node, (ast.Name, ast.Index)):
                    n = node.id if isinstance(node, ast.Name) else node.base.id
                    if n in model.variables:
                        role[n] = min(role.get(n, 99), names.index(arg) if arg in names else len(names))
    return role


def _levels(model: CheckedModel) -> dict[str, int]:
    """Each latent's and param's depth in the priors' graph (a prior read before what it reads)."""
    reads = {f.target: [p for p in f.parents if model.variables[p].kind in ("latent", "param")]
             for f in model.factors if not f.observed and not f.energy}
    level: dict[str, int] = {}

    def depth(n: str, seen: frozenset) -> int:
        if n not in level:
            level[n] = 1 + max((depth(p, seen | {n}) for p in reads.get(n, ()) if p not in seen), default=-1)
        return level[n]

    for v in model.variables.values():
        if v.kind in ("latent", "param"):
            depth(v.name, frozenset())
    return level
