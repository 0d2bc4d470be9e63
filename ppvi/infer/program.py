"""A compiled model bound to data: the state arrays, their initial values, and the kernels.

The state is one dict from mangled names (see :mod:`ppvi.codegen.plan`) to
arrays: data, constants, params, and every q's parameters, moments and
entropies.  Moments that equal a parameter (⟨x⟩ of a Normal is its mean) are
the same array under two names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from ppvi.codegen.plan import ArrayNames, KernelSpec, LatentPlan, Plan, PointPlan
from ppvi.errors import Diagnostic, PPVIError, Reporter
from ppvi.infer.start import (NotEvaluable, Seed, Structure, analyse, prior_arguments, prior_draw, prior_moments,
                              seeded)
from ppvi.io.data import Bound
from ppvi.io.posterior import STANDARD
from ppvi.language import consts
from ppvi.language.check import CheckedModel

if TYPE_CHECKING:
    from ppvi.infer.warm import Start

EULER = 0.5772156649015329
LOG_2PI = math.log(2 * math.pi)


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
            # the inverse or log-determinant of a const or data matrix (a stack of them under a plate)
            m = values[const] if const in values else bound.arrays[const]
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
            order, start = group_index(self.state[ArrayNames.variable(block.by)], self.sizes[block.groups])
            self.state[ArrayNames.constant("order", block.by)] = order
            self.state[ArrayNames.constant("start", block.by)] = start
        for name, shape in (self.plan.stats.arrays if self.plan.stats else {}).items():
            self.state[name] = np.zeros(_shape(shape, self.sizes))

    def initialise(self, rng: np.random.Generator, start: Start | None = None,
                   locals_from: np.random.Generator | None = None) -> bool:
        """A valid q for every latent and a value for every param (the rules: :mod:`ppvi.infer.start`).

        Broad defaults for the global latents, random draws for the continuous ones that are local or
        multiplied by another latent, k-means++ for component means, params given, seeded from the data or
        at a default; then ``start`` (an earlier result) overrides what it holds.  A start informed by the
        data or the user is followed by an E-step: the local latents it does not hold, updated for it.
        Returns whether it was (the local q are then the E-step's for the global q as they are).
        ``locals_from``: the generator the local latents' q are drawn from instead of ``rng`` (a streamed start
        draws every unit's chunk by chunk, before, from ``rng``: docs/scale.md, "The start").
        """
        canonical = self.structure.order
        for var in canonical.sort(self.plan.latents):
            # (in the canonical order, as everything that draws from rng: the same start however the model is written)
            local = locals_from is not None and self.plan.latents[var].scope == "local"
            self.start_latent(var, locals_from if local else rng)
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
            if self.plan.latents[var].family in ("Normal", "MvNormal"):
                informed = self._start_continuous(var, rng) or informed
        for k in [k for k in self.state if ArrayNames.is_natural(k)]:
            del self.state[k]      # stored η belong to the previous start
        self.stale = True
        held: set[str] = set()
        if start is not None:
            from ppvi.infer.warm import apply

            held = apply(self, start)
            informed = True
        self.clamp()
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

    def start_latent(self, var: str, rng: np.random.Generator) -> None:
        """var's q at its start (broad, or drawn from ``rng``), in new arrays of the program's sizes."""
        self.state.update(latent_start(self.plan.latents[var], var, self.sizes, rng))

    def clamp(self) -> None:
        """q of the observed entries of data with missing entries: a point mass at the datum (⟨x⟩ = x,
        ⟨x²⟩ = x², a one-hot row, H = 0).  The kernels never finish those entries again."""
        for var, (values, missing) in self.clamped.items():
            seen = ~missing
            x = values[seen]
            fam = self.plan.latents[var].family
            if fam == "Normal":
                self.state[ArrayNames.qparam(var, "mean")][seen] = x
                self.state[ArrayNames.qparam(var, "sd")][seen] = 0.0
                self.state[ArrayNames.moment(var, "x2")][seen] = x * x
            elif fam == "Bernoulli":
                self.state[ArrayNames.qparam(var, "p")][seen] = x
            elif fam == "Categorical":
                p = self.state[ArrayNames.qparam(var, "p")]
                p[seen] = 0.0
                p[seen, x.astype(np.int64)] = 1.0
            elif fam == "MvNormal":
                # entry by entry: the observed coordinates of a row are its mean there; a complete row is a point
                # mass, a row with missing entries keeps its block until the first update
                # (runtime.finish_mvnormal_missing) and is made consistent here.  Rows in one axis (a row over no
                # plate too); the arrays are the state's, as views
                d = missing.shape[-1]
                mean = self.state[ArrayNames.qparam(var, "mean")].reshape(-1, d)
                cov = self.state[ArrayNames.qparam(var, "cov")].reshape(-1, d, d)
                gone = missing.reshape(-1, d)
                mean[~gone] = values.reshape(-1, d)[~gone]
                cov[~gone[:, :, None] | ~gone[:, None, :]] = 0.0
                self.state[ArrayNames.moment(var, "xxT")].reshape(-1, d, d)[...] = cov + mean[:, :, None] * mean[:, None, :]
                h = self.state[ArrayNames.entropy(var)].reshape(-1)
                for n, m in enumerate(gone):
                    block = cov[n][np.ix_(m, m)]
                    h[n] = 0.5 * (m.sum() * (1 + np.log(2 * np.pi)) + np.linalg.slogdet(block)[1]) if m.any() else 0.0
                continue
            elif fam in ("Gamma", "Beta"):
                # the moments are the datum's; the reported parameters a point mass to rounding (_point_mass)
                for param, value in _point_mass(fam, x).items():
                    self.state[ArrayNames.qparam(var, param)][seen] = value
                self.state[ArrayNames.moment(var, "x")][seen] = x
                self.state[ArrayNames.moment(var, "logx")][seen] = np.log(x)
                if fam == "Beta":
                    self.state[ArrayNames.moment(var, "log1mx")][seen] = np.log1p(-x)
            else:       # (ppvi.language.check refuses every other support of `: missing`)
                raise AssertionError(f"no point mass for a {fam} q")
            self.state[ArrayNames.entropy(var)][seen] = 0.0
        self.stale = self.stale or bool(self.clamped)

    def _value(self, name: str) -> np.ndarray:
        """A variable's current value in its declared shape (a latent's: the mean of its q), for
        :func:`ppvi.infer.start.evaluate`."""
        v = self.model.variables[name]
        shape = _shape(list(v.shape), self.sizes)
        info = self.plan.latents.get(name)
        if info is None:
            key = ArrayNames.variable(name)
        elif info.family == "Categorical":
            raise NotEvaluable(name)
        else:
            key = {"Normal": ArrayNames.qparam(name, "mean"), "MvNormal": ArrayNames.qparam(name, "mean"),
                   "Bernoulli": ArrayNames.qparam(name, "p"),
                   "Wishart": ArrayNames.moment(name, "X")}.get(info.family, ArrayNames.moment(name, "x"))
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
        if self.rows_of is not None and seed.data in self.rows_of.names and seed.row_axis == 0:
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

    def _start_continuous(self, var: str, rng: np.random.Generator) -> bool:
        """A Normal or MvNormal latent: k-means++ centres if it is a component mean (then True: the start is
        informed by the data), else a draw from its prior if it is local or multiplied by another latent;
        else the broad default stays."""
        mv = self.plan.latents[var].family == "MvNormal"
        shape = self.state[ArrayNames.qparam(var, "mean")].shape
        d2 = self._data_variance(var)
        seed = self.structure.seeds.get(var)
        centres = self._seeded(seed, rng) if seed is not None else None
        if centres is not None:
            # q of a centre: about as broad as the mean of a component's share of the points
            units = centres.shape[seed.axes.index("unit")]
            rows = _shape(list(self.model.variables[seed.data].shape), self.sizes)[seed.row_axis]
            if self.rows_of is not None and seed.data in self.rows_of.names and seed.row_axis == 0:
                rows = self.rows_of.count
            spread = (d2 or 1.0) * units / rows
            _set_normal(self.state, var, centres.reshape(shape), _isotropic(spread, shape, mv), mv)
            return True
        if self.plan.latents[var].scope == "local" or any(var in pair for pair in self.structure.products):
            _set_normal(self.state, var, *prior_draw(self._prior(var), shape, mv, d2, rng), mv)
        return False

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
        spec = info.update
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
        fam = self.plan.latents[var].family
        # by (var, parameter) -> array, as ppvi.codegen.emit.Names.qparam names it: never by cutting a
        # name at `__`, which a user's name may hold (`_a`, `x__x`)
        q = {p: self.state[ArrayNames.qparam(var, p)] for p in STANDARD[fam]}
        with np.errstate(divide="ignore", invalid="ignore"):    # (a point mass at an observed entry: η is ±∞)
            natural = _natural_missing_rows(q, self.clamped[var][1]) if fam == "MvNormal" and var in self.clamped \
                else _natural(fam, q)
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
        return self._call(self.plan.elbo.kernel)

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
        lat, pts = self.plan.latents, self.plan.points
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


def group_index(by: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """A group block's members by group: element t belongs to group by[t]; the members of group d are
    order[start[d]:start[d + 1]], in their own order."""
    by = np.asarray(by).astype(np.int64)
    start = np.zeros(groups + 1, dtype=np.int64)
    np.cumsum(np.bincount(by, minlength=groups), out=start[1:])
    return np.argsort(by, kind="stable"), start


# ------------------------------------------------------------ initial values
def _digamma_half(x: float) -> float:
    """ψ at a positive multiple of ½, exactly: ψ(n) = −γ + Σ_{k<n} 1/k, ψ(n + ½) = −γ − 2 log 2 + Σ_{k≤n} 2/(2k − 1).
    (The initial q only needs these; importing SciPy for them would cost more than a warm run.)"""
    n = int(x)
    if x == n:
        return -EULER + sum(1.0 / k for k in range(1, n))
    return -EULER - 2 * math.log(2) + sum(2.0 / (2 * k - 1) for k in range(1, n + 1))


def latent_start(info: LatentPlan, var: str, sizes: dict[str, int], rng: np.random.Generator) -> dict:
    """The arrays of var's q at its start for ``sizes`` (broad, or drawn from ``rng``; aliases included)."""
    state: dict[str, np.ndarray] = {}
    for name, shape in info.state.items():
        state[name] = np.zeros(_shape(shape, sizes))
    for alias, target in info.aliases.items():
        state[alias] = state[target]
    _INIT[info.family](state, var, rng, info)
    if info.chain is not None:
        _init_pairs(state, var, info)
    return state


