"""Coordinate ascent on the ELBO (19.7): sweeps of the derived updates, convergence, restarts.

Sequential updates never lower the ELBO; a decrease beyond rounding, or an
ELBO that is no longer finite, is a bug in ppvi, reported as an internal fault
naming the update that caused it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from ppvi.codegen.plan import ArrayNames
from ppvi.errors import Diagnostic, PPVIError, Reporter
from ppvi.infer.program import Program
from ppvi.infer.start import symmetric_points
from ppvi.language.check import FLAT

if TYPE_CHECKING:
    from ppvi.infer.warm import Start


# Above this many bytes of q a sweep's starting state is not kept (it would double the memory of the
# local q); a decrease is then traced by one more sweep that checks the ELBO after every update.
SNAPSHOT_BYTES = 4 * 2 ** 20
_LOG_MAX = math.log(sys.float_info.max)


class ElboDecrease(RuntimeError):
    """The ELBO went down under a sequential update: an internal fault, never the user's."""


@dataclass
class Fit:
    program: Program
    elbo: float
    trace: list[float]
    iterations: int
    converged: bool
    interrupted: bool = False
    seconds: float = 0.0
    restart: int = 0
    state: dict = field(default_factory=dict)
    order: list[str] = field(default_factory=list)     # the steps of a sweep (Program.schedule)
    restart_elbos: list[float] = field(default_factory=list)     # every restart's final ELBO, in order
    warnings: list[Diagnostic] = field(default_factory=list)     # symmetric stationary points (ppvi.infer.start)
    restart_states: list[dict] = field(default_factory=list)     # every restart's final state, when q is small


def _rounding(a: float, b: float) -> float:
    return 1e-9 * max(1.0, abs(a), abs(b))


def _worse(now: float, last: float) -> bool:
    """now is not finite, or lower than last beyond rounding."""
    return not math.isfinite(now) or now < last - _rounding(now, last)


def _find_culprit(program: Program, before: dict, order: list[str]) -> str | None:
    """Replay the sweep from the saved state, one update at a time, to name the one that lowered the ELBO
    or made it NaN or infinite."""
    saved = program.snapshot()
    program.restore(before, copy=False)
    last = program.elbo()
    culprit = None
    for var in order:
        program.update(var)
        now = program.elbo()
        if _worse(now, last):
            culprit = var
            break
        last = now
    program.restore(saved, copy=False)
    return culprit


def _refuse_overflowing_data(program: Program, value: float) -> None:
    """A non-finite ELBO of data whose squares sum past the largest float (values × 10¹⁵⁴ and beyond): the data
    are not representable in the fit's statistics (Σ y², Σ y yᵀ), the user's error at the data's declaration."""
    for v in program.model.of_kind("data"):
        x = program.state.get(ArrayNames.variable(v.name))
        if not isinstance(x, np.ndarray) or x.dtype.kind != "f" or x.size == 0:
            continue
        big = float(np.max(np.abs(x)))
        if big > 0 and math.isfinite(big) and 2 * math.log(big) + math.log(x.size) > _LOG_MAX:
            raise Reporter(program.model.path, program.model.text).fail(
                f"data `{v.name}` are too large for double precision: values up to {big:.3g}, whose squares "
                f"sum past {sys.float_info.max:.3g}, made the ELBO {value}", v.span,
                "rescale the data (and the model's constants of the same scale), e.g. divide by a power of ten")


def _refuse_improper_energy(program: Program, culprit: str | None, it: int) -> None:
    """A real latent without a prior whose q went improper: the energy's coefficient of x², η₂, is not negative
    at these data (the derivation refuses it where η₂ is a number; here the data decide)."""
    prior = program.model.prior(culprit) if culprit is not None else None
    if prior is not None and prior.dist == FLAT and program.model.variables[culprit].support == "real":
        raise Reporter(program.model.path, program.model.text).fail(
            f"q(`{culprit}`) became improper at iteration {it}: with these data the energy terms' coefficient of "
            f"`{culprit}`² is not negative everywhere", program.model.variables[culprit].span,
            "exp(energy) must fall off in every direction: the quadratic form in the data must be negative definite")


# A param that never fell over the last RUNAWAY_SWEEPS sweeps, grew geometrically there (by RUNAWAY_RATE a sweep
# on average: a param converging slowly from near 0 grows too, but not by a steady factor) and by RUNAWAY_GROWTH
# since the first, diverges: the objective has no maximum along it.  Such a run ends when the expanded squares
# its value multiplies lose their digits (the ELBO then moves by rounding); that end is reported as what it is.
RUNAWAY_SWEEPS = 5
RUNAWAY_RATE = 1.5
RUNAWAY_GROWTH = 1e6


