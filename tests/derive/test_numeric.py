"""The reference evaluator (ppvi.derive.numeric) on what the families put in derived expressions."""

from __future__ import annotations

import numpy as np

from helpers import derivation
from ppvi.derive.numeric import Env, evaluate

LOGISTIC = """
dim N
data x[N]
data y[N] : binary
w ~ Normal(0, 1)
for n in N:
    y[n] ~ Bernoulli(sigmoid(w * x[n]))
"""


def _pg_mean_by_series(b: float, c: float, terms: int = 100_000) -> float:
    """E[ω] of PG(b, c) from its definition as a sum of Gammas (Polson, Scott & Windle 2013, eq. 1):
    ω = (1/2π²) Σ_k g_k / ((k − ½)² + c²/4π²), g_k ~ Gamma(b, 1); the tail beyond ``terms`` by the integral
    (the midpoint rule: the k-th term is f(k − ½))."""
    a = c / (2 * np.pi)
    k = np.arange(1, terms + 1) - 0.5
    tail = (np.pi / 2 - np.arctan(terms / a)) / a
    return b / (2 * np.pi ** 2) * (np.sum(1 / (k ** 2 + a ** 2)) + tail)


def test_the_polya_gamma_entropy_is_evaluated_even_where_cosh_overflows():
    """H[q(ω)] relative to PG(b, 0) is −KL(PG(b, c) ‖ PG(b, 0)) = c² E[ω]/2 − b log cosh(c/2) (the tilting
    cosh^b(c/2) e^{−c²ω/2}); at c = 3000, cosh(c/2) is beyond double precision but the entropy is not."""
    d = derivation(LOGISTIC)
    (label, term), = [(lab, e) for lab, e in d.elbo_terms() if lab.startswith("H[q(y_pg)]")]
    b, c = np.array([1.0, 1.0, 2.0]), np.array([0.3, 2.0, 3000.0])
    env = Env({"x": np.zeros(3), "y": np.zeros(3), "b(y_pg)": b, "c(y_pg)": c}, {}, {"N": 3})
    log_cosh = c / 2 - np.log(2) + np.log1p(np.exp(-c))
    want = sum(ci ** 2 * _pg_mean_by_series(bi, ci) / 2 - bi * lc for bi, ci, lc in zip(b, c, log_cosh))
    got = evaluate(term, env)
    assert np.isfinite(got) and abs(got - want) <= 1e-9 * abs(want), (got, want)
