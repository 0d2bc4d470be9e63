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
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ppvi.errors import Diagnostic, PPVIError
from ppvi.infer.cavi import ElboDecrease, Fit, _refuse_overflowing_data, _worse, record
from ppvi.infer.chunks import _MUTABLE, Chunk, Layout, split
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


def _program(part: Part, shared: dict | None = None, stale: bool = False) -> Program:
    """The partition's program with fresh copies of the arrays a step writes (a task never changes its
    input: Dask may run it again from the same input) and the round's globals put in."""
    state = {k: v.copy() if isinstance(v, np.ndarray) and (k.startswith(_MUTABLE) or k in _points(part)) else v
             for k, v in part.state.items()}
    state.update(shared or {})
    p = Program(part.kernels.model, part.kernels.module(), dict(part.sizes), state)
    p.relink()
    p.stale = stale
    return p


def _points(part: Part) -> set[str]:
    return {f"v_{v}" for v in part.kernels.module().PLAN.get("point", ())}


def _measured(part: Part, p: Program, bound_of: Program | None = None) -> Part:
    """The partition after a round: its state, its factor terms and local entropies under that state."""
    p.refresh_statistics()
    layout = part.layout
    bound = 0.0
    if bound_of is not None:
        bound_of.refresh_statistics()
        terms = bound_of.expected_terms()
        bound = float(np.sum(terms[list(layout.unit_factors)])) + sum(bound_of.entropy(v) for v in layout.local_latents)
    return replace(part, state=p.state, terms=np.asarray(p.expected_terms(), dtype=float),
                   entropies={v: p.entropy(v) for v in layout.local_latents}, bound=bound)


def advance(part: Part, shared: dict, steps: tuple[str, ...], stale: bool) -> Part:
    """A round on a partition: the globals ``shared``, then the local ``steps`` (none: the statistics only,
    summed again, as after a param that feeds them moved)."""
    from ppvi.infer.cavi import _one_blas_thread

    with _one_blas_thread():
        p = _program(part, shared, stale or not steps)
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
        done = _measured(part, p, bound_of=chunk.program)
        # (the round's statistics are the minibatch's: the chunk's, not the whole partition's)
        state = dict(done.state)
        state.update({k: chunk.program.state[k] for k in part.layout.global_stats})
        return replace(done, state=state)


def outcome(part: Part) -> tuple[dict, np.ndarray | None, dict, float]:
    """What the driver gathers after a round (small): the global statistics, factor terms, entropies, bound."""
    return {k: part.state[k] for k in part.layout.global_stats}, part.terms, part.entropies, part.bound


def local_state(part: Part) -> dict:
    """The arrays of the partition that the result holds (its local q and points), gathered at the end."""
    return {k: v for k, v in part.state.items()
            if isinstance(v, np.ndarray) and (k.startswith(_MUTABLE) or k in _points(part))}


