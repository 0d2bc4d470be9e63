"""The harness's checks of one generated module at a random valid state (issue 14, build 1).

1. ``compiled_equals_python`` — every kernel compiled by Numba equals the same kernel run as plain Python;
2. ``updates_equal_derivation`` — after each update kernel, q equals the derived η (Derivation.q[var].natural)
   evaluated by the reference evaluator (ppvi.derive.numeric) at the moments before the update;
3. ``local_step_statistics`` — the statistics a local step leaves equal a fresh statistics pass;
4. ``elbo_equals_reference`` — the compiled ELBO equals 19.7 from Derivation.elbo_terms(), term by term;
and ``structure`` — one kernel per PLAN entry, called with its own arguments, no statistic that grows
faster than the data and q.

Each returns a list of problems (empty when the module passes), so a failure names every discrepancy.
"""

from __future__ import annotations

import ast as pyast
from collections import Counter

import numpy as np
import sympy as sp
from scipy import special

from harness_state import (MOMENTS, NATURAL, PARAMS, Subject, copies, copy_state, entropy, moments, natural, observed,
                           read_q, shape_of)
from ppvi.codegen.plan import ArrayNames, KernelSpec

# ~1e-12 relative between the compiled and the plain-Python kernel (one source, rounding only: fused
# multiply-adds, libm against LLVM's intrinsics); the reference evaluator sums in another order.
RTOL_PYTHON = 1e-11
RTOL_REFERENCE = 1e-9
# A Newton-updated q (exp links, docs/derivation.md section 10) stops where the line search can no longer tell
# the ELBO's values apart (its rounding, ε|f|): a stationary point located by function values is found to
# about √ε ≈ 1.5e-8 relative, so η read at it against the kernel's stored q agree to that, not to 1e-9.
RTOL_NEWTON = 1e-6
# Values that are 0 in exact arithmetic (the entropy of a stick fixed at 1) come out as ±1e-16: an error is
# relative to max(|want|, ABS_FLOOR) at least.
ABS_FLOOR = 1e-6
# The group block iterates q(g[d]) to a relative change of BLOCK_TOL = 1e-4 (codegen.module), not to its
# exact fixed point: the group latent is within a few BLOCK_TOL of its update at the final members.
RTOL_BLOCK = 5e-3
# Elements (plate positions, columns, examples) of one latent or param evaluated by the reference evaluator, at
# most: a deterministic sample beyond (its tree walk costs milliseconds an element).
MAX_ELEMENTS = 32
MAX_COLUMNS = 4         # (a unit column's update needs every row of it: D elements each)
MAX_EXAMPLES = 256      # (an example's L1 conditions need only its linear term: M elements)


class HarnessFailure(AssertionError):
    """A check failed, or a fit lowered the ELBO."""


class FalseRefusal(AssertionError):
    """derive refused a model that is conjugate by construction."""


def mismatch(got, want, rtol: float) -> str | None:
    """None when got ≈ want elementwise: |got − want| ≤ rtol (|want| + max |want|), NaN and ±inf where the
    other has them; else where and by how much they differ."""
    a, b = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    if a.shape != b.shape:
        if a.size == b.size == 1:
            a, b = a.reshape(()), b.reshape(())
        else:
            return f"shape {a.shape} against {b.shape}"
    an, bn = np.isnan(a), np.isnan(b)
    if np.any(an != bn):
        i = np.unravel_index(np.argmax(an != bn), a.shape) if a.shape else ()
        return f"NaN at {list(i)}: {a[i]!r} against {b[i]!r}"
    fin = np.isfinite(a) & np.isfinite(b)
    odd = ~fin & ~an & (a != b)
    if np.any(odd):
        i = np.unravel_index(np.argmax(odd), a.shape) if a.shape else ()
        return f"infinite at {list(i)}: {a[i]!r} against {b[i]!r}"
    if not np.any(fin):
        return None
    scale = float(np.max(np.abs(b[fin])))
    err = np.where(fin, np.abs(a - b) / (np.abs(b) + max(scale, ABS_FLOOR)), 0.0)
    worst = float(np.max(err))
    if worst > rtol:
        i = np.unravel_index(np.argmax(err), a.shape) if a.shape else ()
        return f"relative error {worst:.2e} at {list(i)}: {a[i]!r} against {b[i]!r}"
    return None