def _set(state, name, value):
    state[name][...] = value


def _init_normal(s, v, rng, info):
    _set(s, ArrayNames.qparam(v, "mean"), 0.0)
    _set(s, ArrayNames.qparam(v, "sd"), 1.0)
    _set(s, ArrayNames.moment(v, "x2"), 1.0)


def _isotropic(variance: float, shape: tuple[int, ...], mv: bool) -> np.ndarray:
    return np.broadcast_to(variance * np.eye(shape[-1]), shape + shape[-1:]) if mv else np.full(shape, variance)


def _set_normal(s, v, mean, spread, mv: bool) -> None:
    """q(v) = N(mean, spread) (spread: variances, or covariances for an MvNormal), moments and entropy too."""
    s[ArrayNames.qparam(v, "mean")][...] = mean
    if mv:
        s[ArrayNames.qparam(v, "cov")][...] = spread
        s[ArrayNames.moment(v, "xxT")][...] = spread + mean[..., :, None] * mean[..., None, :]
        h = s[ArrayNames.entropy(v)]
        h[...] = (0.5 * mean.shape[-1] * (1 + LOG_2PI) + 0.5 * np.linalg.slogdet(spread)[1]).reshape(h.shape)
    else:
        s[ArrayNames.qparam(v, "sd")][...] = np.sqrt(spread)
        s[ArrayNames.moment(v, "x2")][...] = mean * mean + spread
        s[ArrayNames.entropy(v)][...] = 0.5 * (1 + LOG_2PI + np.log(spread))


