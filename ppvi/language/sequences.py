"""Sequences in the language (docs/language.md, "Sequences"): offsets along a plate and sliced plates.

``z[t] ~ Categorical(A[z[t-1]])`` inside ``for t in T[1:]:`` with ``z[0] ~ Categorical(pi)``
makes ``z`` a *chain*: its elements along one axis are drawn by several statements (a sliced
loop plus one statement per first element) and each may read earlier elements of its own
variable.  The checker proves that every element is drawn exactly once and that no offset
reads outside the plate; this module holds the small pure pieces it uses.
"""

from __future__ import annotations

from dataclasses import dataclass

from ppvi.language import ast


@dataclass(frozen=True)
class Chain:
    """A variable whose elements along ``axis`` (a plate over ``dim``) read earlier ones.

    Elements ``0 .. start-1`` are drawn by statements of their own (``firsts``: the factor ids,
    one per element, in order); ``start .. dim-1`` by the sliced loop (factor ``body``);
    ``lag`` is the largest look-back an element uses (``z[t-2]``: 2).  ``by`` names the data a ragged
    chain rides on (``for t in T[1:] by seq:``): the chain restarts where they change, each sequence's first
    step drawn by the ``firsts`` statement, ``t-1`` the previous step of the same sequence.
    """

    name: str
    axis: int
    dim: str
    start: int
    lag: int
    body: int
    firsts: tuple[int, ...]
    by: str | None = None


def offset(ix: ast.Expr, loop_vars) -> tuple[str, int] | None:
    """``t`` -> (t, 0), ``t - 2`` -> (t, -2), ``t + 1`` / ``1 + t`` -> (t, 1) for a loop variable t; else None."""
    match ix:
        case ast.Name(id=n) if n in loop_vars:
            return n, 0
        case ast.BinOp(op="+" | "-", left=ast.Name(id=n), right=ast.Num(value=c, is_int=True)) if n in loop_vars:
            return n, int(c) if ix.op == "+" else -int(c)
        case ast.BinOp(op="+", left=ast.Num(value=c, is_int=True), right=ast.Name(id=n)) if n in loop_vars:
            return n, int(c)
    return None


def subscript(ix: ast.Expr) -> str | int | None:
    """A target subscript: a loop variable's name, a whole-number literal (a first element), or None."""
    if isinstance(ix, ast.Name):
        return ix.id
    if isinstance(ix, ast.Num) and ix.is_int:
        return int(ix.value)
    return None


def element(name: str, subs) -> str:
    """``z[s, 1]``: an element as the user would write it."""
    return f"{name}[{', '.join(str(s) for s in subs)}]"
