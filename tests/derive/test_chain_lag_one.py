"""What a joint Gaussian chain's own statement learns reads E[xₜ₋₁xₜᵀ] with the lag-one covariance (issue 18).

Under ``approximate x jointly`` q(x) is one Gaussian over the chain, so E[xₜ₋₁xₜᵀ] = ⟨xₜ₋₁⟩⟨xₜ⟩ᵀ + Cov(xₜ₋₁, xₜ),
the RTS smoother's lag-one covariance (Shumway & Stoffer 1982; PRML 13.3.2, eq. 13.104).  The updates of what
the chain's statement learns are written here in NumPy from a Kalman filter and RTS smoother in covariance form
(tests/infer/test_chains.py) and compared with the derived ones, evaluated by the reference evaluator:

- a random walk whose state precision Q is learned (Wishart): q(Q) = Wishart(ν₀ + T − 1,
  (W₀⁻¹ + Σ_{t≥1} E[(xₜ − xₜ₋₁)(xₜ − xₜ₋₁)ᵀ])⁻¹) (Beal 2003, ch. 5);
- the ELBO at that q is E[log p] + H[q] with the lag-one covariances in the chain's own term;
- an AR(1) chain of scalars whose coefficient φ is a param: its M-step is Shumway & Stoffer's
  Σ E[xₜxₜ₋₁] / Σ E[xₜ₋₁²], as a Normal latent its q reads the same sums; a transition matrix F as a param: its coordinate steps reach
  Σ E[xₜxₜ₋₁ᵀ] (Σ E[xₜ₋₁xₜ₋₁ᵀ])⁻¹.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from ppvi.derive.chain import update_gaussian_block
from ppvi.derive.meanfield import derive
from ppvi.derive.numeric import Env
from ppvi.language.check import check
from ppvi.language.parser import parse

from codegen.test_gaussian_chain_kernels import BAYES_LDS     # noqa: E402
from derive import reference              # noqa: E402  (tests/derive/reference.py)
from infer.test_chains import kalman_rts   # noqa: E402  (covariance form, written there)
from infer.test_local_level import kalman  # noqa: E402  (the scalar one)

# the random walk of tests/codegen/test_gaussian_chain_kernels.py's LDS, Q learned and R known
WALK = BAYES_LDS.replace("const F[D, D] = [[0.9, 0.2], [-0.2, 0.9]]\nconst Q[D, D] = 4.0 * eye(D)\n",
                         "const R[D, D] = 2.0 * eye(D)\n").replace(
    "R ~ Wishart(4.0, W0)", "Q ~ Wishart(5.0, W0)").replace("dot(F, x[t-1])", "x[t-1]")
NU0, W0, R = 5.0, np.eye(2), 2.0 * np.eye(2)


def _walk(T: int = 20, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.normal(0.0, 0.5, size=(T, 2)), axis=0)
    return x + rng.normal(0.0, 0.7, size=(T, 2))


def _second_moments_of_steps(ms, Ps, lag) -> np.ndarray:
    """Σ_{t≥1} E[(xₜ − xₜ₋₁)(xₜ − xₜ₋₁)ᵀ] from the smoother: E[xₜxₜᵀ] + E[xₜ₋₁xₜ₋₁ᵀ] − E[xₜ₋₁xₜᵀ] − E[xₜxₜ₋₁ᵀ]."""
    xx = Ps + ms[:, :, None] * ms[:, None, :]
    pair = lag[1:] + ms[:-1, :, None] * ms[1:, None, :]           # E[xₜ₋₁xₜᵀ]
    return (xx[1:] + xx[:-1] - pair - np.swapaxes(pair, 1, 2)).sum(axis=0)


@pytest.fixture(scope="module")
def walk():
    y = _walk()
    d = derive(check(parse(WALK, "walk.ppvi")))
    e_Q = np.array([[3.0, 0.4], [0.4, 2.0]])          # some q(Q): Wishart(ν, E[Q]/ν)
    q_Q = {"df": np.array(7.0), "scale": e_Q / 7.0}
    env = Env({"y": y, "m0": np.zeros(2), "P0": np.eye(2), "R": R, "W0": W0, **{f"{k}(Q)": v for k, v in q_Q.items()}},
              {("Q", k): v for k, v in reference.moments("Wishart", q_Q).items()}, {"T": len(y), "D": 2})
    update_gaussian_block(d.gaussian["x"], env)
    return y, d, env, e_Q


def test_the_block_at_the_expected_precision_is_the_rts_smoother(walk):
    y, d, env, e_Q = walk
    ms, Ps, lag, _ = kalman_rts(y, np.zeros(2), np.eye(2), np.eye(2), np.linalg.inv(e_Q), np.linalg.inv(R))
    np.testing.assert_allclose(env.moments[("x", "x")], ms, rtol=0, atol=1e-10)
    np.testing.assert_allclose(env.moments[("x", "cross")], lag, rtol=0, atol=1e-10)


def test_learned_state_precision_reads_the_lag_one_covariances(walk):
    """q(Q) after the block: ν₀ + T − 1 and (W₀⁻¹ + S)⁻¹ with S the steps' second moments from the smoother.
    (Main read E[xₜ₋₁xₜᵀ] as ⟨xₜ₋₁⟩⟨xₜ⟩ᵀ, and refused Q in the chain's statement.)"""
    y, d, env, e_Q = walk
    env = Env(env.arrays, dict(env.moments), env.dims)
    ms, Ps, lag, _ = kalman_rts(y, np.zeros(2), np.eye(2), np.eye(2), np.linalg.inv(e_Q), np.linalg.inv(R))
    reference.update(d, "Q", env)
    T = len(y)
    assert float(env.arrays["df(Q)"]) == pytest.approx(NU0 + T - 1, rel=1e-14)
    want = np.linalg.inv(np.linalg.inv(W0) + _second_moments_of_steps(ms, Ps, lag))
    np.testing.assert_allclose(env.arrays["scale(Q)"], want, rtol=1e-10, atol=0)


def test_elbo_reads_the_lag_one_covariances(walk):
    """The ELBO at (q(x), q(Q)) against its terms written here: E[log p(x₀)] + E[log p(y | x)] + the chain's
    E[log N(xₜ | xₜ₋₁, Q⁻¹)] (E[log|Q|] and E[Q] of q(Q), the steps' second moments with the lag-one
    covariances) + E[log p(Q)] + H[q(x)] + H[q(Q)]."""
    y, d, env, e_Q = walk
    T, D = y.shape
    ms, Ps, lag, _ = kalman_rts(y, np.zeros(2), np.eye(2), np.eye(2), np.linalg.inv(e_Q), np.linalg.inv(R))
    nu, V = 7.0, e_Q / 7.0
    e_logdet = special.psi((nu - np.arange(D)) / 2).sum() + D * np.log(2) + np.linalg.slogdet(V)[1]
    log2pi = np.log(2 * np.pi)
    xx = Ps + ms[:, :, None] * ms[:, None, :]
    first = -0.5 * (D * log2pi + np.trace(xx[0]))
    obs = sum(0.5 * (np.linalg.slogdet(R)[1] - D * log2pi)
              - 0.5 * np.trace(R @ (np.outer(y[t], y[t]) - 2 * np.outer(ms[t], y[t]) + xx[t])) for t in range(T))
    chain = (T - 1) * 0.5 * (e_logdet - D * log2pi) - 0.5 * np.trace(e_Q @ _second_moments_of_steps(ms, Ps, lag))
    lmvgamma = special.multigammaln(NU0 / 2, D)
    prior_q = ((NU0 - D - 1) / 2 * e_logdet - 0.5 * np.trace(np.linalg.inv(W0) @ e_Q)
               - NU0 * D / 2 * np.log(2) - NU0 / 2 * np.linalg.slogdet(W0)[1] - lmvgamma)
    h_x = 0.5 * np.linalg.slogdet(2 * np.pi * np.e * _joint_covariance(ms, Ps, lag))[1]
    h_q = ((D + 1) / 2 * np.linalg.slogdet(V)[1] + D * (D + 1) / 2 * np.log(2) + special.multigammaln(nu / 2, D)
           - (nu - D - 1) / 2 * special.psi((nu - np.arange(D)) / 2).sum() + nu * D / 2)
    assert reference.elbo(d, env) == pytest.approx(first + obs + chain + prior_q + h_x + h_q, abs=1e-9, rel=0)


def _joint_covariance(ms, Ps, lag) -> np.ndarray:
    """The smoother's joint covariance of the chain, built from its marginals and lag-one blocks (a Markov
    chain: Cov(xₛ, xₜ) = Cov(xₛ, xₛ₊₁) Σₛ₊₁⁻¹ Cov(xₛ₊₁, xₜ) for s < t)."""
    T, D = ms.shape
    cov = np.zeros((T * D, T * D))
    for t in range(T):
        cov[t * D:(t + 1) * D, t * D:(t + 1) * D] = Ps[t]
    for t in range(T - 1, 0, -1):
        gain = lag[t] @ np.linalg.inv(Ps[t])           # Cov(xₜ₋₁, xₜ) Σₜ⁻¹
        for s in range(t, T):
            block = gain @ cov[t * D:(t + 1) * D, s * D:(s + 1) * D]
            cov[(t - 1) * D:t * D, s * D:(s + 1) * D] = block
            cov[s * D:(s + 1) * D, (t - 1) * D:t * D] = block.T
    return cov


AR1 = """\
dim T
data y[T]
param phi
x[0] ~ Normal(0, precision = 0.5)
for t in T[1:]:
    x[t] ~ Normal(phi * x[t-1], precision = 4.0)
for t in T:
    y[t] ~ Normal(x[t], precision = 2.0)
approximate x jointly
"""


def test_a_coefficient_param_takes_the_em_step_of_shumway_and_stoffer():
    """φ ← Σ_{t≥1} E[xₜxₜ₋₁] / Σ_{t≥1} E[xₜ₋₁²] from the smoother at the current φ (main read E[xₜxₜ₋₁] as
    ⟨xₜ⟩⟨xₜ₋₁⟩, and refused φ in the chain's statement)."""
    from ppvi.derive.numeric import evaluate

    rng = np.random.default_rng(8)
    y = np.cumsum(rng.normal(size=15)) * 0.3 + rng.normal(size=15)
    d = derive(check(parse(AR1, "ar1.ppvi")))
    env = Env({"y": y, "phi": np.asarray(0.7)}, {}, {"T": len(y)})
    update_gaussian_block(d.gaussian["x"], env)
    m, P, lag, _ = kalman(y, 0.5, 0.25, p1=2.0, phi=0.7)
    np.testing.assert_allclose(env.moments[("x", "cross")], lag, rtol=0, atol=1e-12)
    want = np.sum(m[1:] * m[:-1] + lag[1:]) / np.sum(m[:-1] ** 2 + P[:-1])
    assert evaluate(d.points["phi"].value, env) == pytest.approx(want, rel=1e-12)


MATRIX_F = WALK.replace("const R[D, D] = 2.0 * eye(D)\n", "const R[D, D] = 2.0 * eye(D)\nconst Q[D, D] = [[4.0, 1.0], [1.0, 3.0]]\n"
                        "param F[D, D]\n").replace("Q ~ Wishart(5.0, W0)\n", "").replace(
    "MvNormal(x[t-1], precision = Q)", "MvNormal(dot(F, x[t-1]), precision = Q)")


def test_a_transition_matrix_param_converges_to_the_em_step_of_shumway_and_stoffer():
    """F's derived coordinate steps (each element's exact maximiser, the others fixed), repeated at one q(x),
    reach F = Σ_{t≥1} E[xₜxₜ₋₁ᵀ] (Σ_{t≥1} E[xₜ₋₁xₜ₋₁ᵀ])⁻¹, the M-step of Shumway & Stoffer (1982)."""
    from ppvi.derive.numeric import evaluate

    y = _walk(T=10)
    d = derive(check(parse(MATRIX_F, "f.ppvi")))
    F0, Q = np.array([[0.9, 0.1], [-0.1, 0.8]]), np.array([[4.0, 1.0], [1.0, 3.0]])
    env = Env({"y": y, "m0": np.zeros(2), "P0": np.eye(2), "R": R, "W0": W0, "Q": Q, "F": F0.copy()}, {},
              {"T": len(y), "D": 2})
    update_gaussian_block(d.gaussian["x"], env)
    ms, Ps, lag, _ = kalman_rts(y, np.zeros(2), np.eye(2), F0, np.linalg.inv(Q), np.linalg.inv(R))
    xx = Ps + ms[:, :, None] * ms[:, None, :]
    pair = lag[1:] + ms[:-1, :, None] * ms[1:, None, :]            # E[xₜ₋₁xₜᵀ]
    want = pair.sum(0).T @ np.linalg.inv(xx[:-1].sum(0))
    step = d.points["F"]
    for _ in range(25):
        for pos in np.ndindex(2, 2):
            at = dict(zip(step.index, pos))
            env.arrays["F"][pos] = evaluate(step.value, env, at)          # (the element's new value)
    np.testing.assert_allclose(env.arrays["F"], want, rtol=1e-10)


def test_a_coefficient_latent_reads_the_lag_one_covariances():
    """φ ~ N(0, 1) in the AR(1) chain's statement: q(φ) = N(4 Σ E[xₜxₜ₋₁] / λ, 1/λ), λ = 1 + 4 Σ E[xₜ₋₁²] (the
    state precision 4), from the smoother at a q(φ) of no spread (E[φ²] = E[φ]², so the block is the Kalman
    smoother at φ = 0.7)."""
    rng = np.random.default_rng(8)
    y = np.cumsum(rng.normal(size=15)) * 0.3 + rng.normal(size=15)
    d = derive(check(parse(AR1.replace("param phi", "phi ~ Normal(0, 1)"), "ar1.ppvi")))
    env = Env({"y": y}, {("phi", "x"): np.asarray(0.7), ("phi", "x2"): np.asarray(0.49)}, {"T": len(y)})
    update_gaussian_block(d.gaussian["x"], env)
    reference.update(d, "phi", env)
    m, P, lag, _ = kalman(y, 0.5, 0.25, p1=2.0, phi=0.7)
    lam = 1 + 4 * np.sum(m[:-1] ** 2 + P[:-1])
    assert float(env.arrays["mean(phi)"]) == pytest.approx(4 * np.sum(m[1:] * m[:-1] + lag[1:]) / lam, rel=1e-12)
    assert float(env.arrays["sd(phi)"]) == pytest.approx(lam ** -0.5, rel=1e-12)
