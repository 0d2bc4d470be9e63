"""Categorical(p): the SymPy side in ``symbolic.py``; the host side here (ppvi.families.unit).

A q's ``p`` has the categories on its last axis; its value (a label) has the other axes."""

from __future__ import annotations

from typing import Any

import numpy as np

from ppvi.codegen.plan import ArrayNames

from ..unit import Params, State, Unit, entropy_by_rows, plogp, point_entropy
from . import chain

__all__ = ["UNIT", "CategoricalUnit"]


class CategoricalUnit(Unit):
    name = "Categorical"
    standard = ("p",)
    finish = "finish_categorical"
    in_eta = {"p": "exp η[[z=k]] / Σ_k exp η[[z=k]]   (normalised in log space)"}
    imputed = ("p",)
    shape_of = "p"
    expectation = ()          # (labels: no mean a prior may read)
    discrete = True
    labelled = True
    vector = ("p", 1)
    head = "softmax"
    chained = True
    lag_one_of = "p"

    def lag_one_shape(self, p: Params) -> tuple[int, ...] | None:
        return (*p["p"].shape, p["p"].shape[-1])        # ξₜ[j, k] per element

    def lag_one_axes(self, axes: tuple[str, ...]) -> tuple[str, ...]:
        return axes + axes[-1:]

    def chain_sample(self, p: Params, lag_one: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        return chain.sample(p["p"], lag_one, n, rng)

    def chain_elements(self, p: Params, lag_one: np.ndarray, x: np.ndarray) -> np.ndarray:
        return chain.elements(p["p"], lag_one, np.asarray(x, dtype=np.int64))

    def value_shape(self, p: Params) -> tuple[int, ...]:
        return p["p"].shape[:-1]

    def param_shapes(self, value: tuple[int, ...], categories: int = 0) -> dict[str, tuple[int, ...]]:
        return {"p": (*value, categories)}

    def categories(self, p: Params) -> int:
        if p["p"].ndim == 0:
            raise ValueError("p")
        return p["p"].shape[-1]

    def value_of(self, p: Params) -> tuple[int, ...]:
        return p["p"].shape[:-1]

    def mean(self, p: Params) -> np.ndarray:
        """Σ_k k p_k, the file format's ``mean`` (the summary shows sizes instead)."""
        return p["p"] @ np.arange(p["p"].shape[-1], dtype=float)

    def sample(self, p: Params, n: int, rng: np.random.Generator) -> np.ndarray:
        """Inverse-CDF draws, one draw (over every element) at a time to bound the memory by p's."""
        p = p["p"]
        cdf = np.cumsum(p, axis=-1)
        cdf /= cdf[..., -1:]
        out = np.empty((n, *p.shape[:-1]), dtype=np.int64)
        for i in range(n):
            u = rng.random((*p.shape[:-1], 1))
            out[i] = np.minimum((cdf <= u).sum(-1), p.shape[-1] - 1)
        return out

    def log_density(self, p: Params, x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            logp = np.log(p["p"])
        return np.take_along_axis(np.broadcast_to(logp, (x.shape[0], *logp.shape)), x[..., None], -1)

    def log_p(self, x: np.ndarray, args: Params) -> np.ndarray:
        p = args["p"]
        batch = np.broadcast_shapes(np.shape(x), p.shape[:-1])
        logp = np.log(np.broadcast_to(p, batch + p.shape[-1:]))
        return np.take_along_axis(logp, np.broadcast_to(x, batch)[..., None].astype(np.intp), -1)[..., 0]

    def natural(self, p: Params) -> Params:
        return {"onehot": np.log(np.maximum(p["p"], 1e-300))}

    def init(self, s: State, v: str, rng: np.random.Generator, info: Any) -> None:
        """Locals: each row uniform on the simplex (normalised exponentials, Dirichlet(1, …, 1)), drawn in place."""
        p = s[ArrayNames.qparam(v, "p")]
        if p.ndim > 1:
            rng.standard_exponential(out=p)
            p /= p.sum(axis=-1, keepdims=True)
        else:
            p[...] = 1 / p.shape[-1]
        if info.chain is not None:
            # a chain's ξₜ = rₜ₋₁ rₜᵀ for t ≥ start (the product of its random marginals; the rows of A count
            # them before the chain's first update)
            xi, start = s[info.chain.pair], info.chain.start
            xi[...] = 0.0
            xi[..., start:, :, :] = p[..., start - 1:-1, :, None] * p[..., start:, None, :]
        # H = −Σ p log p per element (a chain's joint entropy, its marginals independent: the sum over its times)
        entropy_by_rows(p, s[ArrayNames.entropy(v)], lambda r: -plogp(r).sum(-1))

    def clamp(self, s: State, v: str, values: np.ndarray, missing: np.ndarray) -> None:
        seen = ~missing
        p = s[ArrayNames.qparam(v, "p")]
        p[seen] = 0.0
        p[seen, values[seen].astype(np.int64)] = 1.0
        point_entropy(s, v, seen)

    def outside(self, p: Params) -> str | None:
        if not (np.all(p["p"] >= 0) and np.allclose(p["p"].sum(-1), 1, atol=1e-6)):
            return "each row of `p` must be ≥ 0 and sum to 1"
        return None


UNIT = CategoricalUnit()
