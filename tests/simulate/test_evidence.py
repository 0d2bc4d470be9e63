"""Importance-sampled evidence against closed forms and enumeration (issue 19, build 3).

The results here are made by hand (simulate_cases.hand_result): q is written in the test, either the exact
posterior or a broader law of the same family, so the sampler is tested with proposals that are not p(h | v)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import special, stats

import ppvi
from conftest import MODELS
from simulate_cases import hand_result
from ppvi.simulate.evidence import evidence

RNG = np.random.default_rng(1944)

BETA_BERNOULLI = """
dim N
const a = 2.0
const b = 3.0
data y[N] : binary
theta ~ Beta(a, b)
for n in N:
    y[n] ~ Bernoulli(theta)
"""
GAMMA_POISSON = """
dim N
data y[N] : count
rate ~ Gamma(2.0, 0.5)
for n in N:
    y[n] ~ Poisson(rate)
"""
DIRICHLET_CATEGORICAL = """
dim N
dim K = 4
const alpha[K] = [0.5, 1.0, 2.0, 1.5]
data c[N] : index(K)
pi ~ Dirichlet(alpha)
for n in N:
    c[n] ~ Categorical(pi)
"""
KNOWN_PRECISION = """
dim N
data x[N]
mu ~ Normal(1.5, precision = 0.25)
for n in N:
    x[n] ~ Normal(mu, sd = 1.2)