def _init_gamma(s, v, rng, info):
    for n, val in ((ArrayNames.qparam(v, "shape"), 1.0), (ArrayNames.qparam(v, "rate"), 1.0),
                   (ArrayNames.moment(v, "x"), 1.0), (ArrayNames.moment(v, "logx"), -EULER)):
        _set(s, n, val)


def _init_beta(s, v, rng, info):
    for n, val in ((ArrayNames.qparam(v, "a"), 1.0), (ArrayNames.qparam(v, "b"), 1.0),
                   (ArrayNames.moment(v, "x"), 0.5),
                   (ArrayNames.moment(v, "logx"), -1.0), (ArrayNames.moment(v, "log1mx"), -1.0)):
        _set(s, n, val)


def _init_bernoulli(s, v, rng, info):
    p = s[ArrayNames.qparam(v, "p")]
    if info.scope == "local":
        rng.random(out=p)            # uniform on (0.05, 0.95), drawn in place: no temporary as big as q
        p *= 0.9
        p += 0.05
    else:
        p[...] = 0.5


def _init_categorical(s, v, rng, info):
    """Locals: each row uniform on the simplex (normalised exponentials, Dirichlet(1, …, 1)), drawn in place."""
    p = s[ArrayNames.qparam(v, "p")]
    if p.ndim > 1:
        rng.standard_exponential(out=p)
        p /= p.sum(axis=-1, keepdims=True)
    else:
        p[...] = 1 / p.shape[-1]


