"""Warm starts: a fit that begins at an earlier result's q and params (``--init r.json``, ``fit(init=…)``).

Each q is set from its standard parameters through its natural parameters and the family's finish (its
folder's ``finish.py``, found by ``registry.finish``), the same code an update ends with, so every moment
and entropy is the one the updates would give that q.  What the start holds must fit this model and these
data: a latent it does not have, another family, another shape (data of other sizes) or a value outside
the family's domain is the user's mistake, reported naming the variable.
"""

from __future__ import annotations

import os
import reprlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from ppvi.codegen.plan import ArrayNames
from ppvi.errors import Diagnostic, PPVIError, did_you_mean
from ppvi.families.normal_gamma import NORMAL_GAMMA
from ppvi.families.registry import finish, unit_of
from ppvi.infer.program import Program
from ppvi.io.results import read


@dataclass(frozen=True)
class Start:
    """An earlier result's q (NAME -> {"family", standard parameters…}) and params, and where it came from;
    ``labels``, its maps of labels to codes (the new data are coded by them, so that row j is the same
    label's in both)."""

    q: Mapping[str, Any]
    params: Mapping[str, Any]
    source: str
    labels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, init: Any) -> "Start":
        """From a :class:`ppvi.api.Result`, the path of a result file (.json, .npz) or the dict layout of one."""
        from ppvi.result import Result

        if isinstance(init, (str, os.PathLike)) and isinstance(os.fspath(init), str) and os.fspath(init):
            source, layout = os.fspath(init), read(os.fspath(init))
        elif isinstance(init, Result):
            source, layout = "<result>", init.to_dict()
        elif isinstance(init, Mapping):
            source, layout = "<init>", init
        else:
            raise PPVIError(Diagnostic(f"init={reprlib.repr(init)}: init is None, a Result, the path of a result file "
                                       "or the dict layout of one", "fit",
                                       hint="e.g. fit(init=earlier), fit(init=\"r.json\")"))
        q, params = layout.get("q", {}), layout.get("params", {})
        if not isinstance(q, Mapping) or not isinstance(params, Mapping) or not (q or params):
            raise PPVIError(Diagnostic("not a ppvi result: no `q` or `params` to start from", source,
                                       hint="a start is a result written by `ppvi run --out` or `Result.save`"))
        labels = layout.get("labels") or {}
        if not isinstance(labels, Mapping) or not all(
                np.ndim(v) == 1 and all(isinstance(s, str) for s in np.asarray(v).tolist()) for v in labels.values()):
            raise PPVIError(Diagnostic("not a ppvi result: `labels` is not a map of dims to lists of labels", source))
        return cls(q, params, source, {k: tuple(str(s) for s in np.asarray(v).tolist()) for k, v in labels.items()})


def apply(program: Program, start: Start) -> set[str]:
    """Set the q and params ``start`` holds; returns their names."""
    model, plan = program.model, program.plan

    def fail(message: str, hint: str | None = None) -> PPVIError:
        return PPVIError(Diagnostic(message, start.source, hint=hint))

    sizes_hint = "a start comes from a fit of this model to data of the same sizes (and the same --dim values)"

    def array(what: str, value: Any, want: tuple[int, ...]) -> np.ndarray:
        try:
            a = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise fail(f"{what} in the start is not an array of numbers") from None
        if a.shape != want and not (a.ndim == 0 and want == (1,)):
            raise fail(f"{what} has shape {_show(a.shape)} in the start, but {_show(want)} in this fit", sizes_hint)
        if not np.all(np.isfinite(a)):
            raise fail(f"{what} in the start has entries that are not finite")
        return a.reshape(want)

    for name, entry in start.q.items():
        point = name in plan.point
        if name not in plan.latents and not point:
            hint = did_you_mean(name, list(plan.latents) + list(plan.point))
            raise fail(f"the start holds q({name}), but `{name}` is not a latent of model `{model.name}`", hint)
        family = "point" if point else plan.latents[name].family
        if not point and plan.latents[name].pair is not None and isinstance(entry, Mapping) \
                and entry.get("family") == NORMAL_GAMMA.name:
            entry = {"family": family, **_normal_of_pair(entry, fail)}
        if not isinstance(entry, Mapping) or entry.get("family") != family:
            given = entry.get("family") if isinstance(entry, Mapping) else type(entry).__name__
            raise fail(f"q({name}) in the start is {given!r}; this model's q({name}) is {family}")
        if point:
            target = program.state[ArrayNames.variable(name)]
            target[...] = array(f"q({name}) `value`", entry.get("value"), target.shape)
            continue
        unit = unit_of(family)
        standard = {}
        for p in unit.standard:
            if p not in entry:
                raise fail(f"q({name}) in the start has no `{p}`",
                           f"a {family} q is given by {', '.join(unit.standard)}")
            standard[p] = array(f"q({name}) `{p}`", entry[p], program.state[ArrayNames.qparam(name, p)].shape)
        problem = unit.outside(standard)
        if problem:
            raise fail(f"q({name}) in the start is not a valid {family}: {problem}")
        finish(family).set_q(program.state, name, unit.natural(standard))
        if not all(np.all(np.isfinite(program.state[k])) for k in plan.latents[name].state):
            raise fail(f"q({name}) in the start is not a valid {family}: its moments are not finite")
    params = {v.name: v for v in model.of_kind("param")}
    for name, value in start.params.items():
        if name not in params:
            raise fail(f"the start holds param `{name}`, which model `{model.name}` does not have",
                       did_you_mean(name, params))
        target = program.state[ArrayNames.variable(name)]
        a = array(f"param `{name}`", value, target.shape)
        problem = _unsupported(params[name].support, a.reshape(tuple(target.shape)))
        if problem:
            raise fail(f"param `{name}` in the start is not {params[name].support}: {problem}")
        target[...] = a
    program.stale = True
    return set(start.q) | set(start.params)


def _normal_of_pair(entry: Mapping, fail: Callable[[str], PPVIError]) -> dict:
    """q(μ) of a NormalGamma q(μ, λ) as the state keeps it (q(λ) is set from its own Gamma entry)."""
    missing = [p for p in NORMAL_GAMMA.standard if p not in entry]
    if missing:
        raise fail(f"a NormalGamma q in the start has no `{missing[0]}`")
    try:
        beta, shape, rate = (np.asarray(entry[p], dtype=float) for p in ("beta", "shape", "rate"))
    except (TypeError, ValueError):
        raise fail("a NormalGamma q in the start is not arrays of numbers") from None
    return NORMAL_GAMMA.as_state({"mean": entry["mean"], "beta": beta, "shape": shape, "rate": rate})


def _show(shape: tuple[int, ...]) -> str:
    return "a scalar" if shape in ((), (1,)) else str(tuple(shape))


def _unsupported(support: str, a: np.ndarray) -> str | None:
    if support == "positive" and not np.all(a > 0):
        return "entries must be > 0"
    if support == "simplex" and not (np.all(a >= 0) and np.allclose(a.sum(-1), 1, atol=1e-6)):
        return "entries must be ≥ 0 and sum to 1 along the last axis"
    if support == "unit_columns" and not np.allclose(np.linalg.norm(a, axis=0), 1, atol=1e-6):
        return "columns must have norm 1"
    return None

