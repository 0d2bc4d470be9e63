"""Energy terms (`factor`) and latents without priors: mean field from log p̃ against mathematics.

Conventions written down once.  Ising spins σ ∈ {−1, +1} are modelled as binary s with σ = 2s − 1
(models/ising.ppvi):  log p̃(σ) = Σ_i h_i σ_i + ½ Σ_ij J_ij σ_i σ_j  with  h = field · y,  J = coupling · A.
Under a factorised q with m_i = E[σ_i] = 2 q(s_i = 1) − 1, E[σ_i σ_j] = m_i m_j (i ≠ j), and 19.56 gives
the textbook mean-field equations  m_i = tanh(h_i + Σ_j J_ij m_j)  (J with zero diagonal).
RBM (models/rbm.ppvi): log p̃(v, h) = aᵀv + bᵀh + vᵀWh on {0, 1}; the fixed point is
μ_v = σ(a + W μ_h), μ_h = σ(b + Wᵀ μ_v).  In both, ELBO = E_q[log p̃] + H[q] ≤ log Z (Z by enumeration).
A real latent with a quadratic energy bᵀx − ½ xᵀPx has the exact log Z = ½ bᵀP⁻¹b + (n/2) log 2π − ½ log|P|
and the mean-field fixed point E[x] = P⁻¹b, Var[x_i] = 1/P_ii (PRML 10.1.2).
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from conftest import MODELS, run_cli
from ppvi.api import Model
from ppvi.errors import PPVIError
from ppvi.language import loads

GAUSS = """\
dim N
data P[N, N]
data b[N]
latent x[N] : real
for i in N:
    factor b[i] * x[i]
    for j in N:
        factor -0.5 * P[i, j] * x[i] * x[j]
