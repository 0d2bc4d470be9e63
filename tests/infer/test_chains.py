"""Chains (issue 18): the Categorical chain's block derived from p̃, by mean field and by forward–backward.

The structured q(z) with fixed parameters is the exact posterior: its marginals and log Z are
checked against hmmlearn (an independent forward–backward).  With Dirichlet rows of A, a Dirichlet
initial distribution and Normal means, a reference CAVI (tests/derive/reference.py: textbook
formulas for every q but the chain's) checks that the ELBO never decreases, that its fixed point
satisfies the updates written out here in NumPy (PRML 13.2 / Beal 2003, ch. 3), and that the
structured block, put in place of the mean field's product at its fixed point, raises the bound.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scipy import special

from ppvi.derive.chain import update_block
from ppvi.derive.meanfield import derive
from ppvi.derive.numeric import Env, evaluate
from ppvi.language.check import check
from ppvi.language.parser import parse

from derive import reference   # noqa: E402  (tests/derive/reference.py)

FIXED = """\
dim T
dim K = 3
data p0[K]
data A[K, K]
data mu[K]
data sd[K]
data x[T]
z[0] ~ Categorical(p0)
for t in T[1:]:
    z[t] ~ Categorical(A[z[t-1]])
for t in T:
    x[t] ~ Normal(mu[z[t]], sd[z[t]])
approximate z jointly
"""

BAYES = """\
dim T
dim K = 2
const a0[K] = 1.0
data x[T]
pi ~ Dirichlet(a0)
for k in K:
    A[k] ~ Dirichlet(a0)
    mu[k] ~ Normal(0, 10)
z[0] ~ Categorical(pi)
for t in T[1:]:
    z[t] ~ Categorical(A[z[t-1]])
for t in T:
    x[t] ~ Normal(mu[z[t]], 1)
"""


def derivation(text: str):
    return derive(check(parse(text, "hmm.ppvi")))


def sample_hmm(rng, T, p0, A, mu, sd):
    z = np.empty(T, dtype=int)
    z[0] = rng.choice(len(p0), p=p0)
    for t in range(1, T):
        z[t] = rng.choice(len(p0), p=A[z[t - 1]])
    return rng.normal(mu[z], sd[z])


# ------------------------------------------------------------------ fixed parameters: exact posterior
@pytest.fixture(scope="module")
def fixed():
    rng = np.random.default_rng(0)
    p0 = np.array([0.5, 0.3, 0.2])
    A = np.array([[0.8, 0.15, 0.05], [0.1, 0.7, 0.2], [0.25, 0.25, 0.5]])
    mu, sd = np.array([-2.0, 0.0, 2.5]), np.array([0.7, 1.0, 0.5])
    x = sample_hmm(rng, 120, p0, A, mu, sd)
    env = Env({"p0": p0, "A": A, "mu": mu, "sd": sd, "x": x}, {}, {"T": len(x), "K": 3})
    d = derivation(FIXED)
    log_z = update_block(d.blocks["z"], env)
    return d, env, log_z, (p0, A, mu, sd, x)


def test_fixed_parameters_match_hmmlearn(fixed):
    hmm = pytest.importorskip("hmmlearn.hmm")
    d, env, log_z, (p0, A, mu, sd, x) = fixed
    ref = hmm.GaussianHMM(n_components=3, covariance_type="diag", init_params="", params="")
    ref.startprob_, ref.transmat_, ref.means_, ref.covars_ = p0, A, mu[:, None], sd[:, None] ** 2
    np.testing.assert_allclose(env.moments[("z", "onehot")], ref.predict_proba(x[:, None]), rtol=0, atol=1e-10)
    assert log_z == pytest.approx(ref.score(x[:, None]), abs=1e-10, rel=0)


def test_fixed_parameters_elbo_is_the_log_likelihood(fixed):
    """With q(z) the exact posterior, E_q[log p] + H[q(z)] = log p(x) (19.7 with no gap)."""
    d, env, log_z, _ = fixed
    elbo = sum(evaluate(e, env) for _, e in d.elbo_terms())
    assert elbo == pytest.approx(log_z, abs=1e-9, rel=0)
    xi, r = env.moments[("z", "pair")], env.moments[("z", "onehot")]
    np.testing.assert_allclose(xi[1:].sum(axis=2), r[:-1], atol=1e-12)    # pairwise marginals are consistent
    np.testing.assert_allclose(xi[1:].sum(axis=1), r[1:], atol=1e-12)


SEQUENCES = """\
dim S, T
dim K = 3
data p0[K]
data A[K, K]
data mu[K]
data sd[K]
data x[S, T]
for s in S:
    z[s, 0] ~ Categorical(p0)
    for t in T[1:]:
        z[s, t] ~ Categorical(A[z[s, t-1]])
    for t in T:
        x[s, t] ~ Normal(mu[z[s, t]], sd[z[s, t]])
