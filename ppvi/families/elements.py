"""The host side of a family's finish (docs/architecture.md, "The family unit"): its Numba finish run over
every element of q's state arrays, from η given per element or broadcast (a warm start, ``ppvi.infer.warm``).

Each family's ``finish.py`` writes that loop as a plain function and its ``set_q`` from it; the loop is
jitted on its first call (:func:`jitted`), since every warm run imports the finishes (the generated
module imports them through ``ppvi.codegen.runtime``) and a dispatcher costs a millisecond to make.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import numpy as np

from ppvi.codegen.plan import ArrayNames

__all__ = ["SetQ", "eta_of", "flat", "jitted", "scalar"]

State = dict[str, np.ndarray]
SetQ = Callable[[State, str, Mapping[str, np.ndarray]], None]
"""``set_q(state, v, eta)``: q(v)'s parameters, moments and entropy in ``state`` from η of every element."""


@functools.cache
def jitted(loop: Callable) -> Callable:
    """``loop`` compiled by Numba (cached on disk beside its module, as the finishes are), once per process."""
    from numba import njit

    return njit(cache=True)(loop)


def flat(a: np.ndarray, event: int = 0) -> np.ndarray:
    """A view of a state array with its elements along one axis (and ``event`` axes after it)."""
    out = a.reshape((-1,) + a.shape[a.ndim - event:] if event else -1)
    assert np.shares_memory(out, a) or a.size == 0
    return out


def eta_of(eta: Mapping[str, np.ndarray], stat: str, like: np.ndarray, event: int = 0) -> np.ndarray:
    """η of statistic ``stat`` for every element of the state array ``like``, laid out as :func:`flat`'s."""
    return np.ascontiguousarray(np.broadcast_to(eta[stat], like.shape), dtype=float).reshape(flat(like, event).shape)


def scalar(loop: Callable, stats: tuple[str, ...], arrays: tuple[tuple[str, ...], ...]) -> SetQ:
    """``set_q`` of a scalar family: ``loop(η of each of stats…, arrays…)`` over the elements, where
    ``arrays`` are q's arrays it writes, by role (``ArrayNames.owned``)."""
    def set_q(s: State, v: str, eta: Mapping[str, np.ndarray]) -> None:
        outs = [s[ArrayNames.owned(v, *a)] for a in arrays]
        jitted(loop)(*(eta_of(eta, st, outs[0]) for st in stats), *(flat(o) for o in outs))
    return set_q
