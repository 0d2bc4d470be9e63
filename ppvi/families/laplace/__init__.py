"""Laplace(loc, scale): the SymPy side in ``symbolic.py``; the host side here (ppvi.families.unit).

No q takes it: a likelihood or prior only."""

from __future__ import annotations

import numpy as np

from ..unit import Params, Unit

__all__ = ["UNIT", "LaplaceUnit"]


class LaplaceUnit(Unit):
    name = "Laplace"
    standard = ("loc", "scale")
    q = False
    location = "loc"
    sparse = True

    def prior_moments(self, args: Params) -> tuple[np.ndarray, np.ndarray]:
        return np.broadcast_arrays(args["loc"], 2 * args["scale"] ** 2)

    def draw(self, args: Params, plate_shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        f = self.full(args, plate_shape)
        return rng.laplace(f["loc"], f["scale"])

    def log_p(self, x: np.ndarray, args: Params) -> np.ndarray:
        return -np.log(2 * args["scale"]) - np.abs(x - args["loc"]) / args["scale"]


UNIT = LaplaceUnit()
