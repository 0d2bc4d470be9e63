"""The model's expressions evaluated at values, for many draws at once.

Every variable's value is an array with a leading draws axis: ``(S, *shape)`` for
a quantity that varies from draw to draw (a latent), ``(1, *shape)`` for one that
does not (data, params, constants), broadcast where they meet.  An expression
inside loops is evaluated once for every element of its plates: its value has the
layout ``(S or 1, *scope, *value)``, one axis per enclosing loop variable (size 1
where the expression does not depend on it) followed by the axes of the value
itself (a vector's, a matrix's).  A ``sum(i in M: …)`` adds an axis for ``i`` and
sums it away; indexing gathers with NumPy's advanced indexing, so ``mu[z[n]]``
reads each draw's ``mu`` at that draw's ``z[n]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from ppvi.language import ast
from ppvi.language.consts import BINARY as _BINARY, UNARY as _UNARY

Scope = tuple[tuple[str, str], ...]          # (loop variable, dim), outermost first



class NotEvaluable(Exception):
    """The expression reads a value that is not there (a discrete latent's, a param not started yet), or
    indexes by one that is not a whole number (a Bernoulli latent's mean)."""


@dataclass(frozen=True)
class Values:
    """The value of every variable (leading draws axis, of size S or 1), the size of every dim, and loop
    variables ``bound`` to one element (a chain drawn element after element: ``t`` of ``for t in T[1:]``)."""

    arrays: Mapping[str, np.ndarray]
    sizes: Mapping[str, int]
    bound: Mapping[str, int] = field(default_factory=dict)

    def draws(self) -> int:
        """S: the largest leading axis among the arrays (1 when nothing varies)."""
        return max((a.shape[0] for a in self.arrays.values()), default=1)


def evaluate(e: ast.Expr, values: Values, scope: Scope) -> np.ndarray:
    """``e``'s value in the layout ``(S or 1, *scope, *value)`` (see the module's docstring)."""
    lead = 1 + len(scope)
    with np.errstate(all="ignore"):
        return _ev(e, values, scope, lead)


def _ev(e: ast.Expr, values: Values, scope: Scope, lead: int) -> np.ndarray:
    match e:
        case ast.Num(value=v, is_int=is_int):
            return np.full((1,) * lead, v, dtype=np.int64 if is_int else float)
        case ast.Name(id=n):
            return _name(n, values, scope, lead)
        case ast.Index(base=base, indices=ix):
            return _gather(values.arrays[base.id], [_ev(i, values, scope, lead) for i in ix], lead)
        case ast.BinOp(op=op, left=left, right=right):
            a, b = _aligned(_ev(left, values, scope, lead), _ev(right, values, scope, lead), lead)
            if op == "/" or (op == "^" and (b.dtype.kind != "i" or np.any(b < 0))):
                a = a.astype(float)
            return _BINARY[op](a, b)
        case ast.Neg(operand=o):
            return -_ev(o, values, scope, lead)
        case ast.Call(func=f, args=args):
            vals = [_ev(a, values, scope, lead) for a in args]
            if f.id == "dot":
                return dot(*vals, lead)
            if f.id not in _UNARY:
                raise NotEvaluable(f.id)
            return _UNARY[f.id](np.asarray(vals[0], dtype=float))
        case ast.PlateSum(var=v, dim=d, body=ast.BinOp(op="*", left=left, right=right)):
            # Σ_i a_i b_i as one contraction (einsum): no array of every product is made
            inner = scope + ((v.id, d.id),)
            a, b = _aligned(_ev(left, values, inner, lead + 1), _ev(right, values, inner, lead + 1), lead + 1)
            return np.einsum("...i,...i->...", np.moveaxis(a, lead, -1), np.moveaxis(b, lead, -1))
        case ast.PlateSum(var=v, dim=d, body=body):
            return _ev(body, values, scope + ((v.id, d.id),), lead + 1).sum(axis=lead)
    raise NotEvaluable(type(e).__name__)       # (vectors: consts only, evaluated when the model is checked)


def _name(n: str, values: Values, scope: Scope, lead: int) -> np.ndarray:
    for axis, (var, dim) in enumerate(scope):
        if var == n:
            shape = [1] * lead
            shape[1 + axis] = values.sizes[dim]
            return np.arange(values.sizes[dim]).reshape(shape)
    if n in values.bound:
        return np.full((1,) * lead, values.bound[n])
    if n in values.sizes and n not in values.arrays:
        return np.full((1,) * lead, float(values.sizes[n]))
    a = values.arrays[n]
    return a.reshape(a.shape[:1] + (1,) * (lead - 1) + a.shape[1:])


def _gather(base: np.ndarray, indices: list[np.ndarray], lead: int) -> np.ndarray:
    """``base[draw, i₀, i₁, …]`` for every draw and scope element: each index has the layout (S or 1, *scope)."""
    shape = (base.shape[0],) + (1,) * (lead - 1)
    draw = np.arange(base.shape[0]).reshape(shape) if base.shape[0] > 1 else np.zeros(shape, dtype=np.intp)
    indices = [np.asarray(i) for i in indices]
    if any(i.dtype.kind == "f" and not np.all(i == np.round(i)) for i in indices):
        raise NotEvaluable("index")       # (a Bernoulli latent's mean is no index: never truncate it)
    return base[(draw, *(i.astype(np.intp, copy=False) for i in indices))]


def _aligned(a: np.ndarray, b: np.ndarray, lead: int) -> tuple[np.ndarray, np.ndarray]:
    """A scalar-valued operand gets trailing axes to meet a vector- or matrix-valued one."""
    ra, rb = a.ndim - lead, b.ndim - lead
    if ra < rb:
        a = a.reshape(a.shape + (1,) * (rb - ra))
    elif rb < ra:
        b = b.reshape(b.shape + (1,) * (ra - rb))
    return a, b


def dot(a: np.ndarray, b: np.ndarray, lead: int) -> np.ndarray:
    """``dot(a, b)``: a's last value axis contracted with b's first, elementwise over the leading axes."""
    ra, rb = a.ndim - lead, b.ndim - lead
    letters = "abcdefgh"
    sa, sb = letters[:ra], letters[ra - 1: ra - 1 + rb]
    return np.einsum(f"...{sa},...{sb}->...{sa[:-1]}{sb[1:]}", np.asarray(a, float), np.asarray(b, float))


def target(name: str, index: tuple[str | int, ...], values: Values, scope: Scope) -> np.ndarray:
    """The value a ``~`` statement draws, ``name[index…]`` (loop variables, or a first element's numbers),
    in the layout of its plates ``scope``."""
    lead = 1 + len(scope)
    at = [np.full((1,) * lead, i) if isinstance(i, int) else _name(i, values, scope, lead) for i in index]
    return _gather(values.arrays[name], at, lead)
