"""A Gaussian block (issue 14, leftover): `approximate z jointly` on a latent of Normal elements that is no
chain gives one full Gaussian q(z[n, :]) per point, 19.56 applied to the row as one variable.

- fixed loadings and noise: q(z_n) is the exact posterior N((I + WᵀΨW)⁻¹WᵀΨx_n, (I + WᵀΨW)⁻¹) written here,
  and the ELBO is log p(x) with x_n ~ N(0, WWᵀ + Ψ⁻¹) (PRML 12.2.4);
- Bayesian factor analysis with ARD (loadings and factors each a block per row, Gamma noise and ARD
  precisions): the generated kernels take the steps of the reference evaluator (tests/derive/reference.py)
  and, sweep by sweep, those of VB-FA written here from Ghahramani & Beal 2000 (Bishop 1999: q(z_n) and
  q(w_d) full Gaussians); the ELBO never decreases, and from the mean field's fixed point the blocks' first
  sweep raises it (their family holds the mean field's);
- variational EM (param W, psi) with the block is EM: it reaches scikit-learn's FactorAnalysis fit
  (implied covariance) in fewer sweeps than the mean field (--long).

CI runs the generated kernels as plain Python (programs.plain: nothing of this module is compiled); --long runs
them compiled too.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special
from scipy.stats import multivariate_normal

from ppvi.derive import derive
from ppvi.derive.numeric import Env
from ppvi.language import loads

from codegen.programs import factor_data, lockstep, plain, program      # noqa: E402  (tests/codegen/programs.py)
from derive import reference              # noqa: E402  (tests/derive/reference.py)

FA_FIXED = """\
dim N, D
dim M = 3
data x[N, D]
data W[D, M]
data psi[D]
for n in N:
    for m in M:
        z[n, m] ~ Normal(0, 1)
    for d in D:
        x[n, d] ~ Normal(sum(m in M: W[d, m] * z[n, m]), precision = psi[d])
approximate z jointly
"""

BFA = """\
dim N, D
dim M = 2
data x[N, D]
for m in M:
    alpha[m] ~ Gamma(1, 1)
for d in D:
    psi[d] ~ Gamma(1, 1)
    for m in M:
        W[d, m] ~ Normal(0, precision = alpha[m])
for n in N:
    for m in M:
        z[n, m] ~ Normal(0, 1)
    for d in D:
        x[n, d] ~ Normal(sum(m in M: W[d, m] * z[n, m]), precision = psi[d])
