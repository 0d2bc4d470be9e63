"""The group block (ModuleWriter.block_kernel): θ[d] and the z[t] with doc[t] = d iterated together, group by
group.  Checked against the updates written out in NumPy (Blei et al. 2003, eqs. 6–7 with smoothed topics),
not against the generated code's own pieces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import special

import ppvi
from ppvi.codegen.module import BLOCK_TOL

MODELS = Path(__file__).resolve().parents[2] / "models"


def _lda(iters: int = 2, permute: np.ndarray | None = None, extra_docs: int = 0, seed: int = 0):
    f = np.load(MODELS / "lda.npz")
    doc, word = f["doc"], f["word"]
    if permute is not None:
        doc, word = doc[permute], word[permute]
    m = ppvi.load(str(MODELS / "lda.ppvi"))
    dims = {"M": int(f["doc"].max()) + 1 + extra_docs, "V": int(f["word"].max()) + 1}
    return m.fit({"doc": doc, "word": word}, dims=dims, max_iter=iters, tol=0.0, seed=seed).fit.program


def _consts():
    text = (MODELS / "lda.ppvi").read_text()
    return {line.split()[1].split("[")[0]: float(line.split("=")[1].split("#")[0]) for line in text.splitlines()
            if line.startswith("const ")}


def _elogdir(a: np.ndarray) -> np.ndarray:
    return special.digamma(a) - special.digamma(a.sum(-1, keepdims=True))


def test_lda_has_a_block_and_the_other_examples_do_not():
    p = _lda(1)
    block = p.plan.block
    assert block.members == ("theta", "z") and block.by == "doc" and block.groups == "M"
    assert p.schedule() == ["phi", "theta, z"]
    assert p.schedule(damped=True) == ["phi", "theta", "z"]        # single updates when damped (globals first)
    summary = ppvi.load(str(MODELS / "lda.ppvi")).fit(max_iter=2).summary()
    assert summary.splitlines()[1] == "sweep: phi; (theta, z) for each value of doc, until settled"
    for stem in ("gmm", "gmm_1d", "dirichlet_categorical", "bernoulli_mixture"):
        m = ppvi.load(str(MODELS / f"{stem}.ppvi"))
        assert m.fit(max_iter=1).fit.program.plan.block is None, stem


def test_one_block_step_is_the_blei_ng_jordan_e_step_to_convergence():
    """After the step: each q(z[t]) is exactly the softmax of E log θ[doc[t]] + E log φ[·, word[t]]
    (its update was the last), and each q(θ[d]) is within the stopping tolerance of α + Σ_{doc[t]=d} r[t]."""
    p = _lda(2)
    p.update("phi")
    before = p.elbo()
    p.update("theta, z")
    assert p.elbo() >= before - 1e-9 * abs(before)
    f = np.load(MODELS / "lda.npz")
    doc, word = f["doc"], f["word"]
    c = _consts()
    gamma, lam, r = p.state["q_theta__alpha"], p.state["q_phi__alpha"], p.state["q_z__p"]
    logits = _elogdir(gamma)[doc] + _elogdir(lam)[:, word].T
    assert r == pytest.approx(np.exp(logits - special.logsumexp(logits, axis=1, keepdims=True)), abs=1e-12)
    M, K = gamma.shape
    counts = np.stack([np.bincount(doc, weights=r[:, k], minlength=M) for k in range(K)], 1)
    assert p.state["t_0"] == pytest.approx(counts, rel=1e-12, abs=1e-12)     # rows agree with the final q(z)
    target = c["alpha"] + counts
    change = np.abs(target - gamma).sum(1)
    assert np.all(change <= 20 * BLOCK_TOL * np.abs(target - 1).sum(1))
    # the stored entropies are those of the final q
    h_z = -(r * np.log(np.where(r > 0, r, 1))).sum(1)
    assert p.state["h_z"] == pytest.approx(h_z, rel=1e-10, abs=1e-12)
    a0 = gamma.sum(1)
    h_theta = (special.gammaln(gamma).sum(1) - special.gammaln(a0) + (a0 - K) * special.digamma(a0)
               - ((gamma - 1) * special.digamma(gamma)).sum(1))
    assert p.state["h_theta"] == pytest.approx(h_theta, rel=1e-10)


def test_the_order_of_the_tokens_does_not_matter():
    """The same corpus with its tokens shuffled: one block step from the same q gives the same q(θ)."""
    a = _lda(2)
    perm = np.random.default_rng(3).permutation(len(a.state["v_doc"]))
    b = _lda(1, permute=perm)       # (its q is replaced by a's below; max_iter ≥ 1)
    for k in a._mutable():
        b.state[k] = a.state[k][perm].copy() if k in ("q_z__p", "h_z", "l_z") else a.state[k].copy()
    b.relink()
    b.stale = True
    for p in (a, b):
        p.update("phi")
        p.update("theta, z")
    assert b.state["q_theta__alpha"] == pytest.approx(a.state["q_theta__alpha"], rel=1e-9)
    assert b.state["q_z__p"] == pytest.approx(a.state["q_z__p"][perm], abs=1e-9)
    assert b.elbo() == pytest.approx(a.elbo(), rel=1e-11)


def test_a_group_with_no_members_keeps_its_prior():
    p = _lda(3, extra_docs=2)
    gamma = p.state["q_theta__alpha"]
    assert gamma[-2:] == pytest.approx(np.full((2, gamma.shape[1]), _consts()["alpha"]))
    assert np.isfinite(p.elbo())


NOISE = """
model noise

