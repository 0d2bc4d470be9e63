"""Ancestral sampling: every ``~`` statement in the order of its dependencies, each drawn given its parents.

The checker orders the statements so that each comes after the variables its
arguments read (:meth:`ppvi.language.check._Checker.draw_order`); here each is
drawn once per draw and element of its plates, its arguments evaluated at the
values drawn so far (:mod:`ppvi.simulate.values`).  Latents given from q (a
posterior predictive simulation) are not drawn again.

A chain (docs/simulate.md, "Draws from a chain") is drawn by several statements:
its first elements' (``z[0] ~ …``, ``z[s, 0] ~ …``) write those elements, in
order, and its sliced loop (``for t in T[1:]:``) draws the rest element after
element, the loop variable bound to one element (:class:`Values`'s ``bound``), so
that ``z[t-1]`` reads a value already drawn.  The subscripts are the log joint's
(:func:`ppvi.simulate.joint.subscripts`).
"""

from __future__ import annotations

import itertools
from typing import Mapping

import numpy as np

from ppvi.errors import Reporter
from ppvi.families.registry import UNITS, unit_of, unit_of_distribution
from ppvi.io import joint_chain
from ppvi.io.data import check_dims
from ppvi.io.draws import seed_of, whole
from ppvi.language.check import CheckedModel, Factor
from ppvi.language.sequences import element
from ppvi.result import Result
from ppvi.simulate.inputs import Setting, from_data, from_result
from ppvi.simulate.joint import arguments, draw_slices, restarts, subscripts
from ppvi.simulate.values import Values


