"""Poisson factorisation by the superposition augmentation (issue 17; docs/derivation.md, section 9).

models/poisson_factorisation.ppvi, y[u, i] ~ Poisson(Σ_k θ[u, k] β[i, k]) with Gamma priors: the checker adds an allocation latent per (u, i)
over K, whose q is Multinomial(y, φ) (y draws of one Categorical).  Checked against mathematics only:

* the fixed-point iteration of Gopalan, Hofman & Blei (2015, section 3, without the hierarchy; Cemgil 2009)
  written here in NumPy, against ppvi's derived η driven by the reference evaluator (tests/derive/reference.py),
  same start, same order: equal to 1e-10 sweep by sweep, and the ELBO never decreases;
* the augmented ELBO of one count at fixed q(θ), q(β) against the same quantities summed over every allocation
  (y ≤ 4, K = 2): the multinomial coefficient and the counts' Π c! cancel;
* with one latent (θ, K = 1, β known) the mean field is exact: the converged ELBO equals log p(y) in closed form.

Behind --long (each compiles a module no other test compiles, 20–40 CPU-s): from a fit's q, ppvi's compiled
sweeps equal the same NumPy updates in the engine's order (β, θ, the allocation) to 1e-10, ELBO included; the
one-latent model's compiled fit reaches log p(y).  CI checks the kernels against the reference evaluator in the
harness (models/poisson_factorisation is in CHECKED_IN_CI).
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import sympy as sp
from scipy import special

import ppvi
import reference
from conftest import MODELS
from helpers import derivation
from ppvi.derive.numeric import Env, evaluate
from ppvi.derive.symbols import MomentBase

A, B = 0.3, 0.3          # the Gamma priors' shape and rate in models/poisson_factorisation.ppvi

# One latent θ (β known): y[i] ~ Poisson(θ w[i]), conjugate, so the mean field is exact.
GAMMA_POISSON_SUM = """\
dim U, I, K
data w[I, K]
data y[U, I] : count
for u in U:
    for k in K:
        theta[u, k] ~ Gamma(2, 0.5)
for u in U:
    for i in I:
        y[u, i] ~ Poisson(sum(k in K: theta[u, k] * w[i, k]))
