"""A Gaussian chain riding on ragged sequences (``for t in T[1:] by seq:``, issue 18), compiled:
models/sequences/ragged_lds.ppvi, a local linear trend over six series of 3 to 34 steps in long format.

- with τ known, one update of q(x) is each series' exact posterior: its means and covariances equal a Kalman
  filter and RTS smoother written here (covariance form, an observation row H = [1, 0]; Durbin & Koopman 2012,
  4.3 and 4.4), run on each series alone, and the ELBO is Σ_s log p(y_s) (the prediction-error decomposition);
- with τ learned, the generated kernels take the reference evaluator's steps (ppvi.derive.chain's block,
  tests/derive/reference.py for q(τ)) and the steps of variational Bayesian EM written here (Beal 2003, ch. 5):
  q(x) the smoother at the noise variance 1/E[τ], q(τ) = Gamma(a + T/2, b + ½ Σₜ E[(yₜ − xₜ₀)²]).
The kernels run as plain Python (the runtime's block solver they call is compiled); the harness checks the
compiled kernels against them (tests/harness, corpus case ragged_lds, with --long); the reference evaluator's
steps are behind --long too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ppvi.derive import derive
from ppvi.derive.chain import update_gaussian_block
from ppvi.derive.numeric import Env
from ppvi.io.data import read_file
from ppvi.language import load, loads

from codegen.programs import lockstep, plain, program      # noqa: E402  (tests/codegen/programs.py)
from derive import reference              # noqa: E402  (tests/derive/reference.py)

PATH = Path(__file__).resolve().parents[2] / "models" / "sequences" / "ragged_lds.ppvi"
# the model's constants, written here from its text
F = np.array([[1.0, 1.0], [0.0, 1.0]])
Q = np.diag([11.1, 100.0])                  # the state noise's precision
H = np.array([1.0, 0.0])                    # y sees the level
A0, B0 = 2.0, 0.5                           # τ ~ Gamma(2, 0.5)


def kalman_rts(y: np.ndarray, r: float) -> tuple[np.ndarray, np.ndarray, float]:
    """One series' smoothed means and covariances and log p(y), scalar observations yₜ = H xₜ + N(0, r),
    x₀ ~ N(0, I), xₜ = F xₜ₋₁ + N(0, Q⁻¹)."""
    m, P, Qc = np.zeros(2), np.eye(2), np.linalg.inv(Q)
    mf, Pf, mp, Pp, ll = [], [], [], [], 0.0
    for t, yt in enumerate(y):
        if t:
            m, P = F @ m, F @ P @ F.T + Qc
        mp.append(m)
        Pp.append(P)
        s = H @ P @ H + r
        v = yt - H @ m
        ll -= 0.5 * (v * v / s + np.log(2 * np.pi * s))
        k = P @ H / s
        m, P = m + k * v, P - s * np.outer(k, k)
        mf.append(m)
        Pf.append(P)
    ms, Ps = list(mf), list(Pf)
    for t in range(len(y) - 2, -1, -1):
        G = Pf[t] @ F.T @ np.linalg.inv(Pp[t + 1])
        ms[t] = mf[t] + G @ (ms[t + 1] - mp[t + 1])
        Ps[t] = Pf[t] + G @ (Ps[t + 1] - Pp[t + 1]) @ G.T
    return np.array(ms), np.array(Ps), ll


def smoothers(y: np.ndarray, seq: np.ndarray, r: float) -> tuple[np.ndarray, np.ndarray, float]:
    """:func:`kalman_rts` of each series alone, the rows back in long format; Σ_s log p(y_s)."""
    parts = [kalman_rts(y[seq == s], r) for s in range(seq.max() + 1)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), sum(p[2] for p in parts)


@pytest.fixture(scope="module")
def data() -> dict:
    arrays = read_file(str(PATH.with_suffix(".csv")), load(str(PATH))).arrays
    return {"y": np.asarray(arrays["y"], float), "seq": np.asarray(arrays["seq"]).astype(int)}


def test_known_noise_gives_each_series_rts_smoother_and_log_evidence(data):
    """τ = 4 known: the means and covariances of q(x) are each series' smoother's to 1e-10 (none leaks into the
    next series), the ELBO Σ_s log p(y_s) to 1e-9."""
    text = PATH.read_text().replace("tau ~ Gamma(2, 0.5) ", "data tau")
    p = program(loads(text, "<ragged_lds_known>"), {**data, "tau": np.array(4.0)})
    p.module = plain(p.module)
    p.initialise(np.random.default_rng(1))
    p.update("x")
    ms, Ps, ll = smoothers(data["y"], data["seq"], 0.25)
    np.testing.assert_allclose(p.state["q_x__mean"], ms, rtol=0, atol=1e-10)
    np.testing.assert_allclose(p.state["q_x__cov"], Ps, rtol=0, atol=1e-10)
    np.testing.assert_allclose(p.state["m_x__xxT"], Ps + ms[:, :, None] * ms[:, None, :], rtol=0, atol=1e-9)
    assert p.elbo() == pytest.approx(ll, abs=1e-9, rel=0)


@pytest.fixture(scope="module")
def learned(data):
    """The example's program (plain Python kernels) from its own start."""
    p = program(load(str(PATH)), data)
    p.module = plain(p.module)
    p.initialise(np.random.default_rng(0))
    return p


