"""NegativeBinomial(r, p): the SymPy side in ``symbolic.py`` (and why its q is what it is); the host side here
(ppvi.families.unit).

A likelihood for overdispersed counts (x successes before the r-th failure), and the q of a missing count drawn
from one (data declared ``: missing``): its r is the factor's, a known number, so the engine fills it at every
entry (``ppvi.infer.program.Program.clamp``, as a Binomial's n) before the q is clamped."""

from __future__ import annotations

import numpy as np

from ppvi.codegen.plan import ArrayNames

from ..unit import Params, Unit, fill, point_entropy

__all__ = ["UNIT", "NegativeBinomialUnit"]


class NegativeBinomialUnit(Unit):
    name = "NegativeBinomial"
    standard = ("r", "p")
    finish = "finish_negative_binomial"
    in_eta = {"r": "η[log h_r(x)/r]", "p": "e^η[x]"}
    imputed = ("r", "p")
    shape_of = "p"
    discrete = True
    given = "r"

    def mean(self, p: Params) -> np.ndarray:
        return p["r"] * p["p"] / (1 - p["p"])

    def variance(self, p: Params) -> np.ndarray:
        return p["r"] * p["p"] / (1 - p["p"]) ** 2

    def quantile(self, p: Params, prob: float) -> np.ndarray:
        from scipy import stats

        return stats.nbinom.ppf(prob, p["r"], 1 - p["p"])        # (SciPy counts failures: p ↔ 1 − p)

    def sample(self, p: Params, n: int, rng: np.random.Generator) -> np.ndarray:
        shape = (n, *self.value_shape(p))
        return rng.negative_binomial(np.broadcast_to(p["r"], shape), np.broadcast_to(1 - p["p"], shape))

    def log_density(self, p: Params, x: np.ndarray) -> np.ndarray:
        return self.log_p(x, p)

    def marginal(self, p: Params, index: tuple[int, ...]):
        from scipy import stats

        return stats.nbinom(p["r"][index], 1 - p["p"][index])

    def prior_moments(self, args: Params) -> tuple[np.ndarray, np.ndarray]:
        r, p = np.broadcast_arrays(args["r"], args["p"])
        return r * p / (1 - p), r * p / (1 - p) ** 2

    def draw(self, args: Params, plate_shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        f = self.full(args, plate_shape)
        return rng.negative_binomial(f["r"], 1 - f["p"])          # (NumPy counts failures: p ↔ 1 − p)

    def log_p(self, x: np.ndarray, args: Params) -> np.ndarray:
        from scipy import special

        r, p = args["r"], args["p"]
        return (special.gammaln(x + r) - special.gammaln(r) - special.gammaln(x + 1.0) + special.xlogy(x, p)
                + special.xlog1py(r, -p))

    def natural(self, p: Params) -> Params:
        return {"x": np.log(np.clip(p["p"], 1e-300, 1.0)), "lnb": np.asarray(p["r"], dtype=float)}

    def init(self, s, v, rng, info) -> None:
        """r = 0, p = ½ until ``clamp`` fills r (then NegativeBinomial(r, ½) at a missing entry): NB(0, p) is the
        point mass at 0, H = 0 (stored explicitly)."""
        fill(s, v, {("q", "p"): 0.5, ("h",): 0.0})

    def clamp(self, s, v, values, missing) -> None:
        """At an observed entry the moments are the datum's (⟨y⟩ = y, the place-holder's log h(y)/r) and the
        reported p is y/(y + r), the maximum-likelihood one; at a missing one (no update yet) ⟨y⟩ = r p/(1 − p).
        q's r holds the factor's already."""
        from scipy.special import gammaln

        r, p = s[ArrayNames.qparam(v, "r")], s[ArrayNames.qparam(v, "p")]
        seen = ~missing.reshape(r.shape)
        y, k = values.reshape(r.shape)[seen], r[seen]
        p[seen] = y / (y + k)
        s[ArrayNames.moment(v, "lnb")][seen] = (gammaln(y + k) - gammaln(k) - gammaln(y + 1.0)) / k
        x = s[ArrayNames.moment(v, "x")]
        x[seen] = y
        x[~seen] = r[~seen] * p[~seen] / (1 - p[~seen])
        # H relative to Γ(y + r)/(Γ(r) y!) (the place-holder's): −(E[y] log p + r log(1 − p))
        h = s[ArrayNames.entropy(v)].reshape(r.shape)
        h[~seen] = -(x[~seen] * np.log(p[~seen]) + r[~seen] * np.log1p(-p[~seen]))
        point_entropy(s, v, seen)


UNIT = NegativeBinomialUnit()
