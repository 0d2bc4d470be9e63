"""Result files (DESIGN §3), written atomically, and the end-of-run summary table."""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from dataclasses import replace

import numpy as np

from ppvi.errors import Diagnostic, PPVIError
from ppvi.files import write_atomic
from ppvi.infer.cavi import Fit

STANDARD = {
    "Normal": ("mean", "sd"), "Gamma": ("shape", "rate"), "Beta": ("a", "b"), "Bernoulli": ("p",),
    "Categorical": ("p",), "Dirichlet": ("alpha",), "MvNormal": ("mean", "cov"), "Wishart": ("df", "scale"),
}


def _mean(family: str, p: dict[str, np.ndarray]) -> np.ndarray:
    if family in ("Normal", "MvNormal"):
        return p["mean"]
    if family == "Gamma":
        return p["shape"] / p["rate"]
    if family == "Beta":
        return p["a"] / (p["a"] + p["b"])
    if family == "Bernoulli":
        return p["p"]
    if family == "Categorical":
        return p["p"] @ np.arange(p["p"].shape[-1])
    if family == "Dirichlet":
        return p["alpha"] / p["alpha"].sum(-1, keepdims=True)
    return p["df"][..., None, None] * p["scale"]


def _sd(family: str, p: dict[str, np.ndarray]) -> np.ndarray | None:
    """Posterior standard deviation of each entry (for the summary)."""
    if family == "Normal":
        return p["sd"]
    if family == "Gamma":
        return np.sqrt(p["shape"]) / p["rate"]
    if family == "Beta":
        a, b = p["a"], p["b"]
        return np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    if family == "Bernoulli":
        return np.sqrt(p["p"] * (1 - p["p"]))
    if family == "Dirichlet":
        a = p["alpha"]
        a0 = a.sum(-1, keepdims=True)
        return np.sqrt(a * (a0 - a) / (a0 ** 2 * (a0 + 1)))
    if family == "MvNormal":
        return np.sqrt(np.diagonal(p["cov"], axis1=-2, axis2=-1))
    return None


def q_summary(fit: Fit) -> dict[str, dict]:
    """Every latent's q: family, mean and standard parameters, shaped as the model declares."""
    prog = fit.program
    out = {}
    for var, info in prog.plan["latents"].items():
        fam = info["family"]
        scalar = not prog.model.variables[var].shape
        params = {p: prog.state[f"q_{var}__{p}"] for p in STANDARD[fam]}
        if scalar:
            params = {k: v.reshape(()) for k, v in params.items()}
        entry = {"family": fam, "mean": _mean(fam, params)}
        entry.update(params)
        sd = _sd(fam, params)
        if sd is not None:
            entry["sd_of_entries"] = sd
        out[var] = entry
    for var in prog.plan.get("point", []):
        v = prog.state[f"v_{var}"]
        v = v.reshape(()) if not prog.model.variables[var].shape else v
        out[var] = {"family": "point", "mean": v, "value": v}
    return out


def params_of(fit: Fit) -> dict[str, np.ndarray]:
    prog = fit.program
    return {v.name: (prog.state[f"v_{v.name}"].reshape(()) if not v.shape else prog.state[f"v_{v.name}"])
            for v in prog.model.of_kind("param")}


def result_dict(fit: Fit) -> dict:
    q = q_summary(fit)
    for entry in q.values():
        entry.pop("sd_of_entries", None)
    out = {"model": fit.program.model.name, "elbo": fit.elbo, "elbo_trace": list(fit.trace),
           "iterations": fit.iterations, "converged": bool(fit.converged), "q": q, "params": params_of(fit)}
    plan = fit.program.plan
    if plan.get("point"):
        # A Dirac q has entropy −∞ (19.13 and the remark after it): the objective is the log joint at the
        # point, not a lower bound on log p(v).
        out["log_joint"] = fit.elbo
        out["bound"] = False
        out["note"] = ("q of " + ", ".join(plan["point"]) + " is a point (MAP): `elbo` is log p(h*, v), "
                       "the log joint at the point, not a bound on log p(v)")
    elif plan.get("exact_em"):
        out["log_likelihood"] = fit.elbo     # EM (19.2): q is exact given θ, so the bound is tight
    return out


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def _flatten(prefix: str, x, out: dict) -> None:
    if isinstance(x, dict):
        for k, v in x.items():
            _flatten(f"{prefix}/{k}" if prefix else k, v, out)
    else:
        out[prefix] = np.asarray(x)


def write(path: str, fit: Fit) -> None:
    """Write ``.json`` or ``.npz`` atomically (ppvi.files.write_atomic)."""
    data = result_dict(fit)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        flat: dict[str, np.ndarray] = {}
        _flatten("", data, flat)
        buf = io.BytesIO()
        np.savez(buf, **flat)
        payload = buf.getvalue()
    else:
        payload = (json.dumps(_jsonable(data), indent=1) + "\n").encode("utf-8")
    write_atomic(path, payload)


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
                return _arrays(read_json(path))
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


def _short(a: np.ndarray, limit: int = 8) -> str:
    a = np.asarray(a, dtype=float)
    if a.ndim == 0:
        return f"{float(a):.4g}"
    flat = a.ravel()
    body = ", ".join(f"{v:.4g}" for v in flat[:limit])
    more = f", … ({a.size} values)" if a.size > limit else ""
    return f"[{body}{more}]"


def _rows(name: str, family: str, mean, sd) -> list[tuple[str, ...]]:
    """One line per variable; a small leading axis (components, topics) gets a line per entry."""
    m = np.asarray(mean, dtype=float)
    shape = "scalar" if m.ndim == 0 else "×".join(map(str, m.shape))
    if m.ndim >= 2 and m.shape[0] <= 12:
        out = [(name, family, shape, "", "")]
        for i in range(m.shape[0]):
            out.append((f"  [{i}]", "", "", _short(m[i]), _short(sd[i]) if sd is not None else ""))
        return out
    return [(name, family, shape, _short(m), _short(sd) if sd is not None else "")]


def summary_table(fit: Fit) -> str:
    """What a user reads at the end of a run: each q's family, shape, posterior mean and sd."""
    q = q_summary(fit)
    rows = [("variable", "q", "shape", "mean", "sd")]
    for var, e in q.items():
        rows += _rows(var, e["family"], e["mean"], e.get("sd_of_entries"))
    for name, value in params_of(fit).items():
        rows += _rows(name, "param", value, None)
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    status = "converged" if fit.converged else ("interrupted" if fit.interrupted else "not converged")
    plan = fit.program.plan
    what = "log joint at the MAP point" if plan.get("point") else (
        "log-likelihood (EM)" if plan.get("exact_em") else "ELBO")
    head = (f"{what} {fit.elbo:.10g} after {fit.iterations} iterations ({status}, "
            f"{fit.seconds:.3g} s" + (f", best of restarts: #{fit.restart}" if fit.restart else "") + ")")
    block = plan.get("block")
    steps = [f"({', '.join(block['members'])}) for each value of {block['by']}, until settled"
             if block and step == block["name"] else step for step in fit.order]
    sweep = f"sweep: {'; '.join(steps)}\n" if steps else ""
    return head + "\n" + sweep + "\n".join(lines) + "\n"
