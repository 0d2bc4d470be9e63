"""Labels in index data: strings, or a pandas Categorical, where ``data c[N] : index(K)`` expects codes
0..K−1 (docs/language.md, "Labels").

A reader turns such a column into a :class:`Column` (its entries as text, None where one is missing, and a
Categorical's categories); :func:`code` then gives every dim one map, shared by all the index data of that
dim: the Categorical's category order, else the sorted labels of all its columns.  A map already known (a
result's, for ``predict``, ``score``, ``--given``, ``--init`` and the batches of ``partial_fit``) is used as
it is, and a label outside it is the user's mistake.  The coded arrays are floats, NaN where an entry is
missing, so that :func:`ppvi.io.data.bind` checks them as it checks codes.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ppvi.io.reading import fail, shown
from ppvi.language.check import CheckedModel, Variable

Labels = Mapping[str, tuple[str, ...]]     # dim -> its labels, in code order
BOTH_HINT = "an index holds codes 0..K−1 or labels (strings), not both: write every entry as a string"


@dataclass(frozen=True)
class Column:
    """The labels of one index variable as read: each entry's text (None: missing), and a Categorical's
    categories in their order (None for plain strings)."""

    values: np.ndarray                          # object, the variable's shape
    categories: tuple[str, ...] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.values.shape

    @property
    def ndim(self) -> int:
        return self.values.ndim


def _missing(x: object) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def from_values(where: str, name: str, values: object) -> Column | None:
    """The labels in ``values`` (a list or an object/str array from JSON, a dict or a DataFrame), or None when
    they are numbers (codes); a mix of numbers and strings is an error naming the first number."""
    obj = np.asarray(values, dtype=object)
    first = next((i for i, x in np.ndenumerate(obj) if isinstance(x, str)), None)
    if first is None:
        return None
    for i, x in np.ndenumerate(obj):
        if isinstance(x, str) or _missing(x):
            continue
        what = ("a number" if isinstance(x, (numbers.Number, np.number)) else f"a {type(x).__name__}")
        value = f"{x:g}" if isinstance(x, float) else repr(x)
        raise fail(where, f"`{name}{list(i)}` is {what} ({value}) but `{name}{list(first)}` is the label "
                          f"{obj[first]!r}", BOTH_HINT)
    out = np.empty(obj.shape, dtype=object)
    for i, x in np.ndenumerate(obj):
        out[i] = None if _missing(x) else x
    return Column(out)


def from_series(where: str, name: str, series, pd) -> Column | None:
    """The labels of a pandas Series of text or a Categorical (None: numbers)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        cats = series.cat.categories
        labels = tuple(str(c) for c in cats)
        if len(set(labels)) != len(labels):
            raise fail(where, f"`{name}`'s categories are not distinct as text", "give each category its own name")
        values = np.asarray(series.astype(object).where(series.notna(), None).to_numpy(dtype=object))
        return Column(np.array([None if _missing(v) else str(v) for v in values], dtype=object).reshape(values.shape),
                      labels)
    if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        return None
    values = series.astype(object).where(series.notna(), None).to_numpy(dtype=object)
    return from_values(where, name, values)


def from_cells(cells: list[str], na: frozenset[str]) -> Column:
    """A .csv column of labels: every cell is text (a number too); a missing-value token is missing."""
    return Column(np.array([None if c.strip() in na else c.strip() for c in cells], dtype=object))


# ----------------------------------------------------------------- one map per dim
def key_of(v: Variable) -> str:
    """The name a map is kept under: the index's dim, or ``NAME_dim_I`` for a literal size (as a result's
    categories are named)."""
    return v.support_dim if isinstance(v.support_dim, str) else f"{v.name}_dim_{len(v.shape)}"


@dataclass(frozen=True)
class Coded:
    """Arrays with every :class:`Column` replaced by its codes (float, NaN where missing), and the maps."""

    arrays: dict[str, object]
    labels: dict[str, tuple[str, ...]]


