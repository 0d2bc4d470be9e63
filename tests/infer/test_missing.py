"""Missing data (issue 17, build 4): the missing entries of a ``data x : missing`` variable are latents with
the factor of the observed ones, fitted by 19.56 like any other.

Where the model is conjugate the imputed q is checked against mathematics written here, never against ppvi:
the conditional of a bivariate Normal with known covariance (and the mean-field fixed point where both
coordinates are missing), the predictive of a Bayesian linear regression q(y_miss) = N(x·E[w], 1/E[τ]) and
the textbook updates of q(w), q(τ) that read ⟨y⟩, ⟨y²⟩; a Bernoulli's and a partly labelled mixture's
missing labels; a mixture of Gaussians with missing features (models/iris_missing, a real file with empty
cells).  Complete data fit the model as declared: the same kernels as the plain declaration.

One model is compiled in CI: PARTS (independent parts sharing the plate n); models/iris_missing (the example
on a real file) and the complete-data fit beside the plain declaration are `long`.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

import ppvi
from conftest import MODELS, plain_kernels
from ppvi.errors import PPVIError

PARTS = """\
model missing_parts
dim N, D
dim K = 2
const m0[D] = 0.0
const P0[D, D] = 0.5 * eye(D)
const a0 = 2.0
const b0 = 1.0
const s1 = 1.5
const s2 = 1.0
const slope = 0.5
const shift = 1.0
const mu = 2.0
const pi[K] = [0.6, 0.4]
data X[N, D]
data y[N] : missing
data x1[N] : missing
data x2[N] : missing
data b[N] : binary missing
data c[N] : index(K) missing
data u[N] : missing
# a Bayesian linear regression with missing responses
w ~ MvNormal(m0, precision = P0)
tau ~ Gamma(a0, b0)
# a bivariate Normal with known mean and covariance, written as x1 then x2 | x1
# a Bernoulli, and a two-component mixture whose labels c are partly given and whose feature u has holes
rho ~ Beta(1.0, 1.0)
for k in K:
    nu[k] ~ Normal(0.0, sd = 5)
for n in N:
    y[n] ~ Normal(dot(X[n], w), precision = tau)
    x1[n] ~ Normal(mu, sd = s1)
    x2[n] ~ Normal(shift + slope * x1[n], sd = s2)
    b[n] ~ Bernoulli(rho)
    c[n] ~ Categorical(pi)
    u[n] ~ Normal(nu[c[n]], sd = 1)
"""
N, D = 40, 3
S1, S2, SLOPE, SHIFT, MU, P0, A0, B0 = 1.5, 1.0, 0.5, 1.0, 2.0, 0.5, 2.0, 1.0
PI = np.array([0.6, 0.4])


def _data(seed: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, D))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.4 * rng.normal(size=N)
    x1 = 2.0 + S1 * rng.normal(size=N)
    x2 = SHIFT + SLOPE * x1 + S2 * rng.normal(size=N)
    c = (rng.random(N) < 0.4).astype(float)
    u = np.where(c == 1, 3.0, -1.0) + rng.normal(size=N)
    b = (rng.random(N) < 0.3).astype(float)
    y[[2, 9, 30]] = np.nan
    x2[[0, 1]] = np.nan               # x1 seen, x2 missing
    x1[[2, 3]] = np.nan               # x2 seen, x1 missing
    x1[[4, 5]] = x2[[4, 5]] = np.nan  # both missing
    b[[6, 7, 8]] = np.nan
    c[10:30] = np.nan                 # half the labels unknown
    u[[12, 13, 35]] = np.nan          # a feature missing where the label is (35) and is not (12, 13)
    return {"X": X, "y": y, "x1": x1, "x2": x2, "b": b, "c": c, "u": u}


@pytest.fixture(scope="module", autouse=True)
def _plain(request):
    """CI's fits here as plain Python (conftest.plain_kernels): inline models on 40 points, nothing compiled for
    checks of the derivation (compiled = interpreted, missing entries among them: tests/codegen/test_differential.py,
    iris_missing); with --long compiled, as iris_missing's fit below."""
    if request.config.getoption("--long"):
        yield
        return
    with plain_kernels():
        yield


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    path = tmp_path_factory.mktemp("missing") / "parts.ppvi"
    path.write_text(PARTS)
    data = _data()
    # (tol 0: a fixed number of sweeps, past the point where the ELBO stops moving, so that the slowest mode —
    # μ and the imputed x1 it is read by — is at the fixed point to rounding, not to the ELBO's √tol)
    return ppvi.load(str(path)).fit(data, tol=0, max_iter=300), data