approximate z jointly
approximate W jointly
"""
BFA_MEAN_FIELD = BFA.replace("approximate z jointly\napproximate W jointly\n", "")
SWEEPS = 4


def _fixed_data(n: int = 40, d: int = 6, m: int = 3, seed: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    W, psi = rng.normal(size=(d, m)), rng.uniform(0.5, 4.0, size=d)
    x = rng.normal(size=(n, m)) @ W.T + rng.normal(size=(n, d)) / np.sqrt(psi)
    return {"x": x, "W": W, "psi": psi}


def _program(text: str, data: dict, compiled: bool, seed: int = 0):
    p = program(loads(text, "<model>"), data)
    if not compiled:
        p.module = plain(p.module)
    p.initialise(np.random.default_rng(seed))
    return p


def _check_exact(compiled: bool) -> None:
    data = _fixed_data()
    x, W, psi = data["x"], data["W"], data["psi"]
    p = _program(FA_FIXED, data, compiled)
    p.update("z")
    prec = np.eye(3) + W.T @ (psi[:, None] * W)
    cov = np.linalg.inv(prec)
    mean = x @ (psi[:, None] * W) @ cov
    assert p.plan.latents["z"].family == "MvNormal"
    np.testing.assert_allclose(p.state["q_z__mean"], mean, rtol=0, atol=1e-10)
    np.testing.assert_allclose(p.state["q_z__cov"], np.broadcast_to(cov, (len(x), 3, 3)), rtol=0, atol=1e-10)
    np.testing.assert_allclose(p.state["m_z__xxT"], cov + mean[:, :, None] * mean[:, None, :], rtol=0, atol=1e-10)
    evidence = multivariate_normal(np.zeros(len(psi)), W @ W.T + np.diag(1 / psi)).logpdf(x).sum()
    assert abs(p.elbo() - evidence) < 1e-9 * max(1.0, abs(evidence)), (p.elbo(), evidence)


def test_fixed_loadings_give_the_exact_posterior_per_point_and_the_log_evidence():
    _check_exact(compiled=False)


@pytest.mark.long
def test_fixed_loadings_compiled():
    _check_exact(compiled=True)


# ------------------------------------------------------------------ Bayesian FA with ARD, VB-FA
def _bfa_data() -> np.ndarray:
    return factor_data(n=30, d=5, m=2, noise=0.5, seed=4)["y"]


def _vbfa_step(var: str, s: dict, x: np.ndarray) -> None:
    """One update of VB-FA (Ghahramani & Beal 2000; Bishop 1999 with ARD), q(z_n) and q(w_d) full Gaussians:
    s holds E[z] [N, M], E[zzᵀ] [N, M, M], E[w] [D, M], E[wwᵀ] [D, M, M], E[ψ], E[log ψ] [D], E[α], E[log α] [M]."""
    N, D = x.shape
    M = s["z"].shape[1]
    if var == "alpha":            # q(α_m) = Gamma(1 + D/2, 1 + ½ Σ_d E[w_dm²])
        a, b = 1 + D / 2, 1 + 0.5 * np.einsum("dmm->m", s["wwT"])
        s["alpha"], s["log_alpha"] = a / b, special.digamma(a) - np.log(b)
    elif var == "psi":            # q(ψ_d) = Gamma(1 + N/2, 1 + ½ Σ_n E[(x_nd − w_dᵀz_n)²])
        sq = (x ** 2).sum(0) - 2 * np.einsum("nd,dm,nm->d", x, s["w"], s["z"]) \
            + np.einsum("dmk,mk->d", s["wwT"], s["zzT"].sum(0))
        a, b = 1 + N / 2, 1 + 0.5 * sq
        s["psi"], s["log_psi"] = a / b, special.digamma(a) - np.log(b)
    elif var == "W":              # S_d = (diag E[α] + E[ψ_d] Σ_n E[z_n z_nᵀ])⁻¹, m_d = S_d E[ψ_d] Σ_n x_nd E[z_n]
        S = np.linalg.inv(np.diag(s["alpha"])[None] + s["psi"][:, None, None] * s["zzT"].sum(0)[None])
        w = np.einsum("dmk,d,nd,nk->dm", S, s["psi"], x, s["z"])
        s["w"], s["wwT"], s["S_w"] = w, S + w[:, :, None] * w[:, None, :], S
    else:                         # Σ = (I + Σ_d E[ψ_d] E[w_d w_dᵀ])⁻¹, μ_n = Σ Σ_d E[ψ_d] E[w_d] x_nd
        S = np.linalg.inv(np.eye(M) + np.einsum("d,dmk->mk", s["psi"], s["wwT"]))
        z = x @ (s["psi"][:, None] * s["w"]) @ S
        s["z"], s["zzT"], s["S_z"] = z, S[None] + z[:, :, None] * z[:, None, :], S


def _state(p) -> dict:
    """The program's moments under VB-FA's names."""
    st = p.state
    return {"z": st["q_z__mean"].copy(), "zzT": st["m_z__xxT"].copy(), "w": st["q_W__mean"].copy(),
            "wwT": st["m_W__xxT"].copy(), "psi": st["m_psi__x"].copy(), "log_psi": st["m_psi__logx"].copy(),
            "alpha": st["m_alpha__x"].copy(), "log_alpha": st["m_alpha__logx"].copy()}


def _lockstep(compiled: bool):
    """The program, the reference evaluator and VB-FA side by side from the program's start: per update the
    largest gap of the reference's moments (programs.lockstep), per sweep both ELBOs and VB-FA's largest gap."""
    x = _bfa_data()
    model = loads(BFA, "<bfa>")
    p = _program(BFA, {"x": x}, compiled, seed=1)
    d = derive(model)
    env = Env({"x": x}, {}, {"N": x.shape[0], "D": x.shape[1], "M": 2})
    textbook = _state(p)
    textbook_gaps = []

    def update(var: str) -> list[float]:
        reference.update(d, var, env)
        _vbfa_step(var, textbook, x)
        got = _state(p)
        textbook_gaps.append(max(float(np.max(np.abs(got[k] - textbook[k]))) for k in got))
        return []
    gaps, elbos = lockstep(p, d, env, SWEEPS, update)
    return p, gaps, elbos, np.array(textbook_gaps)


@pytest.fixture(scope="module")
def bfa():
    return _lockstep(compiled=False)


def test_bayesian_fa_takes_the_steps_of_the_reference_and_of_vbfa(bfa):
    p, gaps, elbos, textbook = bfa
    assert p.plan.latents["W"].family == p.plan.latents["z"].family == "MvNormal"
    assert gaps.max() < 1e-10, gaps.max()
    assert textbook.max() < 1e-10, textbook.max()
    np.testing.assert_allclose(elbos[:, 0], elbos[:, 1], rtol=1e-12, atol=1e-10)
    assert np.all(np.diff(elbos[:, 0]) >= -1e-9 * np.abs(elbos[1:, 0])), elbos[:, 0]


@pytest.mark.long
def test_bayesian_fa_compiled_takes_the_steps_of_the_reference():
    p, gaps, elbos, textbook = _lockstep(compiled=True)
    assert gaps.max() < 1e-10 and textbook.max() < 1e-10, (gaps.max(), textbook.max())
    np.testing.assert_allclose(elbos[:, 0], elbos[:, 1], rtol=1e-12, atol=1e-10)


def _sweeps(p, count: int) -> list[float]:
    out = []
    for _ in range(count):
        for var in p.schedule():
            p.update(var)
        out.append(p.elbo())
    return out


def _from_mean_field(p, mf) -> None:
    """p's blocks set to the mean field's q (a diagonal covariance per row), every other q copied."""
    for k, v in mf.state.items():
        if isinstance(v, np.ndarray) and k.startswith(("q_", "m_")) and not k.startswith(("q_z", "q_W", "m_z", "m_W")):
            p.state[k][...] = v
    for var in ("z", "W"):
        mean, sd = mf.state[f"q_{var}__mean"], mf.state[f"q_{var}__sd"]
        cov = sd[..., :, None] ** 2 * np.eye(sd.shape[-1])
        p.state[f"q_{var}__mean"][...] = mean
        p.state[f"q_{var}__cov"][...] = cov
        p.state[f"m_{var}__xxT"][...] = cov + mean[..., :, None] * mean[..., None, :]
        p.state[f"h_{var}"][...] = mf.state[f"h_{var}"].sum(-1)
    for k in ("h_alpha", "h_psi"):
        p.state[k][...] = mf.state[k]
    p.stale = True


def test_from_the_mean_fields_state_the_blocks_raise_the_elbo_above_its_steps():
    """The blocks' family holds the mean field's: at the mean field's q (after 40 of its sweeps, still creeping
    up) the structured ELBO is the same number; from the same state the update of the block q(W) (the maximiser
    over the larger family) ends at least as high as the mean field's update of W's elements; the structured
    fit then never decreases."""
    x = _bfa_data()
    mf = _program(BFA_MEAN_FIELD, {"x": x}, compiled=False, seed=1)
    trace = _sweeps(mf, 40)
    p = _program(BFA, {"x": x}, compiled=False, seed=1)
    _from_mean_field(p, mf)
    start = p.elbo()
    assert abs(start - trace[-1]) < 1e-9 * abs(start), (start, trace[-1])
    for var in p.schedule()[:p.schedule().index("W") + 1]:
        p.update(var)
        mf.update(var)
    assert p.elbo() > mf.elbo() + 1e-6, (p.elbo(), mf.elbo())
    for var in p.schedule()[p.schedule().index("W") + 1:]:
        p.update(var)
    structured = np.array([start, p.elbo()] + _sweeps(p, 10))
    assert np.all(np.diff(structured) >= -1e-9 * np.abs(structured[1:])), np.diff(structured).min()
