"""Values of constant expressions (``const`` declarations, constant arguments), with NumPy.

Used by the checker (with the dims' defaults, to catch a negative sd early) and
at run time (with the sizes the data gave).  Only numbers, dims, other
constants, arithmetic, ``eye`` and the elementwise functions are constant.

The checker keeps values *compact*: ``const a[K] = 1.0`` is the scalar 1.0, never
K copies of it (``dim K = 2147483647`` would ask for 16 GiB), and ``eye(n)`` is
built only while small.  Elementwise arithmetic broadcasts a compact value as it
would the filled one, so every check reads the same numbers.  Run time fills
constants to their shapes (:func:`fill`), refusing one larger than
:data:`MAX_ENTRIES` before allocating it.

A constant that is not a finite real number (``log(0)``, ``1 / 0``,
``(-1)^0.5``, ``10^400``) is a mistake at the sub-expression that made it:
:func:`first_non_finite` finds that one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ppvi.errors import Reporter, Span
from ppvi.language import ast

# The language's elementwise functions and operators in NumPy (also read by ppvi.simulate.values)
UNARY = {"exp": np.exp, "log": np.log, "sigmoid": lambda t: 1 / (1 + np.exp(-t)),
         "softplus": lambda t: np.logaddexp(0, t)}
BINARY = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "^": np.power}

MAX_ENTRIES = 2**30          # a constant of more entries (8 GiB of doubles) is refused before allocating
CHECK_ENTRIES = 2**18        # the checker builds eye(n) only up to this many entries (values are for checks)


class NotConstant(Exception):
    """The expression needs something not known yet (a dim without a size, a random variable)."""


def evaluate(e: ast.Expr, sizes: Mapping[str, int | None], consts: Mapping[str, np.ndarray | None],
             max_entries: int = MAX_ENTRIES):
    """The value of ``e``; ``sizes`` maps dims to sizes (None: unknown), ``consts`` names to values.
    ``eye(n)`` of more than ``max_entries`` entries is not evaluated (NotConstant)."""
    with np.errstate(all="ignore"):
        match e:
            case ast.Num(value=v):
                return v
            case ast.Name(id=n):
                if n in sizes:
                    if sizes[n] is None:
                        raise NotConstant(n)
                    return float(sizes[n])
                if consts.get(n) is not None:
                    return consts[n]
                raise NotConstant(n)
            case ast.Neg(operand=o):
                return -np.asarray(evaluate(o, sizes, consts, max_entries))
            case ast.BinOp(op=op, left=l, right=r):
                a = np.asarray(evaluate(l, sizes, consts, max_entries))
                b = np.asarray(evaluate(r, sizes, consts, max_entries))
                try:
                    return BINARY[op](a, b)
                except ValueError:
                    raise NotConstant(op) from None
            case ast.Vector(items=items):
                vals = [np.asarray(evaluate(i, sizes, consts, max_entries)) for i in items]
                if len({v.shape for v in vals}) != 1:
                    raise NotConstant("ragged")
                return np.stack(vals)
            case ast.Call(func=f, args=(a,)) if f.id == "eye":
                n = float(evaluate(a, sizes, consts, max_entries))
                if not (n >= 0 and n * n <= max_entries):
                    raise NotConstant("eye")
                return np.eye(int(n))
            case ast.Call(func=f, args=(a,)) if f.id in UNARY:
                return UNARY[f.id](np.asarray(evaluate(a, sizes, consts, max_entries), dtype=float))
    raise NotConstant(type(e).__name__)


# ------------------------------------------------------------ non-finite values
@dataclass(frozen=True)
class Problem:
    """A constant sub-expression whose value is not a finite real number, and why."""

    node: ast.Expr
    message: str
    hint: str


def first_non_finite(e: ast.Expr, sizes: Mapping[str, int | None],
                     consts: Mapping[str, np.ndarray | None]) -> Problem | None:
    """The innermost sub-expression of ``e`` whose constant value is ±∞, NaN or not real — also inside a
    non-constant expression (``mu / 0``, ``mu * exp(1000)``) — or None.  One bottom-up pass."""
    try:
        _scan(e, sizes, consts)
    except _Found as found:
        return found.problem
    return None


class _Found(Exception):
    def __init__(self, problem: Problem):
        self.problem = problem


_NOT_CONSTANT = object()
_PRECISION = "double precision reaches about 1.8e308"


def _scan(e: ast.Expr, sizes, consts):
    """e's compact value, or _NOT_CONSTANT; raises _Found at the first (innermost) non-finite value."""
    match e:
        case ast.Num() | ast.Name():
            try:
                return np.asarray(evaluate(e, sizes, consts, CHECK_ENTRIES), dtype=float)
            except NotConstant:
                return _NOT_CONSTANT
        case ast.Neg(operand=o):
            v = _scan(o, sizes, consts)
            return v if v is _NOT_CONSTANT else -v
        case ast.BinOp(op=op, left=l, right=r):
            a, b = _scan(l, sizes, consts), _scan(r, sizes, consts)
            if op == "/" and b is not _NOT_CONSTANT and np.any(b == 0):
                raise _Found(Problem(r, "division by zero", "a divisor must not be 0"))
            if a is _NOT_CONSTANT or b is _NOT_CONSTANT:
                return _NOT_CONSTANT
            with np.errstate(all="ignore"):
                try:
                    v = np.asarray(BINARY[op](a, b), dtype=float)
                except ValueError:
                    return _NOT_CONSTANT
            if not np.all(np.isfinite(v)):
                if op == "^" and np.any((a < 0) & (b != np.round(b))):
                    raise _Found(Problem(e, "a negative number to a fractional power is not a real number",
                                         "ppvi computes with real numbers only"))
                if op == "^" and np.any((a == 0) & (b < 0)):
                    raise _Found(Problem(e, "0 to a negative power is infinite", "a base must not be 0 here"))
                raise _Found(Problem(e, f"`{op}` overflows: the value is beyond double precision",
                                     f"{_PRECISION}; rescale the model's numbers"))
            return v
        case ast.Call(func=f, args=args):
            vals = [_scan(a, sizes, consts) for a in args]
            if f.id == "log" and len(vals) == 1 and vals[0] is not _NOT_CONSTANT:
                if np.any(vals[0] == 0):
                    raise _Found(Problem(e, "log(0) is -infinity", "a logarithm needs a positive argument"))
                if np.any(vals[0] < 0):
                    raise _Found(Problem(e, "the log of a negative number is not a real number",
                                         "a logarithm needs a positive argument"))
            if any(v is _NOT_CONSTANT for v in vals):
                return _NOT_CONSTANT
            try:
                v = np.asarray(evaluate(e, sizes, consts, CHECK_ENTRIES), dtype=float)
            except NotConstant:
                return _NOT_CONSTANT
            if not np.all(np.isfinite(v)):
                raise _Found(Problem(e, f"`{f.id}(…)` overflows: the value is beyond double precision",
                                     f"{_PRECISION}; rescale the model's numbers"))
            return v
        case ast.Index(indices=ix):
            for i in ix:
                _scan(i, sizes, consts)
            return _NOT_CONSTANT
        case ast.PlateSum(body=body):
            _scan(body, sizes, consts)
            return _NOT_CONSTANT
        case ast.Vector(items=items):
            vals = [_scan(i, sizes, consts) for i in items]
            if any(v is _NOT_CONSTANT for v in vals) or len({v.shape for v in vals}) != 1:
                return _NOT_CONSTANT
            return np.stack(vals)
    return _NOT_CONSTANT


