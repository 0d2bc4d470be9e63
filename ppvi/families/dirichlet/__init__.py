"""Dirichlet(alpha): the SymPy side in ``symbolic.py``; the host side here (ppvi.families.unit)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ppvi.codegen.plan import ArrayNames

from ..unit import TINY, Params, State, Unit, digamma_half, fill, log_gamma_draws

__all__ = ["UNIT", "DirichletUnit"]


class DirichletUnit(Unit):
    name = "Dirichlet"
    standard = ("alpha",)
    finish = "finish_dirichlet"
    in_eta = {"alpha": "η[log π] + 1"}
    event = 1
    shape_of = "alpha"
    proportions = True
    vector = ("alpha", 1)

    def mean(self, p: Params) -> np.ndarray:
        return p["alpha"] / p["alpha"].sum(-1, keepdims=True)

    def variance(self, p: Params) -> np.ndarray:
        a = p["alpha"]
        a0 = a.sum(-1, keepdims=True)
        return a * (a0 - a) / (a0 ** 2 * (a0 + 1))

    def quantile(self, p: Params, prob: float) -> np.ndarray:
        """Each entry is Beta(α_k, α₀ − α_k)."""
        from scipy.special import betaincinv

        a = p["alpha"]
        return betaincinv(a, a.sum(-1, keepdims=True) - a, prob)

    def sample(self, p: Params, n: int, rng: np.random.Generator) -> np.ndarray:
        """Normalised gammas, in log space (LDA's α ≪ 1 would underflow every gamma to 0), each at least TINY."""
        alpha = p["alpha"]
        logs = log_gamma_draws(alpha, (n, *alpha.shape), rng)
        logs -= logs.max(-1, keepdims=True)
        g = np.exp(logs)
        return np.maximum(g / g.sum(-1, keepdims=True), TINY)

    def log_density(self, p: Params, x: np.ndarray) -> np.ndarray:
        from scipy.special import gammaln

        a = p["alpha"]
        return gammaln(a.sum(-1)) - gammaln(a).sum(-1) + ((a - 1) * np.log(x)).sum(-1)

    def marginal(self, p: Params, index: tuple[int, ...]) -> Any:
        """Beta(α_k, α₀ − α_k)."""
        from scipy import stats

        a = p["alpha"][index]
        return stats.beta(a, p["alpha"][index[:-1]].sum() - a)

    def log_p(self, x: np.ndarray, args: Params) -> np.ndarray:
        from scipy import special

        alpha = args["alpha"]
        alpha = np.broadcast_to(alpha, np.broadcast_shapes(alpha.shape, x.shape))
        return (special.gammaln(alpha.sum(-1)) - special.gammaln(alpha).sum(-1)
                + special.xlogy(alpha - 1, x).sum(-1))

    def natural(self, p: Params) -> Params:
        return {"logp": p["alpha"] - 1}

    centred = True

    def centred_at(self, s: State, v: str, mean: np.ndarray, prior: Params) -> None:
        from scipy.special import digamma, gammaln

        a0 = np.broadcast_to(prior["alpha"], mean.shape)
        alpha = a0 + a0.sum(-1, keepdims=True) * mean
        total = alpha.sum(-1)
        psi, psi0 = digamma(alpha), digamma(total)
        k = alpha.shape[-1]
        h = gammaln(alpha).sum(-1) - gammaln(total) + (total - k) * psi0 - ((alpha - 1) * psi).sum(-1)
        fill(s, v, {("q", "alpha"): alpha, ("m", "logp"): psi - psi0[..., None], ("m", "x"): alpha / total[..., None],
                    ("h",): h.reshape(s[ArrayNames.owned(v, "h")].shape)})

    def init(self, s: State, v: str, rng: np.random.Generator, info: Any) -> None:
        """Dirichlet(1, …, 1), uniform on the simplex: H = log B(α) = −log Γ(K)."""
        k = s[ArrayNames.qparam(v, "alpha")].shape[-1]
        fill(s, v, {("q", "alpha"): 1.0, ("m", "logp"): digamma_half(1.0) - digamma_half(float(k)),
                    ("m", "x"): 1.0 / k, ("h",): -math.lgamma(k)})


UNIT = DirichletUnit()
