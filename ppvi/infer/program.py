"""A compiled model bound to data: the state arrays, their initial values, and the kernels.

The state is one dict from mangled names (see :mod:`ppvi.codegen.plan`) to
arrays: data, constants, params, and every q's parameters, moments and
entropies.  Moments that equal a parameter (⟨x⟩ of a Normal is its mean) are
the same array under two names.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from ppvi.codegen.plan import ArrayNames, KernelSpec, LatentPlan, Plan, PointPlan
from ppvi.errors import Diagnostic, PPVIError, Reporter
from ppvi.families.registry import unit_of
from ppvi.families.unit import LOG_2PI
from ppvi.infer.colouring import two_colouring
from ppvi.infer.start import (NotEvaluable, Seed, Structure, analyse, prior_arguments, prior_draw, prior_moments,
                              seeded)
from ppvi.io.data import Bound
from ppvi.language import consts
from ppvi.language.check import CheckedModel

if TYPE_CHECKING:
    from ppvi.infer.streamed import LocalDraws
    from ppvi.infer.warm import Start


ROWS_FROM = 2 ** 17
"""The data plate's size from which a latent's rows kernel replaces its update, and the ELBO's chunked kernel the
ELBO's (codegen.scatter).  Both run on threads: each call opens a parallel region, which costs tens of
microseconds, and far more where the threads outnumber the cores (two test workers on two cores each start a
pool); at 10⁶ ratings a call takes a few tenths of a second.  Below this size the serial kernel, whose sums are the
same, is as fast or faster, and the parallel one (seconds to compile) is never compiled."""


def _shape(shape: list, sizes: dict[str, int]) -> tuple[int, ...]:
    return tuple(sizes[s] if isinstance(s, str) else int(s) for s in shape)


def _check_spd(model: CheckedModel, name: str, m: np.ndarray) -> None:
    """A matrix whose inverse or log-determinant the model needs must be symmetric positive definite."""
    sym = np.allclose(m, np.swapaxes(m, -1, -2), rtol=1e-10, atol=1e-12 * np.abs(m).max(initial=0.0))
    if sym and np.all(np.linalg.eigvalsh(m) > 0):
        return
    v = model.variables[name]
    raise Reporter(model.path, model.text).fail(
        f"{v.kind} `{name}` is not symmetric positive definite", v.span,
        f"`{name}` stands where ppvi needs a matrix's inverse or log-determinant (a MvNormal's precision or "
        f"cov, a Wishart's scale)" + (": check its values in the data file" if v.kind == "data" else ""))


@dataclass
class Program:
    model: CheckedModel
    module: ModuleType
    sizes: dict[str, int]
    state: dict[str, np.ndarray] = field(default_factory=dict)
    given: dict[str, np.ndarray] = field(default_factory=dict)     # params the user gave: the start of EM
    stale: bool = True     # a local variable changed since the statistics were last summed (codegen.statistics)
    structure: Structure | None = None     # what the start reads off the model (ppvi.infer.start.analyse)
    clamped: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)   # var -> (data, missing)
    # the whole data's rows when they are read in chunks (ppvi.infer.streamed.Rows): a streamed fit's pilot
    # seeds its start from them (k-means++, atoms, the data's variance) as an in-memory program from its data
    rows_of: object | None = None
    # latents whose coupling graph the data made bipartite: their sweeps update two colours at a time
    coloured: set[str] = field(default_factory=set)
    notes: list[Diagnostic] = field(default_factory=list)     # what the fit says of its schedule (warnings)
    # index data -> the array the rows kernels' order was sorted from when the data were bound (a chunk's
    # program, which cuts the data, has none: its updates stay serial)
    sorted_from: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def plan(self) -> Plan:
        return self.module.PLAN

    # ---------------------------------------------------------------- setup
    @classmethod
    def build(cls, model: CheckedModel, module: ModuleType, bound: Bound) -> "Program":
        if not set(bound.missing) <= set(module.PLAN.missing):
            # (the data's missing entries are latents only in the model ppvi.language.missing.imputing makes)
            raise ValueError(f"the data miss entries of {sorted(bound.missing)}, the kernels impute "
                             f"{sorted(module.PLAN.missing)}: build from imputing(model, bound.missing)")
        p = cls(model, module, dict(bound.sizes), structure=analyse(model, bound.arrays))
        p._bind_inputs(bound)
        return p

    def _bind_inputs(self, bound: Bound) -> None:
        values: dict[str, np.ndarray] = {}
        for v in self.model.variables.values():
            shape = _shape(list(v.shape), self.sizes)
            if v.kind == "const":
                values[v.name] = consts.fill(v.value, shape, self.sizes, values, span=v.span,
                                             rep=Reporter(self.model.path, self.model.text))
                self.state[ArrayNames.variable(v.name)] = values[v.name].reshape(shape or (1,))
            elif v.kind in ("data", "param") and v.name in bound.arrays:
                self.state[ArrayNames.variable(v.name)] = bound.arrays[v.name].reshape(shape or (1,))
                if v.kind == "param":
                    self.given[v.name] = self.state[ArrayNames.variable(v.name)].copy()
        for name, (kind, const) in self.plan.derived.items():
            # the inverse or log-determinant of a const or data matrix (a stack of them under a plate), or the
            # shift a Normal's data are read around (codegen.centre: any value is exact, their mean is accurate)
            m = values[const] if const in values else bound.arrays.get(const)
            if kind == "shift":
                finite = np.zeros(0) if m is None else m[np.isfinite(m)]
                self.state[name] = np.array([float(finite.mean()) if finite.size else 0.0])
                continue
            _check_spd(self.model, const, m)
            if kind == "inv":
                self.state[name] = np.ascontiguousarray(np.linalg.inv(m))
            else:
                self.state[name] = np.atleast_1d(np.linalg.slogdet(m)[1])
        for n, size in self.sizes.items():
            self.state[ArrayNames.size(n)] = size
        for var, mask in self.plan.missing.items():
            # data with missing entries (ppvi.language.missing): their kernels finish q only where mask is set
            where = bound.missing.get(var, np.zeros(bound.arrays[var].shape, dtype=bool))   # (none missing here)
            self.clamped[var] = (bound.arrays[var], where)
            self.state[mask] = np.ascontiguousarray(where.reshape(bound.arrays[var].shape or (1,)))
        block = self.plan.block
        if block:
            # the block's groups: element t belongs to group by[t]; members of d are order[start[d]:start[d+1]]
            self._bind_order(block.by, self.sizes[block.groups])
        for by in self.plan.orders:
            # the data sorted by the rows of index data `by` (a rows kernel's, codegen.scatter), as a block's
            v = self.model.variables[by]
            self._bind_order(by, v.support_dim if isinstance(v.support_dim, int) else self.sizes[v.support_dim])
            self.sorted_from[by] = self.state[ArrayNames.variable(by)]
        for name, shape in (self.plan.stats.arrays if self.plan.stats else {}).items():
            self.state[name] = np.zeros(_shape(shape, self.sizes))
        for var, info in self.plan.latents.items():
            if info.colour is not None and info.pattern:
                self._colour(var, info)
            elif info.colour is not None:       # (colours known when the kernels were written: Σ indices mod 2)
                self.coloured.add(var)

    def _colour(self, var: str, info: LatentPlan) -> None:
        """Two colours for var's elements (ppvi.infer.colouring), or a warning that its sweeps stay element by
        element (Gauss–Seidel) because the data's coupling graph has an odd cycle."""
        elements, starts = two_colouring([self.state[a] for a in info.pattern])
        if elements is not None:
            self.state[ArrayNames.constant("colour", var)] = elements
            self.state[ArrayNames.constant("colours", var)] = starts
            self.coloured.add(var)
            return
        names = ", ".join(f"`{ArrayNames.variable_of(a)}`" for a in info.pattern)
        i, j = starts
        self.notes.append(dataclasses.replace(Reporter(self.model.path, self.model.text).make(
            f"the graph of {names} is not bipartite (elements {i} and {j} of `{var}` close an odd cycle): "
            f"q({var}) is updated element by element (Gauss–Seidel), not two colours at a time",
            self.model.variables[var].span, "the fit is exact coordinate ascent either way; two colours only "
            "run faster, on a grid or any other graph without odd cycles"), severity="warning"))

    def initialise(self, rng: np.random.Generator, start: Start | None = None,
                   streamed: LocalDraws | None = None) -> bool:
        """A valid q for every latent and a value for every param (the rules: :mod:`ppvi.infer.start`).

        Broad defaults for the global latents, random draws for the continuous ones that are local or
        multiplied by another latent, k-means++ for component means, params given, seeded from the data or
        at a default; then ``start`` (an earlier result) overrides what it holds.  A start informed by the
        data or the user is followed by an E-step: the local latents it does not hold, updated for it.
        Returns whether it was (the local q are then the E-step's for the global q as they are).
        ``streamed``: the program is a streamed fit's pilot (docs/scale.md, "The start"): at each local latent's
        turn ``rng`` moves past every unit's draws, chunk by chunk, and ``streamed`` notes where each chunk's
        began (the chunks draw them again there); the pilot's own are the first chunk's.
        """
        canonical = self.structure.order
        for var in canonical.sort(self.plan.latents):
            # (in the canonical order, as everything that draws from rng: the same start however the model is written)
            info = self.plan.latents[var]
            if streamed is not None and var in streamed.order:
                units = self._units(var)
                self.start_latent(var, streamed.skip("start", var, rng,
                                                     lambda sizes, g: latent_start(info, var, sizes, g, units)))
            else:
                self.start_latent(var, rng)
        informed = bool(self.given)
        params = [self.model.variables[n] for n in canonical.sort(v.name for v in self.model.of_kind("param"))]
        for v in params:
            value = self.given.get(v.name)
            self.state[ArrayNames.variable(v.name)] = value.copy() if value is not None else _param_default(
                v, _shape(list(v.shape), self.sizes), rng)
        for v in params:
            # after the defaults: an atom's scale reads the prior of the latent it multiplies, which may read params
            if v.name not in self.given and v.name in self.structure.seeds:
                value = self._seeded(self.structure.seeds[v.name], rng)
                if value is not None:
                    self.state[ArrayNames.variable(v.name)] = value
                    informed = True
        for var in self.plan.point:
            v = self.model.variables[var]
            self.state[ArrayNames.variable(var)] = np.zeros(_shape(list(v.shape), self.sizes) or (1,))
        for var in canonical.sort(self.plan.latents):
            # parents first: a prior that reads another latent reads its start
            if unit_of(self.plan.latents[var].family).located:
                informed = self._start_continuous(var, rng, streamed) or informed
            elif var in self.structure.seeds and self.structure.seeds[var].kind == "proportions":
                informed = self._start_proportions(var, rng) or informed
        for k in [k for k in self.state if ArrayNames.is_natural(k)]:
            del self.state[k]      # stored η belong to the previous start
        self.stale = True
        held: set[str] = set()
        if start is not None:
            from ppvi.infer.warm import apply

            held = apply(self, start)
            informed = True
        self.clamp()
        for var, info in self.plan.latents.items():
            if info.pair is not None:        # (located or held as a Normal: the pair's entropy)
                self._pair_start_entropy(var, info.pair)
        if informed:
            # Start from the given, seeded or held values: first the local latents' q for them (an E-step).
            block = self.plan.block
            for var in self.schedule():
                info = self.plan.latents.get(var)
                local = (info is not None and info.scope == "local") or (block and var == block.name) or \
                    (var in self.plan.points and self.plan.points[var].kind == "point")
                if local and var not in held:
                    self.update(var)
        return informed

    def _pair_start_entropy(self, mu: str, lam: str) -> None:
        """A Normal–Gamma pair's start as the pair's q: N(μ | m, (βλ)⁻¹) with β = 1/(sd²⟨λ⟩) (so that q(μ)'s sd
        is (β⟨λ⟩)^-½, as the pair's step leaves it), whose entropy averaged over q(λ) is
        ½ (1 + log 2π) − ½ log β − ½ ⟨log λ⟩ (docs/derivation.md, "A Normal–Gamma pair")."""
        sd = self.state[ArrayNames.qparam(mu, "sd")]
        e_lam, e_log = self.state[ArrayNames.moment(lam, "x")], self.state[ArrayNames.moment(lam, "logx")]
        self.state[ArrayNames.entropy(mu)][...] = 0.5 * (1 + LOG_2PI + np.log(sd * sd * e_lam) - e_log)

    def start_latent(self, var: str, rng: np.random.Generator) -> None:
        """var's q at its start (broad, or drawn from ``rng``), in new arrays of the program's sizes."""
        self.state.update(latent_start(self.plan.latents[var], var, self.sizes, rng, self._units(var)))

    def _units(self, var: str) -> frozenset[str]:
        """The dims of a local latent's units (the data plate; with a group block its groups too), else none."""
        if var not in self.structure.local:
            return frozenset()
        block = self.plan.block
        return frozenset({self.structure.plate, block.groups if block else None} - {None})

    def _units_axis(self, var: str) -> int:
        """The axis of var's q's mean along its units (0 if it has none)."""
        units = self._units(var)
        shape = self.plan.latents[var].state[ArrayNames.qparam(var, "mean")]
        return next((i for i, e in enumerate(shape) if e in units), 0)

    def clamp(self) -> None:
        """q of the observed entries of data with missing entries: a point mass at the datum (⟨x⟩ = x,
        ⟨x²⟩ = x², a one-hot row, H = 0).  The kernels never finish those entries again."""
        for var, (values, missing) in self.clamped.items():
            unit = unit_of(self.plan.latents[var].family)
            known = unit.trials or unit.given
            if known:
                # a count's total (or a NegativeBinomial's r) is known data, the same at every entry: q's n
                # (ppvi.families.binomial, negative_binomial); the other arguments are not evaluated (a
                # probability read at a mixture's label has no value here)
                n = prior_arguments(self.model, var, self.sizes, self._value, frozenset({known}))[1][known]
                target = self.state[ArrayNames.qparam(var, known)]
                target[...] = n.reshape(target.shape)
            unit.clamp(self.state, var, values, missing)
        self.stale = self.stale or bool(self.clamped)

    def _value(self, name: str) -> np.ndarray:
        """A variable's current value in its declared shape (a latent's: the mean of its q), for
        :func:`ppvi.infer.start.evaluate`."""
        v = self.model.variables[name]
        shape = _shape(list(v.shape), self.sizes)
        info = self.plan.latents.get(name)
        if info is None:
            key = ArrayNames.variable(name)
        elif not unit_of(info.family).expectation:
            raise NotEvaluable(name)       # (labels: no mean)
        else:
            key = ArrayNames.owned(name, *unit_of(info.family).expectation)
        if key not in self.state:
            raise NotEvaluable(name)       # (a param not started yet)
        return self.state[key].reshape(shape)

    def _prior(self, var: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(E[x], Var[x]) under var's prior at the current values, entrywise (MvNormal: covariances)."""
        try:
            return prior_moments(*prior_arguments(self.model, var, self.sizes, self._value))
        except (NotEvaluable, np.linalg.LinAlgError, ValueError, IndexError):
            return None

    def _data_variance(self, var: str) -> float | None:
        """The largest variance of the data whose likelihood reads var (its scale where the prior is flat)."""
        with np.errstate(over="ignore", invalid="ignore"):     # (data × 10¹⁵⁴: inf, skipped below)
            v = [float(np.var(self.state[ArrayNames.variable(d)])) if self.rows_of is None or
                 d not in self.rows_of.names else self.rows_of.variance(d)
                 for d in self.structure.data_of.get(var, ())]
        v = [x for x in v if math.isfinite(x) and x > 0]
        return max(v) if v else None

    def _seeded(self, seed: Seed, rng: np.random.Generator) -> np.ndarray | None:
        """seed.var's start from its data: k-means++ centres, or atoms scaled to the data's power."""
        x = self.state[ArrayNames.variable(seed.data)].reshape(
            _shape(list(self.model.variables[seed.data].shape), self.sizes))
        if self.rows_of is not None and seed.data in self.rows_of.seeded and seed.row_axis == 0:
            x = self.rows_of.of(seed.data)       # (the whole data's rows, read in chunks)
        shape = _shape(list(self.model.variables[seed.var].shape), self.sizes)
        units = shape[seed.axes.index("unit")]
        power = 1.0
        if seed.kind == "atoms":
            prior = self._prior(seed.latent)
            if prior is not None and prior[0].ndim == len(self.model.variables[seed.latent].shape):
                spread = prior[1] if prior[1].shape == prior[0].shape else np.diagonal(prior[1], axis1=-2, axis2=-1)
                second = prior[0] ** 2 + spread             # E[h²] of each element (MvNormal: the covariance's diagonal)
                power = float(np.mean(np.sum(second, axis=seed.latent_axis)))
            power = power if math.isfinite(power) and power > 0 else 1.0
        return seeded(seed, x, units, shape, rng, power)

    def _start_continuous(self, var: str, rng: np.random.Generator, streamed: LocalDraws | None = None) -> bool:
        """A Normal or MvNormal latent: k-means++ centres if it is a component mean (then True: the start is
        informed by the data), else a draw from its prior if it is local or multiplied by another latent;
        else the broad default stays.  ``streamed``: a local latent's draws are every unit's (``initialise``)."""
        info = self.plan.latents[var]
        unit = unit_of(info.family)
        mv = unit.event > 0
        shape = self.state[ArrayNames.qparam(var, "mean")].shape
        d2 = self._data_variance(var)
        seed = self.structure.seeds.get(var)
        centres = self._seeded(seed, rng) if seed is not None else None
        if centres is not None:
            # q of a centre: about as broad as the mean of a component's share of the points
            units = centres.shape[seed.axes.index("unit")]
            shape_of_data = _shape(list(self.model.variables[seed.data].shape), self.sizes)
            if self.rows_of is not None and seed.data in self.rows_of.seeded and seed.row_axis == 0:
                shape_of_data = (self.rows_of.count,) + shape_of_data[1:]
            rows = seed.count(shape_of_data)
            spread = (d2 or 1.0) * units / rows
            unit.located_at(self.state, var, centres.reshape(shape), unit.spread(spread, shape))
            return True
        if info.scope == "local" or any(var in pair for pair in self.structure.products):
            if streamed is not None and var in streamed.order:
                axis = self._units_axis(var)
                rng = streamed.skip("prior", var, rng, lambda sizes, g: prior_draw(
                    None, _shape(info.state[ArrayNames.qparam(var, "mean")], sizes), mv, d2, g, axis), d2)
            self.draw_prior(var, rng, d2)
        return False

    def _start_proportions(self, var: str, rng: np.random.Generator) -> bool:
        """A Dirichlet or Beta component latent read by a label over count or binary data: q centred at k-means++
        seeds of the normalised data rows (True), so that the components start apart; else its broad default."""
        seed = self.structure.seeds[var]
        unit = unit_of(self.plan.latents[var].family)
        x = self.state[ArrayNames.variable(seed.data)].reshape(
            _shape(list(self.model.variables[seed.data].shape), self.sizes))
        if unit.event:             # a simplex along the rows' last axis: each row's shares
            total = x.sum(-1, keepdims=True)
            x = np.divide(x, total, out=np.full(x.shape, 1.0 / max(x.shape[-1], 1)), where=total > 0)
        shape = self.state[ArrayNames.qparam(var, unit.shape_of)].shape
        try:
            prior = prior_arguments(self.model, var, self.sizes, self._value)[1]
        except NotEvaluable:
            return False
        units = shape[seed.axes.index("unit")]
        mean = seeded(seed, x, units, shape, rng, trials=2 + int(math.log(units)))
        if mean is None:
            return False
        unit.centred_at(self.state, var, mean, prior)
        return True

    def draw_prior(self, var: str, rng: np.random.Generator, data_variance: float | None) -> None:
        """q(var) located at a draw from its prior, at most as broad as the data (:func:`ppvi.infer.start.prior_draw`)."""
        unit = unit_of(self.plan.latents[var].family)
        shape = self.state[ArrayNames.qparam(var, "mean")].shape
        unit.located_at(self.state, var, *prior_draw(self._prior(var), shape, unit.event > 0, data_variance, rng,
                                                     self._units_axis(var)))

    # ---------------------------------------------------------------- steps
    def update(self, var: str, damping: float | None = None) -> None:
        """One coordinate update.  With ``damping`` α a latent's elements are all updated from the
        moments before the update (parallel) and move a step α of the way in natural parameters."""
        block = self.plan.block
        if block and var == block.name:
            # a group latent and its members to convergence, group by group (codegen.module.block_kernel),
            # from its rows of the statistics as the statistics pass leaves them
            self._call(block.kernel, reads=block.rows)
            self.stale = True
            return
        info = self.plan.entry(var)
        if isinstance(info, LatentPlan) and info.pair is not None:
            self._pair_update(var, info.pair)
            return
        if isinstance(info, PointPlan) and info.method == "gradient":
            self._gradient_step(var, info)
            return
        if info.local_step and (damping is None or var not in self.plan.latents):
            # the local step: the update that also sums the statistics (codegen.statistics); a point's
            # is the same in both schedules, only a latent's is damped
            self._call(info.local_step, reads=info.update.args)
            self.stale = False
            self._check_bounded(var, info)
            return
        spec = info.colour if damping is None and var in self.coloured else info.update
        if spec is info.update and isinstance(info, LatentPlan) and self._by_rows(info):
            spec = info.rows
        if damping is not None and var in self.plan.latents:
            spec = info.damped
            self.state[ArrayNames.damping()] = np.array([float(damping)])
            for a in spec.args:
                if ArrayNames.snapshot_of(a) is not None:
                    self.state[a] = self.state[ArrayNames.snapshot_of(a)].copy()
                elif ArrayNames.is_natural(a) and a not in self.state:
                    self._natural_from_q(var)
        self._call(spec)
        self.stale = self.stale or self._feeds(var)
        self._check_bounded(var, info)

    def _bind_order(self, by: str, groups: int) -> None:
        """The elements of the data plate grouped by index data ``by`` (:func:`group_index`), once per bind."""
        order, start = group_index(self.state[ArrayNames.variable(by)], groups)
        self.state[ArrayNames.constant("order", by)] = order
        self.state[ArrayNames.constant("start", by)] = start

    def _by_rows(self, info: LatentPlan) -> bool:
        """Whether the latent's rows kernel runs in its update's place: it has one, the data it reads in order
        are the data that order was sorted from, and they are at least ROWS_FROM points."""
        if info.rows is None:
            return False
        by = [b for b in self.plan.orders if ArrayNames.constant("order", b) in info.rows.args]
        return bool(by) and all(self.sorted_from.get(b) is self.state[ArrayNames.variable(b)] and
                                len(self.sorted_from[b]) >= ROWS_FROM for b in by)

    def _pair_update(self, mu: str, lam: str) -> None:
        """One step of q(μ, λ) Normal–Gamma (``approximate mu, lam jointly``; docs/derivation.md, "A Normal–Gamma
        pair"): the mean-field updates of μ (at ⟨λ⟩ before the step) and of λ (at q(μ) as μ's leaves it) give the
        pair's natural parameters (the expected log joint is linear in λμ², λμ, λ, log λ); ``finish_normal_gamma``
        writes q(μ)'s mean and spread and q(λ), the Gamma marginal.  The same step in the damped schedule.
        μ's update goes first (it reads ⟨λ⟩ only): its mean is the pair's m, and λ's update then reads q(μ)
        centred there, so b = −η_λ[x] − β sd²/2 takes nothing from a start far from m (a ⟨μ⟩ at 0 for data at
        10⁸ made b a difference of numbers of 10¹⁷)."""
        from ppvi.families.normal_gamma import NORMAL_GAMMA
        from ppvi.families.registry import finish

        q, m, h = ArrayNames.qparam, ArrayNames.moment, ArrayNames.entropy
        mine = [q(mu, "mean"), q(mu, "sd"), m(mu, "x2"), h(mu), q(lam, "shape"), q(lam, "rate"), m(lam, "x"),
                m(lam, "logx"), h(lam)]
        lam_x = self.state[m(lam, "x")].copy()
        self._call(self.plan.latents[mu].update)
        mean, sd = self.state[q(mu, "mean")].copy(), self.state[q(mu, "sd")].copy()
        self._call(self.plan.latents[lam].update)
        shape, rate = self.state[q(lam, "shape")].copy(), self.state[q(lam, "rate")].copy()
        pair = getattr(finish(NORMAL_GAMMA.name), NORMAL_GAMMA.finish)
        with np.errstate(all="ignore"):
            out = _finish_normal_gamma(pair, mean / sd ** 2, -0.5 / sd ** 2, -rate, shape - 1.0, lam_x, mean, sd)
        for k, v in zip(mine, out):
            self.state[k][...] = v
        self.stale = self.stale or self._feeds(mu) or self._feeds(lam)

    def _check_bounded(self, var: str, info: LatentPlan | PointPlan) -> None:
        """A point whose closed-form maximiser came out infinite (written +inf by codegen.module) has no
        maximum: the objective grows without bound along it, given the rest (the data fitted exactly)."""
        if not isinstance(info, PointPlan) or info.method != "closed_form":
            return
        value = self.state[ArrayNames.variable(var)]
        if np.isfinite(value).all():
            return
        at = np.unravel_index(int(np.flatnonzero(~np.isfinite(value.ravel()))[0]), value.shape) if value.ndim else ()
        raise PPVIError([self.no_maximum(var, at, "given the rest of the fit, the objective grows without bound "
                                                  "as `{entry}` goes to the edge of its support")])

    def no_maximum(self, var: str, at: tuple, why: str, verdict: str = "has no maximum") -> Diagnostic:
        """The user's error for a point (entry ``at``) along which the objective has no maximum; ``why`` says
        how that showed, with ``{entry}`` for the entry's name."""
        v = self.model.variables[var]
        entry = f"{var}[{', '.join(map(str, at))}]" if v.shape else var
        info = self.plan.entry(var)
        what = "param" if isinstance(info, PointPlan) and info.kind == "param" else "MAP point"
        return Reporter(self.model.path, self.model.text).make(
            f"{what} `{entry}` {verdict}: {why.format(entry=entry)} (the data it governs are fitted "
            f"exactly, e.g. a constant column, a component left with a single point, or fewer rows than a "
            f"dictionary has atoms)", v.span,
            f"bound it: give `{var}` a prior (then it is a latent), fix it as a const, or remove the degeneracy "
            f"from the data")

    def param_magnitudes(self) -> dict[str, tuple[float, tuple]]:
        """Each param's largest |entry| and where it is (a diverging param's measure: ppvi.infer.cavi)."""
        out = {}
        for var, info in self.plan.points.items():
            value = self.state.get(ArrayNames.variable(var))
            if info.kind == "param" and isinstance(value, np.ndarray) and value.size:
                flat = np.abs(value.ravel())
                i = int(np.argmax(flat))
                out[var] = (float(flat[i]), np.unravel_index(i, value.shape) if value.ndim else ())
        return out

    def refresh_statistics(self) -> None:
        """Sum the statistics again if a local update has made them stale (chunked fits read them directly)."""
        if self.stale and self.plan.stats:
            stats = self.plan.stats.kernel
            getattr(self.module, stats.name)(*(self.state[a] for a in stats.args))
        self.stale = False

    def _feeds(self, var: str) -> bool:
        """Whether the statistics read var (a local variable): changing it makes them stale."""
        return self.plan.entry(var).feeds

    def _call(self, spec: KernelSpec, reads: tuple[str, ...] | None = None):
        """Run a kernel; first the statistics pass, if the kernel reads statistics (its arguments, or
        ``reads``) that a local update has made stale."""
        args = spec.args
        if self.stale and any(ArrayNames.is_statistic(a) for a in (args if reads is None else reads)):
            self.refresh_statistics()
        return getattr(self.module, spec.name)(*(self.state[a] for a in args))

    def _natural_from_q(self, var: str) -> None:
        """η of the current q(var), stored as e_<var>__<stat> (the damped schedule moves from it)."""
        unit = unit_of(self.plan.latents[var].family)
        # by (var, parameter) -> array, as ppvi.codegen.emit.Names.qparam names it: never by cutting a
        # name at `__`, which a user's name may hold (`_a`, `x__x`)
        q = {p: self.state[ArrayNames.qparam(var, p)] for p in unit.standard}
        with np.errstate(divide="ignore", invalid="ignore"):    # (a point mass at an observed entry: η is ±∞)
            natural = unit.natural_missing(q, self.clamped[var][1]) if var in self.clamped else unit.natural(q)
        for stat, value in natural.items():
            value = np.ascontiguousarray(value, dtype=float)
            if var in self.clamped:
                value[~self.clamped[var][1]] = 0.0      # (never read: the kernels finish only missing entries)
            self.state[ArrayNames.natural(var, stat)] = value

    def _gradient_step(self, var: str, info: PointPlan) -> None:
        """Generalised EM for a param with no closed-form maximiser: one gradient step with a
        backtracking line search, accepted only if the ELBO rises."""
        value = self.state[ArrayNames.variable(var)]
        grad = self.state.setdefault(ArrayNames.gradient(var), np.zeros_like(value))
        self._call(info.update)
        norm = float(np.sqrt(np.sum(grad * grad)))
        if not norm > 0 or not np.isfinite(norm):
            return
        start = value.copy()
        before = self.elbo()
        step = 1.0 / norm * max(1.0, float(np.sqrt(np.sum(start * start))))
        feeds = self._feeds(var)
        for _ in range(40):
            value[...] = start + step * grad
            self.stale = self.stale or feeds
            if self.elbo() > before:
                return
            step *= 0.5
        value[...] = start
        self.stale = self.stale or feeds

    def expected_terms(self) -> np.ndarray:
        elbo = self.plan.elbo
        large = elbo.large is not None and self.sizes.get(elbo.plate, 0) >= ROWS_FROM
        return self._call(elbo.large if large else elbo.kernel)

    def entropy(self, var: str) -> float:
        return float(np.sum(self.state[ArrayNames.entropy(var)]))

    def elbo(self, after_sweep: bool = False) -> float:
        """19.7: Σ_f E_q[log f] + Σ_x H[q(x)].

        ``after_sweep``: right after a full sequential sweep, the last latent's share is read off its
        update (log Σ e^η per element; see codegen.module._last_local) instead of re-evaluated.
        """
        fast = self.plan.elbo.fast
        if after_sweep and fast is not None:
            terms = self._call(fast)
            last = self.plan.elbo.fast_after
            return self._total(terms) + float(np.sum(self.state[ArrayNames.log_normaliser(last)])) + sum(
                self.entropy(v) for v in self.structure.order.sort(self.plan.latents) if v != last)
        return self._total(self.expected_terms()) + sum(
            self.entropy(v) for v in self.structure.order.sort(self.plan.latents))

    def _total(self, terms: np.ndarray) -> float:
        """Σ of the factors' terms (one per factor, by id) in the canonical order of the factors: the same
        rounding however the statements are ordered."""
        rank = self.structure.order.factors
        return float(np.sum(terms[sorted(range(len(terms)), key=rank.__getitem__)]))

    def schedule(self, damped: bool = False) -> list[str]:
        """Params (the M-step, 19.2), then global latents, local latents and MAP latents; within each
        group parents before children (a prior's level), then the canonical order
        (:mod:`ppvi.graph.order`): a function of the model's structure, never of its names or the order
        of its statements (docs/architecture.md, "The schedule").

        Params and globals start from the randomised locals; with this order the
        ELBO at the end of a sweep of an exact-EM model is the log-likelihood.
        A group latent and the local latent it is read by (θ[doc[t]] and z[t] in
        LDA) are one step, the block, iterated to convergence group by group
        before the other globals see its statistics; not in the damped (parallel)
        schedule, whose steps are single updates.
        """
        pts = self.plan.points
        partners = {p.pair for p in self.plan.latents.values() if p.pair is not None}    # (in their pair's step)
        lat = {v: p for v, p in self.plan.latents.items() if v not in partners}
        block = None if damped else self.plan.block
        members = block.members if block else ()
        sort = self.structure.order.sort
        return (sort(v for v in pts if pts[v].kind == "param")
                + sort(v for v in lat if lat[v].scope == "global" and v not in members)
                + sort(v for v in lat if lat[v].scope == "local" and v not in members)
                + ([block.name] if block else []) + sort(v for v in pts if pts[v].kind == "point"))

    def _mutable(self) -> list[str]:
        """The arrays a sweep writes: every q's parameters, moments and entropies, params and MAP
        latents (not the data, which may be most of the memory). Aliases are left out: ``restore``
        links them again."""
        aliases = self.plan.aliases()
        points = {ArrayNames.variable(v) for v in self.plan.points}
        return [k for k, v in self.state.items() if isinstance(v, np.ndarray) and k not in aliases
                and (ArrayNames.is_swept(k) or k in points)]

    def mutable_bytes(self) -> int:
        return sum(self.state[k].nbytes for k in self._mutable())

    def snapshot(self, copy: bool = True) -> dict[str, np.ndarray]:
        """The arrays a sweep writes: copies, or (``copy=False``) the arrays themselves, handed over.  A handed-over
        snapshot stays whole only until the next start: :meth:`initialise` puts new arrays in their place before
        writing (the gradient's scratch ``g_`` is reused, so it is never handed over)."""
        return {k: self.state[k].copy() if copy else self.state[k] for k in self._mutable()
                if copy or not ArrayNames.is_gradient(k)}

    def restore(self, snap: dict[str, np.ndarray], copy: bool = True) -> None:
        """The state of ``snap``; with ``copy=False`` its arrays become the program's own (no second q in memory)."""
        for k, v in snap.items():
            self.state[k] = v.copy() if copy else v
        self.relink()
        self.stale = True

    def relink(self) -> None:
        """Moments that are another array under a second name point at it again."""
        for alias, target in self.plan.aliases().items():
            self.state[alias] = self.state[target]


def _finish_normal_gamma(finish, *eta) -> list[np.ndarray]:
    """``finish`` (families/normal_gamma/finish.py) of every element, its outputs but β as arrays of the elements'
    shape."""
    eta = np.broadcast_arrays(*eta)
    out = np.array([finish(*map(float, e)) for e in zip(*(a.ravel() for a in eta))]).reshape(-1, 10)
    return [out[:, i].reshape(eta[0].shape) for i in range(9)]


def group_index(by: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """A group block's members by group: element t belongs to group by[t]; the members of group d are
    order[start[d]:start[d + 1]], in their own order."""
    by = np.asarray(by).astype(np.int64)
    start = np.zeros(groups + 1, dtype=np.int64)
    np.cumsum(np.bincount(by, minlength=groups), out=start[1:])
    return np.argsort(by, kind="stable"), start


# ------------------------------------------------------------ initial values
def latent_start(info: LatentPlan, var: str, sizes: dict[str, int], rng: np.random.Generator,
                 units: frozenset[str] = frozenset()) -> dict:
    """The arrays of var's q at its start for ``sizes`` (broad, or drawn from ``rng``; aliases included).
    ``units``: the dims of a local latent's units, drawn along first wherever they are in its arrays (units
    on its second axis, ``X[m, n]``, take the numbers ``X[n, m]`` would, transposed: a run of units' draws is a
    run of the stream, as a chunk of them draws it; docs/scale.md, "The start")."""
    axes = {name: next((i for i, e in enumerate(shape) if e in units), 0) for name, shape in info.state.items()}
    state: dict[str, np.ndarray] = {}
    for name, shape in info.state.items():
        full, a = _shape(shape, sizes), axes[name]
        state[name] = np.zeros((full[a],) + full[:a] + full[a + 1:]) if a else np.zeros(full)
    for alias, target in info.aliases.items():
        state[alias] = state[target]
    unit_of(info.family).init(state, var, rng, info)
    if any(axes.values()):
        for name, a in axes.items():
            state[name] = np.ascontiguousarray(np.moveaxis(state[name], 0, a))
        for alias, target in info.aliases.items():
            state[alias] = state[target]
    return state


def _param_default(v, shape, rng) -> np.ndarray:
    shape = shape or (1,)
    if v.support == "positive":
        return np.ones(shape)
    if v.support == "simplex":
        return np.full(shape, 1.0 / shape[-1])
    if v.support == "unit_columns":
        w = rng.normal(size=shape)
        return w / np.linalg.norm(w, axis=0, keepdims=True)
    return rng.normal(scale=0.1, size=shape)
