"""Chunks of the data: a Program over some *units* of a bigger one, sharing its global state.

A unit is an element of the group plate of a group block (an LDA document: the block's E-step runs per
document) or, without a block, of the data plate (a mixture's point).  Its *members* are the elements of
the block's member plate that belong to it (a document's tokens).  The sweep of a fit is a map over units
(the local steps: the q of local latents, which read only their unit's data and the globals) and a
reduce (the statistics: sums over units), then a global step that reads only the statistics and the
global q.  Memoized VI (:mod:`ppvi.infer.memoized`) and stochastic VI (:mod:`ppvi.infer.svi`) run the
local steps of a chunk of units at a time, with the same generated kernels as a batch sweep:

- a chunk's arrays with a unit (or member) axis are that part of the whole program's arrays: views when
  the chunk's units (members) are contiguous, else gathered copies written back by :meth:`Chunk.scatter`;
- its *global statistics* (statistics arrays with no unit or member axis, e.g. Σ_n q(z_n = k) x_n) are its
  own: the chunk's share of the sum;
- so are its *local sums*: a local latent's arrays with no unit or member axis, which its update writes as a
  sum over the units it runs on (a Categorical chain's H[q(z)] and Σ log Z over the sequences, ``h_``
  and ``l_``): the whole program's are the chunks' summed, like the global statistics, so that a chunk's
  local step replaces its own share and leaves the other chunks' kept;
- everything else (the global q, params, constants) is the whole program's own arrays, shared.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ppvi.codegen.plan import ArrayNames
from ppvi.errors import Diagnostic, PPVIError
from ppvi.infer.program import Program, group_index

# the arrays a local step writes (q's parameters, moments, entropies, log-normalisers; MAP values)


@dataclass(frozen=True)
class Layout:
    """How a program's state and schedule split between units and globals."""

    unit: str                      # the unit dim (the block's groups, else the data plate)
    member: str | None             # the block's member dim (LDA's tokens), or None
    by: str | None                 # the data naming each member's unit (LDA's `doc`)
    axes: dict[str, tuple]         # every state array's axes (dims, or 1 for a scalar's)
    local_steps: tuple[str, ...]   # the steps of the schedule that update local q (in order)
    global_steps: tuple[str, ...]  # the others: params' M-steps, global latents, global MAP latents
    local_latents: tuple[str, ...]     # latents whose entropy is a unit's
    unit_factors: tuple[int, ...]      # the factors inside a unit's plates (its share of the ELBO)
    global_stats: tuple[str, ...]      # statistics arrays with no unit or member axis: sums over units
    local_sums: tuple[str, ...] = ()   # local latents' arrays with no unit or member axis: sums over units

    @classmethod
    def of(cls, program: Program) -> "Layout":
        from ppvi.infer.given import Roles

        model, plan = program.model, program.plan
        roles = Roles.of(model, plan)
        if roles.unit is None:
            raise PPVIError(Diagnostic(f"model `{model.name}` has no data plate: memoized and stochastic VI split "
                                       "the data into chunks of its elements", model.path,
                                       hint="fit it by batch coordinate ascent (no --memoized, no --svi)"))
        unit, block = roles.unit, plan.block
        by = block.by if block else None
        cut = next((c for c in model.chains.values() if c.dim == unit), None)
        factors, local = roles.factors, set(roles.local) | ({block.name} if block else set())
        if cut is not None and cut.by is not None:
            # a ragged chain (long format), latent or of data: its sequences are the units, its steps their
            # members, each chunk whole sequences; its statements are sums over the steps weighed by indicators
            # of the steps' own data (ppvi.derive.chain.ragged_log_density), so a chunk's statistics are its own
            by = cut.by
            unit = model.variables[by].support_dim
            local |= _of_sequences(model, plan, unit)
            factors = _unit_factors(model, local, unit, cut)
        elif cut is not None:       # (one sequence along the data plate: one unit, never cut)
            raise PPVIError(_chain_refusal(model, unit, cut))
        member = model.variables[by].shape[0] if by else None
        axes: dict[str, tuple] = {ArrayNames.variable(v.name): tuple(v.shape) for v in model.variables.values()}
        for info in plan.latents.values():
            axes.update({k: tuple(shape) for k, shape in info.state.items()})
            axes.update({a: tuple(info.state[t]) for a, t in info.aliases.items()})
            axes.update({ArrayNames.natural_of_qparam(k): tuple(shape) for k, shape in info.state.items()
                         if ArrayNames.is_qparam(k)})
        for var, mask in plan.missing.items():
            axes[mask] = tuple(model.variables[var].shape)     # (a chunk's rows of the missing entries' mask)
        for key, (kind, var) in plan.derived.items():
            shape = tuple(model.variables[var].shape)
            axes[key] = shape if kind == "inv" else () if kind == "shift" else shape[:-2]
        stats = plan.stats.arrays if plan.stats else {}
        axes.update({k: tuple(s) for k, s in stats.items()})
        cut = {unit, member}
        schedule = program.schedule()
        local_latents = tuple(v for v in plan.latents if v in local)     # (the plan's order: never the names')
        return cls(unit, member, by, axes,
                   tuple(s for s in schedule if s in local), tuple(s for s in schedule if s not in local),
                   local_latents, factors, tuple(k for k, s in stats.items() if not cut & set(s)),
                   tuple(k for v in local_latents for k, s in plan.latents[v].state.items() if not cut & set(s)))

    def units(self, program: Program) -> int:
        return program.sizes[self.unit]

    def cut_axis(self, key: str) -> int | None:
        """The axis of key's array along the units or members, if any."""
        ext = self.axes.get(key, ())
        hits = [i for i, e in enumerate(ext) if e in (self.unit, self.member)]
        if len(hits) > 1:
            raise AssertionError(f"{key} has more than one axis of units or members: {ext}")
        return hits[0] if hits else None