"""


def beta_bernoulli(broad: float):
    y = RNG.integers(0, 2, 30)
    a, b, s, n = 2.0, 3.0, y.sum(), len(y)
    exact = special.betaln(a + s, b + n - s) - special.betaln(a, b)
    q = ("Beta", {"a": broad * (a + s), "b": broad * (b + n - s)})
    return hand_result(BETA_BERNOULLI, {"theta": q}, {"y": y}), exact


def gamma_poisson(broad: float):
    y = RNG.poisson(3.0, 25)
    a, b, s, n = 2.0, 0.5, y.sum(), len(y)
    exact = (a * math.log(b) - special.gammaln(a) + special.gammaln(a + s) - (a + s) * math.log(b + n)
             - special.gammaln(y + 1).sum())
    q = ("Gamma", {"shape": broad * (a + s), "rate": broad * (b + n)})
    return hand_result(GAMMA_POISSON, {"rate": q}, {"y": y}), exact


def dirichlet_categorical(broad: float):
    alpha = np.array([0.5, 1.0, 2.0, 1.5])
    c = RNG.integers(0, 4, 40)
    counts = np.bincount(c, minlength=4)
    exact = (special.gammaln(alpha.sum()) - special.gammaln(alpha.sum() + len(c))
             + (special.gammaln(alpha + counts) - special.gammaln(alpha)).sum())
    q = ("Dirichlet", {"alpha": broad * (alpha + counts)})
    return hand_result(DIRICHLET_CATEGORICAL, {"pi": q}, {"c": c}), exact


def known_precision(broad: float):
    """The prior by its precision, the likelihood by its sd (other parameterisations than the ELBO tests')."""
    x = RNG.normal(1.0, 1.2, 9)
    m0, p0, sd = 1.5, 0.25, 1.2
    exact = stats.multivariate_normal(np.full(9, m0), np.ones((9, 9)) / p0 + sd ** 2 * np.eye(9)).logpdf(x)
    precision = p0 + len(x) / sd ** 2
    mean = (m0 * p0 + x.sum() / sd ** 2) / precision
    q = ("Normal", {"mean": mean, "sd": precision ** -0.5 / broad})
    return hand_result(KNOWN_PRECISION, {"mu": q}, {"x": x}), exact


CONJUGATE = [beta_bernoulli, gamma_poisson, dirichlet_categorical, known_precision]


@pytest.mark.parametrize("case", CONJUGATE, ids=lambda c: c.__name__)
def test_a_broad_proposal_estimates_the_closed_form_evidence(case):
    """q of the posterior's family and mean, 1/0.6 times as broad: the estimate is within 3 standard errors of
    the closed form, its error is not negligible (the test has teeth), and the tail of the weights is light."""
    r, exact = case(0.6)
    e = evidence(r, 4000, seed=7)
    assert abs(e.log_evidence - exact) < 3 * e.stderr
    assert 1e-4 < e.stderr < 0.05
    assert e.khat < 0.5
    assert e.samples == 4000 and math.isnan(e.gap)          # (a hand result has no ELBO)


@pytest.mark.parametrize("case", CONJUGATE, ids=lambda c: c.__name__)
def test_the_exact_posterior_as_proposal_gives_the_evidence_with_every_sample(case):
    r, exact = case(1.0)
    e = evidence(r, 50, seed=0)
    assert e.log_evidence == pytest.approx(exact, abs=1e-9)
    assert e.stderr < 1e-9 and e.khat == -math.inf


NORMAL_GAMMA = """
dim N
data x[N]
mu ~ Normal(0.0, sd = 10.0)
tau ~ Gamma(1.0, 1.0)
for n in N:
    x[n] ~ Normal(mu, precision = tau)
"""


def test_unknown_mean_and_precision_against_quadrature():
    """q(μ) q(τ) at the mean-field fixed point (PRML 10.1.3 with independent priors, iterated here) is not the
    posterior; log p(x) by quadrature over μ (τ integrated in closed form) lies within 3 standard errors of
    the importance-sampled estimate."""
    from scipy import integrate

    x = RNG.normal(2.0, 1.5, 10)
    n, sx, sxx = len(x), x.sum(), (x ** 2).sum()
    m0, s0, a0, b0 = 0.0, 10.0, 1.0, 1.0
    e_tau = 1.0
    for _ in range(200):
        lam = 1 / s0 ** 2 + n * e_tau
        m = (m0 / s0 ** 2 + e_tau * sx) / lam
        a, b = a0 + n / 2, b0 + 0.5 * (sxx - 2 * m * sx + n * (m ** 2 + 1 / lam))
        e_tau = a / b

    def log_f(mu):          # log ∫ p(μ) p(τ) Π p(x_n | μ, τ) dτ
        rate = b0 + 0.5 * ((x - mu) ** 2).sum()
        return (stats.norm(m0, s0).logpdf(mu) + a0 * math.log(b0) - special.gammaln(a0)
                - n / 2 * math.log(2 * math.pi) + special.gammaln(a0 + n / 2) - (a0 + n / 2) * math.log(rate))

    top = log_f(x.mean())
    area, _ = integrate.quad(lambda mu: math.exp(log_f(mu) - top), x.mean() - 10, x.mean() + 10, points=[x.mean()],
                             epsabs=0, epsrel=1e-12, limit=200)
    exact = top + math.log(area)
    r = hand_result(NORMAL_GAMMA, {"mu": ("Normal", {"mean": m, "sd": lam ** -0.5}),
                                   "tau": ("Gamma", {"shape": a, "rate": b})}, {"x": x})
    e = evidence(r, 20000, seed=11)
    assert abs(e.log_evidence - exact) < 3 * e.stderr < 0.03
    assert e.khat < 0.7


# ----------------------------------------------------------------- the S-sample bound
SEED_GAUSSIAN = """
dim H = 2
const w[H] = [2.0, -1.5]
data v
for i in H:
    h[i] ~ Normal(0, 1)
v ~ Normal(sum(i in H: w[i] * h[i]), 1)
"""


@pytest.mark.filterwarnings("ignore:.*Pareto")   # (a q narrower than p(h | v): the weights' tail is heavy)
def test_the_s_sample_bound_grows_from_the_elbo_towards_the_evidence():
    """The seed's 19.57 with q of 19.66–19.67 (the exact means, sds (1 + w_i²)^-1/2): E[L_1] is the ELBO
    (written here in closed form), L_1 ≤ L_10 ≤ L_100 on average over seeds, all below log p(v)."""
    w, v = np.array([2.0, -1.5]), 0.7
    mean = np.linalg.solve(np.eye(2) + np.outer(w, w), w * v)
    sd = (1 + w ** 2) ** -0.5
    elbo = (-math.log(2 * math.pi) - 0.5 * (mean ** 2 + sd ** 2).sum()
            - 0.5 * math.log(2 * math.pi) - 0.5 * ((v - w @ mean) ** 2 + (w ** 2 * sd ** 2).sum())
            + (0.5 * np.log(2 * math.pi * math.e * sd ** 2)).sum())
    log_p = stats.norm(0, math.sqrt(1 + w @ w)).logpdf(v)
    r = hand_result(SEED_GAUSSIAN, {"h": ("Normal", {"mean": mean, "sd": sd})}, {"v": np.float64(v)}, elbo=elbo)
    repeats = 100
    bound = {s: np.array([evidence(r, s, seed=k).log_evidence for k in range(repeats)]) for s in (1, 10, 100)}
    means = {s: b.mean() for s, b in bound.items()}
    assert means[1] == pytest.approx(elbo, abs=3 * bound[1].std() / math.sqrt(repeats))
    assert means[1] < means[10] < means[100] < log_p
    assert log_p - means[100] < 0.2 * (log_p - elbo)          # most of the gap is closed by 100 samples
    e = evidence(r, 100, seed=0)
    assert e.gap == pytest.approx(e.log_evidence - elbo) and e.elbo == elbo


# ----------------------------------------------------------------- per data point: binary sparse coding
@pytest.mark.filterwarnings("ignore:.*Pareto")
def test_binary_sparse_coding_per_datum_evidence_matches_enumeration():
    """m = 10 latent bits (the bars of 5 × 5 images, noise sd 0.5): log p(v_n) summed over all 2¹⁰ states of
    h, against one importance sampler per point whose proposal is the mean-field fixed point (19.44, iterated
    here).  (Random loadings with D < m would make p(h | v) many-moded, a factorial q a poor proposal.)"""
    m, d, n = 10, 25, 8
    W = np.zeros((d, m))
    for k in range(5):
        W[[5 * k + j for j in range(5)], k] = 1.0          # horizontal bars
        W[[5 * j + k for j in range(5)], 5 + k] = 1.0      # vertical bars
    W *= RNG.uniform(0.8, 1.2, m)
    b = np.full(m, special.logit(0.2)) + RNG.normal(0, 0.2, m)
    beta = RNG.uniform(3, 5, d)
    h_true = RNG.random((n, m)) < special.expit(b)
    v = h_true @ W.T + RNG.normal(0, 1, (n, d)) / np.sqrt(beta)
    states = ((np.arange(2 ** m)[:, None] >> np.arange(m)) & 1).astype(float)          # (2^m, m)
    log_prior = (states * np.log(special.expit(b)) + (1 - states) * np.log(special.expit(-b))).sum(1)
    resid = v[:, None, :] - states @ W.T                                                 # (n, 2^m, d)
    log_lik = (0.5 * np.log(beta / (2 * math.pi)) - 0.5 * beta * resid ** 2).sum(-1)
    exact = special.logsumexp(log_prior + log_lik, axis=1)                               # (n,)
    p = np.full((n, m), 0.5)
    for _ in range(100):               # 19.44: σ(b_i + vᵀβW_i − ½ W_iᵀβW_i − Σ_{j≠i} W_jᵀβW_i p_j)
        for i in range(m):
            others = p @ W.T - np.outer(p[:, i], W[:, i])
            p[:, i] = special.expit(b[i] + (v - others) @ (beta * W[:, i]) - 0.5 * (beta * W[:, i] ** 2).sum())
    text = (MODELS / "binary_sparse_coding.ppvi").read_text()
    params = {"b": b, "W": W, "beta": beta}
    # q pulled towards 1/2 (still factorial): a proposal that covers the states the mean field deems unlikely,
    # so the standard error can be believed
    r = hand_result(text, {"h": ("Bernoulli", {"p": 0.1 + 0.8 * p})}, {"v": v}, params=params)
    e = evidence(r, 4000, per_datum=True, seed=3)
    per = e.per_datum
    assert np.all(np.abs(per["log_evidence"] - exact) < 4 * per["stderr"])
    assert abs(e.log_evidence - exact.sum()) < 3 * e.stderr < 0.3
    assert e.log_evidence == pytest.approx(per["log_evidence"].sum()) and e.khat == per["khat"].max()
    joint = evidence(r, 4000, seed=3)          # (all points at once: the same value, with a larger error)
    assert joint.stderr > 10 * e.stderr and abs(joint.log_evidence - exact.sum()) < 3 * joint.stderr
    # the mean-field fixed point itself: close (the states it deems unlikely are drawn rarely, and the error
    # then underestimates the miss: the broader q above is the one to believe)
    mean_field = hand_result(text, {"h": ("Bernoulli", {"p": p})}, {"v": v}, params=params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ppvi.PPVIWarning)
        close = evidence(mean_field, 4000, per_datum=True, seed=3).per_datum["log_evidence"]
    assert np.all(np.abs(close - exact) < 0.1)


# ----------------------------------------------------------------- mistakes and warnings
def test_per_datum_evidence_needs_every_latent_in_the_data_plate():
    r, _ = beta_bernoulli(1.0)
    with pytest.raises(ppvi.PPVIError, match="hand.ppvi:6:1: error: the evidence per data point needs every "
                                             "latent inside the data plate; `theta` is not\n    theta ~ Beta"):
        evidence(r, 10, per_datum=True)


def test_a_point_q_is_no_proposal():
    r = hand_result(KNOWN_PRECISION, {"mu": ("point", {"value": 1.0})}, {"x": np.ones(3)})
    with pytest.raises(ppvi.PPVIError, match="`mu` has a point q"):
        evidence(r, 10)


from infer.test_chains import RANDOM_WALK_JOINTLY, SEQUENCES      # noqa: E402  (tests/infer/test_chains.py)


def test_a_joint_chain_without_its_pairs_is_no_proposal():
    """A result that keeps a joint chain's marginals only (an older file, or q by hand): draws from them are not
    draws from q, and weights against them gave log p(y) hundreds of nats off on models/sequences/lds.ppvi."""
    r = hand_result(RANDOM_WALK_JOINTLY, {"x": ("Normal", {"mean": np.zeros(4), "sd": np.ones(4)})},
                    {"y": np.ones(4)})
    with pytest.raises(ppvi.PPVIError, match="hand.ppvi:5:5: error: q of `x` is one block over its chain, and the "
                                             "result keeps only its marginals"):
        evidence(r, 10)


def joint(r, name: str, lag_one: np.ndarray):
    """``r`` with q of the chain ``name`` given its pairs / lag-one covariances."""
    import dataclasses

    return dataclasses.replace(r, q={**r.q, name: dataclasses.replace(r.q[name], lag_one=lag_one)})


def test_a_fixed_parameter_hmm_jointly_has_the_evidence_of_hmmlearn():
    """q(z) from the derived block (forward–backward at reference speed) is the exact posterior: every weight
    is p(x), and the estimate is hmmlearn's score (an independent forward algorithm) to round-off."""
    hmm = pytest.importorskip("hmmlearn.hmm")
    from ppvi.derive.chain import update_block
    from ppvi.derive.numeric import Env

    from infer.test_chains import FIXED, derivation, sample_hmm     # noqa: E402  (tests/infer/test_chains.py)

    p0, A = np.array([0.5, 0.3, 0.2]), np.array([[0.8, 0.15, 0.05], [0.1, 0.7, 0.2], [0.25, 0.25, 0.5]])
    mu, sd = np.array([-2.0, 0.0, 2.5]), np.array([0.7, 1.0, 0.5])
    data = {"p0": p0, "A": A, "mu": mu, "sd": sd, "x": sample_hmm(np.random.default_rng(5), 10, p0, A, mu, sd)}
    env = Env(dict(data), {}, {"T": 10, "K": 3})
    update_block(derivation(FIXED).blocks["z"], env)
    r = hand_result(FIXED, {"z": ("Categorical", {"p": env.moments[("z", "onehot")]})}, data)
    e = evidence(joint(r, "z", env.moments[("z", "pair")]), 200, seed=1)
    ref = hmm.GaussianHMM(n_components=3, covariance_type="diag", init_params="", params="")
    ref.startprob_, ref.transmat_, ref.means_, ref.covars_ = p0, A, mu[:, None], sd[:, None] ** 2
    assert e.log_evidence == pytest.approx(ref.score(data["x"][:, None]), abs=1e-9, rel=0)
    assert e.stderr < 1e-12


def test_a_fixed_parameter_lds_jointly_has_the_kalman_likelihood():
    """q(x) the exact posterior, from a Kalman filter and RTS smoother in covariance form written in the test
    (its lag-one covariances too): the estimate is that filter's log p(y).  (The compiled block equals the
    same smoother: tests/codegen/test_gaussian_chain_kernels.py.)"""
    from infer.test_chains import LDS, F, Qc, Rc, kalman_rts     # noqa: E402  (tests/infer/test_chains.py)

    y = np.random.default_rng(8).normal(size=(10, 2)).cumsum(0) * 0.5
    mean, cov, lag, ll = kalman_rts(y, np.zeros(2), np.eye(2), F, Qc, Rc)
    r = hand_result(LDS + "approximate x jointly\n", {"x": ("MvNormal", {"mean": mean, "cov": cov})}, {"y": y})
    e = evidence(joint(r, "x", lag), 200, seed=1)
    assert e.log_evidence == pytest.approx(ll, abs=1e-8, rel=0)
    assert e.stderr < 1e-10


def test_a_known_local_level_jointly_has_the_kalman_likelihood():
    """A chain of scalars (the Nile's local level, its precisions known): q(α) the exact posterior from the
    scalar Kalman filter and RTS smoother written in tests/infer/test_local_level.py, the estimate its log p(y)."""
    from infer.test_local_level import KNOWN, kalman, nile     # noqa: E402

    y = nile()[:20]
    mean, var, lag, ll = kalman(y, 1 / 0.000066, 1 / 0.00068)
    r = hand_result(KNOWN, {"alpha": ("Normal", {"mean": mean, "sd": np.sqrt(var)})}, {"y": y})
    e = evidence(joint(r, "alpha", lag), 200, seed=1)
    assert e.log_evidence == pytest.approx(ll, abs=1e-8, rel=0)
    assert e.stderr < 1e-10




def posterior_pairs(p0, A, like):
    """q(z[t] = k) and q(z[t−1] = j, z[t] = k) (row 0 unused) of one sequence given its likelihoods
    ``like[t, k]`` = p(x[t] | z[t] = k): scaled forward–backward (Bishop 13.2.2–13.2.4)."""
    T, K = like.shape
    alpha, c = np.empty((T, K)), np.empty(T)
    a = p0 * like[0]
    for t in range(T):
        if t:
            a = (alpha[t - 1] @ A) * like[t]
        c[t] = a.sum()
        alpha[t] = a / c[t]
    beta = np.ones((T, K))
    for t in range(T - 2, -1, -1):
        beta[t] = A @ (like[t + 1] * beta[t + 1]) / c[t + 1]
    pairs = np.zeros((T, K, K))
    pairs[1:] = alpha[:-1, :, None] * A * (like[1:] * beta[1:])[:, None, :] / c[1:, None, None]
    return alpha * beta, pairs


def fixed_hmm(text: str, x: np.ndarray):
    """A fixed-parameter HMM's result (x: one sequence, or a row per sequence) with q(z) the exact posterior
    (:func:`posterior_pairs`), and hmmlearn's model of the same parameters."""
    hmm = pytest.importorskip("hmmlearn.hmm")
    p0, A = np.array([0.5, 0.3, 0.2]), np.array([[0.8, 0.15, 0.05], [0.1, 0.7, 0.2], [0.25, 0.25, 0.5]])
    mu, sd = np.array([-2.0, 0.0, 2.5]), np.array([0.7, 1.0, 0.5])
    rows = [posterior_pairs(p0, A, stats.norm.pdf(xs[:, None], mu, sd)) for xs in np.atleast_2d(x)]
    marginals, pairs = (np.stack(a).reshape(x.shape + a[0].shape[1:]) for a in zip(*rows))
    r = hand_result(text, {"z": ("Categorical", {"p": marginals})}, {"p0": p0, "A": A, "mu": mu, "sd": sd, "x": x})
    ref = hmm.GaussianHMM(n_components=3, covariance_type="diag", init_params="", params="")
    ref.startprob_, ref.transmat_, ref.means_, ref.covars_ = p0, A, mu[:, None], sd[:, None] ** 2
    return joint(r, "z", pairs), ref


def test_per_datum_evidence_of_several_sequences_is_hmmlearns_score_of_each():
    """Sequences z[s, t] are the data points: p and q factorise over s (each sequence its own chain), so each
    sequence's log p(x[s]) is hmmlearn's score of that sequence, and they sum to the whole evidence."""
    x = np.random.default_rng(6).normal(0, 2, (3, 6))
    r, ref = fixed_hmm(SEQUENCES, x)
    e = evidence(r, 50, per_datum=True, seed=1)
    each = e.per_datum["log_evidence"]
    assert each == pytest.approx([ref.score(xs[:, None]) for xs in x], abs=1e-9, rel=0)
    assert e.log_evidence == pytest.approx(each.sum(), abs=1e-12, rel=0)
    assert e.log_evidence == pytest.approx(ref.score(x.reshape(-1, 1), lengths=[6] * 3), abs=1e-9, rel=0)
    assert e.log_evidence == pytest.approx(evidence(r, 50, seed=2).log_evidence, abs=1e-9, rel=0)


def test_per_datum_evidence_along_a_chain_is_refused_by_name():
    """The points of a chain's own plate depend on each other: p does not factorise over them, and per-datum
    weights would be no evidence of anything."""
    from infer.test_chains import FIXED     # noqa: E402

    r, _ = fixed_hmm(FIXED, np.zeros(4))
    with pytest.raises(ppvi.PPVIError, match=r"hand.ppvi:10:5: error: the evidence per data point needs the "
                                             r"points independent, and `z` is a chain along them \(`T`\).*\n"
                                             r"        z\[t\] ~ Categorical.*\n        \^\nhint: per-datum "
                                             r"evidence of a chain model is per sequence"):
        evidence(r, 10, per_datum=True)


@pytest.mark.parametrize("kwargs, message", [({"samples": 0}, "samples=0"), ({"samples": True}, "samples=True"),
                                             ({"samples": 5, "per_datum": 1}, "per_datum=1"),
                                             ({"samples": 5, "seed": -1}, "seed=-1")])
def test_arguments_are_checked(kwargs, message):
    r, _ = beta_bernoulli(1.0)
    with pytest.raises(ppvi.PPVIError, match=message):
        evidence(r, **kwargs)


def test_the_same_data_give_the_fits_evidence():
    """(Other data are weighed with their local q predicted: test_simulate_cli.py, test_encoder.py, where the
    models are compiled already.)"""
    r, exact = beta_bernoulli(1.0)
    assert evidence(r, 5, data={"y": np.asarray(r.data["y"])}).log_evidence == pytest.approx(exact)


def test_a_heavy_tail_warns():
    """A proposal much narrower than the posterior: the weights' tail is heavy (k̂ > 0.7) and a warning says so."""
    r, _ = known_precision(8.0)
    with pytest.warns(ppvi.PPVIWarning, match="Pareto k̂ = .* > 0.7"):
        e = evidence(r, 2000, seed=1)
    assert e.khat > 0.7
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evidence(*known_precision(0.6)[:1], 2000, seed=1)


def test_weights_fed_in_chunks_give_what_all_at_once_give():
    """The running statistics (rescaled as the largest weight grows) against log-mean-exp, the delta method's
    error and k̂ of all the weights at once."""
    from ppvi.simulate.evidence import Weights
    from ppvi.simulate.pareto import khat

    lw = np.column_stack([RNG.standard_t(3, 500), np.sort(RNG.normal(0, 3, 500)), np.full(500, -7.0),
                          np.r_[np.full(250, -np.inf), RNG.normal(size=250)], RNG.normal(-1000, 2, 500),
                          np.r_[np.full(250, -np.inf), RNG.normal(-1000, 2, 250)]])
    w = Weights(500, 6)
    for start in range(0, 500, 37):
        w.add(lw[start:start + 37])
    log_mean, stderr, k = w.estimate()
    assert log_mean == pytest.approx(special.logsumexp(lw, axis=0) - math.log(500), rel=1e-12)
    scaled = np.exp(lw - lw.max(0))
    assert stderr == pytest.approx(scaled.std(0, ddof=1) / (math.sqrt(500) * scaled.mean(0)), rel=1e-9, abs=1e-15)
    assert k == pytest.approx([khat(lw[:, j]) for j in range(6)], rel=1e-12)
    assert k[2] == -math.inf
