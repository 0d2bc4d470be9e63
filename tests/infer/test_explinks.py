"""Exponential links: Poisson(exp(ψ)), Exponential(exp(ψ)), Gamma(a, exp(ψ)) (issue 17, build 2).

w[j] ~ Normal(0, s0²), ψ_n = Σ_j x[n, j] w[j].  Under a Gaussian q, E[e^ψ] = exp(E[ψ] + Var[ψ]/2), so the ELBO is
exact and closed form; q(w[j]) stays Normal and its (m, v) come from Newton steps with a line search on it
(docs/derivation.md, section 10).  Checked against mathematics written here, independently of ppvi:

* the ELBO in NumPy, equal to ppvi's; its gradient in every (m_j, v_j) by finite differences, ~0 at the fit;
* log p(y) and the posterior moments by quadrature on a grid, in 1-D and 2-D: the ELBO below log p(y), each
  mean within a posterior sd of the exact one;
* a Laplace fit (Newton on the log posterior) written here: the same centre within a fraction of an sd;
* every single update raises the ELBO (the reference evaluator, update by update), and every sweep does;
* the generated update equals the reference evaluator's (ppvi.derive.newton) to 1e-10.

Two models are fitted (module fixtures): a Poisson regression (its 1-D and 2-D data share the kernels) and
an Exponential and a Gamma link on one coefficient (the examples models/links/rate_links.ppvi and, --long,
models/links/two_sums.ppvi with their data).  Their kernels run as plain Python (``plain_fits``): the same generated
source, nothing compiled here; compiled = interpreted for the exp-link Newton kernels: test_differential.py.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
import sympy as sp
from scipy import special

import ppvi
from conftest import MODELS

S0 = 1.5          # the prior sd of every coefficient
SHAPE = 2.5       # the Gamma link's shape
SWEEPS = 200      # (tol = 0: coordinate ascent on correlated coordinates converges linearly, to rounding here)

POISSON = f"""\
model poisson_links
dim N, D
data x[N, D]
data y[N] : count
for j in D:
    w[j] ~ Normal(0, sd = {S0})
for n in N:
    y[n] ~ Poisson(exp(dot(x[n], w)))
