"""Dask as the engine of a fit: the units of the data in partitions on the workers, the globals on the driver.

A sweep of batch CAVI is a map and a reduce (:mod:`ppvi.infer.chunks`): the local steps of every unit under
the global q, then the statistics summed over the units; the global steps read only the statistics.  Here
the units are split into P contiguous *partitions* (:func:`ppvi.infer.chunks.split`), each a
:class:`Part` held by a Dask worker with its data and its local q.  A *round* sends the global state (q of
the global latents, params, global MAP points: small) to every partition, runs the generated local steps
there (the same kernels, loaded on the worker from the module's source), and brings back each partition's
statistics, its share of the ELBO's factor terms and its local entropies; the driver sums them *in
partition order*, then takes the global steps.  The result equals the in-process fit up to the order of
the sums (within 10⁻¹² relative, not bit for bit: the in-process statistics kernel sums the whole data in
chunks of its own).

Recovery: every round is a pure task from the partition's previous state and the round's globals (a
task of its own, so the scheduler keeps its value as lineage), and a partition's first state is a task
holding its data.  If a worker dies, Dask computes its partitions again on another worker from that
lineage, bit for bit the same (the kernels are deterministic); the fit goes on with the same result.

Memoized VI (the partitions are its chunks, stepped one at a time) and stochastic VI (minibatches drawn on
the driver, sent to the partitions as lists of unit indices) run on the same partitions.

Data read in chunks (:mod:`ppvi.infer.streamed`; :class:`Reading`): the driver makes the streamed start and
never reads the data whole; a partition's first state is a task that opens the source again on its worker
and reads the partition's units there (:func:`_read_start`), and the local q come back one partition at a time
into a store on disk (docs/scale.md, "Data read in chunks on the Dask engine").
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ppvi.codegen.plan import ArrayNames
from ppvi.errors import Diagnostic, PPVIError
from ppvi.files import Held
from ppvi.infer.cavi import ElboDecrease, Fit, _refuse_overflowing_data, _worse, record
from ppvi.infer.chunks import Chunk, Layout, split
from ppvi.infer.program import Program

if TYPE_CHECKING:
    from ppvi.infer.warm import Start

INSTALL = 'pip install "ppvi[dask]"'


# ------------------------------------------------------------------ on the workers
@dataclass(frozen=True)
class Kernels:
    """The generated module, as a worker loads it: its path (a key: imported once per process) and source."""

    model: Any                     # ppvi.language.check.CheckedModel (pickles)
    path: str
    source: str

    def module(self):
        from ppvi.codegen.cache import import_source

        return import_source(self.path, self.source)


@dataclass(frozen=True)
class Part:
    """A partition on a worker: its program's sizes and state (its units' data and local q, its share of
    the statistics), and what its last round gave back."""

    kernels: Kernels
    layout: Layout
    sizes: dict
    state: dict
    terms: np.ndarray | None = None        # E[log f] of every factor over the partition's units
    entropies: dict = field(default_factory=dict)    # Σ of each local latent's entropies
    bound: float = 0.0                     # an SVI minibatch's share of the bound (terms and entropies)


def _aligned(state: dict) -> dict:
    """``state`` with each array not aligned to its items copied.  An array a worker receives lies where its
    message put it (distributed joins a message's small frames into one buffer and maps each array at its
    offset), and NumPy sums a float64 array not 8-byte aligned in blocks of 8192 where it sums an aligned one
    pairwise: a partition's entropies would depend, in the last bit, on what was sent with its arrays."""
    return {k: v.copy() if isinstance(v, np.ndarray) and not v.flags.aligned else v for k, v in state.items()}


def _program(part: Part, shared: dict | None = None, stale: bool = False) -> Program:
    """The partition's program with fresh copies of the arrays a step writes (a task never changes its
    input: Dask may run it again from the same input) and the round's globals put in."""
    state = {k: v.copy() if isinstance(v, np.ndarray) and (ArrayNames.is_local_state(k) or k in _points(part)) else v
             for k, v in part.state.items()}
    state.update(shared or {})
    p = Program(part.kernels.model, part.kernels.module(), dict(part.sizes), _aligned(state))
    p.relink()
    p.stale = stale
    return p


def _points(part: Part) -> set[str]:
    return {ArrayNames.variable(v) for v in part.kernels.module().PLAN.point}