def _init_pairs(s, v, info):
    """A chain's ξₜ = rₜ₋₁ rₜᵀ for t ≥ start (the product of its random marginals; the rows of A count them
    before the chain's first update).  A Gaussian chain's Cov(xₜ₋₁, xₜ) stays 0, as its state starts: its
    q starts as a product."""
    if info.family != "Categorical":
        return
    r, xi, start = s[ArrayNames.qparam(v, "p")], s[info.chain.pair], info.chain.start
    xi[...] = 0.0
    xi[..., start:, :, :] = r[..., start - 1:-1, :, None] * r[..., start:, None, :]


def _init_dirichlet(s, v, rng, info):
    k = s[ArrayNames.qparam(v, "alpha")].shape[-1]
    _set(s, ArrayNames.qparam(v, "alpha"), 1.0)
    _set(s, ArrayNames.moment(v, "logp"), _digamma_half(1.0) - _digamma_half(float(k)))
    _set(s, ArrayNames.moment(v, "x"), 1.0 / k)


def _init_mvnormal(s, v, rng, info):
    d = s[ArrayNames.qparam(v, "mean")].shape[-1]
    _set(s, ArrayNames.qparam(v, "mean"), 0.0)
    _set(s, ArrayNames.qparam(v, "cov"), np.eye(d))
    _set(s, ArrayNames.moment(v, "xxT"), np.eye(d))


def _init_wishart(s, v, rng, info):
    d = s[ArrayNames.qparam(v, "scale")].shape[-1]
    df = d + 1.0
    _set(s, ArrayNames.qparam(v, "df"), df)
    _set(s, ArrayNames.qparam(v, "scale"), np.eye(d) / df)
    _set(s, ArrayNames.moment(v, "X"), np.eye(d))
    elogdet = sum(_digamma_half((df + 1 - i) / 2) for i in range(1, d + 1)) + d * math.log(2) - d * math.log(df)
    _set(s, ArrayNames.moment(v, "logdet"), elogdet)


