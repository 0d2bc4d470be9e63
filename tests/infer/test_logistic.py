"""Bayesian logistic regression by Pólya-Gamma augmentation (issue 17, build 1).

w[d] ~ Normal(0, 1), y[n] ~ Bernoulli(sigmoid(Σ_d x[n, d] w[d])).  The checker adds ω[n] ~ PG(1, 0); 19.56
then gives a Normal q(w[d]) per coordinate and q(ω[n]) = PG(1, c_n), c_n² = E[ψ_n²].  Durante & Rigon (2019):
this mean field is the Jaakkola–Jordan bound.  Checked against

* the JJ updates of PRML §10.6 written here in NumPy, with q(w) factorised over coordinates as ppvi's is
  (the diagonal of S_N⁻¹ = S_0⁻¹ + 2 Σ_n λ(ξ_n) x_n x_nᵀ, each mean from the others, λ(ξ) = tanh(ξ/2)/(4ξ),
  ξ_n² = x_nᵀ(S_N + m mᵀ)x_n): the same fixed point, and the ELBO equal to the JJ bound there;
* log p(y) and the posterior mean by quadrature in 1-D and 2-D (the ELBO below it; the mean within a
  posterior sd).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import special

import ppvi
from conftest import plain_kernels

MODEL = """\
model logistic_regression
dim N, D
data x[N, D]
data y[N] : binary
for d in D:
    w[d] ~ Normal(0, 1)
for n in N:
    y[n] ~ Bernoulli(sigmoid(sum(d in D: x[n, d] * w[d])))
"""


def _data(d: int, n: int = 40, seed: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    w = np.array([1.5, -1.0, 0.5][:d])
    y = (rng.random(n) < special.expit(x @ w)).astype(np.int64)
    return {"x": x, "y": y}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("logistic") / "logistic.ppvi"
    path.write_text(MODEL)
    return ppvi.load(str(path))


@pytest.fixture(scope="module")
def fit2(model):
    with plain_kernels():       # (every fit here: 40 points, an inline model's kernels as plain Python)
        return model.fit(_data(2), tol=0, max_iter=400)


def jaakkola_jordan(x: np.ndarray, y: np.ndarray, sweeps: int = 2000) -> tuple[np.ndarray, np.ndarray, float]:
    """PRML §10.6 with a factorised q(w): coordinate updates of (m_d, s_d²), ξ re-optimised after each sweep.
    Returns m, s², and the bound L(ξ) = Σ_n [log σ(ξ_n) + (y_n − ½) x_nᵀm − ξ_n/2 − λ(ξ_n)(E[ψ_n²] − ξ_n²)]
    − KL(q(w) ‖ N(0, I))."""
    n, d = x.shape
    m, s2 = np.zeros(d), np.ones(d)
    lam = np.full(n, 1 / 8)                                      # λ(0)
    for _ in range(sweeps):
        for j in range(d):
            prec = 1.0 + 2 * np.sum(lam * x[:, j] ** 2)          # the diagonal of S_N⁻¹
            rest = x @ m - x[:, j] * m[j]
            m[j] = (np.sum((y - 0.5) * x[:, j]) - 2 * np.sum(lam * x[:, j] * rest)) / prec
            s2[j] = 1 / prec
        xi = np.sqrt((x @ m) ** 2 + (x ** 2) @ s2)               # ξ_n² = x_nᵀ(S_N + m mᵀ) x_n, S_N diagonal
        lam = np.tanh(xi / 2) / (4 * xi)
    e_psi2 = (x @ m) ** 2 + (x ** 2) @ s2
    bound = np.sum(np.log(special.expit(xi)) + (y - 0.5) * (x @ m) - xi / 2 - lam * (e_psi2 - xi ** 2))
    kl = 0.5 * np.sum(m ** 2 + s2 - 1 - np.log(s2))
    return m, s2, bound - kl


def test_the_fixed_point_is_the_jaakkola_jordan_update(fit2):
    data = _data(2)
    m, s2, _ = jaakkola_jordan(data["x"], data["y"])
    q = fit2.q["w"]
    assert q["mean"] == pytest.approx(m, rel=1e-10, abs=1e-12)
    assert q["sd"] == pytest.approx(np.sqrt(s2), rel=1e-10)
    # q(ω_n) = PG(1, ξ_n): c² = E[ψ²], and E[ω] = tanh(c/2)/(2c) = 2 λ(ξ)
    xi = np.sqrt((data["x"] @ m) ** 2 + (data["x"] ** 2) @ s2)
    weight = fit2.q["y_pg"]
    assert weight["b"] == pytest.approx(np.ones(len(xi)))
    assert weight["c"] == pytest.approx(xi, rel=1e-10)
    assert weight["mean"] == pytest.approx(np.tanh(xi / 2) / (2 * xi), rel=1e-10)


def test_the_elbo_is_the_jaakkola_jordan_bound_and_never_decreases(fit2):
    data = _data(2)
    *_, bound = jaakkola_jordan(data["x"], data["y"])
    assert fit2.elbo == pytest.approx(bound, rel=1e-10)
    trace = np.asarray(fit2.elbo_trace)
    assert np.all(np.diff(trace) >= -1e-12 * abs(trace[-1]))
    assert trace[-1] > trace[0] + 0.1                             # it did climb


def _quadrature(x: np.ndarray, y: np.ndarray, m: np.ndarray, sd: np.ndarray, points: int):
    """log p(y) = log ∫ N(w; 0, I) Π_n σ(±x_nᵀw) dw and E[w | y] on a grid of ±10 sd around q's mean."""
    axes = [np.linspace(mi - 10 * si, mi + 10 * si, points) for mi, si in zip(m, sd)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(m))
    psi = grid @ x.T
    log_joint = (-0.5 * np.sum(grid ** 2, 1) - 0.5 * len(m) * np.log(2 * np.pi)
                 + np.sum(y * psi - np.logaddexp(0, psi), 1))
    cell = np.prod([a[1] - a[0] for a in axes])
    post = np.exp(log_joint - log_joint.max())
    return special.logsumexp(log_joint) + np.log(cell), post @ grid / post.sum(), \
        np.sqrt(post @ grid ** 2 / post.sum() - (post @ grid / post.sum()) ** 2)


