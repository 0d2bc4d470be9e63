"""The split of an exp link's exponent into the rest and the updated element's share (derive.newton.share), which
the compiled Newton update keeps per point (docs/derivation.md, section 10, "Cost").

Checked on numbers: E − share, evaluated by the reference evaluator, does not move when the element's moments do
(and share does, as x_nj⟨w_j⟩ + x_nj²(⟨w_j²⟩ − ⟨w_j⟩²)/2, written here); a term that reads two elements is no
share.

The block step (derive.newton.block_of, newton_block; docs/derivation.md, section 10, "Block steps"): its cross
Hessian equals the Gram matrices Σ_n e_n ∂E_n ∂E_nᵀ written here in NumPy; its fixed point equals the
per-coefficient scheme's and a joint Newton written here (PRML-style, from the closed-form ELBO), to 1e-8, in one
update where the per-coefficient scheme takes several sweeps; every single step raises the exact ELBO of a
two-plate model (an Exponential and a Gamma link on one w), from a far start.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from scipy import special

from ppvi.derive.meanfield import derive
from ppvi.derive.newton import share
from ppvi.derive.numeric import Env, evaluate
from ppvi.language import loads

MODEL = """\
model split
dim N, D
data x[N, D]
data y[N] : count
b ~ Normal(0, sd = 2)
for j in D:
    w[j] ~ Normal(0, sd = 2)
for n in N:
    y[n] ~ Poisson(exp(b + dot(x[n], w)))