# ------------------------------------------------------------------- run time
def fill(e: ast.Expr, shape: tuple[int, ...], sizes, consts, *, rep: Reporter | None = None,
         span: Span | None = None) -> np.ndarray:
    """A constant's value broadcast to its declared shape (a scalar fills it).

    With ``rep`` (run time), a constant of more than :data:`MAX_ENTRIES` entries, or one whose value is not
    finite, is the user's mistake, reported at ``span`` (the constant's name) or at the sub-expression."""
    if rep is not None:
        entries = math.prod(shape)
        if entries > MAX_ENTRIES:
            raise rep.fail(f"this constant would have {entries:,} entries (shape {list(shape)}); "
                           f"ppvi allocates at most {MAX_ENTRIES:,} for one", span,
                           "check the dims it is declared over (`--dim`, or the sizes the data give)")
        problem = first_non_finite(e, sizes, consts)
        if problem is not None:
            raise rep.fail(problem.message, problem.node.span, problem.hint)
    try:
        val = np.asarray(evaluate(e, sizes, consts), dtype=float)
    except NotConstant as nc:
        if rep is not None and str(nc) == "eye":
            raise rep.fail(f"eye(…) here would have more than {MAX_ENTRIES:,} entries", e.span,
                           "check the dim it is built over") from None
        raise
    try:
        return np.broadcast_to(val, shape).copy()
    except ValueError:
        if rep is not None:     # the dims come from this run's data or --dim: the user's mismatch
            raise rep.fail(f"this value has shape {list(val.shape)}, but the constant is declared "
                           f"{list(shape)} (with the sizes of this run)", e.span,
                           "give the value one entry per element of its dims, or check the dims' sizes "
                           "in the data and --dim") from None
        raise NotConstant(f"shape {val.shape} does not fit {shape}") from None


__all__ = ["CHECK_ENTRIES", "MAX_ENTRIES", "NotConstant", "Problem", "evaluate", "fill", "first_non_finite"]
