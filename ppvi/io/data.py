"""Data -> validated arrays and sizes (docs/cli.md).

A :class:`Source` is what one place offers: a data file (``.npz`` and ``.json``
map names to arrays, ``.csv`` maps column names to 1-D columns) or the Python
objects given to ``fit`` (a dict of arrays, Series or DataFrames; a DataFrame;
an ndarray for a model with one data variable).  A table — a ``.csv`` file or a
DataFrame — gives each data variable the column of its name, or, to a model
whose one data variable is 2-D and not a column, all its numeric columns.
:func:`bind` checks every array against its declaration — shape, finiteness,
the support (binary, count, index(K), positive, simplex, unit columns) — and
resolves every dim, refusing sizes whose q could not fit in memory before
anything is allocated; labels in index data (strings, a pandas Categorical)
are coded first, one map per dim (:mod:`ppvi.io.labels`).  Mistakes are ``FILE: error: …`` naming the variable,
the entry and the rule; a ``.csv`` cell is named by its line and column.
"""

from __future__ import annotations

import math
import numbers
import os
import sys
import zipfile
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from ppvi.errors import Diagnostic, PPVIError, Reporter, did_you_mean
from ppvi.io.csv_file import Plan, read_csv
from ppvi.io import labels as lab
from ppvi.io.totals import check_totals
from ppvi.io.chunked import SCAN_ROWS
from ppvi.io.reading import fail, json_array, physical_memory, read_json, read_npz, shown, size_text
from ppvi.language.check import MAX_DIM, CheckedModel, Variable

INTEGER_SUPPORTS = ("binary", "count", "index")
MAX_COUNT = 2**53                 # above it float64, in which the fit computes, skips whole numbers
# What a missing entry holds in the arrays (a value of the support; the mask says it is not data).
PLACEHOLDER = {"positive": 1.0, "unit_interval": 0.5}
PYTHON_DATA = "<data>"            # how diagnostics name data given as Python objects
FORMATS_HINT = "data files are .npz, .json (name -> array) or .csv (columns)"


@dataclass(frozen=True)
class Source:
    """Arrays from one place, before they are checked against the model: ``label`` names the place in
    diagnostics, ``offered`` is every name it holds (columns, members, keys), ``notes`` what the user
    should know about how it was read."""

    label: str
    arrays: dict[str, np.ndarray]
    offered: tuple[str, ...]
    notes: tuple[Diagnostic, ...] = ()


def default_data_path(model_path: str) -> str | None:
    """``models/gmm.ppvi`` -> the first of ``models/gmm.npz|.csv|.json`` that exists."""
    stem = os.path.splitext(model_path)[0]
    for ext in (".npz", ".csv", ".json"):
        if os.path.exists(stem + ext):
            return stem + ext
    return None


def _wanted(model: CheckedModel) -> list[Variable]:
    """The variables a source may give: every data variable, and params (their starting values)."""
    return [v for v in model.variables.values() if v.kind in ("data", "param")]


def source_of(data: object, model: CheckedModel) -> Source:
    """What ``fit(data)`` reads: None (the file beside the model), a path, or Python objects."""
    if data is None:
        path = default_data_path(model.path)
        if path is None:
            raise PPVIError(Diagnostic("no data file beside the model", model.path,
                                       hint="pass the data: --data PATH or fit(data) (.npz, .json or .csv)"))
        return read_file(path, model)
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        if not isinstance(path, str) or not path:
            raise fail("fit", f"data={data!r}: a data path is a non-empty str or an os.PathLike of str")
        return read_file(path, model)
    return from_python(data, model)


# ----------------------------------------------------------------- files
def read(path: str, model: CheckedModel) -> dict[str, np.ndarray]:
    """A data file's arrays by name (not yet checked against the model)."""
    return read_file(path, model).arrays


