"""Values of constant expressions (``const`` declarations, constant arguments), with NumPy.

Used by the checker (with the dims' defaults, to catch a negative sd early) and
at run time (with the sizes the data gave).  Only numbers, dims, other
constants, arithmetic, ``eye`` and the elementwise functions are constant.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ppvi.language import ast

_UNARY = {"exp": np.exp, "log": np.log, "sigmoid": lambda t: 1 / (1 + np.exp(-t)),
          "softplus": lambda t: np.logaddexp(0, t)}
_BINARY = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "^": np.power}


class NotConstant(Exception):
    """The expression needs something not known yet (a dim without a size, a random variable)."""


def evaluate(e: ast.Expr, sizes: Mapping[str, int | None], consts: Mapping[str, np.ndarray | None]):
    """The value of ``e``; ``sizes`` maps dims to sizes (None: unknown), ``consts`` names to values."""
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
                return -np.asarray(evaluate(o, sizes, consts))
            case ast.BinOp(op=op, left=l, right=r):
                a, b = np.asarray(evaluate(l, sizes, consts)), np.asarray(evaluate(r, sizes, consts))
                try:
                    return _BINARY[op](a, b)
                except ValueError:
                    raise NotConstant(op) from None
            case ast.Vector(items=items):
                vals = [np.asarray(evaluate(i, sizes, consts)) for i in items]
                if len({v.shape for v in vals}) != 1:
                    raise NotConstant("ragged")
                return np.stack(vals)
            case ast.Call(func=f, args=(a,)) if f.id == "eye":
                return np.eye(int(evaluate(a, sizes, consts)))
            case ast.Call(func=f, args=(a,)) if f.id in _UNARY:
                return _UNARY[f.id](np.asarray(evaluate(a, sizes, consts), dtype=float))
    raise NotConstant(type(e).__name__)


def fill(e: ast.Expr, shape: tuple[int, ...], sizes, consts) -> np.ndarray:
    """A constant's value broadcast to its declared shape (a scalar fills it)."""
    val = np.asarray(evaluate(e, sizes, consts), dtype=float)
    try:
        return np.broadcast_to(val, shape).copy()
    except ValueError:
        raise NotConstant(f"shape {val.shape} does not fit {shape}") from None