def _of_sequences(model, plan, unit: str) -> set[str]:
    """The latents drawn once per sequence (a series' own mean ``mu[s]``, read as ``mu[seq[t]]``): outside the
    data plate, so global to a batch sweep, but each read by its own sequence's steps alone, so a unit's own,
    updated in its local step (their statistics have the sequences' axis: a chunk's rows are its own)."""
    return {v for v in plan.latents if unit in model.variables[v].shape}


def _unit_factors(model, local: set[str], unit: str, chain) -> tuple[int, ...]:
    """The factors of a unit's share of the ELBO over sequences: those inside the steps' or the sequences'
    plates, and the chain's first element's statement (a sum over every sequence's first step)."""
    dims = {unit, chain.dim}
    return tuple(f.id for f in model.factors if f.id in chain.firsts or f.target in local
                 or any(d in dims for _, d in f.plates))


def _chain_refusal(model, unit: str, chain) -> Diagnostic:
    """Why a chain along the data plate that is one sequence cannot be split, and what can."""
    return Diagnostic(f"memoized and stochastic VI split the data into chunks of `{unit}`, and `{chain.name}` is a "
                      "chain along it: a sequence is one unit, never cut", model.path,
                      hint="several sequences are split a sequence at a time: a plate of them, `x[s, t]` "
                           "(models/sequences/vghmm.ppvi), or in long format, each step naming its sequence, "
                           "`for t in T[1:] by seq:` (ragged_hmm.ppvi, ragged_lds.ppvi); else fit it by batch "
                           "coordinate ascent (no --memoized, no --svi)")


def _index(idx: np.ndarray) -> slice | np.ndarray:
    """A sorted index as a slice when it is a contiguous run (a view, nothing to copy back)."""
    if len(idx) == 0 or idx[-1] - idx[0] + 1 == len(idx):
        start = int(idx[0]) if len(idx) else 0
        return slice(start, start + len(idx))
    return idx