def _gamma_mean_log(q):
    return q["shape"] / q["rate"], special.digamma(q["shape"]) - np.log(q["rate"])


# ------------------------------------------------------------------ a linear regression's missing responses
def test_missing_responses_are_the_predictive_of_the_fit(parts):
    """q(y_n) = N(x_n·E[w], 1/E[τ]) for a missing y_n (19.56 with the Normal factor); observed y_n: a point mass."""
    r, data = parts
    miss = np.isnan(data["y"])
    q = r.q["y"]
    np.testing.assert_array_equal(q.missing, miss)
    e_tau = r.q["tau"]["shape"] / r.q["tau"]["rate"]
    np.testing.assert_allclose(q["mean"][miss], data["X"][miss] @ r.q["w"]["mean"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(q["sd"][miss], np.full(miss.sum(), 1 / np.sqrt(e_tau)), rtol=1e-10)
    np.testing.assert_array_equal(q["mean"][~miss], data["y"][~miss])
    np.testing.assert_array_equal(q["sd"][~miss], 0.0)


def test_regression_globals_are_at_the_textbook_fixed_point(parts):
    """q(w) = N(m, S): S⁻¹ = P0 + E[τ] XᵀX, m = S E[τ] Xᵀ⟨y⟩; q(τ) = Gamma(a0 + N/2, b0 + ½ Σ_n E[(y_n − x_nᵀw)²])
    with ⟨y⟩, ⟨y²⟩ of the imputed entries (PRML 10.3 with a Gamma noise precision)."""
    r, data = parts
    X, q = data["X"], r.q["y"]
    ey, ey2 = q["mean"], q["mean"] ** 2 + q["sd"] ** 2
    e_tau = r.q["tau"]["shape"] / r.q["tau"]["rate"]
    S = np.linalg.inv(P0 * np.eye(D) + e_tau * X.T @ X)
    m = S @ (e_tau * X.T @ ey)
    np.testing.assert_allclose(r.q["w"]["cov"], S, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(r.q["w"]["mean"], m, rtol=1e-9, atol=1e-12)
    ewwT = S + np.outer(m, m)
    residual = ey2 - 2 * ey * (X @ m) + np.einsum("nd,de,ne->n", X, ewwT, X)
    assert r.q["tau"]["shape"] == pytest.approx(A0 + N / 2, rel=1e-12)
    assert r.q["tau"]["rate"] == pytest.approx(B0 + 0.5 * residual.sum(), rel=1e-9)


# ------------------------------------------------------------------ a bivariate Normal
def test_one_coordinate_missing_gives_the_exact_conditional(parts):
    """(x1, x2) ~ N(m, Σ) with m = (μ, shift + slope μ), Σ = [[s1², slope s1²], [slope s1², slope² s1² + s2²]]:
    E[x_i | x_j] = m_i + Σ_ij/Σ_jj (x_j − m_j), Var = Σ_ii − Σ_ij²/Σ_jj."""
    r, data = parts
    m = np.array([MU, SHIFT + SLOPE * MU])
    cov = np.array([[S1**2, SLOPE * S1**2], [SLOPE * S1**2, SLOPE**2 * S1**2 + S2**2]])
    x1, x2 = data["x1"], data["x2"]
    only2 = np.isnan(x2) & ~np.isnan(x1)
    only1 = np.isnan(x1) & ~np.isnan(x2)
    assert only1.sum() == only2.sum() == 2
    np.testing.assert_allclose(r.q["x2"]["mean"][only2], m[1] + cov[1, 0] / cov[0, 0] * (x1[only2] - m[0]),
                               rtol=1e-10)
    np.testing.assert_allclose(r.q["x2"]["sd"][only2], np.sqrt(cov[1, 1] - cov[1, 0] ** 2 / cov[0, 0]), rtol=1e-10)
    np.testing.assert_allclose(r.q["x1"]["mean"][only1], m[0] + cov[0, 1] / cov[1, 1] * (x2[only1] - m[1]),
                               rtol=1e-10)
    np.testing.assert_allclose(r.q["x1"]["sd"][only1], np.sqrt(cov[0, 0] - cov[0, 1] ** 2 / cov[1, 1]), rtol=1e-10)


def test_both_coordinates_missing_give_the_mean_field_fixed_point(parts):
    """q(x1) q(x2) for a row with both missing: the means are the joint's, E[x1] = μ, E[x2] = shift + slope μ;
    the sds are the conditionals' (1/√(1/s1² + slope²/s2²) and s2), smaller than the marginals — what mean
    field gives for a correlated pair (Bishop, PRML 10.1.2)."""
    r, data = parts
    both = np.isnan(data["x1"]) & np.isnan(data["x2"])
    np.testing.assert_allclose(r.q["x1"]["mean"][both], MU, rtol=1e-12)
    np.testing.assert_allclose(r.q["x2"]["mean"][both], SHIFT + SLOPE * MU, rtol=1e-12)
    np.testing.assert_allclose(r.q["x1"]["sd"][both], 1 / np.sqrt(1 / S1**2 + SLOPE**2 / S2**2), rtol=1e-12)
    np.testing.assert_allclose(r.q["x2"]["sd"][both], S2, rtol=1e-12)


# ------------------------------------------------------------------ discrete missing entries
def test_missing_bernoulli(parts):
    """q(b_n) = Bernoulli(σ(E[log ρ] − E[log(1 − ρ)])); q(ρ) = Beta(1 + Σ⟨b⟩, 1 + Σ(1 − ⟨b⟩)) counts the imputed."""
    r, data = parts
    a, bb = r.q["rho"]["a"], r.q["rho"]["b"]
    p = special.expit(special.digamma(a) - special.digamma(bb))
    miss = np.isnan(data["b"])
    np.testing.assert_allclose(r.q["b"]["p"][miss], p, rtol=1e-12)
    np.testing.assert_array_equal(r.q["b"]["p"][~miss], data["b"][~miss])
    assert a == pytest.approx(1 + data["b"][~miss].sum() + miss.sum() * p, rel=1e-12)
    assert bb == pytest.approx(1 + (1 - data["b"][~miss]).sum() + miss.sum() * (1 - p), rel=1e-12)


def test_mixture_with_missing_labels_and_features(parts):
    """A two-component mixture u_n ~ N(ν_{c_n}, 1): a missing feature's q is N(Σ_k r_nk E[ν_k], 1) — the
    responsibility-weighted mean — and a missing label's r_nk ∝ π_k exp(−½ E[(u_n − ν_k)²]) reads the imputed
    feature's ⟨u⟩ and ⟨u²⟩; a given label is one-hot; q(ν_k) = N(Σ_n r_nk ⟨u_n⟩ / (1/25 + Σ_n r_nk), …)."""
    r, data = parts
    nu, sd = r.q["nu"]["mean"], r.q["nu"]["sd"]
    p = r.q["c"]["p"]
    gone = np.isnan(data["u"])
    np.testing.assert_array_equal(r.q["u"].missing, gone)
    np.testing.assert_allclose(r.q["u"]["mean"][gone], (p @ nu)[gone], rtol=1e-12)
    np.testing.assert_allclose(r.q["u"]["sd"][gone], 1.0, rtol=1e-12)
    eu, eu2 = r.q["u"]["mean"], r.q["u"]["mean"] ** 2 + r.q["u"]["sd"] ** 2
    log_r = np.log(PI) - 0.5 * (eu2[:, None] - 2 * eu[:, None] * nu + nu**2 + sd**2)
    want = np.exp(log_r - special.logsumexp(log_r, axis=1, keepdims=True))
    miss = np.isnan(data["c"])
    assert (miss & gone).sum() == 2 and (~miss & gone).sum() == 1
    np.testing.assert_allclose(p[miss], want[miss], rtol=1e-10)
    np.testing.assert_array_equal(p[~miss], np.eye(2)[data["c"][~miss].astype(int)])
    prec = 1 / 25 + p.sum(axis=0)
    np.testing.assert_allclose(sd, 1 / np.sqrt(prec), rtol=1e-12)
    np.testing.assert_allclose(nu, (p * eu[:, None]).sum(axis=0) / prec, rtol=1e-10)


def test_the_fit_is_a_bound_and_the_result_reports_imputations(parts, tmp_path):
    r, data = parts
    assert np.all(np.diff(r.elbo_trace) >= -1e-9 * np.abs(r.elbo_trace[1:]))
    path = tmp_path / "r.json"
    r.save(str(path))
    back = ppvi.load_result(str(path))
    np.testing.assert_array_equal(back.q["x1"].missing, np.isnan(data["x1"]))
    import json

    table = json.loads(path.read_text())["imputations"]["y"]
    assert table["index"] == [[2], [9], [30]]
    np.testing.assert_allclose(table["mean"], r.q["y"]["mean"][[2, 9, 30]])
    text = str(r.summary(width=100))
    block = text[text.index("\ny  Normal"):].split("\n")[1:5]
    assert block[0] == "y  Normal  [N=40]  imputed: 3 missing of 40 entries"
    assert [line.split()[0] for line in block[1:]] == ["[2]", "[9]", "[30]"]
    assert np.isnan(r.data["y"][2]) and r.data["y"][3] == data["y"][3]


def test_predict_imputes_missing_entries_of_new_data(parts):
    r, data = parts
    new = {k: v[:12].copy() for k, v in data.items()}
    new["y"][[0, 4]] = np.nan         # (and the other variables' missing entries among the first 12 rows)
    p = r.predict(new)
    e_tau = r.q["tau"]["shape"] / r.q["tau"]["rate"]
    np.testing.assert_allclose(p.q["y"]["mean"][[0, 4]], new["X"][[0, 4]] @ r.q["w"]["mean"], rtol=1e-10)
    np.testing.assert_allclose(p.q["y"]["sd"][[0, 4]], 1 / np.sqrt(e_tau), rtol=1e-10)


def test_evidence_of_data_with_holes_is_refused_at_the_declaration(parts):
    r, _ = parts
    with pytest.raises(PPVIError) as e:
        r.evidence(10)
    assert e.value.format().splitlines()[:3] == [
        f"{r.provenance.model_path}:15:13: error: `y` has missing entries: the evidence of data with holes (log p "
        "of the observed entries alone) is not computed yet", "    data y[N] : missing", "                ^~~~~~~"]


@pytest.mark.long
def test_the_parallel_schedule_reaches_the_same_fixed_point(parts):
    """--damping: η of the observed entries (a point mass: ±∞) is never formed with a warning, never read."""
    import warnings

    r, data = parts
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        damped = ppvi.load(r.provenance.model_path).fit(data, tol=0, max_iter=300, damping=0.7)
    for name in ("y", "x1", "x2", "u"):
        np.testing.assert_allclose(damped.q[name]["mean"], r.q[name]["mean"], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(damped.q["c"]["p"], r.q["c"]["p"], atol=1e-9)


# ------------------------------------------------------------------ complete data: the model as declared
def test_complete_data_use_the_plain_declarations_kernels():
    """No missing entry: the same generated source as the model without `missing` (so the same bits)."""
    from ppvi.codegen.cache import fixed_sizes
    from ppvi.codegen.module import generate
    from ppvi.derive import derive
    from ppvi.language import loads
    from ppvi.language.missing import imputing

    declared = loads(PARTS, "parts.ppvi")
    plain = loads(PARTS.replace(" : binary missing", " : binary").replace(" : index(K) missing", " : index(K)")
                  .replace(" : missing", ""), "parts.ppvi")
    assert not any(v.missing for v in plain.variables.values())
    assert imputing(declared, ()) is declared
    assert generate(derive(declared), fixed_sizes(declared)) == generate(derive(plain), fixed_sizes(plain))


@pytest.mark.long
def test_complete_data_fit_bit_identical_to_the_plain_declaration(tmp_path):
    data = {k: np.nan_to_num(v) for k, v in _data().items()}
    out = []
    for text in (PARTS, PARTS.replace(" : binary missing", " : binary").replace(" : index(K) missing", " : index(K)")
                 .replace(" : missing", "")):
        path = tmp_path / f"m{len(out)}.ppvi"
        path.write_text(text)
        out.append(ppvi.load(str(path)).fit(data, tol=1e-10))
    assert out[0].elbo_trace == out[1].elbo_trace
    for name, q in out[1].q.items():
        assert out[0].q[name].missing is None
        for p, v in q.params.items():
            np.testing.assert_array_equal(out[0].q[name].params[p], v)


# ------------------------------------------------------------------ a mixture with missing features (a real file)
@pytest.fixture(scope="module")
def iris(request):
    if not request.config.getoption("--long"):
        pytest.skip("slow: run with --long")
    return ppvi.load(str(MODELS / "iris_missing.ppvi")).fit(None, tol=0, max_iter=1500, seed=0)   # (tol 0: as above)


@pytest.mark.long
def test_mixture_imputes_the_responsibility_weighted_mean(iris):
    """q(x_nd) for a missing cell: η[x] = Σ_k r_nk E[τ_kd] E[μ_kd], η[x²] = −½ Σ_k r_nk E[τ_kd] (19.56), so
    E[x_nd] = Σ_k r_nk E[τ_kd] E[μ_kd] / Σ_k r_nk E[τ_kd] and sd = (Σ_k r_nk E[τ_kd])^−½; and r_nk reads the
    imputed cell's ⟨x⟩ and ⟨x²⟩ (PRML 10.46 with a diagonal precision)."""
    import pandas as pd

    r = iris
    x = pd.read_csv(MODELS / "iris_missing.csv").to_numpy()
    miss = np.isnan(x)
    assert miss.sum() == 60
    q = r.q["x"]
    np.testing.assert_array_equal(q.missing, miss)
    resp = r.q["z"]["p"]                                          # [N, K]
    e_tau, e_log_tau = _gamma_mean_log(r.q["tau"])                # [K, D]
    e_mu, var_mu = r.q["mu"]["mean"], r.q["mu"]["sd"] ** 2
    weight = resp @ e_tau                                          # Σ_k r_nk E[τ_kd]
    np.testing.assert_allclose(q["mean"][miss], ((resp @ (e_tau * e_mu)) / weight)[miss], rtol=1e-9)
    np.testing.assert_allclose(q["sd"][miss], (1 / np.sqrt(weight))[miss], rtol=1e-9)
    ex = q["mean"]
    ex2 = q["mean"] ** 2 + q["sd"] ** 2
    alpha = r.q["pi"]["alpha"]
    e_log_pi = special.digamma(alpha) - special.digamma(alpha.sum())
    quad = ex2[:, None, :] - 2 * ex[:, None, :] * e_mu + e_mu**2 + var_mu        # E[(x − μ_k)²], [N, K, D]
    log_r = e_log_pi + 0.5 * (e_log_tau - np.log(2 * np.pi) - e_tau * quad).sum(axis=2)
    np.testing.assert_allclose(resp, np.exp(log_r - special.logsumexp(log_r, axis=1, keepdims=True)), atol=1e-9)


@pytest.mark.long
def test_compiled_imputation_equals_the_reference_evaluator(iris):
    """The compiled q(x) of every missing cell equals the derived η read by ppvi.derive.numeric at the fit's
    moments (to 1e-10)."""
    import sympy as sp

    from ppvi.derive import derive
    from ppvi.derive.numeric import Env, evaluate
    from ppvi.language import load
    from ppvi.language.missing import imputing

    r = iris
    d = derive(imputing(load(str(MODELS / "iris_missing.ppvi"))))
    state = r.fit.program.state
    moments = {}
    for (var, stat), sym in d.syms.moments.items():
        name = f"m_{var}__{stat}"
        if name in state:
            moments[(var, stat)] = state[name]
    sizes = r.fit.program.sizes
    env = Env({"alpha0": np.ones(3)}, moments, sizes)
    qx = d.q["x"]
    n, dd = qx.index
    for (i, j) in np.argwhere(r.q["x"].missing)[:10]:
        eta = {s: evaluate(e, env, {n: int(i), dd: int(j)}) for s, e in qx.natural.items()}
        assert r.q["x"]["mean"][i, j] == pytest.approx(-eta["x"] / (2 * eta["x2"]), rel=1e-10)
        assert r.q["x"]["sd"][i, j] == pytest.approx(1 / np.sqrt(-2 * eta["x2"]), rel=1e-10)
    assert isinstance(qx.natural["x"], sp.Basic)