# ------------------------------------------------------------------ structure
def structure(s: Subject) -> list[str]:
    """One definition per kernel name; every PLAN entry's kernel takes exactly the arguments PLAN passes it;
    the statistics' memory bounded by the data's and q's."""
    problems = []
    tree = pyast.parse(s.source)
    defs = [n.name for n in tree.body if isinstance(n, pyast.FunctionDef)]
    for name in sorted({n for n in defs if defs.count(n) > 1}):
        problems.append(f"the module defines `{name}` {defs.count(name)} times (a later one replaces the first)")
    for role, owner, info in s.kernel_infos():
        sig = s.signature_of(info.name)
        if sig != list(info.args):
            problems.append(f"{role} kernel of {owner or 'the model'}: PLAN calls `{info.name}` with "
                            f"{list(info.args)}, the function takes {sig}")
    problems += dense_statistics(s)
    return problems


def dense_statistics(s: Subject) -> list[str]:
    """Statistics must take memory linear in the data and q: the dims of every statistic array (those the
    data determine; a dim the model fixes is a constant) must all be the axes of one data, param or q array.
    Σ_t [i = item[t]][u = user[t]] … over [items, users] is not: it grows with users × items, where the
    ratings it sums grow with their number (issue 14 item 4).  A second moment over a feature or factor axis
    (Σ_n x[n, d] x[n, e] over [D, D]) is the size of an MvNormal q's covariance over that axis: only the
    data plate and the ranges of index data count with their multiplicity."""
    from ppvi.graph import build

    fixed = {n for n, d in s.model.dims.items() if d.default is not None}
    ranges = {v.support_dim for v in s.model.variables.values() if v.kind == "data" and v.support == "index"}
    ranges.add(build(s.model).data_plate)

    def free(shape) -> Counter:
        return Counter(e for e in shape if isinstance(e, str) and e not in fixed)

    def needed(shape) -> Counter:
        return Counter({e: n if e in ranges else 1 for e, n in free(shape).items()})

    held = [free(v.shape) for v in s.model.variables.values() if v.kind in ("data", "param")]
    held += [free(shape) for info in s.plan.latents.values() for shape in info.state.values()]
    problems = []
    for name, shape in (s.plan.stats.arrays if s.plan.stats else {}).items():
        need = needed(shape)
        if not any(not (need - h) for h in held):
            problems.append(f"the statistic `{name}` over {list(shape)} is not linear in the data and q: no "
                            f"data, param or q array has the axes {sorted(need.elements())}")
    return problems


# ------------------------------------------------------------------ check 1
def aliased(s: Subject, info: KernelSpec) -> str:
    """" [aliased: a = b, …]" when the kernel takes one array under two names (a moment and the q parameter
    it is), else ""."""
    args = set(info.args)
    pairs = [f"{a} = {b}" for a, b in s.plan.aliases().items() if a in args and b in args]
    return f" [aliased: {', '.join(pairs)}]" if pairs else ""


def _label(s: Subject, role: str, owner: str, info: KernelSpec) -> str:
    return f"{info.name} ({role}{' of ' + owner if owner else ''}){aliased(s, info)}"


def _differences(label: str, a: dict, b: dict, rtol: float, keys=None) -> list[str]:
    """Arrays of two states that differ (an array under two names is compared once)."""
    out, seen = [], set()
    for k in keys if keys is not None else a:
        if isinstance(a[k], np.ndarray) and id(a[k]) not in seen:
            seen.add(id(a[k]))
            m = mismatch(a[k], b[k], rtol)
            if m:
                out.append(f"{label}: `{k}` {m}")
    return out


def compiled_equals_python(s: Subject) -> list[str]:
    """Each kernel on copies of one state, compiled and as ``py_func``: every array it leaves and what it
    returns agree to ~1e-12."""
    problems = []
    for role, owner, info in s.kernel_infos():
        label = _label(s, role, owner, info)
        fast, slow = copy_state(s.base), copy_state(s.base)
        try:
            r1 = s.call(info, fast, python=False)
            r2 = s.call(info, slow, python=True)
        except Exception as e:          # (a kernel that cannot run on its own PLAN arguments)
            problems.append(f"{label}: {type(e).__name__}: {e}")
            continue
        problems += _differences(label, fast, slow, RTOL_PYTHON)
        if r1 is not None or r2 is not None:
            m = mismatch(r1, r2, RTOL_PYTHON)
            if m:
                problems.append(f"{label}: returned {m}")
    return problems


