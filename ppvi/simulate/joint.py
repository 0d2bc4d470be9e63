"""log p(v, h) of a checked model at values: every ``~`` statement's log density, summed.

:func:`factor_terms` gives each statement's log density for every element of its
plates (layout ``(S or 1, *plates)``); :func:`log_joint` sums them to one number
per draw, :func:`log_joint_per_datum` to one per draw and data point (the data
plate's element), for models in which every statement lies in that plate.
Draws are evaluated in chunks so that the arrays of a sum over a plate
(``W[j, i] * h[n, i]`` over n, j, i) stay within :data:`CHUNK_ENTRIES` numbers.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Iterator

import numpy as np

from ppvi.families.registry import unit_of_distribution
from ppvi.language import ast
from ppvi.language.check import FLAT, CheckedModel, Factor, walk
from ppvi.simulate.density import log_density
from ppvi.simulate.values import Scope, Values, evaluate, target

CHUNK_ENTRIES = 1 << 22          # numbers in the largest intermediate array of one chunk of draws (32 MiB)


def arguments(f: Factor, values: Values, scope: Scope | None = None) -> dict[str, np.ndarray]:
    """A statement's arguments at ``values``, each in the layout of its plates (or of ``scope``: its plates
    but those bound to one element in ``values``); a Bernoulli's ``sigmoid(ψ)`` is passed as ``logit`` ψ (its
    log density is then exact in the tails)."""
    scope = f.plates if scope is None else scope
    out = {}
    for name, expr in f.args:
        if name in ("pg", "alloc"):     # a Pólya-Gamma weight, a Poisson sum's allocation: integrated out
            continue
        if unit_of_distribution(f.dist).logit and isinstance(expr, ast.Call) and expr.func.id == "sigmoid":
            out["logit"] = evaluate(expr.args[0], values, scope)
        else:
            out[name] = evaluate(expr, values, scope)
    return out


def factor_term(f: Factor, values: Values) -> np.ndarray:
    """log p of statement ``f`` at every element of its plates: ``(S or 1, *plates)``.  A logistic link's
    Pólya-Gamma weight (ppvi.language.check.polya_gamma) is integrated out exactly: its statement adds 0,
    and the link's own law is its likelihood."""
    if f.dist == FLAT or unit_of_distribution(f.dist).auxiliary:     # (FLAT: a Poisson sum's allocation)
        return np.zeros((1,) * (1 + len(f.plates)))
    x = target(f.target, subscripts(f), values, f.plates)
    term = log_density(f.dist, x, arguments(f, values))
    for var, start in f.slices:
        # a sliced plate (`for t in T[1:]`): its first elements are another statement's; here they read
        # `z[t-1]` before the chain's start (NumPy's z[-1]), so they are evaluated but weigh nothing
        axis = 1 + [v for v, _ in f.plates].index(var)
        keep = (np.arange(term.shape[axis]) >= start).reshape((1,) * axis + (-1,) + (1,) * (term.ndim - axis - 1))
        term = np.where(keep, term, 0.0)
    return term


def restarts(model: CheckedModel, f: Factor, values: Values) -> tuple[Factor, np.ndarray] | None:
    """For the statement of a ragged chain (``for t in T[1:] by seq:``), which restarts where its sequence
    changes: its first element's statement written in the same loop (``x[t] ~ …`` over every t), and where
    the chain restarts, a bool over the loop's elements (t ≥ 1 with seq[t] ≠ seq[t-1]).  None for any other
    statement (docs/simulate.md, "Draws from a chain")."""
    chain = next((c for c in model.chains.values() if c.by is not None and c.body == f.id), None)
    if chain is None:
        return None
    by = values.arrays[chain.by][0]
    at = np.zeros(len(by), dtype=bool)
    at[1:] = by[1:] != by[:-1]
    first = model.factors[chain.firsts[0]]
    return replace(first, target_index=f.target_index, plates=f.plates, fixed=(), slices=()), at