def read_file(path: str, model: CheckedModel) -> Source:
    """Read the arrays of a data file the model uses (no validation yet)."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".npz", ".json", ".csv"):
        raise fail(path, f"unknown data format `{ext or '(none)'}`", "use .npz, .json or .csv")
    names = [v.name for v in _wanted(model)]
    try:
        if ext == ".npz":
            npz = read_npz(path, names, physical_memory())
            return Source(path, npz.arrays, npz.names)
        if ext == ".json":
            raw = read_json(path)
            missing = {v.name for v in model.variables.values() if v.missing}
            index = {v.name for v in model.of_kind("data") if v.support == "index"}
            return Source(path, {k: _json_labels(path, k, raw[k]) if k in index and _has_text(raw[k])
                                 else json_array(path, k, raw[k], k in missing) for k in names if k in raw},
                          tuple(raw))
        table = read_csv(path, lambda columns: _plan(columns, model))
        return _from_table(path, model, table.names, table.columns, table.notes)
    except PPVIError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise fail(path, f"cannot read data: {getattr(e, 'strerror', None) or e}", FORMATS_HINT) from None


def _has_text(value: object) -> bool:
    """A JSON value with a string in it (an array of labels; or a mistake ``json_array`` reports)."""
    return isinstance(value, str) or (isinstance(value, list) and any(map(_has_text, value)))


def _json_labels(path: str, name: str, value: object) -> lab.Column | np.ndarray:
    try:
        column = lab.from_values(path, name, value if isinstance(value, list) else [value])
    except ValueError:        # (lists of different lengths: json_array says so)
        column = None
    return json_array(path, name, value) if column is None else column


# ----------------------------------------------------------------- tables
def _plan(names: tuple[str, ...], model: CheckedModel) -> Plan:
    """The columns of a table the model takes: each variable's column, or all (a single 2-D data variable
    that is not a column)."""
    data = model.of_kind("data")
    if len(data) == 1 and len(data[0].shape) == 2 and data[0].name not in names:
        every = tuple(range(len(names)))
        return Plan(every, whole=True, missing=frozenset(every) if data[0].missing else frozenset())
    first = {name: j for j, name in reversed(list(enumerate(names)))}
    return Plan(tuple(first[v.name] for v in _wanted(model) if v.name in first), whole=False,
                missing=frozenset(first[v.name] for v in data if v.missing and v.name in first),
                index=frozenset(first[v.name] for v in data if v.support == "index" and v.name in first))


def _from_table(label: str, model: CheckedModel, names: tuple[str, ...], columns: Mapping[int, np.ndarray],
                notes: tuple[Diagnostic, ...]) -> Source:
    plan = _plan(names, model)
    if not plan.whole:
        return Source(label, {names[j]: columns[j] for j in plan.columns}, names, notes)
    name = model.of_kind("data")[0].name
    if not columns:
        raise fail(label, f"no numeric column for `{name}`", "the model's one 2-D data variable takes every "
                                                             "numeric column of the table")
    order = sorted(columns)
    matrix = np.column_stack([columns[j] for j in order])
    n = matrix.shape[0]
    for j, column in zip(order, matrix.T):
        if n >= 3 and (np.array_equal(column, np.arange(n)) or np.array_equal(column, np.arange(1, n + 1))):
            notes += (Diagnostic(f"column `{shown(names[j])}` holds the row numbers {int(column[0])}, "
                                 f"{int(column[1])}, …, {int(column[-1])}: is it an index? It is fitted as "
                                 f"a column of `{name}`", label, severity="note",
                                 hint="drop it, or write the file with to_csv(path, index=False)"),)
    return Source(label, {name: matrix}, names, notes)


# ----------------------------------------------------------------- Python objects
_ACCEPTED = ("a path (str or os.PathLike), a dict of arrays, a pandas DataFrame, or an ndarray "
             "(a model with one data variable)")


def from_python(data: object, model: CheckedModel) -> Source:
    """Arrays from the objects given to ``fit``: a mapping of names to arrays (lists, Series, DataFrames),
    a DataFrame (a table), or an ndarray or Series (for a model with one data variable)."""
    pd = sys.modules.get("pandas")        # pandas objects come only from a user who imported it
    if pd is not None and isinstance(data, pd.DataFrame):
        return _from_frame(data, model, pd)
    if isinstance(data, Mapping):
        arrays = {}
        for key, value in data.items():
            if not isinstance(key, str):
                raise fail(PYTHON_DATA, f"a data dict's keys are variable names (str), not {type(key).__name__} "
                                        f"({key!r})")
            arrays[key] = _array(key, value, pd)
        return Source(PYTHON_DATA, arrays, tuple(arrays))
    if isinstance(data, np.ndarray) or (pd is not None and isinstance(data, pd.Series)):
        variables = [v.name for v in model.of_kind("data")]
        if len(variables) != 1:
            have = ", ".join(f"`{v}`" for v in variables) or "none"
            raise fail(PYTHON_DATA, f"an array is the data of a model with one data variable; this one has "
                                    f"{have}", "pass a dict: fit({" + ", ".join(f'"{v}": …' for v in variables)
                       + "})")
        return Source(PYTHON_DATA, {variables[0]: _array(variables[0], data, pd)}, (variables[0],))
    raise fail("fit", f"cannot read data from a {type(data).__module__}.{type(data).__qualname__}",
               f"data is {_ACCEPTED}")


def _array(name: str, value: object, pd) -> np.ndarray | lab.Column:
    if pd is not None and isinstance(value, pd.Categorical):
        value = pd.Series(value)
    if pd is not None and isinstance(value, pd.Series) and not pd.api.types.is_numeric_dtype(value.dtype):
        column = lab.from_series(PYTHON_DATA, name, value, pd)     # (labels: only index data may hold them)
        if column is not None:
            return column
    if pd is not None and isinstance(value, (pd.Series, pd.DataFrame)):
        frame = value.to_frame() if isinstance(value, pd.Series) else value
        for column in frame.columns:
            if not pd.api.types.is_numeric_dtype(frame[column].dtype):
                raise fail(PYTHON_DATA, f"`{name}` is not numeric (dtype {frame[column].dtype})")
        return value.to_numpy(dtype=float, na_value=np.nan)
    if isinstance(value, (str, bytes)):
        raise fail(PYTHON_DATA, f"`{name}` is a {type(value).__name__}, not an array of numbers")
    try:
        a = np.asarray(value)
        if a.dtype.kind in "US" and not isinstance(value, np.ndarray):
            # (numpy makes ["a", 2] text: the entries' own types tell labels from a mistake)
            entries = np.asarray(value, dtype=object)
            return entries if not all(isinstance(x, str) for x in entries.ravel()) else a
        return a
    except (ValueError, TypeError):
        raise fail(PYTHON_DATA, f"`{name}` is not an array: its rows have different lengths",
                   "every row of an array has the same number of entries") from None


def _from_frame(frame, model: CheckedModel, pd) -> Source:
    names = tuple(str(c) for c in frame.columns)
    plan = _plan(names, model)
    columns: dict[int, np.ndarray | lab.Column] = {}
    notes: tuple[Diagnostic, ...] = ()
    for j in plan.columns:
        series = frame.iloc[:, j]
        if not plan.whole and names.count(names[j]) > 1:
            raise fail(PYTHON_DATA, f"column `{names[j]}` appears more than once", "give each column its own name")
        if j in plan.index and not pd.api.types.is_numeric_dtype(series.dtype):
            column = lab.from_series(PYTHON_DATA, names[j], series, pd)
            if column is not None:
                columns[j] = column
                continue
        if not pd.api.types.is_numeric_dtype(series.dtype):
            if plan.whole:
                notes += (Diagnostic(f"column `{shown(names[j])}` is not numeric (dtype {series.dtype}): left out",
                                     PYTHON_DATA, severity="note"),)
                continue
            raise fail(PYTHON_DATA, f"column `{names[j]}` is not numeric (dtype {series.dtype})")
        values = series.to_numpy(dtype=float, na_value=np.nan)
        missing = np.flatnonzero(np.isnan(values))
        if missing.size and j not in plan.missing:
            i = int(missing[0])
            label = frame.index[i]
            label = label.item() if isinstance(label, np.generic) else label
            raise fail(PYTHON_DATA, f"column `{names[j]}` has a missing value at row {i} (index label {label!r})",
                       f"impute them, or declare `{names[j]}` with `: missing` where it is drawn")
        columns[j] = values
    return _from_table(PYTHON_DATA, model, names, columns, notes)


# ----------------------------------------------------------------- dims
def check_dims(model: CheckedModel, given: Mapping[str, object], where: str, flag: str) -> dict[str, int]:
    """Sizes set by the user (``--dim K=3``, ``fit(K=3)``), each a dim of the model and a whole number in
    1..MAX_DIM; ``flag`` formats the setting in messages (``"--dim {name}={value}"``)."""
    out = {}
    for name, value in given.items():
        said = flag.format(name=name, value=value)
        if name not in model.dims:
            dims = ", ".join(model.dims)
            hint = did_you_mean(name, model.dims) or (f"the model's dims: {dims}" if dims else
                                                      "the model declares no dims")
            raise fail(where, f"{said}: the model has no dim `{name}`", hint)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise fail(where, f"{said}: a dim's size is a whole number, not {type(value).__name__}")
        if not 1 <= value <= MAX_DIM:
            raise fail(where, f"{said}: a dim's size is at least 1 and at most {MAX_DIM}")
        out[name] = int(value)
    return out


# ----------------------------------------------------------------- binding
@dataclass(frozen=True)
class Bound:
    """Data bound to a model: arrays by name and the size of every dim."""

    arrays: dict[str, np.ndarray]
    sizes: dict[str, int]
    missing: dict[str, np.ndarray] = field(default_factory=dict)   # `: missing` data with a NaN -> where (bool)
    labels: dict[str, tuple[str, ...]] = field(default_factory=dict)   # dim -> labels in code order (ppvi.io.labels)


def bind(model: CheckedModel, source: Source, overrides: Mapping[str, int] | None = None,
         labels: lab.Labels | None = None) -> Bound:
    """Check arrays against their declarations and resolve every dim (``overrides`` from :func:`check_dims`);
    labels in index data are coded (:mod:`ppvi.io.labels`), by the maps ``labels`` where they are given."""
    path = source.label
    coded = lab.code(model, source.arrays, path, labels)
    raw = coded.arrays
    sizes: dict[str, int | None] = {d.name: d.default for d in model.dims.values()}
    fixed: dict[str, str] = {d.name: "the model's default" for d in model.dims.values() if d.default is not None}
    for name, value in (overrides or {}).items():
        sizes[name] = value
        fixed[name] = "as given"
    arrays: dict[str, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    for v in _wanted(model):
        if v.name not in raw:
            if v.kind == "param":
                continue
            have = ", ".join(map(shown, source.offered)) or "nothing"
            raise fail(path, f"data variable `{v.name}` is missing",
                        did_you_mean(v.name, source.offered) or f"the data has: {have}")
        a = np.asarray(raw[v.name])
        if a.dtype.kind not in "biuf":
            raise fail(path, f"`{v.name}` is not numeric (dtype {a.dtype})",
                       "only index data (`: index(K)`) may hold labels" if a.dtype.kind in "OUS" else None)
        if a.ndim == 0 and len(v.shape) == 1 and v.kind == "data":
            a = a.reshape(1)
        if a.ndim != len(v.shape):
            raise fail(path, f"`{v.name}` has {a.ndim} axes but is declared with {len(v.shape)} "
                              f"({', '.join(map(str, v.shape)) or 'a scalar'})",
                        "check the variable's declaration against the file")
        if a.size == 0:
            raise fail(path, f"`{v.name}` is empty", "a data variable needs at least one entry")
        for axis, (ext, n) in enumerate(zip(v.shape, a.shape)):
            if isinstance(ext, int):
                if n != ext:
                    raise fail(path, f"`{v.name}` has {n} entries on axis {axis}, declared {ext}")
            elif sizes[ext] is None:
                sizes[ext] = n
                fixed[ext] = f"from `{v.name}` axis {axis}"
            elif sizes[ext] != n:
                raise fail(path, f"`{v.name}` has {n} entries on axis {axis} but dim {ext} = {sizes[ext]} "
                                  f"({fixed[ext]})", f"make the shapes agree or pass --dim {ext}=…")
        if v.missing:
            mask = np.isnan(np.asarray(a, dtype=float))
            if mask.any():
                masks[v.name] = mask
                a = np.where(mask, PLACEHOLDER.get(v.support, 0.0), a)   # (checked like an observed entry)
        arrays[v.name] = _validate(path, v, a)
    # labels give their dim's size when nothing else does; beyond a size set otherwise they are an error.
    for v in model.of_kind("data"):
        key = lab.key_of(v) if v.support == "index" else None
        if key in coded.labels and isinstance(v.support_dim, str) and sizes[key] is None:
            sizes[key], fixed[key] = len(coded.labels[key]), f"the number of labels of `{v.name}`"
        if key in coded.labels:
            size = sizes[key] if isinstance(v.support_dim, str) else v.support_dim
            lab.check_count(path, key, len(coded.labels[key]), size, fixed.get(key, "declared"), v.name)
    # index(K) data gives K when nothing else does.
    for v in model.of_kind("data"):
        if v.support == "index" and isinstance(v.support_dim, str) and sizes[v.support_dim] is None:
            sizes[v.support_dim] = int(arrays[v.name].max()) + 1
            fixed[v.support_dim] = f"1 + the largest value of `{v.name}`"
    for v in model.of_kind("data"):
        if v.support == "index":
            k = sizes[v.support_dim] if isinstance(v.support_dim, str) else v.support_dim
            bad = arrays[v.name] >= k
            if bad.any():
                at, val = _where_in(arrays[v.name], bad)
                raise fail(path, f"`{v.name}{list(at)}` = {val} is out of range for index({v.support_dim}) with "
                                 f"{v.support_dim} = {k}", f"values must be 0..{k - 1}")
    missing = [d for d, s in sizes.items() if s is None]
    if missing:
        raise fail(path, f"no size for dim `{missing[0]}`: no data variable has it as an axis",
                    f"give a default (`dim {missing[0]} = …`) or pass --dim {missing[0]}=…")
    resolved = {k: int(s) for k, s in sizes.items()}
    _check_memory(model, resolved, fixed, path, physical_memory())
    check_totals(model, arrays, resolved, path)
    check_sequences(model, arrays, resolved, path)
    return Bound(arrays, resolved, masks, coded.labels)


def check_sequences(model: CheckedModel, arrays: Mapping[str, np.ndarray], sizes: Mapping[str, int], path: str) -> None:
    """The data a ragged chain rides on (``for t in T[1:] by seq:``) number the sequences 0, 1, … in runs, each
    sequence's steps in time order: the derivation reads ``seq[t] − seq[t−1]`` as the restart indicator
    (ppvi.derive.chain.sequence_steps), so an unsorted or skipped number would join or split sequences in silence."""
    for chain in model.chains.values():
        if chain.by is not None:
            _sequence_runs(model, chain.by, [(0, np.asarray(arrays[chain.by]))], sizes, path)


def _sequence_runs(model: CheckedModel, name: str, pieces, sizes: Mapping[str, int], path: str) -> None:
    """:func:`check_sequences` of the index ``name`` given as ``pieces`` (its first row, its values) in order: the
    whole array, or a chunk at a time (data read in chunks)."""
    hint = (f"sort the rows by sequence, then time (pandas: `df.sort_values([\"{name}\", \"t\"])`), and number "
            f"the sequences 0, 1, … in that order (`pd.factorize(df.{name})[0]`)")
    last = None
    for first, seq in pieces:
        if not len(seq):
            continue
        if last is None and seq[0] != 0:
            raise fail(path, f"`{name}[0]` = {int(seq[0])}: the first step must be of sequence 0", hint)
        joined = seq if last is None else np.r_[last, seq]      # (a step across two chunks is checked too)
        step = np.diff(joined)
        bad = np.flatnonzero((step != 0) & (step != 1))
        if bad.size:
            i = int(bad[0]) + 1
            t = first + i - (0 if last is None else 1)
            what = ("comes back to an earlier sequence: the steps of a sequence must be one run" if step[i - 1] < 0
                    else "skips a sequence number")
            raise fail(path, f"`{name}[{t}]` = {int(joined[i])} after `{name}[{t - 1}]` = {int(joined[i - 1])} {what}",
                       hint)
        last = seq[-1]
    dim = model.variables[name].support_dim
    count = sizes[dim] if isinstance(dim, str) else dim
    if int(last) + 1 != count:
        raise fail(path, f"sequence {int(last) + 1} of {dim} = {count} has no steps in `{name}`",
                   f"every sequence has at least one step: drop the empty ones, or pass --dim {dim}={int(last) + 1}")


def observed_arrays(model: CheckedModel, bound: Bound) -> dict[str, np.ndarray]:
    """The data variables' arrays as a result keeps them: a missing entry is NaN (its place holder is no datum)."""
    out = {}
    for v in model.of_kind("data"):
        if v.name in bound.arrays:
            a = bound.arrays[v.name]
            out[v.name] = np.where(bound.missing[v.name], np.nan, a) if v.name in bound.missing else a
    return out


