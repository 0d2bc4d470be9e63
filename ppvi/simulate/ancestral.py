"""Ancestral sampling: every ``~`` statement in the order of its dependencies, each drawn given its parents.

The checker orders the statements so that each comes after the variables its
arguments read (:meth:`ppvi.language.check._Checker.draw_order`); here each is
drawn once per draw and element of its plates, its arguments evaluated at the
values drawn so far (:mod:`ppvi.simulate.values`).  Latents given from q (a
posterior predictive simulation) are not drawn again.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ppvi.errors import Reporter
from ppvi.families.registry import UNITS, unit_of, unit_of_distribution
from ppvi.families.unit import full
from ppvi.io import posterior
from ppvi.io.data import check_dims
from ppvi.io.draws import seed_of, whole
from ppvi.language.check import CheckedModel
from ppvi.language.sequences import refuse_chains
from ppvi.result import Result
from ppvi.simulate.inputs import Setting, from_data, from_result
from ppvi.simulate.joint import arguments, draw_slices
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
    for f in setting.model.factors:
        if f.target in given or unit_of_distribution(f.dist).auxiliary:    # (integrated out, not drawn)
            continue
        args = arguments(f, Values(arrays, setting.sizes))
        plate_shape = (draws, *(setting.sizes[d] for _, d in f.plates))
        x = draw(f.dist, args, plate_shape, rng)
        # plates in loop order -> the variable's axes in its subscripts' order
        loops = [v for v, _ in f.plates]
        order = [0, *(1 + loops.index(i) for i in f.target_index)]
        x = np.transpose(x, order + list(range(len(order), x.ndim)))
        out[f.target] = arrays[f.target] = np.ascontiguousarray(x)
    return out


def draw(dist: str, args: dict[str, np.ndarray], plate_shape: tuple[int, ...],
         rng: np.random.Generator) -> np.ndarray:
    """One value of ``dist`` for each draw and plate element: ``(*plate_shape, *event)``."""
    if "logit" in args:
        from scipy.special import expit

        args = {"p": expit(args.pop("logit"))}
    if dist == "NegativeBinomial":     # successes before the r-th failure: numpy counts failures, p ↔ 1 − p
        f = {k: full(v, plate_shape, 0) for k, v in args.items()}
        return rng.negative_binomial(f["r"], 1 - f["p"])
    return UNITS[dist].draw(args, plate_shape, rng)


def no_energy(model: CheckedModel) -> None:
    """Ancestral sampling draws each variable given its parents; `factor` energy terms are no conditional."""
    energy = next((f for f in model.factors if f.energy), None)
    if energy is not None:
        raise Reporter(model.path, model.text).fail(
            "the model has `factor` energy terms, so it is no product of conditional distributions and "
            "has no ancestral sampler", energy.span, "draw from a fit's q instead: `result.sample(n)`")


def sample_prior(model: CheckedModel, draws: int, data: object = None, seed: int | None = None,
                 dims: Mapping[str, int] | None = None, where: str = "sample_prior") -> dict[str, np.ndarray]:
    """``draws`` draws of every latent and data variable from the prior; covariates, params and sizes from
    ``data`` and ``dims``."""
    refuse_chains(model, "sampling", "draws along a chain, element after element, are not built yet")
    draws = whole(where, "draws", draws, 1)
    rng = seed_of(where, seed)
    no_energy(model)
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
    setting.check_memory(draws, setting.drawn(observed=True), where)
    latents = {name: posterior.sample(q.family, dict(q.params), draws, rng) for name, q in result.q.items()
               if not unit_of(q.family).auxiliary}
    return {**latents, **simulate(setting, draws, rng, given=latents)}