"""

RATES = (MODELS / "links" / "rate_links.ppvi").read_text()    # (S0 and SHAPE are its prior sd and Gamma shape)


def poisson_data(d: int, n: int = 30, seed: int = 7) -> dict[str, np.ndarray]:
    """Counts of a log-linear rate: an intercept column, then d − 1 covariates."""
    rng = np.random.default_rng(seed)
    x = np.column_stack([np.ones(n), rng.normal(size=(n, d - 1))]) if d > 1 else rng.normal(size=(n, 1)) + 1.0
    w = np.array([0.7, -0.6][:d])
    return {"x": x, "y": rng.poisson(np.exp(x @ w)).astype(np.int64)}


def correlated(rng: np.random.Generator, n: int, d: int = 3, rho: float = 0.9) -> np.ndarray:
    """n rows of d covariates of sd 0.5 with correlation ``rho`` between every two (the cross Hessian of the block
    step far from diagonal)."""
    return 0.5 * rng.normal(size=(n, d)) @ np.linalg.cholesky(rho * np.ones((d, d)) + (1 - rho) * np.eye(d)).T


def rate_data() -> dict[str, np.ndarray]:
    """models/links/rate_links.npz: 15 exponential waits with rate e^{w x} and 12 Gamma(SHAPE, e^{w u}) values, one
    true w = 0.8 (models/make_data.py)."""
    with np.load(MODELS / "links" / "rate_links.npz") as f:
        return dict(f)


# ------------------------------------------------------------------ the mathematics, in NumPy
def poisson_loglik(w: np.ndarray, data) -> np.ndarray:
    """log p(y | w) for a stack of w (…, D)."""
    psi = w @ data["x"].T
    return np.sum(data["y"] * psi - np.exp(psi) - special.gammaln(data["y"] + 1), axis=-1)


def rates_loglik(w: np.ndarray, data) -> np.ndarray:
    a = w @ data["x"].T
    b = w @ data["u"].T
    expo = np.sum(a - data["y"] * np.exp(a), axis=-1)
    gam = np.sum(SHAPE * b + (SHAPE - 1) * np.log(data["z"]) - special.gammaln(SHAPE) - data["z"] * np.exp(b), axis=-1)
    return expo + gam


def log_prior(w: np.ndarray) -> np.ndarray:
    return np.sum(-0.5 * (w / S0) ** 2 - np.log(S0) - 0.5 * np.log(2 * np.pi), axis=-1)


def elbo(m: np.ndarray, v: np.ndarray, data, link: str) -> float:
    """The exact ELBO of q(w) = Π_j N(m_j, v_j): E[ψ] = x·m, Var[ψ] = x²·v, E[e^ψ] = exp(E[ψ] + Var[ψ]/2)."""
    def mean_and_mgf(x):
        mu = x @ m
        return mu, np.exp(mu + 0.5 * (x ** 2) @ v)
    if link == "poisson":
        mu, mgf = mean_and_mgf(data["x"])
        lik = np.sum(data["y"] * mu - mgf - special.gammaln(data["y"] + 1))
    else:
        mu, mgf = mean_and_mgf(data["x"])
        mu2, mgf2 = mean_and_mgf(data["u"])
        lik = np.sum(mu - data["y"] * mgf) + np.sum(SHAPE * mu2 + (SHAPE - 1) * np.log(data["z"])
                                                    - special.gammaln(SHAPE) - data["z"] * mgf2)
    prior = np.sum(-0.5 * (m ** 2 + v) / S0 ** 2 - np.log(S0) - 0.5 * np.log(2 * np.pi))
    return float(lik + prior + np.sum(0.5 * np.log(2 * np.pi * np.e * v)))


def quadrature(loglik, data, d: int, centre: np.ndarray, half: np.ndarray):
    """log p(y), the posterior mean and sd on a grid around ``centre`` (±half in each coordinate)."""
    axes = [np.linspace(c - h, c + h, 2001 if d == 1 else 301) for c, h in zip(centre, half)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    logp = loglik(grid, data) + log_prior(grid)
    cell = np.prod([a[1] - a[0] for a in axes])
    top = logp.max()
    weight = np.exp(logp - top)
    z = weight.sum()
    log_evidence = top + np.log(z * cell)
    flat, wf = grid.reshape(-1, d), (weight / z).reshape(-1)
    mean = wf @ flat
    sd = np.sqrt(wf @ (flat - mean) ** 2)
    for axis in range(d):                                          # the grid holds the mass
        assert np.take(weight, [0, -1], axis=axis).max() < 1e-12
    return log_evidence, mean, sd


def laplace(data, d: int) -> tuple[np.ndarray, np.ndarray]:
    """The mode of log p(w | y) by Newton's method, and the marginal sds of the Laplace approximation."""
    x, y = data["x"], data["y"]
    w = np.zeros(d)
    for _ in range(100):
        rate = np.exp(x @ w)
        grad = x.T @ (y - rate) - w / S0 ** 2
        hess = -(x.T * rate) @ x - np.eye(d) / S0 ** 2
        step = np.linalg.solve(hess, grad)
        w = w - step
        if np.max(np.abs(step)) < 1e-13:
            break
    rate = np.exp(x @ w)
    cov = np.linalg.inv((x.T * rate) @ x + np.eye(d) / S0 ** 2)
    return w, np.sqrt(np.diag(cov))


# ------------------------------------------------------------------ fits (as plain Python)
# Every fit here as plain Python: the inline and links models on at most 30 points, nothing compiled for checks
# of the Newton steps' derivation (compiled = interpreted, the exp-link Newton kernels among them:
# tests/codegen/test_differential.py, poisson_regression).
pytestmark = pytest.mark.usefixtures("plain_fits")


def _load(tmp_path_factory, text: str):
    path = tmp_path_factory.mktemp("explinks") / "model.ppvi"
    path.write_text(text)
    return ppvi.load(str(path))


@pytest.fixture(scope="module")
def poisson_model(tmp_path_factory):
    return _load(tmp_path_factory, POISSON)


@pytest.fixture(scope="module")
def rates_model():
    return ppvi.load(str(MODELS / "links" / "rate_links.ppvi"))


@pytest.fixture(scope="module", params=[1, 2], ids=["1-D", "2-D"])
def poisson_fit(request, poisson_model):
    data = poisson_data(request.param)
    return request.param, data, poisson_model.fit(data, tol=0, max_iter=SWEEPS)


