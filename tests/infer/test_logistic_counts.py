"""Binomial(n, sigmoid(ψ)) and NegativeBinomial(r, sigmoid(ψ)) by Pólya-Gamma augmentation (issue 17, build 1).

One latent log-odds a ~ Normal(0, S0²) read by both laws.  Augmented, p(y | a) ∝ e^{κa} E_{PG(b,0)}[e^{−ωa²/2}]
with b = n, κ = y − n/2 (Binomial) and b = z + r, κ = (z − r)/2 (NegativeBinomial: P(z) = Γ(z + r)/(Γ(r) z!)
pᶻ (1 − p)ʳ, the number of successes before the r-th failure).  The fixed point written here in NumPy:
q(a) = N(Σκ / P, 1/P) with P = 1/S0² + Σ E[ω], E[ω] = b tanh(c/2)/(2c), c² = E[a²]; the ELBO
Σ [log h + κ E[a] − b log 2 − b log cosh(c/2)] − KL(q(a) ‖ prior); and log p(y, z) and E[a | y, z] by
quadrature of the exact likelihoods (scipy.stats.binom and nbinom).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import special, stats

import ppvi
from conftest import MODELS

R, S0 = 5, 2.0          # models/links/logistic_counts.ppvi's r and a's prior sd
MODEL = MODELS / "links" / "logistic_counts.ppvi"
DATA = {k: np.asarray(v) for k, v in json.loads(MODEL.with_suffix(".json").read_text()).items()}


@pytest.fixture(scope="module")
def fit():
    return ppvi.load(str(MODEL)).fit(DATA, tol=0, max_iter=300)


def _reference(sweeps: int = 300):
    n, y, z = DATA["n"], DATA["y"], DATA["z"]
    b = np.concatenate([n, z + R]).astype(float)
    kappa = np.concatenate([y - n / 2, (z - R) / 2])
    m, s2 = 0.0, S0 ** 2
    for _ in range(sweeps):
        c = np.sqrt(m * m + s2)
        e_omega = b * np.tanh(c / 2) / (2 * c)
        precision = 1 / S0 ** 2 + e_omega.sum()
        m, s2 = kappa.sum() / precision, 1 / precision
    c = np.sqrt(m * m + s2)
    log_h = np.concatenate([special.gammaln(n + 1) - special.gammaln(y + 1) - special.gammaln(n - y + 1),
                            special.gammaln(z + R) - special.gammaln(R) - special.gammaln(z + 1)])
    log_cosh = c / 2 + np.log1p(np.exp(-c)) - np.log(2)
    kl = 0.5 * ((m * m + s2) / S0 ** 2 - 1 - np.log(s2 / S0 ** 2))
    return m, np.sqrt(s2), c, b, np.sum(log_h + kappa * m - b * np.log(2) - b * log_cosh) - kl


def test_the_fixed_point_and_the_elbo_are_the_augmented_updates(fit):
    m, sd, c, b, elbo = _reference()
    assert float(fit.q["a"]["mean"]) == pytest.approx(m, rel=1e-10)
    assert float(fit.q["a"]["sd"]) == pytest.approx(sd, rel=1e-10)
    n = len(DATA["y"])
    for name, part in (("y_pg", slice(0, n)), ("z_pg", slice(n, None))):
        assert fit.q[name]["b"] == pytest.approx(b[part])
        assert fit.q[name]["c"] == pytest.approx(np.full(len(b[part]), c), rel=1e-10)
    assert fit.elbo == pytest.approx(elbo, rel=1e-10)
    trace = np.asarray(fit.elbo_trace)
    assert np.all(np.diff(trace) >= -1e-12 * abs(trace[-1]))


def test_the_elbo_is_below_the_evidence_and_the_mean_near_the_exact_one(fit):
    m, sd = float(fit.q["a"]["mean"]), float(fit.q["a"]["sd"])
    grid = np.linspace(m - 15 * sd, m + 15 * sd, 20001)
    p = special.expit(grid)
    log_joint = (stats.norm.logpdf(grid, 0, S0)
                 + stats.binom.logpmf(DATA["y"][:, None], DATA["n"][:, None], p).sum(0)
                 # scipy's nbinom counts failures before the r-th success: ours with p ↔ 1 − p
                 + stats.nbinom.logpmf(DATA["z"][:, None], R, 1 - p).sum(0))
    log_evidence = special.logsumexp(log_joint) + np.log(grid[1] - grid[0])
    post = np.exp(log_joint - log_joint.max())
    exact_mean = post @ grid / post.sum()
    exact_sd = np.sqrt(post @ grid ** 2 / post.sum() - exact_mean ** 2)
    assert fit.elbo < log_evidence < fit.elbo + 1.0
    assert abs(m - exact_mean) < exact_sd
    ev = fit.evidence(4000, seed=1)              # ω integrated out, the laws' own pmfs (ppvi.simulate)
    assert ev.log_evidence == pytest.approx(log_evidence, abs=5 * ev.stderr + 1e-3)


def test_a_row_of_no_trials_adds_nothing():
    """y = 0 successes of n = 0 trials is valid data with likelihood 1: its weight ω ~ PG(0, c) is a point mass
    at 0 (E[ω] = 0, H = 0), and the fit is the fit without that row.  The ELBO was nan after the first update
    of q(y_pg), a FloatingPointError (found by the harness on this file's MODEL with random counts)."""
    data = {**DATA, "n": np.append(DATA["n"], 0), "y": np.append(DATA["y"], 0)}
    fit = ppvi.load(str(MODEL)).fit(data, tol=0, max_iter=300)
    m, sd, c, b, elbo = _reference()
    assert float(fit.q["a"]["mean"]) == pytest.approx(m, rel=1e-10)
    assert float(fit.q["a"]["sd"]) == pytest.approx(sd, rel=1e-10)
    assert fit.elbo == pytest.approx(elbo, rel=1e-10)
    assert fit.q["y_pg"]["b"][-1] == 0.0


# ------------------------------------------------------------------ a negative-binomial regression (models/links)
NB_REGRESSION = MODELS / "links" / "negative_binomial_regression.ppvi"
NB_R, NB_S0 = 10, 5.0       # its r and every coefficient's prior sd


def _nb_regression_cavi(x: np.ndarray, y: np.ndarray, sweeps: int = 2000) -> tuple[np.ndarray, np.ndarray, float]:
    """The mean-field fixed point of the augmented NB regression, q(w) = Π_j N(m_j, v_j), q(ω_n) = PG(y_n + r, c_n),
    by coordinate ascent written here: v_j = 1/(1/S0² + Σ_n E[ω_n] x_nj²), m_j = v_j Σ_n x_nj (κ_n − E[ω_n] Σ_{k≠j}
    x_nk m_k), c_n² = E[ψ_n²]; and its ELBO Σ_n [log h_n + κ_n E[ψ_n] − b_n log 2 − b_n log cosh(c_n/2)] − KL."""
    n, d = x.shape
    b, kappa = y + NB_R, (y - NB_R) / 2
    m, v = np.zeros(d), np.full(d, NB_S0 ** 2)
    for _ in range(sweeps):
        c = np.sqrt((x @ m) ** 2 + (x * x) @ v)
        e_omega = b * np.tanh(c / 2) / (2 * c)
        for j in range(d):
            rest = x @ m - x[:, j] * m[j]
            v[j] = 1 / (1 / NB_S0 ** 2 + e_omega @ (x[:, j] ** 2))
            m[j] = v[j] * (x[:, j] @ (kappa - e_omega * rest))
    c = np.sqrt((x @ m) ** 2 + (x * x) @ v)
    log_h = special.gammaln(y + NB_R) - special.gammaln(NB_R) - special.gammaln(y + 1)
    log_cosh = c / 2 + np.log1p(np.exp(-c)) - np.log(2)
    kl = 0.5 * np.sum((m * m + v) / NB_S0 ** 2 - 1 - np.log(v / NB_S0 ** 2))
    return m, v, float(np.sum(log_h + kappa * (x @ m) - b * np.log(2) - b * log_cosh) - kl)


@pytest.mark.long
def test_the_negative_binomial_regression_example_is_at_the_numpy_fixed_point():
    """models/links/negative_binomial_regression on its data (warpbreaks): the compiled fit's q(w) and ELBO are
    the coordinate-ascent fixed point written above (--long: a model no default test compiles)."""
    import pandas as pd

    data = pd.read_csv(NB_REGRESSION.with_suffix(".csv"))
    x = np.column_stack([np.ones(len(data)), data["wool_b"], data["tension_m"], data["tension_h"]]).astype(float)
    m, v, elbo = _nb_regression_cavi(x, data["breaks"].to_numpy(float))
    r = ppvi.load(str(NB_REGRESSION)).fit(tol=0, max_iter=2000)
    names = ("a", "b_wool", "b_medium", "b_high")
    np.testing.assert_allclose([float(r.q[k]["mean"]) for k in names], m, rtol=0, atol=1e-8)
    np.testing.assert_allclose([float(r.q[k]["sd"]) ** 2 for k in names], v, rtol=1e-7)
    assert r.elbo == pytest.approx(elbo, rel=1e-10)
    trace = np.asarray(r.elbo_trace)
    assert np.all(np.diff(trace) >= -1e-12 * np.abs(trace[1:]))
