"""Posterior predictive checks: a statistic of the data against the same statistic of replicated data.

For replicates v_rep drawn from the posterior predictive (latents from q, data
from the model: :func:`ppvi.simulate.ancestral.sample_predictive`) the p-value is
P(T(v_rep) ≥ T(v)) (Gelman, Meng & Stern 1996); values near 0 or 1 say the
model does not reproduce that feature of the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ppvi.errors import Diagnostic, PPVIError
from ppvi.result import Result


@dataclass(frozen=True)
class PredictiveCheck:
    """T of the data (``observed``), T of each replicate (``replicated``) and P(T(v_rep) ≥ T(v))."""

    variable: str
    statistic: str
    observed: float
    replicated: np.ndarray
    p_value: float

    def plot(self, path: str | None = None):
        """A histogram of T over the replicates with the data's T marked; ``path`` saves it.  Needs matplotlib
        (``pip install "ppvi[plot]"``)."""
        from ppvi.io.plot import pyplot

        plt = pyplot()
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.hist(self.replicated, bins=min(50, max(10, len(self.replicated) // 20)), color="0.7")
        ax.axvline(self.observed, color="C3", lw=2, label=f"data: {self.observed:.4g}")
        ax.set_xlabel(f"{self.statistic}({self.variable})")
        ax.set_ylabel("replicates")
        ax.set_title(f"posterior predictive check: p = {self.p_value:.3f}")
        ax.legend(frameon=False)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path)
        return fig


def predictive_check(result: Result, statistic: Callable[[np.ndarray], float], variable: str | None = None,
                     draws: int = 1000, seed: int | None = None, data: object = None) -> PredictiveCheck:
    """T = ``statistic`` (a function of one array shaped as the data variable ``variable``; default: the
    model's only observed variable) of the fit's data and of ``draws`` posterior predictive replicates."""
    from ppvi.io.results import observed
    from ppvi.simulate.ancestral import sample_predictive
    from ppvi.simulate.inputs import model_of

    where = "predictive_check"
    if not callable(statistic):
        raise PPVIError(Diagnostic(f"statistic={statistic!r}: a function of the data, e.g. numpy.max", where))
    drawn = [f.target for f in model_of(result, where).factors if f.observed]
    if variable is None:
        if len(drawn) != 1:
            raise PPVIError(Diagnostic("the model observes several variables: name one", where,
                                       hint="variable=" + " or ".join(f'"{n}"' for n in drawn)))
        variable = drawn[0]
    elif variable not in drawn:
        raise PPVIError(Diagnostic(f"`{variable}` is not an observed variable of the model", where,
                                   hint="the observed variables: " + ", ".join(drawn)))
    own, why = observed(result, data)
    if own is None:
        raise PPVIError(Diagnostic(f"the data of the fit are not at hand: {why}", where, hint="pass data="))
    reps = sample_predictive(result, draws, seed=seed, data=data)[variable]
    t_obs = float(statistic(np.asarray(own[variable])))
    t_rep = np.array([float(statistic(r)) for r in reps])
    return PredictiveCheck(variable, getattr(statistic, "__name__", "T"), t_obs, t_rep,
                           float(np.mean(t_rep >= t_obs)))