@pytest.fixture(scope="module")
def rates_fit(rates_model):
    data = rate_data()
    return data, rates_model.fit(data, tol=0, max_iter=SWEEPS)


def _q(r) -> tuple[np.ndarray, np.ndarray]:
    q = r.q["w"]
    return np.asarray(q["mean"], float), np.asarray(q["sd"], float) ** 2


# ------------------------------------------------------------------ tests
def test_poisson_elbo_is_the_exact_closed_form_and_below_log_evidence(poisson_fit):
    d, data, r = poisson_fit
    m, v = _q(r)
    assert r.elbo == pytest.approx(elbo(m, v, data, "poisson"), rel=1e-11, abs=1e-9)
    log_evidence, mean, sd = quadrature(poisson_loglik, data, d, m, 16 * np.sqrt(v))
    assert r.elbo <= log_evidence
    if d == 1:                  # KL(q ‖ p) of a near-Gaussian posterior (in 2-D, correlated: mean field's own gap)
        assert log_evidence - r.elbo < 0.05
    assert np.all(np.abs(m - mean) < sd), (m, mean, sd)
    assert np.all(np.sqrt(v) <= sd * 1.05)                         # mean field under-disperses, never much over


def test_poisson_agrees_with_a_laplace_fit(poisson_fit):
    d, data, r = poisson_fit
    m, v = _q(r)
    mode, sd = laplace(data, d)
    assert np.all(np.abs(m - mode) < 0.25 * sd), (m, mode, sd)
    if d == 1:               # one coordinate: q's variance is the curvature's, averaged over q rather than at the mode
        assert np.sqrt(v[0]) == pytest.approx(sd[0], rel=0.1)


def test_the_fit_is_a_stationary_point_of_the_exact_elbo(poisson_fit):
    """∂ELBO/∂m_j and ∂ELBO/∂v_j by central differences on the NumPy ELBO: ~0 at the result."""
    d, data, r = poisson_fit
    m, v = _q(r)
    for j in range(d):
        for what, h in (("m", 1e-5), ("v", 1e-7 * v[j])):
            up, down = m.copy(), m.copy()
            vu, vd = v.copy(), v.copy()
            (up if what == "m" else vu)[j] += h
            (down if what == "m" else vd)[j] -= h
            grad = (elbo(up, vu, data, "poisson") - elbo(down, vd, data, "poisson")) / (2 * h)
            scale = 1.0 if what == "m" else 1.0 / v[j]     # ∂/∂v is of order 1/v
            assert abs(grad) < 1e-5 * scale, (j, what, grad)


def test_exponential_and_gamma_links_against_quadrature(rates_fit):
    data, r = rates_fit
    m, v = _q(r)
    assert r.elbo == pytest.approx(elbo(m, v, data, "rates"), rel=1e-11, abs=1e-9)
    log_evidence, mean, sd = quadrature(rates_loglik, data, 1, m, 16 * np.sqrt(v))
    assert r.elbo <= log_evidence < r.elbo + 0.05
    assert abs(m[0] - mean[0]) < sd[0] and np.sqrt(v[0]) == pytest.approx(sd[0], rel=0.1)


def test_the_elbo_never_decreases(poisson_fit, rates_fit):
    for r in (poisson_fit[2], rates_fit[1]):
        trace = np.asarray(r.elbo_trace)
        assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:])), trace


@functools.lru_cache(maxsize=None)
def _block(text: str):
    """The cross Hessian of q(w) (derived once a model: it costs about half a derivation)."""
    from ppvi.derive.newton import block_of

    q = _derived(text).q["w"]
    return block_of(q.newton, q.index)


@functools.lru_cache(maxsize=None)
def _derived(text: str):
    from ppvi.derive.meanfield import derive
    from ppvi.language import loads

    return derive(loads(text))


