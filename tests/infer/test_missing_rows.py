"""Missing entries of MvNormal rows (issue 17): 19.56 over a row's missing block x_m as one MvNormal block, the
observed entries x_o fixed, gives q(x_m) = N(μ_m − Λ_mm⁻¹ Λ_mo (x_o − μ_o), Λ_mm⁻¹) at μ = E[μ], Λ = E[Λ]: the
Gaussian conditional (PRML 2.81–2.82 in precision form), written here; a row with every entry missing gets
N(E[μ], E[Λ]⁻¹).  q(μ) and q(Λ) are the textbook conjugate updates (PRML 10.59–10.63 with known-free μ, Λ
factorised) reading ⟨x_n⟩ and ⟨x_n x_nᵀ⟩ of the imputed rows, and the ELBO is checked against a NumPy evaluation
of 19.7.  The complete-data fit beside the plain declaration (bit for bit) compiles two more models: `long`.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

import ppvi

MODEL = """\
dim N, D
const m0[D] = 0.0
const P0[D, D] = 0.1 * eye(D)
const nu0 = 5.0
const W0[D, D] = 0.5 * eye(D)
data x[N, D] : missing
mu ~ MvNormal(m0, precision = P0)
Lam ~ Wishart(nu0, W0)
for n in N:
    x[n] ~ MvNormal(mu, precision = Lam)
"""
N, D, NU0 = 40, 3, 5.0
P0, W0 = 0.1 * np.eye(D), 0.5 * np.eye(D)


# Every fit here as plain Python: inline models on 40 rows, nothing compiled for checks of the derivation (compiled =
# interpreted, missing entries among them: tests/codegen/test_differential.py, iris_missing).
pytestmark = pytest.mark.usefixtures("plain_fits")


def _data() -> np.ndarray:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(D, D))
    cov = np.linalg.inv(a @ a.T + D * np.eye(D))
    x = rng.multivariate_normal([1.0, -1.0, 2.0], cov, N)
    x[0, 1] = np.nan                    # one coordinate missing
    x[1, [0, 2]] = np.nan               # two
    x[2] = np.nan                       # the whole row
    x[[5, 17], 2] = np.nan
    return x


@pytest.fixture(scope="module")
def fit(tmp_path_factory):
    path = tmp_path_factory.mktemp("missing") / "rows.ppvi"
    path.write_text(MODEL)
    return ppvi.load(str(path)).fit({"x": _data()}, tol=0, max_iter=300)


def test_the_missing_block_is_the_gaussian_conditional(fit):
    x, q = _data(), fit.q["x"]
    mu = fit.q["mu"]["mean"]
    lam = fit.q["Lam"]["df"] * fit.q["Lam"]["scale"]                   # E[Λ] = ν W
    np.testing.assert_array_equal(q.missing, np.isnan(x))
    for n in np.flatnonzero(np.isnan(x).any(axis=1)):
        m = np.isnan(x[n])
        o = ~m
        cov = np.linalg.inv(lam[np.ix_(m, m)])
        mean = mu[m] - cov @ lam[np.ix_(m, o)] @ (x[n, o] - mu[o])
        np.testing.assert_allclose(q["mean"][n, m], mean, rtol=1e-10)
        np.testing.assert_allclose(q["cov"][n][np.ix_(m, m)], cov, rtol=1e-10)
        np.testing.assert_array_equal(q["mean"][n, o], x[n, o])
        assert not q["cov"][n][o].any() and not q["cov"][n][:, o].any()
    complete = ~np.isnan(x).any(axis=1)
    np.testing.assert_array_equal(q["mean"][complete], x[complete])
    assert not q["cov"][complete].any()


def _moments(fit):
    """⟨x_n⟩ and ⟨x_n x_nᵀ⟩ of every row (the data where observed), from q's mean and covariance."""
    q = fit.q["x"]
    return q["mean"], q["cov"] + np.einsum("nd,ne->nde", q["mean"], q["mean"])


def test_mean_and_precision_are_at_the_conjugate_fixed_point(fit):
    ex, exx = _moments(fit)
    mu, s = fit.q["mu"]["mean"], fit.q["mu"]["cov"]
    lam = fit.q["Lam"]["df"] * fit.q["Lam"]["scale"]
    prec = P0 + N * lam
    np.testing.assert_allclose(s, np.linalg.inv(prec), rtol=1e-9)
    np.testing.assert_allclose(mu, np.linalg.solve(prec, lam @ ex.sum(axis=0)), rtol=1e-9, atol=1e-12)
    emm = s + np.outer(mu, mu)
    spread = exx.sum(axis=0) - np.outer(ex.sum(axis=0), mu) - np.outer(mu, ex.sum(axis=0)) + N * emm
    assert fit.q["Lam"]["df"] == pytest.approx(NU0 + N, rel=1e-12)
    np.testing.assert_allclose(np.linalg.inv(fit.q["Lam"]["scale"]), np.linalg.inv(W0) + spread, rtol=1e-9)


