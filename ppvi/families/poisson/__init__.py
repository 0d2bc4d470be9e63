"""Poisson(rate): the SymPy side in ``symbolic.py`` (and why its q is what it is); the host side here
(ppvi.families.unit).

A likelihood for counts, and the q of a missing count drawn from a Poisson (data declared ``: missing``)."""

from __future__ import annotations

import numpy as np

from ppvi.codegen.plan import ArrayNames

from ..unit import TINY, Params, Unit, fill, point_entropy

__all__ = ["UNIT", "PoissonUnit"]


class PoissonUnit(Unit):
    name = "Poisson"
    exp_link = True
    standard = ("rate",)
    finish = "finish_poisson"
    in_eta = {"rate": "e^η[x]"}
    imputed = ("rate",)
    shape_of = "rate"
    expectation = ("q", "rate")
    discrete = True

    def mean(self, p: Params) -> np.ndarray:
        return p["rate"]

    def variance(self, p: Params) -> np.ndarray:
        return p["rate"]

    def quantile(self, p: Params, prob: float) -> np.ndarray:
        from scipy import stats

        return stats.poisson.ppf(prob, p["rate"])

    def sample(self, p: Params, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.poisson(p["rate"], size=(n, *self.value_shape(p)))

    def log_density(self, p: Params, x: np.ndarray) -> np.ndarray:
        return self.log_p(x, p)

    def marginal(self, p: Params, index: tuple[int, ...]):
        from scipy import stats

        return stats.poisson(p["rate"][index])

    def prior_moments(self, args: Params) -> tuple[np.ndarray, np.ndarray]:
        return args["rate"], args["rate"]

    def draw(self, args: Params, plate_shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        return rng.poisson(self.full(args, plate_shape)["rate"])

    def log_p(self, x: np.ndarray, args: Params) -> np.ndarray:
        from scipy import special

        rate = args["rate"]
        return special.xlogy(x, rate) - rate - special.gammaln(x + 1.0)

    def natural(self, p: Params) -> Params:
        # (η[−log x!] is 1, the factor's own: nothing reads it; rate 0, an observed 0's point mass, at the
        # smallest normal float keeps η finite)
        return {"x": np.log(np.maximum(p["rate"], TINY))}

    def outside(self, p: Params) -> str | None:
        if not np.all(p["rate"] >= 0):        # (Poisson(0) is the point mass at 0: an observed 0)
            return "`rate` must be ≥ 0"
        return None

    def init(self, s, v, rng, info) -> None:
        """Poisson(1): H relative to 1/y! is r(1 − log r) = 1."""
        fill(s, v, {("q", "rate"): 1.0, ("m", "lfact"): 0.0, ("h",): 1.0})

    def clamp(self, s, v, values, missing) -> None:
        """The moments are the datum's (⟨y⟩ = y, the place-holder's −log y!); the reported rate is the datum."""
        from scipy.special import gammaln

        seen = ~missing
        s[ArrayNames.qparam(v, "rate")][seen] = values[seen]
        s[ArrayNames.moment(v, "lfact")][seen] = -gammaln(values[seen] + 1.0)
        point_entropy(s, v, seen)


UNIT = PoissonUnit()