def _reference(text: str, data: dict, m: np.ndarray, v: np.ndarray, sweeps: int, block: bool = False):
    """The reference evaluator's sweeps from q(w) = N(m, v), the ELBO (NumPy) after every single update; ``block``:
    the joint update of all of w (derive.newton.reference_block_update, what the compiled update runs), else the
    per-element updates."""
    from ppvi.derive.newton import reference_block_update, reference_update
    from ppvi.derive.numeric import Env

    q = _derived(text).q["w"]
    sizes = {"N": len(data["x"]), "D": data["x"].shape[1]} | ({"M": len(data["u"])} if "u" in data else {})
    env = Env(data, {("w", "x"): m.copy(), ("w", "x2"): m ** 2 + v}, sizes)
    values = []
    for _ in range(sweeps):
        if block:
            reference_block_update(q, env, _block(text))
        for j in range(0 if block else len(m)):
            reference_update(q, env, (j,))
            mm = env.moments[("w", "x")]
            values.append(elbo(mm, env.moments[("w", "x2")] - mm ** 2, data, "rates" if "u" in data else "poisson"))
    mm = env.moments[("w", "x")]
    return mm.copy(), env.moments[("w", "x2")] - mm ** 2, values


def test_every_update_raises_the_elbo_and_the_compiled_update_is_the_reference(poisson_model):
    """From a far start (all of q's mass at large rates), update by update with the reference evaluator: the ELBO
    rises at every single coordinate update.  One compiled sweep (a block step: w is the model's only latent) from
    a fitted state moved by 0.3 raises the exact ELBO and lands on its stationary point, the gradient written here
    in NumPy.  (Its equality with the reference evaluator's block update: the --long test below, whose cross
    Hessian, evaluated sum by sum, costs ~4 CPU-s at D = 2.)"""
    data = poisson_data(2)
    m0, v0 = np.array([2.0, 1.5]), np.array([0.5, 0.5])
    _, _, values = _reference(POISSON, data, m0, v0, sweeps=2)
    start = elbo(m0, v0, data, "poisson")
    assert np.all(np.diff([start] + values) > 0), values
    moved = poisson_model.fit(data, tol=0, max_iter=2).to_dict()
    moved["q"]["w"]["mean"] = np.asarray(moved["q"]["w"]["mean"], float) + 0.3
    m, v = np.asarray(moved["q"]["w"]["mean"], float), np.asarray(moved["q"]["w"]["sd"], float) ** 2
    r = poisson_model.fit(data, init=moved, tol=0, max_iter=1)
    assert r.elbo > elbo(m, v, data, "poisson")
    assert np.max(np.abs(poisson_gradient(*_q(r), data))) < 1e-6


def _one_compiled_sweep_is_the_reference(model, text: str, data: dict, early_sweeps: int) -> None:
    """One compiled sweep from the state after ``early_sweeps``, its means moved by 0.3 (one block step would
    otherwise find it converged), equals the reference evaluator's block update (w's elements share the link's
    exponent: docs/derivation.md, section 10, "Block steps"), to 1e-10."""
    start = model.fit(data, tol=0, max_iter=early_sweeps).to_dict()
    start["q"]["w"]["mean"] = np.asarray(start["q"]["w"]["mean"], float) + 0.3
    one_more = model.fit(data, init=start, tol=0, max_iter=1)
    m, v = np.asarray(start["q"]["w"]["mean"], float), np.asarray(start["q"]["w"]["sd"], float) ** 2
    ref_m, ref_v, _ = _reference(text, data, m, v, sweeps=1, block=True)
    got_m, got_v = _q(one_more)
    assert got_m == pytest.approx(ref_m, rel=1e-10, abs=1e-12)
    assert got_v == pytest.approx(ref_v, rel=1e-10)


def test_two_links_on_one_latent_compiled_sweep_is_the_reference(rates_model):
    """Two exp links over different plates read w (the compiled update keeps each link's exponent per point, N
    and M of them, moved by the element's share: codegen.newton.exponent_caches): one compiled sweep from an
    early state equals the reference evaluator's, which evaluates every exponent in full."""
    _one_compiled_sweep_is_the_reference(rates_model, RATES, rate_data(), early_sweeps=1)


def test_importance_sampled_evidence_matches_quadrature(poisson_fit):
    """ppvi.simulate reads the link as the plain law Poisson(e^ψ): log p(y) by importance sampling from q is
    quadrature's, within a few standard errors.  (q is a little narrower than the posterior, so p/q grows without
    bound in the tails and k̂ warns: ArviZ's psislw gives the same k̂ on these weights.)"""
    d, data, r = poisson_fit
    m, v = _q(r)
    log_evidence, _, _ = quadrature(poisson_loglik, data, d, m, 16 * np.sqrt(v))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ppvi.PPVIWarning)
        est = r.evidence(4000, seed=1)
    assert abs(est.log_evidence - log_evidence) < 4 * est.stderr + 1e-3, (est, log_evidence)


