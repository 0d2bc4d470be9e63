"""Missing positive and (0, 1) data (issue 17): 19.56 gives a missing entry under a Gamma or Exponential factor a
Gamma q, under a Beta factor a Beta q.  Checked against mathematics written here:

- x_n ~ Gamma(a0, λ), e_n ~ Exponential(λ), λ ~ Gamma(2, 1): q(x_n) = Gamma(a0, E[λ]), q(e_n) = Gamma(1, E[λ]) and
  q(λ) = Gamma(2 + a0 N + N, 1 + Σ⟨x_n⟩ + Σ⟨e_n⟩), the textbook conjugate update reading the imputed means;
- s_n ~ Gamma(2, 1), u_n ~ Normal(0, precision = s_n) with u observed: q(s_n) is the exact posterior
  Gamma(2 + ½, 1 + u_n²/2) (Normal–Gamma conjugacy, nothing mean-field about it);
- y_n ~ Beta(2, 3): a missing y_n is its prior;
- the ELBO against a NumPy evaluation of 19.7 (observed entries: the data; missing ones: q's moments and entropy).

The complete-data fit beside the plain declaration compiles two more models: `long`.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

import ppvi

MODEL = """\
dim N
const a0 = 3.0
data x[N] : positive missing
data e[N] : missing
data s[N] : missing
data u[N]
data y[N] : missing
lam ~ Gamma(2.0, 1.0)
for n in N:
    x[n] ~ Gamma(a0, lam)
    e[n] ~ Exponential(lam)
    s[n] ~ Gamma(2.0, 1.0)
    u[n] ~ Normal(0.0, precision = s[n])
    y[n] ~ Beta(2.0, 3.0)
