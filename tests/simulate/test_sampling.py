"""Ancestral sampling: prior draws against the model's moments (written here), posterior predictive draws,
the predictive check, and the mistakes a simulation can meet."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

import ppvi
from conftest import MODELS
from simulate_cases import hand_result
from ppvi.language import loads
from ppvi.simulate.ancestral import sample_prior
from ppvi.simulate.checks import predictive_check

S = 20000


def close(draws: np.ndarray, expected, axis: int = 0) -> None:
    """The Monte Carlo mean within 5 standard errors of ``expected``."""
    draws = np.asarray(draws, dtype=float)
    se = draws.std(axis=axis) / np.sqrt(draws.shape[axis])
    assert np.all(np.abs(draws.mean(axis=axis) - expected) < 5 * se + 1e-12), (draws.mean(axis=axis), expected)


def test_a_hierarchical_normal_and_the_dependency_order():
    """Written with the data before their mean: x[n] − mu is N(0, 1/τ), whatever mu; Var x = s0² + 1/τ, and
    Cov(x_0, x_1) = s0²."""
    model = loads("""
dim N
data x[N]
for n in N:
    x[n] ~ Normal(mu, precision = 4.0)
mu ~ Normal(1.5, sd = 2.0)
""")
    d = sample_prior(model, S, seed=1, dims={"N": 2})
    assert d["x"].shape == (S, 2) and d["mu"].shape == (S,)
    close(d["x"], 1.5)
    close((d["x"] - 1.5) ** 2, 4.0 + 0.25)
    close((d["x"][:, 0] - 1.5) * (d["x"][:, 1] - 1.5), 4.0)
    close((d["x"] - d["mu"][:, None]) * (d["mu"][:, None] - 1.5), 0.0)


# A Laplace prior has no conjugate q: sampled here, refused by derive (the harness checks a NONCONJUGATE_ name
# is refused with a PPVIError).
NONCONJUGATE_LAWS = """
dim N
dim K = 3
const alpha[K] = [1.0, 2.0, 3.0]
data y[N] : count
data c[N] : index(K)
data f[N] : binary
data g[N] : binary
param b
rate ~ Gamma(2.0, 0.5)
theta ~ Beta(2.0, 6.0)
pi ~ Dirichlet(alpha)
e ~ Exponential(2.0)
l ~ Laplace(1.0, 0.5)
for n in N:
    y[n] ~ Poisson(rate)
    c[n] ~ Categorical(pi)
    f[n] ~ Bernoulli(theta)
    g[n] ~ Bernoulli(sigmoid(b))
"""


def test_discrete_and_positive_laws():
    """Gamma–Poisson (E y = a/b, Var y = a/b + a/b²), Beta–Bernoulli, Dirichlet–Categorical, Bernoulli of a
    sigmoid, Exponential, Laplace."""
    model = loads(NONCONJUGATE_LAWS)
    d = sample_prior(model, S, data={"b": 0.7}, seed=2, dims={"N": 2})
    close(d["y"], 4.0)
    close((d["y"] - 4.0) ** 2, 4.0 + 8.0)
    close(d["c"][:, :, None] == np.arange(3), np.array([1, 2, 3]) / 6)
    close(d["f"], 0.25)
    close(d["g"], special.expit(0.7))
    close(d["e"], 0.5)
    close((d["l"] - 1.0) ** 2, 2 * 0.25)
    assert d["y"].dtype.kind == d["c"].dtype.kind == d["f"].dtype.kind == "i"


def test_covariates_a_mvnormal_by_precision_and_a_wishart():
    """y = X w + ε with w ~ N(m0, P0⁻¹) and X a covariate: E y = X m0, Cov y = X P0⁻¹ Xᵀ + I/τ; and
    E Λ = ν W, Var Λ_ij = ν (W_ij² + W_ii W_jj) for Λ ~ Wishart(ν, W) (Muirhead 1982, 3.2.8)."""
    model = loads("""
dim N, D
const m0[D] = [1.0, -2.0]
data P0[D, D]
data X[N, D]
data W[D, D]
data y[N]
w ~ MvNormal(m0, precision = P0)
L ~ Wishart(5.0, W)
for n in N:
    y[n] ~ Normal(dot(X[n], w), precision = 2.0)
