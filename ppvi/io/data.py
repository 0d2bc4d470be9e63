"""Data files -> validated arrays and sizes (DESIGN §3).

``.npz`` and ``.json`` map names to arrays; ``.csv`` maps column names to 1-D
columns (a model with a single 2-D data variable takes all numeric columns).
Every array is checked against its declaration: shape, finiteness, and the
support (binary, count, index(K), positive, simplex, unit columns).  Mistakes
are reported as ``FILE: error: …`` naming the variable, the entry and the rule.
"""

from __future__ import annotations

import csv
import json
import os
import zipfile
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ppvi.errors import Diagnostic, PPVIError
from ppvi.language.check import CheckedModel

INTEGER_SUPPORTS = ("binary", "count", "index")


def _fail(path: str, message: str, hint: str | None = None) -> PPVIError:
    return PPVIError(Diagnostic(message, path, hint=hint))


def default_data_path(model_path: str) -> str | None:
    """``models/gmm.ppvi`` -> the first of ``models/gmm.npz|.csv|.json`` that exists."""
    stem = os.path.splitext(model_path)[0]
    for ext in (".npz", ".csv", ".json"):
        if os.path.exists(stem + ext):
            return stem + ext
    return None


def read(path: str, model: CheckedModel) -> dict[str, np.ndarray]:
    """Read a data file into named arrays (no validation yet)."""
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npz":
            with np.load(path, allow_pickle=False) as f:
                return {k: np.asarray(f[k]) for k in f.files}
        if ext == ".json":
            with open(path, encoding="utf-8") as fh:
                raw = json.load(fh)
            if not isinstance(raw, dict):
                raise _fail(path, "a .json data file must hold an object mapping names to arrays")
            out = {}
            for k, v in raw.items():
                try:
                    out[k] = np.asarray(v, dtype=float)
                except (ValueError, TypeError):
                    raise _fail(path, f"`{k}` is not a numeric array (ragged or non-numeric entries)") from None
            return out
        if ext == ".csv":
            return _read_csv(path, model)
    except PPVIError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _fail(path, f"cannot read data: {getattr(e, 'strerror', None) or e}",
                    "data files are .npz, .json (name -> array) or .csv (columns)") from None
    raise _fail(path, f"unknown data format `{ext or '(none)'}`", "use .npz, .json or .csv")


def _read_csv(path: str, model: CheckedModel) -> dict[str, np.ndarray]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise _fail(path, "the csv file is empty")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    cols: dict[str, np.ndarray] = {}
    for j, name in enumerate(header):
        try:
            cols[name] = np.array([float(r[j]) for r in body], dtype=float)
        except (ValueError, IndexError):
            continue  # a non-numeric column: only an error if the model asks for it
    data_vars = [v for v in model.of_kind("data")]
    matrices = [v for v in data_vars if len(v.shape) == 2]
    if len(data_vars) == 1 and matrices and matrices[0].name not in cols and cols:
        return {matrices[0].name: np.column_stack(list(cols.values()))}
    return cols


@dataclass
class Bound:
    """Data bound to a model: arrays by name and the size of every dim."""

    arrays: dict[str, np.ndarray]
    sizes: dict[str, int]


