"""PolyaGamma(b, c): the SymPy side in ``symbolic.py`` (and why the family is what it is); the host side
here (ppvi.families.unit)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..unit import Params, State, Unit, fill

__all__ = ["UNIT", "PolyaGammaUnit"]

TERMS = 200     # terms of the series of a draw; the rest is replaced by its mean


class PolyaGammaUnit(Unit):
    name = "PolyaGamma"
    standard = ("b", "c")
    finish = "finish_polya_gamma"
    in_eta = {"b": "η[log h_b(x)/b]", "c": "√(−2 η[x])"}
    shape_of = "b"
    auxiliary = True      # (a logistic link's weight: integrated out exactly, never drawn, adds 0 to log p)

    def mean(self, p: Params) -> np.ndarray:
        return moments(p["b"], p["c"])[0]

    def variance(self, p: Params) -> np.ndarray:
        return moments(p["b"], p["c"])[1]

    # (no quantile: the law's CDF is an alternating series, and nothing downstream needs its quantiles)

    def sample(self, p: Params, n: int, rng: np.random.Generator) -> np.ndarray:
        """ω = (1/2π²) Σ_k g_k / ((k − ½)² + c²/4π²), g_k ~ Gamma(b, 1) (Polson et al. 2013, eq. 1), its first
        TERMS terms drawn and the tail by its mean (it holds about 1/(π² TERMS) of ω's mean)."""
        b, c = np.asarray(p["b"], dtype=float), np.asarray(p["c"], dtype=float)
        shape = (n, *self.value_shape(p))
        out = np.zeros(shape)
        shift = c * c / (4 * math.pi ** 2)
        for k in range(1, TERMS + 1):
            out += rng.gamma(np.broadcast_to(b, shape)) / ((k - 0.5) ** 2 + shift)
        k = np.arange(TERMS + 1, 20 * TERMS + 1)[:, None]
        tail = (1.0 / ((k - 0.5) ** 2 + np.ravel(shift)[None, :])).sum(0).reshape(np.shape(shift))
        return (out + b * tail) / (2 * math.pi ** 2)

    def natural(self, p: Params) -> Params:
        return {"x": -p["c"] ** 2 / 2, "base": p["b"]}

    def init(self, s: State, v: str, rng: np.random.Generator, info: Any) -> None:
        """PG(1, 0): E[ω] = 1/4, the weight of a Bernoulli at ψ = 0 (the first sweep sets b from the model)."""
        fill(s, v, {("q", "b"): 1.0, ("q", "c"): 0.0, ("m", "x"): 0.25, ("m", "base"): 0.0, ("h",): 0.0})


def moments(b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean b tanh(c/2)/(2c) and variance b (sinh c − c) / (4c³ cosh²(c/2)) of PG(b, c) (Polson et al. 2013),
    by their series b/4 − bc²/48 and b/24 − bc²/160·… near c = 0."""
    b, c = np.asarray(b, dtype=float), np.abs(np.asarray(c, dtype=float))
    small = c < 1e-2
    safe = np.where(small, 1.0, c)
    c2 = c * c
    mean = np.where(small, b * (0.25 - c2 / 48), b * np.tanh(safe / 2) / (2 * safe))
    var = np.where(small, b * (1 / 24 - c2 / 240),
                   b * (np.sinh(np.minimum(safe, 700)) - safe) / (4 * safe ** 3 * np.cosh(np.minimum(safe, 700) / 2) ** 2))
    return mean, var


UNIT = PolyaGammaUnit()