""")
    P0 = np.array([[2.0, 0.6], [0.6, 1.0]])
    X = np.array([[1.0, 0.5], [1.0, -1.0], [0.0, 2.0]])
    W = np.array([[0.5, 0.2], [0.2, 0.3]])
    d = sample_prior(model, S, data={"P0": P0, "X": X, "W": W}, seed=3)
    mean = X @ [1.0, -2.0]
    cov = X @ np.linalg.inv(P0) @ X.T + np.eye(3) / 2
    close(d["y"], mean)
    r = d["y"] - mean
    close(r[:, :, None] * r[:, None, :], cov)
    close(d["w"][:, :, None] * d["w"][:, None, :] - np.outer([1.0, -2.0], [1.0, -2.0]), np.linalg.inv(P0))
    close(d["L"], 5.0 * W)
    close((d["L"] - 5.0 * W) ** 2, 5.0 * (W ** 2 + np.outer(np.diag(W), np.diag(W))))


def test_a_mixture_of_the_examples():
    """gmm.ppvi: a point's component has the law E π = α/α₀, and E x = m0 = 0."""
    model = ppvi.load(str(MODELS / "gmm.ppvi"))
    d = model.sample_prior(4000, seed=4, N=3, D=2, K=3)
    assert d["Lambda"].shape == (4000, 3, 2, 2) and d["x"].shape == (4000, 3, 2)
    close(d["z"][:, :, None] == np.arange(3), 1 / 3)
    assert np.all(np.abs(np.median(d["x"], axis=0)) < 0.2)


def test_the_same_seed_gives_the_same_draws():
    model = ppvi.load(str(MODELS / "beta_bernoulli.ppvi"))
    a, b = model.sample_prior(5, seed=9, N=4), model.sample_prior(5, seed=9, N=4)
    assert all(np.array_equal(a[k], b[k]) for k in a) and a["y"].shape == (5, 4)


