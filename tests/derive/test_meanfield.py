"""Derived updates against formulas written independently from the literature.

Each test evaluates the natural parameters that ppvi derives (eq. 19.56) at
random data, params and neighbour moments, and compares them with the update
as printed in the seed chapter (19.44, 19.66–19.67), PRML §10.1.3 and §10.2,
Blei, Ng & Jordan (2003), or the exact conjugate posterior.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from helpers import SEED_19_57, derivation, eta, simplex, spd
from ppvi.derive.numeric import Env

RNG = np.random.default_rng(1956)


def test_binary_sparse_coding_reproduces_19_44():
    d = derivation("binary_sparse_coding")
    q = d.q["h"]
    assert q.family == "Bernoulli" and set(q.natural) == {"x"}
    N, D, M = 2, 4, 3
    v, W = RNG.normal(size=(N, D)), RNG.normal(size=(D, M))
    b, beta = RNG.normal(size=M), RNG.random(D) + 0.5
    hhat = RNG.random((N, M))
    env = Env({"v": v, "W": W, "b": b, "beta": beta}, {("h", "x"): hhat, ("h", "x2"): hhat}, {"N": N, "D": D, "M": M})
    B = np.diag(beta)
    for n in range(N):
        for i in range(M):
            logit = (b[i] + v[n] @ B @ W[:, i] - 0.5 * W[:, i] @ B @ W[:, i]
                     - sum(W[:, j] @ B @ W[:, i] * hhat[n, j] for j in range(M) if j != i))   # 19.44
            assert eta(d, "h", "x", env, n=n, i=i) == pytest.approx(logit, rel=1e-12, abs=1e-12)


def test_seed_gaussian_example_gives_19_66_19_67():
    d = derivation(SEED_19_57)
    assert d.q["h"].family == "Normal"
    w, v = RNG.normal(size=2), RNG.normal()
    m = RNG.normal(size=2)
    env = Env({"w": w, "v": v}, {("h", "x"): m, ("h", "x2"): m ** 2 + 1}, {"H": 2})
    for i, j in [(0, 1), (1, 0)]:
        precision = -2 * eta(d, "h", "x2", env, i=i)
        mean = eta(d, "h", "x", env, i=i) / precision
        # From 19.66–19.67: the coefficient of h_i² is −½(1 + w_i²), of h_i it is v w_i − w_i w_j ⟨h_j⟩.
        assert precision == pytest.approx(1 + w[i] ** 2)
        assert mean == pytest.approx((v * w[i] - w[i] * w[j] * m[j]) / (1 + w[i] ** 2))


def test_normal_with_unknown_mean_and_precision_prml_10_1_3():
    d = derivation("normal_gamma")
    assert (d.q["mu"].family, d.q["tau"].family) == ("Normal", "Gamma")
    x = RNG.normal(70, 10, size=7)
    m0, s0, a0, b0 = 3.0, 2.5, 1.5, 0.7
    Etau, Emu, Emu2 = 0.3, 60.0, 3700.0
    env = Env({"waiting": x, "m0": m0, "s0": s0, "a0": a0, "b0": b0},
              {("tau", "x"): Etau, ("mu", "x"): Emu, ("mu", "x2"): Emu2}, {"N": len(x)})
    # q(mu) = N(m_N, 1/λ_N): λ_N = 1/s0² + N⟨τ⟩, λ_N m_N = m0/s0² + ⟨τ⟩ Σ x_n  (PRML 10.26–10.27, independent prior)
    lam = 1 / s0 ** 2 + len(x) * Etau
    assert -2 * eta(d, "mu", "x2", env) == pytest.approx(lam)
    assert eta(d, "mu", "x", env) / lam == pytest.approx((m0 / s0 ** 2 + Etau * x.sum()) / lam)
    # q(tau) = Gamma(a_N, b_N): a_N = a0 + N/2, b_N = b0 + ½ Σ E[(x_n − μ)²]  (PRML 10.29–10.30)
    assert eta(d, "tau", "logx", env) + 1 == pytest.approx(a0 + len(x) / 2)
    assert -eta(d, "tau", "x", env) == pytest.approx(b0 + 0.5 * np.sum(x ** 2 - 2 * x * Emu + Emu2))


@pytest.mark.parametrize("stem", ["beta_bernoulli", "gamma_poisson", "dirichlet_categorical"])
def test_single_latent_conjugate_models_give_exact_posteriors(stem):
    d = derivation(stem)
    if stem == "beta_bernoulli":
        y = RNG.integers(0, 2, size=11)
        env = Env({"y": y, "a": 2.0, "b": 3.0}, {}, {"N": len(y)})
        assert d.q["theta"].family == "Beta"
        assert eta(d, "theta", "logx", env) + 1 == pytest.approx(2.0 + y.sum())
        assert eta(d, "theta", "log1mx", env) + 1 == pytest.approx(3.0 + len(y) - y.sum())
    elif stem == "gamma_poisson":
        y = RNG.poisson(3.0, size=13)
        env = Env({"discoveries": y, "a": 2.0, "b": 0.5}, {}, {"N": len(y)})
        assert d.q["rate"].family == "Gamma"
        assert eta(d, "rate", "logx", env) + 1 == pytest.approx(2.0 + y.sum())
        assert -eta(d, "rate", "x", env) == pytest.approx(0.5 + len(y))
    else:
        K = 5
        c = RNG.integers(0, K, size=17)
        alpha = RNG.random(K) + 0.5
        env = Env({"c": c, "alpha": alpha}, {}, {"N": len(c), "K": K})
        assert d.q["pi"].family == "Dirichlet"
        for k in range(K):
            assert eta(d, "pi", "logp", env, k=k) + 1 == pytest.approx(alpha[k] + np.sum(c == k))


def test_bayesian_mixture_1d_prml_10_2():
    d = derivation("gmm_1d")
    assert {v: q.family for v, q in d.q.items()} == {"pi": "Dirichlet", "mu": "Normal", "tau": "Gamma",
                                                    "z": "Categorical"}
    N, K = 9, 3
    x = RNG.normal(size=N)
    r = simplex(RNG, N, K)
    alpha0, m0 = RNG.random(K) + 0.1, 0.2
    Etau, Elogtau = RNG.random(K) + 0.5, RNG.normal(size=K)
    Emu, Emu2 = RNG.normal(size=K), RNG.random(K) + 2
    Elogpi = np.log(simplex(RNG, K))
    env = Env({"eruptions": x, "alpha0": alpha0, "m0": m0},
              {("z", "onehot"): r, ("tau", "x"): Etau, ("tau", "logx"): Elogtau, ("mu", "x"): Emu,
               ("mu", "x2"): Emu2, ("pi", "logp"): Elogpi}, {"N": N, "K": K})
    Nk = r.sum(0)
    sd0 = 10.0   # the model's prior sd of the means
    for k in range(K):
        assert eta(d, "pi", "logp", env, k=k) + 1 == pytest.approx(alpha0[k] + Nk[k])            # 10.58
        lam = 1 / sd0 ** 2 + Etau[k] * Nk[k]
        assert -2 * eta(d, "mu", "x2", env, k=k) == pytest.approx(lam)
        assert eta(d, "mu", "x", env, k=k) == pytest.approx(m0 / sd0 ** 2 + Etau[k] * r[:, k] @ x)
        assert eta(d, "tau", "logx", env, k=k) == pytest.approx(0.5 * Nk[k])                     # shape 1 + N_k/2
        sq = r[:, k] @ (x ** 2 - 2 * x * Emu[k] + Emu2[k])
        assert -eta(d, "tau", "x", env, k=k) == pytest.approx(1 + 0.5 * sq)
    for n in range(N):
        logrho = (Elogpi + 0.5 * Elogtau - 0.5 * np.log(2 * np.pi)
                  - 0.5 * Etau * (x[n] ** 2 - 2 * x[n] * Emu + Emu2))                          # 10.46
        got = np.array([eta(d, "z", "onehot", env, n=n, k=k) for k in range(K)])
        assert got == pytest.approx(logrho)


def test_bayesian_mixture_multivariate_mvnormal_wishart():
    d = derivation("gmm")
    fam = {v: q.family for v, q in d.q.items()}
    assert fam == {"pi": "Dirichlet", "mu": "MvNormal", "Lambda": "Wishart", "z": "Categorical"}
    N, K, D = 6, 2, 3
    x = RNG.normal(size=(N, D))
    r = simplex(RNG, N, K)
    P0, W0 = spd(RNG, D), spd(RNG, D)
    m0, nu0 = RNG.normal(size=D), D + 2.0
    EL = np.stack([spd(RNG, D) for _ in range(K)])
    Emu = RNG.normal(size=(K, D))
    Emumu = np.stack([np.outer(Emu[k], Emu[k]) + spd(RNG, D) for k in range(K)])
    Elogdet, Elogpi = RNG.normal(size=K), np.log(simplex(RNG, K))
    env = Env({"x": x, "P0": P0, "W0": W0, "m0": m0, "nu0": nu0, "alpha0": np.ones(K)},
              {("z", "onehot"): r, ("Lambda", "X"): EL, ("Lambda", "logdet"): Elogdet, ("mu", "x"): Emu,
               ("mu", "xxT"): Emumu, ("pi", "logp"): Elogpi}, {"N": N, "K": K, "D": D})
    Nk = r.sum(0)
    for k in range(K):
        prec = P0 + Nk[k] * EL[k]
        h = P0 @ m0 + EL[k] @ (r[:, k] @ x)
        S = sum(r[n, k] * (np.outer(x[n], x[n]) - np.outer(x[n], Emu[k]) - np.outer(Emu[k], x[n]) + Emumu[k])
                for n in range(N))
        Winv = np.linalg.inv(W0) + S
        for a in range(D):
            assert eta(d, "mu", "x", env, k=k, d=a) == pytest.approx(h[a])
            for b in range(D):
                assert -2 * eta(d, "mu", "xxT", env, k=k, d=a, e=b) == pytest.approx(prec[a, b])
                assert -2 * eta(d, "Lambda", "X", env, k=k, d=a, e=b) == pytest.approx(Winv[a, b])
        assert 2 * eta(d, "Lambda", "logdet", env, k=k) + D + 1 == pytest.approx(nu0 + Nk[k])      # PRML 10.63
    for n in range(N):
        for k in range(K):
            quad = x[n] @ EL[k] @ x[n] - 2 * x[n] @ EL[k] @ Emu[k] + np.trace(EL[k] @ Emumu[k])
            logrho = Elogpi[k] + 0.5 * Elogdet[k] - D / 2 * np.log(2 * np.pi) - 0.5 * quad      # PRML 10.46
            assert eta(d, "z", "onehot", env, n=n, k=k) == pytest.approx(logrho)


def test_lda_blei_ng_jordan_2003():
    d = derivation("lda")
    assert {v: q.family for v, q in d.q.items()} == {"theta": "Dirichlet", "phi": "Dirichlet", "z": "Categorical"}
    M, V, K, T = 3, 5, 2, 12
    doc, word = RNG.integers(0, M, size=T), RNG.integers(0, V, size=T)
    phi_r = simplex(RNG, T, K)
    alpha, eta0 = RNG.random(K) + 0.1, RNG.random(V) + 0.1
    Elogtheta, Elogbeta = np.log(simplex(RNG, M, K)), np.log(simplex(RNG, K, V))
    env = Env({"doc": doc, "word": word, "alpha": alpha, "eta": eta0},
              {("z", "onehot"): phi_r, ("theta", "logp"): Elogtheta, ("phi", "logp"): Elogbeta},
              {"M": M, "V": V, "K": K, "T": T})
    for m in range(M):
        for k in range(K):
            gamma = alpha[k] + phi_r[doc == m, k].sum()                                          # Blei (7)
            assert eta(d, "theta", "logp", env, d=m, k=k) + 1 == pytest.approx(gamma)
    for k in range(K):
        for w in range(V):
            lam = eta0[w] + phi_r[word == w, k].sum()                                             # Blei (A.4)
            assert eta(d, "phi", "logp", env, k=k, v=w) + 1 == pytest.approx(lam)
    for t in range(T):
        for k in range(K):
            logphi = Elogtheta[doc[t], k] + Elogbeta[k, word[t]]                                  # Blei (6)
            assert eta(d, "z", "onehot", env, t=t, k=k) == pytest.approx(logphi)


def test_bayesian_linear_regression():
    d = derivation("linreg")
    assert (d.q["w"].family, d.q["tau"].family) == ("MvNormal", "Gamma")
    N, D = 8, 3
    X, y = RNG.normal(size=(N, D)), RNG.normal(size=N)
    P0, m0, a0, b0 = spd(RNG, D), RNG.normal(size=D), 2.0, 1.5
    Etau, Ew = 0.7, RNG.normal(size=D)
    Eww = np.outer(Ew, Ew) + spd(RNG, D)
    env = Env({"X": X, "y": y, "P0": P0, "m0": m0, "a0": a0, "b0": b0},
              {("tau", "x"): Etau, ("w", "x"): Ew, ("w", "xxT"): Eww}, {"N": N, "D": D})
    SNinv = P0 + Etau * X.T @ X                                                                   # PRML 10.101
    h = P0 @ m0 + Etau * X.T @ y
    for a in range(D):
        assert eta(d, "w", "x", env, d=a) == pytest.approx(h[a])
        for b in range(D):
            assert -2 * eta(d, "w", "xxT", env, d=a, e=b) == pytest.approx(SNinv[a, b])
    assert eta(d, "tau", "logx", env) + 1 == pytest.approx(a0 + N / 2)
    assert -eta(d, "tau", "x", env) == pytest.approx(b0 + 0.5 * (y @ y - 2 * y @ X @ Ew + np.trace(X.T @ X @ Eww)))


def test_mixture_of_bernoullis():
    d = derivation("bernoulli_mixture")
    assert d.q["theta"].family == "Beta" and d.q["z"].family == "Categorical"
    N, K, D = 7, 2, 4
    x = RNG.integers(0, 2, size=(N, D))
    r = simplex(RNG, N, K)
    Elog, Elog1m, Elogpi = -RNG.random((K, D)), -RNG.random((K, D)), np.log(simplex(RNG, K))
    env = Env({"x": x, "a": 1.0, "b": 1.0, "alpha0": np.ones(K)},
              {("z", "onehot"): r, ("theta", "logx"): Elog, ("theta", "log1mx"): Elog1m, ("pi", "logp"): Elogpi},
              {"N": N, "K": K, "D": D})
    for k in range(K):
        for j in range(D):
            assert eta(d, "theta", "logx", env, k=k, d=j) + 1 == pytest.approx(1 + r[:, k] @ x[:, j])
            assert eta(d, "theta", "log1mx", env, k=k, d=j) + 1 == pytest.approx(1 + r[:, k] @ (1 - x[:, j]))
    for n in range(N):
        for k in range(K):
            want = Elogpi[k] + x[n] @ Elog[k] + (1 - x[n]) @ Elog1m[k]
            assert eta(d, "z", "onehot", env, n=n, k=k) == pytest.approx(want)
