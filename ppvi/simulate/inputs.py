"""What a simulation starts from: the model, every dim's size, and the values that are the same in every draw.

A :class:`Setting` holds constants (filled to their shapes), covariates (data no
``~`` statement draws), params and, for the evidence, the observed data, each
with a leading axis of 1.  :func:`from_data` builds one for a prior simulation
from data and dims given by the user; :func:`from_result` from a fit's result
(its model text, sizes, params and data).  A missing covariate, size or param is
a user's mistake shown at its declaration in the model.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from typing import Mapping

import numpy as np

from ppvi.errors import Diagnostic, PPVIError, PPVIWarning, Reporter
from ppvi.language import consts
from ppvi.language.check import CheckedModel
from ppvi.result import Result

MAX_ENTRIES = 1 << 28          # numbers a simulation may hold (2 GiB of doubles)


@dataclass(frozen=True)
class Setting:
    model: CheckedModel
    sizes: Mapping[str, int]
    fixed: Mapping[str, np.ndarray]            # name -> (1, *shape)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.sizes[e] if isinstance(e, str) else e for e in self.model.variables[name].shape)

    def drawn(self, observed: bool) -> list[str]:
        """The variables a ``~`` statement draws, in the statements' order, each once (a chain's several
        statements draw one variable): the latents, and with ``observed`` the data too."""
        return list(dict.fromkeys(f.target for f in self.model.factors if (observed or not f.observed)
                                  and f.target not in self.model.allocations))

    def check_memory(self, draws: int, names: list[str], where: str) -> None:
        entries = draws * sum(math.prod(self.shape(n)) for n in names)
        if entries > MAX_ENTRIES:
            raise PPVIError(Diagnostic(f"{draws} draws of {', '.join(f'`{n}`' for n in names)} would hold "
                                       f"{entries:,} numbers, more than {MAX_ENTRIES:,}", where,
                                       hint="ask for fewer draws, or simulate in several runs"))


def _reporter(model: CheckedModel) -> Reporter:
    return Reporter(model.path, model.text)


def _fixed(model: CheckedModel, sizes: Mapping[str, int], given: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Constants filled to their shapes, then the given arrays, each with a leading axis of 1."""
    out: dict[str, np.ndarray] = {}
    filled: dict[str, np.ndarray] = {}
    shape = (lambda v: tuple(sizes[e] if isinstance(e, str) else e for e in v.shape))
    for v in model.of_kind("const"):
        filled[v.name] = consts.fill(v.value, shape(v), sizes, filled, span=v.span, rep=_reporter(model))
        out[v.name] = filled[v.name][None]
    for name, a in given.items():      # (a scalar may come as [x]: the data reader keeps at least one axis)
        out[name] = np.asarray(a).reshape((1, *shape(model.variables[name])))
    return out


# ----------------------------------------------------------------- a prior simulation
def _simulable(model: CheckedModel) -> None:
    """Simulation holds a StickBreaking latent as its weights, q as its sticks: not joined up yet."""
    f = next((f for f in model.factors if f.dist == "StickBreaking"), None)
    if f is not None:
        raise _reporter(model).fail("sampling and evidence do not support StickBreaking weights yet", f.span,
                                    "fit with `ppvi run`; for simulations give the weights a Dirichlet prior")