def _entries(v: Variable, sizes: Mapping[str, int]) -> int:
    """Numbers held for ``v`` at least: its entries; a Categorical q a row of K per entry, an MvNormal q a
    covariance and ⟨x xᵀ⟩; any other continuous q three per entry (its two parameters and a moment: a Normal's
    mean, sd and ⟨x²⟩, a Dirichlet's α, ⟨p⟩ and ⟨log p⟩)."""
    size = (lambda e: sizes[e] if isinstance(e, str) else e)
    n = math.prod(size(e) for e in v.shape)
    if v.kind == "latent" and v.support == "index" and v.support_dim is not None:
        n *= size(v.support_dim)
    elif v.kind == "latent" and v.support == "real_vector" and v.shape:
        n *= 2 * size(v.shape[-1])
    elif v.kind == "latent" and v.support != "binary":
        n *= 3
    return n


def _check_memory(model: CheckedModel, sizes: Mapping[str, int], fixed: Mapping[str, str], path: str,
                  memory: int | None) -> None:
    """Refuse sizes whose variables alone need more than the machine's memory, before anything is allocated."""
    if memory is None:
        return
    need = {v.name: 8 * _entries(v, sizes) for v in model.variables.values()}
    if sum(need.values()) <= memory:
        return
    big = max(need, key=need.get)
    v = model.variables[big]
    dims = [e for e in v.shape + ((v.support_dim,) if v.support == "index" else ()) if isinstance(e, str)]
    said = "; ".join(f"{d} = {sizes[d]} ({fixed[d]})" for d in dict.fromkeys(dims))
    hint = "use smaller sizes"
    index = [u for u in model.of_kind("data") if u.support == "index" and u.support_dim in dims
             and fixed[u.support_dim].startswith("1 + the largest")]
    if index:
        u = index[0]
        hint = (f"index data are 0-based category numbers: renumber `{u.name}` 0, 1, …, {u.support_dim} − 1 "
                f"(numpy.unique({u.name}, return_inverse=True)[1])")
    raise fail(path, f"these sizes need at least {size_text(sum(need.values()))} of memory "
                     f"({size_text(need[big])} for `{big}[{', '.join(map(str, v.shape))}]`; {said}), more than this "
                     f"machine's {size_text(memory)}",
                hint)