# ------------------------------------------------------------------ check 2
class Reference:
    """Values of one state for ppvi.derive.numeric: data, params, consts and MAP latents by name; q's standard
    parameters as "param(var)"; moments by (var, stat) — each at its true rank (scalars as floats)."""

    def __init__(self, s: Subject, state: dict):
        from ppvi.derive.numeric import Env

        arrays = {}
        point = set(s.plan.point)
        for v in s.model.variables.values():
            if v.kind in ("const", "data", "param") or v.name in point:
                a = state[f"v_{v.name}"]
                arrays[v.name] = float(a.reshape(-1)[0]) if not v.shape else a.reshape(shape_of(v.shape, s.sizes))
        moms = {}
        for var, q in s.derivation.q.items():
            plates = len(q.index)
            for p, extra in PARAMS[q.family].items():
                arrays[f"{p}({var})"] = _at_rank(state[f"q_{var}__{p}"], plates + extra)
            for stat, extra in MOMENTS[q.family].items():
                name = f"m_{var}__{stat}"
                value = state[name] if name in state else moments(q.family, read_q(state, var, q.family, plates))[stat]
                moms[(var, stat)] = _at_rank(np.asarray(value), plates + extra)
        for var, info in s.plan.latents.items():
            if info.chain is not None and info.family != "Categorical":
                # a Gaussian chain's block: its lag-one covariances and its joint entropy (codegen.chain)
                moms[(var, "cross")] = np.asarray(state[info.chain.pair], dtype=float)
                moms[(var, "entropy")] = float(np.sum(state[f"h_{var}"]))
            elif info.chain is not None:       # a chain's marginals, pairs and entropy (derive.chain: its statistics)
                moms[(var, "onehot")] = np.asarray(state[f"q_{var}__p"], dtype=float)
                moms[(var, "pair")] = np.asarray(state[info.chain.pair], dtype=float)
                moms[(var, "entropy")] = float(np.sum(state[f"h_{var}"]))
        self.env = Env(arrays, moms, s.sizes)

    def with_moments(self, var: str, values: dict) -> "Reference":
        """The same values but var's moments (stat -> array)."""
        return self._replaced({}, {(var, k): v for k, v in values.items()})

    def with_array(self, name: str, value) -> "Reference":
        """The same values but the array of a param or MAP latent."""
        return self._replaced({name: value}, {})

    def _replaced(self, arrays: dict, moments: dict) -> "Reference":
        other = object.__new__(Reference)
        other.env = object.__new__(type(self.env))
        other.env.dims = self.env.dims
        other.env.arrays = {**self.env.arrays, **arrays}
        other.env.moments = {**self.env.moments, **moments}
        return other

    def value(self, expr, bound=None) -> float:
        from ppvi.derive.numeric import evaluate

        return evaluate(expr, self.env, bound)

    def size(self, i: sp.Idx) -> int:
        return int(round(self.value(i.upper + 1)))


def _at_rank(a: np.ndarray, rank: int):
    """A state array as the evaluator reads it: rank-0 quantities (stored as [1]) as floats."""
    return float(np.reshape(a, -1)[0]) if rank == 0 else np.asarray(a, dtype=float)


def sample(count: int, most: int = MAX_ELEMENTS) -> list[int]:
    """The flat positions checked: all of them, or ``most`` spread deterministically over them."""
    if count <= most:
        return list(range(count))
    return sorted(np.random.default_rng(count).choice(count, size=most, replace=False).tolist())


def _masked(x, sampled):
    """x with its unsampled plate positions (the leading axes) set to NaN: compared as equal."""
    if sampled is None:
        return x
    x = np.array(x, dtype=float)
    x[~sampled] = np.nan
    return x


def _axes(q, stat: str) -> list:
    """The event axes of η for ``stat`` (as codegen.module._vector_eta lays them out)."""
    return {"onehot": [q.extra], "logp": list(q.event), "x": list(q.event), "xxT": [q.event[:1][0], q.extra]
            if q.event else [], "X": list(q.event), "logdet": []}.get(stat, [])


def _reads_itself(q) -> bool:
    from ppvi.derive.symbols import MomentBase, MomentSymbol

    return any(isinstance(n, (MomentBase, MomentSymbol)) and n.var == q.var
               for e in q.natural.values() for n in sp.preorder_traversal(e))


def joint_step(s: Subject, role: str, var: str) -> bool:
    """Whether the kernel of ``role`` updates q(var)'s elements jointly: the block Newton step of an exp link's
    Normal q whose elements share an exponent (docs/derivation.md, section 10, "Block steps"; its damped kernel
    steps element by element)."""
    from ppvi.codegen.newton import blocks

    return role != "damped" and blocks(s.derivation.q[var])


def joint_members(s: Subject, role: str, var: str) -> tuple[str, ...]:
    """The scalar q's that the block step of q(var) moves with it (derive.newton.join_blocks: an intercept in the
    shared exponent), as codegen reads them: none outside a block step."""
    nt = s.derivation.q[var].newton
    return nt.joint.members if joint_step(s, role, var) and nt.joint else ()


def moved_by_another(s: Subject, role: str, var: str) -> bool:
    """Whether q(var)'s kernel of ``role`` is no update: a member of another q's block step (its plain update)."""
    nt = s.derivation.q[var].newton
    return role == "update" and nt is not None and nt.joined is not None