dim N, G

data grp[N] : index(G)
data y[N]

for g in G:
    tau[g] ~ Gamma(1.0, 1.0)
for n in N:
    h[n] ~ Normal(0.0, sd = 1.0)
    y[n] ~ Normal(h[n], precision = tau[grp[n]])
"""


def test_a_block_with_a_continuous_local_latent(tmp_path):
    """Per-group noise precisions τ[g] with a Normal h[n] per row: the block's generic (unfactored) path.
    After one step q(h[n]) is exactly its update given the final q(τ) (PRML 10.1-style conjugate updates
    written out here), and q(τ[g]) is within the stopping tolerance of its update given the final q(h)."""
    rng = np.random.default_rng(7)
    G, N = 6, 300
    grp = rng.integers(0, G, N)
    y = rng.normal(0.0, 1.0, N) + rng.normal(0.0, 1.0 / np.sqrt(rng.gamma(2.0, 1.0, G)))[grp]
    path = tmp_path / "noise.ppvi"
    path.write_text(NOISE)
    p = ppvi.load(str(path)).fit({"grp": grp, "y": y}, max_iter=2, tol=0.0).fit.program
    assert p.plan.block.members == ("tau", "h")
    before = p.elbo()
    p.update("tau, h")
    assert p.elbo() >= before - 1e-9 * abs(before)
    shape, rate = p.state["q_tau__shape"], p.state["q_tau__rate"]
    et = (shape / rate)[grp]
    prec = 1.0 + et
    assert p.state["q_h__sd"] == pytest.approx(prec ** -0.5, rel=1e-12)
    assert p.state["q_h__mean"] == pytest.approx(et * y / prec, rel=1e-12, abs=1e-14)
    m, v = p.state["q_h__mean"], p.state["q_h__sd"] ** 2
    sq = np.bincount(grp, weights=(y - m) ** 2 + v, minlength=G)
    target_shape = 1.0 + 0.5 * np.bincount(grp, minlength=G)
    target_rate = 1.0 + 0.5 * sq
    assert shape == pytest.approx(target_shape, rel=1e-12)
    assert rate == pytest.approx(target_rate, rel=20 * BLOCK_TOL)


GROUPED = """
model grouped

dim N, G
dim K = 3

const alpha[K] = 1e-3

data grp[N] : index(G)
data x[N]

for g in G:
    theta[g] ~ Dirichlet(alpha)
for k in K:
    mu[k] ~ Normal(0.0, sd = 1000.0)