"""


@pytest.fixture(scope="module")
def split():
    return derive(loads(MODEL))


@pytest.fixture(scope="module")
def block(split):
    from ppvi.derive.newton import block_of

    return block_of(split.q["w"].newton, split.q["w"].index)


def test_the_share_is_the_element_s_terms_and_the_rest_does_not_read_it(split):
    q = split.q["w"]
    (exponent, part), = q.newton.shares
    n_, j_ = 5, 3
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n_, j_))
    m, v = rng.normal(size=j_), rng.uniform(0.1, 1.0, size=j_)
    plate = next(i for i in exponent.free_symbols if isinstance(i, sp.Idx))
    element = q.index[0]

    def env(m, v):
        return Env({"x": x, "y": np.zeros(n_, dtype=np.int64)},
                   {("w", "x"): m, ("w", "x2"): m * m + v, ("b", "x"): np.asarray(0.4), ("b", "x2"): np.asarray(0.41)},
                   {"N": n_, "D": j_})

    for j in range(j_):
        for n in range(n_):
            at = {plate: n, element: j}
            moved_m, moved_v = m.copy(), v.copy()
            moved_m[j] += 0.7
            moved_v[j] *= 3.0
            rest = [evaluate(exponent, e, at) - evaluate(part, e, at) for e in (env(m, v), env(moved_m, moved_v))]
            assert abs(rest[0] - rest[1]) < 1e-12, (j, n, rest)
            want = x[n, j] * moved_m[j] + 0.5 * x[n, j] ** 2 * moved_v[j]
            assert abs(evaluate(part, env(moved_m, moved_v), at) - want) < 1e-12


def test_a_term_reading_two_elements_has_no_share():
    w, x = sp.IndexedBase("w"), sp.IndexedBase("x")
    n, d, j = sp.Idx("n", 10), sp.Idx("d", 4), sp.Idx("j", 4)
    affine = sp.Sum(w[d] * x[n, d], (d, 0, 3)) + 1
    assert share(affine, {w}, (j,)) == w[j] * x[n, j]
    assert share(affine + sp.Sum(w[d] * w[3 - d], (d, 0, 3)), {w}, (j,)) is None
    assert share(affine + w[0], {w}, (j,)) is None          # (w[0] outside a sum: not the element's)


def test_rounding_in_f_does_not_drive_the_newton_steps():
    """f = 𝓛 + ½ log v with 𝓛 = −K((m − 1)² + v) − 10⁶ and a deterministic jitter of 10⁻¹³|f| (the rounding of a sum
    over 10⁶ points): the steps stop at the optimum (m, v) = (1, 1/2K) after a handful, where the line search used
    to take steps on the jitter alone (failing first, without derive.newton.NEAR: 21 steps, 410 evaluations of f)."""
    import math

    from ppvi.derive.newton import newton_normal

    k = 50.0
    calls = [0]

    def value(m, v):
        calls[0] += 1
        f = -k * ((m - 1.0) ** 2 + v) - 1e6 + 0.5 * math.log(v)
        return f + 1e-13 * abs(f) * math.sin(1e7 * m + 3e7 * v)

    def derivatives(m, v):
        return {"x": 2 * k, "x2": -k}, {("x", "x"): 0.0, ("x", "x2"): 0.0, ("x2", "x2"): 0.0}

    m, v, steps = newton_normal(3.0, 2.0, derivatives, value)
    assert abs(m - 1.0) < 1e-6 and abs(v - 1 / (2 * k)) < 1e-3 * v, (m, v)      # (as near as the jitter allows)
    assert steps <= 12 and calls[0] <= 60, (steps, calls[0])


# ------------------------------------------------------------------ the block step
PRIOR_PRECISION = 0.25      # w[j] ~ Normal(0, sd = 2)
VAR_RTOL = 1e-6     # both schemes stop where the Newton decrement ∇fᵀd ≈ g_v²·2v² is below f's rounding, 10⁻¹⁵(1 + |f|):
                    # v is then resolved to about 10⁻⁷ of itself (the means, whose curvature is larger, to 10⁻⁸ and better)


def _design(n_: int, d_: int, rho: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Covariates with correlation ρ between columns (what makes coordinate ascent slow) and Poisson counts."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_, d_)) @ np.linalg.cholesky(rho * np.ones((d_, d_)) + (1 - rho) * np.eye(d_)).T
    return 0.5 * x, rng.poisson(np.exp(0.3 + 0.5 * x @ np.linspace(0.5, -0.5, d_))).astype(np.int64)


def _env(x, y, m, v, b=(0.3, 0.05)):
    return Env({"x": x, "y": y}, {("w", "x"): m.copy(), ("w", "x2"): m * m + v, ("b", "x"): np.asarray(b[0]),
                                  ("b", "x2"): np.asarray(b[0] ** 2 + b[1])}, {"N": len(x), "D": x.shape[1]})


def joint_newton(z: np.ndarray, y: np.ndarray, tau: float = PRIOR_PRECISION,
                 offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """q = Π N(m_j, v_j) over the coefficients of the columns of z maximising the closed-form ELBO of y[n] ~
    Poisson(exp(offset + z[n]·w)), w[j] ~ Normal(0, 1/τ), by joint Newton in all of (m, v) written from scratch:
    f = Σ y(z·m) − e_n − τ/2 Σ(m² + v) + ½ Σ log v, e_n = exp(offset + z·m + z²·v/2)."""
    k = z.shape[1]
    z2 = z * z
    m, v = np.zeros(k), np.full(k, 0.1)

    def f(m, v):
        return float(y @ (z @ m) - np.sum(np.exp(offset + z @ m + z2 @ v / 2)) - tau / 2 * np.sum(m * m + v)
                     + 0.5 * np.sum(np.log(v)))

    for _ in range(200):
        e = np.exp(offset + z @ m + z2 @ v / 2)
        g = np.concatenate([z.T @ (y - e) - tau * m, -z2.T @ e / 2 - tau / 2 + 0.5 / v])
        h = -np.block([[(z.T * e) @ z + tau * np.eye(k), (z.T * e) @ z2 / 2],
                       [(z2.T * e) @ z / 2, (z2.T * e) @ z2 / 4 + np.diag(0.5 / v ** 2)]])
        step = -np.linalg.solve(h, g)
        t = 1.0       # (halved while it would decrease f; near the optimum, where f's rounding decides, a full step)
        while np.max(np.abs(step)) > 1e-6 and (np.any(v + t * step[k:] <= 0)
                                               or f(m + t * step[:k], v + t * step[k:]) < f(m, v)):
            t /= 2
        m, v = m + t * step[:k], v + t * step[k:]
        if np.max(np.abs(step)) < 1e-13:
            break
    return m, v


def _numpy_newton(x, y, b=(0.3, 0.05)) -> tuple[np.ndarray, np.ndarray]:
    """q(w) maximising the closed-form ELBO with q(b) = N(0.3, 0.05) fixed: ⟨b⟩ + Var b/2 an offset of the exponent
    (y·⟨b⟩ is constant in w)."""
    return joint_newton(x, y, offset=b[0] + b[1] / 2)


def test_the_block_cross_hessian_is_the_gram_matrix_of_the_exponents(split, block):
    """∂²𝓛/∂μ_s(a)∂μ_t(b) = −Σ_n e_n ∂_s E_n(a) ∂_t E_n(b) + δ_ab Σ_n e_n x_na² (from Var ψ_n's −⟨w_a⟩² x_na²/2),
    with ∂E_n/∂⟨w_a⟩ = x_na − x_na²⟨w_a⟩ and ∂E_n/∂⟨w_a²⟩ = x_na²/2: written here in NumPy.  A scalar q (b) has no
    block; w's partner is a second index over D."""
    q = split.q["w"]
    assert not split.q["b"].newton.blocked and q.newton.blocked and block.partner[0].upper == q.index[0].upper
    x, y = _design(6, 3, 0.5, seed=1)
    rng = np.random.default_rng(2)
    m, v = rng.normal(size=3) * 0.3, rng.uniform(0.1, 0.5, size=3)
    env = _env(x, y, m, v)
    e = np.exp(0.3 + 0.05 / 2 + x @ m + (x * x) @ v / 2)
    d1, d2 = x - x * x * m, x * x / 2
    want = {("x", "x"): -(d1.T * e) @ d1 + np.diag(e @ (x * x)), ("x", "x2"): -(d1.T * e) @ d2,
            ("x2", "x"): -(d2.T * e) @ d1, ("x2", "x2"): -(d2.T * e) @ d2}
    (a,), (b,) = q.index, block.partner
    for key, w in want.items():
        got = np.array([[evaluate(block.hessian[key], env, {a: i, b: k}) for k in range(3)] for i in range(3)])
        assert np.allclose(got, w, rtol=1e-12, atol=1e-12), (key, got, w)


def test_the_block_update_reaches_the_per_coefficient_fixed_point_in_one_sweep(split, block):
    """One block update of q(w) (q(b) fixed) lands on the optimum a joint Newton written here finds, to 1e-8; the
    per-coefficient scheme (derive.newton.reference_update, sweep after sweep) reaches the same point, but only
    after several sweeps on correlated covariates, where a second block update takes no step at all."""
    from ppvi.derive.newton import reference_block_update, reference_update

    q = split.q["w"]
    x, y = _design(8, 2, 0.5, seed=3)     # (at ρ = 0.8 the per-coefficient steps stall 5e-8 short: their own tolerance)
    want_m, want_v = _numpy_newton(x, y)
    env = _env(x, y, np.zeros(2), np.ones(2))
    m, v, steps = reference_block_update(q, env, block)
    assert np.allclose(m, want_m, rtol=0, atol=1e-8) and np.allclose(v, want_v, rtol=VAR_RTOL), (m, want_m, v, want_v)
    assert reference_block_update(q, env, block)[2] == 0
    env = _env(x, y, np.zeros(2), np.ones(2))
    for sweep in range(1, 60):
        before = env.moments[("w", "x")].copy()
        for j in range(2):
            reference_update(q, env, (j,))
        if np.max(np.abs(env.moments[("w", "x")] - before)) < 1e-11:
            break
    mm = env.moments[("w", "x")]
    assert np.allclose(mm, want_m, rtol=0, atol=1e-8) and np.allclose(env.moments[("w", "x2")] - mm ** 2, want_v,
                                                                      rtol=VAR_RTOL)
    assert sweep >= 5, sweep         # (the block: 1)


RATES = """\
model rate_links
dim N, M, D
data x[N, D]
data y[N] : positive
data u[M, D]
data z[M] : positive
for j in D:
    w[j] ~ Normal(0, sd = 2)
for n in N:
    y[n] ~ Exponential(exp(dot(x[n], w)))
for m in M:
    z[m] ~ Gamma(2.5, exp(dot(u[m], w)))
"""


def test_every_block_step_raises_the_elbo_of_a_two_plate_model():
    """Two links over two plates (N and M) share w: from a far start (q's mass at large rates), one block Newton step
    at a time, the exact ELBO (written here in NumPy) rises at every step until the steps stop."""
    from ppvi.derive.newton import block_of, reference_block_update

    q = derive(loads(RATES)).q["w"]
    blk = block_of(q.newton, q.index)
    rng = np.random.default_rng(5)
    x, u = rng.uniform(0.2, 1.5, size=(5, 2)), rng.uniform(0.2, 1.5, size=(4, 2))
    y, z = rng.exponential(1.0, size=5), rng.gamma(2.5, 1.0, size=4)

    def elbo(m, v):
        def part(c, k, xs):
            return np.sum(k * (xs @ m) - c * np.exp(xs @ m + (xs * xs) @ v / 2))
        return (part(y, 1.0, x) + part(z, 2.5, u) + np.sum(1.5 * np.log(z) - special.gammaln(2.5))
                + np.sum(-(m * m + v) / 8 - np.log(2) - 0.5 * np.log(2 * np.pi) + 0.5 * np.log(2 * np.pi * np.e * v)))

    m, v = np.array([2.0, 1.5]), np.array([0.5, 0.5])
    env = Env({"x": x, "y": y, "u": u, "z": z}, {("w", "x"): m.copy(), ("w", "x2"): m * m + v},
              {"N": 5, "M": 4, "D": 2})
    values = [elbo(m, v)]
    for _ in range(40):
        m, v, steps = reference_block_update(q, env, blk, max_steps=1)
        if steps == 0:
            break
        values.append(elbo(m, v))
    assert len(values) >= 4 and np.all(np.diff(values) > 0), values


HIERARCHICAL = """\
model hierarchical_poisson
dim N, D
data x[N, D]
data y[N] : count
mu ~ Normal(0, sd = 2)
for j in D:
    w[j] ~ Normal(mu, sd = 1)
for n in N:
    y[n] ~ Poisson(exp(dot(x[n], w)))
"""


@pytest.mark.long
def test_block_sweeps_on_a_hierarchical_poisson_model_never_decrease_the_elbo_and_are_fewer():
    """w[j] ~ Normal(μ, 1), μ ~ Normal(0, 2²): sweeps of (the block update of q(w), then 19.56's update of q(μ)) raise
    the exact ELBO (written here) at every update, and converge in fewer sweeps than with the per-element steps, to
    the same point."""
    from ppvi.derive.newton import block_of, reference_block_update, reference_update

    d = derive(loads(HIERARCHICAL))
    qw, qmu = d.q["w"], d.q["mu"]
    blk = block_of(qw.newton, qw.index)
    x, y = _design(8, 3, 0.6, seed=9)

    def elbo(env):
        m, v = env.moments[("w", "x")], env.moments[("w", "x2")] - env.moments[("w", "x")] ** 2
        a, va = float(env.moments[("mu", "x")]), float(env.moments[("mu", "x2")]) - float(env.moments[("mu", "x")]) ** 2
        lik = np.sum(y * (x @ m) - np.exp(x @ m + (x * x) @ v / 2) - special.gammaln(y + 1))
        w_prior = np.sum(-0.5 * np.log(2 * np.pi) - 0.5 * (m * m + v - 2 * m * a + a * a + va))
        mu_prior = -0.5 * np.log(2 * np.pi * 4) - (a * a + va) / 8
        return float(lik + w_prior + mu_prior + 0.5 * np.sum(np.log(2 * np.pi * np.e * v))
                     + 0.5 * np.log(2 * np.pi * np.e * va))

    def update_mu(env):
        e1, e2 = (evaluate(qmu.natural[s], env) for s in ("x", "x2"))
        env.moments[("mu", "x")], env.moments[("mu", "x2")] = (np.asarray(-e1 / (2 * e2)),
                                                                 np.asarray((e1 / (2 * e2)) ** 2 - 1 / (2 * e2)))

    def run(block: bool):
        env = Env({"x": x, "y": y}, {("w", "x"): np.full(3, 1.0), ("w", "x2"): np.full(3, 2.0),
                                     ("mu", "x"): np.asarray(0.5), ("mu", "x2"): np.asarray(1.25)}, {"N": 8, "D": 3})
        values = [elbo(env)]
        for sweep in range(1, 200):
            before = elbo(env)
            if block:
                reference_block_update(qw, env, blk)
                values.append(elbo(env))
            else:
                for j in range(3):
                    reference_update(qw, env, (j,))
                    values.append(elbo(env))
            update_mu(env)
            values.append(elbo(env))
            if values[-1] - before < 1e-12 * abs(before):
                break
        return env, values, sweep

    block_env, block_values, block_sweeps = run(True)
    coord_env, coord_values, coord_sweeps = run(False)
    for values in (block_values, coord_values):
        assert np.all(np.diff(values) >= -1e-12 * np.abs(values[1:])), values
    assert block_sweeps < coord_sweeps, (block_sweeps, coord_sweeps)
    assert np.allclose(block_env.moments[("w", "x")], coord_env.moments[("w", "x")], rtol=0, atol=1e-6)


# ------------------------------------------------------------------ the intercept in the block (join_blocks)
def _elbo_part(x, y, mb, vb, m, v) -> float:
    """MODEL's closed-form ELBO up to a constant, in NumPy."""
    z = np.hstack([np.ones((len(x), 1)), x])
    mm, vv = np.concatenate([[mb], m]), np.concatenate([[vb], v])
    return float(y @ (z @ mm) - np.sum(np.exp(z @ mm + (z * z) @ vv / 2)) - PRIOR_PRECISION / 2 * np.sum(mm * mm + vv)
                 + 0.5 * np.sum(np.log(vv)))


def test_the_intercept_joins_the_block_of_the_coefficients(split):
    """b enters w's shared exponent: it is a member of w's joint step (derive.newton.join_blocks) and its own update
    is none; the joint objective reads both, the link once."""
    assert split.q["w"].newton.joint.members == ("b",) and split.q["b"].newton.joined == "w"
    assert split.q["w"].newton.joined is None and split.q["b"].newton.joint is None
    objective = split.q["w"].newton.joint.objective
    assert sum(isinstance(t, sp.Sum) and t.has(sp.exp) or (-t).has(sp.exp) for t in sp.Add.make_args(objective)) == 1


def test_joint_steps_raise_the_elbo_to_a_numpy_joint_newton_and_separate_steps_fall_short(split, block):
    """Joint steps of (b, w) (derive.newton.reference_block_update with b as a member), one at a time, raise the
    exact ELBO (written here) at every step and stop on the optimum a joint Newton over (m, v) of b and w written
    here finds, to 1e-8; from the same start one sweep of separate steps (b's own Newton update, then w's block
    update) ends lower on the exact ELBO (the joint steps maximise the concave f over both, so they can end no
    lower; here it is lower by more than rounding: the separate steps need further sweeps)."""
    from ppvi.derive.newton import block_of, reference_block_update, reference_update

    qw, qb = split.q["w"], split.q["b"]
    x, y = _design(8, 2, 0.6, seed=4)
    x = x + 0.8                # (covariates with a mean: the intercept and the coefficients are correlated under p)
    want_m, want_v = joint_newton(np.hstack([np.ones((len(x), 1)), x]), y)      # (b: the column of ones)
    joint = block_of(qw.newton, qw.index, (qb.newton,))
    env = _env(x, y, np.zeros(2), np.ones(2), b=(0.0, 1.0))
    values = [_elbo_part(x, y, 0.0, 1.0, np.zeros(2), np.ones(2))]
    for _ in range(40):         # (one step at a time: the exact ELBO rises at each)
        step_m, step_v, steps = reference_block_update(qw, env, joint, members=(qb,), max_steps=1)
        if steps == 0:
            break
        m, v = step_m, step_v
        values.append(_elbo_part(x, y, m[2], v[2], m[:2], v[:2]))
    assert steps == 0 and len(values) >= 4 and np.all(np.diff(values) >= 0) and values[-1] > values[0], values
    order = np.r_[1:3, 0]      # (the members come after the elements)
    assert np.allclose(m, want_m[order], rtol=0, atol=1e-8) and np.allclose(v, want_v[order], rtol=VAR_RTOL), \
        (m, want_m[order], v, want_v[order])
    assert float(env.moments[("b", "x")]) == pytest.approx(want_m[0], abs=1e-8)
    joint_value = values[-1]

    env = _env(x, y, np.zeros(2), np.ones(2), b=(0.0, 1.0))
    reference_update(qb, env)
    reference_block_update(qw, env, block)
    mw, mb = env.moments[("w", "x")], float(env.moments[("b", "x")])
    separate = _elbo_part(x, y, mb, float(env.moments[("b", "x2")]) - mb * mb, mw, env.moments[("w", "x2")] - mw * mw)
    assert separate < joint_value - 1e-3, (separate, joint_value)
