"""Bernoulli(p): the SymPy side in ``symbolic.py``; the host side here (ppvi.families.unit)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ppvi.codegen.plan import ArrayNames

from ..unit import Params, State, Unit, entropy_by_rows, plogp, point_entropy

__all__ = ["UNIT", "BernoulliUnit"]


class BernoulliUnit(Unit):
    name = "Bernoulli"
    standard = ("p",)
    finish = "finish_bernoulli"
    in_eta = {"p": "σ(η[x])"}
    imputed = ("p",)
    shape_of = "p"
    expectation = ("q", "p")
    discrete = True
    logit = True
    head = "sigmoid"

    def mean(self, p: Params) -> np.ndarray:
        return p["p"]

    def variance(self, p: Params) -> np.ndarray:
        return p["p"] * (1 - p["p"])

    def quantile(self, p: Params, prob: float) -> np.ndarray:
        return (prob > 1 - p["p"]).astype(float)       # scipy.stats.bernoulli.ppf

    def sample(self, p: Params, n: int, rng: np.random.Generator) -> np.ndarray:
        return (rng.random((n, *self.value_shape(p))) < p["p"]).astype(np.int64)

    def log_density(self, p: Params, x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.where(x == 1, np.log(p["p"]), np.log1p(-p["p"]))

    def marginal(self, p: Params, index: tuple[int, ...]) -> Any:
        from scipy import stats

        return stats.bernoulli(p["p"][index])

    def prior_moments(self, args: Params) -> tuple[np.ndarray, np.ndarray]:
        return args["p"], args["p"] * (1 - args["p"])

    def log_p(self, x: np.ndarray, args: Params) -> np.ndarray:
        """log p(x) for x in {0, 1}; with ``logit`` ψ (p = sigmoid(ψ)): log p(1) = −softplus(−ψ) and
        log p(0) = −softplus(ψ)."""
        if "logit" in args:
            return -np.logaddexp(0.0, np.where(x == 1, -args["logit"], args["logit"]))
        return np.where(x == 1, np.log(args["p"]), np.log1p(-args["p"]))

    def natural(self, p: Params) -> Params:
        q = np.clip(p["p"], 1e-300, 1 - 1e-16)
        return {"x": np.log(q) - np.log1p(-q)}

    def init(self, s: State, v: str, rng: np.random.Generator, info: Any) -> None:
        p = s[ArrayNames.qparam(v, "p")]
        if info.scope == "local":
            rng.random(out=p)            # uniform on (0.05, 0.95), drawn in place: no temporary as big as q
            p *= 0.9
            p += 0.05
        else:
            p[...] = 0.5
        entropy_by_rows(p, s[ArrayNames.entropy(v)], lambda r: -(plogp(r) + plogp(1 - r))[:, 0])

    def clamp(self, s: State, v: str, values: np.ndarray, missing: np.ndarray) -> None:
        seen = ~missing
        s[ArrayNames.qparam(v, "p")][seen] = values[seen]
        point_entropy(s, v, seen)

    def outside(self, p: Params) -> str | None:
        if not np.all((p["p"] >= 0) & (p["p"] <= 1)):
            return "`p` must lie in [0, 1]"
        return None


UNIT = BernoulliUnit()
