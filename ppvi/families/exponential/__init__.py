"""Exponential(rate): the SymPy side in ``symbolic.py``; the host side here (ppvi.families.unit).

No q takes it: a likelihood or prior only."""

from __future__ import annotations

import numpy as np

from ..unit import Params, Unit

__all__ = ["UNIT", "ExponentialUnit"]


class ExponentialUnit(Unit):
    name = "Exponential"
    exp_link = True
    standard = ("rate",)
    q = False

    def draw(self, args: Params, plate_shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        return rng.exponential(1 / self.full(args, plate_shape)["rate"])

    def log_p(self, x: np.ndarray, args: Params) -> np.ndarray:
        return np.log(args["rate"]) - args["rate"] * x


UNIT = ExponentialUnit()