def statement_term(model: CheckedModel, f: Factor, values: Values) -> np.ndarray:
    """:func:`factor_term`, with a ragged chain's statement replaced by its first element's where the chain
    restarts (there the element is a new sequence's first, not drawn from the one before)."""
    term = factor_term(f, values)
    ragged = restarts(model, f, values)
    if ragged is None:
        return term
    first, at = ragged
    axis = 1 + [v for v, _ in f.plates].index(subscripts(f)[model.chains[f.target].axis])
    where = at.reshape((1,) * axis + (-1,) + (1,) * (term.ndim - axis - 1))
    return np.where(where, factor_term(first, values), term)


def subscripts(f: Factor) -> tuple[str | int, ...]:
    """The target's subscripts in order: loop variables, and a first element's literal ones (``z[s, 0]``).
    (The log joint reads the target there; the ancestral sampler writes its draws there.)"""
    subs: list[str | int] = list(f.target_index)
    for axis, element in sorted(f.fixed):
        subs.insert(axis, element)
    return tuple(subs)


def log_joint(model: CheckedModel, values: Values, skip: frozenset[str] = frozenset()) -> np.ndarray:
    """log p(v, h) of every draw: shape ``(S,)``; without the statements that draw a variable in ``skip``
    (log p(v, h | g) for the globals g)."""
    total = np.zeros(values.draws())
    for chunk, part in _chunks(model, values):
        for f in model.factors:
            if f.target in skip:
                continue
            term = statement_term(model, f, part)
            total[chunk] += term.reshape(term.shape[0], -1).sum(1)
    return total


def log_joint_per_datum(model: CheckedModel, values: Values, plate: str) -> np.ndarray:
    """log p(v_n, h_n) of every draw and element n of the data plate ``plate``: shape ``(S, size)``.  Every
    statement must lie in that plate (:func:`outside_plate` names one that does not)."""
    n = values.sizes[plate]
    total = np.zeros((values.draws(), n))
    for chunk, part in _chunks(model, values):
        for f in model.factors:
            term = statement_term(model, f, part)
            axis = 1 + [d for _, d in f.plates].index(plate)
            others = tuple(a for a in range(1, term.ndim) if a != axis)
            total[chunk] += term.sum(axis=others)
    return total


def outside_plate(model: CheckedModel, plate: str) -> Factor | None:
    """The first statement that does not lie in ``plate``, or None."""
    return next((f for f in model.factors if plate not in [d for _, d in f.plates]), None)


def draw_slices(model: CheckedModel, sizes, draws: int) -> Iterator[slice]:
    """Consecutive slices of ``draws`` draws, each small enough for the model's largest statement."""
    step = max(1, CHUNK_ENTRIES // max(1, max(_entries(f, model, sizes) for f in model.factors)))
    for start in range(0, draws, step):
        yield slice(start, min(draws, start + step))


def _chunks(model: CheckedModel, values: Values) -> Iterator[tuple[slice, Values]]:
    """``values`` in consecutive slices of draws (:func:`draw_slices`)."""
    for chunk in draw_slices(model, values.sizes, values.draws()):
        yield chunk, Values({k: a[chunk] if a.shape[0] > 1 else a for k, a in values.arrays.items()}, values.sizes)


def _entries(f: Factor, model: CheckedModel, sizes) -> int:
    """Numbers per draw in the largest array of statement ``f``: its plates times the dims summed inside
    its arguments, times its value's event and the event's last axis (a matrix parameter).  (A first
    element's literal subscripts, `z[0]`, are no event.)"""
    summed = [sizes[n.dim.id] for _, e in f.args for n in walk(e) if isinstance(n, ast.PlateSum)]
    event = [sizes[e] if isinstance(e, str) else e for e in model.variables[f.target].shape[len(subscripts(f)):]]
    return math.prod(sizes[d] for _, d in f.plates) * math.prod(summed) * math.prod(event) * (event[-1] if event else 1)