class Growth:
    """Each param's largest |entry| after the first sweep and after the last few."""

    def __init__(self, program: Program):
        self.program = program
        self.first: dict[str, tuple[float, tuple]] | None = None
        self.recent: list[dict[str, tuple[float, tuple]]] = []

    def record(self) -> None:
        now = self.program.param_magnitudes()
        if self.first is None:
            self.first = now
        self.recent = [*self.recent[-RUNAWAY_SWEEPS - 1:], now]

    def diverging(self, failed: bool) -> Diagnostic | None:
        """A param that diverged (above) over the last RUNAWAY_SWEEPS sweeps before the one that ``failed`` (its
        value is rounding), or over the last ones (a warning: max_iter stopped the fit)."""
        window = (self.recent[:-1] if failed else self.recent)[-RUNAWAY_SWEEPS - 1:]
        if len(window) <= RUNAWAY_SWEEPS or not self.first:
            return None
        for var, (start, _) in self.first.items():
            sizes = [m[var][0] for m in window]
            if (start > 0 and all(b >= a for a, b in zip(sizes, sizes[1:])) and math.isfinite(sizes[-1])
                    and sizes[-1] > RUNAWAY_GROWTH * start and sizes[-1] > RUNAWAY_RATE ** RUNAWAY_SWEEPS * sizes[0]):
                rate = (sizes[-1] / sizes[0]) ** (1 / RUNAWAY_SWEEPS)
                grew = (f"`{{entry}}` grew over the last {RUNAWAY_SWEEPS} sweeps, never falling (×{rate:.3g} a "
                        f"sweep, to {sizes[-1]:.3g}), until ")
                if failed:
                    return self.program.no_maximum(var, window[-1][var][1],
                                                   grew + "the objective's terms lost their digits: it diverges")
                return dataclasses.replace(self.program.no_maximum(
                    var, window[-1][var][1], grew + "max_iter stopped the fit", "seems to have no maximum"),
                    severity="warning")
        return None

    def refuse(self) -> None:
        """Raise the user's error where the fit failed, if a param diverged."""
        d = self.diverging(True)
        if d is not None:
            raise PPVIError([d])


def _checked_sweep(program: Program, order: list[str]) -> str | None:
    """One more sweep with the ELBO after every update: the first update that lowers it, if any."""
    last = program.elbo()
    for var in order:
        program.update(var)
        now = program.elbo()
        if _worse(now, last):
            return var
        last = now
    return None


def record(trace: list[float], it: int, value: float, last: float | None, tol: float,
           on_iteration: Callable[[int, float, float], None] | None) -> bool:
    """Add a sweep's ELBO to the trace and report it; whether it changed by at most ``tol`` (relative)."""
    change = value - last if last is not None else math.inf
    trace.append(value)
    if on_iteration is not None:
        on_iteration(it, value, change)
    return tol > 0 and abs(change) <= tol * max(1.0, abs(value))


def run_once(program: Program, rng: np.random.Generator, max_iter: int, tol: float,
             on_iteration: Callable[[int, float, float], None] | None = None, damping: float | None = None,
             snapshot_bytes: int | None = None, start: Start | None = None,
             steps: Callable[[list[str]], list[str]] | None = None) -> Fit:
    """Sweeps from a start (random, or ``start``) until the ELBO changes by at most ``tol`` relative (never
    with ``tol`` = 0) or ``max_iter`` sweeps.  From an earlier result the first sweep is measured against
    the ELBO of the start itself: a converged result converges again after one sweep.  ``steps`` picks the
    steps of a sweep from the schedule (a prediction's: the local ones, ppvi.infer.given)."""
    program.initialise(rng, start)
    keep = program.mutable_bytes() <= (SNAPSHOT_BYTES if snapshot_bytes is None else snapshot_bytes)
    order = program.schedule(damped=damping is not None)
    order = order if steps is None else steps(order)
    trace: list[float] = []
    converged = interrupted = False
    began = time.perf_counter()
    it = 0
    last = program.elbo() if start is not None else None
    growth = Growth(program)
    try:
        for it in range(1, max_iter + 1):
            before = program.snapshot() if keep and damping is None else None
            for var in order:
                program.update(var, damping)
            growth.record()
            value = program.elbo(after_sweep=damping is None)
            if not math.isfinite(value):
                _refuse_overflowing_data(program, value)
                growth.refuse()
                culprit = _find_culprit(program, before, order) if before is not None else None
                _refuse_improper_energy(program, culprit, it)
                raise FloatingPointError(f"the ELBO became {value} at iteration {it}" +
                                         (f" after the update of q({culprit})" if culprit is not None else
                                          "; no single update made it so in a replay of the sweep"))
            # Only the sequential schedule guarantees ascent; damped parallel steps need not (19.4.1).
            if damping is None and last is not None and value < last - _rounding(value, last):
                growth.refuse()
                culprit = _find_culprit(program, before, order) if before is not None else \
                    _checked_sweep(program, order)
                blame = (f"the update of q({culprit}) lowered it" if culprit is not None else
                         "no single update lowered it again in a replay of the sweep")
                raise ElboDecrease(f"the ELBO decreased from {last!r} to {value!r} at iteration {it}; {blame}")
            converged, last = record(trace, it, value, last, tol, on_iteration), value
            if converged:
                break
    except KeyboardInterrupt:
        interrupted = True
    first = last if start is not None else math.nan      # (no sweep from a given start: its ELBO)
    diverging = None if converged or interrupted else growth.diverging(False)
    return Fit(program, trace[-1] if trace else first, trace, len(trace), converged, interrupted,
               time.perf_counter() - began, order=order, warnings=[diverging] if diverging else [])


