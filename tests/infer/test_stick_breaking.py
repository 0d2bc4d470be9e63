"""StickBreaking(alpha): truncated Dirichlet-process weights (issue 17, build 3).

π_k = v_k Π_{j<k} (1 − v_j), v_k ~ Beta(1, α_k), v_K = 1 (Blei & Jordan 2006).  q is a product of Betas
over the sticks, and the updates are those of Blei & Jordan written here independently:

    a_k = 1 + N_k [k < K − 1],   b_k = α_k + Σ_{j>k} N_j,
    E[log π_k] = [k < K − 1] (ψ(a_k) − ψ(a_k + b_k)) + Σ_{j<k} (ψ(b_j) − ψ(a_j + b_j)),

with N_k = Σ_n q(z_n = k).  The ELBO is checked against a NumPy evaluation of 19.7 written here, and the
Dirichlet-process Gaussian mixture of models/ against scikit-learn's BayesianGaussianMixture with
weight_concentration_prior_type='dirichlet_process' and the same priors.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

import ppvi
from conftest import MODELS, plain_kernels, run_cli

ALPHA, SD, PRIOR_SD, K = 1.5, 0.5, 10.0, 6

DP_1D = f"""\
dim N
dim K = {K}
const alpha[K] = {ALPHA}
data x[N]
pi ~ StickBreaking(alpha)
for k in K:
    mu[k] ~ Normal(0, {PRIOR_SD})
for n in N:
    z[n] ~ Categorical(pi)
    x[n] ~ Normal(mu[z[n]], {SD})