def _where_in(a: np.ndarray, mask: np.ndarray) -> tuple[tuple[int, ...], float]:
    i = np.flatnonzero(mask.ravel())[0]
    at = np.unravel_index(i, a.shape)
    return tuple(int(x) for x in at), a[at]


def _validate(path: str, v, a: np.ndarray, first: int = 0) -> np.ndarray:
    """``a`` checked against v's support; ``first`` is the row of a chunk's first row (positions are the data's)."""
    name = v.name
    if isinstance(a, lab.Column) or np.asarray(a).dtype.kind in "OUS":
        raise fail(path, f"`{name}` holds text: labels in data read in chunks are not supported",
                   "code them 0..K−1 first (pandas: `s.astype(\"category\").cat.codes`), or load the data whole")
    af = np.asarray(a, dtype=float)      # no copy when the data are already float64
    bad = ~np.isfinite(af)

    def _where(a, mask):
        at, val = _where_in(a, mask)
        return (at[0] + first, *at[1:]) if at else at, val
    if bad.any():
        at, val = _where(a, bad)
        if np.isnan(val):
            raise fail(path, f"`{name}{list(at)}` is nan, a missing value: data must be finite",
                       f"impute it, or declare `{name}` with `: missing` where it is drawn")
        raise fail(path, f"`{name}{list(at)}` is {val}: data must be finite", "a float is at most ±1.8e308")
    largest = {"count": MAX_COUNT, "index": MAX_DIM - 1}.get(v.support)
    rule = {"binary": (lambda x: (x != 0) & (x != 1), "must be 0 or 1"),
            "count": (lambda x: (x < 0) | (x != np.round(x)), "must be a whole number ≥ 0"),
            "index": (lambda x: (x < 0) | (x != np.round(x)), "must be a whole number ≥ 0 (an index)"),
            "positive": (lambda x: x <= 0, "must be > 0"),
            "unit_interval": (lambda x: (x <= 0) | (x >= 1), "must lie strictly between 0 and 1")}.get(v.support)
    if rule is not None:
        test, words = rule
        bad = test(af)
        if bad.any():
            at, val = _where(a, bad)
            raise fail(path, f"`{name}{list(at)}` = {val} {words} (`{name}` is {v.support})")
    # (integers compared as integers: float64 would round 2⁵³ + 1 down to 2⁵³)
    too_big = None if largest is None else (a > largest) if a.dtype.kind in "iu" else (af > largest)
    if too_big is not None and too_big.any():
        at, val = _where(a, too_big)
        raise fail(path, f"`{name}{list(at)}` = {val} is too large for {v.support} data: at most {largest}",
                    "counts above 2^53 are not whole numbers in floating point" if v.support == "count"
                    else "an index picks one of at most 2^31 − 1 categories")
    if v.support == "simplex":
        s = af.sum(axis=-1)
        if np.any(af < 0) or np.any(np.abs(s - 1) > 1e-6):
            raise fail(path, f"`{name}` must be non-negative with rows summing to 1 (simplex)")
    if v.support in INTEGER_SUPPORTS:
        return np.ascontiguousarray(af.astype(np.int64))
    # (a read-only array — pandas' copy-on-write columns — would type the kernels apart and compile them again)
    out = np.ascontiguousarray(af)
    return out if out.flags.writeable else out.copy()