_blas_lock = threading.Lock()
_blas_fits = [0, None]       # fits running, and the limiter the first of them set (restored by the last)


@contextlib.contextmanager
def _one_blas_thread():
    """BLAS on one thread while any fit of this process runs (a process-wide setting: fits that overlap
    in threads share one limit, restored when the last of them ends)."""
    from threadpoolctl import threadpool_limits

    with _blas_lock:
        if _blas_fits[0] == 0:
            _blas_fits[1] = threadpool_limits(1, user_api="blas")
        _blas_fits[0] += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_fits[0] -= 1
            if _blas_fits[0] == 0:
                _blas_fits[1].restore_original_limits()
                _blas_fits[1] = None


def better(result: Fit, best: Fit | None) -> bool:
    """Whether a restart's fit is kept over the best so far: a higher final ELBO (or the first, or a NaN best)."""
    return best is None or result.elbo > best.elbo or math.isnan(best.elbo)


def fit(program: Program, seed: int = 0, max_iter: int = 1000, tol: float = 1e-8, restarts: int = 1,
        on_iteration: Callable[[int, float, float], None] | None = None, damping: float | None = None,
        start: Start | None = None, runner: Callable[..., Fit] | None = None) -> Fit:
    """Run CAVI ``restarts`` times from different random starts (the first from ``start``, an earlier result,
    if given); keep the best final ELBO.  A best fit that sits at a symmetric stationary point gets a warning
    (:func:`ppvi.infer.start.symmetric_points`).

    BLAS runs on one thread meanwhile: kernels call it inside their parallel chunks (the blocked local
    step's products), where threads of its own would oversubscribe the cores (a mixture at D = 100 is 20%
    slower) and make the sums depend on its thread count.

    ``runner`` replaces :func:`run_once` (same arguments): memoized or stochastic VI
    (:mod:`ppvi.infer.memoized`, :mod:`ppvi.infer.svi`) with these restarts.
    """
    runner = run_once if runner is None else runner
    best: Fit | None = None
    elbos: list[float] = []
    states: list[dict] = []
    with _one_blas_thread():
        for r in range(max(1, restarts)):
            rng = np.random.default_rng([seed, r])
            try:
                result = runner(program, rng, max_iter, tol, on_iteration, damping,
                                  start=start if r == 0 else None)
                if restarts > 1:
                    # (with one start there is nothing to go back to) handed over, not copied: the next start
                    # gives the program new arrays, so at most two q are held, the best one's and the current
                    result.state = program.snapshot(copy=False)
                    if program.mutable_bytes() <= SNAPSHOT_BYTES:
                        states.append(program.snapshot())    # (ArviZ's chains: cheap only while q is small)
            except KeyboardInterrupt:
                # before a later start's first sweep (its start, k-means++ and E-step, takes time): keep the best
                if best is None:
                    raise
                best.interrupted = True
                break
            result.restart = r
            elbos.append(result.elbo)
            if better(result, best):
                best = result
            if result.interrupted:
                # The fit as a whole was stopped (the later starts never ran), whichever start is best so far.
                best.interrupted = True
                break
    if best.state:
        program.restore(best.state, copy=False)
        best.state = {}     # the program's own now: one q, not two, stays behind the result
    best.restart_elbos = elbos
    best.restart_states = states if len(states) == len(elbos) else []
    best.warnings = [*program.notes, *best.warnings, *symmetric_points(program, elbos, tol)]
    return best
