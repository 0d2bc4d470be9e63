"""The local level model on the Nile (issue 18; models/sequences/nile.ppvi; Durbin & Koopman 2012, ch. 2).

    y[t] = α[t] + ε[t],  ε ~ N(0, 1/τ_obs);    α[t] = α[t−1] + η[t],  η ~ N(0, 1/τ_level)

A chain of scalars approximated jointly: q(α) is one Gaussian over the chain.  Checked against a Kalman filter
and an RTS smoother in covariance form written here (D&K 2012, 2.2 and 2.4; lag-one covariances as in
Shumway & Stoffer 1982):

- with the precisions known, q(α) is the smoother's posterior (means, variances, lag-one covariances to 1e-10)
  and the ELBO is log p(y) by the prediction-error decomposition (D&K 2012, 7.2);
- with Gamma priors on both, ppvi's fit of the example is the fixed point of variational Bayesian EM written
  here (Beal 2003, ch. 5): q(α) the smoother at 1/E[τ], q(τ_obs) = Gamma(a + T/2, b + ½ Σₜ E[(yₜ − αₜ)²]),
  q(τ_level) = Gamma(a + (T−1)/2, b + ½ Σ_{t≥1} E[(αₜ − αₜ₋₁)²]), the latter with the lag-one covariances; its
  ELBO never decreases.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ppvi.derive.chain import update_gaussian_block
from ppvi.derive.meanfield import derive
from ppvi.derive.numeric import Env
from ppvi.language.check import check
from ppvi.language.parser import parse

from derive import reference     # noqa: E402  (tests/derive/reference.py)

NILE = Path(__file__).resolve().parents[2] / "models" / "sequences" / "nile.ppvi"
A0, B0, P1 = 0.001, 0.001, 1e7          # the example's Gamma priors and its first level's variance

KNOWN = """\
dim T
data y[T]
alpha[0] ~ Normal(0, precision = 1e-7)
for t in T[1:]:
    alpha[t] ~ Normal(alpha[t-1], precision = 0.00068)
for t in T:
    y[t] ~ Normal(alpha[t], precision = 0.000066)
approximate alpha jointly
"""


def nile() -> np.ndarray:
    return np.loadtxt(NILE.with_suffix(".csv"), delimiter=",", skiprows=1)


def kalman(y: np.ndarray, var_obs: float, var_level: float, a1: float = 0.0, p1: float = P1, phi: float = 1.0):
    """The local level's Kalman filter and RTS smoother (an AR(1) state αₜ = φαₜ₋₁ + ηₜ for φ ≠ 1) -> smoothed
    means, variances, Cov(αₜ₋₁, αₜ) (0 at t = 0) and log p(y) = −½ Σₜ (log 2πFₜ + vₜ²/Fₜ)."""
    T = len(y)
    a_pred, p_pred, a_filt, p_filt = np.empty(T), np.empty(T), np.empty(T), np.empty(T)
    a, p, ll = a1, p1, 0.0
    for t in range(T):
        a_pred[t], p_pred[t] = a, p
        f = p + var_obs
        v = y[t] - a
        ll -= 0.5 * (np.log(2 * np.pi * f) + v * v / f)
        a_filt[t], p_filt[t] = a + p / f * v, p - p * p / f
        a, p = phi * a_filt[t], phi * phi * p_filt[t] + var_level
    m, P, lag = a_filt.copy(), p_filt.copy(), np.zeros(T)
    for t in range(T - 2, -1, -1):
        g = phi * p_filt[t] / p_pred[t + 1]
        m[t] = a_filt[t] + g * (m[t + 1] - a_pred[t + 1])
        P[t] = p_filt[t] + g * g * (P[t + 1] - p_pred[t + 1])
        lag[t + 1] = g * P[t + 1]
    return m, P, lag, ll


def vbem(y: np.ndarray, sweeps: int = 3000, tol: float = 1e-14):
    """Variational Bayesian EM for the local level with Gamma(A0, B0) priors on both precisions, from
    E[τ_obs] = E[τ_level] = 1/var(y) -> ((shape, rate) of each, smoothed means and variances)."""
    T = len(y)
    e_obs = e_level = 1 / np.var(y)
    for _ in range(sweeps):
        m, P, lag, _ = kalman(y, 1 / e_obs, 1 / e_level)
        obs = (A0 + T / 2, B0 + 0.5 * np.sum((y - m) ** 2 + P))
        steps = (m[1:] - m[:-1]) ** 2 + P[1:] + P[:-1] - 2 * lag[1:]
        level = (A0 + (T - 1) / 2, B0 + 0.5 * np.sum(steps))
        new = obs[0] / obs[1], level[0] / level[1]
        if abs(new[0] / e_obs - 1) < tol and abs(new[1] / e_level - 1) < tol:
            break
        e_obs, e_level = new
    return obs, level, m, P


def test_known_precisions_give_the_smoother_and_log_evidence():
    """The first 25 years (the reference evaluator's block is O(T²) evaluations of η)."""
    y = nile()[:25]
    d = derive(check(parse(KNOWN, "known.ppvi")))
    env = Env({"y": y}, {}, {"T": len(y)})
    update_gaussian_block(d.gaussian["alpha"], env)
    m, P, lag, ll = kalman(y, 1 / 0.000066, 1 / 0.00068)
    np.testing.assert_allclose(env.moments[("alpha", "x")], m, rtol=0, atol=1e-10 * np.abs(m).max())
    np.testing.assert_allclose(env.moments[("alpha", "x2")] - env.moments[("alpha", "x")] ** 2, P, rtol=1e-10)
    np.testing.assert_allclose(env.moments[("alpha", "cross")], lag, rtol=1e-10, atol=0)
    assert reference.elbo(d, env) == pytest.approx(ll, abs=1e-9, rel=0)


@pytest.fixture(scope="module")
def fitted():
    import ppvi

    # (the precisions converge linearly, ~1500 sweeps to round-off, long after the ELBO's relative change is 1e-14)
    return ppvi.load(str(NILE)).fit(tol=0, max_iter=2000)


def test_learned_precisions_are_the_vbem_fixed_point(fitted):
    y = nile()
    obs, level, m, P = vbem(y)
    q = fitted.q
    for name, want in (("tau_obs", obs), ("tau_level", level)):
        assert float(q[name].params["shape"]) == pytest.approx(want[0], rel=1e-12)
        assert float(q[name].params["rate"]) == pytest.approx(want[1], rel=1e-10)
    np.testing.assert_allclose(q["alpha"].params["mean"], m, rtol=1e-10)
    np.testing.assert_allclose(q["alpha"].params["sd"], np.sqrt(P), rtol=1e-10)


def test_the_fit_is_monotone(fitted):
    trace = np.asarray(fitted.elbo_trace)
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:])), np.diff(trace).min()
