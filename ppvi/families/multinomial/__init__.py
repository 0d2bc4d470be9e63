"""Multinomial(n, p): the SymPy side in ``symbolic.py``; the host side here (ppvi.families.unit).

No q takes it: a likelihood only."""

from __future__ import annotations

import numpy as np

from ..unit import Params, Unit

__all__ = ["UNIT", "MultinomialUnit"]


class MultinomialUnit(Unit):
    name = "Multinomial"
    standard = ("n", "p")
    q = False
    discrete = True
    vector = ("p", 1)
    trials = "n"

    def draw(self, args: Params, plate_shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        f = self.full(args, plate_shape)
        return rng.multinomial(f["n"].astype(np.int64), f["p"])

    def log_p(self, x: np.ndarray, args: Params) -> np.ndarray:
        from scipy import special

        return special.gammaln(args["n"] + 1.0) + (special.xlogy(x, args["p"]) - special.gammaln(x + 1.0)).sum(-1)


UNIT = MultinomialUnit()
