"""The split of an exp link's exponent into the rest and the updated element's share (derive.newton.share), which
the compiled Newton update keeps per point (docs/derivation.md, section 10, "Cost").

Checked on numbers: E − share, evaluated by the reference evaluator, does not move when the element's moments do
(and share does, as x_nj⟨w_j⟩ + x_nj²(⟨w_j²⟩ − ⟨w_j⟩²)/2, written here); a term that reads two elements is no
share.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

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


def test_the_share_is_the_element_s_terms_and_the_rest_does_not_read_it():
    d = derive(loads(MODEL))
    q = d.q["w"]
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