def reference_eta(s: Subject, var: str, before: Reference, after: Reference | None = None,
                  joint: bool = False, rank: np.ndarray | None = None) -> tuple[dict, object]:
    """The derived η of the elements of q(var) (a sample of them, see ``sample``), each at the moments it
    sees, and which plate positions were evaluated (None: all; NaN elsewhere).  With ``after`` (a sequential
    update, 19.44: elements in C order, each from the newest values), element a reads the new moments of the
    elements before it and the old ones of the rest; ``joint`` (a block step, ``joint_step``): every element
    reads every element's new moments, the block's fixed point.  ``rank``: each element's place in the update's
    order where it is not C order (a two-colour update: colour 0's elements, then colour 1's)."""
    q = s.derivation.q[var]
    if joint and after is not None:     # (a block step's members moved with q: every read at its new moments)
        for k in joint_members(s, "update", var):
            before = before.with_moments(k, {stat: after.env.moments[(k, stat)] for stat in MOMENTS["Normal"]})
    plates = tuple(before.size(i) for i in q.index)
    count = int(np.prod(plates)) if plates else 1
    own = {}
    if after is not None and _reads_itself(q):
        for stat, extra in MOMENTS[q.family].items():
            old, new = before.env.moments[(var, stat)], after.env.moments[(var, stat)]
            pos = np.arange(count).reshape(plates + (1,) * extra) if plates else None
            own[stat] = (old, new, pos)
    seen = observed(s, var)
    if seen is None:
        chosen = sample(count)
    else:       # (the observed entries of data with missing entries: point masses no kernel finishes)
        free = np.flatnonzero(~seen)
        chosen = free[sample(len(free))].tolist()
    sampled = None
    if len(chosen) < count:
        sampled = np.zeros(count, dtype=bool)
        sampled[chosen] = True
        sampled = sampled.reshape(plates)
    out = {}
    for stat, e in q.natural.items():
        axes = _axes(q, stat)
        shape = tuple(before.size(a) for a in axes)
        arr = np.full(plates + shape, np.nan)
        for flat in chosen:
            at = np.unravel_index(flat, plates) if plates else ()
            ref = before
            if own:
                # (a Newton q, docs/derivation.md section 10: η = ∂𝓛/∂⟨T⟩ holds at the element's own new moments;
                # each statistic's positions at its own rank: an MvNormal's x and xxT differ)
                ref = before.with_moments(var, {k: new if joint else
                                                np.where(pos <= flat if q.newton is not None else
                                                         pos < flat if rank is None else rank[pos] < rank[flat],
                                                         new, old) if pos is not None else
                                                (new if q.newton is not None else old)
                                                for k, (old, new, pos) in own.items()})
            for sub in np.ndindex(*shape):
                bound = dict(zip(q.index, at)) | dict(zip(axes, sub))
                arr[tuple(at) + sub] = ref.value(e, bound)
        out[stat] = arr
    return out, sampled


def _compare_q(label: str, family: str, q_after: dict, eta: dict, state: dict, var: str, sampled=None,
               seen=None, count=1.0, rtol_eta: float = RTOL_REFERENCE) -> list[str]:
    """q after the kernel against η (at the ``sampled`` plate positions): in natural parameters, or p for the
    discrete families (where log p loses what underflows); moments, entropy and log Σ e^η consistent with q
    (but at the ``seen`` positions: the point masses of observed entries, which the kernels leave)."""
    problems = []
    free = None if seen is None else ~seen
    if family in ("Categorical", "Bernoulli"):
        want = special.softmax(eta["onehot"], axis=-1) if family == "Categorical" else special.expit(eta["x"])
        m = mismatch(_masked(q_after["p"], sampled), want, RTOL_REFERENCE)
        if m:
            problems.append(f"{label}: p {m}")
    else:
        with np.errstate(all="ignore"):     # (η of a point mass, masked)
            got = natural(family, q_after)
        for stat in NATURAL[family]:
            m = mismatch(_masked(got[stat], sampled), eta[stat], rtol_eta)
            if m:
                problems.append(f"{label}: η[{stat}] {m}")
    with np.errstate(all="ignore"):     # (q's formulas at the point masses, masked)
        mom, ent = moments(family, q_after), count * entropy(family, q_after)
    for stat, value in mom.items():
        name = f"m_{var}__{stat}"
        m = mismatch(_masked(state[name], free), _masked(np.reshape(value, state[name].shape), free),
                     RTOL_REFERENCE) if name in state else None
        if m:
            problems.append(f"{label}: moment `{name}` against q's {m}")
    m = mismatch(_masked(state[f"h_{var}"], free), _masked(np.reshape(ent, state[f"h_{var}"].shape), free),
                 RTOL_REFERENCE)
    if m:
        problems.append(f"{label}: entropy `h_{var}` against q's {m}")
    if family == "Categorical" and f"l_{var}" in state:
        lse = special.logsumexp(eta["onehot"], axis=-1)
        m = mismatch(_masked(np.reshape(state[f"l_{var}"], lse.shape), sampled), lse, RTOL_REFERENCE)
        if m:
            problems.append(f"{label}: `l_{var}` against log Σ e^η {m}")
    return problems