def _measured(part: Part, p: Program) -> Part:
    """The partition after a round: its state, its factor terms and local entropies under that state."""
    p.refresh_statistics()
    return replace(part, state=p.state, terms=np.asarray(p.expected_terms(), dtype=float),
                   entropies={v: p.entropy(v) for v in part.layout.local_latents})


def advance(part: Part, shared: dict, steps: tuple[str, ...], stale: bool) -> Part:
    """A round on a partition: the globals ``shared``, then the local ``steps``; its statistics are summed
    again if ``stale`` (a param that feeds them moved) or a step left them so, never otherwise (the sums of a
    fused local step and of the statistics kernel may differ in the last bit)."""
    from ppvi.infer.cavi import _one_blas_thread

    with _one_blas_thread():
        p = _program(part, shared, stale)
        for var in steps:
            p.update(var)
        return _measured(part, p)


def minibatch(part: Part, shared: dict, units: np.ndarray, local: bool, local_tol: float | None) -> Part:
    """An SVI round on a partition: the local step of ``units`` (its own numbering) under the globals
    ``shared`` (``local=False``: their q are already the start's E-step's), their statistics and bound."""
    from ppvi.infer.cavi import _one_blas_thread

    with _one_blas_thread():
        p = _program(part, shared)
        chunk = Chunk(p, part.layout, units)
        if local:
            chunk.local_step(local_tol)
        else:
            chunk.program.refresh_statistics()
            chunk.scatter()
        bound = chunk.bound()
        # (the round's statistics are the minibatch's, the chunk's: the driver scales them by N/|B|)
        state = dict(p.state)
        state.update({k: chunk.program.state[k] for k in part.layout.global_stats})
        return replace(part, state=state, terms=None, entropies={}, bound=bound)


def outcome(part: Part) -> tuple[dict, np.ndarray | None, dict, float]:
    """What the driver gathers after a round (small): the global statistics, factor terms, entropies, bound."""
    return {k: part.state[k] for k in part.layout.global_stats}, part.terms, part.entropies, part.bound


def local_state(part: Part) -> dict:
    """The arrays of the partition that the result holds (its local q and points), gathered at the end."""
    return {k: v for k, v in part.state.items()
            if isinstance(v, np.ndarray) and (ArrayNames.is_local_state(k) or k in _points(part))}


def _start(kernels: Kernels, layout: Layout, sizes: dict, state: dict) -> Part:
    """A partition's first state (its statistics summed)."""
    p = Program(kernels.model, kernels.module(), dict(sizes), _aligned(state))
    p.relink()
    p.stale = True
    return _measured(Part(kernels, layout, sizes, p.state), p)


def _read_start(kernels: Kernels, shell, reopen: Callable, a: int, b: int, draws, informed: bool) -> Part:
    """A partition's first state, read on its worker: units a..b−1 of data read in chunks (``reopen()``: the
    source, opened here), their local q at the start — drawn from where an in-memory start draws them
    (``draws``: :class:`ppvi.infer.streamed.LocalDraws`), then an E-step if the start was informed — and their
    statistics.  The driver never reads them."""
    import copy

    from ppvi.infer.cavi import _one_blas_thread

    # (a private shell: a threaded worker may run two partitions' tasks on the one object it was given)
    shell = copy.copy(shell)
    shell.whole = copy.copy(shell.whole)
    source = reopen()
    try:
        shell.attach(kernels.module(), source)
        with _one_blas_thread():
            p = shell.program(a, b)
            if draws is not None:
                draws.start(p, a)
            p.stale = True
            if informed:
                for var in shell.layout.local_steps:
                    p.update(var)
            return _measured(Part(kernels, shell.layout, dict(p.sizes), p.state), p)
    finally:
        source.close()


# ------------------------------------------------------------------ on the driver
def distributed(where: str):
    """The ``distributed`` package, or a PPVIError saying how to install it."""
    try:
        import distributed as dist
    except ImportError:
        raise PPVIError(Diagnostic("Dask is not installed (the Dask engine needs dask.distributed)", where,
                                   hint=INSTALL)) from None
    return dist


