"""A Gaussian chain approximated jointly, compiled (issue 18): one kernel fills the blocks of the joint
precision and hands them to the Kalman filter / RTS smoother of the runtime.

- compiled = reference evaluator: a linear dynamical system whose observation precision R is learned
  (Wishart, mean field beside the chain); the reference (``ppvi.derive.chain.update_gaussian_block``, which
  reads the blocks off η by its linearity, and tests/derive/reference.py for R) takes the same steps: every
  moment, the lag-one covariances and the ELBO to 1e-10 after each update;
- with fixed parameters, q(x) is the posterior: its means, covariances and lag-one covariances equal a
  Kalman filter and RTS smoother in covariance form (Särkkä 2013, algorithms 4.3 and 8.2; written in
  tests/infer/test_chains.py), and the ELBO is log p(y) (the prediction-error decomposition); with the
  observation precision learned, the fit is the fixed point of VBEM written here (Beal 2003, ch. 5);
- the structured bound lies above the mean field's (both monotone), the mean field's covariances too small
  (PRML 10.1.2);
- what the block would get wrong is refused with a position: a statement reading two of its elements.
"""

from __future__ import annotations

import numpy as np
import pytest

from ppvi.derive import derive
from ppvi.derive.chain import update_gaussian_block
from ppvi.derive.numeric import Env
from ppvi.errors import PPVIError
from ppvi.language import loads

from codegen.programs import lockstep, plain, program      # noqa: E402  (tests/codegen/programs.py)
from derive import reference              # noqa: E402  (tests/derive/reference.py)
from infer.test_chains import kalman_rts   # noqa: E402  (covariance form, written there)

F = np.array([[0.9, 0.2], [-0.2, 0.9]])
Q = 4.0 * np.eye(2)                  # precisions, as the model writes them
P0 = np.eye(2)

BAYES_LDS = """\
dim T
dim D = 2
const m0[D] = 0.0
const P0[D, D] = eye(D)
const F[D, D] = [[0.9, 0.2], [-0.2, 0.9]]
const Q[D, D] = 4.0 * eye(D)
const W0[D, D] = eye(D)
data y[T, D]
R ~ Wishart(4.0, W0)
x[0] ~ MvNormal(m0, precision = P0)
for t in T[1:]:
    x[t] ~ MvNormal(dot(F, x[t-1]), precision = Q)
for t in T:
    y[t] ~ MvNormal(x[t], precision = R)
approximate x jointly
"""
BAYES_LDS_MEAN_FIELD = BAYES_LDS.replace("approximate x jointly\n", "")
FIXED_LDS = BAYES_LDS.replace("const W0[D, D] = eye(D)\n", "").replace("R ~ Wishart(4.0, W0)", "data R[D, D]")
SWEEPS = 4


