"""MvNormal(mean, cov): the SymPy side in ``symbolic.py``; the host side here (ppvi.families.unit)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ppvi.codegen.plan import ArrayNames

from ..unit import LOG_2PI, Params, State, Unit, fill, root
from . import chain

__all__ = ["UNIT", "MvNormalUnit"]


class MvNormalUnit(Unit):
    name = "MvNormal"
    standard = ("mean", "cov")
    finish = "finish_mvnormal"
    in_eta = {"cov": "(−2 η[x xᵀ])⁻¹", "mean": "cov · η[x]"}
    event = 1
    shape_of = "mean"
    expectation = ("q", "mean")
    located = True
    location = "mean"
    chained = True
    lag_one_of = "cov"

    def lag_one_shape(self, p: Params) -> tuple[int, ...] | None:
        # Cov(xₜ₋₁, xₜ) per element of the chains: (…, T, D, D), the plates before t each a sequence of its own
        return tuple(p["cov"].shape) if p["mean"].ndim >= 2 else None

    def chain_sample(self, p: Params, lag_one: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        return chain.sample(p["mean"], p["cov"], lag_one, n, rng)

    def chain_elements(self, p: Params, lag_one: np.ndarray, x: np.ndarray) -> np.ndarray:
        return chain.elements(p["mean"], p["cov"], lag_one, np.asarray(x, dtype=float))

    def param_shapes(self, value: tuple[int, ...], categories: int = 0) -> dict[str, tuple[int, ...]]:
        return {"mean": value, "cov": (*value, *value[-1:])}

    def value_of(self, p: Params) -> tuple[int, ...]:
        return np.broadcast_shapes(p["mean"].shape, p["cov"].shape[:-1])

    def mean(self, p: Params) -> np.ndarray:
        return p["mean"]

    def variance(self, p: Params) -> np.ndarray:
        return np.diagonal(p["cov"], axis1=-2, axis2=-1).copy()

    def quantile(self, p: Params, prob: float) -> np.ndarray:
        from scipy.special import ndtri

        return p["mean"] + np.sqrt(self.variance(p)) * ndtri(prob)

    def sample(self, p: Params, n: int, rng: np.random.Generator) -> np.ndarray:
        shape = self.value_shape(p)
        return p["mean"] + np.einsum("...de,n...e->n...d", root(p["cov"]), rng.standard_normal((n, *shape)))

    def log_density(self, p: Params, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        r = np.linalg.cholesky(p["cov"])
        z = np.linalg.solve(np.broadcast_to(r, (n, *r.shape)), (x - p["mean"])[..., None])[..., 0]
        logdet = np.log(np.diagonal(r, axis1=-2, axis2=-1)).sum(-1)
        return -0.5 * (z * z).sum(-1) - logdet - 0.5 * x.shape[-1] * math.log(2 * math.pi)

    def marginal(self, p: Params, index: tuple[int, ...]) -> Any:
        from scipy import stats

        return stats.norm(p["mean"][index], math.sqrt(p["cov"][index + index[-1:]]))

    def covariance(self, p: Params) -> np.ndarray:
        return np.asarray(p["cov"])

    def prior_moments(self, args: Params) -> tuple[np.ndarray, np.ndarray]:
        """By cov or precision, whichever the prior gives."""
        cov = args["cov"] if "cov" in args else np.linalg.inv(args["precision"])
        return np.broadcast_to(args["mean"], cov.shape[:-1]), cov

    def draw(self, args: Params, plate_shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        mean = args["mean"]
        matrix = args.get("precision", args.get("cov"))
        d = mean.shape[-1]
        mean = np.broadcast_to(mean, plate_shape + (d,))
        z = rng.standard_normal(plate_shape + (d,))[..., None]
        r = np.linalg.cholesky(np.broadcast_to(matrix, plate_shape + (d, d)))
        if "precision" in args:        # x = μ + L⁻ᵀ z with P = L Lᵀ: Cov x = (L Lᵀ)⁻¹
            return mean + np.linalg.solve(np.swapaxes(r, -1, -2), z)[..., 0]
        return mean + (r @ z)[..., 0]

    def log_p(self, x: np.ndarray, args: Params) -> np.ndarray:
        precision = args.get("precision")
        d = x.shape[-1]
        r = np.linalg.cholesky(precision if precision is not None else args["cov"])
        half_logdet = np.log(np.diagonal(r, axis1=-2, axis2=-1)).sum(-1)
        res = (x - args["mean"])[..., None]
        if precision is not None:        # (x − μ)ᵀ P (x − μ) = |Lᵀ (x − μ)|², P = L Lᵀ
            z = np.swapaxes(r, -1, -2) @ res
        else:                            # (x − μ)ᵀ C⁻¹ (x − μ) = |L⁻¹ (x − μ)|², C = L Lᵀ
            z = np.linalg.solve(np.broadcast_to(r, np.broadcast_shapes(r.shape, res.shape[:-1] + (d,))),
                                np.broadcast_to(res, np.broadcast_shapes(res.shape, r.shape[:-1] + (1,))))
            half_logdet = -half_logdet
        return half_logdet - 0.5 * d * LOG_2PI - 0.5 * (z[..., 0] ** 2).sum(-1)

    def natural(self, p: Params) -> Params:
        prec = np.linalg.inv(p["cov"])
        return {"x": np.einsum("...de,...e->...d", prec, p["mean"]), "xxT": -prec / 2}

    def natural_missing(self, p: Params, missing: np.ndarray) -> Params:
        """η of rows with missing entries that runtime.finish_mvnormal_missing maps back to q: the missing
        block's precision P and P μ_m, 0 elsewhere (a row's covariance is singular where it is observed)."""
        d = missing.shape[-1]
        x, xx = np.zeros_like(p["mean"]), np.zeros_like(p["cov"])
        rows_x, rows_xx, cov, mean = x.reshape(-1, d), xx.reshape(-1, d, d), p["cov"].reshape(-1, d, d), \
            p["mean"].reshape(-1, d)
        for n, m in enumerate(missing.reshape(-1, d)):
            if m.any():
                prec = np.linalg.inv(cov[n][np.ix_(m, m)])
                rows_x[n, m] = prec @ mean[n, m]
                rows_xx[n][np.ix_(m, m)] = -prec / 2
        return {"x": x, "xxT": xx}

    def init(self, s: State, v: str, rng: np.random.Generator, info: Any) -> None:
        """N(0, I): H = D/2 (1 + log 2π)."""
        d = s[ArrayNames.qparam(v, "mean")].shape[-1]
        fill(s, v, {("q", "mean"): 0.0, ("q", "cov"): np.eye(d), ("m", "xxT"): np.eye(d),
                    ("h",): d / 2 * (1 + LOG_2PI)})

    def clamp(self, s: State, v: str, values: np.ndarray, missing: np.ndarray) -> None:
        # entry by entry: the observed coordinates of a row are its mean there; a complete row is a point
        # mass, a row with missing entries keeps its block until the first update
        # (runtime.finish_mvnormal_missing) and is made consistent here.  Rows in one axis (a row over no
        # plate too); the arrays are the state's, as views
        d = missing.shape[-1]
        mean = s[ArrayNames.qparam(v, "mean")].reshape(-1, d)
        cov = s[ArrayNames.qparam(v, "cov")].reshape(-1, d, d)
        gone = missing.reshape(-1, d)
        mean[~gone] = values.reshape(-1, d)[~gone]
        cov[~gone[:, :, None] | ~gone[:, None, :]] = 0.0
        s[ArrayNames.moment(v, "xxT")].reshape(-1, d, d)[...] = cov + mean[:, :, None] * mean[:, None, :]
        h = s[ArrayNames.entropy(v)].reshape(-1)
        for n, m in enumerate(gone):
            block = cov[n][np.ix_(m, m)]
            h[n] = 0.5 * (m.sum() * (1 + np.log(2 * np.pi)) + np.linalg.slogdet(block)[1]) if m.any() else 0.0

    def outside(self, p: Params) -> str | None:
        return symmetric_positive_definite(p, "cov")

    def spread(self, variance: float, shape: tuple[int, ...]) -> np.ndarray:
        """An isotropic spread of q's shape: the variance times the identity, for every vector."""
        return np.broadcast_to(variance * np.eye(shape[-1]), shape + shape[-1:])

    def located_at(self, s: State, v: str, mean: np.ndarray, spread: np.ndarray) -> None:
        """q(v) = N(mean, spread) (covariances), its moments and entropy too."""
        s[ArrayNames.qparam(v, "mean")][...] = mean
        s[ArrayNames.qparam(v, "cov")][...] = spread
        s[ArrayNames.moment(v, "xxT")][...] = spread + mean[..., :, None] * mean[..., None, :]
        h = s[ArrayNames.entropy(v)]
        h[...] = (0.5 * mean.shape[-1] * (1 + LOG_2PI) + 0.5 * np.linalg.slogdet(spread)[1]).reshape(h.shape)


def symmetric_positive_definite(p: Params, name: str) -> str | None:
    """Why the matrices ``p[name]`` are not symmetric positive definite, or None."""
    m = p[name]
    if not np.allclose(m, np.swapaxes(m, -1, -2), rtol=1e-9, atol=1e-12):
        return f"`{name}` must be symmetric"
    try:
        np.linalg.cholesky(m)
    except np.linalg.LinAlgError:
        return f"`{name}` must be positive definite"
    return None


UNIT = MvNormalUnit()