def bind(model: CheckedModel, raw: Mapping[str, np.ndarray], path: str,
         overrides: Mapping[str, int] | None = None) -> Bound:
    """Check arrays against their declarations and resolve every dim."""
    sizes: dict[str, int | None] = {d.name: d.default for d in model.dims.values()}
    fixed: dict[str, str] = {}
    for name, value in (overrides or {}).items():
        if name not in sizes:
            raise PPVIError(Diagnostic(f"--dim {name}: the model has no dim `{name}`", "ppvi",
                                       hint="dims: " + ", ".join(sizes) if sizes else "the model declares no dims"))
        if value < 1:
            raise PPVIError(Diagnostic(f"--dim {name}={value}: a dim is at least 1", "ppvi"))
        sizes[name] = value
        fixed[name] = "--dim"
    arrays: dict[str, np.ndarray] = {}
    wanted = [v for v in model.variables.values() if v.kind == "data" or (v.kind == "param" and v.name in raw)]
    for v in wanted:
        if v.name not in raw:
            have = ", ".join(sorted(raw)) or "nothing"
            raise _fail(path, f"data variable `{v.name}` is missing", f"the file has: {have}")
        a = np.asarray(raw[v.name])
        if a.dtype.kind not in "biuf":
            raise _fail(path, f"`{v.name}` is not numeric (dtype {a.dtype})")
        if a.ndim == 0 and len(v.shape) == 1 and v.kind == "data":
            a = a.reshape(1)
        if a.ndim != len(v.shape):
            raise _fail(path, f"`{v.name}` has {a.ndim} axes but is declared with {len(v.shape)} "
                              f"({', '.join(map(str, v.shape)) or 'a scalar'})",
                        "check the variable's declaration against the file")
        if a.size == 0:
            raise _fail(path, f"`{v.name}` is empty", "a data variable needs at least one entry")
        for axis, (ext, n) in enumerate(zip(v.shape, a.shape)):
            if isinstance(ext, int):
                if n != ext:
                    raise _fail(path, f"`{v.name}` has {n} entries on axis {axis}, declared {ext}")
            elif sizes[ext] is None:
                sizes[ext] = n
                fixed[ext] = f"`{v.name}` axis {axis}"
            elif sizes[ext] != n:
                src = fixed.get(ext, "its default")
                raise _fail(path, f"`{v.name}` has {n} entries on axis {axis} but dim {ext} = {sizes[ext]} "
                                  f"(from {src})", f"make the shapes agree or pass --dim {ext}=…")
        arrays[v.name] = _validate(path, v, a)
    # index(K) data gives K when nothing else does.
    for v in model.of_kind("data"):
        if v.support == "index" and isinstance(v.support_dim, str) and sizes[v.support_dim] is None:
            sizes[v.support_dim] = int(arrays[v.name].max()) + 1
    for v in model.of_kind("data"):
        if v.support == "index":
            k = sizes[v.support_dim] if isinstance(v.support_dim, str) else v.support_dim
            bad = np.flatnonzero(arrays[v.name].ravel() >= k)
            if bad.size:
                at = np.unravel_index(bad[0], arrays[v.name].shape)
                raise _fail(path, f"`{v.name}{list(at)}` = {arrays[v.name][at]} is out of range for index({v.support_dim})"
                                  f" with {v.support_dim} = {k}", f"values must be 0..{k - 1}")
    missing = [d for d, s in sizes.items() if s is None]
    if missing:
        raise _fail(path, f"no size for dim `{missing[0]}`: no data variable has it as an axis",
                    f"give a default (`dim {missing[0]} = …`) or pass --dim {missing[0]}=…")
    return Bound(arrays, {k: int(s) for k, s in sizes.items()})


def _where(a: np.ndarray, mask: np.ndarray) -> tuple[tuple[int, ...], float]:
    i = np.flatnonzero(mask.ravel())[0]
    at = np.unravel_index(i, a.shape)
    return tuple(int(x) for x in at), a[at]


def _validate(path: str, v, a: np.ndarray) -> np.ndarray:
    name = v.name
    af = np.asarray(a, dtype=float)      # no copy when the data are already float64
    bad = ~np.isfinite(af)
    if bad.any():
        at, val = _where(a, bad)
        raise _fail(path, f"`{name}{list(at)}` is {val}: data must be finite", "remove or impute missing values")
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
            raise _fail(path, f"`{name}{list(at)}` = {val} {words} (`{name}` is {v.support})")
    if v.support == "simplex":
        s = af.sum(axis=-1)
        if np.any(af < 0) or np.any(np.abs(s - 1) > 1e-6):
            raise _fail(path, f"`{name}` must be non-negative with rows summing to 1 (simplex)")
    if v.support in INTEGER_SUPPORTS:
        return np.ascontiguousarray(af.astype(np.int64))
    return np.ascontiguousarray(af)