"""
N, A0 = 30, 3.0


# Every fit here as plain Python: inline models on 30 points, nothing compiled for checks of the derivation (compiled =
# interpreted, missing entries among them: tests/codegen/test_differential.py, iris_missing).
pytestmark = pytest.mark.usefixtures("plain_fits")


def _data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    s = rng.gamma(2.0, 1.0, N)
    data = {"x": rng.gamma(A0, 1 / 1.5, N), "e": rng.exponential(1 / 1.5, N), "s": s,
            "u": rng.normal(size=N) / np.sqrt(s), "y": rng.beta(2.0, 3.0, N)}
    data["x"][[0, 4, 9]] = np.nan
    data["e"][[4, 20]] = np.nan
    data["s"][[1, 2, 3]] = np.nan
    data["y"][[7, 29]] = np.nan
    return data


@pytest.fixture(scope="module")
def fit(tmp_path_factory):
    path = tmp_path_factory.mktemp("missing") / "positive.ppvi"
    path.write_text(MODEL)
    data = _data()
    return ppvi.load(str(path)).fit(data, tol=0, max_iter=200), data


def _moments(q, fam: str):
    """⟨x⟩, ⟨log x⟩ (and ⟨log(1 − x)⟩ for a Beta) of a Gamma or Beta q (PRML B.27, B.30; B.7)."""
    if fam == "Gamma":
        return q["shape"] / q["rate"], special.digamma(q["shape"]) - np.log(q["rate"])
    a, b = q["a"], q["b"]
    return a / (a + b), special.digamma(a) - special.digamma(a + b), special.digamma(b) - special.digamma(a + b)


def test_missing_gamma_and_exponential_entries_and_the_rate_are_at_the_conjugate_fixed_point(fit):
    r, data = fit
    lam = r.q["lam"]
    e_lam = lam["shape"] / lam["rate"]
    for name, shape in (("x", A0), ("e", 1.0)):
        q, miss = r.q[name], np.isnan(data[name])
        assert q.family == "Gamma"
        np.testing.assert_array_equal(q.missing, miss)
        np.testing.assert_allclose(q["shape"][miss], shape, rtol=1e-12)
        np.testing.assert_allclose(q["rate"][miss], e_lam, rtol=1e-10)
        # observed entries: a point mass at the datum
        np.testing.assert_array_equal(q.mean[~miss], data[name][~miss])
        assert np.all(q.sd[~miss] < 1e-80 * data[name][~miss])
    ex = np.where(np.isnan(data["x"]), A0 / e_lam, data["x"])
    ee = np.where(np.isnan(data["e"]), 1 / e_lam, data["e"])
    assert lam["shape"] == pytest.approx(2 + A0 * N + N, rel=1e-12)
    assert lam["rate"] == pytest.approx(1 + ex.sum() + ee.sum(), rel=1e-10)


def test_a_missing_precision_is_its_exact_posterior(fit):
    """s ~ Gamma(2, 1), u | s ~ N(0, 1/s): p(s | u) = Gamma(2 + 1/2, 1 + u²/2)."""
    r, data = fit
    q, miss = r.q["s"], np.isnan(data["s"])
    np.testing.assert_allclose(q["shape"][miss], 2.5, rtol=1e-12)
    np.testing.assert_allclose(q["rate"][miss], 1 + data["u"][miss] ** 2 / 2, rtol=1e-12)
    # the imputations the result files carry
    from ppvi.io.results import imputations
    imp = imputations(q)
    np.testing.assert_array_equal(imp["index"][:, 0], np.flatnonzero(miss))
    np.testing.assert_allclose(imp["mean"], 2.5 / (1 + data["u"][miss] ** 2 / 2), rtol=1e-12)
    np.testing.assert_allclose(imp["sd"], np.sqrt(2.5) / (1 + data["u"][miss] ** 2 / 2), rtol=1e-12)


def test_a_missing_beta_entry_is_its_prior(fit):
    r, data = fit
    q, miss = r.q["y"], np.isnan(data["y"])
    assert q.family == "Beta"
    np.testing.assert_allclose(q["a"][miss], 2.0, rtol=1e-12)
    np.testing.assert_allclose(q["b"][miss], 3.0, rtol=1e-12)
    np.testing.assert_allclose(q.mean[~miss], data["y"][~miss], rtol=1e-15)
    np.testing.assert_allclose(q.sd[miss], stats.beta(2, 3).std(), rtol=1e-12)


def test_the_elbo_equals_an_independent_numpy_evaluation(fit):
    r, data = fit
    e_lam, e_loglam = _moments(r.q["lam"], "Gamma")
    moments, entropy = {}, stats.gamma(r.q["lam"]["shape"], scale=1 / r.q["lam"]["rate"]).entropy()
    for name in ("x", "e", "s", "y"):
        q, miss = r.q[name], np.isnan(data[name])
        fam = q.family
        m = _moments({p: np.asarray(v)[miss] for p, v in q.params.items()}, fam)
        seen = data[name][~miss]
        observed = (seen, np.log(seen)) + ((np.log1p(-seen),) if fam == "Beta" else ())
        full = [np.empty(N) for _ in m]
        for f, mm, obs in zip(full, m, observed, strict=True):
            f[miss], f[~miss] = mm, obs
        moments[name] = full
        par = {p: np.asarray(v)[miss] for p, v in q.params.items()}
        entropy += (stats.gamma(par["shape"], scale=1 / par["rate"]).entropy() if fam == "Gamma"
                    else stats.beta(par["a"], par["b"]).entropy()).sum()
    (ex, elx), (ee, _), (es, els), (_, ely, el1my) = (moments[n] for n in ("x", "e", "s", "y"))
    u = data["u"]
    log_p = (-special.gammaln(2) + e_loglam - e_lam
             + np.sum(A0 * e_loglam - special.gammaln(A0) + (A0 - 1) * elx - e_lam * ex)
             + np.sum(e_loglam - e_lam * ee)
             + np.sum(-special.gammaln(2) + els - es)
             + np.sum(0.5 * els - 0.5 * np.log(2 * np.pi) - 0.5 * es * u ** 2)
             + np.sum(-special.betaln(2, 3) + ely + 2 * el1my))
    assert r.elbo == pytest.approx(log_p + entropy, rel=1e-10)


@pytest.mark.long
def test_complete_data_fit_the_model_as_declared(tmp_path):
    """No entry missing: the plain model, the same ELBO as the same data under a declaration without `missing`."""
    data = {k: np.nan_to_num(v, nan=0.5) for k, v in _data().items()}
    path = tmp_path / "m.ppvi"
    path.write_text(MODEL)
    plain = tmp_path / "plain.ppvi"
    plain.write_text(MODEL.replace(" : positive missing", " : positive").replace(" : missing", ""))
    a = ppvi.load(str(path)).fit(data, tol=0, max_iter=5)
    b = ppvi.load(str(plain)).fit(data, tol=0, max_iter=5)
    assert a.elbo == b.elbo and a.q["lam"]["rate"] == b.q["lam"]["rate"]
    assert "x" not in a.q
