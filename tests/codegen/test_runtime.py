"""The kernels' numeric building blocks against NumPy/SciPy."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit
from scipy import special

from ppvi.codegen.runtime import (add_shares, digamma, dirichlet_entropy, dirichlet_moments, exp_factor, exp_product,
                                  _cholesky_solve, exp_product_finish, feature_sign, finish_categorical, finish_categorical_block,
                                  vdigamma, vexp, vlog)


@njit
def _vexp_all(x, out):
    for i in range(x.shape[0]):
        out[i] = vexp(x[i])


def test_vexp_is_within_two_ulp_of_exp_and_never_subnormal():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-745.0, 709.78, 200_001), rng.normal(scale=30.0, size=200_000),
                        rng.uniform(-1, 1, size=100_000), [0.0, -0.0, 1e-300, -1e-17, -699.99, 709.782712893384]])
    got = np.empty_like(x)
    _vexp_all(x, got)
    with np.errstate(over="ignore"):
        want = np.exp(x)
    normal = x > -700.0
    ulp = np.abs(got[normal] - want[normal]) / np.spacing(want[normal])
    assert ulp.max() <= 2.0
    assert np.all(got[~normal] == 0.0)                  # exactly 0 below e^-700: no subnormals


def test_vexp_special_values():
    x = np.array([np.nan, -np.inf, np.inf, 710.0, -1e300])
    got = np.empty_like(x)
    _vexp_all(x, got)
    assert np.isnan(got[0]) and got[1] == 0.0 and got[2] == np.inf and got[3] == np.inf and got[4] == 0.0


@pytest.mark.parametrize("k", [1, 3, 4, 10, 37])
@pytest.mark.parametrize("scale", [1.0, 1e3, 1e6])
def test_finish_categorical_is_the_softmax_its_entropy_and_log_normaliser(k, scale):
    rng = np.random.default_rng(k)
    eta = rng.normal(scale=scale, size=k)
    p = np.empty(k)
    h, lse = finish_categorical(eta, p)
    want = special.softmax(eta)
    np.testing.assert_allclose(p, want, rtol=1e-13, atol=1e-300)
    assert lse == pytest.approx(special.logsumexp(eta), rel=1e-14, abs=1e-14)
    assert h == pytest.approx(special.entr(want).sum(), rel=1e-10, abs=1e-9 * scale * 1e-6 + 1e-12)
    assert np.isfinite(h) and h >= -1e-12


def test_a_category_of_probability_zero_adds_nothing_to_the_entropy():
    """η = −∞ (log w_k of a weight learned to be 0): p_k = 0 and H, log Σ e^η are those of the other
    categories, also in the block finish (where 0 · (−∞) would make them NaN)."""
    eta = np.array([0.3, -np.inf, -1.2, 2.0])
    live = eta[np.isfinite(eta)]
    p = np.empty(4)
    h, lse = finish_categorical(eta, p)
    assert p[1] == 0.0 and p[[0, 2, 3]] == pytest.approx(special.softmax(live), rel=1e-14)
    assert h == pytest.approx(special.entr(special.softmax(live)).sum(), rel=1e-13)
    assert lse == pytest.approx(special.logsumexp(live), rel=1e-14)
    block = np.repeat(eta[:, None], 5, axis=1)
    pb, hb, lb = np.zeros((5, 4)), np.zeros(5), np.zeros(5)
    finish_categorical_block(block, 5, pb, hb, lb, np.empty(5), np.empty(5), np.empty(5))
    assert np.all(pb == p) and hb == pytest.approx(np.full(5, h), rel=1e-13) and np.all(lb == lse)
    a, b, pf = np.empty(4), np.empty(4), np.empty(4)            # the same η as two factors (LDA's finish)
    eta_b = np.array([0.1, 0.4, -0.3, 0.2])
    ma, mb = exp_factor(eta - eta_b, a), exp_factor(eta_b, b)
    hf, lf = exp_product_finish(a, b, ma, mb, eta - eta_b, eta_b, np.empty(4), pf)
    assert pf == pytest.approx(p, rel=1e-13) and hf == pytest.approx(h, rel=1e-12) and lf == pytest.approx(lse)


@njit
def _digamma_all(x, out):
    for i in range(x.shape[0]):
        out[i] = digamma(x[i])


def test_digamma_against_scipy():
    x = np.concatenate([np.logspace(-300, 8, 40_001), np.linspace(1e-3, 12.0, 40_001),
                        [1e-7, 0.5, 1.0, 2.0, 9.999999999, 10.0, 1.4616321449683622]])
    got = np.empty_like(x)
    _digamma_all(x, got)
    want = special.digamma(x)
    assert np.all(np.abs(got - want) <= 4e-15 * np.maximum(1.0, np.abs(want)))
    bad = np.array([0.0, -1.0, np.nan])
    out = np.empty_like(bad)
    _digamma_all(bad, out)
    assert np.all(np.isnan(out))


@njit
def _factored(a, b, p):
    ea, eb = np.empty_like(a), np.empty_like(b)
    exp_factor(a, ea)
    exp_factor(b, eb)
    return exp_product(ea, eb, p) >= 1e-20


@pytest.mark.parametrize("k", [1, 3, 4, 20, 33])
@pytest.mark.parametrize("scale", [0.1, 10.0, 300.0])
def test_a_softmax_from_two_exp_factors_is_the_softmax_of_the_sum(k, scale):
    rng = np.random.default_rng(k)
    a, b = rng.normal(scale=scale, size=k), rng.normal(scale=scale, size=k)
    p = np.empty(k)
    if _factored(a, b, p):
        # (entries below e^-650 of the largest may be 0, as in the log-space route)
        assert p == pytest.approx(special.softmax(a + b), rel=1e-13, abs=1e-282)
    else:                       # only where the two factors' product is tiny
        assert np.sum(np.exp(a - a.max() + b - b.max())) < 1e-20


def test_the_factored_softmax_declines_when_the_product_underflows():
    a = np.array([0.0, -800.0])
    b = np.array([-800.0, 0.0])        # each factor's largest entry meets the other's smallest
    p = np.empty(2)
    assert not _factored(a, b, p)
    q = np.empty(2)
    finish_categorical(a + b, q)       # the log-space route the block falls back to
    assert q == pytest.approx([0.5, 0.5])


@njit
def _finish_from_factors(a, b, p):
    ea, eb, eta = np.empty_like(a), np.empty_like(b), np.empty_like(a)
    ma = exp_factor(a, ea)
    mb = exp_factor(b, eb)
    return exp_product_finish(ea, eb, ma, mb, a, b, eta, p)


@pytest.mark.parametrize("k", [1, 3, 20])
@pytest.mark.parametrize("scale", [0.1, 10.0, 300.0])
def test_the_finish_from_two_factors_is_the_categorical_finish_of_the_sum(k, scale):
    """H and log Σ e^η from the factors (one log) equal those of finish_categorical(a + b), also where the
    factors' product underflows and the log-space route is taken."""
    rng = np.random.default_rng(k)
    for a, b in [(rng.normal(scale=scale, size=k), rng.normal(scale=scale, size=k)),
                 (np.array([0.0, -800.0] + [-900.0] * (k - 2))[:max(k, 2)],
                  np.array([-800.0, 0.0] + [-900.0] * (k - 2))[:max(k, 2)])]:
        p, q = np.empty(len(a)), np.empty(len(a))
        h, lse = _finish_from_factors(a, b, p)
        h_want, lse_want = finish_categorical(a + b, q)
        assert p == pytest.approx(q, rel=1e-13, abs=1e-282)
        assert lse == pytest.approx(special.logsumexp(a + b), rel=1e-14, abs=1e-12)
        assert lse == pytest.approx(lse_want, rel=1e-14, abs=1e-12)
        assert h == pytest.approx(h_want, rel=1e-9, abs=1e-10)