# ----------------------------------------------------------------- chains: element after element
def linear_gaussian_cov(B: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Cov x of x = B x + n, B strictly lower triangular (each x[t] a linear function of earlier ones plus its
    own noise n[t]), Cov n = ``noise`` (a matrix, or the noise sds): (I − B)⁻¹ Cov n (I − B)⁻ᵀ."""
    noise = np.diag(noise ** 2) if noise.ndim == 1 else noise
    M = np.linalg.inv(np.eye(len(noise)) - B)
    return M @ noise @ M.T


def close_cov(x: np.ndarray, cov: np.ndarray) -> None:
    """Every second moment E[x_i x_j] of zero-mean draws ``(S, T)`` within 5 Monte Carlo errors of ``cov``."""
    close(x.mean(0), 0.0)
    close(x[:, :, None] * x[:, None, :], cov)


def test_an_ar1_series_of_data_has_its_marginal_variances_and_lag_one_covariances():
    """x[0] ~ N(0, s0²), x[t] ~ N(a x[t−1], s²) for t in T[1:]: Var x[t] = a² Var x[t−1] + s², Cov(x[t−1], x[t]) =
    a Var x[t−1] (and every other pair's covariance, from the recursion written as x = B x + noise).  Before
    the sampler drew a chain element after element, prior sampling refused every chain."""
    model = loads("""
dim T
data x[T]
x[0] ~ Normal(0, 2.0)
for t in T[1:]:
    x[t] ~ Normal(0.8 * x[t-1], 0.5)
""")
    d = sample_prior(model, S, seed=2, dims={"T": 6})
    assert d["x"].shape == (S, 6)
    var = [4.0]
    for _ in range(5):
        var.append(0.64 * var[-1] + 0.25)
    cov = linear_gaussian_cov(np.diag(np.full(5, 0.8), -1), np.array([2.0] + [0.5] * 5))
    assert np.allclose(np.diag(cov), var) and np.allclose(np.diag(cov, 1), 0.8 * np.array(var[:-1]))
    close_cov(d["x"], cov)


def test_a_two_lag_chain_draws_its_first_two_elements_by_their_own_statements():
    """x[0], x[1] by their own statements, x[t] = 0.5 x[t−1] − 0.4 x[t−2] + noise for t in T[2:] (a latent
    chain, the statements written in no particular order)."""
    model = loads("""
dim T
for t in T[2:]:
    x[t] ~ Normal(0.5 * x[t-1] - 0.4 * x[t-2], 1.0)
x[1] ~ Normal(0.9 * x[0], 0.3)
x[0] ~ Normal(0, 1.5)
""")
    d = sample_prior(model, S, seed=3, dims={"T": 5})
    B = np.diag(np.full(4, 0.5), -1) + np.diag(np.full(3, -0.4), -2)
    B[1, 0] = 0.9
    close_cov(d["x"], linear_gaussian_cov(B, np.array([1.5, 0.3, 1.0, 1.0, 1.0])))


def test_ppvi_sample_draws_a_linear_dynamical_system_from_its_prior(tmp_path, capsys):
    """models/sequences/lds.ppvi from the command line: vector states x[t] = F x[t−1] + N(0, Q⁻¹), x[0] ~ N(0, P0⁻¹),
    seen as y[t] = x[t] + N(0, R⁻¹): every covariance of the stacked states, and of the observations."""
    from conftest import run_cli

    code, _, err = run_cli(["sample", MODELS / "sequences" / "lds.ppvi", "--draws", S, "--dim", "T=3", "--seed", 6,
                            "--out", tmp_path / "prior.npz"], capsys)
    assert code == 0, err
    with np.load(tmp_path / "prior.npz") as z:
        x, y = z["x"], z["y"]
    assert x.shape == y.shape == (S, 3, 2)
    F = np.array([[0.975, -0.098], [0.098, 0.975]])
    B = np.zeros((6, 6))
    B[2:4, 0:2] = B[4:6, 2:4] = F
    cov = linear_gaussian_cov(B, np.diag([1.0, 1.0] + [1 / 11.1] * 4))
    close_cov(x.reshape(S, 6), cov)
    close_cov(y.reshape(S, 6), cov + np.eye(6) / 4.0)


HMM_SEQUENCES = """\
dim S
dim T
dim K = 3
param p0[K] : simplex
param A[K, K] : simplex
param mu[K]
data x[S, T]
for s in S:
    z[s, 0] ~ Categorical(p0)
    for t in T[1:]:
        z[s, t] ~ Categorical(A[z[s, t-1]])
    for t in T:
        x[s, t] ~ Normal(mu[z[s, t]], 0.5)
"""


def test_an_hmms_prior_states_have_the_marginals_pi_a_to_the_t():
    """Several sequences z[s, t]: q(z[s, t] = k) = (π Aᵗ)_k, the pairs P(z[s, t−1] = j, z[s, t] = k) =
    (π Aᵗ⁻¹)_j A_jk, the sequences independent, and the observations given the states."""
    p0, A = np.array([0.7, 0.2, 0.1]), np.array([[0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.5, 0.25, 0.25]])
    mu = np.array([-3.0, 0.0, 3.0])
    d = sample_prior(loads(HMM_SEQUENCES), S, seed=4, data={"p0": p0, "A": A, "mu": mu}, dims={"S": 2, "T": 4})
    z = d["z"]
    assert z.shape == (S, 2, 4) and d["x"].shape == (S, 2, 4)
    marginal = np.array([p0 @ np.linalg.matrix_power(A, t) for t in range(4)])
    close(z[..., None] == np.arange(3), np.broadcast_to(marginal, (2, 4, 3)))
    pairs = marginal[:-1, :, None] * A
    close((z[:, :, :-1, None, None] == np.arange(3)[:, None]) & (z[:, :, 1:, None, None] == np.arange(3)),
          np.broadcast_to(pairs, (2, 3, 3, 3)))
    close((z[:, 0, :, None, None] == np.arange(3)[:, None]) & (z[:, 1, :, None, None] == np.arange(3)),
          marginal[:, :, None] * marginal[:, None, :])
    close((d["x"] - mu[z]) ** 2, 0.25)


def test_posterior_predictive_replicates_of_a_chain_of_data():
    """y[t] ~ N(ρ y[t−1], 0.5²) with q(ρ) all but a point at 0.8: the replicates are that AR(1) series.  (Before
    the fix the sliced loop was drawn at once, before y[0]'s statement: a KeyError on `y`.)"""
    text = """\
dim T
data y[T]
rho ~ Normal(0, 1)
y[0] ~ Normal(0, 1)
for t in T[1:]:
    y[t] ~ Normal(rho * y[t-1], 0.5)
"""
    r = hand_result(text, {"rho": ("Normal", {"mean": 0.8, "sd": 1e-9})}, {"y": np.zeros(4)})
    d = r.sample_predictive(S, seed=5)
    assert d["y"].shape == (S, 4)
    close_cov(d["y"], linear_gaussian_cov(np.diag(np.full(3, 0.8), -1), np.array([1.0, 0.5, 0.5, 0.5])))


# ----------------------------------------------------------------- from a fit's q
BETA_BERNOULLI = (MODELS / "beta_bernoulli.ppvi").read_text()


def test_posterior_predictive_draws_and_the_predictive_check(tmp_path):
    """q(θ) = Beta(a, b): y_rep has mean a/(a+b) and the θ it was drawn with; the check's p-value of the mean
    is P(mean(y_rep) ≥ mean(y)), here a central value, and its plot is written."""
    y = np.r_[np.ones(12), np.zeros(28)].astype(int)
    r = hand_result(BETA_BERNOULLI, {"theta": ("Beta", {"a": 14.0, "b": 30.0})}, {"y": y})
    d = r.sample_predictive(S, seed=5)
    assert d["y"].shape == (S, 40) and d["theta"].shape == (S,)
    close(d["y"], 14 / 44)
    close(d["y"] - d["theta"][:, None], 0.0)
    check = predictive_check(r, np.mean, draws=2000, seed=6)
    assert check.observed == pytest.approx(0.3) and check.replicated.shape == (2000,)
    assert check.p_value == pytest.approx(np.mean(check.replicated >= 0.3)) and 0.2 < check.p_value < 0.8
    pytest.importorskip("matplotlib").use("Agg")
    check.plot(path=str(tmp_path / "check.png"))
    assert (tmp_path / "check.png").stat().st_size > 0
    # a statistic the model does not reproduce: the longest run of ones of sorted data
    assert predictive_check(r, lambda v: np.max(np.cumsum(v) * (np.arange(40) < 12)), seed=6).p_value < 0.05


# ----------------------------------------------------------------- mistakes
LINREG = str(MODELS / "linreg.ppvi")


@pytest.mark.parametrize("call, message", [
    (lambda: ppvi.load(LINREG).sample_prior(5, N=3, D=2), "linreg.ppvi:18:6: error: covariate `X` has no value"),
    (lambda: ppvi.load(LINREG).sample_prior(5, data={"X": np.ones((3, 2))}, D=3),
     "`X` has 2 entries on axis 1 but dim D = 3"),
    (lambda: ppvi.load(str(MODELS / "beta_bernoulli.ppvi")).sample_prior(5),
     "beta_bernoulli.ppvi:8:5: error: no size for dim `N`\n    dim N\n        \\^"),
    (lambda: ppvi.load(str(MODELS / "binary_sparse_coding.ppvi")).sample_prior(5, N=2, D=3),
     "binary_sparse_coding.ppvi:20:7: error: param `b` has no value to simulate with"),
    (lambda: ppvi.load(LINREG).sample_prior(0, N=3), "draws=0: draws is a whole number ≥ 1"),
    (lambda: ppvi.load(LINREG).sample_prior(5, seed=-2, N=3), "seed=-2"),
    (lambda: ppvi.load(LINREG).sample_prior(5, Q=3), "Q=3: the model has no dim `Q`"),
    (lambda: ppvi.load(str(MODELS / "beta_bernoulli.ppvi")).sample_prior(10 ** 9, N=10),
     "would hold 11,000,000,000 numbers"),
])
def test_mistakes_are_user_errors(call, message):
    with pytest.raises(ppvi.PPVIError, match=message):
        call()


def test_draws_in_chunks_keep_each_replicate_with_its_latents(monkeypatch):
    """Few numbers per chunk (a draw or two at a time): the replicates still go with the θ they were drawn
    with (their mean given θ is θ)."""
    from ppvi.simulate import joint

    monkeypatch.setattr(joint, "CHUNK_ENTRIES", 64)
    y = np.r_[np.ones(12), np.zeros(28)].astype(int)
    r = hand_result(BETA_BERNOULLI, {"theta": ("Beta", {"a": 2.0, "b": 2.0})}, {"y": y})
    d = r.sample_predictive(3000, seed=8)
    assert d["y"].shape == (3000, 40)
    slope = np.polyfit(d["theta"], d["y"].mean(1), 1)[0]
    assert slope == pytest.approx(1.0, abs=0.05)


def test_predictive_check_mistakes():
    y = np.r_[np.ones(12), np.zeros(28)].astype(int)
    r = hand_result(BETA_BERNOULLI, {"theta": ("Beta", {"a": 14.0, "b": 30.0})}, {"y": y})
    with pytest.raises(ppvi.PPVIError, match="statistic='mean': a function of the data"):
        predictive_check(r, "mean")
    with pytest.raises(ppvi.PPVIError, match="`theta` is not an observed variable of the model"):
        predictive_check(r, np.mean, variable="theta")
    with pytest.raises(ppvi.PPVIError, match="draws=0"):
        predictive_check(r, np.mean, draws=0)


def test_posterior_predictive_draws_a_joint_chain_jointly():
    """`ppvi sample --given` on a chain approximated jointly: the chain is drawn from q, its pairs and not its
    marginals alone (sticky pairs: z[t] = z[t-1] with probability 0.9 under q, 1/3 under the marginals'
    product), and the data given each draw."""
    import dataclasses

    from infer.test_chains import FIXED     # noqa: E402  (tests/infer/test_chains.py: an HMM, K = 3)

    data = {"p0": np.full(3, 1 / 3), "A": np.full((3, 3), 1 / 3), "mu": np.array([-5.0, 0.0, 5.0]),
            "sd": np.ones(3), "x": np.zeros(4)}
    r = hand_result(FIXED, {"z": ("Categorical", {"p": np.full((4, 3), 1 / 3)})}, data)
    pairs = np.zeros((4, 3, 3))
    pairs[1:] = np.where(np.eye(3, dtype=bool), 0.3, 0.1 / 6)
    r = dataclasses.replace(r, q={"z": dataclasses.replace(r.q["z"], lag_one=pairs)})
    d = r.sample_predictive(4000, seed=3)
    close(d["z"][:, 1:] == d["z"][:, :-1], 0.9)
    close(d["x"] - data["mu"][d["z"]], 0.0)