class Chunk:
    """The program over ``units`` (sorted indices) of ``whole``; see the module's docstring."""

    def __init__(self, whole: Program, layout: Layout, units: np.ndarray):
        self.whole, self.layout = whole, layout
        units = np.asarray(units, dtype=np.int64)
        self.size = len(units)
        sizes = dict(whole.sizes)
        sizes[layout.unit] = len(units)
        self.index = index = {layout.unit: _index(units)}      # where the chunk's units (members) are in whole
        state: dict = {}
        if layout.by is not None:
            by = whole.state[ArrayNames.variable(layout.by)]
            members = np.flatnonzero(np.isin(by, units))
            sizes[layout.member] = len(members)
            index[layout.member] = _index(members)
            at = np.full(whole.sizes[layout.unit], -1, dtype=np.int64)
            at[units] = np.arange(len(units))
            state[ArrayNames.variable(layout.by)] = at[by[members]].astype(by.dtype)   # the chunk's own unit numbers
            order, start = group_index(state[ArrayNames.variable(layout.by)], len(units))
            state[ArrayNames.constant("order", layout.by)] = order
            state[ArrayNames.constant("start", layout.by)] = start
        self._back: list[tuple[str, int, np.ndarray]] = []      # gathered arrays to write back
        aliases = whole.plan.aliases()
        for key, a in whole.state.items():
            if key in state or key in aliases:
                continue
            if ArrayNames.size_of(key) in sizes:
                state[key] = sizes[ArrayNames.size_of(key)]
            elif key in layout.global_stats or key in layout.local_sums:
                state[key] = np.zeros_like(a)
            elif (axis := layout.cut_axis(key)) is not None and isinstance(a, np.ndarray) and a.ndim == len(
                    layout.axes[key]):
                where = index[layout.axes[key][axis]]
                if isinstance(where, slice) and axis == 0:
                    state[key] = a[where]        # (a run of rows of a C array: a C view, no new compilation)
                else:
                    where = np.arange(where.start, where.stop) if isinstance(where, slice) else where
                    state[key] = np.ascontiguousarray(np.take(a, where, axis=axis))
                    if ArrayNames.is_local_state(key) or ArrayNames.variable_of(key) in whole.plan.point:
                        self._back.append((key, axis, where))
            else:
                state[key] = a
        for alias, target in aliases.items():
            state[alias] = state[target]
        self.program = Program(whole.model, whole.module, sizes, state, given=whole.given,
                               structure=whole.structure)

    def local_step(self, tol: float | None = None, max_repeats: int = 1000) -> int:
        """The local steps of the schedule on this chunk, the globals fixed; repeated until no local q's
        parameter moves by more than ``tol`` (relative to its largest magnitude) when ``tol`` is given.
        Then the chunk's statistics are summed and its q written back.  Returns the number of repeats."""
        p = self.program
        keys = [k for v in self.layout.local_latents for k in p.plan.latents[v].state if ArrayNames.is_qparam(k)]
        repeats = 0
        while True:
            before = [p.state[k].copy() for k in keys] if tol is not None else None
            for var in self.layout.local_steps:
                p.update(var)
            repeats += 1
            if before is None or repeats >= max_repeats or all(
                    np.max(np.abs(p.state[k] - b), initial=0.0) <= tol * max(1.0, np.max(np.abs(b), initial=0.0))
                    for k, b in zip(keys, before)):
                break
        p.refresh_statistics()
        self.scatter()
        return repeats

    def scatter(self) -> None:
        """Write the chunk's gathered arrays back into the whole program's."""
        for key, axis, where in self._back:
            np.moveaxis(self.whole.state[key], axis, 0)[where] = np.moveaxis(self.program.state[key], axis, 0)

    def bound(self) -> float:
        """The chunk's share of the ELBO with the globals fixed: the terms of the factors inside the units'
        plates and the entropies of the local q (ppvi.infer.given.scores, summed over the chunk's units)."""
        p = self.program
        p.refresh_statistics()
        terms = p.expected_terms()
        return float(np.sum(terms[list(self.layout.unit_factors)])) + sum(
            p.entropy(v) for v in self.layout.local_latents)


def split(units: int, chunks: int) -> list[np.ndarray]:
    """``units`` indices in at most ``chunks`` contiguous runs of sizes differing by at most one."""
    return [c for c in np.array_split(np.arange(units), max(1, min(chunks, units))) if len(c)]


def add_statistics(whole: Program, layout: Layout, parts: list[Chunk], scale: float = 1.0) -> None:
    """The whole program's global statistics: the chunks' shares summed in chunk order (times ``scale``);
    its statistics with a unit axis are the chunks' own rows already.  Its local sums too (never scaled:
    they are the chunks' own)."""
    for key in layout.global_stats:
        _sum_into(whole.state[key], parts, key)
        if scale != 1.0:
            whole.state[key] *= scale
    add_local_sums(whole, layout, parts)
    whole.stale = False


def add_local_sums(whole: Program, layout: Layout, parts: list[Chunk]) -> None:
    """The whole program's local sums (a chain's entropy and Σ log Z): the chunks' summed in chunk order."""
    for key in layout.local_sums:
        _sum_into(whole.state[key], parts, key)


def _sum_into(out: np.ndarray, parts: list[Chunk], key: str) -> None:
    out[...] = parts[0].program.state[key]
    for c in parts[1:]:
        out += c.program.state[key]
