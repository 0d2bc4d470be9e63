"""Poisson(rate): the SymPy side in ``symbolic.py``; the host side here (ppvi.families.unit).

No q takes it: a likelihood only."""

from __future__ import annotations

import numpy as np

from ..unit import Params, Unit

__all__ = ["UNIT", "PoissonUnit"]


class PoissonUnit(Unit):
    name = "Poisson"
    exp_link = True
    standard = ("rate",)
    q = False
    discrete = True

    def draw(self, args: Params, plate_shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        return rng.poisson(self.full(args, plate_shape)["rate"])

    def log_p(self, x: np.ndarray, args: Params) -> np.ndarray:
        from scipy import special

        rate = args["rate"]
        return special.xlogy(x, rate) - rate - special.gammaln(x + 1.0)


UNIT = PoissonUnit()