def _eta_arrays(state: dict, var: str, family: str, eta_shape: dict) -> dict:
    return {stat: state[f"e_{var}__{stat}"].reshape(eta_shape[stat]) for stat in NATURAL[family]}


def update_against_derivation(s: Subject, role: str, var: str, info: KernelSpec, start: dict) -> tuple[list[str], dict]:
    """Run one update kernel (compiled) from ``start``; compare q with the derived η.  Returns the problems
    and the state after."""
    q = s.derivation.q[var]
    fam = q.family
    after = copy_state(start)
    s.call(info, after)
    label = _label(s, role, var, info)
    if moved_by_another(s, role, var):      # (no update: the block step of q.newton.joined moves it, checked there)
        return [f"{label}: `{k}` changed, but q({var})'s update is another's block step" for k in start
                if not np.array_equal(start[k], after[k], equal_nan=True)], after
    before_ref = Reference(s, start)
    after_ref = Reference(s, after)
    newton = q.newton is not None       # (its damped kernel takes the same monotone Newton steps, and stores η)
    rtol = RTOL_NEWTON if newton else RTOL_REFERENCE
    rank = None
    if role == "colour":        # (elements in the colouring's order: ppvi.infer.colouring, or Σ indices mod 2)
        order = start.get(ArrayNames.constant("colour", var))
        if order is None:
            shape = tuple(before_ref.size(i) for i in q.index)
            odd = np.indices(shape).sum(axis=0).ravel() % 2
            order = np.concatenate([np.flatnonzero(odd == 0), np.flatnonzero(odd == 1)])
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
    eta, sampled = reference_eta(s, var, before_ref, None if role == "damped" and not newton else after_ref,
                                 joint=joint_step(s, role, var), rank=rank)
    if role == "damped" and newton:
        new = _eta_arrays(after, var, fam, {k: v.shape for k, v in eta.items()})
        problems = [f"{label}: stored `e_{var}__{k}` {m}" for k in eta
                    if (m := mismatch(_masked(new[k], sampled), eta[k], rtol))]
    elif role == "damped":
        alpha = float(start["c__damping"][0])
        old = _eta_arrays(start, var, fam, {k: v.shape for k, v in eta.items()})
        eta = {k: (1 - alpha) * old[k] + alpha * eta[k] for k in eta}
        new = _eta_arrays(after, var, fam, {k: v.shape for k, v in eta.items()})
        problems = [f"{label}: stored `e_{var}__{k}` {m}" for k in eta
                    if (m := mismatch(_masked(new[k], sampled), eta[k], RTOL_REFERENCE))]
    else:
        problems = []
    q_after = read_q(after, var, fam, len(q.index))
    for k in joint_members(s, role, var):     # (each member at every member's and q's new moments: the joint step)
        eta_k, _ = reference_eta(s, k, before_ref.with_moments(var, {stat: after_ref.env.moments[(var, stat)]
                                                                      for stat in MOMENTS["Normal"]}),
                                 after_ref, joint=True)
        problems += _compare_q(f"{label} (its member q({k}))", "Normal", read_q(after, k, "Normal", 0), eta_k, after, k,
                               rtol_eta=rtol)
    return problems + _compare_q(label, fam, q_after, eta, after, var, sampled, observed(s, var),
                                 copies(s, var), rtol_eta=rtol), after


def updates_equal_derivation(s: Subject) -> list[str]:
    """Every latent's update, damped update (α from the state) and local step, every param's and MAP latent's
    update, against the derivation."""
    problems = []
    for role, var, info in s.kernel_infos():
        if role in ("update", "damped", "colour", "rows") or (role == "local_step" and var in s.derivation.q):
            problems += update_against_derivation(s, role, var, info, s.base)[0]
        elif role == "block":
            problems += block_against_derivation(s, info)
        elif role == "chain":
            problems += chain_against_derivation(s, var, info)
        elif role in ("point", "local_step"):
            problems += point_against_derivation(s, role, var, info, s.base)
    return problems