def _data(T: int = 30, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((T, 2))
    x[0] = rng.multivariate_normal(np.zeros(2), np.linalg.inv(P0))
    for t in range(1, T):
        x[t] = F @ x[t - 1] + rng.multivariate_normal(np.zeros(2), np.linalg.inv(Q))
    return x + rng.multivariate_normal(np.zeros(2), 0.3 * np.eye(2), size=T)


def _lockstep(text: str, y: np.ndarray, compiled: bool = True):
    """The compiled program (its kernels as plain Python unless ``compiled``) and the reference side by side
    from the program's start (programs.lockstep), the block's lag-one covariances and entropy compared too."""
    model = loads(text, "<bayes_lds>")
    p = program(model, {"y": y})
    if not compiled:
        p.module = plain(p.module)
    p.initialise(np.random.default_rng(0))
    d = derive(model)
    env = Env({"y": y, "m0": np.zeros(2), "P0": P0, "F": F, "Q": Q, "W0": np.eye(2)}, {}, {"T": len(y), "D": 2})

    def update(var: str) -> list[float]:
        if var not in d.gaussian:
            reference.update(d, var, env)
            return []
        update_gaussian_block(d.gaussian[var], env)
        return [np.abs(p.state["m_x__cross"] - env.moments[("x", "cross")]).max(),
                abs(p.state["h_x"].sum() - float(env.moments[("x", "entropy")]))]
    return (p, *lockstep(p, d, env, SWEEPS, update))


@pytest.fixture(scope="module")
def jointly():
    return _lockstep(BAYES_LDS, _data())


def test_compiled_equals_reference(jointly):
    p, gaps, elbos = jointly
    assert gaps.max() < 1e-10, gaps.max()
    np.testing.assert_allclose(elbos[:, 0], elbos[:, 1], rtol=0, atol=1e-10)


LEARNED_Q = BAYES_LDS.replace("const Q[D, D] = 4.0 * eye(D)\n", "").replace(
    "R ~ Wishart(4.0, W0)", "R ~ Wishart(4.0, W0)\nQ ~ Wishart(4.0, W0)")


def test_a_learned_state_precision_equals_reference():
    """Q learned in the chain's own statement: its update and the ELBO read E[xₜ₋₁xₜᵀ] through the lag-one
    covariances (a statistic Σ_{t≥1} Cov(xₜ₋₁, xₜ)); the generated kernels as plain Python take the reference's
    steps (tests/derive/test_chain_lag_one.py checks the reference against the VB update in NumPy)."""
    p, gaps, elbos = _lockstep(LEARNED_Q, _data(T=6), compiled=False)
    assert gaps.max() < 1e-10, gaps.max()
    np.testing.assert_allclose(elbos[:, 0], elbos[:, 1], rtol=0, atol=1e-10)
    assert np.all(np.diff(elbos[:, 0]) >= -1e-9 * np.abs(elbos[1:, 0]))


def _trace(p, sweeps: int) -> list[float]:
    out = []
    for _ in range(sweeps):
        for var in p.schedule():
            p.update(var)
        out.append(p.elbo())
    return out


def test_structured_bound_is_above_the_mean_field_and_both_are_monotone(jointly):
    """Both fits from their own starts to convergence: each ELBO trace never decreases, and the structured
    q's final bound exceeds the mean field's (whose covariances are too small: PRML 10.1.2)."""
    p = jointly[0]
    structured = list(jointly[2][:, 0]) + _trace(p, 40)
    mf = program(loads(BAYES_LDS_MEAN_FIELD, "<bayes_lds_mf>"), {"y": _data()})
    mf.module = plain(mf.module)
    mf.initialise(np.random.default_rng(0))
    mean_field = _trace(mf, 60)
    for trace in (structured, mean_field):
        trace = np.array(trace)
        assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:])), np.diff(trace).min()
    assert abs(structured[-1] - structured[-2]) < 1e-8
    assert structured[-1] > mean_field[-1] + 1e-3
    var_structured = np.einsum("tdd->td", p.state["q_x__cov"])
    var_mean_field = np.einsum("tdd->td", mf.state["q_x__cov"])
    assert np.all(var_mean_field < var_structured)


def test_fixed_parameters_give_the_rts_smoother_and_log_evidence():
    """Known F, Q, R: one update of the block is the exact posterior (the generated kernel as plain Python;
    the Kalman/RTS helper it calls compiled)."""
    y = _data(T=25, seed=11)
    R = np.array([[3.0, 0.5], [0.5, 2.0]])
    p = program(loads(FIXED_LDS, "<fixed_lds>"), {"y": y, "R": R})
    p.module = plain(p.module)
    p.initialise(np.random.default_rng(1))
    p.update("x")
    ms, Ps, lag, ll = kalman_rts(y, np.zeros(2), np.linalg.inv(P0), F, np.linalg.inv(Q), np.linalg.inv(R))
    np.testing.assert_allclose(p.state["q_x__mean"], ms, rtol=0, atol=1e-10)
    np.testing.assert_allclose(p.state["q_x__cov"], Ps, rtol=0, atol=1e-10)
    np.testing.assert_allclose(p.state["m_x__xxT"], Ps + ms[:, :, None] * ms[:, None, :], rtol=0, atol=1e-10)
    np.testing.assert_allclose(p.state["m_x__cross"], lag, rtol=0, atol=1e-10)
    assert p.elbo() == pytest.approx(ll, abs=1e-9, rel=0)
    sign, logdet = np.linalg.slogdet(np.linalg.inv(_joint_precision(len(y), R)))
    assert p.state["h_x"].sum() == pytest.approx(0.5 * logdet + y.size / 2 * (1 + np.log(2 * np.pi)), abs=1e-9)


