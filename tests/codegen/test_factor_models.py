"""Factor models, whose local latent is read through a product with a loading (issue 14, item 1): the
generated local step against the updates written here in NumPy, PPCA by variational EM against Tipping &
Bishop's closed form, and the compiled kernels against the same generated code run by the interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import special

import ppvi
from ppvi.api import Model
from programs import PPCA_EM, checked, factor_data, program

HERE = Path(__file__).resolve().parent
LOG2PI = np.log(2 * np.pi)


def _sweeps(p, count: int) -> list[float]:
    """``count`` sequential sweeps of the program's schedule; the ELBO after each."""
    out = []
    for _ in range(count):
        for var in p.schedule():
            p.update(var)
        out.append(p.elbo())
    return out


# ---------------------------------------------------------------- known loadings, latent noise precision
def _fa_reference(y, w, mean, var, sweeps: int):
    """Mean-field CAVI for y[n] ~ N(W x[n], τ⁻¹ I), x[n, k] ~ N(0, 1), τ ~ Gamma(1, 1), q(τ) q(x[n, k]) each
    a factor, in ppvi's order: τ, then x[n, 0], x[n, 1], … (Gauss–Seidel within a point).  Returns the
    means, variances, q(τ) and the ELBO (19.7) after every sweep."""
    n, d = y.shape
    mean, var = mean.copy(), var.copy()
    out = []
    for _ in range(sweeps):
        resid2 = ((y - mean @ w.T) ** 2).sum() + (var @ (w ** 2).T).sum()
        a, b = 1.0 + n * d / 2, 1.0 + resid2 / 2
        etau, elogtau = a / b, special.digamma(a) - np.log(b)
        for k in range(w.shape[1]):
            others = mean @ w.T - np.outer(mean[:, k], w[:, k])
            prec = 1.0 + etau * (w[:, k] ** 2).sum()
            mean[:, k] = etau * (y - others) @ w[:, k] / prec
            var[:, k] = 1.0 / prec
        resid2 = ((y - mean @ w.T) ** 2).sum() + (var @ (w ** 2).T).sum()
        elbo = (-etau                                                            # E log Gamma(τ; 1, 1)
                - 0.5 * (mean ** 2 + var).sum() - 0.5 * mean.size * LOG2PI      # E log N(x; 0, 1)
                + 0.5 * n * d * (elogtau - LOG2PI) - 0.5 * etau * resid2         # E log N(y; W x, τ⁻¹)
                + a - np.log(b) + special.gammaln(a) + (1 - a) * special.digamma(a)   # H[q(τ)]
                + 0.5 * np.log(2 * np.pi * np.e * var).sum())                    # H[q(x)]
        out.append((mean.copy(), var.copy(), a, b, elbo))
    return out


def test_factor_analysis_with_known_loadings_follows_the_textbook_updates():
    """Before the fix: ElboDecrease, the update of q(X) lowered it (its parallel kernel read stale means)."""
    p = program("fa_known_w")
    data = factor_data()
    rng = np.random.default_rng(1)
    p.state["q_X__mean"][...] = rng.normal(size=p.state["q_X__mean"].shape)   # not the stationary 0
    p.state["q_X__sd"][...] = 1.0
    p.state["m_X__x2"][...] = p.state["q_X__mean"] ** 2 + 1.0
    p.stale = True
    ref = _fa_reference(data["y"], data["W"], p.state["q_X__mean"], p.state["q_X__sd"] ** 2, 6)
    elbos = _sweeps(p, 6)
    mean, var, a, b, _ = ref[-1]
    assert p.state["q_X__mean"] == pytest.approx(mean, rel=1e-10, abs=1e-12)
    assert p.state["q_X__sd"] ** 2 == pytest.approx(var, rel=1e-10)
    assert (p.state["q_tau__shape"][0], p.state["q_tau__rate"][0]) == pytest.approx((a, b), rel=1e-10)
    assert elbos == pytest.approx([r[4] for r in ref], rel=1e-10)
    assert np.all(np.diff(elbos) >= -1e-9 * np.abs(elbos[1:]))


def test_the_whole_fit_with_known_loadings_never_lowers_the_elbo():
    r = Model(checked("fa_known_w")).fit(factor_data(), max_iter=200, tol=1e-12)
    trace = np.array(r.elbo_trace)
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))