def _start(kernels: Kernels, layout: Layout, sizes: dict, state: dict) -> Part:
    """A partition's first state (its statistics summed)."""
    p = Program(kernels.model, kernels.module(), dict(sizes), dict(state))
    p.relink()
    p.stale = True
    return _measured(Part(kernels, layout, sizes, p.state), p)


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
    (no dashboard) owned by the client; else a scheduler's address (``tcp://host:port``).  Returns the
    client and whether the caller should close it (and its cluster)."""
    dist = distributed(where)
    if address.startswith("local:"):
        n = address[len("local:"):]
        if not (n.isdigit() and int(n) >= 1):
            raise PPVIError(Diagnostic(f"--dask {address}: local:N needs a whole number of workers N ≥ 1", where,
                                       hint="e.g. --dask local:4, or --dask tcp://HOST:PORT for a running scheduler"))
        cluster = dist.LocalCluster(n_workers=int(n), threads_per_worker=1, processes=True,
                                    dashboard_address=None)
        return dist.Client(cluster, set_as_default=False)
    try:
        return dist.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as e:
        detail = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
        raise PPVIError(Diagnostic(f"cannot reach the Dask scheduler at {address}: {detail}", where,
                                   hint="start one (`dask scheduler`, then `dask worker ADDRESS`), check the "
                                        "address, or use --dask local:N for workers on this machine")) from None


def close(client) -> None:
    """Close a client that :func:`connect` opened, and the LocalCluster it started."""
    cluster = getattr(client, "cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


@dataclass(frozen=True)
class Dask:
    """The Dask engine's settings: a ``distributed.Client`` and how many partitions (default: one per
    worker; memoized VI: one per chunk)."""

    client: Any
    partitions: int | None = None

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

    def __init__(self, engine: Dask, program: Program, layout: Layout, count: int):
        from ppvi.codegen.cache import _unsealed

        self.client, self.program, self.layout = engine.client, program, layout
        module = program.module
        with open(module.__file__, "rb") as fh:
            kernels = Kernels(program.model, module.__file__, _unsealed(fh.read()))
        self.units = split(layout.units(program), count)
        self.shared_keys = _shared_keys(program, layout)
        self.index: list[dict] = []
        workers = engine.workers()
        futures = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")      # (dask's note on large task graphs: the data must be in the task)
            for i, units in enumerate(self.units):
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
        for v in p.structure.order.sort(p.plan["latents"]):
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

    def release(self) -> None:
        self.client.cancel(self.futures)
        self.futures = []


def _indices(where) -> np.ndarray:
    return np.arange(where.start, where.stop) if isinstance(where, slice) else np.asarray(where)


def _shared_keys(program: Program, layout: Layout) -> list[str]:
    """The arrays the global steps write (q of global latents, params, global points): sent every round."""
    plan = program.plan
    keys = []
    for var in layout.global_steps:
        if var in plan["latents"]:
            keys += list(plan["latents"][var]["state"])
            keys += list(plan["latents"][var]["aliases"])
        else:
            keys.append(f"v_{var}")
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


def _global_steps(parts: Partitions, steps: tuple[str, ...]) -> None:
    """Global steps on the driver, each as Program.update takes it; statistics that a param made stale are
    summed again on the partitions first, when a step reads them (as Program._call does)."""
    p = parts.program
    plan = p.plan
    for var in steps:
        info = plan["latents"].get(var) or plan["points"][var]
        if p.stale and any(a.startswith("t_") for a in info["args"]):
            parts.advance((), True)
            parts.add_statistics()
        p.update(var)


def _setup(engine: Dask, program: Program, rng: np.random.Generator, start, count: int | None):
    """The start (on the driver, as in-process), then the partitions made from it; the ELBO of an earlier
    result's start (None without one), the layout, the partitions and the driver's program over no units."""
    program.initialise(rng, start)
    layout = Layout.of(program)
    check(program, layout)
    first = program.elbo() if start is not None else None
    parts = Partitions(engine, program, layout, count or engine.partitions or len(engine.workers()))
    parts.add_statistics()
    driver = Chunk(program, layout, np.arange(0)).program      # the global state over no units: the global terms
    return first, layout, parts, driver


def _finish(parts: Partitions, program: Program, fit: Fit) -> Fit:
    try:
        parts.gather()
    finally:
        parts.release()
    return fit


def run_batch(engine: Dask, program: Program, rng: np.random.Generator, max_iter: int, tol: float,
              on_iteration: Callable[[int, float, float], None] | None = None, start: Start | None = None) -> Fit:
    """Batch CAVI (:func:`ppvi.infer.cavi.run_once`'s sweeps) with the local steps on the partitions."""
    last, layout, parts, driver = _setup(engine, program, rng, start, None)
    phases = _phases(program.schedule(), layout)
    trace: list[float] = []
    converged = interrupted = False
    began = time.perf_counter()
    try:
        for it in range(1, max_iter + 1):
            for local, steps in phases:
                if local:
                    parts.advance(steps, program.stale)
                    parts.add_statistics()
                else:
                    _global_steps(parts, steps)
            if not phases[-1][0]:
                parts.advance((), program.stale)       # (the terms under the last global step)
            value = parts.elbo(driver)
            if not math.isfinite(value):
                _refuse_overflowing_data(program, value)
                raise FloatingPointError(f"the ELBO became {value} at iteration {it} on the Dask engine")
            if last is not None and _worse(value, last):
                raise ElboDecrease(f"the ELBO decreased from {last!r} to {value!r} at iteration {it} on the Dask engine")
            converged, last = record(trace, it, value, last, tol, on_iteration), value
            if converged:
                break
    except KeyboardInterrupt:
        interrupted = True
    first = last if start is not None else math.nan
    return _finish(parts, program, Fit(program, trace[-1] if trace else first, trace, len(trace), converged,
                                       interrupted, time.perf_counter() - began, order=program.schedule()))