"""


@pytest.fixture(scope="module")
def ising():
    return Model.load(str(MODELS / "ising.ppvi"))


@pytest.fixture(scope="module")
def rbm():
    return Model.load(str(MODELS / "rbm.ppvi"))


def grid(side: int, coupling: float) -> np.ndarray:
    """J of a side × side grid with nearest-neighbour coupling (symmetric, zero diagonal)."""
    J = np.zeros((side * side, side * side))
    for r, c in itertools.product(range(side), repeat=2):
        i = r * side + c
        if c + 1 < side:
            J[i, i + 1] = J[i + 1, i] = coupling
        if r + 1 < side:
            J[i, i + side] = J[i + side, i] = coupling
    return J


def fit_ising(model: Model, J: np.ndarray, h: np.ndarray, **kw):
    # models/ising.ppvi: J = coupling · A with coupling = 0.5, h = field · y with field = 1
    return model.fit({"A": J / 0.5, "y": h}, tol=0, max_iter=kw.pop("max_iter", 400), **kw)


def log_z_ising(J: np.ndarray, h: np.ndarray) -> float:
    S = np.array(list(itertools.product([-1.0, 1.0], repeat=len(h))))
    return float(np.logaddexp.reduce(S @ h + 0.5 * np.einsum("si,ij,sj->s", S, J, S)))


def entropy(p: np.ndarray) -> float:
    return float(-(p * np.log(p) + (1 - p) * np.log1p(-p)).sum())


def assert_monotone(trace) -> None:
    t = np.asarray(trace)
    assert np.all(np.diff(t) >= -1e-12 * np.abs(t[1:])), np.diff(t).min()


def test_ising_fixed_point_is_the_textbook_tanh_solution(ising):
    """Weak coupling (Σ_j |J_ij| ≤ 0.8 < 1): the tanh map is a contraction, so its one fixed point, found here by
    plain iteration, is the one mean field must reach."""
    rng = np.random.default_rng(3)
    J, h = grid(3, 0.2), rng.normal(0, 0.5, 9)
    m = np.zeros(9)
    for _ in range(2000):
        m = np.tanh(h + J @ m)
    r = fit_ising(ising, J, h)
    got = 2 * np.asarray(r.q["s"]["p"]) - 1
    np.testing.assert_allclose(got, m, atol=1e-10)
    p = (1 + m) / 2
    elbo = h @ m + 0.5 * m @ J @ m + entropy(p)        # E_q[log p̃] + H[q] in spins (J_ii = 0)
    assert r.elbo == pytest.approx(elbo, abs=1e-9)
    assert r.elbo <= log_z_ising(J, h)
    assert_monotone(r.elbo_trace)


def test_ising_strong_coupling_satisfies_the_mean_field_equations_below_log_z(ising):
    rng = np.random.default_rng(4)
    J, h = grid(3, 0.8) * rng.uniform(0.5, 1.5, (9, 9)), rng.normal(0, 0.3, 9)
    J = (J + J.T) / 2
    for seed in (0, 1):
        r = fit_ising(ising, J, h, seed=seed)
        m = 2 * np.asarray(r.q["s"]["p"]) - 1
        np.testing.assert_allclose(m, np.tanh(h + J @ m), atol=1e-10)
        assert r.elbo <= log_z_ising(J, h) + 1e-12
        assert_monotone(r.elbo_trace)


def test_rbm_fixed_point_and_bound(rbm):
    rng = np.random.default_rng(5)
    W, a, b = rng.normal(0, 1.5, (3, 4)), rng.normal(0, 1, 3), rng.normal(0, 1, 4)
    r = rbm.fit({"W": W, "a": a, "b": b}, tol=0, max_iter=300)
    mv, mh = np.asarray(r.q["v"]["p"]), np.asarray(r.q["h"]["p"])
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    np.testing.assert_allclose(mv, sig(a + W @ mh), atol=1e-10)
    np.testing.assert_allclose(mh, sig(b + W.T @ mv), atol=1e-10)
    elbo = a @ mv + b @ mh + mv @ W @ mh + entropy(mv) + entropy(mh)
    assert r.elbo == pytest.approx(elbo, abs=1e-9)
    states = [(np.array(v), np.array(hh)) for v in itertools.product([0, 1], repeat=3)
              for hh in itertools.product([0, 1], repeat=4)]
    log_z = np.logaddexp.reduce([a @ v + b @ hh + v @ W @ hh for v, hh in states])
    assert r.elbo <= log_z
    assert_monotone(r.elbo_trace)


def test_gaussian_energy_reaches_the_exact_mean_and_bounds_log_z():
    rng = np.random.default_rng(6)
    n = 4
    A = rng.normal(size=(n, n))
    P, b = A @ A.T + n * np.eye(n), rng.normal(size=n)
    model = Model(loads(GAUSS, "gauss.ppvi"))
    r = model.fit({"P": P, "b": b}, tol=0, max_iter=300)
    np.testing.assert_allclose(np.asarray(r.q["x"]["mean"]), np.linalg.solve(P, b), atol=1e-10)
    np.testing.assert_allclose(np.asarray(r.q["x"]["sd"]), 1 / np.sqrt(np.diag(P)), rtol=1e-12)
    log_z = 0.5 * b @ np.linalg.solve(P, b) + n / 2 * np.log(2 * np.pi) - 0.5 * np.linalg.slogdet(P)[1]
    assert r.elbo <= log_z
    assert_monotone(r.elbo_trace)
    bad = P.copy()
    bad[0, 0] = -1.0                  # the coefficient of x₀² is +½: exp(energy) does not fall off
    with pytest.raises(PPVIError, match=r"q\(`x`\) became improper .* coefficient of `x`²") as e:
        model.fit({"P": bad, "b": b}, tol=0, max_iter=10)
    assert "gauss.ppvi:4:8:" in str(e.value)


def test_results_say_the_elbo_bounds_log_z(rbm, capsys, tmp_path):
    out = tmp_path / "r.json"
    code, text, err = run_cli(["run", MODELS / "rbm.ppvi", "--out", out], capsys)
    assert code == 0, err
    assert "lower bound on log Z, not on log p(v)" in text
    doc = json.loads(out.read_text())
    assert doc["objective"] == "elbo_log_z" and doc["bound"] == "log Z" and "log Z" in doc["note"]
    from ppvi import load_result

    again = load_result(str(out))
    assert again.objective == "elbo_log_z" and "log Z" in again.summary()
    with pytest.raises(PPVIError, match="energy terms: p̃ is known only up to its normaliser Z"):
        again.evidence(10)
    code, _, err = run_cli(["evidence", MODELS / "rbm.ppvi", "--given", out, "--samples", "10"], capsys)
    assert code == 2 and "normaliser Z" in err and "Traceback" not in err
    with pytest.raises(PPVIError, match="no ancestral sampler"):
        rbm.sample_prior(3, data=str(MODELS / "rbm.json"))
