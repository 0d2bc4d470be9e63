"""Draws from q of a chain approximated jointly (issue 18), against the exact posterior written in the test.

q is built here from the mathematics, not from ppvi: a fixed-parameter HMM's posterior by enumeration of
its K^T paths (marginals, pairs and log p(z | x) of every path), and a fixed-parameter LDS's by its dense
block-tridiagonal precision (PRML 13.3).  The joint draws must reproduce the pairwise marginals / lag-one
covariances of q within their Monte Carlo error, and their log q must be the posterior's own log density;
the sampler of independent marginals (what `sample` and `export` did before) fails the same check.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import special, stats

from ppvi.io import joint_chain, posterior
from ppvi.io.results import load, write
from ppvi.result import Q, Result

DRAWS = 10_000
SIGMAS = 5.0          # the check's width, in Monte Carlo standard errors (seeded: the same draws every run)


# ------------------------------------------------------------------ HMM: enumeration of every path
@pytest.fixture(scope="module")
def hmm():
    p0 = np.array([0.5, 0.3, 0.2])
    A = np.array([[0.8, 0.15, 0.05], [0.1, 0.7, 0.2], [0.25, 0.25, 0.5]])
    mu, sd = np.array([-1.0, 0.0, 1.0]), np.array([0.9, 1.0, 0.8])
    x = np.array([-0.8, 0.1, 0.4, -0.2, 1.1])
    T, K = len(x), len(p0)
    paths = np.array(list(itertools.product(range(K), repeat=T)))
    log_joint = (np.log(p0[paths[:, 0]]) + np.log(A[paths[:, :-1], paths[:, 1:]]).sum(1)
                 + stats.norm(mu[paths], sd[paths]).logpdf(x).sum(1))
    log_post = log_joint - special.logsumexp(log_joint)
    post = np.exp(log_post)
    r = np.stack([np.bincount(paths[:, t], post, K) for t in range(T)])
    xi = np.zeros((T, K, K))
    for t in range(1, T):
        np.add.at(xi[t], (paths[:, t - 1], paths[:, t]), post)
    return Q("Categorical", {"p": r}, ("T",), "K", None, xi), paths, log_post


def pair_gaps(z: np.ndarray, xi: np.ndarray) -> np.ndarray:
    """|empirical − q| of every pair frequency, in binomial standard errors."""
    n, T = z.shape
    K = xi.shape[-1]
    got = np.zeros_like(xi)
    for t in range(1, T):
        np.add.at(got[t], (z[:, t - 1], z[:, t]), 1.0 / n)
    se = np.sqrt(np.clip(xi * (1 - xi), 1e-12, None) / n)
    return np.abs(got - xi)[1:] / se[1:].reshape(T - 1, K, K)


def test_categorical_chain_draws_have_q_s_pairwise_marginals(hmm):
    q, _, _ = hmm
    z = joint_chain.sample(q, DRAWS, np.random.default_rng(18))
    assert z.shape == (DRAWS, 5) and z.dtype.kind == "i"
    assert pair_gaps(z, q.lag_one).max() < SIGMAS
    # the marginals' product (independent draws of each element) misses them by far more, even from fewer draws
    independent = posterior.sample("Categorical", dict(q.params), DRAWS // 10, np.random.default_rng(18))
    assert pair_gaps(independent, q.lag_one).max() > 4 * SIGMAS


def test_categorical_chain_log_q_is_the_posterior_of_the_path(hmm):
    """log q(z) = Σ log ξ − Σ log r (interior) is log p(z | x) of the enumeration, path by path."""
    q, paths, log_post = hmm
    np.testing.assert_allclose(joint_chain.log_density(q, paths), log_post, rtol=0, atol=1e-12)
    assert special.logsumexp(joint_chain.log_density(q, paths)) == pytest.approx(0.0, abs=1e-12)


def test_several_sequences_are_drawn_each_from_its_own_block(hmm):
    """z[s, t]: the chain's axis is the last plate; each sequence's pairs are its own."""
    q, paths, log_post = hmm
    r, xi = np.asarray(q.params["p"]), q.lag_one
    flat = np.full_like(r, 1 / 3)
    xi_flat = np.zeros_like(xi)
    xi_flat[1:] = 1 / 9
    both = Q("Categorical", {"p": np.stack([r, flat])}, ("S", "T"), "K", None, np.stack([xi, xi_flat]))
    z = joint_chain.sample(both, DRAWS, np.random.default_rng(3))
    assert z.shape == (DRAWS, 2, 5)
    assert pair_gaps(z[:, 0], xi).max() < SIGMAS and pair_gaps(z[:, 1], xi_flat).max() < SIGMAS
    lq = joint_chain.elements(both, np.stack([paths, paths], 1))
    np.testing.assert_allclose(lq[:, 0].sum(1), log_post, atol=1e-12)
    np.testing.assert_allclose(lq[:, 1].sum(1), 5 * np.log(1 / 3), atol=1e-12)


# ------------------------------------------------------------------ LDS: the dense posterior
F = np.array([[0.9, -0.3], [0.2, 0.8]])
Q_PREC = np.array([[4.0, 1.0], [1.0, 3.0]])       # state noise precision
R_PREC = np.array([[2.0, 0.0], [0.0, 5.0]])       # observation precision
P0 = np.eye(2)


@pytest.fixture(scope="module")
def lds():
    """q(x) = N(Λ⁻¹h, Λ⁻¹), Λ block tridiagonal: P0 + R at t = 0, Fᵀ Q F added at every t with a successor,
    Q + R at t ≥ 1, −Fᵀ Q above the diagonal; h = R yₜ."""
    y = np.array([[0.3, -0.4], [0.8, 0.1], [1.2, 0.9], [0.4, 1.5], [-0.3, 0.7], [-0.9, 0.2]])
    T, D = y.shape
    lam = np.zeros((T * D, T * D))
    for t in range(T):
        b = slice(t * D, (t + 1) * D)
        lam[b, b] += (P0 if t == 0 else Q_PREC) + R_PREC
        if t + 1 < T:
            a = slice((t + 1) * D, (t + 2) * D)
            lam[b, b] += F.T @ Q_PREC @ F
            lam[b, a] -= F.T @ Q_PREC
            lam[a, b] -= Q_PREC @ F
    cov = np.linalg.inv(lam)
    mean = cov @ (y @ R_PREC).ravel()
    blocks = cov.reshape(T, D, T, D).transpose(0, 2, 1, 3)
    cross = np.zeros((T, D, D))
    cross[1:] = blocks[np.arange(T - 1), np.arange(1, T)]          # Cov(x[t-1], x[t])
    q = Q("MvNormal", {"mean": mean.reshape(T, D), "cov": blocks[np.arange(T), np.arange(T)]}, ("T", "D"),
          None, None, cross)
    return q, stats.multivariate_normal(mean, cov)


def lag_gaps(x: np.ndarray, q: Q) -> np.ndarray:
    """|empirical − q| of every lag-one covariance, in standard errors: Var of a sample covariance of (a, b)
    is (σ_a² σ_b² + σ_ab²) / n for Gaussian draws."""
    n = x.shape[0]
    centred = x - np.asarray(q.params["mean"])
    got = np.einsum("ntd,nte->tde", centred[:, :-1], centred[:, 1:]) / n
    var = np.einsum("tdd->td", np.asarray(q.params["cov"]))
    se = np.sqrt((var[:-1, :, None] * var[1:, None, :] + q.lag_one[1:] ** 2) / n)
    return np.abs(got - q.lag_one[1:]) / se


def test_gaussian_chain_draws_have_q_s_lag_one_covariances(lds):
    q, _ = lds
    x = joint_chain.sample(q, DRAWS, np.random.default_rng(18))
    assert x.shape == (DRAWS, 6, 2)
    assert lag_gaps(x, q).max() < SIGMAS
    independent = posterior.sample("MvNormal", dict(q.params), DRAWS, np.random.default_rng(18))
    assert lag_gaps(independent, q).max() > 4 * SIGMAS


def test_gaussian_chain_log_q_is_the_joint_gaussian_density(lds):
    q, joint = lds
    x = joint_chain.sample(q, 7, np.random.default_rng(5))
    np.testing.assert_allclose(joint_chain.log_density(q, x), joint.logpdf(x.reshape(7, -1)), rtol=0, atol=1e-10)


def test_a_result_draws_its_chains_jointly(hmm, lds):
    """Result.sample and Result.log_q (and so `ppvi sample --given`, `ppvi export --draws`, `ppvi evidence`)."""
    r = Result("m", -1.0, (-1.0,), 1, True, {"z": hmm[0], "x": lds[0]}, {})
    draws = r.sample(DRAWS, seed=2)
    assert pair_gaps(draws["z"], hmm[0].lag_one).max() < SIGMAS and lag_gaps(draws["x"], lds[0]).max() < SIGMAS
    some = {k: v[:4] for k, v in draws.items()}
    want = joint_chain.log_density(hmm[0], some["z"]) + lds[1].logpdf(some["x"].reshape(4, -1))
    np.testing.assert_allclose(r.log_q(some), want, rtol=0, atol=1e-10)


def test_a_result_file_keeps_the_pairs_and_refuses_a_bad_shape(hmm, lds, tmp_path):
    import json

    import ppvi

    r = Result("m", -1.0, (-1.0,), 1, True, {"z": hmm[0], "x": lds[0]}, {})
    for ext in ("json", "npz"):
        path = str(tmp_path / f"r.{ext}")
        write(path, r)
        back = load(path)
        assert back == r and back.q["x"].lag_one.shape == (6, 2, 2)
    doc = json.loads((tmp_path / "r.json").read_text())
    doc["q"]["z"]["lag_one"] = doc["q"]["z"]["lag_one"][1:]
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(ppvi.PPVIError, match=r"bad.json: error: not a ppvi result file: `q/z/lag_one` should be "
                                             r"a chain's pairwise marginals .* of shape \[5, 3, 3\]"):
        load(str(tmp_path / "bad.json"))
    doc["q"]["z"] = {"family": "Gamma", "shape": [1.0], "rate": [1.0], "lag_one": [0.0]}
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(ppvi.PPVIError, match="`q/z/lag_one` should be absent: only a Categorical, Normal or MvNormal"):
        load(str(tmp_path / "bad.json"))
    # a Gaussian chain's lag-one covariances have its covariances' shape (a plate of chains too: mean[S, T, D])
    x = doc["q"]["x"]
    doc["q"]["x"] = {**x, "lag_one": [x["lag_one"]]}
    del doc["q"]["z"]
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(ppvi.PPVIError, match=r"`q/x/lag_one` should be .*mean\[…, T\] or mean\[…, T, D\]\) of "
                                             r"shape \[6, 2, 2\]"):
        load(str(tmp_path / "bad.json"))


def test_a_chain_of_scalars_keeps_its_lag_one_covariances(tmp_path):
    """A Normal chain (the local level's q(α)): lag_one[t] = Cov(α[t−1], α[t]) round-trips through both formats, and
    its draws have the joint's neighbour covariances (Monte Carlo, within about 5 standard errors)."""
    mean, sd, lag = np.array([1.0, 2.0, 0.5]), np.array([1.0, 0.8, 1.2]), np.array([0.0, 0.6, -0.5])
    r = Result("m", -1.0, (-1.0,), 1, True, {"a": Q("Normal", {"mean": mean, "sd": sd}, ("T",), None, None, lag)}, {})
    for ext in ("json", "npz"):
        write(str(tmp_path / f"r.{ext}"), r)
        assert load(str(tmp_path / f"r.{ext}")) == r
    draws = joint_chain.sample(r.q["a"], 40000, np.random.default_rng(0))
    got = np.array([np.cov(draws[:, t - 1], draws[:, t])[0, 1] for t in (1, 2)])
    np.testing.assert_allclose(got, lag[1:], atol=0.04)      # (a standard error ≤ √(1.44 + 0.36)/200 ≈ 0.007)


def test_export_draws_the_chain_jointly_and_writes_its_pairs(hmm, lds):
    """`ppvi export --draws N`: the posterior group's draws of a joint chain are q's (its pairs), their log_q
    q's joint density, and the variational group holds `NAME.lag_one`."""
    import warnings

    from ppvi.io.export import datasets

    import dataclasses

    z_q = dataclasses.replace(hmm[0], axes=("U",))          # (5 steps: another dim than the LDS's 6)
    r = Result("m", -1.0, (-1.0,), 1, True, {"z": z_q, "x": lds[0]}, {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # (no data to put in observed_data: a note says so)
        groups = datasets(r, draws=DRAWS, seed=4)
    z, x = groups["posterior"]["z"].values[0], groups["posterior"]["x"].values[0]
    assert pair_gaps(z, hmm[0].lag_one).max() < SIGMAS and lag_gaps(x, lds[0]).max() < SIGMAS
    want = joint_chain.log_density(hmm[0], z[:3]) + lds[1].logpdf(x[:3].reshape(3, -1))
    np.testing.assert_allclose(groups["sample_stats"]["log_q"].values[0, :3], want, rtol=0, atol=1e-10)
    assert groups["variational"]["z.lag_one"].dims == ("U", "K", "K_1")
    assert groups["variational"]["x.lag_one"].dims == ("T", "D", "D_1")