def test_the_shares_sum_to_the_softmaxes_and_leave_out_what_underflows():
    """a ∘ Σ_j b_j / (a · b_j) is Σ_j softmax(η_a + η_b,j); a row whose product underflows is counted, not added."""
    rng = np.random.default_rng(5)
    a, b = rng.normal(scale=3.0, size=7), rng.normal(scale=3.0, size=(40, 7))
    a[0] = a.max() - 800.0
    b[11] = -800.0
    b[11, 0] = 0.0              # this member's largest factor meets a's smallest, e^-800 below its largest
    ea, eb = np.empty(7), np.empty_like(b)
    exp_factor(a, ea)
    for j in range(40):
        exp_factor(b[j], eb[j])
    acc, sums = np.zeros(7), np.empty(40)
    assert add_shares(ea, eb, acc, sums) == 1
    keep = np.arange(40) != 11
    assert not sums[11] >= 1e-20 and np.all(sums[keep] >= 1e-20)
    want = special.softmax(a + b[keep], axis=1).sum(0)
    assert ea * acc == pytest.approx(want, rel=1e-13)


@pytest.mark.parametrize("alpha", [[0.5, 0.5], [1e-3, 2.0, 30.0], [1.0] * 20, [1e4, 0.1, 7.5],
                                   [1e-8, 3.0], [1e16, 2.0]])
