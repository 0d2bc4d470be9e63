"""``ppvi check --dump ast``: the parsed AST as an indented tree (a compiler stage a user can see)."""

from __future__ import annotations

import dataclasses

from ppvi.errors import Span
from ppvi.language import ast


def _lines(node, indent: int, out: list[str], label: str = "") -> None:
    pad = "  " * indent + (f"{label}: " if label else "")
    if isinstance(node, tuple):
        if not node:
            return
        out.append(pad.rstrip() if label else pad + "[]")
        for item in node:
            _lines(item, indent + 1, out)
        return
    if not dataclasses.is_dataclass(node):
        out.append(f"{pad}{node!r}")
        return
    simple = {}
    nested = []
    for f in dataclasses.fields(node):
        v = getattr(node, f.name)
        if isinstance(v, Span) or f.name in ("text", "path") or (f.default is not dataclasses.MISSING
                                                                   and v == f.default):
            continue                   # an unsliced loop prints as before: start=0 is the default
        if isinstance(v, ast.Name):
            simple[f.name] = v.id
        elif dataclasses.is_dataclass(v) or (isinstance(v, tuple) and v):
            nested.append((f.name, v))
        elif v is not None and v != ():
            simple[f.name] = v
    span = getattr(node, "span", None)
    where = f"  @{span.line}:{span.col}" if isinstance(span, Span) else ""
    attrs = " ".join(f"{k}={v!r}" if not isinstance(v, str) else f"{k}={v}" for k, v in simple.items())
    out.append(f"{pad}{type(node).__name__} {attrs}".rstrip() + where)
    for name, v in nested:
        _lines(v, indent + 1, out, name)


def ast_to_text(module: ast.Module) -> str:
    out: list[str] = []
    _lines(module, 0, out)
    return "\n".join(out) + "\n"