"""


def _data() -> np.ndarray:
    rng = np.random.default_rng(3)
    return np.concatenate([rng.normal(-3, SD, 40), rng.normal(2, SD, 30), rng.normal(6, SD, 10)])


def plain_fit(model, data: dict):
    """The inline models' fit (80 points, four starts, to 1e-13), their kernels as plain Python: about 2 CPU-s
    against 10 compiled, a model no other test compiles (dp_gmm's sticks compiled: test_differential.py)."""
    with plain_kernels():
        return model.fit(data, seed=0, tol=1e-13, max_iter=5000, restarts=4)


@pytest.fixture(scope="module")
def dp_1d(tmp_path_factory):
    path = tmp_path_factory.mktemp("dp") / "dp.ppvi"
    path.write_text(DP_1D)
    return plain_fit(ppvi.load(str(path)), {"x": _data()})


def _e_log_weights(a, b):
    e_logv = special.digamma(a) - special.digamma(a + b)
    e_log1mv = special.digamma(b) - special.digamma(a + b)
    e_logv[-1] = 0.0                                     # v_K = 1
    return e_logv + np.concatenate([[0.0], np.cumsum(e_log1mv)[:-1]])


def _beta_entropy(a, b):
    return (special.betaln(a, b) - (a - 1) * special.digamma(a) - (b - 1) * special.digamma(b)
            + (a + b - 2) * special.digamma(a + b))


def test_the_sticks_are_blei_and_jordan_updates_at_the_fixed_point(dp_1d):
    q = dp_1d.q
    a, b, r = q["pi"]["a"], q["pi"]["b"], q["z"]["p"]
    Nk = r.sum(axis=0)
    later = np.concatenate([np.cumsum(Nk[::-1])[::-1][1:], [0.0]])      # Σ_{j>k} N_j
    # (the sweep updates q(pi) before q(z): at the stopping tolerance they differ by a last step)
    assert a == pytest.approx(1 + np.where(np.arange(K) < K - 1, Nk, 0.0), abs=1e-4)
    assert b == pytest.approx(ALPHA + later, abs=1e-4)
    assert (a[-1], b[-1]) == pytest.approx((1.0, ALPHA))              # the K-th stick keeps its prior
    # q(z) from E[log π] (written above) and q(mu): one more step of the hand-written update leaves it
    x, m, s = _data(), q["mu"]["mean"], q["mu"]["sd"]
    logits = _e_log_weights(a, b) - (x[:, None] ** 2 - 2 * x[:, None] * m + m ** 2 + s ** 2) / (2 * SD ** 2)
    assert r == pytest.approx(special.softmax(logits, axis=1), abs=1e-6)


def test_the_elbo_equals_an_independent_numpy_evaluation(dp_1d):
    q = dp_1d.q
    a, b, r = q["pi"]["a"], q["pi"]["b"], q["z"]["p"]
    m, s, x = q["mu"]["mean"], q["mu"]["sd"], _data()
    e_mu2 = m ** 2 + s ** 2
    e_log1mv = special.digamma(b) - special.digamma(a + b)
    sticks = np.sum(np.log(ALPHA) + (ALPHA - 1) * e_log1mv)                       # E log Beta(v; 1, α)
    labels = np.sum(r * _e_log_weights(a, b))
    means = np.sum(-0.5 * np.log(2 * np.pi * PRIOR_SD ** 2) - e_mu2 / (2 * PRIOR_SD ** 2))
    data = np.sum(r * (-0.5 * np.log(2 * np.pi * SD ** 2)
                       - (x[:, None] ** 2 - 2 * x[:, None] * m + e_mu2) / (2 * SD ** 2)))
    entropy = (_beta_entropy(a, b).sum() + np.sum(0.5 * np.log(2 * np.pi * np.e * s ** 2))
               - np.sum(special.xlogy(r, r)))
    assert dp_1d.elbo == pytest.approx(sticks + labels + means + data + entropy, rel=1e-10)
    assert np.all(np.diff(dp_1d.elbo_trace) >= -1e-9 * abs(dp_1d.elbo))
    occupied = np.sort(r.sum(axis=0))[::-1]
    assert occupied[:3] == pytest.approx([40, 30, 10], abs=0.5) and occupied[3:].sum() < 0.5


def test_the_dp_mixture_finds_scikit_learns_components():
    """models/dp_gmm.ppvi on Old Faithful against BayesianGaussianMixture with the same priors: Beta(1, 1)
    sticks, mean N(0, (1·Λ)⁻¹), Λ ~ Wishart(2, I) (scikit-learn's covariance_prior is W0⁻¹).  scikit-learn's q of
    (μ, Λ) is joint Normal-Wishart where ppvi's factorises, so the fits agree closely, not to rounding."""
    sklearn = pytest.importorskip("sklearn.mixture")
    x = np.loadtxt(MODELS / "dp_gmm.csv", delimiter=",", skiprows=1)
    r = ppvi.load(str(MODELS / "dp_gmm.ppvi")).fit(seed=0, tol=1e-10, max_iter=2000)
    ours = r.q["z"]["p"]
    theirs = sklearn.BayesianGaussianMixture(
        n_components=8, weight_concentration_prior_type="dirichlet_process", weight_concentration_prior=1.0,
        mean_prior=np.zeros(2), mean_precision_prior=1.0, degrees_of_freedom_prior=2.0,
        covariance_prior=np.eye(2), max_iter=2000, tol=1e-10, n_init=1, random_state=0).fit(x)
    their_r = theirs.predict_proba(x)
    occupied = np.flatnonzero(ours.sum(axis=0) > 0.5)
    their_occupied = np.flatnonzero(their_r.sum(axis=0) > 0.5)
    assert len(occupied) == len(their_occupied) == 2
    # match the components by their means
    order = [their_occupied[np.argmin(np.linalg.norm(theirs.means_[their_occupied] - r.q["mu"]["mean"][k], axis=1))]
             for k in occupied]
    assert sorted(order) == sorted(their_occupied)
    assert r.q["mu"]["mean"][occupied] == pytest.approx(theirs.means_[order], abs=0.02)
    assert ours.sum(axis=0)[occupied] == pytest.approx(their_r.sum(axis=0)[order], rel=0.02)
    agree = np.mean(np.asarray(occupied)[np.argmax(ours[:, occupied], axis=1)]
                    == np.asarray(occupied)[np.argmax(their_r[:, order], axis=1)])
    assert agree > 0.99


# ------------------------------------------------------------------ per-group weights: StickBreaking under a plate
GROUPED = f"""\
dim N
dim J
dim K = {K}
const alpha[K] = {ALPHA}
data g[N] : index(J)
data x[N]
for j in J:
    w[j] ~ StickBreaking(alpha)
for k in K:
    mu[k] ~ Normal(0, {PRIOR_SD})
for n in N:
    z[n] ~ Categorical(w[g[n]])
    x[n] ~ Normal(mu[z[n]], {SD})
"""


def _groups() -> np.ndarray:
    """Three groups mixing the same atoms in different proportions: the first points of each cluster in group
    0, the cluster at 2 mostly in group 1, the rest in group 2."""
    return np.concatenate([np.repeat([0, 2], [30, 10]), np.repeat([0, 1, 2], [5, 20, 5]), np.full(10, 2)])


@pytest.fixture(scope="module")
def grouped(tmp_path_factory):
    path = tmp_path_factory.mktemp("dp") / "grouped.ppvi"
    path.write_text(GROUPED)
    return ppvi.load(str(path))


@pytest.fixture(scope="module")
def grouped_fit(grouped):
    return plain_fit(grouped, {"x": _data(), "g": _groups()})


def test_per_group_sticks_are_blei_and_jordan_updates_of_each_groups_labels(grouped_fit):
    """q(v_j) of group j reads the labels of j's points alone: a_jk = 1 + N_jk [k < K − 1], b_jk = α_k + Σ_{l>k} N_jl,
    N_jk = Σ_{n: g_n = j} r_nk; q(z_n) reads E[log π_{g_n}]."""
    q, g, x = grouped_fit.q, _groups(), _data()
    a, b, r = q["w"]["a"], q["w"]["b"], q["z"]["p"]
    assert a.shape == b.shape == (3, K)
    for j in range(3):
        Nk = r[g == j].sum(axis=0)
        later = np.concatenate([np.cumsum(Nk[::-1])[::-1][1:], [0.0]])
        assert a[j] == pytest.approx(1 + np.where(np.arange(K) < K - 1, Nk, 0.0), abs=1e-4)
        assert b[j] == pytest.approx(ALPHA + later, abs=1e-4)
    m, s = q["mu"]["mean"], q["mu"]["sd"]
    e_log_pi = np.stack([_e_log_weights(a[j], b[j]) for j in range(3)])[g]
    logits = e_log_pi - (x[:, None] ** 2 - 2 * x[:, None] * m + m ** 2 + s ** 2) / (2 * SD ** 2)
    assert r == pytest.approx(special.softmax(logits, axis=1), abs=1e-6)


def test_per_group_elbo_equals_an_independent_numpy_evaluation(grouped_fit):
    q, g, x = grouped_fit.q, _groups(), _data()
    a, b, r = q["w"]["a"], q["w"]["b"], q["z"]["p"]
    m, s = q["mu"]["mean"], q["mu"]["sd"]
    e_mu2 = m ** 2 + s ** 2
    e_log1mv = special.digamma(b) - special.digamma(a + b)
    sticks = np.sum(np.log(ALPHA) + (ALPHA - 1) * e_log1mv)                      # Σ_j E log Beta(v_j; 1, α)
    labels = np.sum(r * np.stack([_e_log_weights(a[j], b[j]) for j in range(3)])[g])
    means = np.sum(-0.5 * np.log(2 * np.pi * PRIOR_SD ** 2) - e_mu2 / (2 * PRIOR_SD ** 2))
    data = np.sum(r * (-0.5 * np.log(2 * np.pi * SD ** 2)
                       - (x[:, None] ** 2 - 2 * x[:, None] * m + e_mu2) / (2 * SD ** 2)))
    entropy = (_beta_entropy(a, b).sum() + np.sum(0.5 * np.log(2 * np.pi * np.e * s ** 2))
               - np.sum(special.xlogy(r, r)))
    assert grouped_fit.elbo == pytest.approx(sticks + labels + means + data + entropy, rel=1e-10)
    assert np.all(np.diff(grouped_fit.elbo_trace) >= -1e-9 * abs(grouped_fit.elbo))
    # each group's weights follow its own data: group 1 is mostly the cluster at 2
    weights = a / (a + b) * np.concatenate([np.ones((3, 1)), np.cumprod(b / (a + b), axis=1)[:, :-1]], axis=1)
    at_2 = np.argmin(np.abs(m - 2))
    assert np.argmax(weights[1]) == at_2 and weights[1, at_2] > 0.6


def test_one_group_is_the_unplated_model(grouped, dp_1d):
    """J = 1: the per-group model is the unplated one (w[0] is pi), the same fit to rounding."""
    r = plain_fit(grouped, {"x": _data(), "g": np.zeros(len(_data()))})
    assert r.elbo == pytest.approx(dp_1d.elbo, rel=1e-13)
    assert r.iterations == dp_1d.iterations
    for p in ("a", "b"):
        np.testing.assert_allclose(r.q["w"][p][0], dp_1d.q["pi"][p], rtol=1e-12)
    np.testing.assert_allclose(r.q["z"]["p"], dp_1d.q["z"]["p"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(r.q["mu"]["mean"], dp_1d.q["mu"]["mean"], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("line, needle", [
    ("y ~ Bernoulli(pi[0])", "`pi` holds stick-breaking weights: it can only be the `p` of a Categorical"),
    ("w ~ Dirichlet(pi)", "`pi` holds stick-breaking weights"),
    ("y ~ StickBreaking(alpha)", "StickBreaking draws latent weights"),
])
def test_stick_weights_elsewhere_are_refused(tmp_path, capsys, line, needle):
    path = tmp_path / "m.ppvi"
    path.write_text(f"dim K = 3\nconst alpha[K] = 1.0\npi ~ StickBreaking(alpha)\ndata y\n{line}\n")
    code, out, err = run_cli(["check", path], capsys)
    assert code == 2 and needle in err and "Traceback" not in err, err