def point_against_derivation(s: Subject, role: str, var: str, info: KernelSpec, start: dict) -> list[str]:
    """A param's M-step or a MAP latent's update (ppvi.derive.mstep) against its derived value, element by
    element in the kernel's order (each element from the newest values of the others):
    closed_form, newton and soft_threshold the derived value where the kernel's guards accept it (finite,
    positive for a positive support, the curvature negative or positive as the method needs), simplex
    c / Σc, unit_columns u / ‖u‖ per column, gradient the derived gradient; feature_sign the L1 problem's
    optimality conditions.  A MAP latent solved by passes to convergence (soft_threshold or newton reading
    itself) is checked by its fixed point instead."""
    pu = s.derivation.points[var]
    after = copy_state(start)
    s.call(info, after)
    label = _label(s, role, var, info)
    v = s.model.variables[var]
    shape = shape_of(v.shape, s.sizes)
    old = start[f"v_{var}"].reshape(shape)
    new = after[f"v_{var}"].reshape(shape)
    before = Reference(s, start)
    sizes = tuple(before.size(i) for i in pu.index)
    positive = pu.support == "positive"
    if pu.method == "feature_sign":
        return _l1_optimality(s, pu, label, before, new)
    count = int(np.prod(sizes)) if sizes else 1
    chosen = sample(count)
    if pu.method == "gradient":
        want = np.array([before.value(pu.value, dict(zip(pu.index, np.unravel_index(f, sizes) if sizes else ())))
                         for f in chosen])
        m = mismatch(after[f"g_{var}"].reshape(-1)[chosen], want, RTOL_REFERENCE)
        return [f"{label}: gradient `g_{var}` {m}"] if m else []
    passes = pu.kind == "point" and s.plan.points[var].sequential and pu.method in ("newton", "soft_threshold")
    want = old.copy()
    checked = np.zeros(sizes, dtype=bool)
    if pu.method == "simplex":
        rows = list(np.ndindex(*sizes[:-1]))
        for outer in [rows[i] for i in sample(len(rows))]:
            checked[outer] = True
            c = np.array([before.value(pu.value, dict(zip(pu.index, outer + (k,)))) for k in range(sizes[-1])])
            z = c.sum()
            if z > 0 and np.all(c >= 0):
                want[outer] = np.where(np.isfinite(c / z), c / z, want[outer])
    elif pu.method == "unit_columns":
        cols = list(np.ndindex(*sizes[1:]))
        for col in [cols[i] for i in sample(len(cols), MAX_COLUMNS)]:
            checked[(slice(None),) + col] = True
            # columns before this one are already updated (the loop runs over columns, C order)
            done = np.zeros(sizes[1:], dtype=bool)
            done[np.unravel_index(np.arange(np.ravel_multi_index(col, sizes[1:])), sizes[1:])] = True
            ref = before.with_array(var, np.where(done[None], new, old))
            u = np.array([ref.value(pu.value, dict(zip(pu.index, (d,) + col))) for d in range(sizes[0])])
            z = float(np.sqrt(np.sum(u * u)))
            if z > 0 and np.isfinite(z):
                want[(slice(None),) + col] = np.where(np.isfinite(u / z), u / z, want[(slice(None),) + col])
    elif passes:
        return _fixed_point(s, pu, label, Reference(s, after), new)
    else:
        for flat in chosen:
            at = np.unravel_index(flat, sizes) if sizes else ()
            checked[at] = True
            mixed = np.where(np.arange(count).reshape(sizes or ()) < flat, new, old) if sizes else old
            ref = before.with_array(var, mixed if shape else float(np.reshape(mixed, -1)[0]))
            bound = dict(zip(pu.index, at))
            value = ref.value(pu.value, bound)
            if pu.method == "soft_threshold":
                a = ref.value(pu.extra["curvature"], bound)
                if a > 0 and np.isfinite(value):
                    c, t = ref.value(pu.extra["center"], bound), ref.value(pu.extra["weight"], bound) / a
                    r = value - c
                    value = c + (r - t if r > t else r + t if r < -t else 0.0)
                else:
                    continue
            ok = np.isfinite(value) and (value > 0 or not positive)
            if pu.method == "newton":
                ok = ok and ref.value(pu.extra["curvature"], bound) < 0
            if ok:
                want[at] = value
    m = mismatch(np.where(checked, new, np.nan), np.where(checked, want, np.nan), RTOL_REFERENCE)
    return [f"{label}: `v_{var}` against the derived update {m}"] if m else []