# ----------------------------------------------------------------- data read chunk by chunk
@dataclass(frozen=True)
class Streamed:
    """Data bound to a model and read chunk by chunk (:mod:`ppvi.io.chunked`): the ``rows`` variables (data
    whose first axis is the ``unit`` dim, the data plate) are read a range of units at a time and checked as
    they are read; the others are read whole, once, into ``arrays``."""

    source: object                 # a ppvi.io.chunked.Chunked
    unit: str
    rows: tuple[str, ...]
    arrays: dict[str, np.ndarray]
    sizes: dict[str, int]
    model: CheckedModel

    def read(self, a: int, b: int, names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """The rows a..b−1 of every rows variable (or of ``names`` only, the others not read: a start's seeds
        read one variable), checked (support, finiteness, index range; totals, which relate variables, when
        all are read: every local pass reads them all); a mistake is reported at its row in the whole data."""
        out = {}
        for name in self.rows if names is None else names:
            v = self.model.variables[name]
            label = self.source.columns[name].label or self.source.label
            checked = _validate(label, v, self.source.rows(name, a, b), first=a)
            if v.support == "index":
                k = self.sizes[v.support_dim] if isinstance(v.support_dim, str) else v.support_dim
                bad = checked >= k
                if bad.any():
                    at, val = _where_in(checked, bad)
                    raise fail(label, f"`{name}{[at[0] + a, *at[1:]]}` = {val} is out of range for "
                                                  f"index({v.support_dim}) with {v.support_dim} = {k}",
                               f"values must be 0..{k - 1}")
            out[name] = checked
        if names is None:
            check_totals(self.model, {**self.arrays, **out}, {**self.sizes, self.unit: b - a}, self.source.label)
        return out

    def group_starts(self, by: str, wanted, step: int | None = None) -> dict[int, int]:
        """The first row of each group in ``wanted`` of the rows sorted by the group index ``by`` (LDA's
        ``doc``), checked as read ``step`` rows at a time (:func:`ppvi.io.chunked.group_starts`)."""
        from ppvi.io.chunked import group_starts

        label = self.source.columns[by].label or self.source.label
        v = self.model.variables[by]
        rows = self.sizes[self.unit]
        return group_starts(lambda a, b: _validate(label, v, self.source.rows(by, a, b), first=a), rows, label, by,
                            wanted, max(1, step or self.source.native or SCAN_ROWS))


def bind_streamed(model: CheckedModel, source, overrides: Mapping[str, int] | None = None) -> Streamed:
    """:func:`bind` for a chunked source: shapes and dims from the headers (nothing read but the variables
    without the data plate's axis, and an index's largest value where it sets a dim)."""
    from ppvi.graph import build

    unit = build(model).data_plate
    path = source.label
    for name, (_support, _extent, span) in model.missing.items():
        # (the in-memory fit makes the missing entries latents, ppvi.language.missing; chunks hold no mask yet)
        raise Reporter(model.path, model.text).fail(
            f"data `{name}` is declared `missing`, and missing entries of data read in chunks ({shown(path)}) are not "
            f"fitted yet", span, "load the data whole (.npz, .json or .csv without --chunk-size) to impute them")
    if unit is None:
        raise fail(path, f"model `{model.name}` has no data plate: there are no rows to read in chunks",
                   "load the data whole (.npz, .json, .csv)")
    sizes: dict[str, int | None] = {d.name: d.default for d in model.dims.values()}
    fixed: dict[str, str] = {d.name: "the model's default" for d in model.dims.values() if d.default is not None}
    for name, value in (overrides or {}).items():
        sizes[name], fixed[name] = value, "as given"
    arrays: dict[str, np.ndarray] = {}
    rows: list[str] = []
    offered = getattr(source, "all_names", source.offered)
    for v in _wanted(model):
        column = source.columns.get(v.name)
        if column is None:
            if v.kind == "param":
                continue
            have = ", ".join(map(shown, offered)) or "nothing"
            raise fail(path, f"data variable `{v.name}` is missing", did_you_mean(v.name, offered) or
                       f"the data has: {have}")
        shape = column.shape
        if len(shape) == 0 and len(v.shape) == 1 and v.kind == "data":
            shape = (1,)
        if len(shape) != len(v.shape):
            raise fail(path, f"`{v.name}` has {len(shape)} axes but is declared with {len(v.shape)} "
                             f"({', '.join(map(str, v.shape)) or 'a scalar'})", "check the variable's declaration against the file")
        if 0 in shape:
            raise fail(path, f"`{v.name}` is empty", "a data variable needs at least one entry")
        for axis, (ext, n) in enumerate(zip(v.shape, shape)):
            if isinstance(ext, int):
                if n != ext:
                    raise fail(path, f"`{v.name}` has {n} entries on axis {axis}, declared {ext}")
            elif sizes[ext] is None:
                sizes[ext], fixed[ext] = n, f"from `{v.name}` axis {axis}"
            elif sizes[ext] != n:
                raise fail(path, f"`{v.name}` has {n} entries on axis {axis} but dim {ext} = {sizes[ext]} "
                                 f"({fixed[ext]})", f"make the shapes agree or pass --dim {ext}=…")
        if v.kind == "data" and v.shape and v.shape[0] == unit:
            rows.append(v.name)
        elif unit in v.shape:
            raise fail(path, f"`{v.name}` has the data plate `{unit}` on axis {list(v.shape).index(unit)}: read in "
                             f"chunks, data have it first", f"declare `{v.name}` with `{unit}` as its first axis")
        else:
            arrays[v.name] = _validate(path, v, np.asarray(source.whole(v.name)).reshape(shape))
    for v in model.of_kind("data"):
        if v.support == "index" and isinstance(v.support_dim, str) and sizes[v.support_dim] is None:
            if v.name in rows:
                n, step = source.columns[v.name].shape[0], max(1, source.native or SCAN_ROWS)
                top = max(int(_validate(path, v, source.rows(v.name, a, min(n, a + step)), a).max())
                          for a in range(0, n, step))
            else:
                top = int(arrays[v.name].max())
            sizes[v.support_dim], fixed[v.support_dim] = top + 1, f"1 + the largest value of `{v.name}`"
    missing = [d for d, s in sizes.items() if s is None]
    if missing:
        raise fail(path, f"no size for dim `{missing[0]}`: no data variable has it as an axis",
                   f"give a default (`dim {missing[0]} = …`) or pass --dim {missing[0]}=…")
    resolved = {k: int(s) for k, s in sizes.items()}
    for chain in model.chains.values():
        # (a ragged chain's sequences are runs of rows, a chunk whole sequences: read a chunk of rows at a time)
        if chain.by is not None and chain.by in rows:
            v, n = model.variables[chain.by], source.columns[chain.by].shape[0]
            label, step = source.columns[chain.by].label or path, max(1, source.native or SCAN_ROWS)
            pieces = ((a, _validate(label, v, source.rows(chain.by, a, min(n, a + step)), a)) for a in range(0, n, step))
            _sequence_runs(model, chain.by, pieces, resolved, label)
    return Streamed(source, unit, tuple(rows), arrays, resolved, model)


def chunked_source(data: object, model: CheckedModel, whole_npz: bool = True):
    """A :class:`ppvi.io.chunked.Chunked` for data read in chunks, or None for data read whole: a directory
    (of .npy files, or a Zarr store), a .parquet or .zarr path, Dask arrays or a Dask DataFrame; an .npz only
    when ``whole_npz`` is False (a chunk size was asked for)."""
    from ppvi.io import chunked

    names = [v.name for v in _wanted(model)]
    data_vars = model.of_kind("data")
    matrix = data_vars[0].name if len(data_vars) == 1 and len(data_vars[0].shape) == 2 else None
    if chunked.is_dask(data):
        return chunked.read_dask(data, names, matrix, data_vars[0].name if len(data_vars) == 1 else None)
    if data is None:
        data = default_data_path(model.path)
    if not isinstance(data, (str, os.PathLike)) or not isinstance(os.fspath(data), str):
        return None
    path = os.fspath(data)
    kind = chunked.chunked_kind(path)
    if kind is None or (kind == "npz" and whole_npz):
        return None
    if not os.path.exists(path):
        raise fail(path, "no such file or directory")
    try:
        if kind == "npy":
            return chunked.read_npy_dir(path, names)
        if kind == "npz":
            return chunked.read_npz_stored(path, names)
        if kind == "parquet":
            return chunked.read_parquet(path, names, matrix)
        return chunked.read_zarr(path, names)
    except PPVIError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise fail(path, f"cannot read data: {getattr(e, 'strerror', None) or e}", chunked.STREAM_FORMATS) from None