"""


@pytest.fixture(scope="module")
def deriv():
    return derivation("poisson_factorisation")     # (a harness case already: not written here again)


def _counts(rng: np.random.Generator, u: int, i: int, k: int) -> np.ndarray:
    y = rng.poisson(rng.gamma(1.0, 1.0, (u, k)) @ rng.gamma(1.0, 1.0, (k, i)))
    y[0, 0] = 0                                   # a zero count: its allocation carries no weight
    return y


def _gamma_moments(shape, rate):
    return shape / rate, special.digamma(shape) - np.log(rate)


def _gamma_entropy(shape, rate):
    return shape - np.log(rate) + special.gammaln(shape) + (1 - shape) * special.digamma(shape)


def _gamma_log_prior(a, b, ex, elogx):
    return np.sum(a * np.log(b) - special.gammaln(a) + (a - 1) * elogx - b * ex)


class GopalanCAVI:
    """Gopalan, Hofman & Blei (2015), section 3, with fixed hyperparameters (a, b) for θ and β:

        φ_ui ∝ exp(E log θ_u + E log β_i),
        θ_uk ~ Gamma(a + Σ_i y_ui φ_uik, b + Σ_i E β_ik),   β_ik ~ Gamma(a + Σ_u y_ui φ_uik, b + Σ_u E θ_uk),

    and the ELBO: E log p(θ) + E log p(β) + Σ_ui [Σ_k y φ (E log θ + E log β − log φ) − Σ_k Eθ Eβ − log y!]
    + H[q(θ)] + H[q(β)] (the allocation's y!/Π c! against the Π c! of its Poisson counts: they cancel)."""

    def __init__(self, y, theta, beta, phi):
        self.y = y.astype(float)
        self.ts, self.tr = theta
        self.bs, self.br = beta
        self.phi = phi

    def theta(self):
        self.ts, self.tr = A + (self.y[:, :, None] * self.phi).sum(1), B + (self.bs / self.br).sum(0)[None, :]

    def beta(self):
        self.bs, self.br = A + (self.y[:, :, None] * self.phi).sum(0), B + (self.ts / self.tr).sum(0)[None, :]

    def allocation(self):
        _, elt = _gamma_moments(self.ts, self.tr)
        _, elb = _gamma_moments(self.bs, self.br)
        a = elt[:, None, :] + elb[None, :, :]
        self.phi = np.exp(a - special.logsumexp(a, axis=-1, keepdims=True))

    def sweep(self, order=("theta", "beta", "allocation")):
        """In the order of the derivation (θ, β, then the allocation), or the engine's (β first)."""
        for step in order:
            getattr(self, step)()

    def elbo(self):
        et, elt = _gamma_moments(self.ts, self.tr)
        eb, elb = _gamma_moments(self.bs, self.br)
        a = elt[:, None, :] + elb[None, :, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            plogp = np.where(self.phi > 0, self.phi * np.log(self.phi), 0.0)
        lik = (np.sum(self.y[:, :, None] * (self.phi * a - plogp)) - np.sum(et @ eb.T)
               - np.sum(special.gammaln(self.y + 1)))
        return (_gamma_log_prior(A, B, et, elt) + _gamma_log_prior(A, B, eb, elb) + lik
                + np.sum(_gamma_entropy(self.ts, self.tr)) + np.sum(_gamma_entropy(self.bs, self.br)))


def _env(d, y, theta, beta, phi, dims) -> Env:
    env = Env({"y": y, "a": A, "b": B}, {}, dims)
    for var, (shape, rate) in (("theta", theta), ("beta", beta)):
        env.arrays[f"shape({var})"], env.arrays[f"rate({var})"] = shape, rate
        ex, elogx = _gamma_moments(shape, rate)
        env.moments[(var, "x")], env.moments[(var, "logx")] = ex, elogx
    env.arrays["p(y_alloc)"] = phi
    env.moments[("y_alloc", "onehot")] = phi
    return env


def _start(rng, u, i, k):
    theta = (rng.gamma(2.0, 1.0, (u, k)), rng.gamma(2.0, 1.0, (u, k)))
    beta = (rng.gamma(2.0, 1.0, (i, k)), rng.gamma(2.0, 1.0, (i, k)))
    phi = rng.dirichlet(np.ones(k), (u, i))
    return theta, beta, phi


def test_the_refusal_is_now_a_derivation(deriv):
    assert {v: q.family for v, q in deriv.q.items()} == {"theta": "Gamma", "beta": "Gamma", "y_alloc": "Categorical"}
    assert deriv.q["y_alloc"].replicas is not None and deriv.q["theta"].replicas is None
    # φ's η reads the Gammas' ⟨log x⟩ only, not the count: each of the y draws gets the same q
    eta = deriv.q["y_alloc"].natural["onehot"]
    assert {(m.var, m.stat) for m in eta.atoms(MomentBase)} == {("theta", "logx"), ("beta", "logx")}
    assert not any(str(b) == "y" for b in eta.atoms(sp.IndexedBase))


def test_the_fixed_point_is_gopalan_et_al(deriv):
    rng = np.random.default_rng(17)
    u, i, k = 4, 3, 2
    y = _counts(rng, u, i, k)
    theta, beta, phi = _start(rng, u, i, k)
    dims = {"U": u, "I": i, "K": k}
    env = _env(deriv, y, theta, beta, phi, dims)
    mine = GopalanCAVI(y, theta, beta, phi)
    assert reference.elbo(deriv, env) == pytest.approx(mine.elbo(), abs=1e-10)
    trace = []
    for _ in range(12):
        reference.sweep(deriv, env)
        mine.sweep()
        for got, want in ((env.arrays["shape(theta)"], mine.ts), (env.arrays["rate(theta)"], mine.tr),
                          (env.arrays["shape(beta)"], mine.bs), (env.arrays["rate(beta)"], mine.br),
                          (env.arrays["p(y_alloc)"], mine.phi)):
            np.testing.assert_allclose(got, np.broadcast_to(want, got.shape), rtol=1e-10, atol=1e-12)
        trace.append(reference.elbo(deriv, env))
        assert trace[-1] == pytest.approx(mine.elbo(), rel=1e-10)
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))


def _multinomial_expectation(y: int, phi: np.ndarray, f) -> float:
    """Σ over every allocation c of y into len(phi) parts of Multinomial(c | y, φ) f(c)."""
    total = 0.0
    for c in itertools.product(range(y + 1), repeat=len(phi)):
        if sum(c) != y:
            continue
        c = np.array(c)
        log_q = special.gammaln(y + 1) - np.sum(special.gammaln(c + 1)) + np.sum(c * np.log(phi))
        total += np.exp(log_q) * f(c, log_q)
    return total


@pytest.mark.parametrize("count", [0, 1, 2, 4])
def test_the_allocation_cancels_by_enumeration(deriv, count):
    """One cell (U = I = 1, K = 2) at fixed q(θ), q(β): the derived ELBO's share of the count, with any φ, is
    E_q(c)[E log p(y, c | θ, β)] + H[q(c)] with p(y, c) = Π_k Poisson(c_k; θ_k β_k) on Σ c = y and
    q(c) = Multinomial(y, φ), summed over every allocation; and at the updated φ it is the tightest such
    bound, log Σ_c exp E log p(y, c | θ, β)."""
    rng = np.random.default_rng(count)
    y = np.array([[count]])
    theta, beta, phi = _start(rng, 1, 1, 2)
    env = _env(deriv, y, theta, beta, phi, {"U": 1, "I": 1, "K": 2})
    et, elt = _gamma_moments(*theta)
    eb, elb = _gamma_moments(*beta)
    rest = (_gamma_log_prior(A, B, et, elt) + _gamma_log_prior(A, B, eb, elb)
            + np.sum(_gamma_entropy(*theta)) + np.sum(_gamma_entropy(*beta)))
    a, lam = (elt + elb)[0], (et * eb)[0]

    def log_p(c):                         # E_q(θ, β) log Π_k Poisson(c_k; θ_k β_k)
        return np.sum(c * a - lam - special.gammaln(c + 1))

    share = _multinomial_expectation(count, phi[0, 0], lambda c, log_q: log_p(c) - log_q)
    assert reference.elbo(deriv, env) - rest == pytest.approx(share, rel=1e-12, abs=1e-12)
    reference.update(deriv, "y_alloc", env)
    tightest = special.logsumexp([log_p(np.array(c)) for c in itertools.product(range(count + 1), repeat=2)
                                  if sum(c) == count])
    assert reference.elbo(deriv, env) - rest == pytest.approx(tightest, rel=1e-12, abs=1e-12)


