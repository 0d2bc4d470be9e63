"""Binomial(n, p): the SymPy side in ``symbolic.py`` (and why its q is what it is); the host side here
(ppvi.families.unit).

A likelihood for counts out of known totals, and the q of a missing count drawn from a Binomial (data
declared ``: missing``): its n is the factor's, known data, so the engine fills it at every entry
(``ppvi.infer.program.Program.clamp``) before the q is clamped."""

from __future__ import annotations

import numpy as np

from ppvi.codegen.plan import ArrayNames

from ..unit import Params, Unit, fill, plogp, point_entropy

__all__ = ["UNIT", "BinomialUnit"]


class BinomialUnit(Unit):
    name = "Binomial"
    standard = ("n", "p")
    finish = "finish_binomial"
    in_eta = {"n": "η[log C(n, x)/n]", "p": "σ(η[x])"}
    imputed = ("n", "p")
    shape_of = "p"
    discrete = True
    trials = "n"

    def mean(self, p: Params) -> np.ndarray:
        return p["n"] * p["p"]

    def variance(self, p: Params) -> np.ndarray:
        return p["n"] * p["p"] * (1 - p["p"])

    def quantile(self, p: Params, prob: float) -> np.ndarray:
        from scipy import stats

        return stats.binom.ppf(prob, p["n"], p["p"])

    def sample(self, p: Params, n: int, rng: np.random.Generator) -> np.ndarray:
        shape = (n, *self.value_shape(p))
        return rng.binomial(np.broadcast_to(p["n"], shape).astype(np.int64), np.broadcast_to(p["p"], shape))

    def log_density(self, p: Params, x: np.ndarray) -> np.ndarray:
        return self.log_p(x, p)

    def marginal(self, p: Params, index: tuple[int, ...]):
        from scipy import stats

        return stats.binom(int(p["n"][index]), p["p"][index])

    def prior_moments(self, args: Params) -> tuple[np.ndarray, np.ndarray]:
        n, p = np.broadcast_arrays(args["n"], args["p"])
        return n * p, n * p * (1 - p)

    def draw(self, args: Params, plate_shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        f = self.full(args, plate_shape)
        return rng.binomial(f["n"].astype(np.int64), f["p"])

    def log_p(self, x: np.ndarray, args: Params) -> np.ndarray:
        from scipy import special

        n, p = args["n"], args["p"]
        return (special.gammaln(n + 1.0) - special.gammaln(x + 1.0) - special.gammaln(n - x + 1.0)
                + special.xlogy(x, p) + special.xlog1py(n - x, -p))

    def natural(self, p: Params) -> Params:
        q = np.clip(p["p"], 1e-300, 1 - 1e-16)
        return {"x": np.log(q) - np.log1p(-q), "lchoose": np.asarray(p["n"], dtype=float)}

    def init(self, s, v, rng, info) -> None:
        """Binomial(0, ½) until ``clamp`` fills the trials (then Binomial(n, ½) at a missing entry)."""
        fill(s, v, {("q", "p"): 0.5})

    def clamp(self, s, v, values, missing) -> None:
        """At an observed entry the moments are the datum's (⟨y⟩ = y, the place-holder's log C(n, y)/n, 0 at
        n = 0) and p = y/n; at a missing one (no update yet) ⟨y⟩ = n p.  q's n holds the trials already."""
        from scipy.special import gammaln

        n, p = s[ArrayNames.qparam(v, "n")], s[ArrayNames.qparam(v, "p")]
        seen = ~missing.reshape(n.shape)
        y, m = values.reshape(n.shape)[seen], n[seen]
        some = m > 0
        safe = np.where(some, m, 1.0)
        p[seen] = np.where(some, y / safe, 0.5)
        s[ArrayNames.moment(v, "lchoose")][seen] = np.where(
            some, (gammaln(m + 1.0) - gammaln(y + 1.0) - gammaln(m - y + 1.0)) / safe, 0.0)
        x = s[ArrayNames.moment(v, "x")]
        x[seen] = y
        x[~seen] = n[~seen] * p[~seen]
        # H relative to C(n, y) (the place-holder's): −E[y log p + (n − y) log(1 − p)] = n H[Bernoulli(p)]
        h = s[ArrayNames.entropy(v)].reshape(n.shape)
        h[~seen] = -n[~seen] * (plogp(p[~seen]) + plogp(1 - p[~seen]))
        point_entropy(s, v, seen)


UNIT = BinomialUnit()
