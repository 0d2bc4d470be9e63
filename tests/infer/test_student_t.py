"""StudentT(nu, mean, sd) as a Gamma scale mixture (issue 17, build 3; PRML 2.158-2.160).

The checker writes `y[n] ~ StudentT(ν, μ, σ)` as w[n] ~ Gamma(ν/2, ν/2) and y[n] ~ Normal(μ, precision =
w[n]/σ²), so 19.56 gives q(w[n]) = Gamma((ν + 1)/2, ν/2 + E[(y[n] − μ)²]/(2σ²)) and a Normal q(μ) with
precision 1/s0² + Σ E[w]/σ².  Checked here against those updates written by hand, a NumPy evaluation of the
ELBO, and log p(y) of the Student-t likelihood itself by quadrature over μ (the ELBO is below it).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

import ppvi
from conftest import plain_kernels, run_cli

NU, SD, S0 = 4.0, 0.5, 10.0

MODEL = f"""\
dim N
data y[N]
mu ~ Normal(0, {S0})
for n in N:
    y[n] ~ StudentT({NU}, mu, {SD})
"""


def _y() -> np.ndarray:
    rng = np.random.default_rng(1)
    return np.concatenate([rng.normal(1.0, SD, 30), [8.0, 9.0, -7.0]])     # three gross outliers


@pytest.fixture(scope="module")
def fit(tmp_path_factory):
    path = tmp_path_factory.mktemp("t") / "t.ppvi"
    path.write_text(MODEL)
    with plain_kernels():           # (an inline model on 33 points: its kernels as plain Python, nothing compiled)
        return ppvi.load(str(path)).fit({"y": _y()}, tol=1e-14, max_iter=5000)


def test_the_fixed_point_is_the_scale_mixture_update(fit):
    y, q = _y(), fit.q
    m, s = float(q["mu"]["mean"]), float(q["mu"]["sd"])
    shape, rate = q["y_weight"]["shape"], q["y_weight"]["rate"]
    assert shape == pytest.approx(np.full(len(y), (NU + 1) / 2), rel=1e-12)
    assert rate == pytest.approx(NU / 2 + ((y - m) ** 2 + s ** 2) / (2 * SD ** 2), rel=1e-9)
    w = shape / rate
    precision = 1 / S0 ** 2 + w.sum() / SD ** 2
    # (the sweep updates q(mu) before q(w): one step behind the w it is compared with)
    assert s == pytest.approx(precision ** -0.5, rel=1e-6)
    assert m == pytest.approx((w * y).sum() / SD ** 2 / precision, rel=1e-6)
    assert w[-3:].max() < 0.1 * w[:-3].min()                          # outliers lose their pull


def test_the_elbo_is_a_numpy_evaluation_and_below_the_student_t_evidence(fit):
    y, q = _y(), fit.q
    m, s = float(q["mu"]["mean"]), float(q["mu"]["sd"])
    a, b = q["y_weight"]["shape"], q["y_weight"]["rate"]
    e_w, e_logw = a / b, special.digamma(a) - np.log(b)
    e_sq = (y - m) ** 2 + s ** 2
    weights = np.sum(NU / 2 * np.log(NU / 2) - special.gammaln(NU / 2) + (NU / 2 - 1) * e_logw - NU / 2 * e_w)
    data = np.sum(0.5 * (e_logw - np.log(SD ** 2) - np.log(2 * np.pi)) - e_w * e_sq / (2 * SD ** 2))
    prior = -0.5 * np.log(2 * np.pi * S0 ** 2) - (m ** 2 + s ** 2) / (2 * S0 ** 2)
    entropy = (0.5 * np.log(2 * np.pi * np.e * s ** 2)
               + np.sum(a - np.log(b) + special.gammaln(a) + (1 - a) * special.digamma(a)))
    assert fit.elbo == pytest.approx(weights + data + prior + entropy, rel=1e-10)
    # log p(y) = log ∫ N(μ; 0, s0²) Π_n t_ν(y_n; μ, σ) dμ on a fine grid around the posterior
    grid = np.linspace(m - 40 * s, m + 40 * s, 40001)
    log_joint = stats.norm.logpdf(grid, 0, S0) + stats.t.logpdf(y[:, None], NU, grid, SD).sum(axis=0)
    log_evidence = special.logsumexp(log_joint) + np.log(grid[1] - grid[0])
    assert fit.elbo < log_evidence
    assert log_evidence - fit.elbo < 0.05 * len(y)                    # a bound, not a distant one
    post = np.exp(log_joint - log_joint.max())
    exact_mean = (grid * post).sum() / post.sum()
    assert m == pytest.approx(exact_mean, abs=s)


def test_unknown_degrees_of_freedom_are_refused(tmp_path, capsys):
    path = tmp_path / "m.ppvi"
    path.write_text("dim N\ndata y[N]\nnu ~ Gamma(2, 1)\nfor n in N:\n    y[n] ~ StudentT(nu, 0, 1)\n")
    code, out, err = run_cli(["check", path], capsys)
    assert code == 2 and "`nu` of StudentT must be known" in err and "Traceback" not in err, err


@pytest.mark.long       # (compiles the example; by default `ppvi derive` of it runs in tests/derive/test_derive_cli.py)
def test_student_t_regression_is_the_hand_written_scale_mixture():
    """models/student_t_regression.ppvi (Brownlee's stack loss): its fit is robust_regression.ppvi's explicit
    Gamma scale mixture on the same data to 1e-10, and the fixed point of the mean-field updates written here
    (PRML 2.160; q(w) Normal, q(tau), q(lam[n]) Gamma) to 1e-6 (the fits stop where the ELBO moves less than
    1e-14: their parameters are then good to about its square root)."""
    from conftest import MODELS

    data = {k: np.asarray(v, float) for k, v in
            __import__("json").loads((MODELS / "student_t_regression.json").read_text()).items()}
    X, y = data["X"], data["y"]
    t = ppvi.load(str(MODELS / "student_t_regression.ppvi")).fit(tol=1e-14, max_iter=5000)
    mixture = ppvi.load(str(MODELS / "robust_regression.ppvi")).fit(data, tol=1e-14, max_iter=5000)
    assert t.elbo == pytest.approx(mixture.elbo, rel=1e-10, abs=1e-10)
    assert t.q["w"]["mean"] == pytest.approx(mixture.q["w"]["mean"], rel=1e-10, abs=1e-10)
    assert t.q["y_weight"]["rate"] == pytest.approx(mixture.q["lam"]["rate"], rel=1e-10)
    # coordinate ascent by hand: nu = 4, w ~ N(0, 100 I), tau ~ Gamma(0.01, 0.01)
    nu, a0, b0 = 4.0, 1e-2, 1e-2
    e_lam, e_tau = np.ones(len(y)), 1.0
    for _ in range(2000):
        cov = np.linalg.inv(1e-2 * np.eye(X.shape[1]) + e_tau * (X.T * e_lam) @ X)
        m = cov @ (e_tau * X.T @ (e_lam * y))
        sq = (y - X @ m) ** 2 + np.einsum("nd,de,ne->n", X, cov, X)     # E[(y − x·w)²]
        e_tau = (a0 + len(y) / 2) / (b0 + 0.5 * e_lam @ sq)
        e_lam = (nu / 2 + 0.5) / (nu / 2 + 0.5 * e_tau * sq)
    assert t.q["w"]["mean"] == pytest.approx(m, rel=1e-6)
    assert t.q["tau"]["shape"] / t.q["tau"]["rate"] == pytest.approx(e_tau, rel=1e-6)
    weights = t.q["y_weight"]["shape"] / t.q["y_weight"]["rate"]
    assert weights == pytest.approx(e_lam, rel=1e-6)
    assert set(np.argsort(weights)[:2]) == {20, 3}                    # days 21 and 4: the outliers
