"""The parsed model: plain frozen dataclasses with source spans (no semantics yet)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from ppvi.errors import Span


# ---------------------------------------------------------------- expressions
@dataclass(frozen=True)
class Num:
    value: float
    is_int: bool
    span: Span


@dataclass(frozen=True)
class Name:
    id: str
    span: Span


@dataclass(frozen=True)
class Index:
    """``base[i, j, ...]``; indices are expressions (loop variables, literals, ``z[n]``)."""

    base: Name
    indices: tuple["Expr", ...]
    span: Span


@dataclass(frozen=True)
class BinOp:
    op: str  # one of + - * / ^
    left: "Expr"
    right: "Expr"
    span: Span


@dataclass(frozen=True)
class Neg:
    operand: "Expr"
    span: Span


@dataclass(frozen=True)
class Call:
    func: Name
    args: tuple["Expr", ...]
    span: Span


@dataclass(frozen=True)
class PlateSum:
    """``sum(var in dim: body)``."""

    var: Name
    dim: Name
    body: "Expr"
    span: Span


@dataclass(frozen=True)
class Vector:
    items: tuple["Expr", ...]
    span: Span


Expr = Union[Num, Name, Index, BinOp, Neg, Call, PlateSum, Vector]


# ----------------------------------------------------------------- statements
@dataclass(frozen=True)
class DimItem:
    name: Name
    default: int | None
    default_span: Span | None


@dataclass(frozen=True)
class DimDecl:
    items: tuple[DimItem, ...]
    span: Span


@dataclass(frozen=True)
class Extent:
    """One axis of a declared shape: a dim name or an integer literal."""

    name: str | None
    size: int | None
    span: Span


@dataclass(frozen=True)
class ConstDecl:
    name: Name
    shape: tuple[Extent, ...]
    value: Expr
    span: Span


@dataclass(frozen=True)
class Support:
    name: Name
    arg: Name | None
    span: Span


@dataclass(frozen=True)
class VarDecl:
    kind: str  # "data" | "param" | "latent" (a latent with no prior)
    name: Name
    shape: tuple[Extent, ...]
    support: Support | None
    span: Span
    missing: Span | None = None   # `: missing` / `: count missing`: the word's span (data only)


@dataclass(frozen=True)
class Argument:
    keyword: Name | None
    value: Expr
    span: Span


@dataclass(frozen=True)
class Distribution:
    name: Name
    args: tuple[Argument, ...]
    span: Span


@dataclass(frozen=True)
class Draw:
    """``target ~ distribution``; ``indices`` are the target's subscripts."""

    target: Name
    indices: tuple[Expr, ...]
    dist: Distribution
    span: Span


@dataclass(frozen=True)
class Loop:
    """``for var in dim:``, or over a slice ``for var in dim[start:]:`` or ``dim[:stop]`` (``start_span`` is the
    slice's); ``by`` names the data that ride the plate as ragged sequences (``for t in T[1:] by seq:``)."""

    var: Name
    dim: Name
    body: tuple["Statement", ...]
    span: Span
    start: int = 0
    start_span: Span | None = None
    stop: int | None = None
    by: Name | None = None


@dataclass(frozen=True)
class Approximate:
    names: tuple[Name, ...]
    method: Name  # "point" | "jointly"
    span: Span


@dataclass(frozen=True)
class Energy:
    """``factor expr``: adds ``expr`` (a scalar) to log p̃ once per element of the enclosing loops."""

    expr: Expr
    span: Span


@dataclass(frozen=True)
class Amortise:
    """``amortise h by mlp(hidden = 64)``: an encoder for the local latent ``h`` (issue 19)."""

    name: Name
    method: Name                    # "mlp"
    options: tuple[Argument, ...]   # keyword arguments of the method
    span: Span


Statement = Union[DimDecl, ConstDecl, VarDecl, Draw, Loop, Approximate, Energy, Amortise]


@dataclass(frozen=True)
class Module:
    """One parsed ``.ppvi`` file."""

    name: str | None
    name_span: Span | None
    statements: tuple[Statement, ...]
    path: str
    text: str