def _init_polya_gamma(s, v, rng, info):
    """PG(1, 0): E[ω] = 1/4, the weight of a Bernoulli at ψ = 0 (the first sweep sets b from the model)."""
    for n, val in ((ArrayNames.qparam(v, "b"), 1.0), (ArrayNames.qparam(v, "c"), 0.0),
                   (ArrayNames.moment(v, "x"), 0.25), (ArrayNames.moment(v, "base"), 0.0), (ArrayNames.entropy(v), 0.0)):
        _set(s, n, val)


_INIT = {"Normal": _init_normal, "Gamma": _init_gamma, "Beta": _init_beta, "Bernoulli": _init_bernoulli,
         "Categorical": _init_categorical, "Dirichlet": _init_dirichlet, "MvNormal": _init_mvnormal,
         "Wishart": _init_wishart, "PolyaGamma": _init_polya_gamma}


def _natural(fam: str, q: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Natural parameters from standard ones (PRML appendix B), keyed as in ppvi.families."""
    if fam == "Normal":
        tau = q["sd"] ** -2.0
        return {"x": q["mean"] * tau, "x2": -tau / 2}
    if fam == "Gamma":
        return {"x": -q["rate"], "logx": q["shape"] - 1}
    if fam == "Beta":
        return {"logx": q["a"] - 1, "log1mx": q["b"] - 1}
    if fam == "Bernoulli":
        p = np.clip(q["p"], 1e-300, 1 - 1e-16)
        return {"x": np.log(p) - np.log1p(-p)}
    if fam == "Categorical":
        return {"onehot": np.log(np.maximum(q["p"], 1e-300))}
    if fam == "Dirichlet":
        return {"logp": q["alpha"] - 1}
    if fam == "PolyaGamma":
        return {"x": -q["c"] ** 2 / 2, "base": q["b"]}
    if fam == "MvNormal":
        prec = np.linalg.inv(q["cov"])
        return {"x": np.einsum("...de,...e->...d", prec, q["mean"]), "xxT": -prec / 2}
    d = q["scale"].shape[-1]
    return {"logdet": (q["df"] - d - 1) / 2, "X": -np.linalg.inv(q["scale"]) / 2}


def _natural_missing_rows(q: dict[str, np.ndarray], missing: np.ndarray) -> dict[str, np.ndarray]:
    """η of MvNormal rows with missing entries that runtime.finish_mvnormal_missing maps back to q: the missing
    block's precision P and P μ_m, 0 elsewhere (a row's covariance is singular where it is observed)."""
    d = missing.shape[-1]
    x, xx = np.zeros_like(q["mean"]), np.zeros_like(q["cov"])
    rows_x, rows_xx, cov, mean = x.reshape(-1, d), xx.reshape(-1, d, d), q["cov"].reshape(-1, d, d), \
        q["mean"].reshape(-1, d)
    for n, m in enumerate(missing.reshape(-1, d)):
        if m.any():
            prec = np.linalg.inv(cov[n][np.ix_(m, m)])
            rows_x[n, m] = prec @ mean[n, m]
            rows_xx[n][np.ix_(m, m)] = -prec / 2
    return {"x": x, "xxT": xx}


def _point_mass(fam: str, x: np.ndarray) -> dict[str, np.ndarray]:
    """Standard parameters of a Gamma or Beta q that is a point mass at the datum x, to rounding: the limit
    is infinite parameters, whose mean is nan, so they are finite and large with the mean x.  Gamma: shape
    x·2ᵉ, rate 2ᵉ (powers of two: shape/rate = x exactly), e chosen for a shape near 2⁶⁰⁰ and a finite
    rate: sd/mean = shape^−½, about 2⁻³⁰⁰ (below 1e−127 e stops at 2¹⁰²³, and sd rounds to 0 anyway).
    Beta: a = x·2⁶⁰⁰, b = (1 − x)·2⁶⁰⁰, sd about 2⁻³⁰⁰."""
    if fam == "Gamma":
        e = np.clip(600 - np.frexp(x)[1], -1000, 1023)
        return {"shape": np.ldexp(x, e), "rate": np.ldexp(1.0, e)}
    return {"a": np.ldexp(x, 600), "b": np.ldexp(1.0 - x, 600)}


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