@pytest.mark.parametrize("d", [1, 2])
def test_the_elbo_is_below_the_evidence_and_the_mean_near_the_exact_one(model, fit2, d):
    data = _data(d)
    with plain_kernels():
        r = fit2 if d == 2 else model.fit(data, tol=1e-13, max_iter=2000)
    m, sd = r.q["w"]["mean"], r.q["w"]["sd"]
    log_evidence, exact_mean, exact_sd = _quadrature(data["x"], data["y"], m, sd, 2001 if d == 1 else 301)
    assert r.elbo < log_evidence
    assert log_evidence - r.elbo < 0.05 * len(data["y"])
    assert np.all(np.abs(m - exact_mean) < exact_sd)
    if d == 2:
        return     # (q(w) factorised over correlated coordinates: importance weights too heavy-tailed, k̂ ≈ 0.8)
    # importance sampling with q(w) as the proposal, ω integrated out (ppvi.simulate): the same log p(y)
    ev = r.evidence(4000, seed=1)
    assert ev.log_evidence == pytest.approx(log_evidence, abs=5 * ev.stderr + 1e-3)


def test_a_point_estimate_is_the_map_that_scikit_learn_finds(tmp_path):
    """`approximate w by point` with the weights' q: EM on the augmented model (Polson et al. 2013, §3.3),
    whose fixed point is the exact MAP, i.e. L2-penalised logistic regression with C = 1 (prior N(0, 1))."""
    from sklearn.linear_model import LogisticRegression

    data = _data(2)
    path = tmp_path / "map.ppvi"
    path.write_text(MODEL + "approximate w by point\n")
    with plain_kernels():
        r = ppvi.load(str(path)).fit(data, tol=1e-14, max_iter=5000)
    ref = LogisticRegression(C=1.0, fit_intercept=False, tol=1e-12, max_iter=10_000).fit(data["x"], data["y"])
    assert r.q["w"]["value"] == pytest.approx(ref.coef_[0], rel=1e-6)


def test_a_fit_restarts_from_its_own_result(model, fit2):
    """--init with a PolyaGamma q (its moments and entropy set from b, c: infer.warm): one more sweep stays."""
    with plain_kernels():
        r = model.fit(_data(2), init=fit2, tol=0, max_iter=1)
    assert r.elbo == pytest.approx(fit2.elbo, rel=1e-12)
    assert r.q["y_pg"]["c"] == pytest.approx(fit2.q["y_pg"]["c"], rel=1e-10)


def test_the_polya_gamma_weights_have_no_interval_and_the_summary_no_nan(model, fit2, tmp_path):
    """PG(b, c) has no quantile function at hand: its weights are left out of ``interval`` (as a Categorical's
    labels are) and the summary leaves their interval columns blank, never nan — a scalar weight included."""
    assert "y_pg" not in fit2.interval(0.9) and "w" in fit2.interval(0.9)
    fit2.save(str(tmp_path / "r.json"))
    doc = json.loads((tmp_path / "r.json").read_text())
    doc["q"]["y_pg"] = {k: (v[0] if isinstance(v, list) else v) for k, v in doc["q"]["y_pg"].items()}
    doc["axes"]["y_pg"] = []
    (tmp_path / "one.json").write_text(json.dumps(doc))
    one = ppvi.load_result(str(tmp_path / "one.json"))
    text = str(one.summary())
    line = text.splitlines()[text.splitlines().index(next(s for s in text.splitlines() if s.startswith("y_pg"))) + 1]
    assert "nan" not in text.lower() and len(line.split()) == 2, text       # mean and sd only