def connect(address: str, where: str, timeout: float = 10.0):
    """A Client of ``address``: ``local:N`` starts a LocalCluster of N single-threaded worker processes
    (no dashboard), closed with the client by :func:`close`; else a scheduler's address (``tcp://host:port``)."""
    dist = distributed(where)
    if address.startswith("local:"):
        n = address[len("local:"):]
        if not (n.isdigit() and int(n) >= 1):
            raise PPVIError(Diagnostic(f"`{address}`: local:N takes a whole number of workers N ≥ 1", where,
                                       hint="e.g. local:4, or a running scheduler's address tcp://HOST:PORT"))
        if _rerun_by_a_worker():
            raise SystemExit(1)     # (quietly: the script, in the driver, reports it with the guard, _not_started)
        # A signal while the cluster starts is held until it is whole (a half-started one fails distributed's
        # exit hook with a traceback), then delivered once it is closed again.
        with Held() as held, warnings.catch_warnings():
            # (its HTTP server, without the dashboard, takes a free port when another cluster has the default)
            warnings.filterwarnings("ignore", message="(?s).*already have a cluster running")
            try:
                cluster = dist.LocalCluster(n_workers=int(n), threads_per_worker=1, processes=True,
                                            dashboard_address=None, silence_logs=logging.ERROR)
            except Exception as e:      # (distributed raises RuntimeError chains, not an error of its own)
                raise _not_started(address, where, e) from None
            client = dist.Client(cluster, set_as_default=False)
        if held.signum is not None:
            close(client)
            held.deliver()
        return client

    def unreachable(detail: str) -> PPVIError:
        return PPVIError(Diagnostic(f"cannot reach the Dask scheduler at {address}: {detail}", where,
                                    hint="start one (`dask scheduler`, then `dask worker ADDRESS`), check the "
                                         "address, or use local:N for N workers on this machine"))
    try:
        _probe(address, timeout)
        return dist.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as e:
        raise unreachable(next((line.strip() for line in str(e).splitlines() if line.strip()),
                               type(e).__name__)) from None


def _rerun_by_a_worker() -> bool:
    """Whether this process is a LocalCluster's worker process running the user's script again as it starts
    (multiprocessing's spawn imports the main module before the worker runs): the script has no
    ``if __name__ == "__main__":`` guard, and would start a cluster of its own here.  (``_inheriting`` is
    the flag multiprocessing itself reads for its own "bootstrapping phase" error.)"""
    import multiprocessing

    return bool(getattr(multiprocessing.current_process(), "_inheriting", False))


def _not_started(address: str, where: str, e: Exception) -> PPVIError:
    """A LocalCluster that did not start: its workers are processes that import the main script again, so a
    script must start its fit under the guard."""
    cause = e
    while cause.__cause__ is not None:      # (distributed's outermost message is "Nanny failed to start.")
        cause = cause.__cause__
    detail = next((line.strip() for line in str(cause).splitlines() if line.strip()), type(cause).__name__)
    return PPVIError(Diagnostic(f"the Dask LocalCluster of `{address}` did not start: {detail}", where,
                                hint='its workers start by running your script again: in a script, call fit under '
                                     '`if __name__ == "__main__":` (or start a cluster yourself and pass its '
                                     'address or Client)'))


def _probe(address: str, timeout: float) -> None:
    """A TCP address that refuses connections fails here at once (a Client would retry until its timeout)."""
    import socket
    from urllib.parse import urlsplit

    if "://" not in address:
        address = "tcp://" + address
    url = urlsplit(address)
    if url.scheme == "tcp":
        if url.hostname is None or url.port is None:
            raise ValueError("expected tcp://HOST:PORT")
        socket.create_connection((url.hostname, url.port), timeout=timeout).close()


def close(client) -> None:
    """Close a client that :func:`connect` opened, and the LocalCluster it started."""
    cluster = getattr(client, "cluster", None)
    with Held() as held:           # (a cluster stopped half-way fails the same exit hook)
        try:
            client.close(timeout=10)
            if cluster is not None:
                cluster.close(timeout=10)
        except (TimeoutError, OSError):
            pass         # (a cluster that would not stop in time: its worker processes die with this one)
    held.deliver()


