"""Gamma(shape, rate): the SymPy side in ``symbolic.py``; the host side here (ppvi.families.unit)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ppvi.codegen.plan import ArrayNames

from ..unit import EULER, TINY, Params, State, Unit, fill, point_entropy

__all__ = ["UNIT", "GammaUnit"]


class GammaUnit(Unit):
    name = "Gamma"
    exp_link = True
    standard = ("shape", "rate")
    finish = "finish_gamma"
    in_eta = {"shape": "η[log x] + 1", "rate": "−η[x]"}
    imputed = ("shape", "rate")
    shape_of = "shape"

    def mean(self, p: Params) -> np.ndarray:
        return p["shape"] / p["rate"]

    def variance(self, p: Params) -> np.ndarray:
        # (as mean / rate: the point mass of an observed entry has parameters near 2⁶⁰⁰, whose squares overflow)
        return p["shape"] / p["rate"] / p["rate"]

    def quantile(self, p: Params, prob: float) -> np.ndarray:
        from scipy.special import gammaincinv

        return gammaincinv(p["shape"], prob) / p["rate"]

    def sample(self, p: Params, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.gamma(p["shape"], 1 / p["rate"], size=(n, *self.value_shape(p)))

    def log_density(self, p: Params, x: np.ndarray) -> np.ndarray:
        from scipy.special import gammaln

        k, r = p["shape"], p["rate"]
        return k * np.log(r) - gammaln(k) + (k - 1) * np.log(x) - r * x

    def marginal(self, p: Params, index: tuple[int, ...]) -> Any:
        from scipy import stats

        return stats.gamma(p["shape"][index], scale=1 / p["rate"][index])

    def draw(self, args: Params, plate_shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        f = self.full(args, plate_shape)
        return np.maximum(rng.gamma(f["shape"]) / f["rate"], TINY)

    def log_p(self, x: np.ndarray, args: Params) -> np.ndarray:
        from scipy import special

        shape, rate = args["shape"], args["rate"]
        return special.xlogy(shape, rate) - special.gammaln(shape) + special.xlogy(shape - 1, x) - rate * x

    def natural(self, p: Params) -> Params:
        return {"x": -p["rate"], "logx": p["shape"] - 1}

    def init(self, s: State, v: str, rng: np.random.Generator, info: Any) -> None:
        """Gamma(1, 1): E[log x] = ψ(1) = −γ, H = a − log b + log Γ(a) + (1 − a) ψ(a) = 1."""
        fill(s, v, {("q", "shape"): 1.0, ("q", "rate"): 1.0, ("m", "x"): 1.0, ("m", "logx"): -EULER, ("h",): 1.0})

    def clamp(self, s: State, v: str, values: np.ndarray, missing: np.ndarray) -> None:
        """The moments are the datum's; the reported parameters a point mass to rounding: the limit is
        infinite parameters, whose mean is nan, so they are finite and large with the mean x.  Shape x·2ᵉ,
        rate 2ᵉ (powers of two: shape/rate = x exactly), e chosen for a shape near 2⁶⁰⁰ and a finite rate:
        sd/mean = shape^−½, about 2⁻³⁰⁰ (below 1e−127 e stops at 2¹⁰²³, and sd rounds to 0 anyway)."""
        seen = ~missing
        x = values[seen]
        e = np.clip(600 - np.frexp(x)[1], -1000, 1023)
        s[ArrayNames.qparam(v, "shape")][seen] = np.ldexp(x, e)
        s[ArrayNames.qparam(v, "rate")][seen] = np.ldexp(1.0, e)
        s[ArrayNames.moment(v, "x")][seen] = x
        s[ArrayNames.moment(v, "logx")][seen] = np.log(x)
        point_entropy(s, v, seen)


UNIT = GammaUnit()