# ---------------------------------------------------------------------- PPCA by variational EM
def _tipping_bishop(y: np.ndarray, m: int) -> tuple[np.ndarray, float]:
    """The maximum-likelihood PPCA covariance C = W Wᵀ + σ² I (Tipping & Bishop 1999, eqs. 7–8) for zero-mean
    y: σ² the mean of the discarded eigenvalues of S = yᵀy / N, W = U_m (Λ_m − σ² I)^½."""
    s = y.T @ y / len(y)
    lam, u = np.linalg.eigh(s)
    lam, u = lam[::-1], u[:, ::-1]
    sigma2 = lam[m:].mean()
    w = u[:, :m] * np.sqrt(lam[:m] - sigma2)
    return w @ w.T + sigma2 * np.eye(len(s)), sigma2


def test_ppca_by_variational_em_reaches_the_closed_form_maximum_likelihood():
    """With a factorised q(X[n, m]) the bound is tight where the columns of W are orthogonal, which the ML
    solution allows: the fit must reach the log-likelihood of Tipping & Bishop's closed form, with its bound
    tight there, and their covariance, as scikit-learn's PCA gives it (scaled from 1/(N − 1) to the ML 1/N).
    (Near the optimum the log-likelihood is flat along the second component: the fit stops once the ELBO no
    longer moves in floating point, its covariance still ~1e-5 away.)  Before the fix: ElboDecrease."""
    from sklearn.decomposition import PCA

    y = factor_data(n=400, d=5)["y"]
    r = ppvi.api.Model(ppvi.language.loads(PPCA_EM, "<ppca>")).fit({"y": y}, max_iter=5000, tol=1e-300)
    w, tau = r.params["W"], float(np.ravel(r.params["tau"])[0])
    cov = w @ w.T + np.eye(5) / tau

    def loglik(c):
        return -0.5 * (len(y) * (5 * LOG2PI + np.linalg.slogdet(c)[1]) + np.trace(y @ np.linalg.inv(c) @ y.T))

    expected, sigma2 = _tipping_bishop(y, 2)
    assert loglik(cov) == pytest.approx(loglik(expected), rel=1e-10)
    assert r.elbo == pytest.approx(loglik(cov), rel=1e-10)
    assert 1 / tau == pytest.approx(sigma2, rel=1e-6)
    assert cov == pytest.approx(expected, rel=1e-3, abs=1e-3)
    pca = PCA(n_components=2).fit(y)
    assert cov == pytest.approx(pca.get_covariance() * (len(y) - 1) / len(y), rel=1e-3, abs=1e-3)
    assert abs((w.T @ w)[0, 1]) < 1e-8 * np.abs(w.T @ w).max()      # orthogonal columns: q is exact there
    trace = np.array(r.elbo_trace)
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))


# --------------------------------------------------------------- fully Bayesian FA, compiled vs interpreted
INTERPRETED = """
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from test_factor_models import _bayes_fa_sweeps
print(json.dumps(_bayes_fa_sweeps()))
"""


def _bayes_fa_sweeps(count: int = 15) -> dict:
    """Sweeps of fully Bayesian factor analysis from a random start of the factors' means."""
    p = program("fa_bayes")
    rng = np.random.default_rng(2)
    p.state["q_X__mean"][...] = rng.normal(size=p.state["q_X__mean"].shape)
    p.state["m_X__x2"][...] = p.state["q_X__mean"] ** 2 + p.state["q_X__sd"] ** 2
    p.stale = True
    elbos = _sweeps(p, count)
    return {"elbo": elbos, "W": p.state["q_W__mean"].tolist(), "psi": p.state["m_psi__x"].tolist(),
            "X": p.state["q_X__mean"][:20].tolist()}


def test_fully_bayesian_factor_analysis_compiled_equals_interpreted_and_never_lowers_the_elbo():
    compiled = _bayes_fa_sweeps()
    elbo = np.array(compiled["elbo"])
    assert np.all(np.diff(elbo) >= -1e-9 * np.abs(elbo[1:]))
    assert elbo[-1] > elbo[0] + 100          # (it moved: the start was not a fixed point)
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    proc = subprocess.run([sys.executable, "-c", INTERPRETED, str(HERE)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    plain = json.loads(proc.stdout.strip().splitlines()[-1])
    assert plain["elbo"] == pytest.approx(compiled["elbo"], rel=1e-10)
    for key in ("W", "psi", "X"):
        assert np.array(compiled[key]) == pytest.approx(np.array(plain[key]), rel=1e-8, abs=1e-10), key