def test_dirichlet_moments_and_entropy_against_scipy(alpha):
    from scipy import stats

    alpha = np.array(alpha, dtype=float)
    a, logp, mean = np.empty_like(alpha), np.empty_like(alpha), np.empty_like(alpha)
    assert dirichlet_moments(alpha - 1.0, a, logp, mean)
    assert a == pytest.approx(alpha, rel=1e-15)
    # (against SciPy at the α the function formed: η + 1 rounds 1e-8 − 1 + 1)
    assert logp == pytest.approx(special.digamma(a) - special.digamma(a.sum()), rel=1e-13, abs=1e-13)
    assert mean == pytest.approx(a / a.sum(), rel=1e-15)
    if alpha.max() < 1e6:      # (beyond, the entropy is a difference of lgammas near 1e17 in any formula)
        assert dirichlet_entropy(a, logp) == pytest.approx(stats.dirichlet(a).entropy(), rel=1e-11, abs=1e-11)
    assert not dirichlet_moments(np.array([-1.0, 1.0]), np.empty(2), np.empty(2), np.empty(2))
    assert np.isnan(dirichlet_entropy(np.array([0.0, 1.0]), np.zeros(2)))


def test_the_block_finish_is_the_categorical_finish_of_each_column():
    """Columns of η (K × B) as points, the first n of them: p, H and log Σ e^η as finish_categorical gives
    them point by point, for spreads from 1e-3 to 1e4 (entries e^-700 below the largest are 0 in both)."""
    rng = np.random.default_rng(9)
    k, b, n = 10, 37, 33
    eta = rng.normal(size=(k, b)) * np.logspace(-3, 4, b)
    eta[:, 0] = -1e5
    eta[3, 1] = 800.0
    p, h, lse = np.zeros((n, k)), np.zeros(n), np.zeros(n)
    finish_categorical_block(eta.copy(), n, p, h, lse, np.empty(b), np.empty(b), np.empty(b))
    for j in range(n):
        q = np.empty(k)
        h_want, lse_want = finish_categorical(eta[:, j].copy(), q)
        assert p[j] == pytest.approx(q, rel=1e-13, abs=1e-300)
        assert lse[j] == pytest.approx(lse_want, rel=1e-14)
        assert h[j] == pytest.approx(h_want, rel=1e-9, abs=1e-12)


@njit
def _vlog_all(x, out):
    for i in range(x.shape[0]):
        out[i] = vlog(x[i])


@njit
def _vdigamma_all(x, out):
    for i in range(x.shape[0]):
        out[i] = vdigamma(x[i])


def test_vlog_and_vdigamma_against_numpy_and_scipy():
    x = np.concatenate([np.logspace(-307, 307, 200_001), np.linspace(0.5, 2.0, 20_001), [1.0, 2.0, np.sqrt(2.0)]])
    out = np.empty_like(x)
    _vlog_all(x, out)
    want = np.log(x)
    assert np.all(np.abs(out - want) <= 4e-16 * np.maximum(np.abs(want), 1e-300) + 1e-300)
    bad = np.array([np.nan, 0.0, -1.0])
    _vlog_all(bad, out[:3])
    assert np.all(np.isnan(out[:3]))
    x = np.concatenate([np.logspace(-6, 15, 100_001), np.linspace(1e-3, 12.0, 20_001)])
    out = np.empty_like(x)
    _vdigamma_all(x, out)
    want = special.digamma(x)
    assert np.all(np.abs(out - want) <= 4e-15 * np.maximum(1.0, np.abs(want)))


def _lasso_kkt_and_objective(a, c, lam, x):
    """Checks x minimises ½ xᵀAx − cᵀx + Σ λ|x|: ∇ + λ sign(x) = 0 where x ≠ 0, |∇| ≤ λ where x = 0."""
    g = a @ x - c
    on = x != 0
    assert g[on] == pytest.approx(-lam[on] * np.sign(x[on]), abs=1e-9)
    assert np.all(np.abs(g[~on]) <= lam[~on] + 1e-9)
    return 0.5 * x @ a @ x - c @ x + lam @ np.abs(x)


