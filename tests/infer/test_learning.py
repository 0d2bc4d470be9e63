"""Learning point estimates: EM (19.2), MAP sparse codes (19.3, 19.16), binary sparse coding (19.19–19.45)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from scipy import special, stats

import ppvi
from conftest import MODELS, plain_kernels


def fit_text(tmp_path, text, data, **kw):
    """An inline model's fit on a few points, its kernels as plain Python: nothing compiled for these checks of
    the derivation (compiled = interpreted, MAP codes and param updates among them: test_differential.py)."""
    path = tmp_path / "m.ppvi"
    path.write_text(text)
    with plain_kernels():
        return ppvi.load(str(path)).fit(data, **kw)


def _em_step(x, w, mu, tau):
    """One EM step for a 1-D Gaussian mixture, written from PRML §9.2.2 (9.23–9.27)."""
    logp = np.log(w) + stats.norm(mu, tau ** -0.5).logpdf(x[:, None])
    r = np.exp(logp - special.logsumexp(logp, axis=1, keepdims=True))
    Nk = r.sum(0)
    mu_new = r.T @ x / Nk
    var = (r * (x[:, None] - mu_new) ** 2).sum(0) / Nk
    return Nk / len(x), mu_new, 1 / var


def _loglik(x, w, mu, tau):
    return special.logsumexp(np.log(w) + stats.norm(mu, tau ** -0.5).logpdf(x[:, None]), axis=1).sum()


def test_em_mixture_is_a_fixed_point_of_an_independent_em_step():
    r = ppvi.load(str(MODELS / "em_gmm.ppvi")).fit(tol=1e-300, max_iter=2000)
    x = np.asarray(json.load(open(MODELS / "em_gmm.json"))["x"])
    p = r.params
    w, mu, tau = _em_step(x, p["weights"], p["mu"], p["tau"])
    assert w == pytest.approx(p["weights"], rel=1e-7)
    assert mu == pytest.approx(p["mu"], rel=1e-7)
    assert tau == pytest.approx(p["tau"], rel=1e-7)
    d = r.to_dict()
    assert d["log_likelihood"] == pytest.approx(_loglik(x, p["weights"], p["mu"], p["tau"]), rel=1e-10)
    assert np.all(np.diff(r.elbo_trace) >= -1e-9)


def test_em_log_likelihood_trajectory_matches_scikit_learn():
    from sklearn.mixture import GaussianMixture

    x = np.asarray(json.load(open(MODELS / "em_gmm.json"))["x"])
    w0, mu0, tau0 = np.array([0.3, 0.3, 0.4]), np.array([-1.0, 0.5, 2.0]), np.array([1.0, 1.0, 1.0])
    T = 15
    r = ppvi.load(str(MODELS / "em_gmm.ppvi")).fit({"x": x, "weights": w0, "mu": mu0, "tau": tau0},
                                                    max_iter=T, tol=1e-300)
    ours = np.array(r.elbo_trace)
    theirs = []
    for t in range(1, T + 1):
        gm = GaussianMixture(3, covariance_type="spherical", weights_init=w0, means_init=mu0[:, None],
                             precisions_init=tau0, max_iter=t, tol=0.0, reg_covar=0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gm.fit(x[:, None])
        theirs.append(gm.score(x[:, None]) * len(x))        # log p(x; θ_t) after t M-steps
    assert ours == pytest.approx(np.array(theirs), rel=1e-9)


SPARSE_FIXED = """
dim N, D
dim M = 5
const lambda = 0.7
data v[N, D]
data W[D, M]
data b[D]
data beta : positive
for n in N:
    for i in M:
        h[n, i] ~ Laplace(0, 1 / lambda)
    for j in D:
        v[n, j] ~ Normal(sum(i in M: W[j, i] * h[n, i]) + b[j], precision = beta)