def test_the_elbo_equals_an_independent_numpy_evaluation(fit):
    ex, exx = _moments(fit)
    x = _data()
    mu, s = fit.q["mu"]["mean"], fit.q["mu"]["cov"]
    df, w = float(fit.q["Lam"]["df"]), fit.q["Lam"]["scale"]
    lam = df * w
    e_logdet = sum(special.digamma((df - i) / 2) for i in range(D)) + D * np.log(2) + np.linalg.slogdet(w)[1]
    emm = s + np.outer(mu, mu)
    log_prior_mu = (-D / 2 * np.log(2 * np.pi) + 0.5 * np.linalg.slogdet(P0)[1]
                    - 0.5 * np.trace(P0 @ emm))                                   # m0 = 0
    log_prior_lam = ((NU0 - D - 1) / 2 * e_logdet - 0.5 * np.trace(np.linalg.inv(W0) @ lam)
                     - NU0 * D / 2 * np.log(2) - NU0 / 2 * np.linalg.slogdet(W0)[1] - special.multigammaln(NU0 / 2, D))
    quad = np.einsum("de,ned->", lam, exx) - 2 * np.einsum("nd,de,e->", ex, lam, mu) + N * np.trace(lam @ emm)
    log_lik = N * (-D / 2 * np.log(2 * np.pi) + 0.5 * e_logdet) - 0.5 * quad
    entropy = stats.multivariate_normal(mu, s).entropy() + stats.wishart(df, w).entropy()
    q = fit.q["x"]
    for n in np.flatnonzero(np.isnan(x).any(axis=1)):
        m = np.isnan(x[n])
        entropy += stats.multivariate_normal(np.zeros(m.sum()), q["cov"][n][np.ix_(m, m)]).entropy()
    assert fit.elbo == pytest.approx(log_prior_mu + log_prior_lam + log_lik + entropy, rel=1e-10)
    assert np.all(np.diff(fit.elbo_trace) >= -1e-9 * abs(fit.elbo))


def test_imputations_list_the_missing_coordinates(fit):
    from ppvi.io.results import imputations
    x, q = _data(), fit.q["x"]
    imp = imputations(q)
    np.testing.assert_array_equal(imp["index"], np.argwhere(np.isnan(x)))
    np.testing.assert_array_equal(imp["mean"], q["mean"][np.isnan(x)])
    var = np.diagonal(q["cov"], axis1=1, axis2=2)[np.isnan(x)]
    np.testing.assert_allclose(imp["sd"], np.sqrt(var), rtol=1e-15)


@pytest.mark.long     # (600 damped sweeps, 20 s)
def test_the_damped_schedule_reaches_the_same_blocks(fit):
    """Damping mixes η of a partly observed row from the block's own (the engine's η of q there)."""
    r = ppvi.load(fit.provenance.model_path).fit({"x": _data()}, tol=0, max_iter=600, damping=0.5)
    assert r.provenance.schedule == "parallel"
    assert r.elbo == pytest.approx(fit.elbo, rel=1e-12)
    np.testing.assert_allclose(r.q["x"]["mean"], fit.q["x"]["mean"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(r.q["x"]["cov"], fit.q["x"]["cov"], rtol=0, atol=1e-12)


def test_a_row_over_no_plate_is_its_conditional_and_the_elbo_log_p_of_the_observed(tmp_path):
    """x ~ N(0, P0⁻¹) with x_1 missing: q(x_1) the conditional, and (no other latent) the ELBO is log p(x_0, x_2)
    exactly (failing first: the engine's clamp took the row's mask for a plate of rows)."""
    path = tmp_path / "one.ppvi"
    path.write_text("dim D\nconst m0[D] = 0.0\nconst P0[D, D] = [[2.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 1.5]]\n"
                    "data x[D] : missing\nx ~ MvNormal(m0, precision = P0)\n")
    prec = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 1.5]])
    x = np.array([1.0, np.nan, -2.0])
    r = ppvi.load(str(path)).fit({"x": x})
    o = np.array([True, False, True])
    assert r.q["x"]["mean"][1] == pytest.approx(-(prec[1, o] @ x[o]) / prec[1, 1], rel=1e-12)
    assert r.q["x"]["cov"][1, 1] == pytest.approx(1 / prec[1, 1], rel=1e-12)
    marginal = stats.multivariate_normal(np.zeros(2), np.linalg.inv(prec)[np.ix_(o, o)])
    assert r.elbo == pytest.approx(marginal.logpdf(x[o]), rel=1e-12)


@pytest.mark.long
def test_complete_rows_fit_the_plain_declaration_bit_for_bit(tmp_path):
    x = np.nan_to_num(_data(), nan=0.5)
    declared, plain = tmp_path / "declared.ppvi", tmp_path / "plain.ppvi"
    declared.write_text(MODEL)
    plain.write_text(MODEL.replace(" : missing", ""))
    a = ppvi.load(str(declared)).fit({"x": x}, tol=0, max_iter=20)
    b = ppvi.load(str(plain)).fit({"x": x}, tol=0, max_iter=20)
    assert "x" not in a.q
    assert a.elbo_trace == b.elbo_trace
    for name in ("mu", "Lam"):
        for p in a.q[name].params:
            np.testing.assert_array_equal(a.q[name][p], b.q[name][p])