@dataclass(frozen=True)
class Dask:
    """The Dask engine's settings: a ``distributed.Client`` and how many partitions (default: one per
    worker; memoized VI: one per chunk)."""

    client: Any
    partitions: int | None = None
    reading: Any = None            # data read in chunks: (ppvi.infer.streamed.Streamer, a reopener of the source)

    def workers(self) -> list[str]:
        return sorted(self.client.scheduler_info()["workers"])

    def settings(self) -> dict:
        return {"name": "dask", "workers": len(self.workers()), "scheduler": str(self.client.scheduler.address)}

    def runner(self, algorithm: object = None) -> Callable[..., Fit]:
        """The fit of ``algorithm`` (None: batch CAVI; Memoized; SVI) on this engine, in the shape of
        :func:`ppvi.infer.cavi.run_once`."""
        from ppvi.infer.memoized import Memoized
        from ppvi.infer.svi import SVI

        def run_on_dask(program: Program, rng: np.random.Generator, max_iter: int, tol: float,
                        on_iteration=None, damping=None, start: Start | None = None) -> Fit:
            if isinstance(algorithm, Memoized):
                return run_memoized(self, program, rng, algorithm.chunks, max_iter, tol, on_iteration, start)
            if isinstance(algorithm, SVI):
                return run_svi(self, program, rng, algorithm, on_iteration, start)
            return run_batch(self, program, rng, max_iter, tol, on_iteration, start)
        return run_on_dask


class Partitions:
    """The driver's handle on the partitions: their futures (the newest complete round's), their units, the
    latest gathered statistics, factor terms and entropies of each."""

    def __init__(self, engine: Dask, program: Program, layout: Layout, count: int, reading: Reading | None = None):
        from ppvi.codegen.cache import _unsealed

        self.client, self.program, self.layout, self.reading = engine.client, program, layout, reading
        module = program.module
        with open(module.__file__, "rb") as fh:
            kernels = Kernels(program.model, module.__file__, _unsealed(fh.read()))
        self.units = split(layout.units(program), count) if reading is None else \
            [np.arange(a, b) for a, b in reading.spans]
        self.shared_keys = _shared_keys(program, layout)
        self.index: list[dict] = []
        workers = engine.workers()
        if not workers:
            address = engine.client.scheduler.address
            raise PPVIError(Diagnostic(f"the Dask scheduler at {address} has no workers", program.model.path,
                                       hint=f"start some (`dask worker {address}`), or use local:N"))
        futures = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")      # (dask's note on large task graphs: the data must be in the task)
            if reading is not None:
                shell = reading.streamer.shell()
                for i, (a, b) in enumerate(reading.spans):
                    futures.append(self.client.submit(_read_start, kernels, shell, reading.reopen, a, b, reading.draws,
                                                      reading.informed, pure=False, workers=[workers[i % len(workers)]],
                                                      allow_other_workers=True))
            for i, units in enumerate(self.units if reading is None else ()):
                chunk = Chunk(program, layout, units)
                self.index.append({d: _indices(w) for d, w in chunk.index.items()})
                futures.append(self.client.submit(_start, kernels, layout, dict(chunk.program.sizes),
                                                  dict(chunk.program.state),
                                                  pure=False, workers=[workers[i % len(workers)]],
                                                  allow_other_workers=True))
        self.futures = futures
        self.outcomes = self.client.gather([self.client.submit(outcome, f, pure=False) for f in futures])

    def _shared(self):
        """The round's globals: one task holding them (its value copied to the workers; kept as lineage)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.client.submit(dict, {k: self.program.state[k] for k in self.shared_keys}, pure=False)

    def round(self, which: list[int], task: Callable, *args) -> list[tuple]:
        """``task(part, globals, *args[i])`` on the partitions ``which``; their outcomes, gathered, in order."""
        shared = self._shared()
        new = {i: self.client.submit(task, self.futures[i], shared, *args[n], pure=False)
               for n, i in enumerate(which)}
        got = self.client.gather([self.client.submit(outcome, new[i], pure=False) for i in which])
        for i, o in zip(which, got):
            self.futures[i] = new[i]
            self.outcomes[i] = o
        return got

    def advance(self, steps: tuple[str, ...], stale: bool, which: list[int] | None = None) -> None:
        which = list(range(len(self.futures))) if which is None else which
        self.round(which, advance, *[(steps, stale)] * len(which))

    def add_statistics(self, scale: float = 1.0, which: list[int] | None = None) -> None:
        """The driver's global statistics: the partitions' (``which``: those) summed in partition order."""
        which = list(range(len(self.outcomes))) if which is None else which
        for key in self.layout.global_stats:
            out = self.program.state[key]
            out[...] = self.outcomes[which[0]][0][key]
            for i in which[1:]:
                out += self.outcomes[i][0][key]
            if scale != 1.0:
                out *= scale
        self.program.stale = False

    def elbo(self, driver: Program) -> float:
        """19.7 from the partitions' last outcomes and the driver's global terms: the factor terms of the
        units' factors summed over the partitions in order, the rest from ``driver`` (the program over no
        units), then every latent's entropy; summed in the canonical order, as Program.elbo sums."""
        p, layout = self.program, self.layout
        terms = np.asarray(driver.expected_terms(), dtype=float).copy()
        for f in layout.unit_factors:
            terms[f] = self.outcomes[0][1][f]
            for o in self.outcomes[1:]:
                terms[f] += o[1][f]
        entropies = 0.0
        for v in p.structure.order.sort(p.plan.latents):
            if v in layout.local_latents:
                h = self.outcomes[0][2][v]
                for o in self.outcomes[1:]:
                    h += o[2][v]
                entropies += h
            else:
                entropies += driver.entropy(v)
        return p._total(terms) + entropies

    def gather(self) -> None:
        """The partitions' local q written into the driver's program (the result holds them)."""
        states = self.client.gather([self.client.submit(local_state, f, pure=False) for f in self.futures])
        for index, state in zip(self.index, states):
            for key, value in state.items():
                axis = self.layout.cut_axis(key)
                if axis is None or key not in self.program.state:
                    continue
                where = index[self.layout.axes[key][axis]]
                np.moveaxis(self.program.state[key], axis, 0)[where] = np.moveaxis(value, axis, 0)
        self.program.stale = True

    def store(self, streamer) -> None:
        """The partitions' local q written to a new store of ``streamer`` (data read in chunks: its kept store, which
        :func:`ppvi.infer.streamed.finish` maps), gathered one partition at a time."""
        store = streamer.new_store()
        for future, units in zip(self.futures, self.units):
            state = self.client.gather(self.client.submit(local_state, future, pure=False))
            for key in streamer.local_keys:
                if len(units):
                    streamer.put(store, key, int(units[0]), state[key])
        if streamer.kept is not None:
            streamer.kept.close(remove=True)     # (a start cut short before this one's fit)
        streamer.kept = store

    def release(self) -> None:
        self.client.cancel(self.futures)
        self.futures = []