approximate z jointly
"""


def test_several_sequences_are_blocks_of_their_own(fixed):
    """Sequences as a plate: one forward–backward per sequence; hmmlearn's score over ``lengths`` is Σ log Z."""
    hmm = pytest.importorskip("hmmlearn.hmm")
    _, _, _, (p0, A, mu, sd, _) = fixed
    rng = np.random.default_rng(7)
    x = np.stack([sample_hmm(rng, 40, p0, A, mu, sd) for _ in range(3)])
    env = Env({"p0": p0, "A": A, "mu": mu, "sd": sd, "x": x}, {}, {"S": 3, "T": 40, "K": 3})
    d = derivation(SEQUENCES)
    log_z = update_block(d.blocks["z"], env)
    ref = hmm.GaussianHMM(n_components=3, covariance_type="diag", init_params="", params="")
    ref.startprob_, ref.transmat_, ref.means_, ref.covars_ = p0, A, mu[:, None], sd[:, None] ** 2
    lengths = [40, 40, 40]
    assert log_z == pytest.approx(ref.score(x.reshape(-1, 1), lengths), abs=1e-10, rel=0)
    np.testing.assert_allclose(env.moments[("z", "onehot")].reshape(-1, 3),
                               ref.predict_proba(x.reshape(-1, 1), lengths), rtol=0, atol=1e-10)
    assert sum(evaluate(e, env) for _, e in d.elbo_terms()) == pytest.approx(log_z, abs=1e-9, rel=0)


# ------------------------------------------------------------ Bayesian HMM: mean field and structured
def cavi(d, x, jointly: bool, sweeps: int, seed: int = 1, **extra):
    """Reference CAVI: the chain's block, then every other q from its derived η (textbook finishes)."""
    block = d.blocks["z"]
    d.blocks["z"] = type(block)(**{**block.__dict__, "jointly": jointly})
    T, K = len(x), 2
    r = np.random.default_rng(seed).dirichlet(np.ones(K), size=T)
    xi = np.zeros((T, K, K))
    xi[1:] = r[:-1, :, None] * r[1:, None, :]
    env = Env({"x": x, "a0": np.ones(K), **extra}, {("z", "onehot"): r, ("z", "pair"): xi, ("z", "entropy"): 0.0},
              {"T": T, "K": K, "V": 3})
    return env, reference.chain_sweeps(d, env, sweeps)


@pytest.fixture(scope="module")
def bayes():
    rng = np.random.default_rng(3)
    x = sample_hmm(rng, 60, np.array([0.6, 0.4]), np.array([[0.9, 0.1], [0.2, 0.8]]),
                   np.array([-1.5, 1.5]), np.array([1.0, 1.0]))
    d = derivation(BAYES)
    mf = cavi(d, x, jointly=False, sweeps=40)
    st = cavi(d, x, jointly=True, sweeps=40)
    return x, mf, st


@pytest.mark.parametrize("which", [1, 2])
def test_elbo_never_decreases(bayes, which):
    trace = bayes[which][1]
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:])), np.diff(trace).min()


