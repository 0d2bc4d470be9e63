"""New data under a fitted q: the global q and params of an earlier result held fixed, the local q fitted.

``result.predict(data)`` and ``ppvi run MODEL --given r.json --data new.npz`` (docs/predict.md).  What is *held*
is every latent that is not local (its draw outside the data plate and not a member of a group block:
π, μ, Λ of a mixture; φ of LDA) and every param; what is *fitted* is every local latent (z of a mixture;
θ and z of LDA, a group block; a MAP code), by the same derived updates as a fit, with the held values
never updated.  A dim is *free* when no held variable has it as an axis (N of a mixture; T and M of
LDA): its size comes from the new data.  Every other dim keeps the fit's size, and the new data must
agree with it.

``score`` is, for each *unit* (an element of the data plate, or a group of a group block: an LDA
document), the unit's share of the ELBO with the globals' q fixed,

    s_u = E_q[log p(x_u, h_u | g)] − E_q[log q(h_u)],

where the first expectation is over q(h_u) and the held q(g) of the globals g, and the sum runs over
the factors inside a free plate (the local latents' priors and the likelihood).  The globals' own prior
terms and entropies are left out.  By Jensen, s_u ≤ E_q(g)[log p(x_u | g)] ≤ log E_q(g)[p(x_u | g)]: a
lower bound on the log of the new unit's predictive density under q(g).  The shares are the generated
ELBO kernel itself, evaluated on each unit's slice of the state (the kernel sums over the plate, so one
unit at a time): Σ_u s_u is exactly the ELBO of the new data minus the globals' terms.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from ppvi.codegen.plan import ArrayNames, Plan
from ppvi.errors import Diagnostic, PPVIError
from ppvi.infer.cavi import Fit, run_once
from ppvi.infer.program import Program, _shape
from ppvi.language import CheckedModel


def _fail(where: str, message: str, hint: str | None = None) -> PPVIError:
    return PPVIError(Diagnostic(message, where, hint=hint))


# ------------------------------------------------------------------ what is held, what is fitted
@dataclass(frozen=True)
class Roles:
    """The split of a model into what a prediction holds and what it fits (see the module's docstring)."""

    held: tuple[str, ...]          # latents whose q is held (global, not in a group block)
    held_points: tuple[str, ...]   # global MAP latents (held)
    local: tuple[str, ...]         # latents (and MAP latents) fitted to the new data
    free: tuple[str, ...]          # dims the new data set
    unit: str | None               # the dim whose elements are scored: the block's groups, else the data plate
    factors: tuple[int, ...]       # the factors inside a free plate: a unit's share of the ELBO

    @classmethod
    def of(cls, model: CheckedModel, plan: Plan) -> "Roles":
        from ppvi.graph.factor_graph import build

        graph = build(model)
        block = plan.block
        members = set(block.members if block else ())
        latents = plan.latents
        held = tuple(v for v, info in latents.items() if info.scope == "global" and v not in members)
        points = plan.point
        held_points = tuple(v for v in points if graph.nodes[v].scope == "global")
        local = tuple(v for v in latents if v not in held) + tuple(v for v in points if v not in held_points)
        fixed_by = [*held, *held_points, *(v.name for v in model.of_kind("param"))]
        taken = {e for v in fixed_by for e in model.variables[v].shape if isinstance(e, str)}
        free = tuple(d for d in model.dims if d not in taken)
        unit = (block.groups if block else None) or graph.data_plate
        # (a ragged chain's first steps, `for t in T[:1] by seq:`, have no plate of their own: one per sequence)
        firsts = {i for c in model.chains.values() if c.by is not None and c.dim in free for i in c.firsts}
        factors = tuple(f.id for f in model.factors if f.id in firsts or any(d in free for _, d in f.plates))
        return cls(held, held_points, local, free, unit, factors)


# ------------------------------------------------------------------ the given result
@dataclass(frozen=True)
class Given:
    """An earlier result, its model and where it came from (a path, or ``<result>`` for an object)."""

    result: Any                    # ppvi.result.Result
    model: CheckedModel
    source: str
    path: str | None

    @classmethod
    def of(cls, given: Any, model: CheckedModel | None = None, where: str = "given") -> "Given":
        """From a Result or the path of a result file; ``model`` (``ppvi run MODEL --given``) must be the
        model the result was fitted to (the SHA-256 of its text); without it, the result's own."""
        from ppvi.result import Result, load_result

        if isinstance(given, (str, os.PathLike)) and isinstance(os.fspath(given), str) and os.fspath(given):
            path = os.fspath(given)
            if not os.path.exists(path):
                raise _fail(path, "no such result file", "--given names a result written by `ppvi run --out` "
                                                         "or Result.save")
            result, source = load_result(path), path
        elif isinstance(given, Result):
            result, source, path = given, "<result>", None
        else:
            raise _fail(where, f"given={type(given).__name__}: a prediction starts from a Result or the path of "
                               "a result file")
        p = result.provenance
        if p is None or not p.model_text:
            raise _fail(source, "this result has no model text in its provenance: the model it was fitted to is "
                                "unknown", "predict from a result written by this version of ppvi")
        if model is None:
            from ppvi.language.missing import imputed

            if result.fit is not None and not imputed(result.fit.program.model):
                model = result.fit.program.model
            else:       # (a fit that imputed missing entries ran the model with them as latents: not the declared)
                from ppvi.language import loads

                model = loads(p.model_text, p.model_path or "<model>")
        elif hashlib.sha256(model.text.encode("utf-8")).hexdigest() != p.model_sha256:
            raise _fail(source, f"this result was fitted to another model (`{result.model}`, SHA-256 "
                                f"{p.model_sha256[:12]}…), not to {os.path.basename(model.path)}",
                        "predict with the model the result was fitted to: its text is in the result's provenance")
        return cls(result, model, source, os.path.abspath(path) if path else None)

    def held_sha256(self, roles: Roles) -> str:
        """SHA-256 of exactly what a prediction holds: the held q's standard parameters and the params."""
        from ppvi.io.results import sha256_of_arrays

        arrays = {f"q.{v}.{k}": np.asarray(a) for v in (*roles.held, *roles.held_points)
                  for k, a in self.result.q[v].params.items()}
        arrays.update({f"params.{k}": np.asarray(a) for k, a in self.result.params.items()})
        return sha256_of_arrays(arrays)


def check_sizes(given: Given, roles: Roles, source, dims: Mapping[str, int]) -> dict[str, int]:
    """The sizes to bind the new data with: the fit's for every dim that is not free (the new data must
    agree: a mismatch names the dim), the user's for the free ones."""
    fitted = dict(given.result.provenance.dims)
    held_dims = [d for d in given.model.dims if d not in roles.free and d in fitted]
    for d in held_dims:
        if d in dims and dims[d] != fitted[d]:
            raise _fail(source.label, f"dim {d} = {dims[d]} was asked for, but the fit given ({given.source}) has "
                                      f"{d} = {fitted[d]}", _keep_hint(roles))
    for v in given.model.of_kind("data"):
        if v.name not in source.arrays:
            continue
        shape = np.shape(source.arrays[v.name])
        if len(shape) != len(v.shape):
            continue        # (bind reports it)
        for axis, (ext, n) in enumerate(zip(v.shape, shape)):
            if ext in held_dims and n != fitted[ext]:
                raise _fail(source.label, f"`{v.name}` has {n} entries on axis {axis}, but dim {ext} is "
                                          f"{fitted[ext]} in the fit given ({given.source})", _keep_hint(roles))
    return {**{d: fitted[d] for d in held_dims}, **{d: s for d, s in dims.items() if d in roles.free}}


def _keep_hint(roles: Roles) -> str:
    free = ", ".join(roles.free) or "none"
    return f"new data may change only the dims of the local latents ({free}); every other dim is the fit's"


def check_hyperparameters(given: Given, roles: Roles, bound_arrays: Mapping[str, np.ndarray], label: str) -> None:
    """Hyperparameter data (not observed, and with no free axis: a Wishart's scale, not LDA's `doc`) must
    be the fit's, where the fit's are known (a fit in this process, or its data file unchanged)."""
    observed = {f.target for f in given.model.factors if f.observed}
    hyper = [v.name for v in given.model.of_kind("data") if v.name not in observed and v.name in bound_arrays
             and not any(e in roles.free for e in v.shape)]
    if not hyper:
        return
    from ppvi.io.results import observed as fitted_data

    try:
        fitted, _ = fitted_data(given.result)
    except PPVIError:
        fitted = None
    for name in hyper:
        if fitted is None or name not in fitted:
            continue
        if not np.array_equal(np.ravel(np.asarray(fitted[name], dtype=float)), np.ravel(bound_arrays[name])):
            raise _fail(label, f"`{name}` differs from the `{name}` the fit given ({given.source}) was made with",
                        f"`{name}` is a hyperparameter of the model: a prediction keeps the fit's")


# ------------------------------------------------------------------ fitting the local q
def fit_locals(program: Program, given: Given, roles: Roles, *, seed: int, max_iter: int, tol: float,
               refine: int | None, on_iteration: Callable[[int, float, float], None] | None = None) -> Fit:
    """Set the held q and params from ``given``, start the local q by an E-step (an amortised latent: at its
    encoder's output, ppvi.amortise), then sweep the local steps
    only (:func:`ppvi.infer.cavi.run_once`) until the ELBO changes by at most ``tol`` (relative), or
    ``max_iter`` sweeps, or ``refine`` sweeps (0: the E-step alone).  Every step is an exact coordinate
    update: the ELBO never decreases."""
    from ppvi.infer.warm import Start

    r = given.result
    start = {v: r.q[v] for v in (*roles.held, *roles.held_points)}
    if r.encoders:
        # amortised latents start at their encoder's q (no E-step for them: refine=0 is the encoder's own q)
        from ppvi.amortise.train import start_entries

        start.update(start_entries(program, dict(r.encoders)))
    held = Start(start, dict(r.params), given.source)
    block = program.plan.block
    local = set(roles.local) | ({block.name} if block else set())
    order = [s for s in program.schedule() if s in local]
    limit = (max_iter if refine is None else min(max_iter, refine)) if order else 0
    done = run_once(program, np.random.default_rng([seed, 0]), limit, tol, on_iteration, start=held,
                    steps=lambda schedule: [s for s in schedule if s in local])
    done.converged = done.converged or not order
    return done


# ------------------------------------------------------------------ per-unit shares of the ELBO
def scores(program: Program, roles: Roles) -> np.ndarray:
    """s_u of every unit (the module's docstring): the ELBO kernel and the statistics it reads, run on
    each unit's slice of the state, its terms of the free-plate factors; plus the unit's entropies."""
    if roles.unit is None:
        raise _fail(program.model.path, "the model has no data plate: there is no data point to score")
    units = _Units(program, roles)
    plan = program.plan
    stats, elbo = plan.stats.kernel if plan.stats else None, plan.elbo.kernel
    stat_kernel = getattr(program.module, stats.name) if stats else None
    elbo_kernel = getattr(program.module, elbo.name)
    terms = np.empty((units.count, len(program.model.factors)))
    stat_args = units.binder(stats.args) if stats else None
    elbo_args = units.binder(elbo.args)
    for u in range(units.count):
        if stat_kernel is not None:
            stat_kernel(*stat_args(u))
        terms[u] = elbo_kernel(*elbo_args(u))
    out = terms[:, list(roles.factors)].sum(axis=1)
    for v in roles.local:
        if v in plan.latents:
            out += units.per_unit(ArrayNames.entropy(v), plan.latents[v].state[ArrayNames.entropy(v)])
    return out


class _Units:
    """One unit's view of the state at a time: every array with an axis of the unit dim cut to the unit (for
    a group block, its group, and its members along the members' dim), sizes to match, statistics arrays of
    the unit's size."""

    def __init__(self, program: Program, roles: Roles):
        model, plan = program.model, program.plan
        self.sizes, self.state = program.sizes, program.state
        self.unit_dim, self.count = roles.unit, program.sizes[roles.unit]
        block = plan.block
        self.member_dim = self.by = None
        if block:
            self.by = block.by
            self.member_dim = model.variables[self.by].shape[0]
            order = program.state[ArrayNames.constant("order", self.by)]
            start = program.state[ArrayNames.constant("start", self.by)]
            self.members = [order[start[g]:start[g + 1]] for g in range(self.count)]
        self.axes: dict[str, tuple] = {ArrayNames.variable(v.name): tuple(v.shape) for v in model.variables.values()}
        for info in plan.latents.values():
            self.axes.update({k: tuple(shape) for k, shape in info.state.items()})
            self.axes.update({a: tuple(info.state[t]) for a, t in info.aliases.items()})
        for key, (kind, var) in plan.derived.items():
            shape = tuple(model.variables[var].shape)
            self.axes[key] = shape if kind == "inv" else () if kind == "shift" else shape[:-2]
        self.stat_shapes = {k: tuple(s) for k, s in (plan.stats.arrays if plan.stats else {}).items()}
        self._stats: dict[str, np.ndarray] = {}
        self._stats_for = None

    def _cut(self, key: str) -> bool:
        return any(e in (self.unit_dim, self.member_dim) for e in self.axes.get(key, ()))

    def binder(self, names: tuple[str, ...]) -> Callable[[int], list]:
        """``bind(u)``: the arguments ``names`` of a kernel for unit u.  What is the same for every unit is
        looked up once; a unit's slices (and, in a group block, its sizes) per call."""
        fixed: list = []
        varying: list[tuple[int, Callable[[int], Any]]] = []
        for i, key in enumerate(names):
            if key in self.stat_shapes:
                varying.append((i, lambda u, k=key: self._stats_of(u)[k]))
            elif ArrayNames.size_of(key) is not None and ArrayNames.size_of(key) in (self.unit_dim, self.member_dim):
                varying.append((i, lambda u, d=ArrayNames.size_of(key): self._size(d, u)))
            elif key == ArrayNames.variable(self.by):
                kind = self.state[key].dtype     # (another dtype would compile the kernel again)
                varying.append((i, lambda u, kind=kind: np.zeros(len(self.members[u]), kind)))   # all in group 0
            elif self._cut(key):
                a, ext = self.state[key], self.axes[key]
                a = a.reshape(_shape(list(ext), self.sizes)) if a.ndim != len(ext) else a
                if ext[0] == self.unit_dim:
                    varying.append((i, lambda u, a=a: a[u:u + 1]))
                else:
                    varying.append((i, lambda u, a=a, ext=ext: a[self._index(ext, u)]))
            else:
                fixed.append(self.state[key])
                continue
            fixed.append(None)

        def bind(u: int) -> list:
            args = list(fixed)
            for i, get in varying:
                args[i] = get(u)
            return args
        return bind

    def _size(self, dim: str, u: int) -> int:
        return 1 if dim == self.unit_dim else len(self.members[u])

    def _index(self, ext: tuple, u: int) -> tuple:
        return tuple(slice(u, u + 1) if e == self.unit_dim else self.members[u] if e == self.member_dim
                     else slice(None) for e in ext)

    def _stats_of(self, u: int) -> dict[str, np.ndarray]:
        """Statistics arrays of unit u's sizes (one allocation for every run of units of the same size)."""
        n = len(self.members[u]) if self.member_dim is not None else 1
        if self._stats_for != n:
            sizes = {**self.sizes, self.unit_dim: 1, **({self.member_dim: n} if self.member_dim else {})}
            self._stats = {k: np.zeros(_shape(list(s), sizes)) for k, s in self.stat_shapes.items()}
            self._stats_for = n
        return self._stats

    def per_unit(self, key: str, ext: list) -> np.ndarray:
        """A per-element array (an entropy) summed within each unit."""
        a = np.asarray(self.state[key]).reshape(_shape(list(ext), self.sizes))
        axis = next((i for i, e in enumerate(ext) if e in (self.unit_dim, self.member_dim)), None)
        if axis is None:
            raise AssertionError(f"{key} of a local latent has no axis of the unit dim")
        a = np.moveaxis(a, axis, 0).reshape(a.shape[axis], -1).sum(axis=1)
        if ext[axis] == self.unit_dim:
            return a
        by = self.state[ArrayNames.variable(self.by)]
        return np.bincount(by.astype(np.int64), weights=a, minlength=self.count)


def nothing_to_predict(model: CheckedModel, where: str) -> PPVIError:
    return _fail(where, f"model `{model.name}` has no local latent: there is nothing to predict for new data",
                 "prediction fits the q of latents inside the data plate (a mixture's labels, a document's "
                 "topics); score(data) still gives each new point's expected log-likelihood under q")


# ------------------------------------------------------------------ predict
def predict(given: Given, data: object, *, dims: Mapping[str, int], seed: int, max_iter: int, tol: float,
            refine: int | None, progress: object = None, scored: bool = False, where: str = "predict"):
    """The Result of the new data's local q under ``given``'s held q (and, with ``scored``, the per-unit
    scores of :func:`scores`)."""
    import warnings

    from ppvi.codegen.cache import fixed_sizes, load as load_module
    from ppvi.errors import PPVIWarning
    from ppvi.infer.cavi import _one_blas_thread
    from ppvi.io.data import bind, observed_arrays, source_of
    from ppvi.io.progress import for_fit
    from ppvi.io.results import from_fit, sweep_steps

    m = given.model
    source = source_of(data, m)
    for note in source.notes:
        warnings.warn(PPVIWarning(note), stacklevel=3)
    plan = load_module(m, fixed=fixed_sizes(m, given.result.provenance.dims))[0].PLAN     # (the roles need no sizes)
    roles = Roles.of(m, plan)
    if not scored and not roles.local and not m.missing:
        raise nothing_to_predict(m, where)
    # (labels of a held dim coded by the fit's map: code j is the same label's in the held q and the new data;
    # a free dim's labels are the new data's own, new documents)
    held_labels = {d: names for d, names in given.result.labels.items() if d not in roles.free}
    bound = bind(m, source, check_sizes(given, roles, source, dims), held_labels)
    check_hyperparameters(given, roles, bound.arrays, source.label)
    if bound.missing:
        # missing entries in the new data are local latents too (ppvi.language.missing), imputed under the held q
        from ppvi.language.missing import imputing

        m = imputing(m, bound.missing)
        roles = Roles.of(m, load_module(m, fixed=fixed_sizes(m, bound.sizes))[0].PLAN)
    if not scored and not roles.local:
        raise nothing_to_predict(m, where)
    module, warm = load_module(m, fixed=fixed_sizes(m, bound.sizes))
    shown = for_fit(progress)
    if shown is not None:
        shown.start(m.name, max_iter if refine is None else min(max_iter, refine), 1)
    try:
        if shown is not None and not warm:
            shown.compiling()
        program = Program.build(m, module, bound)
        with _one_blas_thread():
            done = fit_locals(program, given, roles, seed=seed, max_iter=max_iter, tol=tol, refine=refine,
                              on_iteration=shown)
            per_unit = scores(program, roles) if scored else None
    finally:
        if shown is not None:
            shown.close()
    from_file = data is None or isinstance(data, (str, os.PathLike))
    provenance = _provenance(given, roles, m, source.label if from_file else None, bound, seed=seed, tol=tol,
                             max_iter=max_iter, sweep=sweep_steps(done))
    observed = observed_arrays(given.model, bound)
    r = from_fit(done, provenance, (), observed, {**held_labels, **bound.labels})
    held = {v: given.result.q[v] for v in (*roles.held, *roles.held_points)}
    r = dataclasses.replace(r, q={k: held.get(k, q) for k, q in r.q.items()}, params=dict(given.result.params),
                            fit=done, data=observed)
    return r, per_unit


def _provenance(given: Given, roles: Roles, m: CheckedModel, data_path: str | None, bound, *, seed: int,
                tol: float, max_iter: int, sweep: tuple[str, ...]):
    from ppvi.api import _provenance as fit_provenance

    p = fit_provenance(m, data_path, bound, seed=seed, tol=tol, max_iter=max_iter, damping=None, restarts=1,
                       sweep=sweep)
    held = {"path": given.path, "model_sha256": given.result.provenance.model_sha256,
            "held_sha256": given.held_sha256(roles), "created": given.result.provenance.created}
    return dataclasses.replace(p, given={k: v for k, v in held.items() if v is not None})   # (npz keeps no None)
