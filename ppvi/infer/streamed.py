"""Fits whose data are read chunk by chunk, never whole (docs/scale.md, "Data beyond memory").

The *whole* program holds the global state only: global q, params, and the statistics (sums over the
units); its arrays with a unit axis are those of the first chunk, the *pilot*, which starts the fit.  A
*local pass* over a range of units reads them a chunk at a time (:class:`ppvi.io.data.Streamed`, each chunk
checked as it is read), runs the generated local step on a program over the chunk (the globals shared, the
chunk's data and local q its own), and sums what the fit needs in chunk order: the global statistics, the
unit factors' terms of the ELBO and the local entropies.  Peak memory is one chunk's data and local q plus
the global state (and the pilot's arrays: one chunk more).

- Batch CAVI: a sweep is the global step from the statistics, then a local pass over every unit; its ELBO
  is the pass's sums plus the global factors' terms and entropies.
- Memoized VI: each memoized chunk's statistics are kept (small: no unit axis); a step is the global step,
  then a local pass over that chunk.  The ELBO at the end of a sweep reads every unit's current local q,
  which the passes keep in a scratch store on disk (:class:`Store`), never in memory.
- Stochastic VI: minibatches of contiguous units, in a new random order of the minibatches every pass
  (``shuffle``), or in order.

A unit is a point of the data plate or, with a group block (LDA), a group (a document): its rows, the
members (its tokens), are a run of the data's rows sorted by the group index, and a chunk holds whole groups
(:meth:`Streamer.locate`).  The global steps must read the data only through the statistics.  Where the local
step recomputes one local latent's q from the globals and the unit's data alone (a mixture's
responsibilities, a logistic regression's Pólya-Gamma weights), the local q need not be kept between
sweeps: the result's come from one more local pass under the final globals, written to ``.npy`` files
(:class:`Store`) and mapped into memory read-only.  Where it reads the local q it last left — a group block
starts each group from its members' q, local latents updated in turn read each other's (a Student-t
mixture's z and weights) — every unit's local state is *kept* in a :class:`Store` on disk, read before each
chunk's step and written after, and the result maps the fit's own local q from it.

The start is an in-memory fit's of the same seed (:func:`begin`): every unit's local q drawn chunk by chunk
from the same random numbers, the pilot's globals seeded from every row of the data (k-means++ read in
chunks), then an E-step of every unit (or, not informed by the data, the drawn local q's statistics).  With
restarts, each start's kept local q are its own, and the best start's are the result's (:meth:`Streamer.hand_over`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from ppvi.codegen.plan import ArrayNames, PointPlan
from ppvi.errors import Diagnostic, PPVIError
from ppvi.infer.cavi import ElboDecrease, Fit, _refuse_overflowing_data, _worse, better, record
from ppvi.infer.chunks import Layout, split
from ppvi.infer.program import Program, group_index, latent_start

if TYPE_CHECKING:
    from ppvi.infer.warm import Start
    from ppvi.io.data import Streamed

BUDGET = 64 * 2 ** 20      # bytes of a chunk's data and local q, when no chunk size is given
SMALL_CHUNK = 1 << 14      # units: below it a chunk's kernels run on one thread
_WORK = 4                  # the kernels' temporaries, per unit, as a multiple of the chunk's own arrays


@dataclass(frozen=True)
class Chunking:
    """How a streamed fit reads its data: ``chunk_size`` units a chunk (None: as many as ``budget`` bytes of data
    and local q allow); ``local_dir``: where the final local q are written as .npy (None: a temporary file,
    removed once mapped)."""

    chunk_size: int | None = None
    budget: int = BUDGET
    local_dir: str | None = None


def _refuse(program: Program, why: str) -> PPVIError:
    return PPVIError(Diagnostic(f"model `{program.model.name}` cannot be fitted to data read in chunks: {why}",
                                program.model.path, hint="load the data whole (.npz, .json or .csv without "
                                                         "--chunk-size), or use a smaller data set"))


def check(program: Program, layout: Layout, data: Streamed | None = None) -> None:
    """A model the streamed runner can fit (the module's docstring)."""
    plan = program.plan
    block = plan.block
    if block and data is not None and data.unit != layout.member:
        raise _refuse(program, f"its group block's members `{layout.member}` are not the rows of the data "
                               f"(`{data.unit}`)")
    steps = layout.local_steps
    # (no local step at all, an AR(1) of data riding on sequences: a pass sums the chunks' statistics only)
    if any(s not in plan.latents and not (block and s == block.name) for s in steps):
        raise _refuse(program, f"its local step updates {', '.join(steps) or 'nothing'}; a streamed "
                               "fit steps local latents (or a group block) under the globals in each chunk")
    for var in layout.global_steps:
        info = plan.entry(var)
        if (isinstance(info, PointPlan) and info.method == "gradient") or info.feeds:
            raise _refuse(program, f"`{var}` is learnt from every unit's local q at once")
        kernel = (info.local_step or info.update) if var not in plan.latents else info.update
        direct = [a for a in kernel.args if layout.cut_axis(a) is not None]
        if direct:
            raise _refuse(program, f"the update of `{var}` reads {', '.join(sorted(direct))} unit by unit")
    for key, (_kind, var) in plan.derived.items():
        if layout.cut_axis(key) is not None:
            raise _refuse(program, f"it needs the inverse of data `{var}` of every unit")


def group_by(model, module) -> tuple[str, str] | None:
    """(the index naming each row's unit, the units' dim) where a unit is a run of the data's rows: a group
    block's (LDA: ``doc``, ``M``), a ragged chain's (``seq``, ``S``: whole sequences), else None."""
    block = module.PLAN.block
    if block:
        return block.by, block.groups
    chain = next((c for c in model.chains.values() if c.by is not None), None)
    return (chain.by, model.variables[chain.by].support_dim) if chain else None


def pilot(model, module, data: Streamed, units: int) -> Program:
    """The program over the first ``units`` units (documents, with a group block: the rows up to the first of
    document ``units``; whole sequences of a ragged chain, likewise), which starts the fit."""
    from ppvi.io.data import Bound

    sizes = dict(data.sizes)
    rows = units
    groups = group_by(model, module)
    if groups is not None:
        rows = data.group_starts(groups[0], [units])[units]
        sizes[groups[1]] = units
    sizes[data.unit] = rows
    return Program.build(model, module, Bound({**data.arrays, **data.read(0, rows)}, sizes))


def chunk_units(program: Program, layout: Layout, data: Streamed, chunking: Chunking) -> int:
    """Units a chunk: ``chunking.chunk_size``, or what the budget allows for a unit's data and local q (×5 for the
    kernels' temporaries; a document's members as many as the data's mean), at least 1."""
    if chunking.chunk_size is not None:
        return int(chunking.chunk_size)
    per = 0.0
    members = data.sizes[layout.member] / max(1, data.sizes[layout.unit]) if layout.member else 1.0
    for key, a in program.state.items():
        axis = layout.cut_axis(key)
        if axis is not None and isinstance(a, np.ndarray) and a.shape[axis]:
            per += a.nbytes // a.shape[axis] * (members if layout.axes[key][axis] == layout.member else 1.0)
    return max(1, int(chunking.budget // max(1.0, per * (1 + _WORK))))


class Store:
    """Every unit's local state arrays in ``.npy`` files of a directory, a unit (member) a row (:meth:`Streamer.put`),
    written and read a chunk of rows at a time with ``os.pwrite``/``os.pread`` (a memory map would keep the pages
    it touched resident)."""

    def __init__(self, directory: str, shapes: dict[str, tuple[tuple[int, ...], np.dtype]]):
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self.files: dict[str, tuple[int, int, int, tuple[int, ...], np.dtype]] = {}
        for key, (shape, dtype) in shapes.items():
            path = os.path.join(directory, key + ".npy")
            with open(path, "wb") as fh:
                np.lib.format.write_array_header_1_0(fh, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                          "fortran_order": False, "shape": shape})
                offset = fh.tell()
                fh.truncate(offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
            fd = os.open(path, os.O_RDWR)
            row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
            self.files[key] = (fd, offset, row, shape, dtype)

    def write(self, key: str, a: int, rows: np.ndarray) -> None:
        fd, offset, row, _, _ = self.files[key]
        if rows.size:           # (a chunk of groups without a member has no member rows)
            os.pwrite(fd, np.ascontiguousarray(rows).data, offset + a * row)

    def read(self, key: str, a: int, b: int) -> np.ndarray:
        fd, offset, row, shape, dtype = self.files[key]
        out = np.empty((b - a,) + shape[1:], dtype=dtype)       # (aligned, as the kernels were compiled for)
        if not out.size:
            return out
        view, got = memoryview(out).cast("B"), 0
        while got < len(view):
            got += os.preadv(fd, [view[got:]], offset + a * row + got)
        return out

    def mapped(self, key: str) -> np.ndarray:
        """The whole array, memory-mapped read-only."""
        return np.load(os.path.join(self.directory, key + ".npy"), mmap_mode="r")

    def close(self, remove: bool = False) -> None:
        for fd, *_ in self.files.values():
            os.close(fd)
        self.files.clear()
        if remove:
            shutil.rmtree(self.directory, ignore_errors=True)


@dataclass
class Pass:
    """What a local pass sums, in chunk order: the global statistics, each factor's term (the unit factors'
    summed over the chunks, the others from the first chunk) and each local latent's entropy."""

    stats: dict[str, np.ndarray]
    terms: np.ndarray | None
    entropy: dict[str, float]

    def bound(self, unit_factors: tuple[int, ...]) -> float:
        """The units' share of the ELBO: their factors' terms and local entropies."""
        return float(np.sum(self.terms[list(unit_factors)])) + sum(self.entropy.values())


@dataclass
class LocalDraws:
    """Where each chunk's draws of each local latent's start begin in the stream of random numbers, noted by
    :meth:`Program.initialise` (``streamed=``) at the latent's turn, as it moves the generator past every
    unit's draws: (stage, latent, the chunk's first unit) -> the bit generator's state.  Stage ``start``: the
    q's first arrays (``latent_start``: a Categorical's random rows); ``prior``: a continuous latent's draw
    from its prior, scaled by the whole data's variance (``variances``)."""

    chunks: tuple[tuple[int, int], ...]
    sizes: dict[int, dict[str, int]]            # a chunk's first unit -> the sizes of its program
    kind: type
    order: tuple[str, ...]                      # the local latents, in the canonical order
    states: dict[tuple[str, str, int], dict] = dataclasses.field(default_factory=dict)
    variances: dict[str, float | None] = dataclasses.field(default_factory=dict)

    def skip(self, stage: str, var: str, rng: np.random.Generator,
             draw: Callable[[dict[str, int], np.random.Generator], object], variance: float | None = None
             ) -> np.random.Generator:
        """``rng`` moved past ``draw`` of every chunk (made and dropped: no data are read), where each began
        noted; a generator at the first chunk's draws (the pilot's own)."""
        self.variances[var] = variance
        for s, _ in self.chunks:
            self.states[stage, var, s] = rng.bit_generator.state
            draw(self.sizes[s], rng)
        return self.at(stage, var, self.chunks[0][0]) if self.chunks else rng

    def at(self, stage: str, var: str, first: int) -> np.random.Generator:
        g = np.random.Generator(self.kind())
        g.bit_generator.state = self.states[stage, var, first]
        return g

    def start(self, p: Program, first: int) -> None:
        """The local q of a program over units from ``first`` (a chunk's, or several chunks' in a row) as an
        in-memory start draws them: each local latent's first arrays, then the continuous ones' prior draws."""
        for var in self.order:
            p.start_latent(var, self.at("start", var, first))
        for var in self.order:
            if ("prior", var, first) in self.states:
                p.draw_prior(var, self.at("prior", var, first), self.variances[var])
        p.stale = True


class Rows:
    """The whole data's rows, read in chunks of ``step`` rows, for a pilot's start (``Program.rows_of``): k-means++
    centres and atoms drawn from every row (``seeds``; else from the pilot's rows), the data's variance, as an
    in-memory start reads them."""

    def __init__(self, data: Streamed, sizes: dict[str, int], step: int, seeds: bool = True):
        self.data, self.step = data, max(1, step)
        self.names = frozenset(data.rows)
        self.seeded = self.names if seeds else frozenset()
        self.count = data.sizes[data.unit]
        self.shapes = {n: tuple(sizes[e] if isinstance(e, str) else int(e) for e in data.model.variables[n].shape[1:])
                       for n in data.rows}
        self._variances: dict[str, float] = {}

    def of(self, name: str) -> "Column":
        return Column(self, name)

    def read(self, name: str, a: int, b: int) -> np.ndarray:
        return np.asarray(self.data.read(a, b, (name,))[name], dtype=float).reshape((b - a,) + self.shapes[name])

    def variance(self, name: str) -> float:
        """np.var of the whole data (two passes: the mean, then the mean squared deviation; equal to within
        rounding)."""
        if name not in self._variances:
            n = self.count * int(np.prod(self.shapes[name], dtype=np.int64))
            spans = [(a, min(self.count, a + self.step)) for a in range(0, self.count, self.step)]
            mean = sum(float(np.sum(self.read(name, a, b))) for a, b in spans) / max(1, n)
            self._variances[name] = sum(float(np.sum((self.read(name, a, b) - mean) ** 2)) for a, b in spans) / \
                max(1, n)
        return self._variances[name]


@dataclass(frozen=True)
class Column:
    """One data variable's rows as :func:`ppvi.infer.start.seeded` reads them."""

    rows: Rows
    name: str

    @property
    def count(self) -> int:
        return self.rows.count

    @property
    def row(self) -> tuple[int, ...]:
        return self.rows.shapes[self.name]

    def chunks(self):
        for a in range(0, self.count, self.rows.step):
            yield self.rows.read(self.name, a, min(self.count, a + self.rows.step))

    def take(self, indices) -> np.ndarray:
        return np.stack([self.rows.read(self.name, int(i), int(i) + 1)[0] for i in indices]) if len(indices) else \
            np.empty((0,) + self.row)


class Streamer:
    """Local passes of a streamed fit over the ``whole`` program (global state, the pilot's unit arrays).

    With a group block (LDA) a unit is a group (a document) and its rows are the members (its tokens), a run
    of the data's rows sorted by the group index: a range of units a..b−1 is the rows from the first of group
    a to the first of group b, found once by one pass over the group index (:meth:`locate`).  The block starts
    each group from its members' previous q (codegen.module.block_kernel), so every unit's local state is
    *kept* between passes, in a :class:`Store` on disk (``local_dir``, else a scratch directory)."""

    def __init__(self, whole: Program, data: Streamed, chunk: int, local_dir: str | None = None):
        self.whole, self.data = whole, data
        self.layout = Layout.of(whole)
        check(whole, self.layout, data)
        self.total = data.sizes[self.layout.unit]
        self.chunk = max(1, int(chunk))
        self.aliases = whole.plan.aliases()
        self.starts = {0: 0, self.total: data.sizes[data.unit]}      # unit -> its first row of the data
        # (kept: a block starts from its members' q, local latents updated in turn read each other's, and so do
        # the elements of one updated in turn, a factor analyser's z[n, m])
        self.keep = whole.plan.block is not None or len(self.layout.local_steps) > 1 or any(
            whole.plan.latents[v].sequential for v in self.layout.local_steps if v in whole.plan.latents)
        self.local_dir = local_dir
        self.kept: Store | None = None
        self.restarts = False          # several starts: each keeps its local q in a store of its own
        self.best: tuple[Fit, Store] | None = None     # the best start's fit and kept store so far (restarts)
        self.locate([(0, self.total)])

    def shell(self) -> Streamer:
        """A copy to send to a Dask worker: no kernels, no open source, no stores (the worker attaches its own
        kernels and source: :meth:`attach`); the global state as it is now."""
        out = copy.copy(self)
        out.whole = dataclasses.replace(self.whole, module=None, rows_of=None)
        out.data = dataclasses.replace(self.data, source=None)
        out.kept = out.best = None
        return out

    def attach(self, module, source) -> None:
        self.whole.module = module
        self.data = dataclasses.replace(self.data, source=source)

    @property
    def local_keys(self) -> tuple[str, ...]:
        """The whole program's arrays with a unit axis that a chunk has its own of (not the data): local q."""
        return tuple(k for k, a in self.whole.state.items() if k not in self.aliases and isinstance(a, np.ndarray)
                     and self.layout.cut_axis(k) is not None and not ArrayNames.is_input(k))

    @property
    def rows_a_chunk(self) -> int:
        """The data's rows in a chunk, on average."""
        return max(1, self.chunk * self.data.sizes[self.data.unit] // max(1, self.total))

    def locate(self, spans: list[tuple[int, int]]) -> None:
        """The first row of every chunk the local passes over ``spans`` (ranges of units) read: one pass over
        the group index for those not known yet (the first also checks that its rows are sorted)."""
        if self.layout.by is None:
            return
        bounds = {u for a, b in spans for s, e in self.ranges(a, b) for u in (s, e)} - set(self.starts)
        if bounds:
            self.starts.update(self.data.group_starts(self.layout.by, bounds, self.rows_a_chunk))

    def ranges(self, a: int, b: int) -> list[tuple[int, int]]:
        return [(s, min(b, s + self.chunk)) for s in range(a, b, self.chunk)]

    def _row(self, key: str, unit: int) -> int:
        """Where unit's rows of key's array begin (a member array's at the unit's first member)."""
        member = self.layout.member is not None and self.layout.axes[key][self.layout.cut_axis(key)] == \
            self.layout.member
        return self.starts[unit] if member else unit

    def program(self, a: int, b: int) -> Program:
        """The program over units a..b−1: their data (read and checked), new local arrays, the globals shared."""
        whole, layout = self.whole, self.layout
        sizes = self._sizes(a, b)
        first, last = (self.starts[a], self.starts[b]) if layout.member else (a, b)
        rows = self.data.read(first, last)
        local = self.local_keys
        state: dict = {}
        for key, arr in whole.state.items():
            if key in self.aliases:
                continue
            if ArrayNames.size_of(key) in sizes:
                state[key] = sizes[ArrayNames.size_of(key)]
            elif key in layout.global_stats or key in layout.local_sums:
                state[key] = np.zeros_like(arr)
            elif ArrayNames.variable_of(key) in rows:
                var = ArrayNames.variable_of(key)
                shape = tuple(sizes[e] if isinstance(e, str) else int(e) for e in whole.model.variables[var].shape)
                state[key] = rows[var].reshape(shape)
            elif key in local:
                axis = layout.cut_axis(key)
                shape = list(arr.shape)
                shape[axis] = sizes[layout.axes[key][axis]]
                state[key] = np.zeros(shape, arr.dtype)
            else:
                state[key] = arr
        if layout.by is not None:
            # (the chunk's own group numbers, 0..b−a−1: its rows are groups a..b−1, sorted)
            name = ArrayNames.variable(layout.by)
            by = state[name] = state[name] - a
            state[ArrayNames.constant("order", layout.by)], state[ArrayNames.constant("start", layout.by)] = \
                group_index(by, b - a)
        for alias, target in self.aliases.items():
            state[alias] = state[target]
        # (stale, as a Program starts: the chunk's statistics are not summed yet)
        return Program(whole.model, whole.module, sizes, state, given=whole.given, structure=whole.structure)

    def local_pass(self, a: int, b: int, store: Store | None = None, terms: bool = True, step: bool = True,
                   fresh: LocalDraws | None = None) -> Pass:
        """The local step of units a..b−1, a chunk at a time, under the current globals; their sums (``terms``:
        also the ELBO's); each chunk's local state written to ``store`` if given.  Kept local state (a group
        block's) is read before the step and written after; ``fresh``: instead, each chunk's local q start
        as an in-memory program's do, drawn where the start noted them in the stream of random
        numbers (:class:`LocalDraws`); ``step=False``: no step, the sums of the kept (or fresh) local q."""
        stats: dict[str, np.ndarray] = {}
        total: np.ndarray | None = None
        entropy: dict[str, float] = {}
        p = None
        for s, e in self.ranges(a, b):
            p = None                     # (the previous chunk's arrays go before the next chunk's are made)
            p = self.program(s, e)
            if fresh is not None:
                fresh.start(p, s)
            elif self.kept is not None:
                self._load(p, self.kept, s, e)
            if step:
                for var in self.layout.local_steps:
                    p.update(var)
            p.refresh_statistics()
            for key in self.layout.global_stats:
                if key in stats:
                    stats[key] += p.state[key]
                else:
                    stats[key] = p.state[key].copy()
            if terms:
                total = self._add_terms(p, total, entropy)
            for out in (store, self.kept if step or fresh is not None else None):
                if out is not None:
                    for key in self.local_keys:
                        self.put(out, key, s, p.state[key])
        return Pass(stats, total, entropy)

    def local_draws(self, rng: np.random.Generator, spans: list[tuple[int, int]]) -> LocalDraws:
        """Where the local passes over ``spans`` will find their local q's start (:class:`LocalDraws`), to be
        noted by the pilot's ``initialise``."""
        chunks = tuple(r for a, b in spans for r in self.ranges(a, b))
        return LocalDraws(chunks, {s: self._sizes(s, e) for s, e in chunks}, type(rng.bit_generator),
                          tuple(self.whole.structure.order.sort(self.layout.local_latents)))

    def _sizes(self, a: int, b: int) -> dict[str, int]:
        """The sizes of the program over units a..b−1."""
        sizes = dict(self.whole.sizes)
        sizes[self.layout.unit] = b - a
        if self.layout.member:
            sizes[self.layout.member] = self.starts[b] - self.starts[a]
        return sizes

    def put(self, store: Store, key: str, s: int, a: np.ndarray) -> None:
        """The local array ``a`` of the units from ``s`` on written to ``store``, whose rows are units (members):
        a local q with its units on another axis (``X[m, n]``) is stored with that axis first."""
        store.write(key, self._row(key, s), np.moveaxis(a, self.layout.cut_axis(key), 0))

    def _load(self, p: Program, store: Store, s: int, e: int) -> None:
        for key in self.local_keys:
            np.moveaxis(p.state[key], self.layout.cut_axis(key), 0)[...] = \
                store.read(key, self._row(key, s), self._row(key, e))
        p.stale = True

    def stored_terms(self, store: Store) -> Pass:
        """The ELBO's sums over every unit from the local state in ``store`` (memoized VI: each chunk's q as its
        last step left it), under the current globals."""
        total: np.ndarray | None = None
        entropy: dict[str, float] = {}
        for s, e in self.ranges(0, self.total):
            p = self.program(s, e)
            self._load(p, store, s, e)
            total = self._add_terms(p, total, entropy)
        return Pass({}, total, entropy)

    def _add_terms(self, p: Program, total: np.ndarray | None, entropy: dict[str, float]) -> np.ndarray:
        """A chunk's ELBO terms added to ``total`` — the unit factors' only after the first chunk (the others are
        the globals', the same in every chunk) — and its local entropies to ``entropy``."""
        t = p.expected_terms()
        if total is None:
            total = np.array(t, dtype=float)
        else:
            unit = list(self.layout.unit_factors)
            total[unit] += t[unit]
        for v in self.layout.local_latents:
            entropy[v] = entropy.get(v, 0.0) + p.entropy(v)
        return total

    def set_statistics(self, parts: list[dict[str, np.ndarray]], scale: float = 1.0) -> None:
        """The whole program's statistics: ``parts`` summed in order (times ``scale``)."""
        for key in self.layout.global_stats:
            out = self.whole.state[key]
            out[...] = parts[0][key]
            for part in parts[1:]:
                out += part[key]
            if scale != 1.0:
                out *= scale
        self.whole.stale = False

    def elbo(self, done: Pass) -> float:
        """19.7 from a pass's sums: the factors' terms in the canonical order, then the entropies."""
        return self.whole._total(done.terms) + sum(
            done.entropy[v] if v in done.entropy else self.whole.entropy(v)
            for v in self.whole.structure.order.sort(self.whole.plan.latents))

    def global_step(self) -> None:
        for var in self.layout.global_steps:
            self.whole.update(var)
        self.whole.stale = False

    def local_shapes(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Every local array's shape over the whole data, its units (members) first (:meth:`put`)."""
        out = {}
        for key in self.local_keys:
            a = self.whole.state[key]
            shape = list(a.shape)
            axis = self.layout.cut_axis(key)
            shape[axis] = self.data.sizes[self.layout.axes[key][axis]]
            out[key] = (tuple(shape[axis:axis + 1] + shape[:axis] + shape[axis + 1:]), a.dtype)
        return out

    def open_kept(self) -> None:
        """The store of kept local state (``local_dir``, else a scratch directory), if the model keeps any."""
        if self.keep and self.kept is None:
            self.kept = self.new_store()

    def new_store(self) -> Store:
        """A store for every unit's local state: in ``local_dir``, else a scratch directory; with restarts, one
        beside ``local_dir`` (the best start's files are moved into it at the end: :func:`finish`)."""
        where = os.path.dirname(os.path.abspath(self.local_dir)) if self.local_dir else None
        if where is not None:
            os.makedirs(where, exist_ok=True)       # (as Store makes local_dir itself)
        directory = tempfile.mkdtemp(prefix="ppvi-local-", dir=where) if self.restarts or not self.local_dir \
            else self.local_dir
        return Store(directory, self.local_shapes())

    def hand_over(self, fit: Fit) -> None:
        """After one of several starts: its kept local q stay if its fit is the best so far (as
        ``ppvi.infer.cavi.fit`` keeps it), else they are removed; the next start keeps its own in a new store."""
        if self.kept is None:
            return
        if better(fit, None if self.best is None else self.best[0]):
            if self.best is not None:
                self.best[1].close(remove=True)
            self.best = (fit, self.kept)
        else:
            self.kept.close(remove=True)
        self.kept = None

    def discard(self) -> None:
        """After a fit that raised: every store of kept local q closed, and the scratch ones (a start's of several,
        one without ``local_dir``) removed; ``local_dir`` itself is the caller's, left as it is."""
        for store in [self.kept, self.best[1] if self.best else None]:
            if store is not None:
                mine = self.local_dir is None or os.path.abspath(store.directory) != os.path.abspath(self.local_dir)
                store.close(remove=mine)
        self.kept = self.best = None

    def take_best(self) -> None:
        """The best start's kept store as the fit's (after restarts); a later start's, cut short, removed."""
        if self.best is None:
            return
        if self.kept is not None:
            self.kept.close(remove=True)
        self.kept, self.best = self.best[1], None


@contextlib.contextmanager
def threads_for(chunk: int):
    """One Numba thread for chunks of fewer than SMALL_CHUNK units: waking the threads of a parallel region costs
    more than such a chunk's work (8× the time on a busy 2-core machine).  The sums are the same: a kernel splits
    its units into blocks by their number, not by the threads (codegen.statistics)."""
    import numba

    before = numba.get_num_threads()
    if chunk < SMALL_CHUNK:
        numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def start(streamer: Streamer, rng: np.random.Generator, start_: Start | None,
          spans: list[tuple[int, int]] | None = None, terms: bool = True) -> tuple[bool, list[Pass]]:
    """:func:`begin`, then a local pass over each of ``spans`` (default: every unit) from it: whether the start
    was informed, and the passes' sums."""
    spans = spans or [(0, streamer.total)]
    informed, fresh = begin(streamer, rng, start_, spans)
    streamer.open_kept()
    return informed, [streamer.local_pass(a, b, terms=terms, step=informed, fresh=fresh) for a, b in spans]


def begin(streamer: Streamer, rng: np.random.Generator, start: Start | None,
          spans: list[tuple[int, int]]) -> tuple[bool, LocalDraws | None]:
    """The start an in-memory fit of the same seed makes (docs/scale.md, "The start"), before the first local
    passes over ``spans``: whether it was informed, and where those passes draw the local q (None: they need not).

    In memory the latents' q are started in the canonical order (a local one's drawn over every unit); then
    params, seeds from the data (k-means++ centres, atoms) and draws of continuous latents, again in the
    canonical order.  Here the pilot makes that start, its seeds from every row of the data (:class:`Rows`), and
    at each local latent's turn the rng is moved past every unit's draws chunk by chunk (:class:`LocalDraws`).  An informed start's first passes are an E-step of every unit
    (from the drawn local q where they are kept); an uninformed one's sum the drawn local q, from which the first
    sweep's global step starts, as in memory."""
    # (the whole program's arrays with a unit axis stay the pilot's, and so do its sizes of the unit and member
    # dims; only the counts the global steps read, n_<unit> and n_<member>, are the whole data's: a ragged
    # Gaussian chain's q(τ) reads the steps' count n_T)
    whole, unit, member = streamer.whole, streamer.layout.unit, streamer.layout.member
    counts = [(d, streamer.data.sizes[d]) for d in (unit, member) if d is not None]
    streamer.locate(spans)
    for d, _ in counts:
        whole.state[ArrayNames.size(d)] = whole.sizes[d]
    held = {k: v for k, v in start.q.items() if k not in streamer.layout.local_latents} if start else None
    draws = streamer.local_draws(rng, spans)
    # (with an earlier result, its seeds are the pilot's: the result's q replace them; the data's variance is
    # still the whole data's, which scales the draws of local continuous latents)
    whole.rows_of = Rows(streamer.data, whole.sizes, streamer.rows_a_chunk, seeds=start is None)
    try:
        informed = whole.initialise(rng, None if start is None else type(start)(held, start.params, start.source),
                                    streamed=draws)
    finally:
        whole.rows_of = None
    for d, n in counts:
        whole.state[ArrayNames.size(d)] = n
    whole.stale = False
    return informed, (draws if streamer.keep or not informed else None)


def _finite(streamer: Streamer, value: float, what: str) -> None:
    if not math.isfinite(value):
        _refuse_overflowing_data(streamer.whole, value)
        raise FloatingPointError(f"the ELBO became {value} at {what}")


def _sweeps(streamer: Streamer, sweep: Callable[[], float], max_iter: int, tol: float, last: float | None,
            on_iteration: Callable[[int, float, float], None] | None, what: str) -> Fit:
    """Sweeps (``sweep()`` returns the ELBO after one) until the ELBO changes by at most ``tol`` (relative) or
    ``max_iter`` sweeps; a decrease beyond rounding is an internal fault, as in :func:`ppvi.infer.cavi.run_once`."""
    trace: list[float] = []
    converged = interrupted = False
    began = time.perf_counter()
    try:
        for it in range(1, max_iter + 1):
            value = sweep()
            _finite(streamer, value, f"sweep {it} of {what}")
            if last is not None and _worse(value, last):
                raise ElboDecrease(f"the ELBO decreased from {last!r} to {value!r} at sweep {it} of {what}")
            converged, last = record(trace, it, value, last, tol, on_iteration), value
            if converged:
                break
    except KeyboardInterrupt:
        interrupted = True
    value = trace[-1] if trace else (last if last is not None else math.nan)
    return Fit(streamer.whole, value, trace, len(trace), converged, interrupted, time.perf_counter() - began,
               order=[*streamer.layout.global_steps, *streamer.layout.local_steps])


def run_batch(streamer: Streamer, rng: np.random.Generator, max_iter: int, tol: float,
              on_iteration: Callable[[int, float, float], None] | None = None, start_: Start | None = None) -> Fit:
    """Batch CAVI, streamed: each sweep the global step, then a local pass over every unit."""
    _, (first,) = start(streamer, rng, start_)
    streamer.set_statistics([first.stats])

    def sweep() -> float:
        streamer.global_step()
        done = streamer.local_pass(0, streamer.total)
        streamer.set_statistics([done.stats])
        return streamer.elbo(done)
    return _sweeps(streamer, sweep, max_iter, tol, streamer.elbo(first) if start_ is not None else None,
                   on_iteration, "a streamed fit")


def run_memoized(streamer: Streamer, rng: np.random.Generator, chunks: int, max_iter: int, tol: float,
                 on_iteration: Callable[[int, float, float], None] | None = None, start_: Start | None = None) -> Fit:
    """Memoized VI, streamed (:mod:`ppvi.infer.memoized`): each memoized chunk's statistics kept, its local q in a
    scratch store on disk for the ELBO at the end of each sweep."""
    parts = [(int(u[0]), int(u[-1]) + 1) for u in split(streamer.total, chunks)]
    informed, fresh = begin(streamer, rng, start_, parts)
    streamer.open_kept()
    kept = streamer.kept
    scratch = kept or Store(tempfile.mkdtemp(prefix="ppvi-memoized-"), streamer.local_shapes())
    local = None if kept else scratch         # (kept local q are written to the kept store by every pass)
    # (a local latent whose entropy is a sum its kernel writes, a chain's: not found again from the stored q, so
    # each chunk's is kept from its last step, as its statistics are)
    summed = [v for v in streamer.layout.local_latents if ArrayNames.entropy(v) in streamer.layout.local_sums]
    try:
        # each chunk's statistics: of its local q at the start (the E-step's, or drawn), as in memory
        begun = [streamer.local_pass(a, b, local, terms=bool(summed), step=informed, fresh=fresh) for a, b in parts]
        kept_stats, kept_entropy = [d.stats for d in begun], [d.entropy for d in begun]
        streamer.set_statistics(kept_stats)

        def elbo() -> float:
            done = streamer.stored_terms(scratch)
            done.entropy.update({v: sum(h[v] for h in kept_entropy) for v in summed})
            return streamer.elbo(done)

        def sweep() -> float:
            for i, (a, b) in enumerate(parts):
                streamer.global_step()
                done = streamer.local_pass(a, b, local, terms=bool(summed))
                kept_stats[i], kept_entropy[i] = done.stats, done.entropy
                streamer.set_statistics(kept_stats)
            return elbo()
        return _sweeps(streamer, sweep, max_iter, tol, elbo() if start_ is not None else None, on_iteration,
                       "memoized VI")
    finally:
        if kept is None:
            scratch.close(remove=True)


def run_svi(streamer: Streamer, rng: np.random.Generator, settings,
            on_iteration: Callable[[int, float, float], None] | None = None, start_: Start | None = None) -> Fit:
    """Stochastic VI, streamed (:mod:`ppvi.infer.svi`): minibatches of ``settings.batch`` contiguous units, in a new
    random order of the minibatches every pass when ``settings.shuffle``.  Steps as :class:`ppvi.infer.svi.Stepper`'s."""
    from ppvi.infer.svi import check as check_svi, first_local_step

    if settings.local_tol is not None:
        raise _refuse(streamer.whole, "SVI(local_tol=…) repeats local steps that, here, one step settles")
    check_svi(streamer.whole, streamer.layout)
    informed, _ = start(streamer, rng, start_, terms=False)
    total = streamer.total
    batches = [(a, min(total, a + settings.batch)) for a in range(0, total, settings.batch)]
    streamer.locate(batches)
    trace: list[float] = []
    interrupted = False
    began = time.perf_counter()
    t = 0
    try:
        for _ in range(settings.passes):
            order = rng.permutation(len(batches)) if settings.shuffle else range(len(batches))
            for i in order:
                a, b = batches[i]
                # (kept local q: the first minibatch's are the start's, as in memory, not stepped again)
                first = t == 0 and not first_local_step(settings, streamer.layout, informed)
                done = streamer.local_pass(a, b, step=not (streamer.keep and first))
                bound = done.bound(streamer.layout.unit_factors) / (b - a)
                t += 1
                streamer.set_statistics([done.stats], total / (b - a))
                rho = settings.rate(t)
                for var in streamer.layout.global_steps:
                    _svi_step(streamer.whole, var, rho)
                change = bound - trace[-1] if trace else math.inf
                trace.append(bound)
                if on_iteration is not None:
                    on_iteration(len(trace), bound, change)
    except KeyboardInterrupt:
        interrupted = True
    done = streamer.local_pass(0, total)
    streamer.set_statistics([done.stats])
    return Fit(streamer.whole, streamer.elbo(done), trace, len(trace), False, interrupted, time.perf_counter() - began,
               order=[*streamer.layout.global_steps, *streamer.layout.local_steps])


def _svi_step(p: Program, var: str, rho: float) -> None:
    """A global's step ρ toward its batch update (as ppvi.infer.svi.Stepper.global_step)."""
    if var in p.plan.latents:
        p.update(var, damping=rho)
        return
    old = p.state[ArrayNames.variable(var)].copy()
    p.update(var)
    value = p.state[ArrayNames.variable(var)]
    value *= rho
    value += (1.0 - rho) * old


def finish(streamer: Streamer, chunking: Chunking) -> dict[str, np.ndarray]:
    """The local q of every unit under the final globals, written to .npy files and mapped read-only (kept
    local q: the fit's own, already on disk; after several starts, the best start's own, kept by
    :meth:`Streamer.hand_over`); the whole program's arrays and sizes are then the whole data's (its local q
    those maps)."""
    streamer.take_best()
    store = streamer.kept
    if store is None:
        store = Store(chunking.local_dir or tempfile.mkdtemp(prefix="ppvi-local-"), streamer.local_shapes())
        try:
            streamer.local_pass(0, streamer.total, store, terms=False)
        except BaseException:
            store.close(remove=chunking.local_dir is None)      # (a scratch folder: nothing else will remove it)
            raise
        store.close()
    else:
        store.close()
        streamer.kept = None
        if chunking.local_dir is not None and os.path.abspath(store.directory) != os.path.abspath(chunking.local_dir):
            os.makedirs(chunking.local_dir, exist_ok=True)       # (a start's store beside it: the same filesystem)
            for key in streamer.local_keys:
                os.replace(os.path.join(store.directory, key + ".npy"), os.path.join(chunking.local_dir, key + ".npy"))
            shutil.rmtree(store.directory, ignore_errors=True)
            store.directory = chunking.local_dir
    directory = store.directory
    # (units on another axis are stored first: the map's view with them back in place)
    mapped = {key: np.moveaxis(store.mapped(key), 0, streamer.layout.cut_axis(key)) for key in streamer.local_keys}
    # (a map stays valid after its file is removed: only the q's standard parameters are left on disk)
    if chunking.local_dir is None:
        shutil.rmtree(directory, ignore_errors=True)
    else:
        for key in mapped:
            if not ArrayNames.is_qparam(key):
                os.remove(os.path.join(directory, key + ".npy"))
    whole, layout = streamer.whole, streamer.layout
    for key, a in mapped.items():
        whole.state[key] = a
    whole.relink()
    whole.sizes[layout.unit] = whole.state[ArrayNames.size(layout.unit)] = streamer.total
    if layout.member is not None:
        whole.sizes[layout.member] = whole.state[ArrayNames.size(layout.member)] = streamer.data.sizes[layout.member]
    return mapped
