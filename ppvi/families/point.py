"""The q of a point estimate (a param, a MAP latent) in the result files: a point mass at ``value``.  Not a
distribution of the language: its unit is found by :func:`ppvi.families.unit_of` only."""

from __future__ import annotations

import numpy as np

from .unit import Params, Unit

__all__ = ["POINT", "PointUnit"]


class PointUnit(Unit):
    name = "point"
    standard = ("value",)
    q = False
    shape_of = "value"
    head = "value"

    def mean(self, p: Params) -> np.ndarray:
        return p["value"]

    def variance(self, p: Params) -> np.ndarray:
        return np.zeros(np.shape(p["value"]))

    def quantile(self, p: Params, prob: float) -> np.ndarray:
        return np.asarray(p["value"], dtype=float)

    def sample(self, p: Params, n: int, rng: np.random.Generator) -> np.ndarray:
        shape = self.value_shape(p)
        return np.broadcast_to(p["value"], (n, *shape)).copy()

    # (no density: a point q adds 0 to log q, Unit.log_density)


POINT = PointUnit()
