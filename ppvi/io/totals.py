"""Counts against their totals: Binomial draws lie in 0..n, Multinomial rows sum to n.

The checker lets a total be only a constant expression or a const/data variable
subscripted by loop variables (``check._known_total``), so its value at every
element of the draw's plates is an array gathered here, once, at load.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ppvi.io.reading import fail
from ppvi.language import ast, consts
from ppvi.language.check import CheckedModel, Factor


def check_totals(model: CheckedModel, arrays: Mapping[str, np.ndarray], sizes: Mapping[str, int], path: str) -> None:
    """Raise a data error at the first count above its total (Binomial) or row not summing to it (Multinomial)."""
    values: dict[str, np.ndarray] | None = None
    for f in model.factors:
        if f.dist not in ("Binomial", "Multinomial") or not f.observed or f.target not in arrays:
            continue
        if values is None:
            values = _const_values(model, sizes)
        x = arrays[f.target]
        plates = x.shape[:len(f.target_index)]
        n = _total(f, f.arg("n"), plates, {**values, **arrays}, sizes)
        if f.dist == "Binomial":
            bad = x > n
            got, words = x, "is more than its total"
        else:
            got = x.sum(axis=-1)
            bad = got != n
            words = "sums to"
        if bad.any():
            at = tuple(int(i) for i in np.unravel_index(np.flatnonzero(bad.ravel())[0], bad.shape))
            total = int(np.broadcast_to(n, bad.shape)[at])
            what = f"`{f.target}{list(at)}`" + (f" = {int(x[at])}" if f.dist == "Binomial" else f" {words} {int(got[at])}")
            msg = (f"{what} {words} n = {total}" if f.dist == "Binomial"
                   else f"{what}, not its total n = {total}")
            line, col = f.span.line, f.span.col
            raise fail(path, f"{msg} (the {f.dist} at line {line}, column {col})",
                       "a count lies in 0..n" if f.dist == "Binomial"
                       else "a Multinomial row holds the counts of all n trials: its entries sum to n")


def _const_values(model: CheckedModel, sizes: Mapping[str, int]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for v in model.of_kind("const"):
        shape = tuple(sizes[e] if isinstance(e, str) else e for e in v.shape)
        out[v.name] = consts.fill(v.value, shape, sizes, out)
    return out


def _total(f: Factor, e: ast.Expr, plates: tuple[int, ...], values: Mapping[str, np.ndarray],
           sizes: Mapping[str, int]) -> np.ndarray:
    """n at every element of the draw's plates (broadcastable to ``plates``)."""
    if isinstance(e, ast.Index) and all(isinstance(i, ast.Name) and i.id in f.target_index for i in e.indices):
        grid = np.indices(plates, sparse=True)
        return values[e.base.id][tuple(grid[f.target_index.index(i.id)] for i in e.indices)]
    if isinstance(e, ast.Name) and e.id in values:
        return np.asarray(values[e.id])
    return np.asarray(consts.evaluate(e, sizes, values))
