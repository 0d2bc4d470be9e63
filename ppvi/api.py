"""The Python API: ``ppvi.load(path).fit(data)``.

>>> import ppvi
>>> result = ppvi.load("models/gmm_1d.ppvi").fit()        # data beside the model
>>> result.elbo, result.q["mu"]["mean"]                   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import os
import warnings
from dataclasses import dataclass
from typing import Callable, Mapping

from ppvi.errors import Diagnostic, PPVIError, PPVIWarning, Reporter, did_you_mean
from ppvi.language import CheckedModel
from ppvi.language import load_cached as load_model
from ppvi.result import Result, load_result  # noqa: F401  (re-exported: ppvi.api.Result)


@dataclass
class Model:
    checked: CheckedModel
    _stream: object = dataclasses.field(default=None, init=False, repr=False, compare=False)   # partial_fit's

    @classmethod
    def load(cls, path: str) -> "Model":
        return cls(load_model(path))

    def fit(self, data: object = None, *, dims: Mapping[str, int] | None = None, seed: int = 0,
            max_iter: int = 1000, tol: float = 1e-8, restarts: int = 1,
            on_iteration: Callable[[int, float, float], None] | None = None,
            damping: float | None = None, progress: object = None, init: object = None,
            algorithm: object = None, chunk_size: int | None = None, local_dir: str | None = None,
            engine: str | None = None, client: object = None,
            **dim_sizes: int) -> Result:
        """Fit by coordinate ascent.

        ``data``: None (the file beside the model), a path (str or os.PathLike; .npz, .json or .csv), a dict
        of arrays (or pandas Series and DataFrames), a pandas DataFrame (its columns by name, or the whole
        frame for a model with one 2-D data variable), or an ndarray (a model with one data variable).
        Dims by keyword, ``fit(x, K=3)``, or ``dims={"K": 3}``.  ``damping`` α in (0, 1] switches to the
        parallel schedule: within each latent every element is updated from the previous moments and
        moves a step α in natural parameters (19.4.1).  ``tol`` ≥ 0 is relative to the ELBO (0: run ``max_iter``
        sweeps).  ``init``: start from an earlier result (a Result, a result file's path, or its dict layout).
        ``algorithm``: None or ``"cavi"`` (batch coordinate ascent), ``"memoized"`` or ``Memoized(chunks=C)``
        (memoized VI: the data in C chunks, each chunk's statistics kept; ``tol`` and ``max_iter`` count
        sweeps over the chunks), or ``SVI(batch=B, kappa=κ, tau=τ, passes=P)`` (stochastic VI: ``max_iter``
        and ``tol`` do not apply; the trace holds each step's minibatch bound per unit); see docs/scale.md.
        ``engine="dask"`` with ``client=`` a ``distributed.Client``, a scheduler's address or ``"local:N"`` (a
        LocalCluster of N worker processes, closed after the fit): the data's units in partitions on the
        workers, the local steps there, the globals on this process; the same result as in-process up to the
        order of the sums (docs/scale.md, "Dask").

        ``chunk_size``: read the data chunk by chunk, this many units (points of the data plate) at a time, never
        whole: a directory of .npy files, an uncompressed .npz, a .parquet file, a .zarr store and Dask arrays or
        DataFrames are always read so (with a chunk size from a 64 MiB budget when none is given); the final
        local q are then written as .npy files to ``local_dir`` (None: a temporary file, mapped and removed)
        and mapped read-only into the result (docs/scale.md, "Data beyond memory").

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
        from ppvi.io.data import bind, check_dims, observed_arrays, source_of
        from ppvi.language.missing import imputing

        from ppvi.io.progress import for_fit
        from ppvi.io.results import from_fit, sweep_steps

        m = self.checked
        _check_options(seed=seed, max_iter=max_iter, tol=tol, restarts=restarts, damping=damping,
                       on_iteration=on_iteration, progress=progress)
        algo = _algorithm(algorithm, damping)
        _check_engine(engine, client, damping)
        sizes = check_dims(m, _dims(m, dims, dim_sizes), "fit", "{name}={value!r}")
        if chunk_size is not None and not (_whole(chunk_size) and chunk_size >= 1):
            raise _argument(f"chunk_size={chunk_size!r}: chunk_size is None or a whole number ≥ 1 of units")
        if local_dir is not None and not (isinstance(local_dir, (str, os.PathLike)) and os.fspath(local_dir)):
            raise _argument(f"local_dir={local_dir!r}: local_dir is None or a directory's path")
        from ppvi.io.data import chunked_source

        chunked = chunked_source(data, m, whole_npz=chunk_size is None)
        if m.pairs and (chunked is not None or engine is not None or not (algo is None or _memoized(algo))):
            _refuse_pair(m, "SVI" if algo is not None and not _memoized(algo) else
                         "the Dask engine" if engine is not None else "a fit of data read in chunks")
        if chunked is not None:
            from ppvi.infer.streamed import Chunking

            # (a Dask worker opens the source again to read its own partitions: a path, absolute, or the collection)
            where = os.path.abspath(data) if isinstance(data, (str, os.PathLike)) else data
            try:
                return _fit_streamed(m, chunked, sizes, algo, Chunking(chunk_size, local_dir=None if local_dir is None
                                                                        else os.fspath(local_dir)),
                                     seed=int(seed), max_iter=int(max_iter), tol=float(tol), restarts=int(restarts),
                                     damping=damping, on_iteration=on_iteration, progress=progress, init=init,
                                     engine=engine, client=client,
                                     reopen=functools.partial(chunked_source, where, m, False))
            finally:
                chunked.close()
        if local_dir is not None:
            raise _argument("local_dir is where a fit of data read in chunks writes its local q",
                            "pass chunk_size=… too, or leave local_dir=None")
        source = source_of(data, m)
        notes = list(source.notes)
        for note in notes:
            warnings.warn(PPVIWarning(note), stacklevel=2)
        start = None
        if init is not None:
            from ppvi.infer.warm import Start

            start = Start.of(init)
        bound = bind(m, source, sizes, None if start is None else start.labels)   # (a start's labels code the data)
        seed, max_iter, tol, restarts = int(seed), int(max_iter), float(tol), int(restarts)
        damping = None if damping is None else float(damping)
        stochastic = algo is not None and algo.settings()["name"] == "svi"     # (no convergence test)
        shown = for_fit(progress, stochastic)
        if shown is not None:
            shown.start(m.name, max_iter, restarts)
        runner = None if algo is None else algo.runner()
        owned = settings = None
        try:
            if engine == "dask":
                from ppvi.infer.dask_engine import Dask, connect

                owned = connect(client, m.path) if isinstance(client, str) else None
                dask = Dask(owned or client)
                runner, settings = dask.runner(algo), dask.settings()
            # data with missing entries: those entries are latents (ppvi.language.missing); none: the model as declared
            fitted = imputing(m, bound.missing)
            if engine == "dask" and fitted is not m:
                _refuse_missing_on_dask(m)
            module, warm = load_module(fitted, fixed=fixed_sizes(m, bound.sizes))
            if shown is not None and not warm:
                shown.compiling()       # (Numba compiles the kernels at their first call, in the first sweep)
            program = Program.build(fitted, module, bound)
            if shown is not None and algo is not None and hasattr(algo, "steps"):
                shown.start(m.name, algo.steps(program), restarts)     # (SVI's bar counts its steps)
            # (encoders trained along with it, from the local q this process holds: not the Dask engine's)
            during = _during(program, m, seed) if algo is None and engine is None else None
            done = fit(program, seed=seed, max_iter=max_iter, tol=tol, restarts=restarts, damping=damping,
                       on_iteration=_each(on_iteration, shown, during), start=start, runner=runner)
        finally:
            if shown is not None:
                shown.close()
            if owned is not None:
                from ppvi.infer.dask_engine import close

                close(owned)
        if not done.converged and not done.interrupted and tol > 0 and done.iterations >= max_iter and not stochastic:
            notes.append(_not_converged(m, done.trace, max_iter, tol))
            warnings.warn(PPVIWarning(notes[-1]), stacklevel=2)
        for d in done.warnings:         # (a symmetric stationary point: ppvi.infer.start.symmetric_points)
            notes.append(d)
            warnings.warn(PPVIWarning(d), stacklevel=2)
        from_file = data is None or isinstance(data, (str, os.PathLike))
        provenance = _provenance(m, source.label if from_file else None, bound, seed=seed, tol=tol,
                                 max_iter=max_iter, damping=damping, restarts=restarts,
                                 sweep=sweep_steps(done, damped=damping is not None),
                                 algorithm=None if algo is None else algo.settings(), engine=settings)
        result = from_fit(done, provenance, tuple(n.format() for n in notes), observed_arrays(m, bound), bound.labels)
        if m.amortised:
            # (training sweeps the state, then puts the fit's q back in the arrays the result's q are views of)
            result = dataclasses.replace(result, encoders=_train_encoders(
                program, m, seed, result, during.encoders if during is not None else {}))
        return result

    def partial_fit(self, batch: object, *, total_size: int, kappa: float = 0.7, tau: float = 1.0, seed: int = 0,
                    local_tol: float | None = None, dims: Mapping[str, int] | None = None,
                    **dim_sizes: int) -> Result:
        """One step of stochastic VI on ``batch`` (data as ``fit`` takes them: a group of units, e.g. whole
        documents) from a stream of ``total_size`` units in all (documents for LDA, points for a mixture):
        the batch's local q under the current global q, then a step ρ_t = (τ + t)^(−κ) of every global
        toward the update its statistics × total_size/|batch| give (docs/scale.md).  The first call starts
        the global q by ``fit``'s rule applied to this batch alone (then, unlike ``fit`` from an uninformed
        start, a local step on the batch precedes the first global step: a stream has no start over all its
        units, so ``partial_fit`` over fixed minibatches is not ``fit(algorithm=SVI(shuffle=False))`` bit for
        bit) and fixes the sizes of the globals' dims (give
        them by keyword, e.g. ``V=5000``, when a batch need not show them all), ``kappa``, ``tau`` and
        ``local_tol``; later calls continue from the q the last one left.

        Returns a Result with the current global q and the batch's local q under it; its ``elbo`` is the
        batch's bound per unit before this step (a held-out figure: the globals had not seen the batch),
        ``elbo_trace`` every batch's so far.
        """
        from ppvi.codegen.cache import fixed_sizes, load as load_module
        from ppvi.infer.cavi import _one_blas_thread
        from ppvi.infer.given import Roles
        from ppvi.infer.program import Program
        from ppvi.infer.svi import SVI, Stream
        from ppvi.io.data import bind, check_dims, source_of
        from ppvi.io.results import from_fit, sweep_steps
        import numpy as np

        m = self.checked
        _check_options(seed=seed, max_iter=1, tol=0.0, restarts=1, damping=None, on_iteration=None)
        settings = _algorithm(SVI(batch=1, kappa=kappa, tau=tau, passes=1, local_tol=local_tol), None)
        stream = self._stream
        if stream is not None and (stream.settings.kappa, stream.settings.tau, stream.settings.local_tol) != (
                kappa, tau, local_tol):
            raise _argument(f"partial_fit(kappa={kappa!r}, tau={tau!r}, local_tol={local_tol!r}) differs from the "
                            f"stream's first call ({stream.settings.kappa!r}, {stream.settings.tau!r}, "
                            f"{stream.settings.local_tol!r})", "a stream keeps its step sizes; ppvi.load the model "
                                                                "again to start another")
        sizes = check_dims(m, _dims(m, dims, dim_sizes), "partial_fit", "{name}={value!r}")
        if stream is not None:
            for d, n in stream.sizes.items():
                if sizes.get(d, n) != n:
                    raise _argument(f"dim {d} = {sizes[d]} was asked for, but the stream has {d} = {n}",
                                    "every batch of a stream has the sizes of the first for the globals' dims")
            sizes = {**sizes, **stream.sizes}
        source = source_of(batch, m)
        bound = bind(m, source, sizes, None if stream is None else stream.labels)   # (the first batch's, held dims)
        module, _ = load_module(m, fixed=fixed_sizes(m, bound.sizes))
        program = Program.build(m, module, bound)
        roles = Roles.of(m, program.plan)
        units = bound.sizes.get(roles.unit) if roles.unit else None
        if units is None:
            raise _argument(f"model `{m.name}` has no data plate: there is no stream of units to fit")
        if not (_whole(total_size) and total_size >= units):
            raise _argument(f"total_size={total_size!r}: total_size is the number of units ({roles.unit}) in the "
                            f"whole stream, a whole number ≥ this batch's {units}")
        if stream is None:
            stream = Stream(dataclasses.replace(settings, batch=units),
                            {d: n for d, n in bound.sizes.items() if d not in roles.free}, {},
                            labels={d: names for d, names in bound.labels.items() if d not in roles.free})
        with _one_blas_thread():
            done = stream.step(program, int(total_size), np.random.default_rng([int(seed), stream.t]))
        self._stream = stream
        provenance = _provenance(m, None, bound, seed=int(seed), tol=0.0, max_iter=1, damping=None, restarts=1,
                                 sweep=sweep_steps(done),
                                 algorithm={"name": "svi-stream", "kappa": kappa, "tau": tau, "local_tol": local_tol,
                                            "total_size": int(total_size), "step": stream.t,
                                            "rate": "rho_t = (tau + t)^(-kappa), t = 1, 2, ..."})
        observed = {v.name: bound.arrays[v.name] for v in m.of_kind("data") if v.name in bound.arrays}
        return from_fit(done, provenance, (), observed, {**stream.labels, **bound.labels})

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


def _fit_streamed(m: CheckedModel, chunked, sizes: Mapping[str, int], algo, chunking, *, seed: int, max_iter: int,
                  tol: float, restarts: int, damping: object, on_iteration, progress, init, engine: str | None = None,
                  client: object = None, reopen=None) -> Result:
    """``fit`` of data read chunk by chunk (:mod:`ppvi.infer.streamed`); with ``engine="dask"`` each partition
    is read by its worker (``reopen()`` opens the source there: ppvi.infer.dask_engine)."""
    from ppvi.codegen.cache import fixed_sizes, load as load_module
    from ppvi.infer import streamed as st
    from ppvi.infer.cavi import fit
    from ppvi.infer.chunks import Layout
    from ppvi.io.data import Bound, bind_streamed
    from ppvi.io.progress import for_fit
    from ppvi.io.results import from_fit, sweep_steps

    if damping is not None:
        raise _argument(f"damping={damping!r}: the parallel schedule is not streamed", "leave damping=None")
    if m.amortised:
        raise PPVIError(Diagnostic(f"model `{m.name}` amortises a latent: its encoder is trained on every unit's "
                                   "data in memory, not on data read in chunks", m.path,
                                   hint="load the data whole (.npz, .json or .csv without chunk_size)"))
    data = bind_streamed(m, chunked, sizes)
    module, warm = load_module(m, fixed=fixed_sizes(m, data.sizes))

    probe = st.pilot(m, module, data, 1)
    total = data.sizes[Layout.of(probe).unit]         # (units: with a group block, the groups)
    chunk = min(total, st.chunk_units(probe, Layout.of(probe), data, chunking))
    whole = probe if chunk == 1 else st.pilot(m, module, data, chunk)
    streamer = st.Streamer(whole, data, chunk, chunking.local_dir)
    start = None
    if init is not None:
        from ppvi.infer.warm import Start

        start = Start.of(init)
    name = None if algo is None else algo.settings()["name"]

    streamer.restarts = restarts > 1
    owned = on_dask = engine_settings = None
    if engine == "dask":
        from ppvi.infer.dask_engine import Dask, connect

        owned = connect(client, m.path) if isinstance(client, str) else None
        dask = Dask(owned or client, reading=(streamer, reopen))
        on_dask, engine_settings = dask.runner(algo), dask.settings()

    def runner(program, rng, max_iter, tol, on_iteration=None, damping=None, start=None):
        if on_dask is not None:
            done = on_dask(program, rng, max_iter, tol, on_iteration, None, start)
        elif name == "memoized":
            done = st.run_memoized(streamer, rng, algo.chunks, max_iter, tol, on_iteration, start)
        elif name == "svi":
            done = st.run_svi(streamer, rng, algo, on_iteration, start)
        else:
            done = st.run_batch(streamer, rng, max_iter, tol, on_iteration, start)
        if streamer.restarts:
            streamer.hand_over(done)        # (kept local q: the best start's stay on disk)
        return done

    shown = for_fit(progress, name == "svi")
    if shown is not None:
        steps = algo.passes * -(-total // algo.batch) if name == "svi" else max_iter
        shown.start(m.name, steps, restarts)
        if not warm:
            shown.compiling()
    from ppvi.infer.cavi import _one_blas_thread

    try:
        with st.threads_for(streamer.rows_a_chunk):
            done = fit(whole, seed=seed, max_iter=max_iter, tol=tol, restarts=restarts,
                       on_iteration=_each(on_iteration, shown), start=start, runner=runner)
            done.restart_states = []           # (a restart's local q were never held)
            with _one_blas_thread():
                st.finish(streamer, chunking)
    except BaseException:
        streamer.discard()          # (the kept local q's scratch stores: docs/scale.md, "The local q")
        raise
    finally:
        if shown is not None:
            shown.close()
        if owned is not None:
            from ppvi.infer.dask_engine import close

            close(owned)
    notes = []
    if not done.converged and not done.interrupted and tol > 0 and done.iterations >= max_iter and name != "svi":
        notes.append(_not_converged(m, done.trace, max_iter, tol))
        warnings.warn(PPVIWarning(notes[-1]), stacklevel=3)
    settings = {"name": "cavi"} if algo is None else dict(algo.settings())
    settings.update(chunk_size=chunk)
    if chunking.local_dir is not None:
        settings.update(local_dir=os.path.abspath(chunking.local_dir), local_q=",".join(streamer.layout.local_latents))
    provenance = _provenance(m, None, Bound(data.arrays, data.sizes), seed=seed, tol=tol, max_iter=max_iter,
                             damping=None, restarts=restarts, sweep=sweep_steps(done), algorithm=settings,
                             engine=engine_settings)
    provenance = dataclasses.replace(provenance, schedule="streamed" if algo is None else f"{name}, streamed",
                                     data_path=None if chunked.label.startswith("<") else os.path.abspath(chunked.label),
                                     data_sha256=_sha256_of_source(chunked.label) or provenance.data_sha256)
    return from_fit(done, provenance, tuple(n.format() for n in notes), dict(data.arrays))


def _sha256_of_source(label: str) -> str | None:
    """SHA-256 of a data file, or of a directory's files (their relative paths and contents, in sorted order)."""
    import hashlib

    if os.path.isfile(label):
        from ppvi.io.results import sha256_of_file

        return sha256_of_file(label)
    if not os.path.isdir(label):
        return None
    h = hashlib.sha256()
    for root, dirs, files in os.walk(label):
        dirs.sort()
        for f in sorted(files):
            path = os.path.join(root, f)
            h.update(os.path.relpath(path, label).encode("utf-8") + b"\0")
            with open(path, "rb") as fh:
                h.update(hashlib.file_digest(fh, "sha256").digest())
    return h.hexdigest()


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


_OPTIONS = ("data", "dims", "seed", "max_iter", "tol", "restarts", "on_iteration", "damping", "progress", "init",
            "algorithm", "chunk_size", "local_dir", "engine", "client")


def __getattr__(name: str):
    """``ppvi.api.SVI`` and ``ppvi.api.Memoized``, the settings of ``fit(algorithm=…)`` (imported on first use)."""
    if name == "SVI":
        from ppvi.infer.svi import SVI
        return SVI
    if name == "Memoized":
        from ppvi.infer.memoized import Memoized
        return Memoized
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _algorithm(algorithm: object, damping: object):
    """The settings of ``fit(algorithm=…)``, checked: None for batch CAVI."""
    from ppvi.infer.memoized import Memoized
    from ppvi.infer.svi import SVI

    if algorithm is None or algorithm == "cavi":
        return None
    if algorithm == "memoized":
        algorithm = Memoized()
    if algorithm == "svi":
        raise _argument("algorithm=\"svi\" needs a minibatch size", "algorithm=SVI(batch=100, kappa=0.7, tau=1.0, "
                        "passes=10), with SVI from ppvi.api")
    if isinstance(algorithm, Memoized):
        rules = [("chunks", algorithm.chunks, _whole(algorithm.chunks) and algorithm.chunks >= 1, "a whole number ≥ 1")]
    elif isinstance(algorithm, SVI):
        a = algorithm
        rules = [("batch", a.batch, _whole(a.batch) and a.batch >= 1, "a whole number ≥ 1"),
                 ("kappa", a.kappa, _real(a.kappa) and 0 <= a.kappa <= 1, "a number in [0, 1] (in (0.5, 1] for "
                                                                           "convergence; 0: steps of 1)"),
                 ("tau", a.tau, _real(a.tau) and 0 <= a.tau < math.inf, "a number ≥ 0"),
                 ("passes", a.passes, _whole(a.passes) and a.passes >= 1, "a whole number ≥ 1"),
                 ("shuffle", a.shuffle, isinstance(a.shuffle, bool), "True or False"),
                 ("local_tol", a.local_tol, a.local_tol is None or (_real(a.local_tol) and 0 < a.local_tol < math.inf),
                  "None (one local pass a step) or a number > 0")]
    else:
        raise _argument(f"algorithm={algorithm!r}: algorithm is None, \"cavi\", \"memoized\", Memoized(chunks=…) "
                        "or SVI(batch=…, kappa=…, tau=…, passes=…)", "Memoized and SVI are in ppvi.api")
    for name, value, ok, rule in rules:
        if not ok:
            raise _argument(f"{type(algorithm).__name__}({name}={value!r}): {name} is {rule}")
    if damping is not None:
        raise _argument(f"damping={damping!r} is for batch CAVI's parallel schedule, not for "
                        f"{algorithm.settings()['name']}", "leave damping=None")
    return algorithm


def _check_engine(engine: object, client: object, damping: object) -> None:
    """``engine`` is None, ``"local"`` or ``"dask"``; a Dask engine needs a client (a ``distributed.Client``, a
    scheduler's address or ``"local:N"``) and runs the sequential schedule."""
    hint = 'client=distributed.Client(...), a scheduler\'s address "tcp://HOST:PORT", or "local:4" (4 workers here)'
    if engine is None or engine == "local":
        if client is not None:
            raise _argument(f"client={client!r} without engine=\"dask\"", "add engine=\"dask\" (or drop client=)")
        return
    if engine != "dask":
        raise _argument(f"engine={engine!r}: engine is None (in this process), \"local\" or \"dask\"")
    if client is None:
        raise _argument("engine=\"dask\" needs client=", hint)
    if not isinstance(client, str):
        from ppvi.infer.dask_engine import distributed

        if not isinstance(client, distributed("fit").Client):
            raise _argument(f"client={type(client).__name__}: client is a distributed.Client or an address", hint)
    elif not client:
        raise _argument("client=\"\": client is a distributed.Client or an address", hint)
    if damping is not None:
        raise _argument(f"damping={damping!r} with engine=\"dask\": the Dask engine runs the sequential schedule",
                        "leave damping=None, or fit in this process")


def _each(*callbacks):
    """One on_iteration callback that calls each given one."""
    given = [c for c in callbacks if c is not None]
    if len(given) <= 1:
        return given[0] if given else None

    def call(iteration: int, elbo: float, change: float) -> None:
        for c in given:
            c(iteration, elbo, change)
    return call


def _memoized(algo: object) -> bool:
    from ppvi.infer.memoized import Memoized

    return isinstance(algo, Memoized)


def _refuse_pair(m: CheckedModel, what: str) -> None:
    """A Normal–Gamma pair's step is the in-process engine's (ppvi.infer.program): not SVI's natural-gradient
    steps, the Dask engine's or a chunked fit's."""
    mu, lam = next(iter(m.pairs.items()))
    raise Reporter(m.path, m.text).fail(
        f"`approximate {mu}, {lam} jointly` is fitted by batch CAVI in process only, not by {what} yet",
        m.prior(mu).span, f"fit in process with the default algorithm, or leave `{mu}` and `{lam}` to the mean field")


def _refuse_missing_on_dask(m: CheckedModel) -> None:
    """Missing entries are latents of an in-process fit; the Dask engine's partitions hold no mask yet."""
    name, (_support, _extent, span) = next(iter(m.missing.items()))
    raise Reporter(m.path, m.text).fail(
        f"data `{name}` has missing entries, and the Dask engine does not fit them yet", span,
        "fit in process (without engine=\"dask\" / --dask) to impute them")


def _during(program, model: CheckedModel, seed: int):
    """The callback that refreshes encoders during the fit (``amortise h by mlp(…, every = k)``), or None."""
    if not any(spec.every for spec in model.amortised.values()):
        return None
    from ppvi.amortise.train import During

    return During(program, dict(model.amortised), seed=seed)


def _train_encoders(program, model: CheckedModel, seed: int, result: Result, previous: Mapping) -> dict:
    """An encoder for every latent the model amortises, trained with the fit's globals held (ppvi.amortise),
    further from its last refresh during the fit (``previous``) if it had one."""
    from ppvi.amortise.train import train
    from ppvi.infer.cavi import _one_blas_thread

    with _one_blas_thread():
        return {name: train(program, spec, seed=seed, result=result, previous=previous.get(name))
                for name, spec in model.amortised.items()}


def _not_converged(model: CheckedModel, trace: list[float], max_iter: int, tol: float) -> Diagnostic:
    """The warning of a fit that ran out of iterations: how far the last sweep still moved the ELBO."""
    moved = ""
    if len(trace) > 1:
        change = abs(trace[-1] - trace[-2]) / max(1.0, abs(trace[-1]))
        moved = f": the last sweep still changed the ELBO by {change:.2g}"
    return Diagnostic(f"stopped after max_iter = {max_iter} iterations without converging (tol = {tol:g}){moved}",
                      model.path, hint="raise max_iter (--max-iter), or loosen tol (--tol)", severity="warning")


def _provenance(model: CheckedModel, data_path: str | None, bound, *, seed: int, tol: float, max_iter: int,
                damping: float | None, restarts: int, sweep: tuple[str, ...], algorithm: Mapping | None = None,
                engine: Mapping | None = None):
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
        damping=damping, restarts=restarts,
        schedule=algorithm["name"] if algorithm else "sequential" if damping is None else "parallel",
        sweep=sweep, created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        versions=versions, algorithm=None if algorithm is None else
        {k: v for k, v in algorithm.items() if v is not None},       # (a result file keeps no None)
        engine=None if engine is None else dict(engine))


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