@pytest.mark.parametrize("dependent", [False, True], ids=["independent atoms", "a repeated atom"])
def test_feature_sign_meets_the_l1_optimality_conditions_from_any_start(dependent):
    """From zero and from a wrong warm start; with a repeated atom, A's principal submatrix on both copies
    is singular (the Cholesky solve declines and least squares takes over): the objective is still the
    coordinate-descent lasso's of scikit-learn."""
    from sklearn.linear_model import Lasso

    rng = np.random.default_rng(3)
    d, m = 20, 12
    w = rng.normal(size=(d, m))
    if dependent:
        w[:, 5] = w[:, 2]
    v = w[:, [2, 7]] @ np.array([3.0, -2.0]) + 0.05 * rng.normal(size=d)
    a, c, lam = w.T @ w, w.T @ v, np.full(m, 0.5)
    lasso = Lasso(alpha=0.5 / d, fit_intercept=False, tol=1e-14, max_iter=10 ** 6).fit(w, v)
    best = 0.5 * lasso.coef_ @ a @ lasso.coef_ - c @ lasso.coef_ + lam @ np.abs(lasso.coef_)
    if dependent:       # both copies active: the system on them is singular, and Cholesky says so
        assert not _cholesky_solve(a, np.array([2, 5, 0]), 3, c[[2, 5, 0]], np.empty((3, 3)), np.empty(3), 1e-12)
    assert _cholesky_solve(a, np.array([2, 7]), 2, c[[2, 7]], np.empty((2, 2)), out := np.empty(2), 1e-12)
    assert out == pytest.approx(np.linalg.solve(a[np.ix_([2, 7], [2, 7])], c[[2, 7]]), rel=1e-12)
    for start in (np.zeros(m), rng.normal(size=m)):
        x = start.copy()
        feature_sign(a, c, lam, x)
        assert _lasso_kkt_and_objective(a, c, lam, x) == pytest.approx(best, abs=1e-9)


@pytest.mark.parametrize("pattern", [(True, False, False, True), (False, True, False, False), (True,) * 4,
                                     (False,) * 4])
