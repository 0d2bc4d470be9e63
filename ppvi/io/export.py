"""A result as ArviZ InferenceData (``Result.to_arviz``, ``ppvi export``).

Groups:

- ``posterior``: ``draws`` draws from q of every latent, dims ``(chain, draw,
  *the model's dims)``; a chain per restart when the fit kept every restart's
  q (``fit(restarts=R)`` in this process, with q of at most
  ``ppvi.infer.cavi.SNAPSHOT_BYTES``: the copies would otherwise double a
  large fit's memory), else one chain, the best start's (a result file keeps
  only the best start: chains are not saved);
- ``variational``: q's standard parameters, ``NAME.PARAM`` (``mu.mean``,
  ``mu.cov``), and the params;
- ``observed_data``: the data (:func:`ppvi.io.results.observed`), when known;
- ``sample_stats``: ``log_q``, log q of each draw (under its chain's q);
  with chains, ``elbo``, each restart's final ELBO.

Every group's attrs name the library and its version, the algorithm, the
objective and its value.  A dim that appears twice in one variable (a D × D
matrix) is named ``D`` and then ``D_1``.  ArviZ is an optional dependency
(``pip install "ppvi[arviz]"``); without it this is a :class:`PPVIError`.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import warnings
from typing import Iterable, Mapping

import numpy as np

from ppvi.errors import Diagnostic, PPVIError, PPVIWarning
from ppvi.families.registry import unit_of
from ppvi.io.draws import chosen, log_q, sample, whole
from ppvi.result import Result

ALGORITHM = "mean-field variational inference, coordinate ascent (CAVI)"


def optional(module: str, package: str, extra: str, where: str):
    """An optional dependency's module, or a PPVIError saying how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise PPVIError(Diagnostic(f"{package} is not installed", where,
                                   hint=f'pip install "ppvi[{extra}]" (or pip install {package.lower()})')) from None


def arviz():
    return optional("arviz", "ArviZ", "arviz", "to_arviz")


def unique_dims(axes: Iterable[str], taken: Iterable[str] = ()) -> tuple[str, ...]:
    """Axis names with a repeated one renamed (``D, D`` -> ``D, D_1``), never to a name in ``taken``."""
    taken = set(taken)
    out: list[str] = []
    for a in axes:
        name, j = a, 0
        while name in out:
            j += 1
            name = f"{a}_{j}"
            while name in taken:
                name += "_"
        out.append(name)
    return tuple(out)


def _attrs(r: Result) -> dict:
    """Attributes netCDF can hold (strings and numbers)."""
    from ppvi import __version__

    attrs = {"inference_library": "ppvi", "inference_library_version": __version__, "algorithm": ALGORITHM,
             "model": r.model, "objective": r.objective, "elbo": float(r.elbo), "iterations": int(r.iterations),
             "converged": int(r.converged)}
    p = r.provenance
    if p is not None:
        attrs.update(schedule=p.schedule + (f", damping {p.damping:g}" if p.damping is not None else ""),
                     seed=int(p.seed), model_sha256=p.model_sha256, data_sha256=p.data_sha256, created_at=p.created)
    return attrs


def datasets(r: Result, draws: int = 1000, seed: int | None = 0, var_names=None,
             data: object = None) -> dict[str, "object"]:
    """The groups as xarray Datasets."""
    import xarray as xr

    draws = whole("to_arviz", "draws", draws, 1)
    names = chosen(r, var_names, "to_arviz")
    model_dims = {a for q in r.q.values() for a in q.axes} | {a for axes in r.axes.values() for a in axes}
    attrs = _attrs(r)
    x, lq = _chains(r, draws, seed, names)
    coords = {"chain": np.arange(len(lq)), "draw": np.arange(draws)}
    posterior = xr.Dataset(
        {n: (("chain", "draw", *unique_dims(r.q[n].axes, model_dims)), x[n]) for n in names},
        coords=coords, attrs=attrs)
    stats = xr.Dataset({"log_q": (("chain", "draw"), lq)}, coords=coords, attrs=attrs)
    if len(r.chain_elbos) == len(lq) > 1:
        stats["elbo"] = (("chain",), np.asarray(r.chain_elbos))
    variational = {}
    for n, q in r.q.items():
        for p, value in q.params.items():
            value = np.asarray(value)
            axes = _parameter_axes(q.family, p, q.axes, q.categories)
            variational[f"{n}.{p}"] = (unique_dims(axes, model_dims), value)
        if q.lag_one is not None:       # a joint chain's pairs or lag-one covariances (docs/cli.md)
            unit = unit_of(q.family)
            axes = unit.lag_one_axes(_parameter_axes(q.family, unit.lag_one_of, q.axes, q.categories))
            variational[f"{n}.lag_one"] = (unique_dims(axes, model_dims), np.asarray(q.lag_one))
    for n, value in r.params.items():
        variational[n] = (unique_dims(r.axes.get(n, ()), model_dims), np.asarray(value))
    groups = {"posterior": posterior, "sample_stats": stats,
              "variational": xr.Dataset(variational, attrs=attrs)}
    arrays, where = _observed(r, data)
    if arrays is not None:
        groups["observed_data"] = xr.Dataset(
            {n: (unique_dims(r.axes.get(n, ()), model_dims), np.asarray(a)) for n, a in arrays.items()}, attrs=attrs)
    else:
        warnings.warn(PPVIWarning(Diagnostic(f"observed_data is left out: {where}", "to_arviz", severity="note",
                                             hint="pass the data: to_arviz(data=...), or --data PATH")),
                      stacklevel=3)
    return {k: _labelled(ds, r) for k, ds in groups.items()}