def structured_step(d, env) -> float:
    """The ELBO after one structured update of q(z), every other q held: max over a family that
    contains the mean field's product, so never below where the mean field stood.  (On a copy of env.)"""
    env = copy.deepcopy(env)
    block = d.blocks["z"]
    d.blocks["z"] = type(block)(**{**block.__dict__, "jointly": True})
    update_block(d.blocks["z"], env)
    return reference.elbo(d, env)


def test_structured_bound_above_mean_field(bayes):
    x, (env, mf), _ = bayes
    d = derivation(BAYES)
    assert reference.elbo(d, env) == pytest.approx(mf[-1], abs=1e-9)
    gain = structured_step(d, env) - mf[-1]
    assert gain > 1e-3          # (the chain's states are correlated: the product of marginals loses)


def scaled_forward_backward(log_init, log_trans, log_node) -> np.ndarray:
    """The marginals q(zₜ = k) of a stationary chain by forward–backward in probability space with scaling
    (Rabiner 1989; each log ψₜ shifted by its largest entry): independent of ppvi's log-space runtime."""
    phi, Psi, psi = np.exp(log_init), np.exp(log_trans), np.exp(log_node - log_node.max(axis=1, keepdims=True))
    T, K = psi.shape
    a, b, c = np.empty((T, K)), np.ones((T, K)), np.empty(T)
    a[0] = phi * psi[0]
    c[0] = a[0].sum()
    a[0] /= c[0]
    for t in range(1, T):
        a[t] = (a[t - 1] @ Psi) * psi[t]
        c[t] = a[t].sum()
        a[t] /= c[t]
    for t in range(T - 2, -1, -1):
        b[t] = Psi @ (psi[t + 1] * b[t + 1]) / c[t + 1]
    return a * b


def _textbook(x, r, xi, jointly):
    """One round of the Bayesian HMM's updates written out (Beal 2003, §3.4; PRML 13.2), from r and ξ."""
    a0 = 1.0
    alpha_pi = a0 + r[0]
    alpha_A = a0 + xi[1:].sum(axis=0)
    prec = 1 / 100 + r.sum(axis=0)
    mean = (r * x[:, None]).sum(axis=0) / prec
    e_log_pi = special.digamma(alpha_pi) - special.digamma(alpha_pi.sum())
    e_log_A = special.digamma(alpha_A) - special.digamma(alpha_A.sum(axis=1, keepdims=True))
    e_mu, e_mu2 = mean, mean ** 2 + 1 / prec
    log_node = -0.5 * (x[:, None] ** 2 - 2 * x[:, None] * e_mu + e_mu2) - 0.5 * np.log(2 * np.pi)
    T = len(x)
    if jointly:
        return scaled_forward_backward(e_log_pi, e_log_A, log_node)
    r = r.copy()
    for t in range(T):
        eta = log_node[t] + (e_log_pi if t == 0 else r[t - 1] @ e_log_A)
        if t + 1 < T:
            eta = eta + e_log_A @ r[t + 1]
        r[t] = np.exp(eta - special.logsumexp(eta))
    return r


@pytest.mark.parametrize("which", [1, 2])
def test_fixed_point_of_the_textbook_updates(bayes, which):
    x, *runs = bayes
    env = runs[which - 1][0]
    r, xi = env.moments[("z", "onehot")], env.moments[("z", "pair")]
    np.testing.assert_allclose(_textbook(x, r, xi, jointly=which == 2), r, atol=1e-6)


DISCRETE = """\
dim T, V
dim K = 2
const a0[K] = 1.0
const b0[V] = 0.5
data x[T] : index(V)
pi ~ Dirichlet(a0)
for k in K:
    A[k] ~ Dirichlet(a0)
    B[k] ~ Dirichlet(b0)
z[0] ~ Categorical(pi)
for t in T[1:]:
    z[t] ~ Categorical(A[z[t-1]])
for t in T:
    x[t] ~ Categorical(B[z[t]])
"""