@dataclass(frozen=True)
class Reading:
    """Partitions that read their own units of data read in chunks: ``spans`` (ranges of units), ``reopen()``
    opens the source on a worker; the start's local draws and whether it was informed (ppvi.infer.streamed.begin)."""

    streamer: Any                  # ppvi.infer.streamed.Streamer (its global state: the start's)
    spans: list[tuple[int, int]]
    reopen: Callable
    draws: Any
    informed: bool


def _indices(where) -> np.ndarray:
    return np.arange(where.start, where.stop) if isinstance(where, slice) else np.asarray(where)


def _shared_keys(program: Program, layout: Layout) -> list[str]:
    """The arrays the global steps write (q of global latents, params, global points): sent every round."""
    plan = program.plan
    keys = []
    for var in layout.global_steps:
        if var in plan.latents:
            keys += list(plan.latents[var].state)
            keys += list(plan.latents[var].aliases)
        else:
            keys.append(ArrayNames.variable(var))
    return keys


def check(program: Program, layout: Layout) -> None:
    """A model the Dask engine can fit: its global steps read the data only through the statistics and no
    param is learnt by gradient steps on the whole ELBO (the driver holds no local q)."""
    from ppvi.infer.svi import check as check_svi

    check_svi(program, layout, "the Dask engine", "fit this model in-process (without --dask, or engine=None)")


def _phases(schedule: list[str], layout: Layout) -> list[tuple[bool, tuple[str, ...]]]:
    """The schedule as runs of local steps (a round on the partitions) and global steps (on the driver)."""
    local = set(layout.local_steps)
    out: list[tuple[bool, tuple[str, ...]]] = []
    for var in schedule:
        if out and out[-1][0] == (var in local):
            out[-1] = (out[-1][0], out[-1][1] + (var,))
        else:
            out.append((var in local, (var,)))
    return out