def code(model: CheckedModel, arrays: Mapping[str, object], where: str, known: Labels | None = None) -> Coded:
    """Code every column of labels; ``known``: maps fixed beforehand (a result's)."""
    known = dict(known or {})
    arrays = {name: _as_column(where, model.variables.get(name), name, a) for name, a in arrays.items()}
    index = [v for v in model.of_kind("data") if v.support == "index" and v.name in arrays]
    by_dim: dict[str, list[Variable]] = {}
    for v in index:
        by_dim.setdefault(key_of(v), []).append(v)
    out, labels = dict(arrays), {}
    for dim, variables in by_dim.items():
        columns = [v for v in variables if isinstance(arrays[v.name], Column)]
        if not columns:
            if dim in known:
                labels[dim] = tuple(known[dim])   # (codes given where labels were fitted: they are codes)
            continue
        if dim in known:
            order = tuple(known[dim])
            whose = "the fitted result's"
        else:
            codes = [v for v in variables if v not in columns]
            if codes:
                raise fail(where, f"`{columns[0].name}` holds labels but `{codes[0].name}` codes, and both index "
                                  f"{dim}", "give every index of a dim labels, or every one codes")
            order, whose = _order(where, [(v.name, arrays[v.name]) for v in columns]), None
        lookup = {label: k for k, label in enumerate(order)}
        for v in columns:
            out[v.name] = _codes(where, v.name, arrays[v.name], lookup, dim, whose)
        labels[dim] = order
    return Coded(out, labels)


def _as_column(where: str, v: Variable | None, name: str, a: object) -> object:
    """Text in the array of index data is a :class:`Column` of labels; in any other variable, an error."""
    if v is None:
        return a
    if v.kind == "data" and v.support == "index" and isinstance(a, np.ndarray) and a.dtype.kind in "OUS":
        a = from_values(where, name, a.astype(str) if a.dtype.kind == "S" else a) or a
    if isinstance(a, Column) and not (v.kind == "data" and v.support == "index"):
        raise fail(where, f"`{name}` holds text (labels), but only index data (`: index(K)`) may",
                   "give its values as numbers")
    return a


def _order(where: str, columns: list[tuple[str, Column]]) -> tuple[str, ...]:
    """The codes' order: one Categorical's categories (every Categorical of the dim has the same), else the
    sorted labels."""
    cats = [(name, c.categories) for name, c in columns if c.categories is not None]
    for name, other in cats[1:]:
        if other != cats[0][1]:
            raise fail(where, f"`{cats[0][0]}` and `{name}` are Categoricals of one dim with other categories",
                       "give them the same categories in the same order (pandas: "
                       "`s.cat.set_categories(other.cat.categories)`)")
    if cats:
        return cats[0][1]
    seen = set()
    for _, c in columns:
        seen.update(x for x in c.values.ravel() if x is not None)
    return tuple(sorted(seen))


def _codes(where: str, name: str, column: Column, lookup: Mapping[str, int], dim: str, whose: str | None) -> np.ndarray:
    out = np.full(column.shape, np.nan)
    for i, x in np.ndenumerate(column.values):
        if x is None:
            continue
        k = lookup.get(x)
        if k is None:
            if whose is None:      # (a label that is not a category of the dim's Categorical)
                raise fail(where, f"`{name}{list(i)}` = {shown(repr(x))} is not a category of {dim}",
                           "add it to the Categorical's categories, or correct the label")
            raise fail(where, f"`{name}{list(i)}` = {shown(repr(x))} is not one of the {len(lookup)} labels of {dim} "
                              f"in {whose} map",
                       "new data are coded by the fit's labels (Result.labels); a new label needs a new fit")
        out[i] = k
    return out


def check_count(where: str, dim: str, count: int, size: int, fixed: str, name: str) -> None:
    """Labels beyond a dim's size set otherwise (a default, --dim, an axis) are an error."""
    if count > size:
        raise fail(where, f"`{name}` has {count} labels but {dim} = {size} ({fixed})",
                   f"leave {dim} to the labels, or give {dim} ≥ {count}")


def shown_label(labels: Labels, dim: str, k: int) -> str:
    """Category ``k`` of ``dim`` as a reader sees it: its label, or the code where it has none."""
    names = labels.get(dim)
    return names[k] if names is not None and 0 <= k < len(names) else str(k)
