"""NormalGamma(mean m, beta β, shape a, rate b): q(μ, λ) = N(μ | m, (βλ)⁻¹) Gamma(λ | a, b) of a pair
approximated jointly (``approximate mu, lam jointly``; docs/derivation.md, "A Normal–Gamma pair").

The result reports it as q of μ, its pair λ named (:attr:`ppvi.result.Q.pair`; q of λ is the Gamma marginal
beside it).  As a law of μ alone it is the marginal, a Student-t with 2a degrees of freedom, location m and
scale (b/(aβ))^½ (PRML 2.158–2.161); draws and densities with λ drawn too are the joint's (``sample_given``,
``log_density_given``).  Not a mean-field family and not a distribution of the language: derive never
recognises it (the pair's step is the engine's), so its unit is found by :func:`ppvi.families.unit_of` only
(``registry.JOINT``); its SymPy side (``symbolic.py``) gives the pair's entropy term of the ELBO."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..unit import Params, Unit

__all__ = ["NORMAL_GAMMA", "UNIT", "NormalGammaUnit"]


class NormalGammaUnit(Unit):
    name = "NormalGamma"
    standard = ("mean", "beta", "shape", "rate")
    finish = "finish_normal_gamma"      # (the engine's pair step: ppvi.infer.program)
    q = False
    shape_of = "mean"

    @staticmethod
    def _t(p: Params) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The Student-t marginal of μ: degrees of freedom, location, scale."""
        return 2 * p["shape"], p["mean"], np.sqrt(p["rate"] / (p["shape"] * p["beta"]))

    def mean(self, p: Params) -> np.ndarray:
        return p["mean"]

    def variance(self, p: Params) -> np.ndarray:
        """b/(β(a − 1)), infinite for a ≤ 1."""
        a = np.asarray(p["shape"], dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(a > 1, p["rate"] / (p["beta"] * (a - 1)), np.inf)

    def quantile(self, p: Params, prob: float) -> np.ndarray:
        from scipy import stats

        df, loc, scale = self._t(p)
        return stats.t.ppf(prob, df, loc, scale)

    def sample(self, p: Params, n: int, rng: np.random.Generator) -> np.ndarray:
        """μ alone: λ drawn and left out (the marginal)."""
        lam = rng.gamma(p["shape"], 1 / p["rate"], size=(n, *self.value_shape(p)))
        return self.sample_given(p, lam, rng)

    def sample_given(self, p: Params, lam: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """μ | λ ~ N(m, (βλ)⁻¹) at draws ``lam`` of λ (one per draw of μ)."""
        return p["mean"] + rng.standard_normal(np.shape(lam)) / np.sqrt(p["beta"] * lam)

    def log_density(self, p: Params, x: np.ndarray) -> np.ndarray:
        from scipy import stats

        df, loc, scale = self._t(p)
        return stats.t.logpdf(x, df, loc, scale)

    def log_density_given(self, p: Params, x: np.ndarray, lam: np.ndarray) -> np.ndarray:
        """log N(x | m, (βλ)⁻¹): with log q(λ) beside it, the joint's log density."""
        prec = p["beta"] * lam
        return 0.5 * (np.log(prec) - np.log(2 * np.pi)) - 0.5 * prec * (x - p["mean"]) ** 2

    def as_state(self, p: Params) -> Params:
        """q(μ) as the fit's state keeps it, a Normal's mean and sd (βE[λ])^-½ (docs/derivation.md, "A
        Normal–Gamma pair")."""
        with np.errstate(all="ignore"):
            return {"mean": p["mean"], "sd": (p["beta"] * p["shape"] / p["rate"]) ** -0.5}

    def marginal(self, p: Params, index: tuple[int, ...]) -> Any:
        from scipy import stats

        df, loc, scale = self._t(p)
        return stats.t(df[index], loc[index], scale[index])


UNIT = NORMAL_GAMMA = NormalGammaUnit()