approximate h by point
"""


def test_map_sparse_codes_satisfy_the_l1_optimality_conditions_and_beat_lasso(tmp_path):
    from sklearn.linear_model import Lasso

    rng = np.random.default_rng(16)
    N, D, M = 6, 8, 5
    W = rng.normal(size=(D, M))
    W /= np.linalg.norm(W, axis=0)
    b, beta, lam = rng.normal(size=D) * 0.1, 4.0, 0.7
    h_true = rng.normal(size=(N, M)) * (rng.random((N, M)) < 0.4)
    v = h_true @ W.T + b + rng.normal(size=(N, D)) / np.sqrt(beta)
    r = fit_text(tmp_path, SPARSE_FIXED, {"v": v, "W": W, "b": b, "beta": beta}, tol=1e-300, max_iter=3000)
    h = r.q["h"]["value"]
    d = r.to_dict()
    assert d["bound"] is False and "not a bound" in d["note"]
    for n in range(N):
        g = beta * W.T @ (v[n] - b - W @ h[n])          # minus the gradient of the quadratic part
        on = h[n] != 0
        assert g[on] == pytest.approx(lam * np.sign(h[n][on]), abs=1e-8)        # KKT, active set
        assert np.all(np.abs(g[~on]) <= lam + 1e-8)                              # KKT, zeros
        ours = 0.5 * beta * np.sum((v[n] - b - W @ h[n]) ** 2) + lam * np.abs(h[n]).sum()
        lasso = Lasso(alpha=lam / (beta * D), fit_intercept=False, tol=1e-12, max_iter=100000)
        lasso.fit(W, v[n] - b)
        theirs = 0.5 * beta * np.sum((v[n] - b - W @ lasso.coef_) ** 2) + lam * np.abs(lasso.coef_).sum()
        assert ours <= theirs + 1e-10


GAMMA_SHAPE = """
dim N
data x[N] : positive
param nu : positive
for n in N:
    x[n] ~ Gamma(nu, 1)
"""


def test_gradient_m_step_raises_the_objective_to_the_mle(tmp_path):
    """No closed form for a Gamma shape: generalised EM by line search; ψ(ν̂) = mean log x at the end."""
    x = np.random.default_rng(2).gamma(3.0, 1.0, size=200)
    path = tmp_path / "m.ppvi"
    path.write_text(GAMMA_SHAPE)
    from ppvi.derive import derive
    from ppvi.language import load

    assert derive(load(str(path))).points["nu"].method == "gradient"
    with plain_kernels():
        r = ppvi.load(str(path)).fit({"x": x}, tol=1e-14, max_iter=500)
    assert np.all(np.diff(r.elbo_trace) >= 0)
    assert special.digamma(float(r.params["nu"])) == pytest.approx(np.log(x).mean(), rel=1e-5)


def _bars(rng, n, side, p, noise):
    bars = []
    for i in range(side):
        h = np.zeros((side, side)); h[i, :] = 1; bars.append(h.ravel())
        v = np.zeros((side, side)); v[:, i] = 1; bars.append(v.ravel())
    B = np.array(bars)                                                 # (2·side, side²)
    H = rng.random((n, len(B))) < p
    return H @ B + noise * rng.normal(size=(n, side * side)), B


def test_binary_sparse_coding_learns_every_bar():
    """The bars test (Henniges et al. 2010) on the bundled data: every bar is some learned column.

    The factorial mean field's EM finds all ten bars from few starts: 1 of 40 single starts did when the
    atoms started at raw data rows, 5 of 40 at rows scaled to the model's expected power
    (ppvi.infer.start); the best of 40 restarts is the one that did (its ELBO is the highest)."""
    r = ppvi.load(str(MODELS / "binary_sparse_coding.ppvi")).fit(seed=0, restarts=40, max_iter=300)
    W = r.params["W"]                                                   # (D, M)
    side = int(np.sqrt(W.shape[0]))
    bars = []
    for i in range(side):
        h = np.zeros((side, side)); h[i, :] = 1; bars.append(h.ravel())
        v = np.zeros((side, side)); v[:, i] = 1; bars.append(v.ravel())
    B = np.array(bars)
    cos = (B / np.linalg.norm(B, axis=1, keepdims=True)) @ (W / np.linalg.norm(W, axis=0, keepdims=True))
    assert np.all(cos.max(axis=1) > 0.9), np.round(cos.max(axis=1), 3)
    assert np.all(np.diff(r.elbo_trace) >= -1e-9 * np.abs(r.elbo_trace[1:]))


def test_a_laplace_likelihood_under_a_point_latent_fits_the_median(tmp_path):
    """MAP of h under y[n] ~ Laplace(h, 1) and a broad Normal prior: a median of y (the prior's −h/100 moves it
    by less than the gap between the middle points); its ascent direction holds sign(h − y[n])."""
    import ppvi

    path = tmp_path / "laplace.ppvi"
    path.write_text("dim N\ndata y[N]\nh ~ Normal(0, 10)\nfor n in N:\n    y[n] ~ Laplace(h, 1)\n"
                    "approximate h by point\n")
    with plain_kernels():
        r = ppvi.load(str(path)).fit({"y": np.array([1.0, 2.0, 0.0, 2.5, 7.0])})
    assert float(np.squeeze(r.q["h"]["value"])) == pytest.approx(2.0, abs=1e-6)


NORMAL_MLE = """dim N
data y[N]
param mu
param tau : positive
for n in N:
    y[n] ~ Normal(mu, precision = tau)
