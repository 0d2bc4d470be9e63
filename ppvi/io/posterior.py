"""Each family of q as a numeric law: mean, variance, marginal quantiles, draws and log density.

A q is given by its standard parameters (docs/cli.md), each an array over the latent's plates; the *value* of
a draw has the latent's shape: the plates, then the event axes (D for a MvNormal, K for a Dirichlet, D × D
for a Wishart).  What each family knows is its unit's (``ppvi.families.unit_of(family)``: docs/architecture.md,
"The family unit"); this module is the numeric law's face to the reports, and conforms parameter shapes.

Quantiles are those of scipy.stats, computed by the special functions scipy.stats calls (``ndtri``,
``gammaincinv``, ``betaincinv``), imported only when asked for: scipy.stats itself takes seconds to import.
"""

from __future__ import annotations

import math

import numpy as np

from ppvi.families.normal_gamma import NORMAL_GAMMA
from ppvi.families.point import POINT
from ppvi.families.registry import UNITS, unit_of
from ppvi.families.unit import EPS, TINY

__all__ = ["EPS", "STANDARD", "TINY", "conform", "log_density", "mean", "param_shapes", "quantile", "sample",
           "value_shape", "variance"]

STANDARD: dict[str, tuple[str, ...]] = {
    **{name: u.standard for name, u in UNITS.items() if u.q}, POINT.name: POINT.standard,
    NORMAL_GAMMA.name: NORMAL_GAMMA.standard}
"""The standard parameters of every q a result file may hold (the q result schema, docs/cli.md)."""

Params = dict[str, np.ndarray]


def value_shape(family: str, p: Params) -> tuple[int, ...]:
    """The shape of one draw of the latent (its parameters conformed: see :func:`conform`)."""
    return unit_of(family).value_shape(p)


def param_shapes(family: str, value: tuple[int, ...], categories: int = 0) -> dict[str, tuple[int, ...]]:
    """The shape of each standard parameter of a q whose value has shape ``value`` (its plates, then its
    event axes): one entry per value entry, unless the family says otherwise (a MvNormal's cov per vector;
    a Wishart's df per matrix; a Categorical's p per element, over its ``categories``)."""
    return unit_of(family).param_shapes(value, categories)


def conform(family: str, p: Params, value: tuple[int, ...] | None = None) -> Params:
    """The standard parameters in their declared shapes (:func:`param_shapes`): a parameter shared along an
    axis (a Gamma's shape [K, 1] of a q over [K, D]) is broadcast, one of the same size (a rank-0 df stored
    as [1]) reshaped.  ``value`` defaults to the broadcast of the parameters' value shapes.  A parameter
    that fits neither way is a ValueError naming it."""
    p = {k: np.asarray(v) for k, v in p.items()}
    categories = unit_of(family).categories(p)
    if value is None:
        value = _value_of(family, p)
    want = param_shapes(family, tuple(value), categories)
    out = {}
    for name, shape in want.items():
        a = p[name]
        if a.shape != shape:
            try:
                a = np.broadcast_to(a, shape)
            except ValueError:
                if a.size != math.prod(shape):
                    raise ValueError(name) from None
                a = a.reshape(shape)
        out[name] = a
    return out


def _value_of(family: str, p: Params) -> tuple[int, ...]:
    try:
        return unit_of(family).value_of(p)
    except (ValueError, IndexError):
        largest = max(p.values(), key=np.size)       # (names the parameter that does not fit the largest)
        raise ValueError(next((k for k, v in p.items() if v.shape != largest.shape), STANDARD[family][-1])) from None


def mean(family: str, p: Params) -> np.ndarray:
    """E_q[x] (for a Categorical Σ_k k p_k, the file format's ``mean``; the summary shows sizes instead)."""
    return unit_of(family).mean(p)


def variance(family: str, p: Params) -> np.ndarray | None:
    """Var_q of every entry of the value (None for a Categorical, whose values are labels)."""
    return unit_of(family).variance(p)


def quantile(family: str, p: Params, prob: float) -> np.ndarray | None:
    """The ``prob`` quantile of each entry's marginal under q (None for a Categorical, and for a Pólya-Gamma
    weight: its law's CDF is an alternating series, and nothing downstream needs its quantiles)."""
    return unit_of(family).quantile(p, prob)


def sample(family: str, p: Params, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` independent draws from q, stacked on a leading axis."""
    return unit_of(family).sample(p, n, rng)


def log_density(family: str, p: Params, x: np.ndarray) -> np.ndarray:
    """log q(x) of each draw in ``x`` (leading draws axis), summed over the latent's elements.  A point q
    has no density: it adds 0."""
    return np.asarray(unit_of(family).log_density(p, x)).reshape(x.shape[0], -1).sum(1)