def _l1_optimality(s: Subject, pu, label: str, ref: Reference, x: np.ndarray) -> list[str]:
    """Each example's code minimises ½ xᵀAx − cᵀx + Σ λ_i |x_i| (19.16): ∇ + λ sign x = 0 where x ≠ 0,
    |∇| ≤ λ where x = 0, ∇ = A x − c (A the derived Gram matrix, c the linear term, λ the weight)."""
    *outer, coord = pu.index
    j = pu.extra["gram_index"]
    m = ref.size(coord)
    a = np.array([[ref.value(pu.extra["gram"], {coord: p, j: q}) for q in range(m)] for p in range(m)])
    problems = []
    examples = list(np.ndindex(*(ref.size(i) for i in outer)))
    for ex in [examples[i] for i in sample(len(examples), MAX_EXAMPLES)]:
        bound = dict(zip(outer, ex))
        c = np.array([ref.value(pu.value, bound | {coord: p}) for p in range(m)])
        lam = np.array([ref.value(pu.extra["weight"], bound | {coord: p}) for p in range(m)])
        xe = x[ex]
        grad = a @ xe - c
        on = xe != 0
        scale = 1e-8 * (1 + np.max(np.abs(c)) + np.max(lam))
        worst = max(np.max(np.abs(grad + lam * np.sign(xe))[on], initial=0.0),
                    np.max((np.abs(grad) - lam)[~on], initial=0.0))
        if worst > scale:
            problems.append(f"{label}: example {list(ex)} is not an L1 optimum: optimality residual {worst:.3g} "
                            f"({int(on.sum())} nonzero of {m})")
    return problems


def _fixed_point(s: Subject, pu, label: str, ref: Reference, x: np.ndarray) -> list[str]:
    """A MAP latent solved by coordinate passes until nothing moves: one more exact coordinate step of any
    element leaves it where it is."""
    sizes = tuple(ref.size(i) for i in pu.index)
    problems = []
    elements = list(np.ndindex(*sizes))
    for at in [elements[i] for i in sample(len(elements))]:
        bound = dict(zip(pu.index, at))
        value = ref.value(pu.value, bound)
        if pu.method == "soft_threshold":
            a = ref.value(pu.extra["curvature"], bound)
            c, t = ref.value(pu.extra["center"], bound), ref.value(pu.extra["weight"], bound) / a
            r = value - c
            value = c + (r - t if r > t else r + t if r < -t else 0.0)
        if abs(value - x[at]) > 1e-6 * (1 + abs(x[at])):
            problems.append(f"{label}: element {list(at)} moves from {x[at]!r} to {value!r} under one more "
                            f"coordinate step")
    return problems[:5]


def block_against_derivation(s: Subject, info: KernelSpec) -> list[str]:
    """The group block leaves each member's q exactly its update at the final group latent, and the group
    latent within the block's tolerance of its update at the final members."""
    g, z = s.plan.block.members
    after = copy_state(s.base)
    s.call(info, after)
    ref = Reference(s, after)
    problems = []
    for var, rtol in ((z, RTOL_REFERENCE), (g, RTOL_BLOCK)):
        q = s.derivation.q[var]
        eta, sampled = reference_eta(s, var, ref)
        label = f"{_label(s, 'group block', var, info)}"
        found = _compare_q(label, q.family, read_q(after, var, q.family, len(q.index)), eta, after, var, sampled,
                           observed(s, var), copies(s, var))
        if rtol != RTOL_REFERENCE:
            got = natural(q.family, read_q(after, var, q.family, len(q.index)))
            found = [f"{label}: η[{k}] {m}" for k in eta if (m := mismatch(_masked(got[k], sampled), eta[k], rtol))]
        problems += found
    return problems


def chain_against_derivation(s: Subject, var: str, info: KernelSpec) -> list[str]:
    """A chain's kernel against the reference block (ppvi.derive.chain.update_block: the potentials evaluated
    one number at a time, then the same runtime step) from the same state: marginals, pairs, entropy, log Z."""
    from ppvi.derive.chain import update_block, update_gaussian_block

    after = copy_state(s.base)
    s.call(info, after)
    ref = Reference(s, copy_state(s.base))
    label = _label(s, "chain", var, info)
    latent = s.plan.latents[var]
    if latent.family != "Categorical":     # a Gaussian chain (update_gaussian_block: Kalman filter, RTS smoother)
        update_gaussian_block(s.derivation.gaussian[var], ref.env)
        second = "x2" if latent.family == "Normal" else "xxT"      # (a chain of scalars, or of vectors)
        got = {"x": after[f"q_{var}__mean"], second: after[f"m_{var}__{second}"], "cross": after[latent.chain.pair],
               "entropy": np.sum(after[f"h_{var}"])}
        return [f"{label}: {k} {m}" for k in got if (m := mismatch(got[k], ref.env.moments[(var, k)], RTOL_REFERENCE))]
    log_z = update_block(s.derivation.blocks[var], ref.env)
    chain = latent.chain
    got = {"onehot": after[f"q_{var}__p"], "pair": after[chain.pair],
           "entropy": np.sum(after[f"h_{var}"]), "log Z": after[f"l_{var}"][0]}
    want = {**{k: ref.env.moments[(var, k)] for k in ("onehot", "pair", "entropy")}, "log Z": log_z}
    if not chain.jointly:
        del got["log Z"], want["log Z"]
    return [f"{label}: {k} {m}" for k in got if (m := mismatch(got[k], want[k], RTOL_REFERENCE))]


