"""Normal(mean, sd): the SymPy side in ``symbolic.py``; the host side here (ppvi.families.unit)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ppvi.codegen.plan import ArrayNames

from ..unit import LOG_2PI, Params, State, Unit, fill, point_entropy

__all__ = ["UNIT", "NormalUnit"]


class NormalUnit(Unit):
    name = "Normal"
    standard = ("mean", "sd")
    finish = "finish_normal"
    in_eta = {"mean": "η[x] / (−2 η[x²])", "sd": "1/√(−2 η[x²])"}
    shape_of = "mean"
    expectation = ("q", "mean")
    located = True
    location = "mean"
    head = "gaussian"
    chained = True
    lag_one_of = "sd"
    shifted = True

    def lag_one_shape(self, p: Params) -> tuple[int, ...] | None:
        # Cov(xₜ₋₁, xₜ) per element of the chains of scalars: (…, T), the plates before t each a sequence
        return tuple(p["mean"].shape) if p["mean"].ndim >= 1 else None

    def chain_sample(self, p: Params, lag_one: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        from ..mvnormal import chain        # (the chain of D = 1)

        return chain.sample(p["mean"][..., None], (p["sd"] ** 2)[..., None, None], lag_one[..., None, None], n,
                            rng)[..., 0]

    def chain_elements(self, p: Params, lag_one: np.ndarray, x: np.ndarray) -> np.ndarray:
        from ..mvnormal import chain

        return chain.elements(p["mean"][..., None], (p["sd"] ** 2)[..., None, None], lag_one[..., None, None],
                              np.asarray(x, dtype=float)[..., None])

    def mean(self, p: Params) -> np.ndarray:
        return p["mean"]

    def variance(self, p: Params) -> np.ndarray:
        return p["sd"] ** 2

    def quantile(self, p: Params, prob: float) -> np.ndarray:
        from scipy.special import ndtri

        return p["mean"] + np.sqrt(self.variance(p)) * ndtri(prob)

    def sample(self, p: Params, n: int, rng: np.random.Generator) -> np.ndarray:
        return p["mean"] + p["sd"] * rng.standard_normal((n, *self.value_shape(p)))

    def log_density(self, p: Params, x: np.ndarray) -> np.ndarray:
        z = (x - p["mean"]) / p["sd"]
        return -0.5 * z * z - np.log(p["sd"]) - 0.5 * math.log(2 * math.pi)

    def marginal(self, p: Params, index: tuple[int, ...]) -> Any:
        from scipy import stats

        return stats.norm(p["mean"][index], p["sd"][index])

    def prior_moments(self, args: Params) -> tuple[np.ndarray, np.ndarray]:
        """By sd, precision or variance, whichever the prior gives."""
        if "sd" in args:
            v = args["sd"] ** 2
        elif "precision" in args:
            v = 1 / args["precision"]
        else:
            v = args["variance"]
        return np.broadcast_arrays(args["mean"], v)

    def draw(self, args: Params, plate_shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        f = self.full(args, plate_shape)
        sd = f["sd"] if "sd" in f else f["precision"] ** -0.5 if "precision" in f else np.sqrt(f["variance"])
        return f["mean"] + sd * rng.standard_normal(plate_shape)

    def log_p(self, x: np.ndarray, args: Params) -> np.ndarray:
        """One of sd, precision τ, variance: ½ log(τ / 2π) − ½ τ (x − μ)²."""
        log_tau = (-2 * np.log(args["sd"]) if "sd" in args else np.log(args["precision"]) if "precision" in args
                   else -np.log(args["variance"]))
        return 0.5 * (log_tau - LOG_2PI) - 0.5 * np.exp(log_tau) * (x - args["mean"]) ** 2

    def natural(self, p: Params) -> Params:
        tau = p["sd"] ** -2.0
        return {"x": p["mean"] * tau, "x2": -tau / 2}

    def init(self, s: State, v: str, rng: np.random.Generator, info: Any) -> None:
        """N(0, 1): H = ½ (1 + log 2π)."""
        fill(s, v, {("q", "mean"): 0.0, ("q", "sd"): 1.0, ("m", "x2"): 1.0, ("h",): 0.5 * (1 + LOG_2PI)})

    def clamp(self, s: State, v: str, values: np.ndarray, missing: np.ndarray) -> None:
        seen = ~missing
        x = values[seen]
        s[ArrayNames.qparam(v, "mean")][seen] = x
        s[ArrayNames.qparam(v, "sd")][seen] = 0.0
        s[ArrayNames.moment(v, "x2")][seen] = x * x
        point_entropy(s, v, seen)

    def spread(self, variance: float, shape: tuple[int, ...]) -> np.ndarray:
        """An isotropic spread of q's shape: the variance of every entry."""
        return np.full(shape, variance)

    def located_at(self, s: State, v: str, mean: np.ndarray, spread: np.ndarray) -> None:
        """q(v) = N(mean, spread) (variances), its moments and entropy too."""
        s[ArrayNames.qparam(v, "mean")][...] = mean
        s[ArrayNames.qparam(v, "sd")][...] = np.sqrt(spread)
        s[ArrayNames.moment(v, "x2")][...] = mean * mean + spread
        s[ArrayNames.entropy(v)][...] = 0.5 * (1 + LOG_2PI + np.log(spread))


UNIT = NormalUnit()
