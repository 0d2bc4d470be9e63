"""The variational Gaussian HMM (issue 18): Dirichlet start and transitions, Normal–Gamma emissions.

hmmlearn's ``VariationalGaussianHMM`` keeps q(μₖ, λₖ) joint (Normal–Gamma: μₖ | λₖ ~ N(m, (βλₖ)⁻¹)); ppvi's mean
field factorises q(μₖ) q(λₖ) (``approximate mu, lam jointly``, hmmlearn's family, is
tests/infer/test_vghmm_joint.py; docs/derivation.md §8, "The variational Gaussian HMM").  So:

- where the two families coincide — hmmlearn with q(λ) held (``params="stm"``) is ppvi with λ known, τₖ = E[λₖ]
  (E[λₖ(x − μₖ)²] = τₖ(x − m)² + 1/β under either q) — ppvi's derived updates take hmmlearn's steps from
  hmmlearn's start: the ELBO sweep by sweep, then q(π), q(A), q(μ) and the state marginals, to 1e-8;
- the full model (models/sequences/vghmm.ppvi, λ learned) is checked against a VB-HMM written here in NumPy
  (Beal 2003, §3.4; PRML 10.1.3 for q(μ)q(λ); forward–backward in log space) to 1e-10, and against hmmlearn
  loosely (the same states, Viterbi path and means; ELBOs within the mean field's loss, below).

The reference evaluator (derive/numeric.py, tests/derive/reference.py) runs ppvi's derived expressions: no
kernels are compiled in CI (the compiled HMM equals the reference: tests/codegen/test_chain_kernels.py); with
--long, the compiled fit of vghmm.ppvi is a fixed point of the NumPy VB-HMM, its ELBO the NumPy bound.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import special

from ppvi.derive.chain import update_block
from ppvi.derive import derive
from ppvi.derive.numeric import Env
from ppvi.language import load, loads

from derive import reference   # noqa: E402  (tests/derive/reference.py)

vhmm = pytest.importorskip("hmmlearn.vhmm")

VGHMM = Path(__file__).resolve().parents[2] / "models" / "sequences" / "vghmm.ppvi"
K = 3
LOG_2PI = np.log(2 * np.pi)

# λ known: hmmlearn with params="stm" (q(λ) never updated); every prior is data, so hmmlearn's can be passed
FIXED_PRECISION = """\
dim S, T
dim K = 3
data a0[K]
data b0[K, K]
data m0[K]
data beta0[K]
data tau[K]
data x[S, T]
pi ~ Dirichlet(a0)
for k in K:
    A[k] ~ Dirichlet(b0[k])
    mu[k] ~ Normal(m0[k], precision = beta0[k] * tau[k])
for s in S:
    z[s, 0] ~ Categorical(pi)
    for t in T[1:]:
        z[s, t] ~ Categorical(A[z[s, t-1]])
    for t in T:
        x[s, t] ~ Normal(mu[z[s, t]], precision = tau[z[s, t]])
