"""Stochastic VI (Hoffman, Blei, Wang & Paisley 2013): natural-gradient steps on the global q from minibatches.

The units of the data (:mod:`ppvi.infer.chunks`: LDA's documents, a mixture's points) are visited in
minibatches B of ``batch`` units.  Step t = 1, 2, … on minibatch B:

1. the local step: the local q of B's units under the current global q (the same generated kernels as a
   batch sweep; with ``local_tol``, repeated until no local q's parameter moves by more than it);
2. the minibatch's bound: its share of the ELBO with the globals fixed (the units' factor terms and
   local entropies; :func:`ppvi.infer.given.scores` summed), per unit, *before* the globals see B: on
   the first pass it is a held-out bound of unseen units (progressive validation), reported as the
   progress instead of a monotone ELBO;
3. the global step: the statistics of B scaled by N/|B| (N units in all) stand for the whole data's;
   every global q takes a step ρ_t in its natural parameters toward the q a batch update would give from
   them,  λ ← (1 − ρ_t) λ + ρ_t λ̂,  which is the natural gradient step of Hoffman et al. (eq. 26 ff.)
   (the damped kernel of 19.4.1, with α = ρ_t); a param, and a global MAP latent, by stepwise EM:
   θ ← (1 − ρ_t) θ + ρ_t θ̂ with θ̂ the M-step's maximiser from the scaled statistics.

The schedule is Hoffman et al.'s ρ_t = (τ + t)^(−κ), t = 1 at the first step (their Algorithm 1:
λ⁽ᵗ⁾ = (1 − ρ_t) λ⁽ᵗ⁻¹⁾ + ρ_t λ̂).  κ ∈ (0.5, 1] and τ ≥ 0 satisfy Robbins–Monro (Σ ρ_t = ∞, Σ ρ_t² < ∞);
κ = 0 is a step of 1 (with one batch of all the data: the batch sweep, step by step).  scikit-learn's
LatentDirichletAllocation(learning_method="online") is this schedule with learning_offset = τ and
learning_decay = κ (its n_batch_iter_ starts at 1); Hoffman's 2010 onlineldavb.py counts from 0, so its
tau0 is τ + 1.

After the last step, one local pass over every unit (globals fixed) gives the result its local q and
its ELBO, a true bound of the whole data.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from ppvi.codegen.plan import ArrayNames, PointPlan
from ppvi.errors import Diagnostic, PPVIError
from ppvi.infer.cavi import Fit
from ppvi.infer.chunks import Chunk, Layout, add_local_sums, split
from ppvi.infer.program import Program

if TYPE_CHECKING:
    from ppvi.infer.warm import Start


@dataclass(frozen=True)
class SVI:
    """Stochastic VI settings (``ppvi run --svi --batch B --kappa K --tau T --passes P``)."""

    batch: int                     # units per minibatch
    kappa: float = 0.7             # ρ_t = (τ + t)^(−κ)
    tau: float = 1.0
    passes: int = 10               # passes over the units
    shuffle: bool = True           # each pass in a new random order (else the units' own order)
    local_tol: float | None = None     # repeat the local step until the local q moves less (None: once)

    def rate(self, t: int) -> float:
        """ρ_t = (τ + t)^(−κ), t = 1, 2, …"""
        return (self.tau + t) ** -self.kappa

    def steps(self, program: Program) -> int:
        """How many steps a fit of ``program`` takes: passes × minibatches a pass."""
        from ppvi.infer.given import Roles

        unit = Roles.of(program.model, program.plan).unit
        return self.passes * -(-program.sizes[unit] // self.batch) if unit else 0

    def settings(self) -> dict:
        return {"name": "svi", "batch": self.batch, "kappa": self.kappa, "tau": self.tau, "passes": self.passes,
                "shuffle": self.shuffle, "local_tol": self.local_tol,
                "rate": "rho_t = (tau + t)^(-kappa), t = 1, 2, ..."}

    def runner(self) -> Callable[..., Fit]:
        """:func:`run` with these settings, in the shape of :func:`ppvi.infer.cavi.run_once`."""
        def run_svi(program: Program, rng: np.random.Generator, max_iter: int, tol: float,
                    on_iteration=None, damping=None, start: Start | None = None) -> Fit:
            return run(program, rng, self, on_iteration, start=start)
        return run_svi


def check(program: Program, layout: Layout, what: str = "stochastic VI",
          hint: str = "fit this model by batch or memoized VI (--memoized)") -> None:
    """A model SVI (or ``what``) can fit: its global steps read the data only through the statistics, and no
    param is learnt by gradient steps on the whole ELBO."""
    plan = program.plan
    for var in layout.global_steps:
        info = plan.entry(var)
        if isinstance(info, PointPlan) and info.method == "gradient":
            raise PPVIError(Diagnostic(
                f"{what} cannot learn param `{var}`: it has no closed-form M-step (ppvi takes gradient "
                "steps on the whole ELBO for it)", program.model.path, hint=hint))
        kernel = info.damped if var in plan.latents else info.update
        direct = [a for a in kernel.args if layout.cut_axis(a) is not None and not ArrayNames.is_statistic(a)]
        if direct:
            raise PPVIError(Diagnostic(
                f"{what} needs the update of `{var}` to read the data through sums over the units, but it "
                f"reads {', '.join(sorted(direct))} element by element", program.model.path, hint=hint))


def first_local_step(settings: SVI, layout: Layout, informed: bool) -> bool:
    """Whether the first step takes a local step.  It begins where a batch sweep does, with the global step from
    the start's local q: the E-step's under the start's globals when the start is informed (taken again only to
    converge, ``local_tol``, or for a chunk's own local sums, :class:`ppvi.infer.chunks.Layout`: the same q),
    else the random start's, read as they are, which breaks the symmetry of exchangeable globals (a local step
    under globals all alike would leave every unit's q alike, and every component's q with them)."""
    return informed and (settings.local_tol is not None or bool(layout.local_sums))


@dataclass
class Stepper:
    """The state of SVI between steps: the whole program (global q, and the local q the steps last left),
    the step count t and the settings; :meth:`step` takes one minibatch."""

    program: Program
    layout: Layout
    settings: SVI
    t: int = 0

    def step(self, units: np.ndarray, total: int, local: bool = True) -> float:
        """One step on the minibatch ``units`` of ``total`` units in all; returns its bound per unit.
        ``local=False``: their local q are the start's (:func:`first_local_step`), not stepped."""
        chunk = Chunk(self.program, self.layout, units)
        if local:
            chunk.local_step(self.settings.local_tol)
        else:
            chunk.program.refresh_statistics()
            chunk.scatter()
        bound = chunk.bound() / max(1, chunk.size)
        self.t += 1
        self.global_step(chunk, total / max(1, chunk.size), self.settings.rate(self.t))
        return bound

    def global_step(self, chunk: Chunk, scale: float, rho: float) -> None:
        """The whole program's statistics from the chunk's, times ``scale``; then a step ρ of every global."""
        p = self.program
        for key in self.layout.global_stats:
            np.multiply(chunk.program.state[key], scale, out=p.state[key])
        p.stale = False
        self.move(rho)

    def move(self, rho: float, before: Callable[[str], None] | None = None) -> None:
        """A step ρ of every global from the program's statistics; ``before(var)``, if given, ahead of each
        update (the Dask engine sums statistics a param made stale there: ppvi.infer.dask_engine)."""
        p = self.program
        for var in self.layout.global_steps:
            if before is not None:
                before(var)
            if var in p.plan.latents:
                p.update(var, damping=rho)
            else:
                old = p.state[ArrayNames.variable(var)].copy()
                p.update(var)
                value = p.state[ArrayNames.variable(var)]
                value *= rho
                value += (1.0 - rho) * old
        p.stale = True      # (the whole program's statistics are the minibatch's, scaled: not its own)

    def finish(self, batch: int) -> None:
        """The local q of every unit under the final globals, chunk by chunk; the statistics of all."""
        parts = [Chunk(self.program, self.layout, units) for units in
                 split(self.layout.units(self.program), -(-self.layout.units(self.program) // max(1, batch)))]
        for c in parts:
            c.local_step(self.settings.local_tol)
        add_local_sums(self.program, self.layout, parts)
        self.program.stale = True
        self.program.refresh_statistics()


def run(program: Program, rng: np.random.Generator, settings: SVI,
        on_iteration: Callable[[int, float, float], None] | None = None, start: Start | None = None) -> Fit:
    """``settings.passes`` passes of SVI steps (the module's docstring) from a start; the trace holds every
    step's minibatch bound per unit, the Fit's ELBO is the whole data's after the final local pass."""
    layout = Layout.of(program)         # (a model that cannot be split is refused before any kernel runs)
    fresh = program.initialise(rng, start)
    check(program, layout)
    stepper = Stepper(program, layout, settings)
    total = layout.units(program)
    trace: list[float] = []
    interrupted = False
    began = time.perf_counter()
    try:
        for _ in range(settings.passes):
            order = rng.permutation(total) if settings.shuffle else np.arange(total)
            for b in range(0, total, settings.batch):
                local = stepper.t > 0 or first_local_step(settings, layout, fresh)
                bound = stepper.step(np.sort(order[b:b + settings.batch]), total, local=local)
                change = bound - trace[-1] if trace else math.inf
                trace.append(bound)
                if on_iteration is not None:
                    on_iteration(len(trace), bound, change)
        stepper.finish(settings.batch)
    except KeyboardInterrupt:
        interrupted = True
        stepper.finish(settings.batch)
    value = program.elbo()
    return Fit(program, value, trace, len(trace), False, interrupted, time.perf_counter() - began,
               order=[*layout.global_steps, *layout.local_steps])


@dataclass
class Stream:
    """SVI over batches that arrive one at a time (``Model.partial_fit``): the global q and params (arrays
    kept between batches, with their stored natural parameters), the sizes of the dims they have, the step
    count and the bounds so far."""

    settings: SVI
    sizes: dict[str, int]          # the dims of the global state (a batch must agree)
    arrays: dict[str, np.ndarray]  # the global state: q of global latents, their stored η, params
    t: int = 0
    bounds: list[float] | None = None
    labels: dict[str, tuple[str, ...]] = field(default_factory=dict)   # the first batch's maps of held dims (io.labels)

    @staticmethod
    def global_keys(program: Program, layout: Layout) -> list[str]:
        plan = program.plan
        keys = []
        for var in layout.global_steps:
            if var in plan.latents:
                keys += list(plan.latents[var].state)
                keys += [k for k in program.state if ArrayNames.is_natural_of(k, var)]
            else:
                keys.append(ArrayNames.variable(var))
        return keys

    def step(self, program: Program, total: int, rng: np.random.Generator) -> Fit:
        """One SVI step on ``program`` (a batch of units, bound to data, not yet started) toward a total of
        ``total`` units; then the batch's local q under the new globals.  The Fit's ELBO is the batch's bound
        per unit before the step (held out), its trace every batch's so far."""
        began = time.perf_counter()
        program.initialise(rng)
        layout = Layout.of(program)
        check(program, layout)
        if self.t:
            for key, value in self.arrays.items():
                program.state[key] = value
            program.relink()
        stepper = Stepper(program, layout, self.settings, self.t)
        units = np.arange(layout.units(program))
        bound = stepper.step(units, total)
        self.t = stepper.t
        self.arrays = {k: program.state[k] for k in self.global_keys(program, layout)}
        Chunk(program, layout, units).local_step(self.settings.local_tol)
        self.bounds = [*(self.bounds or []), bound]
        return Fit(program, bound, list(self.bounds), self.t, False, False, time.perf_counter() - began,
                   order=[*layout.global_steps, *layout.local_steps])