for n in N:
    z[n] ~ Categorical(theta[grp[n]])
    x[n] ~ Normal(mu[z[n]], sd = 1.0)
"""


def _grouped(tmp_path, x, grp):
    """GROUPED fitted two sweeps (one α for every test here: one model compiled, not one per α)."""
    path = tmp_path / "grouped.ppvi"
    path.write_text(GROUPED)
    return ppvi.load(str(path)).fit({"grp": grp, "x": x}, max_iter=2, tol=0.0).fit.program


def _grouped_e_step(p, x, grp):
    """softmax over k of E log θ[grp[n], k] + E log N(x[n] | μ_k, 1), the update PRML 10.46 with θ per group."""
    m, s = p.state["q_mu__mean"], p.state["q_mu__sd"]
    loglik = -0.5 * (x[:, None] ** 2 - 2 * x[:, None] * m + m ** 2 + s ** 2)
    logits = _elogdir(p.state["q_theta__alpha"])[grp] + loglik
    return np.exp(logits - special.logsumexp(logits, axis=1, keepdims=True))


def test_a_block_whose_local_terms_read_continuous_data(tmp_path):
    """Mixture weights per group, Gaussian components: z's η splits into E log θ[grp[n]] and a term that reads
    x[n] itself (no table by data value); after one step q(z) is the E-step written out here."""
    rng = np.random.default_rng(11)
    G, N = 8, 600
    grp = rng.integers(0, G, N)
    x = rng.normal(np.array([-4.0, 0.0, 5.0])[rng.integers(0, 3, N)], 1.0)
    p = _grouped(tmp_path, x, grp)
    assert p.plan.block.members == ("theta", "z")
    p.update("mu")
    before = p.elbo()
    p.update("theta, z")
    assert p.elbo() >= before - 1e-9 * abs(before)
    r = p.state["q_z__p"]
    assert r == pytest.approx(_grouped_e_step(p, x, grp), abs=1e-12)
    counts = np.stack([np.bincount(grp, weights=r[:, k], minlength=G) for k in range(3)], 1)
    assert p.state["t_0"] == pytest.approx(counts, rel=1e-12, abs=1e-12)
    target = 1e-3 + counts
    assert np.all(np.abs(target - p.state["q_theta__alpha"]).sum(1) <= 20 * BLOCK_TOL * np.abs(target - 1).sum(1))


def test_members_whose_factors_underflow_take_the_log_space_route(tmp_path):
    """Every member of group 0 starts in component 0 while its data sit on component 1, 2000 sd away, and
    α = 1e-3: E log θ[0, 1] ≈ ψ(1e-3) ≈ −1000, so e^(a) · e^(b) underflows for each of them on the first
    pass.  They take the log-space update; the block still ends at the exact E-step, with no NaN."""
    rng = np.random.default_rng(2)
    N = 200
    grp = np.zeros(N, dtype=np.int64)
    grp[N // 2:] = 1
    x = np.where(grp == 0, 1000.0, -1000.0) + rng.normal(size=N)
    p = _grouped(tmp_path, x, grp)
    onehot = np.zeros((N, 3))
    onehot[:, 0] = 1.0
    p.state["q_z__p"][...] = onehot
    p.state["q_mu__mean"][...] = [-1000.0, 1000.0, 0.0]
    p.state["q_mu__sd"][...] = 0.01
    p.state["m_mu__x2"][...] = p.state["q_mu__mean"] ** 2 + 1e-4
    p.stale = True
    p.update("theta, z")
    r = p.state["q_z__p"]
    assert np.all(np.isfinite(r)) and np.isfinite(p.elbo())
    assert r[grp == 0, 1] == pytest.approx(1.0)
    assert r == pytest.approx(_grouped_e_step(p, x, grp), abs=1e-12)
    target = 1e-3 + np.stack([np.bincount(grp, weights=r[:, k], minlength=2) for k in range(3)], 1)
    assert p.state["q_theta__alpha"] == pytest.approx(target, rel=20 * BLOCK_TOL)