approximate z jointly
"""


def sample(seed: int, S: int = 2, T: int = 30) -> np.ndarray:
    rng = np.random.default_rng(seed)
    A = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]])
    mu, sd = np.array([-3.0, 0.0, 3.0]), np.array([0.7, 1.0, 0.5])
    x = np.empty((S, T))
    for s in range(S):
        z = rng.choice(K)
        for t in range(T):
            z = z if t == 0 else rng.choice(K, p=A[z])
            x[s, t] = rng.normal(mu[z], sd[z])
    return x


def hmmlearn_start(x: np.ndarray, **kw):
    """hmmlearn's own start (k-means means, its random Dirichlet draws) with ppvi's priors (vghmm.ppvi's consts)."""
    m = vhmm.VariationalGaussianHMM(K, covariance_type="diag", random_state=0, tol=-np.inf, startprob_prior=1.0,
                                   transmat_prior=1.0, means_prior=np.zeros((K, 1)), beta_prior=np.ones(K),
                                   dof_prior=np.ones(K), scale_prior=np.full((K, 1), 1e-3), **kw)
    m._init(x.reshape(-1, 1), [x.shape[1]] * x.shape[0])
    m.init_params = ""
    return m


def hmmlearn_fit(m, x: np.ndarray, sweeps: int) -> np.ndarray:
    """``sweeps`` VB-EM iterations from m's state; the lower bounds (each after its E-step, before its M-step)."""
    m.n_iter = sweeps
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(x.reshape(-1, 1), [x.shape[1]] * x.shape[0])
    return np.array(m.monitor_.history)


def hmmlearn_posteriors(m, x: np.ndarray) -> np.ndarray:
    """q(z) of hmmlearn's E-step at its current q(θ) (private API: ``predict_proba`` reads point estimates)."""
    m._estep_begin()
    return np.stack([m._fit_log(xs[:, None])[2] for xs in x])


def set_q(env: Env, var: str, family: str, **params) -> None:
    """q(var) from standard parameters: the arrays the entropies read and the moments (tests/derive/reference.py)."""
    params = {k: np.asarray(v, dtype=float) for k, v in params.items()}
    for name, value in params.items():
        env.arrays[f"{name}({var})"] = value
    for stat, value in reference.moments(family, params).items():
        env.moments[(var, stat)] = value


def cavi(d, env: Env, order: list[str], sweeps: int) -> np.ndarray:
    """hmmlearn's order: q(z) by forward–backward (the ELBO read there), then every global q from it."""
    trace = []
    for _ in range(sweeps):
        update_block(d.blocks["z"], env)
        trace.append(reference.elbo(d, env))
        for var in order:
            reference.update(d, var, env)
    update_block(d.blocks["z"], env)
    return np.array(trace)


def kl_gamma(a1, b1, a0, b0):
    """KL(Gamma(a1, b1) ‖ Gamma(a0, b0)), shape–rate (Penny 2001)."""
    return ((a1 - a0) * special.digamma(a1) - special.gammaln(a1) + special.gammaln(a0)
            + a0 * (np.log(b1) - np.log(b0)) + a1 * (b0 - b1) / b1)


def kl_dirichlet(a1, a0):
    s1 = a1.sum(-1)
    return (special.gammaln(s1) - special.gammaln(a0.sum(-1)) - (special.gammaln(a1) - special.gammaln(a0)).sum(-1)
            + ((a1 - a0) * (special.digamma(a1) - special.digamma(s1)[..., None])).sum(-1))


# ------------------------------------------------------------------ λ held: the same family as hmmlearn's
@pytest.fixture(scope="module")
def held(request):
    """hmmlearn and ppvi's derived updates from hmmlearn's start, λ held: 8 sweeps in CI, to the fixed point
    (20) with --long."""
    x = sample(0)
    S, T = x.shape
    ref = hmmlearn_start(x, params="stm")
    # one dof for every state: then E[log λₖ] − log E[λₖ] = ψ(ν/2) − log(ν/2) is the same for every k, a constant
    # hmmlearn's log ψ carries and ppvi's (log τₖ) does not (with k-means' counts as dofs it would move q(z));
    # E[λₖ] = 1, not hmmlearn's start (the whole data's variance), so that the states stay apart
    nu = float(ref.dof_posterior_.mean())
    ref.dof_posterior_, ref.scale_posterior_ = np.full(K, nu), np.full((K, 1), nu)
    tau = nu / ref.scale_posterior_[:, 0]                    # E[λₖ] of hmmlearn's q(λₖ) (Wishart in one dimension)
    d = derive(loads(FIXED_PRECISION, "<fixed_precision>"))
    env = Env({"x": x, "a0": ref.startprob_prior_, "b0": ref.transmat_prior_, "m0": ref.means_prior_[:, 0],
               "beta0": ref.beta_prior_, "tau": tau}, {}, {"S": S, "T": T, "K": K})
    set_q(env, "pi", "Dirichlet", alpha=ref.startprob_posterior_)
    set_q(env, "A", "Dirichlet", alpha=ref.transmat_posterior_)
    set_q(env, "mu", "Normal", mean=ref.means_posterior_[:, 0], sd=(ref.beta_posterior_ * tau) ** -0.5)
    sweeps = 20 if request.config.getoption("--long") else 8
    ours = cavi(d, env, ["pi", "A", "mu"], sweeps)
    theirs = hmmlearn_fit(ref, x, sweeps)
    return x, nu, tau, ref, env, ours, theirs


def test_held_precision_elbo_sweep_by_sweep(held):
    """ppvi's ELBO = hmmlearn's bound + what hmmlearn leaves out or adds, a constant: −½ log 2π per point (its
    log ψ drops it), ½(log E[λ] − E[log λ]) per point (ppvi reads τ = E[λ]) and + KL(q(λₖ) ‖ p(λₖ)) (hmmlearn's
    bound subtracts the Wishart KL of its fixed q(λ); ppvi's λ is known).  ν the dof, scale = ν/τ."""
    x, nu, tau, ref, _, ours, theirs = held
    n = x.size
    a, b = nu / 2, nu / tau / 2                             # q(λₖ) = Gamma(ν/2, scale/2)
    offset = (n * (-0.5 * LOG_2PI + 0.5 * (np.log(nu / 2) - special.digamma(nu / 2)))
              + kl_gamma(a, b, ref.dof_prior_ / 2, ref.scale_prior_[:, 0] / 2).sum())
    np.testing.assert_allclose(ours, theirs + offset, rtol=0, atol=1e-8)
    if len(theirs) == 20:                                   # (--long: the comparison below is at the fixed point)
        assert theirs[-1] - theirs[-2] < 1e-9


def test_held_precision_same_fixed_point(held):
    """q(π), q(A), q(μ) after hmmlearn's M-step and q(z) after its E-step, from the same state (--long: the fixed
    point)."""
    x, nu, tau, ref, env, _, _ = held
    np.testing.assert_allclose(env.arrays["alpha(pi)"], ref.startprob_posterior_, rtol=1e-8)
    np.testing.assert_allclose(env.arrays["alpha(A)"], ref.transmat_posterior_, rtol=1e-8)
    np.testing.assert_allclose(env.arrays["mean(mu)"], ref.means_posterior_[:, 0], rtol=0, atol=1e-8)
    np.testing.assert_allclose(env.arrays["sd(mu)"], (ref.beta_posterior_ * tau) ** -0.5, rtol=1e-8)
    np.testing.assert_allclose(env.moments[("z", "onehot")], hmmlearn_posteriors(ref, x), rtol=0, atol=1e-8)


# ------------------------------------------------------------------ λ learned: the mean field q(μ)q(λ)
def forward_backward(log_phi, log_Psi, log_psi):
    """One sequence in log space (Rabiner 1989, α–β recursions with log-sum-exp): r, Σₜ ξₜ, log Z."""
    T = len(log_psi)
    la, lb = np.empty_like(log_psi), np.zeros_like(log_psi)
    la[0] = log_phi + log_psi[0]
    for t in range(1, T):
        la[t] = special.logsumexp(la[t - 1][:, None] + log_Psi, axis=0) + log_psi[t]
    for t in range(T - 2, -1, -1):
        lb[t] = special.logsumexp(log_Psi + (log_psi[t + 1] + lb[t + 1])[None, :], axis=1)
    log_z = special.logsumexp(la[-1])
    xi = np.exp(la[:-1, :, None] + log_Psi[None] + (log_psi[1:] + lb[1:])[:, None, :] - log_z).sum(0)
    return np.exp(la + lb - log_z), xi, log_z


def numpy_vbhmm(x, start: dict, prior: dict, sweeps: int):
    """The VB-HMM of MacKay (1997) / Beal (2003, §3.4) with the mean field q(μₖ)q(λₖ) of PRML 10.1.3, hmmlearn's
    order (q(z), then q(π), q(A), q(λ), q(μ)); the ELBO after each q(z): Σ log Zₛ − Σ KL(q(θ) ‖ p(θ))."""
    a_pi, a_A, m, v, shape, rate = (np.array(start[k], dtype=float) for k in ("pi", "A", "m", "v", "shape", "rate"))
    a0, m0, b0, nu0, s0 = (prior[k] for k in ("a0", "m0", "beta0", "nu0", "s0"))
    trace = []
    for it in range(sweeps + 1):
        e_lam, e_log_lam = shape / rate, special.digamma(shape) - np.log(rate)
        e_log_pi = special.digamma(a_pi) - special.digamma(a_pi.sum())
        e_log_A = special.digamma(a_A) - special.digamma(a_A.sum(1, keepdims=True))
        log_psi = 0.5 * e_log_lam - 0.5 * LOG_2PI - 0.5 * e_lam * ((x[..., None] - m) ** 2 + v)
        runs = [forward_backward(e_log_pi, e_log_A, lp) for lp in log_psi]
        r = np.stack([u[0] for u in runs])
        xi = sum(u[1] for u in runs)
        kl_mu = 0.5 * (b0 * e_lam * (v + (m - m0) ** 2) - 1 - np.log(b0) - e_log_lam - np.log(v))  # E_λ KL(q(μ)‖p(μ|λ))
        trace.append(sum(u[2] for u in runs) - kl_dirichlet(a_pi, np.full(K, a0)) - kl_dirichlet(a_A, np.full(
            (K, K), a0)).sum() - kl_gamma(shape, rate, nu0 / 2, s0 / 2).sum() - kl_mu.sum())
        if it == sweeps:
            return r, trace, {"pi": a_pi, "A": a_A, "m": m, "v": v, "shape": shape, "rate": rate}
        n_k, sx, sxx = r.sum((0, 1)), (r * x[..., None]).sum((0, 1)), (r * x[..., None] ** 2).sum((0, 1))
        a_pi, a_A = a0 + r[:, 0].sum(0), a0 + xi
        shape = nu0 / 2 + 0.5 + n_k / 2
        rate = s0 / 2 + 0.5 * (sxx - 2 * m * sx + n_k * (m ** 2 + v)) + 0.5 * b0 * ((m - m0) ** 2 + v)
        prec = shape / rate * (b0 + n_k)
        m, v = (b0 * m0 + sx) / (b0 + n_k), 1 / prec


def learned(sweeps: int):
    """ppvi's derived updates and the NumPy VB-HMM, ``sweeps`` rounds each from hmmlearn's start (and hmmlearn's
    fit from it)."""
    x = sample(0)
    S, T = x.shape
    model = load(str(VGHMM))
    prior = {c.name: float(c.value.value) for c in model.of_kind("const")}     # (every const a filled number)
    ref = hmmlearn_start(x)
    # hmmlearn's start as ppvi's: q(λₖ) = Gamma(dof/2, scale/2), q(μₖ) = N(m, 1/(β E[λₖ])) (its first E-step is
    # then hmmlearn's: E[λ(x − μ)²] = E[λ](x − m)² + 1/β under either q)
    shape, rate = ref.dof_posterior_ / 2, ref.scale_posterior_[:, 0] / 2
    start = {"pi": ref.startprob_posterior_, "A": ref.transmat_posterior_, "m": ref.means_posterior_[:, 0],
             "v": rate / shape / ref.beta_posterior_, "shape": shape, "rate": rate}
    d = derive(model)
    env = Env({"x": x, **prior, "a0": np.full(K, prior["a0"])}, {}, {"S": S, "T": T, "K": K})
    set_q(env, "pi", "Dirichlet", alpha=start["pi"])
    set_q(env, "A", "Dirichlet", alpha=start["A"])
    set_q(env, "lam", "Gamma", shape=shape, rate=rate)
    set_q(env, "mu", "Normal", mean=start["m"], sd=np.sqrt(start["v"]))
    ours = cavi(d, env, ["pi", "A", "lam", "mu"], sweeps)
    want = numpy_vbhmm(x, start, prior, sweeps)
    return x, env, ours, want, ref


@pytest.fixture(scope="module")
def few_sweeps():
    return learned(5)


@pytest.fixture(scope="module")
def converged():
    return learned(150)


@pytest.mark.parametrize("run", ["few_sweeps", pytest.param("converged", marks=pytest.mark.long)])
def test_mean_field_equals_the_numpy_vbhmm(run, request):
    """Every sweep's ELBO, then q(z), q(π), q(A), q(μ), q(λ): ppvi's derived updates are the textbook's (in CI
    for a few sweeps from hmmlearn's start; with --long to the fixed point)."""
    _, env, ours, (r, trace, q), _ = request.getfixturevalue(run)
    np.testing.assert_allclose(ours, trace[:-1], rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(env.moments[("z", "onehot")], r, rtol=0, atol=1e-10)
    for name, want in [("alpha(pi)", q["pi"]), ("alpha(A)", q["A"]), ("mean(mu)", q["m"]),
                       ("sd(mu)", np.sqrt(q["v"])), ("shape(lam)", q["shape"]), ("rate(lam)", q["rate"])]:
        np.testing.assert_allclose(env.arrays[name], want, rtol=1e-10, atol=1e-12, err_msg=name)
    assert np.all(np.diff(ours) >= -1e-9 * np.abs(ours[1:]))


def viterbi(log_phi, log_Psi, log_psi) -> np.ndarray:
    T = len(log_psi)
    delta, back = log_phi + log_psi[0], np.empty((T, K), dtype=int)
    for t in range(1, T):
        scores = delta[:, None] + log_Psi
        back[t] = scores.argmax(0)
        delta = scores.max(0) + log_psi[t]
    path = [int(delta.argmax())]
    for t in range(T - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    return np.array(path[::-1])


@pytest.mark.long
def test_mean_field_near_hmmlearn(converged):
    """The same start, two families: hmmlearn's q(μₖ, λₖ) is the best joint q given q(z) (the exact posterior of
    (μₖ, λₖ) given the labels is Normal–Gamma), the mean field's loses KL(q(μ)q(λ) ‖ that Normal–Gamma) per
    state, which does not grow with the data.  So: the same Viterbi path (hmmlearn's decode; ppvi's from its
    E[log θ]), the same state occupancies and means within 1 %, and ppvi's ELBO below hmmlearn's bound (plus the
    ½ log 2π per point hmmlearn drops) by less than 0.1 nats per state (0.026 here).  (Behind --long: 150
    sweeps of the reference evaluator.)"""
    x, env, ours, _, ref = converged
    theirs = hmmlearn_fit(ref, x, 200)
    assert np.all(np.diff(ours)[-5:] < 1e-9) and theirs[-1] - theirs[-2] < 1e-9     # both at their fixed points
    lengths = [x.shape[1]] * x.shape[0]
    ppvi_means = env.arrays["mean(mu)"]
    np.testing.assert_allclose(ppvi_means, ref.means_posterior_[:, 0], rtol=1e-2, atol=1e-2)
    r = env.moments[("z", "onehot")]
    np.testing.assert_allclose(r.sum((0, 1)), hmmlearn_posteriors(ref, x).sum((0, 1)), rtol=1e-2)
    e_log_pi = env.moments[("pi", "logp")]
    e_log_A = env.moments[("A", "logp")]
    e_lam, e_log_lam = env.moments[("lam", "x")], env.moments[("lam", "logx")]
    log_psi = 0.5 * e_log_lam - 0.5 * e_lam * ((x[..., None] - ppvi_means) ** 2 + env.arrays["sd(mu)"] ** 2)
    ours_path = np.concatenate([viterbi(e_log_pi, e_log_A, lp) for lp in log_psi])
    np.testing.assert_array_equal(ours_path, ref.decode(x.reshape(-1, 1), lengths)[1])
    hmmlearn_elbo = theirs[-1] - 0.5 * LOG_2PI * x.size
    assert 0 < hmmlearn_elbo - ours[-1] < 0.1 * K, (hmmlearn_elbo, ours[-1])


@pytest.mark.long
def test_compiled_fit_is_a_fixed_point_of_the_numpy_vbhmm():
    """`fit` on models/sequences/vghmm.ppvi with its bundled data (compiled: behind --long), to convergence: one
    round of the NumPy VB-HMM from the fit's q(θ) gives them back, and the fit's ELBO is the NumPy bound at them
    (its schedule ends with q(z), so the bound's log Z form holds).  To 1e-6: the fit stops on its ELBO's change,
    and a state of 5 points still drifts there."""
    import json

    import ppvi

    model = load(str(VGHMM))
    prior = {c.name: float(c.value.value) for c in model.of_kind("const")}
    x = np.array(json.loads(VGHMM.with_suffix(".json").read_text())["x"])
    r = ppvi.load(str(VGHMM)).fit({"x": x}, max_iter=5000, tol=1e-13)
    q = r.to_dict()["q"]
    got = {"pi": q["pi"]["alpha"], "A": q["A"]["alpha"], "m": q["mu"]["mean"], "v": np.square(q["mu"]["sd"]),
           "shape": q["lam"]["shape"], "rate": q["lam"]["rate"]}
    got = {k: np.asarray(v, dtype=float) for k, v in got.items()}
    z, trace, again = numpy_vbhmm(x, got, prior, 1)
    assert r.elbo == pytest.approx(trace[0], abs=1e-8, rel=0)
    for name in got:
        np.testing.assert_allclose(again[name], got[name], rtol=1e-6, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(np.asarray(q["z"]["p"]), z, atol=1e-6)