def test_covariates_of_large_scale_overflow_no_update(poisson_model):
    """x of scale 30: at the start (q at the prior's breadth) E[e^ψ] overflows and the ELBO is −∞.  The update first
    shrinks v (then m) until the ELBO is finite, and the variance of a q far narrower than its mean is read from
    its sd (⟨x²⟩ − m² loses it): the fit converges to the stationary point, never to NaN."""
    data = poisson_data(2)
    data = {"x": data["x"] * 30.0, "y": data["y"]}
    r = poisson_model.fit(data, tol=1e-12, max_iter=SWEEPS)
    m, v = _q(r)
    assert np.isfinite(r.elbo) and r.converged
    assert r.elbo == pytest.approx(elbo(m, v, data, "poisson"), rel=1e-10)
    trace = np.asarray(r.elbo_trace)
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))
    mode, sd = laplace(data, 2)
    assert np.all(np.abs(m - mode) < 0.5 * sd), (m, mode, sd)


def test_block_steps_converge_in_fewer_sweeps_on_correlated_covariates(poisson_model):
    """Three covariates with correlation 0.9 share the link's exponent: the compiled update takes joint Newton steps
    over all of q(w) (docs/derivation.md, section 10, "Block steps"), so the fit converges (tol 1e-10) in one sweep
    and the sweep that sees the ELBO unchanged, where the per-element steps took 39 sweeps (main at 87db6c5, the
    same data and tol); the ELBO rises every sweep and is the closed form's of its q, a stationary point."""
    rng = np.random.default_rng(21)
    x = correlated(rng, 40)
    data = {"x": x, "y": rng.poisson(np.exp(x @ np.array([0.5, 0.0, -0.5]))).astype(np.int64)}
    r = poisson_model.fit(data, tol=1e-10, max_iter=SWEEPS)
    assert r.converged and r.iterations <= 3, r.iterations
    trace = np.asarray(r.elbo_trace)
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:])), trace
    m, v = _q(r)
    assert r.elbo == pytest.approx(elbo(m, v, data, "poisson"), rel=1e-12)
    grad = poisson_gradient(m, v, data)
    assert np.max(np.abs(grad)) < 1e-6, grad


def poisson_gradient(m: np.ndarray, v: np.ndarray, data: dict) -> np.ndarray:
    """∂/∂(m, v) of the Poisson model's exact ELBO (``elbo``): Σ_n y_n x_n − x_n e_n − m/S0², −Σ_n x_n² e_n / 2 −
    1/(2 S0²) + 1/(2v), e_n = exp(x_n·m + x_n²·v/2)."""
    x = data["x"]
    e = np.exp(x @ m + (x * x) @ v / 2)
    return np.concatenate([x.T @ (data["y"] - e) - m / S0 ** 2, -(x * x).T @ e / 2 - 0.5 / S0 ** 2 + 0.5 / v])


@pytest.mark.long
def test_block_step_on_correlated_covariates_is_the_reference(poisson_model, rates_model):
    """With three correlated covariates every cross-Hessian entry is far from 0 (its Gram matrices: codegen.newton.
    gram_form): one compiled sweep equals the reference evaluator's block update (derive.newton.
    reference_block_update, the cross Hessian evaluated sum by sum) to 1e-10, on the Poisson model and on the
    two-plate model (an Exponential link over N and a Gamma link over M, one Gram matrix per plate).  (--long: the
    reference evaluator's 4·D² cross-Hessian sums a step; CI checks the same equality on the two-plate model at
    D = 1, and the Poisson block sweep's stationary point at D = 2 in NumPy.)"""
    rng = np.random.default_rng(4)
    x = correlated(rng, 40)
    poisson = {"x": x, "y": rng.poisson(np.exp(x @ np.array([0.5, 0.0, -0.5]))).astype(np.int64)}
    _one_compiled_sweep_is_the_reference(poisson_model, POISSON, poisson, early_sweeps=1)
    x, u, w = correlated(rng, 15), correlated(rng, 12), np.array([0.8, -0.3, 0.2])
    rates = {"x": x, "y": rng.exponential(1 / np.exp(x @ w)), "u": u, "z": rng.gamma(SHAPE, 1 / np.exp(u @ w))}
    _one_compiled_sweep_is_the_reference(rates_model, RATES, rates, early_sweeps=1)


