"""Beta(a, b): the SymPy side in ``symbolic.py``; the host side here (ppvi.families.unit)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ppvi.codegen.plan import ArrayNames

from ..unit import EPS, TINY, Params, State, Unit, fill, log_gamma_draws, point_entropy

__all__ = ["UNIT", "BetaUnit"]


class BetaUnit(Unit):
    name = "Beta"
    standard = ("a", "b")
    finish = "finish_beta"
    in_eta = {"a": "η[log x] + 1", "b": "η[log(1−x)] + 1"}
    imputed = ("a", "b")
    shape_of = "a"

    def mean(self, p: Params) -> np.ndarray:
        return p["a"] / (p["a"] + p["b"])

    def variance(self, p: Params) -> np.ndarray:
        # (a product of ratios: the point mass of an observed entry has parameters near 2⁶⁰⁰)
        a, b = p["a"], p["b"]
        return a / (a + b) * (b / (a + b)) / (a + b + 1)

    def quantile(self, p: Params, prob: float) -> np.ndarray:
        from scipy.special import betaincinv

        return betaincinv(p["a"], p["b"], prob)

    def sample(self, p: Params, n: int, rng: np.random.Generator) -> np.ndarray:
        """X = G_a / (G_a + G_b) from log-gamma draws (no 0/0 when both are tiny)."""
        shape = (n, *self.value_shape(p))
        la, lb = log_gamma_draws(p["a"], shape, rng), log_gamma_draws(p["b"], shape, rng)
        return np.clip(np.exp(-np.logaddexp(0.0, lb - la)), TINY, 1 - EPS)

    def log_density(self, p: Params, x: np.ndarray) -> np.ndarray:
        from scipy.special import betaln

        a, b = p["a"], p["b"]
        return (a - 1) * np.log(x) + (b - 1) * np.log1p(-x) - betaln(a, b)

    def marginal(self, p: Params, index: tuple[int, ...]) -> Any:
        from scipy import stats

        return stats.beta(p["a"][index], p["b"][index])

    def log_p(self, x: np.ndarray, args: Params) -> np.ndarray:
        from scipy import special

        a, b = args["a"], args["b"]
        return special.xlogy(a - 1, x) + special.xlog1py(b - 1, -x) - special.betaln(a, b)

    def natural(self, p: Params) -> Params:
        return {"logx": p["a"] - 1, "log1mx": p["b"] - 1}

    centred = True

    def centred_at(self, s: State, v: str, mean: np.ndarray, prior: Params) -> None:
        from scipy.special import betaln, digamma

        a0, b0 = np.broadcast_to(prior["a"], mean.shape), np.broadcast_to(prior["b"], mean.shape)
        a, b = a0 + (a0 + b0) * mean, b0 + (a0 + b0) * (1 - mean)
        psi = digamma(a + b)
        h = betaln(a, b) - (a - 1) * digamma(a) - (b - 1) * digamma(b) + (a + b - 2) * psi
        fill(s, v, {("q", "a"): a, ("q", "b"): b, ("m", "x"): a / (a + b), ("m", "logx"): digamma(a) - psi,
                    ("m", "log1mx"): digamma(b) - psi, ("h",): h})

    def init(self, s: State, v: str, rng: np.random.Generator, info: Any) -> None:
        """Beta(1, 1), uniform on (0, 1): E[log x] = ψ(1) − ψ(2) = −1, H = 0."""
        fill(s, v, {("q", "a"): 1.0, ("q", "b"): 1.0, ("m", "x"): 0.5, ("m", "logx"): -1.0, ("m", "log1mx"): -1.0,
                    ("h",): 0.0})

    def clamp(self, s: State, v: str, values: np.ndarray, missing: np.ndarray) -> None:
        """The moments are the datum's; the parameters a point mass to rounding (see the Gamma's):
        a = x·2⁶⁰⁰, b = (1 − x)·2⁶⁰⁰, sd about 2⁻³⁰⁰."""
        seen = ~missing
        x = values[seen]
        s[ArrayNames.qparam(v, "a")][seen] = np.ldexp(x, 600)
        s[ArrayNames.qparam(v, "b")][seen] = np.ldexp(1.0 - x, 600)
        s[ArrayNames.moment(v, "x")][seen] = x
        s[ArrayNames.moment(v, "logx")][seen] = np.log(x)
        s[ArrayNames.moment(v, "log1mx")][seen] = np.log1p(-x)
        point_entropy(s, v, seen)


UNIT = BetaUnit()
