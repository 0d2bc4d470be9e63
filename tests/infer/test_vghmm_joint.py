"""The variational Gaussian HMM with hmmlearn's family (issue 18): ``approximate mu, lam jointly`` keeps
q(μₖ, λₖ) one Normal–Gamma per state, as hmmlearn's ``VariationalGaussianHMM`` does (1-D, covariance "diag":
one Wishart in one dimension, Gamma(ν/2, s/2), per state), so from hmmlearn's start ppvi's derived updates take
hmmlearn's steps: the ELBO sweep by sweep (hmmlearn's bound leaves out −½ log 2π per point), then q(π), q(A),
q(μ, λ) and the state marginals, to 1e-8 (docs/derivation.md, "A Normal–Gamma pair").

The reference evaluator (tests/derive/reference.py, its own pair step) runs ppvi's derived expressions, as in
tests/infer/test_vghmm.py, whose helpers (the sample, hmmlearn's start and fit) this reuses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from derive import reference   # noqa: E402  (tests/derive/reference.py)
from infer.test_vghmm import K, LOG_2PI, hmmlearn_fit, hmmlearn_posteriors, hmmlearn_start, sample, set_q
from ppvi.derive import derive
from ppvi.derive.chain import update_block
from ppvi.derive.numeric import Env
from ppvi.language import load

VGHMM_JOINT = Path(__file__).resolve().parents[2] / "models" / "sequences" / "vghmm_joint.ppvi"


def cavi(d, env: Env, sweeps: int) -> np.ndarray:
    """hmmlearn's order: q(z) by forward–backward (the ELBO read there), then q(π), q(A) and the pair from it."""
    trace = []
    for _ in range(sweeps):
        update_block(d.blocks["z"], env)
        trace.append(reference.elbo(d, env))
        reference.update(d, "pi", env)
        reference.update(d, "A", env)
        reference.update_pair(d, "mu", env)
    update_block(d.blocks["z"], env)
    return np.array(trace)


@pytest.fixture(scope="module", params=[6, pytest.param(60, marks=pytest.mark.long)], ids=["few", "converged"])
def both(request):
    """ppvi's derived updates and hmmlearn's VB-EM, the same number of sweeps from hmmlearn's start (its k-means
    means, random Dirichlet draws, k-means counts as dofs) with vghmm_joint.ppvi's priors."""
    x = sample(0)
    S, T = x.shape
    model = load(str(VGHMM_JOINT))
    assert model.pairs == {"mu": "lam"}
    prior = {c.name: float(c.value.value) for c in model.of_kind("const")}
    ref = hmmlearn_start(x)
    shape, rate = ref.dof_posterior_ / 2, ref.scale_posterior_[:, 0] / 2
    d = derive(model)
    env = Env({"x": x, **prior, "a0": np.full(K, prior["a0"])}, {}, {"S": S, "T": T, "K": K})
    set_q(env, "pi", "Dirichlet", alpha=ref.startprob_posterior_)
    set_q(env, "A", "Dirichlet", alpha=ref.transmat_posterior_)
    set_q(env, "lam", "Gamma", shape=shape, rate=rate)
    # q(μₖ | λₖ) = N(m, (βλₖ)⁻¹) kept as mean m and sd (βE[λₖ])^-½ (docs/derivation.md, "A Normal–Gamma pair")
    set_q(env, "mu", "Normal", mean=ref.means_posterior_[:, 0], sd=(ref.beta_posterior_ * shape / rate) ** -0.5)
    ours = cavi(d, env, request.param)
    theirs = hmmlearn_fit(ref, x, request.param)
    return x, env, ours, theirs, ref


def test_elbo_sweep_by_sweep_is_hmmlearns(both):
    x, _, ours, theirs, _ = both
    np.testing.assert_allclose(ours, theirs - 0.5 * LOG_2PI * x.size, rtol=0, atol=1e-8)
    assert np.all(np.diff(ours) >= -1e-9 * np.abs(ours[1:]))


def test_the_same_q_after_the_same_sweeps(both):
    """q(π), q(A), q(μ, λ) after hmmlearn's M-step and q(z) after its E-step (--long: at the fixed point)."""
    x, env, _, _, ref = both
    np.testing.assert_allclose(env.arrays["alpha(pi)"], ref.startprob_posterior_, rtol=1e-8)
    np.testing.assert_allclose(env.arrays["alpha(A)"], ref.transmat_posterior_, rtol=1e-8)
    np.testing.assert_allclose(env.arrays["mean(mu)"], ref.means_posterior_[:, 0], rtol=0, atol=1e-8)
    shape, rate = env.arrays["shape(lam)"], env.arrays["rate(lam)"]
    np.testing.assert_allclose(shape, ref.dof_posterior_ / 2, rtol=1e-8)
    np.testing.assert_allclose(rate, ref.scale_posterior_[:, 0] / 2, rtol=1e-8)
    np.testing.assert_allclose(env.arrays["sd(mu)"] ** -2 * rate / shape, ref.beta_posterior_, rtol=1e-8)
    np.testing.assert_allclose(env.moments[("z", "onehot")], hmmlearn_posteriors(ref, x), rtol=0, atol=1e-8)


@pytest.mark.long
def test_compiled_fit_is_a_fixed_point_of_hmmlearns_steps():
    """`fit` on vghmm_joint.ppvi with its bundled data (compiled: behind --long), to convergence: hmmlearn's
    VB-EM from the fit's q (set as its posterior) gives it back, its bound the fit's ELBO (+ ½ log 2π per point)."""
    import json

    import ppvi

    x = np.array(json.loads(VGHMM_JOINT.with_suffix(".json").read_text())["x"])
    r = ppvi.load(str(VGHMM_JOINT)).fit({"x": x}, max_iter=5000, tol=1e-13)
    q = r.q
    assert q["mu"].family == "NormalGamma" and q["mu"].pair == "lam"
    ref = hmmlearn_start(x)
    ref.startprob_posterior_ = np.array(q["pi"]["alpha"], dtype=float)
    ref.transmat_posterior_ = np.array(q["A"]["alpha"], dtype=float)
    ref.means_posterior_ = np.array(q["mu"]["mean"], dtype=float)[:, None]
    ref.beta_posterior_ = np.array(q["mu"]["beta"], dtype=float)
    ref.dof_posterior_ = 2 * np.array(q["mu"]["shape"], dtype=float)
    ref.scale_posterior_ = 2 * np.array(q["mu"]["rate"], dtype=float)[:, None]
    theirs = hmmlearn_fit(ref, x, 1)
    assert r.elbo == pytest.approx(theirs[0] - 0.5 * LOG_2PI * x.size, rel=1e-9)
    np.testing.assert_allclose(ref.means_posterior_[:, 0], q["mu"]["mean"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(ref.dof_posterior_ / 2, q["mu"]["shape"], rtol=1e-6)
    np.testing.assert_allclose(ref.scale_posterior_[:, 0] / 2, q["mu"]["rate"], rtol=1e-6)
    np.testing.assert_allclose(ref.transmat_posterior_, q["A"]["alpha"], rtol=1e-6)