"""


def test_a_param_whose_likelihood_has_no_maximum_is_a_positioned_error(tmp_path):
    """y all equal: the Gaussian likelihood grows without bound as tau → ∞ (mu = 3 fits every point exactly).
    Beside it, data with a spread: tau = N / Σ(y − ȳ)², the textbook MLE, and the log-likelihood in closed form."""
    y = np.array([3.0, 3.5, 3.0])
    r = fit_text(tmp_path, NORMAL_MLE, {"y": y}, progress=False)
    tau = len(y) / np.sum((y - y.mean()) ** 2)
    np.testing.assert_allclose([r.params["mu"], r.params["tau"]], [y.mean(), tau], rtol=1e-12)
    np.testing.assert_allclose(r.elbo, stats.norm(y.mean(), tau ** -0.5).logpdf(y).sum(), rtol=1e-12)
    with pytest.raises(ppvi.PPVIError, match="no maximum") as e:
        fit_text(tmp_path, NORMAL_MLE, {"y": np.full(3, 3.0)}, progress=False)
    assert ":4:" in str(e.value) and "tau" in str(e.value)


EXACT_LINE = """model exact_line
dim N
data x[N]
data y[N]
a ~ Normal(0, 1)
param b
param beta : positive
for n in N:
    y[n] ~ Normal(a + b * x[n], precision = beta)
"""


def test_a_param_that_diverges_sweep_by_sweep_is_a_positioned_error_not_an_internal_one(tmp_path):
    """y = 1 + 2x exactly: each sweep shrinks the residual, beta's closed form grows geometrically (×2 a
    sweep) and the bound rises as (N − 1)/2 · log beta without end.  Once beta passes ~1e15 the expanded
    squares lose their digits and the ELBO moves by rounding; that must be reported as the divergence it
    is, at beta's declaration, not as an internal ElboDecrease (found on sparse coding with fewer rows than
    atoms, tests/harness/test_found.py)."""
    x = np.linspace(0.0, 1.0, 20)
    with pytest.raises(ppvi.PPVIError, match="has no maximum") as e:
        fit_text(tmp_path, EXACT_LINE, {"x": x, "y": 1 + 2 * x}, max_iter=200, tol=0.0, progress=False)
    assert ":7:7:" in str(e.value) and "`beta`" in str(e.value) and "diverges" in str(e.value)
    # stopped by max_iter on the way (beta ~ 1e8): a warning, with the result
    with pytest.warns(ppvi.PPVIWarning, match="`beta` seems to have no maximum"):
        fit_text(tmp_path, EXACT_LINE, {"x": x, "y": 1 + 2 * x}, max_iter=30, tol=0.0, progress=False)
    # with noise the same model has a maximum: beta → the noise's precision, bounded
    rng = np.random.default_rng(0)
    r = fit_text(tmp_path, EXACT_LINE, {"x": x, "y": 1 + 2 * x + 0.1 * rng.standard_normal(20)}, progress=False)
    assert r.converged and 10 < r.params["beta"] < 1000 and not r.warnings