def test_compiled_block_sweeps_from_a_far_start_raise_the_exact_elbo(rates_model):
    """From a far start (means of −2, sd 1), every compiled sweep of block steps on
    the two-plate model raises the ELBO, which is the closed form written here (NumPy) of the q it reports."""
    rng = np.random.default_rng(9)
    x, u, w = correlated(rng, 15), correlated(rng, 12), np.array([0.8, -0.3, 0.2])
    data = {"x": x, "y": rng.exponential(1 / np.exp(x @ w)), "u": u, "z": rng.gamma(SHAPE, 1 / np.exp(u @ w))}
    start = rates_model.fit(data, tol=0, max_iter=1).to_dict()
    start["q"]["w"]["mean"] = np.full(3, -2.0)
    start["q"]["w"]["sd"] = np.full(3, 1.0)
    r = rates_model.fit(data, init=start, tol=0, max_iter=6)
    trace = np.asarray(r.elbo_trace)
    assert trace[0] > elbo(np.full(3, -2.0), np.ones(3), data, "rates"), trace
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:])), trace
    m, v = _q(r)
    assert r.elbo == pytest.approx(elbo(m, v, data, "rates"), rel=1e-12)


# ------------------------------------------------------------------ a rate that is a sum of several sums
TWO_SUMS = (MODELS / "links" / "two_sums.ppvi").read_text()       # (its priors' sd is S0)


def two_sums_data() -> dict[str, np.ndarray]:
    """models/links/two_sums.npz: counts whose log rate is an intercept plus two sums over covariates of two
    groups, the groups correlated (models/make_data.py)."""
    with np.load(MODELS / "links" / "two_sums.npz") as f:
        return dict(f)


def joint_newton(a: np.ndarray, y: np.ndarray, s0: float = S0) -> tuple[np.ndarray, np.ndarray]:
    """The maximum of the exact mean-field ELBO of y ~ Poisson(exp(a_n·θ)), θ_i ~ N(0, s0²), q = Π_i N(m_i, v_i), by
    Newton's method in every (m_i, v_i) at once (the ELBO is concave in (m, v): its unique stationary point is the
    CAVI fixed point), with a backtracking line search:

        f = Σ_n y_n a_n·m − e_n − Σ_i (m_i² + v_i)/(2 s0²) + ½ Σ_i log v_i,   e_n = exp(a_n·m + (a_n∘a_n)·v/2)."""
    p, a2 = a.shape[1], a * a

    def f(m, v):
        return y @ (a @ m) - np.exp(a @ m + a2 @ v / 2).sum() - np.sum(m * m + v) / (2 * s0 ** 2) + 0.5 * np.log(v).sum()
    m, v = np.zeros(p), np.full(p, 0.1)
    for _ in range(100):
        e = np.exp(a @ m + a2 @ v / 2)
        grad = np.concatenate([a.T @ (y - e) - m / s0 ** 2, -0.5 * a2.T @ e - 0.5 / s0 ** 2 + 0.5 / v])
        hmv = -0.5 * (a.T * e) @ a2
        hess = np.block([[-(a.T * e) @ a - np.eye(p) / s0 ** 2, hmv],
                         [hmv.T, -0.25 * (a2.T * e) @ a2 - np.diag(0.5 / v ** 2)]])
        d = -np.linalg.solve(hess, grad)
        t = 1.0
        while np.any(v + t * d[p:] <= 0) or f(m + t * d[:p], v + t * d[p:]) < f(m, v):
            t /= 2
        m, v = m + t * d[:p], v + t * d[p:]
        if np.max(np.abs(t * d)) < 1e-15:
            break
    return m, v