def test_the_missing_block_finish_is_the_gaussian_conditional(pattern):
    """finish_mvnormal_missing from η = (Λμ, −Λ/2) of N(μ, Λ⁻¹) and x_o in the mean: N(μ_m − Λ_mm⁻¹ Λ_mo (x_o − μ_o),
    Λ_mm⁻¹), zero covariance on o, ⟨x xᵀ⟩ = Σ + m mᵀ, H of the block (scipy); compiled = interpreted."""
    from scipy import stats

    from ppvi.codegen.runtime import finish_mvnormal_missing
    rng = np.random.default_rng(4)
    a = rng.normal(size=(4, 4))
    lam, mu, x = a @ a.T + np.eye(4), rng.normal(size=4), rng.normal(size=4)
    m = np.array(pattern)
    o = ~m
    results = []
    for finish in (finish_mvnormal_missing, finish_mvnormal_missing.py_func):
        mean, cov, xxt = np.where(m, 99.0, x), np.full((4, 4), 7.0), np.full((4, 4), 7.0)
        h = finish(lam @ mu, -lam / 2, m, mean, cov, xxt)
        results.append((h, mean, cov, xxt))
    for got, want in zip(results[0], results[1], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    h, mean, cov, xxt = results[0]
    if not m.any():
        assert h == 0.0 and np.all(cov == 7.0) and np.array_equal(mean, x)       # a complete row: left alone
        return
    block = np.linalg.inv(lam[np.ix_(m, m)])
    np.testing.assert_allclose(mean[m], mu[m] - block @ lam[np.ix_(m, o)] @ (x[o] - mu[o]), rtol=1e-12)
    np.testing.assert_array_equal(mean[o], x[o])
    np.testing.assert_allclose(cov[np.ix_(m, m)], block, rtol=1e-12)
    assert not cov[o].any() and not cov[:, o].any()
    np.testing.assert_allclose(xxt, cov + np.outer(mean, mean), rtol=1e-12)
    assert h == pytest.approx(stats.multivariate_normal(np.zeros(m.sum()), block).entropy(), rel=1e-12)


def test_the_beta_entropy_keeps_its_digits_at_large_a_and_b():
    """H = log B(a, b) − (a − 1)ψ(a) − (b − 1)ψ(b) + (a + b − 2)ψ(a + b) (PRML B.9) against mpmath at 50 digits:
    for large a, b its terms are of order a log a and cancel to ½ log(2πe ab/(a + b)³) + O(1/a) (issue 14
    leftover, like the Gamma's)."""
    import mpmath

    from ppvi.codegen.runtime import finish_beta

    mpmath.mp.dps = 50
    for a in (0.3, 1.0, 2.5, 99.0, 100.0, 1e3, 1e5, 10000047.0, 1e10, 1e13):
        for b in (0.5, 3.0, 150.0, 1e4, 1e8, 1e12):
            _, _, mean, logx, log1mx, h = finish_beta(a - 1.0, b - 1.0)
            A, B = mpmath.mpf(a), mpmath.mpf(b)
            want = float(mpmath.log(mpmath.beta(A, B)) - (A - 1) * mpmath.digamma(A) - (B - 1) * mpmath.digamma(B)
                         + (A + B - 2) * mpmath.digamma(A + B))
            assert abs(h - want) <= 1e-13 * max(1.0, abs(want)), (a, b, h, want)
            assert abs(mean - a / (a + b)) <= 1e-15 * a / (a + b)


def test_the_gamma_entropy_keeps_its_digits_at_large_shape():
    """H = log Γ(a) − (a − 1)ψ(a) − log b + a (PRML B.31) against mpmath at 50 digits: for large a the first two
    terms cancel to ½ log a + ½ log 2π + ½ + O(1/a) (a prior Gamma(1e7, 1): 2e-9 of H was lost, the harness's
    inline:test_constants case)."""
    import mpmath

    from ppvi.codegen.runtime import finish_gamma

    mpmath.mp.dps = 50
    for a in (0.3, 1.0, 2.5, 10.0, 99.0, 100.0, 101.0, 1e3, 1e5, 10000047.0, 1e10, 1e13):
        for b in (1e-3, 1.0, 17.0, 1e4):
            shape, rate, mean, logx, h = finish_gamma(-b, a - 1.0)
            A, B = mpmath.mpf(a), mpmath.mpf(b)
            want = float(mpmath.loggamma(A) - (A - 1) * mpmath.digamma(A) - mpmath.log(B) + A)
            assert abs(h - want) <= 1e-13 * max(1.0, abs(want)), (a, b, h, want)
            assert abs(shape - a) <= 1e-15 * a and rate == b and abs(mean - a / b) <= 1e-15 * a / b
            assert abs(logx - float(mpmath.digamma(A) - mpmath.log(B))) <= 1e-14 * max(1.0, abs(logx)), (a, b)


@pytest.mark.parametrize("centre", [0.0, 1e8])
def test_finish_normal_gamma_reads_the_pair_off_the_two_mean_field_updates(centre):
    """η of q(μ) and q(λ) under the mean field, read at moments (⟨λ⟩, mean, sd), from a Normal–Gamma's natural
    parameters (λμ²: −β/2, λμ: βm, λ: −b − βm²/2, log λ: a − ½): the finish gives the Normal–Gamma back, its entropy that of scipy's Gamma plus E[H[N(m, (βλ)⁻¹)]], and
    stays exact with data at 1e8 (b is not −η_λ − βm²/2, a difference of numbers of order 1e16)."""
    from ppvi.codegen.runtime import finish_normal_gamma
    from scipy import stats

    m, beta, a, b = centre + 0.3, 7.0, 3.5, 2.25
    lam, mean, sd = 0.8, centre - 0.1, 0.6          # the moments the two updates read (the previous q)
    n1, n2 = -beta / 2, beta * m                     # coefficients of λμ², λμ
    eta_mu_x, eta_mu_x2 = lam * n2, lam * n1
    # η_λ[x] = n1⟨μ²⟩ + n2⟨μ⟩ + n3, n3 = −b − βm²/2, written as −b − β((mean − m)² + sd²)/2 (the same number)
    eta_lam_x, eta_lam_logx = -b - beta * ((mean - m) ** 2 + sd ** 2) / 2, a - 0.5
    got = finish_normal_gamma(eta_mu_x, eta_mu_x2, eta_lam_x, eta_lam_logx, lam, mean, sd)
    m_, s, x2, h_mu, a_, b_, e_lam, e_log, h_lam, beta_ = got
    assert m_ == pytest.approx(m, rel=1e-15) and beta_ == pytest.approx(beta, rel=1e-14)
    assert a_ == pytest.approx(a, rel=1e-15) and b_ == pytest.approx(b, rel=1e-12)
    assert e_lam == pytest.approx(a / b, rel=1e-12) and s == pytest.approx((beta * a / b) ** -0.5, rel=1e-12)
    assert e_log == pytest.approx(special.digamma(a) - np.log(b), rel=1e-12)
    assert h_lam == pytest.approx(stats.gamma(a, scale=1 / b).entropy(), rel=1e-12)
    assert h_mu == pytest.approx(0.5 * (1 + np.log(2 * np.pi / beta)) - 0.5 * e_log, rel=1e-12)
    assert x2 == m_ * m_ + s * s
