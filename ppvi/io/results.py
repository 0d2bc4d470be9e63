"""Result files (docs/cli.md, "Result files"): a fit's :class:`ppvi.result.Result` written and read back.

The document is a tree of dicts whose leaves are numbers, strings and arrays.
JSON writes every array with the C encoder of :mod:`json` (no Python loop per
number); NaN and ±inf, which JSON has no numbers for, are the strings ``"NaN"``,
``"Infinity"`` and ``"-Infinity"``.  NPZ holds one array per leaf, keyed by the
JSON path joined by ``/`` (``q/mu/mean``), without pickles; a null leaf is left
out.  Reading turns either back into the Result that was written: every leaf is
converted by the schema below, never trusted as it comes.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import zipfile
from dataclasses import replace
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from ppvi.codegen.plan import ArrayNames
from ppvi.errors import Diagnostic, PPVIError
from ppvi.files import check_writable, write_atomic
from ppvi.families.normal_gamma import NORMAL_GAMMA
from ppvi.families.registry import unit_of
from ppvi.io.posterior import STANDARD, conform, value_shape
from ppvi.result import Provenance, Q, Result

FORMAT = 1          # "ppvi_result": the version of this layout (files without it are the first layout)
FORMATS = (".json", ".npz")
JSON_PIECE = 2 ** 16     # numbers, at most, of an array's JSON text made at once (a large q is never whole as text)


# ----------------------------------------------------------------- from a fit
def axes_of(name: str, shape: tuple) -> tuple[str, ...]:
    """Dim names of a variable's axes; an axis of literal size is ``NAME_dim_I`` (ArviZ's default name)."""
    return tuple(s if isinstance(s, str) else f"{name}_dim_{i}" for i, s in enumerate(shape))


def from_fit(fit, provenance: Provenance | None = None, warnings: tuple[str, ...] = (),
             data: Mapping[str, np.ndarray] | None = None,
             labels: Mapping[str, tuple[str, ...]] | None = None) -> Result:
    """The Result of a :class:`ppvi.infer.cavi.Fit`: q's standard parameters as read-only views of the final
    state (no copy: a fit's memory stays that of its data and q)."""
    prog = fit.program
    model = prog.model
    q = _q_of(prog, prog.state)
    chains = tuple(_q_of(prog, state) for state in getattr(fit, "restart_states", ()))
    params = {v.name: _view(prog.state[ArrayNames.variable(v.name)], _size(prog, v)) for v in model.of_kind("param")}
    axes = {v.name: axes_of(v.name, v.shape) for v in model.variables.values() if v.kind in ("param", "data")}
    plan = prog.plan
    objective = ("log_joint" if plan.point else "log_likelihood" if plan.exact_em else
                 ELBO_LOG_Z if model.unnormalised else "elbo")
    return Result(model=model.name, elbo=float(fit.elbo), elbo_trace=tuple(float(x) for x in fit.trace),
                  iterations=int(fit.iterations), converged=bool(fit.converged), q=q, params=params, axes=axes,
                  objective=objective, interrupted=bool(fit.interrupted), seconds=float(fit.seconds),
                  restart=int(fit.restart), warnings=tuple(warnings), provenance=provenance, fit=fit, data=data,
                  chains=chains, chain_elbos=tuple(float(e) for e in fit.restart_elbos) if chains else (),
                  labels={k: tuple(v) for k, v in (labels or {}).items()})


def _q_of(prog, state: Mapping[str, np.ndarray]) -> dict[str, Q]:
    """q of every latent as a state (the program's, or a snapshot of it) holds it."""
    model = prog.model
    q: dict[str, Q] = {}
    for var, info in prog.plan.latents.items():
        v = model.variables[var]
        family = info.family
        params = conform(family, {p: state[ArrayNames.qparam(var, p)] for p in STANDARD[family]}, _size(prog, v))
        categories = None
        if unit_of(family).labelled:
            k = v.support_dim
            categories = k if isinstance(k, str) else f"{var}_dim_{len(v.shape)}"
        clamped = getattr(prog, "clamped", {}).get(var)
        # (a chain approximated jointly: q is the Markov chain of its marginals and these; docs/simulate.md)
        lag_one = (_view(state[info.chain.pair], unit_of(family).lag_one_shape(params))
                   if info.chain is not None and info.chain.jointly else None)
        q[var] = Q(family, {p: _view(a) for p, a in params.items()}, axes_of(var, v.shape), categories,
                   None if clamped is None else _view(clamped[1], _size(prog, v)), lag_one)
        if info.pair is not None:
            q[var] = _pair_q(q[var], state, var, info.pair, _size(prog, v))
    for var in prog.plan.point:
        v = model.variables[var]
        q[var] = Q("point", {"value": _view(state[ArrayNames.variable(var)], _size(prog, v))}, axes_of(var, v.shape))
    return q


def _pair_q(normal: Q, state: Mapping[str, np.ndarray], mu: str, lam: str, size: tuple[int, ...]) -> Q:
    """q(μ, λ) of a pair as NormalGamma(m, β, a, b): the state keeps q(μ)'s sd as (βE[λ])^-½ (docs/derivation.md,
    "A Normal–Gamma pair")."""
    a, b = (np.reshape(state[ArrayNames.qparam(lam, p)], size) for p in ("shape", "rate"))
    sd = np.asarray(normal.params["sd"])
    params = {"mean": normal.params["mean"], "beta": _view(np.asarray(b / (a * sd ** 2))), "shape": _view(a), "rate": _view(b)}
    return Q(NORMAL_GAMMA.name, params, normal.axes, pair=lam)


def sweep_steps(fit, damped: bool = False) -> tuple[str, ...]:
    """The steps of a sweep as a reader sees them; a group block with its members and its groups; a latent
    updated two colours at a time (ppvi.infer.colouring; not in the damped schedule) says so."""
    block, latents = fit.program.plan.block, fit.program.plan.latents
    return tuple(f"({', '.join(block.members)}) for each value of {block.by}, until settled"
                 if block and step == block.name else
                 f"({step}, {latents[step].pair}) jointly" if step in latents and latents[step].pair else
                 f"{step} in two colours, each in parallel" if step in fit.program.coloured and not damped else step
                 for step in fit.order)


def _size(prog, v) -> tuple[int, ...]:
    """The shape of a variable's value at the fit's dim sizes (its state may hold a rank-0 value as [1])."""
    return tuple(prog.sizes[s] if isinstance(s, str) else int(s) for s in v.shape)


def _view(a: np.ndarray, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A read-only view of a state array (no copy), in ``shape`` when given."""
    out = a.reshape(shape) if shape is not None else a.view()
    out.flags.writeable = False
    return out


def sha256_of_file(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def sha256_of_arrays(arrays: Mapping[str, np.ndarray]) -> str:
    """A digest of arrays given as Python objects: each name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


#: The objective of a model with `factor` energy terms: p̃ = exp(log p̃) has an unknown normaliser Z, and 19.7
#: with p̃ in place of p bounds log Z (log p(v) would need Z).
ELBO_LOG_Z = "elbo_log_z"
ENERGY_NOTE = ("the model has `factor` energy terms: `elbo` is a lower bound on log Z, the log normaliser of p̃, "
               "not on log p(v)")


# ----------------------------------------------------------------- the document
def to_document(r: Result) -> dict:
    """The file's tree.  The first layout's keys (model, elbo, elbo_trace, iterations, converged, q, params,
    and log_joint/bound/note or log_likelihood) keep their meaning; the rest is added."""
    doc: dict[str, Any] = {
        "ppvi_result": FORMAT, "model": r.model, "objective": r.objective, "elbo": r.elbo,
        "elbo_trace": np.asarray(r.elbo_trace, dtype=float), "iterations": r.iterations, "converged": r.converged,
        "interrupted": r.interrupted, "seconds": r.seconds, "restart": r.restart,
        "q": {name: {"family": e.family, "mean": e.mean, **e.params,
                     **({"missing": e.missing} if e.missing is not None else {}),
                     **({"lag_one": e.lag_one} if e.lag_one is not None else {}),
                     **({"pair": e.pair} if e.pair is not None else {})} for name, e in r.q.items()},
        "params": dict(r.params),
    }
    imputed = {name: imputations(e) for name, e in r.q.items() if e.missing is not None}
    if imputed:
        doc["imputations"] = imputed
    if r.objective == "log_joint":
        # A Dirac q has entropy −∞ (19.13 and the remark after it): the objective is the log joint at the
        # point, not a lower bound on log p(v).
        points = [k for k, e in r.q.items() if e.family == "point"]
        doc.update(log_joint=r.elbo, bound=False,
                   note="q of " + ", ".join(points) + " is a point (MAP): `elbo` is log p(h*, v), the log joint "
                        "at the point, not a bound on log p(v)")
    elif r.objective == "log_likelihood":
        doc["log_likelihood"] = r.elbo      # EM (19.2): q is exact given θ, so the bound is tight
    elif r.objective == ELBO_LOG_Z:
        doc.update(bound="log Z", note=ENERGY_NOTE)
    doc["axes"] = {**{k: list(e.axes) for k, e in r.q.items()}, **{k: list(v) for k, v in r.axes.items()}}
    doc["categories"] = {k: e.categories for k, e in r.q.items() if e.categories is not None}
    if r.labels:
        doc["labels"] = {dim: list(names) for dim, names in r.labels.items()}
    doc["warnings"] = list(r.warnings)
    if r.encoders:
        doc["encoders"] = {name: e.to_document() for name, e in r.encoders.items()}     # (ppvi.amortise)
    if r.provenance is not None:
        p = r.provenance
        doc["provenance"] = {
            "ppvi": p.ppvi, "model_path": p.model_path, "model_sha256": p.model_sha256, "model_text": p.model_text,
            "data_path": p.data_path, "data_sha256": p.data_sha256, "seed": p.seed, "dims": dict(p.dims),
            "tol": p.tol, "max_iter": p.max_iter, "damping": p.damping, "restarts": p.restarts,
            "schedule": p.schedule, "sweep": list(p.sweep), "created": p.created, "versions": dict(p.versions)}
        if p.given is not None:
            doc["provenance"]["given"] = dict(p.given)
        if p.algorithm is not None:
            doc["provenance"]["algorithm"] = dict(p.algorithm)
        if p.engine is not None:
            doc["provenance"]["engine"] = dict(p.engine)
    return doc


def imputations(e: Q) -> dict:
    """q of the missing entries of a data variable, entry by entry: their indices (rows of ``index``), E_q[x],
    and sd (Normal, a MvNormal's coordinates; Gamma and Beta with their parameters: ``shape``, ``rate``;
    ``a``, ``b``) or the probabilities (Bernoulli: ``p``; Categorical: ``p``, a row per entry)."""
    at = np.argwhere(e.missing)
    out: dict[str, Any] = {"index": at.astype(np.int64), "mean": np.asarray(e.mean)[e.missing]}
    unit = unit_of(e.family)
    if not unit.discrete:
        out["sd"] = np.asarray(e.sd)[e.missing]
    for name in unit.imputed:
        out[name] = np.asarray(e.params[name])[e.missing]
    return out


# ----------------------------------------------------------------- writing
def write(path: str, r: Result) -> None:
    """``.json`` or ``.npz`` by the extension (another is a PPVIError), written atomically; JSON in pieces, as
    it is made."""
    check_writable(path, FORMATS)
    ext = os.path.splitext(path)[1].lower()
    write_atomic(path, to_npz(r) if ext == ".npz" else (t.encode("utf-8") for t in _json_pieces(r)))


def to_json(r: Result) -> str:
    """The document as JSON: one line per small value, each array on one line."""
    return "".join(_json_pieces(r))


def _json_pieces(r: Result) -> Iterator[str]:
    yield from _json_text(to_document(r), 0)
    yield "\n"


def _json_text(x: Any, depth: int) -> Iterator[str]:
    if isinstance(x, dict):
        if not x:
            yield "{}"
            return
        pad = " " * (depth + 1)
        yield "{"
        for i, (k, v) in enumerate(x.items()):
            yield ("," if i else "") + "\n" + pad + json.dumps(k) + ": "
            yield from _json_text(v, depth + 1)
        yield "\n" + " " * depth + "}"
    elif isinstance(x, np.ndarray) and x.size > JSON_PIECE:
        yield from _array_text(x)
    else:
        yield json_value(x)


def _array_text(a: np.ndarray) -> Iterator[str]:
    """``json_value(a)`` in pieces of at most JSON_PIECE numbers: rows, or runs of a long vector (the same text:
    the numbers of a q(z) of 10⁷ entries are never all Python floats at once)."""
    if a.size <= JSON_PIECE:
        yield json_value(a)
        return
    yield "["
    per = max(1, JSON_PIECE // max(1, np.size(a[0])))      # rows of a piece
    for i in range(0, len(a), per):
        yield "," if i else ""
        if per == 1 and a[i].size > JSON_PIECE:
            yield from _array_text(a[i])
        else:
            yield json_value(a[i:i + per])[1:-1]
    yield "]"


def json_value(x: Any) -> str:
    """A leaf as JSON text; non-finite floats as the strings "NaN", "Infinity", "-Infinity".  Arrays go
    through ``tolist`` and the C encoder; only an array with non-finite values is first made an object
    array with those strings in place (vectorised, still no loop per number in Python)."""
    if isinstance(x, (float, np.floating)) and not math.isfinite(x):
        return json.dumps(_nonfinite(float(x)))
    if isinstance(x, (np.ndarray, list, tuple)) and not (isinstance(x, list) and x and isinstance(x[0], str)):
        a = np.asarray(x)
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            obj = a.astype(object)
            obj[np.isnan(a)] = "NaN"
            obj[a == math.inf] = "Infinity"
            obj[a == -math.inf] = "-Infinity"
            a = obj
        return json.dumps(a.tolist(), separators=(",", ":"), allow_nan=False)
    if isinstance(x, np.generic):
        x = x.item()
    return json.dumps(x, ensure_ascii=False, allow_nan=False)


def _nonfinite(x: float) -> str:
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


def to_npz(r: Result) -> bytes:
    flat: dict[str, np.ndarray] = {}
    _flatten("", to_document(r), flat)
    buf = io.BytesIO()
    np.savez(buf, **flat)
    return buf.getvalue()


def _flatten(prefix: str, x: Any, out: dict) -> None:
    if isinstance(x, dict):
        for k, v in x.items():
            _flatten(f"{prefix}/{k}" if prefix else k, v, out)
    elif x is not None:
        out[prefix] = np.asarray(x, dtype=str) if isinstance(x, list) and all(isinstance(s, str) for s in x) \
            else np.asarray(x)


# ----------------------------------------------------------------- reading
class _Malformed(Exception):
    def __init__(self, key: str, expected: str):
        self.key, self.expected = key, expected


_RESULT_HINT = "a result file is written by `ppvi run --out` or Result.save (.json or .npz)"


def read(path: str) -> dict:
    """A result file (.json or .npz) as the nested dict :func:`write` wrote: arrays for the numbers
    (a ``null`` of JSON, a value that was not finite, is NaN), strings and flags as they were.  Reads are
    bounded as the data's are (:mod:`ppvi.io.reading`): a damaged or enormous file is the user's error."""
    from ppvi.io.reading import physical_memory, read_json, size_text

    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npz":
            with zipfile.ZipFile(path) as z:
                declared = sum(info.file_size for info in z.infolist())
            budget = physical_memory()
            if budget is not None and declared > budget // 2:
                raise ValueError(f"its arrays take {size_text(declared)} decompressed, more than half this "
                                 f"machine's memory")
            out: dict = {}
            with np.load(path, allow_pickle=False) as f:
                for key in f.files:
                    *outer, last = key.split("/")
                    node = out
                    for part in outer:
                        node = node.setdefault(part, {})
                    value = f[key]
                    node[last] = value.item() if value.dtype.kind in "USb" and value.ndim == 0 else value
            return out
        if ext == ".json":
            try:
                doc = read_json(path)
                # (labels stay text: ["1", "2"] are labels, not numbers)
                return {k: v if k == "labels" else _arrays(v) for k, v in doc.items()} if isinstance(doc, dict) \
                    else _arrays(doc)
            except PPVIError as e:        # (its messages speak of a data file)
                raise PPVIError([replace(d, message=f"cannot read the result: {d.message}", hint=_RESULT_HINT)
                                 for d in e.diagnostics]) from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as e:
        raise PPVIError(Diagnostic(f"cannot read the result: {getattr(e, 'strerror', None) or e}", path,
                                   hint=_RESULT_HINT)) from None
    raise PPVIError(Diagnostic(f"unknown result format `{ext or '(none)'}`", path, hint="use .json or .npz"))


def _arrays(x):
    """JSON's lists of numbers as arrays, in a nested dict."""
    if isinstance(x, dict):
        return {k: _arrays(v) for k, v in x.items()}
    if isinstance(x, list):
        try:
            return np.asarray(x, dtype=float)
        except (TypeError, ValueError):
            return x
    return x


def load(path: str) -> Result:
    """A result file read back; anything that is not one is a :class:`PPVIError` naming the key."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise PPVIError(Diagnostic(f"unknown result format `{ext or '(none)'}`", path,
                                   hint="result files are .json or .npz"))
    try:
        doc = _read_npz(path) if ext == ".npz" else _read_json(path)
        return from_document(doc)
    except OSError as e:
        raise PPVIError(Diagnostic(f"cannot read: {e.strerror or e}", path)) from None
    except (ValueError, zipfile.BadZipFile, EOFError) as e:
        raise PPVIError(Diagnostic(f"not a ppvi result file: {e}", path)) from None
    except _Malformed as e:
        raise PPVIError(Diagnostic(f"not a ppvi result file: `{e.key}` should be {e.expected}", path)) from None


def _read_json(path: str) -> dict:
    with open(path, "rb") as fh:
        doc = json.loads(fh.read())      # (bare NaN and Infinity, which Python's json writes, are read too)
    if not isinstance(doc, dict):
        raise _Malformed("(top level)", "an object")
    return doc


def _read_npz(path: str) -> dict:
    doc: dict = {}
    with np.load(path, allow_pickle=False) as z:
        for key in z.files:
            node = doc
            *parents, leaf = key.split("/")
            for part in parents:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise _Malformed(key, "a leaf of its own")
            node[leaf] = z[key]
    return doc


def _get(d: Mapping, key: str, where: str, convert: Callable[[Any, str], Any], default: Any = ...) -> Any:
    if not isinstance(d, Mapping):
        raise _Malformed(where, "an object")
    if key not in d or d[key] is None:
        if default is ...:
            raise _Malformed(f"{where}/{key}".lstrip("/"), "present")
        return default
    return convert(d[key], f"{where}/{key}".lstrip("/"))


def _float(x: Any, key: str) -> float:
    try:
        a = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise _Malformed(key, "a number") from None
    if a.shape != ():
        raise _Malformed(key, "a number")
    return float(a)


def _array(x: Any, key: str) -> np.ndarray:
    """Numbers (nested lists of them, "NaN"/"Infinity" strings, or an array) as a float array."""
    try:
        a = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise _Malformed(key, "an array of numbers") from None
    return a


def _int(x: Any, key: str) -> int:
    v = _float(x, key)
    if not v.is_integer():
        raise _Malformed(key, "a whole number")
    return int(v)


def _bool(x: Any, key: str) -> bool:
    a = np.asarray(x)
    if a.shape != () or a.dtype.kind != "b":
        raise _Malformed(key, "true or false")
    return bool(a)


def _str(x: Any, key: str) -> str:
    a = np.asarray(x)
    if a.shape != () or a.dtype.kind != "U":
        raise _Malformed(key, "a string")
    return str(a)


def _strings(x: Any, key: str) -> tuple[str, ...]:
    a = np.asarray(x)
    if a.ndim != 1 or (a.size and a.dtype.kind != "U"):
        raise _Malformed(key, "a list of strings")
    return tuple(str(s) for s in a)


def _setting(x: Any, key: str) -> str | float | int | bool:
    """A setting of the fit's algorithm: a string, a flag or a number, as it was written."""
    a = np.asarray(x)
    if a.shape != () or a.dtype.kind not in "Ubiuf":
        raise _Malformed(key, "a string, true or false, or a number")
    return {"U": str, "b": bool, "i": int, "u": int, "f": float}[a.dtype.kind](a)


def _mapping(convert: Callable[[Any, str], Any]) -> Callable[[Any, str], dict]:
    def read(x: Any, key: str) -> dict:
        if not isinstance(x, Mapping):
            raise _Malformed(key, "an object")
        return {k: convert(v, f"{key}/{k}") for k, v in x.items()}
    return read


def from_document(doc: Mapping) -> Result:
    trace = _get(doc, "elbo_trace", "", _array)
    if trace.ndim != 1:
        raise _Malformed("elbo_trace", "a list of numbers")
    axes = _get(doc, "axes", "", _mapping(_strings), {})
    categories = _get(doc, "categories", "", _mapping(_str), {})
    entries = _get(doc, "q", "", _mapping(lambda x, k: x))
    q = {name: _q(name, entry, axes, categories) for name, entry in entries.items()}
    params = _get(doc, "params", "", _mapping(_array), {})
    for name, value in params.items():
        axes.setdefault(name, axes_of(name, value.shape))
    return Result(
        model=_get(doc, "model", "", _str), elbo=_get(doc, "elbo", "", _float),
        elbo_trace=tuple(trace.tolist()), iterations=_get(doc, "iterations", "", _int),
        converged=_get(doc, "converged", "", _bool), q=q, params=params,
        axes={k: v for k, v in axes.items() if k not in q},
        objective=_get(doc, "objective", "", _str, _objective_of_first_layout(doc)),
        interrupted=_get(doc, "interrupted", "", _bool, False), seconds=_get(doc, "seconds", "", _float, 0.0),
        restart=_get(doc, "restart", "", _int, 0), warnings=_get(doc, "warnings", "", _strings, ()),
        provenance=_get(doc, "provenance", "", _provenance, None),
        encoders={name: _encoder(name, e)
                  for name, e in _get(doc, "encoders", "", _mapping(lambda x, k: x), {}).items()},
        labels=_get(doc, "labels", "", _mapping(_strings), {}))


def _objective_of_first_layout(doc: Mapping) -> str:
    return "log_joint" if "log_joint" in doc else "log_likelihood" if "log_likelihood" in doc else "elbo"


def _q(name: str, entry: Any, axes: Mapping[str, tuple[str, ...]], categories: Mapping[str, str]) -> Q:
    where = f"q/{name}"
    family = _get(entry, "family", where, _str)
    if family not in STANDARD:
        raise _Malformed(f"{where}/family", "one of " + ", ".join(STANDARD))
    params = {p: _get(entry, p, where, _array) for p in STANDARD[family]}
    try:
        params = conform(family, params)
    except ValueError as e:
        raise _Malformed(f"{where}/{e}", f"of the shape its q's other parameters give ({family})") from None
    value_axes = axes.get(name)
    if value_axes is None:
        value_axes = axes_of(name, value_shape(family, params))
    labelled = unit_of(family).labelled
    cats = categories.get(name) if labelled else None
    if labelled and cats is None:
        cats = f"{name}_dim_{len(value_axes)}"
    missing = _get(entry, "missing", where, _array, None)
    if missing is not None:
        value = value_shape(family, params)
        if missing.shape != tuple(value) or not np.isin(missing, (0, 1)).all():
            raise _Malformed(f"{where}/missing", f"0 or 1 for every entry, of shape {list(value)}")
        missing = missing.astype(bool)
    lag_one = _get(entry, "lag_one", where, _array, None)
    if lag_one is not None:
        if not unit_of(family).chained:
            raise _Malformed(f"{where}/lag_one",
                             f"absent: only a Categorical, Normal or MvNormal chain has one, not a {family}")
        shape = unit_of(family).lag_one_shape(params)
        if shape is None or lag_one.shape != shape:
            raise _Malformed(f"{where}/lag_one", "a chain's pairwise marginals (Categorical) or lag-one covariances "
                             f"(Normal or MvNormal: mean[…, T] or mean[…, T, D]) of shape {list(shape or ())}")
    pair = _get(entry, "pair", where, _str, None)
    if (pair is None) != (family != NORMAL_GAMMA.name):
        raise _Malformed(f"{where}/pair", "the latent λ of a NormalGamma q(μ, λ), and only there")
    return Q(family, params, tuple(value_axes), cats, missing, lag_one, pair)


def _encoder(name: str, entry: Any):
    """An encoder (ppvi.amortise.Encoder) as saved: its layers must chain, from its inputs' width to its outputs'."""
    from ppvi.amortise.encoder import FAMILIES, Encoder
    from ppvi.amortise.lista import LISTA
    from ppvi.amortise.mlp import MLP

    where = f"encoders/{name}"

    def get(key: str, convert: Callable[[Any, str], Any]) -> Any:
        return _get(entry, key, where, convert)

    family = get("family", _str)
    if family not in FAMILIES:
        raise _Malformed(f"{where}/family", "one of " + ", ".join(FAMILIES))
    weights, biases = get("weights", _mapping(_array)), get("biases", _mapping(_array))
    layers, hidden = get("layers", _int), get("hidden", _int)
    order = [str(i) for i in range(layers + 1)]
    if sorted(weights) != sorted(order) or sorted(biases) != sorted(order):
        raise _Malformed(f"{where}/weights", f"{layers + 1} layers, keyed 0 to {layers}")
    ws, bs = [weights[k] for k in order], [biases[k] for k in order]
    x_mean, x_scale, y_mean, y_scale = (get(k, _array) for k in ("x_mean", "x_scale", "y_mean", "y_scale"))
    widths = [len(x_mean)] + [hidden] * layers + [len(y_mean)]
    for i, (w, b) in enumerate(zip(ws, bs)):
        if w.shape != (widths[i], widths[i + 1]) or b.shape != (widths[i + 1],):
            raise _Malformed(f"{where}/weights/{i}", f"a {widths[i]} × {widths[i + 1]} layer with its biases")
    if x_scale.shape != x_mean.shape or y_scale.shape != y_mean.shape or x_mean.ndim != 1 or y_mean.ndim != 1:
        raise _Malformed(f"{where}/x_scale", "the shape of its mean")
    inputs = get("inputs", _strings)
    if not inputs:
        raise _Malformed(f"{where}/inputs", "a list of data variables")
    method, steps = _get(entry, "method", where, _str, "mlp"), _get(entry, "steps", where, _int, 0)
    if method not in ("mlp", "lista") or (method == "lista" and (layers != 1 or hidden != len(y_mean))):
        raise _Malformed(f"{where}/method", "mlp, or lista with one M × M layer")
    net = LISTA(tuple(ws), tuple(bs), steps) if method == "lista" else MLP(tuple(ws), tuple(bs))
    return Encoder(get("latent", _str), family, inputs, hidden, layers, x_mean, x_scale, y_mean, y_scale,
                   net, get("sweeps", _int), get("rounds", _int), get("gap", _float),
                   _get(entry, "training", where, _str, "regression"), method, steps,
                   tuple(float(g) for g in np.ravel(_get(entry, "trace", where, _array, np.zeros(0)))))


def _provenance(x: Any, key: str) -> Provenance:
    def opt(k: str, convert):
        return _get(x, k, key, convert, None)

    return Provenance(
        ppvi=_get(x, "ppvi", key, _str), model_path=opt("model_path", _str),
        model_text=_get(x, "model_text", key, _str, ""), model_sha256=_get(x, "model_sha256", key, _str, ""),
        data_path=opt("data_path", _str), data_sha256=_get(x, "data_sha256", key, _str, ""),
        seed=_get(x, "seed", key, _int, 0), dims=_get(x, "dims", key, _mapping(_int), {}),
        tol=_get(x, "tol", key, _float, math.nan), max_iter=_get(x, "max_iter", key, _int, 0),
        damping=opt("damping", _float), restarts=_get(x, "restarts", key, _int, 1),
        schedule=_get(x, "schedule", key, _str, ""), sweep=_get(x, "sweep", key, _strings, ()),
        created=_get(x, "created", key, _str, ""), versions=_get(x, "versions", key, _mapping(_str), {}),
        given=opt("given", _mapping(_optional_str)), algorithm=opt("algorithm", _mapping(_setting)),
        engine=opt("engine", _mapping(_setting)))


def _optional_str(x: Any, key: str) -> str | None:
    return None if x is None else _str(x, key)


# ----------------------------------------------------------------- the data of a result
def observed(r: Result, data: object = None) -> tuple[dict[str, np.ndarray] | None, str]:
    """The data ``r`` was fitted to, and where it came from (or why there is none).

    ``data`` (a path or Python objects, read and checked as ``fit`` reads them against the model in the
    provenance, with its dims) comes first; then the arrays a fit in this process kept; then the file named
    in the provenance, if its SHA-256 is still the one fitted."""
    if data is None and r.data is not None:
        return dict(r.data), "the fit"
    p = r.provenance
    if data is None:
        if p is None or p.data_path is None:
            return None, "the result names no data file (fitted to Python objects, or an old result file)"
        if not os.path.exists(p.data_path):
            return None, f"the data file {p.data_path} no longer exists"
        if sha256_of_file(p.data_path) != p.data_sha256:
            return None, f"the data file {p.data_path} has changed since the fit (its SHA-256 differs)"
        data = p.data_path
    if p is None or not p.model_text:
        raise PPVIError(Diagnostic("this result file has no model text (an old result file): its data cannot be "
                                   "read", "data"))
    from ppvi.io.data import bind, observed_arrays, source_of
    from ppvi.language import loads

    model = loads(p.model_text, p.model_path or "<model>")
    source = source_of(data, model)
    dims = {k: v for k, v in p.dims.items() if k in model.dims}
    bound = bind(model, source, dims, r.labels)
    label = source.label if isinstance(data, (str, os.PathLike)) else "the data given"
    return observed_arrays(model, bound), label