@pytest.mark.long       # (12 minutes on the loaded 2-core machine: the reference evaluates the derivation per row)
def test_learned_noise_takes_the_reference_evaluators_steps(data):
    """From the program's start, sweep after sweep: every moment, q(x)'s entropy and the ELBO of the reference
    evaluator (the largest moments, E[xxᵀ], are a few hundred: 1e-12 relative)."""
    model = load(str(PATH))
    d = derive(model)
    env = Env({**data, "m0": np.zeros(2), "P0": np.eye(2), "F": F, "Q": Q}, {},
              {"T": len(data["y"]), "D": 2, "S": int(data["seq"].max()) + 1})
    p = program(model, data)
    p.module = plain(p.module)
    p.initialise(np.random.default_rng(0))

    def update(var: str) -> list[float]:
        if var not in d.gaussian:
            reference.update(d, var, env)
            return []
        update_gaussian_block(d.gaussian[var], env)
        return [abs(p.state["h_x"].sum() - float(env.moments[("x", "entropy")]))]
    gaps, elbos = lockstep(p, d, env, 4, update)
    assert gaps.max() < 1e-9, gaps.max()
    np.testing.assert_allclose(elbos[:, 0], elbos[:, 1], rtol=0, atol=1e-9)


def test_learned_noise_takes_the_steps_of_vbem(data, learned):
    """Sweep by sweep from the program's start: q(x) each series' smoother at r = 1/E[τ], q(τ) the Gamma of
    VBEM, and the ELBO never decreases."""
    p, y, seq = learned, data["y"], data["seq"]
    e_tau, ms, Ps = float(p.state["m_tau__x"].reshape(())), p.state["q_x__mean"].copy(), p.state["q_x__cov"].copy()
    trace = []
    for _ in range(6):
        for var in p.schedule():
            p.update(var)
            if var == "x":
                ms, Ps, _ = smoothers(y, seq, 1 / e_tau)
                np.testing.assert_allclose(p.state["q_x__mean"], ms, rtol=0, atol=1e-10)
                np.testing.assert_allclose(p.state["q_x__cov"], Ps, rtol=0, atol=1e-10)
            else:
                a, b = A0 + len(y) / 2, B0 + 0.5 * (((y - ms[:, 0]) ** 2).sum() + Ps[:, 0, 0].sum())
                e_tau = a / b
                np.testing.assert_allclose(float(p.state["m_tau__x"].reshape(())), e_tau, rtol=1e-12)
        trace.append(p.elbo())
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:])), np.diff(trace)


@pytest.mark.long       # (the derivation and one reference block update: 2 minutes on the loaded machine)
def test_the_reference_evaluator_is_each_series_smoother_too(data):
    """τ = 4 known: ppvi.derive.chain's block, evaluated by the reference evaluator, is the smoother written here
    (means 1e-12, E[xxᵀ] 1e-10 of values up to 6·10², the ELBO Σ_s log p(y_s) to 1e-9): measured 8.5e-14,
    4.4e-12 and 1.5e-10."""
    from ppvi.derive.numeric import evaluate

    d = derive(loads(PATH.read_text().replace("tau ~ Gamma(2, 0.5) ", "data tau"), "<ragged_lds_known>"))
    env = Env({**data, "tau": np.array(4.0), "m0": np.zeros(2), "P0": np.eye(2), "F": F, "Q": Q}, {},
              {"T": len(data["y"]), "D": 2, "S": int(data["seq"].max()) + 1})
    update_gaussian_block(d.gaussian["x"], env)
    ms, Ps, ll = smoothers(data["y"], data["seq"], 0.25)
    np.testing.assert_allclose(env.moments[("x", "x")], ms, rtol=0, atol=1e-12)
    np.testing.assert_allclose(env.moments[("x", "xxT")], Ps + ms[:, :, None] * ms[:, None, :], rtol=0, atol=1e-10)
    assert sum(evaluate(e, env) for _, e in d.elbo_terms()) == pytest.approx(ll, abs=1e-9, rel=0)
