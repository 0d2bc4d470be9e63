"""The Python API: ``ppvi.load(path).fit(data)``.

>>> import ppvi
>>> result = ppvi.load("models/gmm_1d.ppvi").fit()        # data beside the model
>>> result.elbo, result.q["mu"]["mean"]                   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import warnings
from dataclasses import dataclass
from typing import Callable, Mapping

from ppvi.errors import Diagnostic, PPVIError, PPVIWarning, did_you_mean
from ppvi.language import CheckedModel
from ppvi.language import load_cached as load_model
from ppvi.result import Result, load_result  # noqa: F401  (re-exported: ppvi.api.Result)


@dataclass
class Model:
    checked: CheckedModel

    @classmethod
    def load(cls, path: str) -> "Model":
        return cls(load_model(path))

    def fit(self, data: object = None, *, dims: Mapping[str, int] | None = None, seed: int = 0,
            max_iter: int = 1000, tol: float = 1e-8, restarts: int = 1,
            on_iteration: Callable[[int, float, float], None] | None = None,
            damping: float | None = None, progress: object = None, init: object = None,
            **dim_sizes: int) -> Result:
        """Fit by coordinate ascent.

        ``data``: None (the file beside the model), a path (str or os.PathLike; .npz, .json or .csv), a dict
        of arrays (or pandas Series and DataFrames), a pandas DataFrame (its columns by name, or the whole
        frame for a model with one 2-D data variable), or an ndarray (a model with one data variable).
        Dims by keyword, ``fit(x, K=3)``, or ``dims={"K": 3}``.  ``damping`` α in (0, 1] switches to the
        parallel schedule: within each latent every element is updated from the previous moments and
        moves a step α in natural parameters (19.4.1).  ``tol`` ≥ 0 is relative to the ELBO (0: run ``max_iter``
        sweeps).  ``init``: start from an earlier result (a Result, a result file's path, or its dict layout).

        ``progress``: None (default) shows a bar in a Jupyter notebook and nothing elsewhere; True a bar
        (tqdm) anywhere; False nothing; or a display of one's own (:class:`ppvi.io.progress.Progress`).

        A mistake in any argument or in the data raises :class:`ppvi.PPVIError`; notes on how the data
        were read (a dropped index column), and a fit that stops at ``max_iter`` before it converges (with
        ``tol`` > 0), and a fit that ends at a symmetric stationary point, are :class:`ppvi.errors.PPVIWarning` warnings,
        kept in ``result.warnings`` too.
        """
        from ppvi.codegen.cache import fixed_sizes, load as load_module
        from ppvi.infer.cavi import fit
        from ppvi.infer.program import Program
        from ppvi.io.data import bind, check_dims, source_of

        from ppvi.io.progress import for_fit
        from ppvi.io.results import from_fit, sweep_steps

        m = self.checked
        _check_options(seed=seed, max_iter=max_iter, tol=tol, restarts=restarts, damping=damping,
                       on_iteration=on_iteration, progress=progress)
        sizes = check_dims(m, _dims(m, dims, dim_sizes), "fit", "{name}={value!r}")
        source = source_of(data, m)
        notes = list(source.notes)
        for note in notes:
            warnings.warn(PPVIWarning(note), stacklevel=2)
        bound = bind(m, source, sizes)
        start = None
        if init is not None:
            from ppvi.infer.warm import Start

            start = Start.of(init)
        seed, max_iter, tol, restarts = int(seed), int(max_iter), float(tol), int(restarts)
        damping = None if damping is None else float(damping)
        shown = for_fit(progress)
        if shown is not None:
            shown.start(m.name, max_iter, restarts)
        try:
            module, warm = load_module(m, fixed=fixed_sizes(m, bound.sizes))
            if shown is not None and not warm:
                shown.compiling()       # (Numba compiles the kernels at their first call, in the first sweep)
            program = Program.build(m, module, bound)
            done = fit(program, seed=seed, max_iter=max_iter, tol=tol, restarts=restarts, damping=damping,
                       on_iteration=_each(on_iteration, shown), start=start)
        finally:
            if shown is not None:
                shown.close()
        if not done.converged and not done.interrupted and tol > 0 and done.iterations >= max_iter:
            notes.append(_not_converged(m, done.trace, max_iter, tol))
            warnings.warn(PPVIWarning(notes[-1]), stacklevel=2)
        for d in done.warnings:         # (a symmetric stationary point: ppvi.infer.start.symmetric_points)
            notes.append(d)
            warnings.warn(PPVIWarning(d), stacklevel=2)
        from_file = data is None or isinstance(data, (str, os.PathLike))
        provenance = _provenance(m, source.label if from_file else None, bound, seed=seed, tol=tol,
                                 max_iter=max_iter, damping=damping, restarts=restarts, sweep=sweep_steps(done))
        observed = {v.name: bound.arrays[v.name] for v in m.of_kind("data") if v.name in bound.arrays}
        result = from_fit(done, provenance, tuple(n.format() for n in notes), observed)
        if m.amortised:
            # (training sweeps the state, then puts the fit's q back in the arrays the result's q are views of)
            result = dataclasses.replace(result, encoders=_train_encoders(program, m, seed, result))
        return result

    # ---------------------------------------------------------------- simulation (ppvi.simulate)
    def sample_prior(self, draws: int, data: object = None, seed: int | None = None,
                     **dims: int) -> dict:
        """``draws`` ancestral draws of every latent and observed variable from the prior: a dict of arrays with
        a leading draws axis.  Covariates (data no ``~`` draws), params and sizes come from ``data`` (a path or
        Python objects, as ``fit`` takes them; None: none) and the dims by keyword (``N=100``)."""
        from ppvi.simulate.ancestral import sample_prior

        return sample_prior(self.checked, draws, data=data, seed=seed, dims=dims)

    def predict(self, given: object, data: object = None, *, refine: int | None = None, seed: int = 0,
                max_iter: int = 1000, tol: float = 1e-8, progress: object = None, dims: Mapping[str, int] | None = None,
                **dim_sizes: int) -> Result:
        """:meth:`ppvi.Result.predict` of ``given`` (a Result or a result file's path), which must have been
        fitted to this model (the SHA-256 of its text): ``ppvi run MODEL --given r.json --data new.npz``."""
        from ppvi.infer.given import Given

        return predict(Given.of(given, self.checked), data, refine=refine, seed=seed, max_iter=max_iter, tol=tol,
                       progress=progress, dims=_dims(self.checked, dims, dim_sizes))


def predict(given: object, data: object, *, refine: int | None = None, seed: int = 0, max_iter: int = 1000,
            tol: float = 1e-8, progress: object = None, dims: Mapping[str, int] | None = None) -> Result:
    """``Result.predict`` (ppvi.infer.given): arguments checked as ``fit`` checks its own."""
    from ppvi.infer.given import predict as run

    g, sizes = _prediction(given, refine=refine, seed=seed, max_iter=max_iter, tol=tol, progress=progress, dims=dims)
    result, _ = run(g, data, dims=sizes, seed=int(seed), max_iter=int(max_iter), tol=float(tol),
                    refine=None if refine is None else int(refine), progress=progress)
    if not result.converged and not result.interrupted and refine is None and tol > 0:
        note = _not_converged(g.model, list(result.elbo_trace), max_iter, tol)
        warnings.warn(PPVIWarning(note), stacklevel=3)
        result = dataclasses.replace(result, warnings=(note.format(),))
    return result


def score(given: object, data: object, *, seed: int = 0, max_iter: int = 1000, tol: float = 1e-8,
          dims: Mapping[str, int] | None = None):
    """``Result.score`` (ppvi.infer.given): the held-out local ELBO of every unit of ``data``."""
    from ppvi.infer.given import predict as run

    g, sizes = _prediction(given, refine=None, seed=seed, max_iter=max_iter, tol=tol, progress=False, dims=dims)
    return run(g, data, dims=sizes, seed=int(seed), max_iter=int(max_iter), tol=float(tol), refine=None,
               scored=True, where="score")[1]


def amortisation_gap(given: object, data: object, *, seed: int = 0, max_iter: int = 1000, tol: float = 1e-8,
                     dims: Mapping[str, int] | None = None) -> float:
    """``Result.amortisation_gap``: refined ELBO − encoder ELBO of ``data`` (ppvi.amortise)."""
    from ppvi.infer.given import predict as run

    g, sizes = _prediction(given, refine=None, seed=seed, max_iter=max_iter, tol=tol, progress=False, dims=dims)
    if not g.result.encoders:
        raise _argument(f"model `{g.model.name}` amortises no latent: this result has no encoder to measure",
                        "add `amortise h by mlp(hidden = 64)` for a local latent h to the model and fit it again")
    options = dict(dims=sizes, seed=int(seed), max_iter=int(max_iter), tol=float(tol))
    at_encoder, _ = run(g, data, refine=0, **options)
    refined, _ = run(g, data, refine=None, **options)
    return refined.elbo - at_encoder.elbo


def _prediction(given: object, *, refine: object, seed: object, max_iter: object, tol: object, progress: object,
                dims: object):
    from ppvi.infer.given import Given
    from ppvi.io.data import check_dims

    _check_options(seed=seed, max_iter=max_iter, tol=tol, restarts=1, damping=None, on_iteration=None,
                   progress=progress)
    if refine is not None and not (_whole(refine) and refine >= 0):
        raise _argument(f"refine={refine!r}: refine is None (to convergence) or a whole number ≥ 0 of sweeps")
    g = given if isinstance(given, Given) else Given.of(given)
    return g, check_dims(g.model, _dims(g.model, dims, {}), "predict", "{name}={value!r}")


_OPTIONS = ("data", "dims", "seed", "max_iter", "tol", "restarts", "on_iteration", "damping", "progress", "init")


def _each(*callbacks):
    """One on_iteration callback that calls each given one."""
    given = [c for c in callbacks if c is not None]
    if len(given) <= 1:
        return given[0] if given else None

    def call(iteration: int, elbo: float, change: float) -> None:
        for c in given:
            c(iteration, elbo, change)
    return call


def _train_encoders(program, model: CheckedModel, seed: int, result: Result) -> dict:
    """An encoder for every latent the model amortises, trained with the fit's globals held (ppvi.amortise)."""
    from ppvi.amortise.train import train
    from ppvi.infer.cavi import _one_blas_thread

    with _one_blas_thread():
        return {name: train(program, spec, seed=seed, result=result) for name, spec in model.amortised.items()}


def _not_converged(model: CheckedModel, trace: list[float], max_iter: int, tol: float) -> Diagnostic:
    """The warning of a fit that ran out of iterations: how far the last sweep still moved the ELBO."""
    moved = ""
    if len(trace) > 1:
        change = abs(trace[-1] - trace[-2]) / max(1.0, abs(trace[-1]))
        moved = f": the last sweep still changed the ELBO by {change:.2g}"
    return Diagnostic(f"stopped after max_iter = {max_iter} iterations without converging (tol = {tol:g}){moved}",
                      model.path, hint="raise max_iter (--max-iter), or loosen tol (--tol)", severity="warning")


def _provenance(model: CheckedModel, data_path: str | None, bound, *, seed: int, tol: float, max_iter: int,
                damping: float | None, restarts: int, sweep: tuple[str, ...]):
    """Where the result comes from: versions, the model and data (paths and SHA-256), the fit's options."""
    import datetime
    import hashlib
    import platform
    import sys

    from ppvi import __version__
    from ppvi.io.results import sha256_of_arrays, sha256_of_file
    from ppvi.result import Provenance

    if data_path is not None:
        data_path = os.path.abspath(data_path)
        data_sha = sha256_of_file(data_path)
    else:
        data_sha = sha256_of_arrays(bound.arrays)
    versions = {"python": platform.python_version(),
                **{name: sys.modules[name].__version__ for name in ("numpy", "numba") if name in sys.modules}}
    return Provenance(
        ppvi=__version__, model_path=os.path.abspath(model.path) if os.path.exists(model.path) else model.path,
        model_text=model.text, model_sha256=hashlib.sha256(model.text.encode("utf-8")).hexdigest(),
        data_path=data_path, data_sha256=data_sha, seed=seed, dims=dict(bound.sizes), tol=tol, max_iter=max_iter,
        damping=damping, restarts=restarts, schedule="sequential" if damping is None else "parallel",
        sweep=sweep, created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        versions=versions)


def _dims(model: CheckedModel, dims: object, keywords: Mapping[str, object]) -> dict[str, object]:
    """``dims=`` and dim keywords together; a keyword that is neither an option nor a dim, or a dim given
    both ways, is a mistake."""
    if dims is None:
        dims = {}
    if not isinstance(dims, Mapping):
        raise _argument(f"dims={dims!r}: dims is a dict of dim names to sizes", 'e.g. dims={"K": 3}, or fit(data, K=3)')
    for name in keywords:
        if name not in model.dims:
            known = ", ".join((*_OPTIONS, *model.dims))
            raise _argument(f"fit() has no option or dim `{name}`",
                            did_you_mean(name, (*_OPTIONS, *model.dims)) or f"options and dims: {known}")
    both = sorted(set(dims) & set(keywords))
    if both:
        raise _argument(f"dim `{both[0]}` is given twice, by keyword and in dims=")
    return {**dims, **keywords}


def _argument(message: str, hint: str | None = None) -> PPVIError:
    return PPVIError(Diagnostic(message, "fit", hint=hint))


def _whole(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_options(*, seed: object, max_iter: object, tol: object, restarts: object, damping: object,
                   on_iteration: object, progress: object = None) -> None:
    """The checks of the command line's flags, for the API's arguments (bool is not a number here)."""
    rules = [
        ("seed", seed, _whole(seed) and seed >= 0, "a whole number ≥ 0"),
        ("max_iter", max_iter, _whole(max_iter) and max_iter >= 1, "a whole number ≥ 1"),
        ("tol", tol, _real(tol) and 0 <= tol < math.inf, "a number ≥ 0 (0: run to max_iter)"),
        ("restarts", restarts, _whole(restarts) and restarts >= 1, "a whole number ≥ 1"),
        ("damping", damping, damping is None or (_real(damping) and 0 < damping <= 1), "None or a number in (0, 1]"),
        ("on_iteration", on_iteration, on_iteration is None or callable(on_iteration),
         "None or a function f(iteration, elbo, change)"),
        ("progress", progress, progress is None or isinstance(progress, bool) or all(
            callable(getattr(progress, a, None)) for a in ("start", "compiling", "__call__", "close")),
         "None (a bar in a notebook), True, False, or a ppvi.io.progress.Progress"),
    ]
    for name, value, ok, rule in rules:
        if not ok:
            raise _argument(f"{name}={value!r}: {name} is {rule}")


def load(path: str) -> Model:
    """Parse and check a model file; ``.fit(data)`` fits it."""
    return Model.load(path)