def simulate(setting: Setting, draws: int, rng: np.random.Generator,
             given: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """``draws`` joint draws of every variable a ``~`` statement draws and ``given`` does not hold (latents
    from q, each ``(draws, *shape)``), in statement order: arrays ``(draws, *shape)``.  Draws are made in
    chunks (:func:`ppvi.simulate.joint.draw_slices`) so that no argument's array grows with all of them."""
    given = dict(given or {})
    parts = [_simulate(setting, chunk.stop - chunk.start, rng, {k: v[chunk] for k, v in given.items()})
             for chunk in draw_slices(setting.model, setting.sizes, draws)]
    return {k: np.concatenate([p[k] for p in parts]) if len(parts) > 1 else parts[0][k] for k in parts[0]}


def _simulate(setting: Setting, draws: int, rng: np.random.Generator,
              given: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    arrays = {**setting.fixed, **given}
    out: dict[str, np.ndarray] = {}
    for f in element_order(setting.model.factors):
        if f.target in given or f.target in setting.model.allocations or unit_of_distribution(f.dist).auxiliary:
            # (integrated out, not drawn)
            continue
        if not f.fixed and not f.slices:        # every element of the variable, at once
            out[f.target] = arrays[f.target] = _draw_statement(f, Values(arrays, setting.sizes), draws, rng)
            continue
        # a chain's first element (`z[s, 0] ~ …`) or its sliced loop (`for t in T[1:]:`): the statement draws
        # some elements of the variable, written where its subscripts say; a sliced loop's element after
        # element, each given the ones drawn before (`z[s, t-1]`)
        # (a ragged chain's element that starts a sequence is drawn by the first element's statement)
        ragged = restarts(setting.model, f, Values(arrays, setting.sizes))
        starts = [range(start, setting.sizes[dict(f.plates)[var]]) for var, start in f.slices]
        for at in itertools.product(*starts):
            bound = dict(zip((var for var, _ in f.slices), at))
            by = f if ragged is None or not ragged[1][at[0]] else ragged[0]
            x = _draw_statement(by, Values(arrays, setting.sizes, bound), draws, rng)
            value = out.get(f.target)
            value = (np.zeros((draws, *setting.shape(f.target)), dtype=x.dtype) if value is None
                     else value.astype(np.result_type(value, x), copy=False))
            value[(slice(None), *(i if isinstance(i, int) else bound.get(i, slice(None)) for i in subscripts(f)))] = x
            out[f.target] = arrays[f.target] = value
    return out


def element_order(factors: tuple[Factor, ...]) -> list[Factor]:
    """The statements in the checker's order, a variable's together, its first elements' (`x[0]`, `x[1]`, in
    the elements' order) before its sliced loop's, which reads them."""
    groups: dict[str, list[Factor]] = {}
    for f in factors:
        groups.setdefault(f.target, []).append(f)
    return [f for group in groups.values() for f in sorted(group, key=lambda f: (not f.fixed, f.fixed))]


def _draw_statement(f: Factor, values: Values, draws: int, rng: np.random.Generator) -> np.ndarray:
    """One draw of statement ``f`` for each draw and element of its plates but those ``values`` binds to one
    element: ``(draws, *the target's free subscripts in order, *event)``."""
    scope = tuple((v, d) for v, d in f.plates if v not in values.bound)
    args = arguments(f, values, scope)
    x = draw(f.dist, args, (draws, *(values.sizes[d] for _, d in scope)), rng)
    # plates in loop order -> the variable's axes in its subscripts' order
    loops = [v for v, _ in scope]
    order = [0, *(1 + loops.index(i) for i in f.target_index if i not in values.bound)]
    return np.ascontiguousarray(np.transpose(x, order + list(range(len(order), x.ndim))))


def draw(dist: str, args: dict[str, np.ndarray], plate_shape: tuple[int, ...],
         rng: np.random.Generator) -> np.ndarray:
    """One value of ``dist`` for each draw and plate element: ``(*plate_shape, *event)``."""
    if "logit" in args:
        from scipy.special import expit

        args = {"p": expit(args.pop("logit"))}
    return UNITS[dist].draw(args, plate_shape, rng)


def no_energy(model: CheckedModel) -> None:
    """Ancestral sampling draws each variable given its parents; `factor` energy terms are no conditional."""
    energy = next((f for f in model.factors if f.energy), None)
    if energy is not None:
        raise Reporter(model.path, model.text).fail(
            "the model has `factor` energy terms, so it is no product of conditional distributions and "
            "has no ancestral sampler", energy.span, "draw from a fit's q instead: `result.sample(n)`")


def no_given_start(model: CheckedModel) -> None:
    """A chain whose first elements no statement draws (`for t in T[1:]: y[t] ~ …` alone) is conditioned on
    them: the data hold them, and a simulation would have to take them from there."""
    for chain in model.chains.values():
        drawn = {dict(model.factors[i].fixed)[chain.axis] for i in chain.firsts}
        if chain.body is None or len(drawn) == chain.start:
            continue
        f = model.factors[chain.body]
        first = list(subscripts(f))
        if chain.by is not None:
            # a ragged chain has no y[0] to write: its first steps are drawn by a loop riding on the same data
            raise Reporter(model.path, model.text).fail(
                f"no statement draws the first step of each sequence of `{chain.by}`: `{chain.name}` starts from "
                "the data there, and sampling does not take a chain's first elements from the data yet", f.span,
                f"to simulate, draw them: `for {first[chain.axis]} in {chain.dim}[:1] by {chain.by}:` "
                f"`{element(chain.name, first)} ~ …`")
        first[chain.axis] = min(set(range(chain.start)) - drawn)
        raise Reporter(model.path, model.text).fail(
            f"no statement draws `{element(chain.name, first)}`: the chain starts from the data there, and "
            "sampling does not take a chain's first elements from the data yet", f.span,
            f"to simulate, draw them: `{element(chain.name, first)} ~ …`")


def sample_prior(model: CheckedModel, draws: int, data: object = None, seed: int | None = None,
                 dims: Mapping[str, int] | None = None, where: str = "sample_prior") -> dict[str, np.ndarray]:
    """``draws`` draws of every latent and data variable from the prior; covariates, params and sizes from
    ``data`` and ``dims``."""
    draws = whole(where, "draws", draws, 1)
    rng = seed_of(where, seed)
    no_energy(model)
    no_given_start(model)
    setting = from_data(model, data, check_dims(model, dims or {}, where, "{name}={value!r}"), where)
    setting.check_memory(draws, setting.drawn(observed=True), where)
    return simulate(setting, draws, rng)


def sample_predictive(result: Result, draws: int, seed: int | None = None, data: object = None,
                      where: str = "sample_predictive") -> dict[str, np.ndarray]:
    """``draws`` draws of the latents from q and, given each, of the data from the model (posterior
    predictive replicates); covariates from the fit's data (or ``data``)."""
    draws = whole(where, "draws", draws, 1)
    rng = seed_of(where, seed)
    setting = from_result(result, data, where, observed=False)
    no_energy(setting.model)
    no_given_start(setting.model)
    setting.check_memory(draws, setting.drawn(observed=True), where)
    latents = joint_chain.sample_all({name: q for name, q in result.q.items()
                                      if not unit_of(q.family).auxiliary and name not in setting.model.allocations},
                                     draws, rng)
    return {**latents, **simulate(setting, draws, rng, given=latents)}
