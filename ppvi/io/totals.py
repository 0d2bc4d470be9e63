"""Counts against their totals: Binomial draws lie in 0..n, Multinomial rows sum to n.

The checker lets a total be only a constant expression or a const/data variable
subscripted by loop variables (``check._known_total``), so its value at every
element of the draw's plates is an array gathered here, once, at load.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from ppvi.io.reading import fail
from ppvi.families.registry import unit_of_distribution
from ppvi.language import ast, consts
from ppvi.language.check import CheckedModel, Factor


def totals(model: CheckedModel, arrays: Mapping[str, np.ndarray],
           sizes: Mapping[str, int]) -> Iterator[tuple[Factor, np.ndarray]]:
    """Each observed Binomial or Multinomial statement whose counts ``arrays`` hold, with its total n at every
    element of the statement's plates (broadcastable to them)."""
    values: dict[str, np.ndarray] | None = None
    for f in model.factors:
        trials = unit_of_distribution(f.dist).trials
        if trials is None or not f.observed or f.target not in arrays:
            continue
        if values is None:
            values = _const_values(model, sizes)
        plates = arrays[f.target].shape[:len(f.target_index)]
        yield f, _total(f, f.arg(trials), plates, {**values, **arrays}, sizes)


def check_totals(model: CheckedModel, arrays: Mapping[str, np.ndarray], sizes: Mapping[str, int], path: str) -> None:
    """Raise a data error at the first count above its total (Binomial) or row not summing to it (Multinomial)."""
    for f, n in totals(model, arrays, sizes):
        x = arrays[f.target]
        rows = unit_of_distribution(f.dist).vector[1] > 0      # (a Multinomial's counts: a row per trial set)
        got = x.sum(axis=-1) if rows else x
        bad = got != n if rows else got > n
        if not bad.any():
            continue
        at = tuple(int(i) for i in np.unravel_index(np.flatnonzero(bad.ravel())[0], bad.shape))
        total = int(np.broadcast_to(n, bad.shape)[at])
        where = f"(the {f.dist} at line {f.span.line}, column {f.span.col})"
        if not rows:
            raise fail(path, f"`{f.target}{list(at)}` = {int(x[at])} is more than its total n = {total} {where}",
                       "a count lies in 0..n")
        raise fail(path, f"`{f.target}{list(at)}` sums to {int(got[at])}, not its total n = {total} {where}",
                   "a Multinomial row holds the counts of all n trials: its entries sum to n")


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