def _fresh(parts: Partitions, var: str) -> None:
    """Before the driver's update of ``var``: statistics a param made stale are summed again on the
    partitions, if the update reads them (as Program._call does in-process)."""
    p = parts.program
    if p.stale and any(ArrayNames.is_statistic(a) for a in p.plan.entry(var).update.args):
        parts.advance((), True)
        parts.add_statistics()


def _global_steps(parts: Partitions, steps: tuple[str, ...]) -> None:
    """Global steps on the driver, each as Program.update takes it."""
    for var in steps:
        _fresh(parts, var)
        parts.program.update(var)


@dataclass(frozen=True)
class _Setup:
    informed: bool                 # the start was informed (the local q are its E-step's)
    first: float | None            # the ELBO of an earlier result's start
    layout: Layout
    parts: Partitions
    driver: Program                # the global state over no units: the global factors' terms


def _setup(engine: Dask, program: Program, rng: np.random.Generator, start, count: int | None) -> _Setup:
    """The start (on the driver, as in-process), then the partitions made from it.  Data read in chunks
    (``engine.reading``): the streamed start (:func:`ppvi.infer.streamed.begin`), then partitions that read
    their own units on the workers."""
    if engine.reading is not None:
        return _setup_reading(engine, rng, start, count)
    informed = program.initialise(rng, start)
    layout = Layout.of(program)
    check(program, layout)
    first = program.elbo() if start is not None else None
    parts = Partitions(engine, program, layout, count or engine.partitions or len(engine.workers()))
    parts.add_statistics()
    return _Setup(informed, first, layout, parts, Chunk(program, layout, np.arange(0)).program)


def _setup_reading(engine: Dask, rng: np.random.Generator, start, count: int | None) -> _Setup:
    """The streamed start on the driver, then partitions that read their own units (``engine.reading``)."""
    from ppvi.infer.streamed import begin

    streamer, reopen = engine.reading
    program, layout = streamer.whole, streamer.layout
    check(program, layout)
    n = min(streamer.total, count or engine.partitions or len(engine.workers()))
    spans = [(int(u[0]), int(u[-1]) + 1) for u in split(streamer.total, n)]
    informed, draws = begin(streamer, rng, start, spans)
    driver = Chunk(program, layout, np.arange(0)).program
    parts = Partitions(engine, program, layout, n, Reading(streamer, spans, reopen, draws, informed))
    parts.add_statistics()
    return _Setup(informed, parts.elbo(driver) if start is not None else None, layout, parts, driver)


def _finish(parts: Partitions, fit: Fit) -> Fit:
    """The partitions' local q gathered into the fit's program (data read in chunks: into a store on disk,
    :meth:`Partitions.store`); their futures released."""
    try:
        if parts.reading is not None:
            parts.store(parts.reading.streamer)
        else:
            parts.gather()
    finally:
        parts.release()
    return fit


def run_batch(engine: Dask, program: Program, rng: np.random.Generator, max_iter: int, tol: float,
              on_iteration: Callable[[int, float, float], None] | None = None, start: Start | None = None) -> Fit:
    """Batch CAVI (:func:`ppvi.infer.cavi.run_once`'s sweeps) with the local steps on the partitions."""
    s = _setup(engine, program, rng, start, None)
    phases = _phases(program.schedule(), s.layout)

    def sweep() -> None:
        for local, steps in phases:
            if local:
                s.parts.advance(steps, program.stale)
                s.parts.add_statistics()
            else:
                _global_steps(s.parts, steps)
        if not phases[-1][0]:
            s.parts.advance((), program.stale)       # (the terms under the last global step)
    return _sweeps(s, program, sweep, max_iter, tol, on_iteration, program.schedule(), "")