def test_one_latent_is_exact():
    """θ ~ Gamma(2, 0.5), y[i] ~ Poisson(θ w[i]) (U = K = 1): Gamma–Poisson, conjugate, so the converged ELBO
    equals log p(y) = Σ_i (y_i log w_i − log y_i!) + a log b − log Γ(a) + log Γ(a + Σy) − (a + Σy) log(b + Σw)."""
    d = derivation(GAMMA_POISSON_SUM)
    w = np.array([[0.5], [1.5], [2.0]])
    y = np.array([[3, 0, 7]])
    a, b = 2.0, 0.5
    env = Env({"y": y, "w": w, "shape(theta)": np.ones((1, 1)), "rate(theta)": np.ones((1, 1))},
              {("theta", "x"): np.ones((1, 1)), ("theta", "logx"): np.zeros((1, 1))}, {"U": 1, "I": 3, "K": 1})
    env.arrays["p(y_alloc)"] = env.moments[("y_alloc", "onehot")] = np.ones((1, 3, 1))
    for _ in range(3):
        reference.sweep(d, env)
    s, sw = y.sum(), w.sum()
    exact = (np.sum(y[0] * np.log(w[:, 0]) - special.gammaln(y[0] + 1)) + a * np.log(b) - special.gammaln(a)
             + special.gammaln(a + s) - (a + s) * np.log(b + sw))
    assert reference.elbo(d, env) == pytest.approx(exact, abs=1e-10)
    assert evaluate(d.q["theta"].natural["logx"], env, {i: 0 for i in d.q["theta"].index}) == pytest.approx(a - 1 + s)


# ------------------------------------------------------------ compiled fits (--long)
@pytest.fixture(scope="module")
def compiled():
    return ppvi.load(str(MODELS / "poisson_factorisation.ppvi"))


@pytest.mark.long
def test_compiled_sweeps_are_gopalan_et_al(compiled):
    start = compiled.fit(max_iter=3, tol=0)
    y = np.array(json.loads((MODELS / "poisson_factorisation.json").read_text())["y"])
    q = start.q
    mine = GopalanCAVI(y, (np.array(q["theta"]["shape"]), np.array(q["theta"]["rate"])),
                       (np.array(q["beta"]["shape"]), np.array(q["beta"]["rate"])), np.array(q["y_alloc"]["p"]))
    fit = compiled.fit(init=start, max_iter=40, tol=0)
    trace = []
    for _ in range(40):
        mine.sweep(("beta", "theta", "allocation"))      # (the engine's order: `ppvi run` prints it)
        trace.append(mine.elbo())
    np.testing.assert_allclose(fit.q["theta"]["shape"], mine.ts, rtol=1e-10)
    np.testing.assert_allclose(fit.q["theta"]["rate"], np.broadcast_to(mine.tr, mine.ts.shape), rtol=1e-10)
    np.testing.assert_allclose(fit.q["beta"]["shape"], mine.bs, rtol=1e-10)
    np.testing.assert_allclose(fit.q["beta"]["rate"], np.broadcast_to(mine.br, mine.bs.shape), rtol=1e-10)
    np.testing.assert_allclose(fit.q["y_alloc"]["p"], mine.phi, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fit.elbo_trace, trace, rtol=1e-10)
    assert np.all(np.diff(fit.elbo_trace) >= -1e-9 * np.abs(fit.elbo_trace[1:]))


@pytest.mark.long
def test_one_latent_compiled_is_exact(tmp_path):
    path = tmp_path / "gamma_poisson_sum.ppvi"
    path.write_text(GAMMA_POISSON_SUM)
    w = np.array([[0.5], [1.5], [2.0]])
    y = np.array([[3, 0, 7]])
    fit = ppvi.load(str(path)).fit({"w": w, "y": y}, tol=1e-12)
    a, b, s, sw = 2.0, 0.5, y.sum(), w.sum()
    exact = (np.sum(y[0] * np.log(w[:, 0]) - special.gammaln(y[0] + 1)) + a * np.log(b) - special.gammaln(a)
             + special.gammaln(a + s) - (a + s) * np.log(b + sw))
    assert fit.elbo == pytest.approx(exact, abs=1e-8)