def from_data(model: CheckedModel, data: object, dims: Mapping[str, int], where: str) -> Setting:
    """Sizes from ``dims`` (checked), the model's defaults, the covariates' and params' shapes and, for what
    is still unknown, the shapes of drawn data given; covariates and params from ``data`` (a path or Python
    objects, as ``fit`` takes them; None: nothing)."""
    from ppvi.io.data import Source, bind, source_of

    _simulable(model)

    source = Source("<no data>", {}, ()) if data is None else source_of(data, model)
    for note in source.notes:             # (how the data were read: a dropped index column, …)
        warnings.warn(PPVIWarning(note), stacklevel=3)
    rep = _reporter(model)
    observed = {f.target for f in model.factors if f.observed}
    missing = [v for v in model.of_kind("data") if v.name not in observed and v.name not in source.arrays]
    if missing:
        v = missing[0]
        raise rep.fail(f"covariate `{v.name}` has no value: no `~` statement draws it, so it comes from the data",
                       v.span, f"pass data holding `{v.name}` (--data PATH, or data= in Python)")
    given = {v.name for v in model.variables.values()
             if v.kind in ("data", "param") and v.name not in observed and v.name in source.arrays}
    known = {d.name for d in model.dims.values() if d.default is not None} | set(dims)
    for name in given:
        v = model.variables[name]
        known |= {e for e in (*v.shape, v.support_dim) if isinstance(e, str)}
    sizes = dict(dims)
    for name in observed & set(source.arrays):          # (drawn data: only their shapes are read)
        shape = np.shape(source.arrays[name])
        for e, n in zip(model.variables[name].shape, shape):
            if isinstance(e, str) and e not in known:
                sizes[e], known = int(n), known | {e}
    unsized = [d for d in model.dims.values() if d.name not in known]
    if unsized:
        d = unsized[0]
        raise rep.fail(f"no size for dim `{d.name}`", d.span,
                       f"pass --dim {d.name}=… (or {d.name}=… in Python), or data whose shapes give it")
    kept = {k: v for k, v in model.variables.items() if k not in observed}
    bound = bind(replace(model, variables=kept), Source(source.label, {k: source.arrays[k] for k in given},
                                                        source.offered, source.notes), sizes)
    unset = [v for v in model.of_kind("param") if v.name not in bound.arrays]
    if unset:
        v = unset[0]
        raise rep.fail(f"param `{v.name}` has no value to simulate with", v.span,
                       f"give it in the data (a member `{v.name}`), or simulate from a fit: "
                       "--given r.json (result.sample_predictive)")
    return Setting(model, bound.sizes, _fixed(model, bound.sizes, bound.arrays))


# ----------------------------------------------------------------- a fit's result
def model_of(result: Result, where: str) -> CheckedModel:
    """The model a result was fitted with, from the text its provenance keeps."""
    from ppvi.language import loads

    p = result.provenance
    if p is None or not p.model_text:
        raise PPVIError(Diagnostic("this result has no model text (an old result file)", where,
                                   hint="fit the model again with this version of ppvi"))
    return loads(p.model_text, p.model_path or "<model>")


def from_result(result: Result, data: object, where: str, *, observed: bool) -> Setting:
    """The fit's sizes and params, its constants, and its data (``data`` if given, else the data the result
    names: :func:`ppvi.io.results.observed`): every data variable with ``observed``, else the covariates."""
    from ppvi.io.results import observed as data_of

    model = model_of(result, where)
    _simulable(model)
    sizes = {k: int(v) for k, v in result.provenance.dims.items() if k in model.dims}
    if set(sizes) != set(model.dims):
        raise PPVIError(Diagnostic("this result does not record the size of every dim", where,
                                   hint="fit the model again with this version of ppvi"))
    drawn = {f.target for f in model.factors if f.observed}
    needed = [v.name for v in model.of_kind("data") if observed or v.name not in drawn]
    arrays: Mapping[str, np.ndarray] = {}
    if needed:
        arrays, why = data_of(result, data)
        if arrays is None:
            raise PPVIError(Diagnostic(f"the data of the fit are needed ({', '.join(f'`{n}`' for n in needed)}) "
                                       f"but not at hand: {why}", where,
                                       hint="pass them: --data PATH, or data= in Python"))
    given = {n: arrays[n] for n in needed}
    holes = [n for n in needed if n in model.missing and np.isnan(np.asarray(given[n], dtype=float)).any()]
    if holes:
        raise _reporter(model).fail(
            f"`{holes[0]}` has missing entries: the evidence of data with holes (log p of the observed entries "
            "alone) is not computed yet", model.missing[holes[0]][2],
            "the fit's ELBO bounds it (`elbo` in the result); for `evidence`, pass complete data (--data PATH)")
    given.update({k: np.asarray(v) for k, v in result.params.items()})
    return Setting(model, sizes, _fixed(model, sizes, given))
