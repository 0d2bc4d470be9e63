"""Evaluate derived natural parameters numerically at random points."""

from __future__ import annotations

import numpy as np

from ppvi.derive.meanfield import derive
from ppvi.derive.numeric import Env, evaluate
from ppvi.language import load, loads
from conftest import MODELS, SEED_19_57  # noqa: F401  (re-exported for the derive tests)




def derivation(stem_or_text: str):
    if "\n" in stem_or_text:
        return derive(loads(stem_or_text))
    return derive(load(str(MODELS / f"{stem_or_text}.ppvi")))


def eta(deriv, var: str, stat: str, env: Env, **at: int) -> float:
    q = deriv.q[var]
    names = [i for i in q.index + q.event + ((q.extra,) if q.extra is not None else ())]
    bound = {i: at[str(i.label)] for i in names if str(i.label) in at}
    return evaluate(q.natural[stat], env, bound)


def spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T + d * np.eye(d)


def simplex(rng: np.random.Generator, *shape: int) -> np.ndarray:
    p = rng.random(shape) + 0.1
    return p / p.sum(axis=-1, keepdims=True)
