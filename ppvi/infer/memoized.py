"""Memoized VI (Hughes & Sudderth 2013): the data in chunks, each chunk's statistics kept between steps.

The units of the data (:mod:`ppvi.infer.chunks`) are split into C contiguous chunks.  Chunk c holds
S_c, the statistics of its current local q; the whole fit's statistics are S = Σ_c S_c (summed in chunk
order).  A *step* on chunk c is

1. the global step: every global q (and param) updated from S, as in a batch sweep;
2. the local step of chunk c: its local q updated under the new globals, S_c replaced.

Both are exact coordinate updates of the batch ELBO (S is exactly the statistics of every current local
q, and the local q of different units are independent given the globals), so the ELBO never decreases
and there is no learning rate.  A sweep is one step on every chunk in order; with C = 1 it is the batch
sweep of :func:`ppvi.infer.cavi.run_once`.  The globals move C times a sweep, each time from every
chunk's newest statistics: early sweeps gain more than a batch sweep does for the same local work.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from ppvi.infer.cavi import ElboDecrease, Fit, Growth, _refuse_overflowing_data, _worse, record
from ppvi.infer.chunks import Chunk, Layout, add_statistics, split
from ppvi.infer.program import Program

if TYPE_CHECKING:
    from ppvi.infer.warm import Start


@dataclass(frozen=True)
class Memoized:
    """Memoized VI over ``chunks`` chunks of the units (``ppvi run --memoized --chunks C``)."""

    chunks: int = 8

    def settings(self) -> dict:
        return {"name": "memoized", "chunks": self.chunks}

    def runner(self, on_step: Callable[[int, int, float], None] | None = None) -> Callable[..., Fit]:
        """:func:`run` with these settings, in the shape of :func:`ppvi.infer.cavi.run_once`."""
        def run_memoized(program: Program, rng: np.random.Generator, max_iter: int, tol: float,
                         on_iteration=None, damping=None, start: Start | None = None) -> Fit:
            return run(program, rng, self.chunks, max_iter, tol, on_iteration, start=start, on_step=on_step)
        return run_memoized


def run(program: Program, rng: np.random.Generator, chunks: int, max_iter: int, tol: float,
        on_iteration: Callable[[int, float, float], None] | None = None, start: Start | None = None,
        on_step: Callable[[int, int, float], None] | None = None) -> Fit:
    """Sweeps of memoized steps (the module's docstring) from a start, until the ELBO changes by at most
    ``tol`` (relative) in a sweep or ``max_iter`` sweeps.  ``on_step(sweep, chunk, elbo)``, if given, is
    called after every step with the ELBO then (an extra evaluation, for tests and diagnostics); a decrease
    beyond rounding is an internal fault (:class:`ppvi.infer.cavi.ElboDecrease`) naming the step."""
    layout = Layout.of(program)         # (a model that cannot be split is refused before any kernel runs)
    informed = program.initialise(rng, start)
    parts = [Chunk(program, layout, units) for units in split(layout.units(program), chunks)]
    for c in parts:
        if layout.local_sums and informed:
            # (the start's E-step again, chunk by chunk: the same local q, under the same globals, and each
            # chunk's own share of the local sums, which the whole's E-step left summed over every unit)
            c.local_step()
            continue
        c.program.stale = True
        c.program.refresh_statistics()
        c.scatter()
    add_statistics(program, layout, parts)
    trace: list[float] = []
    converged = interrupted = False
    began = time.perf_counter()
    last = program.elbo() if start is not None else None
    # (local sums not yet the chunks' own: the ELBO is the whole's only once every chunk has taken a step)
    kept = informed or not layout.local_sums
    step_last = program.elbo() if on_step is not None and kept else None
    growth = Growth(program)
    try:
        for it in range(1, max_iter + 1):
            for i, c in enumerate(parts):
                _global_step(program, layout, parts)
                c.local_step()
                add_statistics(program, layout, parts)
                if on_step is not None:
                    now = program.elbo()
                    if step_last is not None and _worse(now, step_last):
                        raise ElboDecrease(f"the ELBO went from {step_last!r} to {now!r} at the memoized step on "
                                           f"chunk {i} of sweep {it}")
                    on_step(it, i, now)
                    kept = kept or i == len(parts) - 1
                    step_last = now if kept else None
            growth.record()
            value = program.elbo()
            if not math.isfinite(value):
                _refuse_overflowing_data(program, value)
                growth.refuse()
                raise FloatingPointError(f"the ELBO became {value} at sweep {it} of memoized VI")
            if last is not None and _worse(value, last):
                growth.refuse()
                raise ElboDecrease(f"the ELBO decreased from {last!r} to {value!r} at sweep {it} of memoized VI")
            converged, last = record(trace, it, value, last, tol, on_iteration), value
            if converged:
                break
    except KeyboardInterrupt:
        interrupted = True
    first = last if start is not None else math.nan
    return Fit(program, trace[-1] if trace else first, trace, len(trace), converged, interrupted,
               time.perf_counter() - began, order=[*layout.global_steps, *layout.local_steps])


def _global_step(program: Program, layout: Layout, parts: list[Chunk]) -> None:
    """The global steps of the schedule on the whole program, from the summed statistics.  A step that
    changes what the statistics read (a param inside the likelihood's sum) makes every chunk's stale:
    they are summed again under the new value."""
    for var in layout.global_steps:
        program.update(var)
    if program.stale:
        for c in parts:
            c.program.stale = True
            c.program.refresh_statistics()
            c.scatter()
        add_statistics(program, layout, parts)