def run_memoized(engine: Dask, program: Program, rng: np.random.Generator, chunks: int, max_iter: int, tol: float,
                 on_iteration: Callable[[int, float, float], None] | None = None,
                 start: Start | None = None) -> Fit:
    """Memoized VI (:func:`ppvi.infer.memoized.run`) with its chunks as the partitions: a step on chunk c is
    the global step on the driver from every partition's kept statistics, then chunk c's local step on its
    worker.  The steps are sequential (the globals move between them): the partitions spread the data's
    memory, not the work; each sweep ends with a round of every partition for the ELBO's terms."""
    s = _setup(engine, program, rng, start, chunks)

    def sweep() -> None:
        for i in range(len(s.parts.futures)):
            _global_steps(s.parts, s.layout.global_steps)
            if program.stale:
                s.parts.advance((), True)
                s.parts.add_statistics()
            s.parts.advance(s.layout.local_steps, False, which=[i])
            s.parts.add_statistics()
        s.parts.advance((), False)
    return _sweeps(s, program, sweep, max_iter, tol, on_iteration, [*s.layout.global_steps, *s.layout.local_steps],
                   " of memoized VI")


def _sweeps(s: _Setup, program: Program, sweep: Callable[[], None], max_iter: int, tol: float,
            on_iteration, order: list[str], what: str) -> Fit:
    """Sweeps until the ELBO changes by at most ``tol`` (relative) or ``max_iter``; a decrease is an internal
    fault, as in-process; Ctrl-C keeps the newest complete round's q."""
    trace: list[float] = []
    converged = interrupted = False
    began = time.perf_counter()
    last = s.first
    try:
        for it in range(1, max_iter + 1):
            sweep()
            value = s.parts.elbo(s.driver)
            if not math.isfinite(value):
                _refuse_overflowing_data(program, value)
                raise FloatingPointError(f"the ELBO became {value} at sweep {it}{what} on the Dask engine")
            if last is not None and _worse(value, last):
                raise ElboDecrease(f"the ELBO decreased from {last!r} to {value!r} at sweep {it}{what} on the Dask "
                                   "engine")
            converged, last = record(trace, it, value, last, tol, on_iteration), value
            if converged:
                break
    except KeyboardInterrupt:
        interrupted = True
    first = last if s.first is not None else math.nan
    fit = Fit(program, trace[-1] if trace else first, trace, len(trace), converged, interrupted,
              time.perf_counter() - began, order=order)
    return _finish(s.parts, fit)


def run_svi(engine: Dask, program: Program, rng: np.random.Generator, settings, on_iteration=None,
            start: Start | None = None) -> Fit:
    """Stochastic VI (:func:`ppvi.infer.svi.run`): each minibatch drawn here, sent to the partitions holding
    its units as lists of their indices; the minibatch's statistics summed in partition order, times N/|B|,
    then the step ρ_t of every global on the driver.  With ``local_tol`` each partition repeats the local
    step until its own share of the minibatch settles."""
    from ppvi.infer.svi import Stepper, first_local_step

    s = _setup(engine, program, rng, start, None)
    stepper = Stepper(program, s.layout, settings)
    total = sum(len(u) for u in s.parts.units)
    bounds = [(int(u[0]), int(u[-1]) + 1) for u in s.parts.units]
    trace: list[float] = []
    interrupted = False
    began = time.perf_counter()

    def finish() -> None:
        s.parts.advance(s.layout.local_steps, True)
        s.parts.add_statistics()
    try:
        for _ in range(settings.passes):
            order = rng.permutation(total) if settings.shuffle else np.arange(total)
            for b in range(0, total, settings.batch):
                units = np.sort(order[b:b + settings.batch])
                local = stepper.t > 0 or first_local_step(settings, s.layout, s.informed)
                which, args = [], []
                for i, (lo, hi) in enumerate(bounds):
                    mine = units[(units >= lo) & (units < hi)]
                    if len(mine):
                        which.append(i)
                        args.append((mine - lo, local, settings.local_tol))
                got = s.parts.round(which, minibatch, *args)
                bound = got[0][3]
                for o in got[1:]:
                    bound += o[3]
                bound /= max(1, len(units))
                stepper.t += 1
                s.parts.add_statistics(total / max(1, len(units)), which)
                stepper.move(settings.rate(stepper.t), before=lambda var: _fresh(s.parts, var))
                trace.append(bound)
                if on_iteration is not None:
                    on_iteration(len(trace), bound, bound - trace[-2] if len(trace) > 1 else math.inf)
        finish()
    except KeyboardInterrupt:
        interrupted = True
        finish()
    value = s.parts.elbo(s.driver)
    return _finish(s.parts, Fit(program, value, trace, len(trace), False, interrupted, time.perf_counter() - began,
                                order=[*s.layout.global_steps, *s.layout.local_steps]))