def test_the_lds_example_is_the_rts_smoother_of_its_data():
    """models/sequences/lds.ppvi on its data (the corpus case; its constants written here from its text)."""
    import json
    from pathlib import Path

    from ppvi.language import load

    path = Path(__file__).resolve().parents[2] / "models" / "sequences" / "lds.ppvi"
    y = np.array(json.loads(path.with_suffix(".json").read_text())["y"])
    p = program(load(str(path)), {"y": y})
    p.module = plain(p.module)
    p.initialise(np.random.default_rng(2))
    p.update("x")
    F = np.array([[0.975, -0.098], [0.098, 0.975]])
    ms, Ps, lag, ll = kalman_rts(y, np.zeros(2), np.eye(2), F, np.eye(2) / 11.1, np.eye(2) / 4.0)
    np.testing.assert_allclose(p.state["q_x__mean"], ms, rtol=0, atol=1e-10)
    np.testing.assert_allclose(p.state["q_x__cov"], Ps, rtol=0, atol=1e-10)
    assert p.elbo() == pytest.approx(ll, abs=1e-8, rel=0)


def test_the_lds_noise_example_takes_the_steps_of_vbem():
    """models/sequences/lds_noise.ppvi (R ~ Wishart(ν₀, W₀) beside the chain) takes, sweep by sweep from the same
    start, the steps of variational Bayesian EM written here (Beal 2003, ch. 5): q(x) the RTS smoother at the
    observation precision E[R]; q(R) = Wishart(ν₀ + T, (W₀⁻¹ + Σₜ E[(yₜ − xₜ)(yₜ − xₜ)ᵀ])⁻¹)."""
    import json
    from pathlib import Path

    from ppvi.language import load

    path = Path(__file__).resolve().parents[2] / "models" / "sequences" / "lds_noise.ppvi"
    y = np.array(json.loads(path.with_suffix(".json").read_text())["y"])
    p = program(load(str(path)), {"y": y})
    p.module = plain(p.module)
    p.initialise(np.random.default_rng(3))
    F = np.array([[0.975, -0.098], [0.098, 0.975]])
    T, nu0, W0 = len(y), 4.0, 0.25 * np.eye(2)
    e_R, ms, Ps = p.state["m_R__X"].reshape(2, 2).copy(), p.state["q_x__mean"].copy(), p.state["q_x__cov"].copy()
    for _ in range(6):
        for var in p.schedule():
            p.update(var)
            if var == "x":
                ms, Ps, _, _ = kalman_rts(y, np.zeros(2), np.eye(2), F, np.eye(2) / 11.1, np.linalg.inv(e_R))
                np.testing.assert_allclose(p.state["q_x__mean"], ms, rtol=0, atol=1e-10)
                np.testing.assert_allclose(p.state["q_x__cov"], Ps, rtol=0, atol=1e-10)
            else:
                r = y - ms
                e_R = (nu0 + T) * np.linalg.inv(np.linalg.inv(W0) + r.T @ r + Ps.sum(axis=0))
                np.testing.assert_allclose(p.state["q_R__df"].reshape(()), nu0 + T, rtol=1e-14)
                np.testing.assert_allclose(p.state["m_R__X"].reshape(2, 2), e_R, rtol=1e-10)


def _joint_precision(T: int, R: np.ndarray) -> np.ndarray:
    """Λ of p(x | y) written out: P0 + R at t = 0, Q + R after, FᵀQF on every element with a successor, −FᵀQ
    above the diagonal."""
    lam = np.zeros((2 * T, 2 * T))
    for t in range(T):
        lam[2 * t:2 * t + 2, 2 * t:2 * t + 2] = R + (P0 if t == 0 else Q) + (F.T @ Q @ F if t + 1 < T else 0)
        if t > 0:
            lam[2 * t - 2:2 * t, 2 * t:2 * t + 2] = -F.T @ Q
            lam[2 * t:2 * t + 2, 2 * t - 2:2 * t] = -Q @ F
    return lam


REFUSED_TWO_ELEMENTS = BAYES_LDS.replace("for t in T:\n    y[t] ~ MvNormal(x[t], precision = R)",
                                         "for t in T[1:]:\n    y[t] ~ MvNormal(x[t] - x[t-1], precision = R)")


@pytest.mark.parametrize("text, message, line", [
    (REFUSED_TWO_ELEMENTS, "ppvi cannot derive the joint q of `x` with a statement that reads more than one", 14)],
    ids=["two_elements"])
def test_what_the_block_would_get_wrong_is_refused(text, message, line):
    with pytest.raises(PPVIError) as e:
        derive(loads(text, "m.ppvi"))
    assert message in str(e.value) and f"m.ppvi:{line}:" in str(e.value), str(e.value)