def test_dirichlet_emissions_monotone_and_structured_above_mean_field():
    """Discrete emissions (Dirichlet rows of B): q(B[k]) counts Σ_t q(z_t = k)[x_t = v]."""
    rng = np.random.default_rng(11)
    z = np.zeros(40, dtype=int)
    for t in range(1, 40):
        z[t] = z[t - 1] if rng.random() < 0.9 else 1 - z[t - 1]
    x = np.where(z == 0, rng.choice(3, 40, p=[0.7, 0.2, 0.1]), rng.choice(3, 40, p=[0.1, 0.2, 0.7]))
    d = derivation(DISCRETE)
    eta_b = str(d.q["B"].natural["logp"])
    assert "onehot" in eta_b and "x[" in eta_b
    runs = [cavi(d, x.astype(float), jointly, sweeps=15, b0=np.full(3, 0.5)) for jointly in (False, True)]
    for _, trace in runs:
        assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))
    env, trace = runs[0]
    assert structured_step(d, env) >= trace[-1] - 1e-9


# ------------------------------------------------------------------ a Gaussian chain (linear dynamical system)
LDS = """\
dim T
dim D = 2
const m0[D] = 0.0
const P0[D, D] = eye(D)
const F[D, D] = [[0.9, 0.1], [-0.1, 0.9]]
const Q[D, D] = 4.0 * eye(D)
const R[D, D] = 2.0 * eye(D)
data y[T, D]
x[0] ~ MvNormal(m0, precision = P0)
for t in T[1:]:
    x[t] ~ MvNormal(dot(F, x[t-1]), precision = Q)
for t in T:
    y[t] ~ MvNormal(x[t], precision = R)
"""
F = np.array([[0.9, 0.1], [-0.1, 0.9]])
Qc, Rc = np.eye(2) / 4.0, np.eye(2) / 2.0          # the covariances


def kalman_rts(y, m0, P0cov, F, Qcov, Rcov):
    """Kalman filter and RTS smoother in covariance form (Rauch, Tung & Striebel 1965; Särkkä 2013, alg. 4.3
    and 8.2; PRML 13.3), an observation matrix of 1: smoothed means, covariances, lag-one covariances
    Cov(x[t-1], x[t]) (PRML 13.104) and log p(y) (the prediction-error decomposition)."""
    T, D = y.shape
    mf, Pf, mp, Pp, ll = [], [], [], [], 0.0
    m, P = m0, P0cov
    for t in range(T):
        if t > 0:
            m, P = F @ m, F @ P @ F.T + Qcov
        mp.append(m)
        Pp.append(P)
        S = P + Rcov
        v = y[t] - m
        ll -= 0.5 * (v @ np.linalg.solve(S, v) + np.linalg.slogdet(2 * np.pi * S)[1])
        K = P @ np.linalg.inv(S)
        m, P = m + K @ v, P - K @ S @ K.T
        mf.append(m)
        Pf.append(P)
    ms, Ps, lag = list(mf), list(Pf), np.zeros((T, D, D))
    for t in range(T - 2, -1, -1):
        G = Pf[t] @ F.T @ np.linalg.inv(Pp[t + 1])
        ms[t] = mf[t] + G @ (ms[t + 1] - mp[t + 1])
        Ps[t] = Pf[t] + G @ (Ps[t + 1] - Pp[t + 1]) @ G.T
        lag[t + 1] = G @ Ps[t + 1]
    return np.array(ms), np.array(Ps), lag, ll


@pytest.fixture(scope="module")
def lds():
    rng = np.random.default_rng(4)
    T = 12
    x = np.zeros((T, 2))
    x[0] = rng.normal(size=2)
    for t in range(1, T):
        x[t] = F @ x[t - 1] + rng.multivariate_normal(np.zeros(2), Qc)
    y = x + rng.multivariate_normal(np.zeros(2), Rc, size=T)
    arrays = {"y": y, "F": F, "Q": np.linalg.inv(Qc), "R": np.linalg.inv(Rc), "m0": np.zeros(2), "P0": np.eye(2)}
    return y, arrays, kalman_rts(y, np.zeros(2), np.eye(2), F, Qc, Rc)