# ------------------------------------------------------------------ check 3
def local_step_statistics(s: Subject) -> list[str]:
    """After each local step, the statistics it summed equal a fresh statistics pass over the q it left."""
    problems = []
    stats = s.plan.stats
    for role, var, info in s.kernel_infos():
        if role != "local_step" or not stats:
            continue
        after = copy_state(s.base)
        s.call(info, after)
        fresh = copy_state(after)
        s.refresh_statistics(fresh)
        problems += _differences(f"{_label(s, role, var, info)} against a fresh statistics pass",
                                 after, fresh, RTOL_PYTHON, keys=list(stats.arrays))
    return problems


# ------------------------------------------------------------------ check 4
def reference_elbo_terms(s: Subject, state: dict) -> list[tuple[str, float]]:
    """Each term of 19.7 from Derivation.elbo_terms(); the entropy of data with missing entries summed over the
    missing ones only (a point mass's is 0: ``ppvi derive`` says so beside the term)."""
    ref = Reference(s, state)
    out = []
    for label, e in s.derivation.elbo_terms():
        var = label[4:label.index(")]")] if label.startswith("H[q(") else None
        seen = observed(s, var) if var else None
        if seen is not None:
            q = s.derivation.q[var]
            limits = {str(lim[0]): lim[0] for lim in e.limits}
            index = [limits[str(i)] for i in q.index]
            out.append((label, sum(ref.value(e.function, dict(zip(index, at))) for at in zip(*np.nonzero(~seen)))))
        else:
            out.append((label, ref.value(e)))
    return out


def _compiled_terms(s: Subject, state: dict, info: KernelSpec) -> np.ndarray:
    return np.asarray(s.call(info, state), dtype=float)


def elbo_equals_reference(s: Subject) -> list[str]:
    """The ELBO kernel's terms against E_q[log p] of each factor, the entropies against H[q] of each latent,
    at the random state; the fast ELBO (read off the last local's update) against the whole, right after
    that update."""
    problems = []
    state = copy_state(s.base)
    terms = reference_elbo_terms(s, state)
    expected = [(lab, v) for lab, v in terms if lab.startswith("E[")]
    # (the chunked ELBO the engine takes on a large data plate, passes.chunk_elbo, is the same terms)
    for kernel in (s.plan.elbo.kernel,) + ((s.plan.elbo.large,) if s.plan.elbo.large else ()):
        got = _compiled_terms(s, copy_state(state), kernel)
        for (label, want), have in zip(expected, got):
            m = mismatch(have, want, RTOL_REFERENCE)
            if m:
                problems.append(f"ELBO term {label}: {kernel.name} {m}")
        if len(expected) != len(got):
            problems.append(f"{kernel.name} returns {len(got)} terms for {len(expected)} factors")
    for label, want in terms:
        if label.startswith("H[q("):
            var = label[4:label.index(")]")]     # ("H[q(x)] (joint)", "H[q(ω)] relative to PG(b, 0) …": notes)
            m = mismatch(np.sum(state[f"h_{var}"]), want, RTOL_REFERENCE)
            if m:
                problems.append(f"{label}: the state's entropies {m}")
    for var, info in s.plan.latents.items():
        if info.chain is not None and info.family != "Categorical":
            # the ELBO with the chain's lag-one covariances (0 in the random state): right after its block
            after = copy_state(s.base)
            s.call(info.update, after)
            s.refresh_statistics(after)
            whole = sum(v for _, v in reference_elbo_terms(s, after))
            value = float(np.sum(_compiled_terms(s, after, s.plan.elbo.kernel))) + sum(
                float(np.sum(after[f"h_{v}"])) for v in s.plan.latents)
            m = mismatch(value, whole, RTOL_REFERENCE)
            if m:
                problems.append(f"ELBO after the block of q({var}) against the reference: {m}")
    fast = s.plan.elbo.fast
    if fast is not None:
        last = s.plan.elbo.fast_after
        info = s.plan.latents[last]
        step = info.local_step or info.update
        after = copy_state(s.base)
        s.call(step, after)
        if info.local_step is None:
            s.refresh_statistics(after)
        whole = sum(v for _, v in reference_elbo_terms(s, after))
        value = float(np.sum(_compiled_terms(s, after, fast))) + float(np.sum(after[f"l_{last}"])) + sum(
            float(np.sum(after[f"h_{v}"])) for v in s.plan.latents if v != last)
        m = mismatch(value, whole, RTOL_REFERENCE)
        if m:
            problems.append(f"fast ELBO after the update of q({last}) against the reference: {m}")
    return problems
