"""Binomial(n, p): the SymPy side in ``symbolic.py``; the host side here (ppvi.families.unit).

No q takes it: a likelihood only."""

from __future__ import annotations

import numpy as np

from ..unit import Params, Unit

__all__ = ["UNIT", "BinomialUnit"]


class BinomialUnit(Unit):
    name = "Binomial"
    standard = ("n", "p")
    q = False
    discrete = True
    trials = "n"

    def draw(self, args: Params, plate_shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        f = self.full(args, plate_shape)
        return rng.binomial(f["n"].astype(np.int64), f["p"])

    def log_p(self, x: np.ndarray, args: Params) -> np.ndarray:
        from scipy import special

        n, p = args["n"], args["p"]
        return (special.gammaln(n + 1.0) - special.gammaln(x + 1.0) - special.gammaln(n - x + 1.0)
                + special.xlogy(x, p) + special.xlog1py(n - x, -p))


UNIT = BinomialUnit()