def test_gaussian_chain_jointly_is_the_rts_smoother(lds):
    from ppvi.derive.chain import update_gaussian_block

    y, arrays, (ms, Ps, lag, ll) = lds
    d = derivation(LDS + "approximate x jointly\n")
    env = Env(dict(arrays), {}, {"T": len(y), "D": 2})
    update_gaussian_block(d.gaussian["x"], env)
    np.testing.assert_allclose(env.moments[("x", "x")], ms, atol=1e-10)
    np.testing.assert_allclose(env.moments[("x", "xxT")], Ps + ms[:, :, None] * ms[:, None, :], atol=1e-10)
    np.testing.assert_allclose(env.moments[("x", "cross")], lag, atol=1e-10)     # (a result's lag_one)
    assert sum(evaluate(e, env) for _, e in d.elbo_terms()) == pytest.approx(ll, abs=1e-9, rel=0)


def test_gaussian_chain_mean_field_means_are_exact(lds):
    """PRML 10.1.2: the mean field of a Gaussian has the exact means at its fixed point (its covariances
    are too small): one sweep of the derived updates from the smoother's means leaves them there, and
    the bound lies below log p(y)."""
    y, arrays, (ms, Ps, lag, ll) = lds
    d = derivation(LDS)
    env = Env(dict(arrays), {("x", "x"): ms.copy(), ("x", "xxT"): Ps + ms[:, :, None] * ms[:, None, :]},
              {"T": len(y), "D": 2})
    reference.sweep(d, env)
    np.testing.assert_allclose(env.moments[("x", "x")], ms, atol=1e-10)
    cov = env.arrays["cov(x)"]
    assert np.all(np.linalg.eigvalsh(Ps - cov) > 0)            # the mean field's covariances are too small
    assert reference.elbo(d, env) < ll - 1e-3


RANDOM_WALK = """\
dim T
data y[T]
x[0] ~ Normal(0, 1)
for t in T[1:]:
    x[t] ~ Normal(x[t-1], 0.5)
for t in T:
    y[t] ~ Normal(x[t], 1)
"""
RANDOM_WALK_JOINTLY = f"{RANDOM_WALK}approximate x jointly\n"      # (tests/simulate/test_evidence.py)


def test_random_walk_mean_field_fixed_point_is_the_exact_posterior_mean():
    """A scalar Gaussian chain: the exact posterior is N(Λ⁻¹h, Λ⁻¹) with Λ tridiagonal (written out here:
    1 + 1 at t = 0, 4 per transition on both ends, 1 per observation; −4 off the diagonal); the mean
    field's fixed point has its means (PRML 10.1.2) and sd 1/√Λₜₜ."""
    y = np.array([0.3, -0.2, 0.8, 1.5, 1.1, 0.4, -0.6, -0.1])
    T = len(y)
    lam = np.diag(np.full(T, 1.0))                  # observations, precision 1
    lam[0, 0] += 1.0                                # the first element's prior
    for t in range(1, T):                           # transitions, precision 1/0.5² = 4
        lam[t, t] += 4
        lam[t - 1, t - 1] += 4
        lam[t - 1, t] -= 4
        lam[t, t - 1] -= 4
    exact = np.linalg.solve(lam, y)
    d = derivation(RANDOM_WALK)
    env = Env({"y": y}, {("x", "x"): exact.copy(), ("x", "x2"): exact ** 2 + 1.0}, {"T": T})
    reference.sweep(d, env)
    np.testing.assert_allclose(env.moments[("x", "x")], exact, atol=1e-12)
    np.testing.assert_allclose(env.arrays["sd(x)"], 1 / np.sqrt(np.diag(lam)), atol=1e-12)