def test_a_rate_of_two_sums_gives_each_sum_its_block_step():
    """exp(b + Σ_j x w_j + Σ_k z u_k): both sums' latents share the exponent (``Newton.blocked``, each over its own
    axis: joint Newton steps, codegen.newton.newton_block), each with its share of it (the exponent kept per point
    and moved by the share: O(N) an evaluation), and the intercept's Newton update reads the same exponent."""
    from ppvi.derive import derive
    from ppvi.language import loads

    d = derive(loads(TWO_SUMS, "two_sums.ppvi"))

    def arrays(e) -> set[str]:
        return {str(b) for b in e.atoms(sp.IndexedBase)}
    for var, data in (("w", "x"), ("u", "z")):
        nt = d.q[var].newton
        assert nt.blocked and len(nt.shares) == 1, var
        exponent, share = nt.shares[0]
        assert {"x", "z", "E[x](w)", "E[x](u)"} <= arrays(exponent), exponent       # (b's moments: symbols)
        assert arrays(share) == {data, f"E[x]({var})", f"E[x2]({var})"}, share
    assert d.q["b"].newton is not None and not d.q["b"].newton.blocked


@pytest.mark.long
def test_a_rate_of_two_sums_is_at_the_joint_newton_optimum():
    """The compiled fit of the two-sum model converges to the maximum of the exact mean-field ELBO found by joint
    Newton in NumPy over (b, w, u) (joint_newton, the design [1, x, z]), its ELBO the closed form's and the optimum's.
    (--long: one more model to compile.)"""
    data = two_sums_data()
    r = ppvi.load(str(MODELS / "links" / "two_sums.ppvi")).fit(data, tol=0, max_iter=SWEEPS)    # (to rounding: SWEEPS)
    a = np.column_stack([np.ones(len(data["y"])), data["x"], data["z"]])
    m, v = joint_newton(a, data["y"])
    got_m = np.concatenate([[float(r.q["b"]["mean"])], r.q["w"]["mean"], r.q["u"]["mean"]])
    got_v = np.concatenate([[float(r.q["b"]["sd"])], r.q["w"]["sd"], r.q["u"]["sd"]]) ** 2
    # (coordinate ascent between the three q's stops where the ELBO, ~70 nats, stops moving in its last bits: the
    # means to ~1e-7 of the optimum, a thousandth of a posterior sd, and the ELBO to rounding)
    np.testing.assert_allclose(got_m, m, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got_v, v, rtol=1e-5)
    closed = {"x": a, "y": data["y"]}
    assert r.elbo == pytest.approx(elbo(got_m, got_v, closed, "poisson"), rel=1e-12)
    assert r.elbo == pytest.approx(elbo(m, v, closed, "poisson"), rel=1e-12)
    assert np.max(np.abs(poisson_gradient(got_m, got_v, closed))) < 1e-5
    trace = np.asarray(r.elbo_trace)
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:])), trace


def test_poisson_regression_with_its_intercept_converges_in_one_sweep_to_the_joint_optimum():
    """models/poisson_regression: the intercept b enters w's shared exponent, so w's block step moves (b, w) jointly
    (derive.newton.join_blocks) and one sweep lands on the optimum of the concave closed-form ELBO over all their
    (m, v), a joint Newton written here, to 1e-8 (the means; the variances to 1e-6 of themselves, where the steps
    stop on f's rounding); a second sweep leaves it.  (With b its own q, one sweep ended 1.5 away in b's mean, and
    the fit took 9 sweeps to a relative ELBO change of 1e-10: this failed so.)"""
    import json

    model = ppvi.load(str(MODELS / "poisson_regression.ppvi"))
    data = json.loads((MODELS / "poisson_regression.json").read_text())
    x, y = np.asarray(data["x"], float), np.asarray(data["y"], float)
    want_m, want_v = joint_newton(np.hstack([np.ones((len(x), 1)), x]), y, s0=5.0)    # (b first)
    r = model.fit(str(MODELS / "poisson_regression.json"), tol=0, max_iter=1)
    got = r.to_dict()["q"]
    m = np.concatenate([[float(got["b"]["mean"])], np.asarray(got["w"]["mean"], float)])
    v = np.concatenate([[float(got["b"]["sd"])], np.asarray(got["w"]["sd"], float)]) ** 2
    assert m == pytest.approx(want_m, rel=0, abs=1e-8) and v == pytest.approx(want_v, rel=1e-6), (m, want_m, v, want_v)
    again = model.fit(str(MODELS / "poisson_regression.json"), init=r.to_dict(), tol=0, max_iter=1).to_dict()["q"]
    assert float(again["b"]["mean"]) == pytest.approx(float(got["b"]["mean"]), abs=1e-10)