def _labelled(ds, r: Result):
    """A dim whose index data held labels gets them as its coordinate (ArviZ selects by them: ``sel(J="alice")``)."""
    coords = {d: np.asarray(names, dtype=str) for d, names in r.labels.items()
              if d in ds.dims and ds.sizes[d] == len(names)}
    return ds.assign_coords(coords) if coords else ds


def _chains(r: Result, draws: int, seed: int | None, names: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Draws and their log q, with a leading chain axis: one chain per restart when the fit kept every
    restart's q (``r.chains``: a fit in this process whose q is small), else the one q of the result."""
    if len(r.chains) <= 1:
        x = sample(r, draws, seed=seed, var_names=names)
        return {n: a[None] for n, a in x.items()}, log_q(r, x)[None]
    rng = np.random.default_rng(seed)
    per_chain = []
    for q in r.chains:
        chain = dataclasses.replace(r, q=q, chains=())
        x = sample(chain, draws, seed=int(rng.integers(2 ** 63)), var_names=names)
        per_chain.append((x, log_q(chain, x)))
    return {n: np.stack([x[n] for x, _ in per_chain]) for n in names}, np.stack([lq for _, lq in per_chain])


def _observed(r: Result, data: object) -> tuple[Mapping[str, np.ndarray] | None, str]:
    from ppvi.io.results import observed

    return observed(r, data)


def _parameter_axes(family: str, param: str, axes: tuple[str, ...], categories: str | None) -> tuple[str, ...]:
    """Axes of a standard parameter: the value's, but a Categorical's p adds its categories, a MvNormal's cov a
    second event axis, and a Wishart's df has only the plates.  These are its shape's axes, so the unit's
    ``param_shapes`` (which only slices and joins the value's tuple) gives them from the value's axes."""
    return unit_of(family).param_shapes(axes, categories or "category")[param]


def to_arviz(r: Result, draws: int = 1000, seed: int | None = 0, var_names=None, data: object = None):
    az = arviz()
    groups = datasets(r, draws=draws, seed=seed, var_names=var_names, data=data)
    if hasattr(az, "InferenceData"):
        with warnings.catch_warnings():
            # ("variational" is not one of ArviZ's named groups: it warns, and keeps it)
            warnings.filterwarnings("ignore", message=".*group is not defined in the InferenceData scheme")
            return az.InferenceData(**groups)
    import xarray as xr                                 # ArviZ ≥ 1: a DataTree

    return xr.DataTree.from_dict(groups)


def check_netcdf(path: str) -> None:
    """Before the draws: ``path`` names a netCDF file (``.nc``) that can be written."""
    from ppvi.files import check_writable

    if os.path.splitext(path)[1].lower() != ".nc":
        raise PPVIError(Diagnostic(f"unknown export format `{os.path.splitext(path)[1] or '(none)'}`", path,
                                   hint="InferenceData is written as netCDF: name the file NAME.nc"))
    check_writable(path, (".nc",))


def write_netcdf(path: str, r: Result, draws: int, seed: int | None, data: object = None) -> None:
    """``to_arviz`` saved as netCDF (HDF5), atomically: written in a temporary folder, then moved in whole by
    :func:`ppvi.files.write_atomic`."""
    from ppvi.files import write_atomic

    check_netcdf(path)
    idata = to_arviz(r, draws=draws, seed=seed, data=data)
    folder = tempfile.mkdtemp(prefix="ppvi-export-")
    try:
        tmp = os.path.join(folder, "export.nc")
        idata.to_netcdf(tmp)
        with open(tmp, "rb") as fh:
            write_atomic(path, fh.read())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
