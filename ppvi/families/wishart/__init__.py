"""Wishart(df, scale): the SymPy side in ``symbolic.py``; the host side here (ppvi.families.unit)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ppvi.codegen.plan import ArrayNames

from ..mvnormal import symmetric_positive_definite
from ..unit import Params, State, Unit, digamma_half, fill

__all__ = ["UNIT", "WishartUnit"]

DRAWS = 4000     # draws for the quantiles of the off-diagonal entries (no closed form)


class WishartUnit(Unit):
    name = "Wishart"
    standard = ("df", "scale")
    finish = "finish_wishart"
    in_eta = {"df": "2 η[log|X|] + D + 1", "scale": "(−2 η[X])⁻¹"}
    event = 2
    shape_of = "scale"
    expectation = ("m", "X")
    symmetric = True
    vector = ("scale", 2)

    def param_shapes(self, value: tuple[int, ...], categories: int = 0) -> dict[str, tuple[int, ...]]:
        return {"df": value[:-2], "scale": value}

    def value_of(self, p: Params) -> tuple[int, ...]:
        return p["scale"].shape

    def mean(self, p: Params) -> np.ndarray:
        return np.asarray(p["df"])[..., None, None] * p["scale"]

    def variance(self, p: Params) -> np.ndarray:
        """Var W_ij = n (S_ij² + S_ii S_jj)  (Muirhead 1982, Theorem 3.2.8)."""
        s, df = p["scale"], np.asarray(p["df"])[..., None, None]
        d = np.diagonal(s, axis1=-2, axis2=-1)
        return df * (s ** 2 + d[..., :, None] * d[..., None, :])

    def quantile(self, p: Params, prob: float) -> np.ndarray:
        """The diagonal entries are S_ii χ²_n = Gamma(n/2, rate 1/(2 S_ii)); the off-diagonal entries, whose
        law has no quantile function in SciPy, take the quantile of DRAWS draws (a fixed seed)."""
        from scipy.special import gammaincinv

        out = np.quantile(self.sample(p, DRAWS, np.random.default_rng(0)), prob, axis=0)
        df = np.asarray(p["df"], dtype=float)
        diag = np.diagonal(p["scale"], axis1=-2, axis2=-1)
        d = np.arange(p["scale"].shape[-1])
        out[..., d, d] = 2 * diag * gammaincinv(df[..., None] / 2, prob)
        return out

    def sample(self, p: Params, n: int, rng: np.random.Generator) -> np.ndarray:
        """Bartlett's decomposition: W = L A Aᵀ Lᵀ, S = L Lᵀ, A lower triangular with A_ii² ~ χ²_{n−i} and
        standard normals below the diagonal (Bartlett 1933; Anderson 2003, Theorem 7.2.1)."""
        df, scale = np.asarray(p["df"], dtype=float), p["scale"]
        d = scale.shape[-1]
        batch = scale.shape[:-2]
        lower = np.linalg.cholesky(scale)
        a = np.tril(rng.standard_normal((n, *batch, d, d)), -1)
        idx = np.arange(d)
        a[..., idx, idx] = np.sqrt(rng.chisquare(df[..., None] - idx, size=(n, *batch, d)))
        la = lower @ a
        return la @ np.swapaxes(la, -1, -2)

    def log_density(self, p: Params, x: np.ndarray) -> np.ndarray:
        from scipy.special import gammaln

        df, s = np.asarray(p["df"], dtype=float), p["scale"]
        d = s.shape[-1]
        logdet_x = np.linalg.slogdet(x)[1]
        logdet_s = np.linalg.slogdet(s)[1]
        trace = np.einsum("...ij,n...ji->n...", np.linalg.inv(s), x)
        multigamma = d * (d - 1) / 4 * math.log(math.pi) + gammaln(df[..., None] / 2 - np.arange(d) / 2).sum(-1)
        return (df - d - 1) / 2 * logdet_x - trace / 2 - df * d / 2 * math.log(2) - df / 2 * logdet_s - multigamma

    def marginal(self, p: Params, index: tuple[int, ...]) -> Any:
        """A diagonal entry is S_ii χ²_n; an off-diagonal entry has no law in scipy.stats (None)."""
        from scipy import stats

        if index[-1] != index[-2]:
            return None
        return stats.gamma(p["df"][index[:-2]] / 2, scale=2 * p["scale"][index])

    def log_p(self, x: np.ndarray, args: Params) -> np.ndarray:
        """W(X; ν, S) = |X|^{(ν−D−1)/2} exp(−tr(S⁻¹X)/2) / (2^{νD/2} |S|^{ν/2} Γ_D(ν/2))."""
        from scipy import special

        df, scale = args["df"], args["scale"]
        d = x.shape[-1]
        logdet_x = np.linalg.slogdet(x)[1]
        logdet_s = np.linalg.slogdet(scale)[1]
        trace = np.einsum("...ij,...ji->...", np.linalg.inv(scale), x)
        log_multigamma = d * (d - 1) / 4 * math.log(math.pi) + sum(special.gammaln(df / 2 - j / 2) for j in range(d))
        return ((df - d - 1) / 2 * logdet_x - trace / 2 - df * d / 2 * math.log(2) - df / 2 * logdet_s
                - log_multigamma)

    def natural(self, p: Params) -> Params:
        d = p["scale"].shape[-1]
        return {"logdet": (p["df"] - d - 1) / 2, "X": -np.linalg.inv(p["scale"]) / 2}

    def init(self, s: State, v: str, rng: np.random.Generator, info: Any) -> None:
        """W(ν = D + 1, I/ν): E[X] = I, E[log |X|] = Σᵢ ψ((ν + 1 − i)/2) + D log 2 + log |W|, and
        H = −log B(W, ν) − (ν − D − 1)/2 E[log |X|] + νD/2 with
        −log B = ν/2 log |W| + νD/2 log 2 + D(D − 1)/4 log π + Σᵢ log Γ((ν + 1 − i)/2) (PRML B.79–B.82)."""
        d = s[ArrayNames.qparam(v, "scale")].shape[-1]
        df = d + 1.0
        logdet_w = -d * math.log(df)
        elogdet = sum(digamma_half((df + 1 - i) / 2) for i in range(1, d + 1)) + d * math.log(2) + logdet_w
        log_b = -(df / 2 * logdet_w + df * d / 2 * math.log(2) + d * (d - 1) / 4 * math.log(math.pi)
                  + sum(math.lgamma((df + 1 - i) / 2) for i in range(1, d + 1)))
        h = -log_b - (df - d - 1) / 2 * elogdet + df * d / 2
        fill(s, v, {("q", "df"): df, ("q", "scale"): np.eye(d) / df, ("m", "X"): np.eye(d), ("m", "logdet"): elogdet,
                    ("h",): h})

    def outside(self, p: Params) -> str | None:
        bad = symmetric_positive_definite(p, "scale")
        if bad is None and not np.all(p["df"] > p["scale"].shape[-1] - 1):
            return "`df` must exceed D − 1"
        return bad


UNIT = WishartUnit()
