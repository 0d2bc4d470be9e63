"""Feature-sign search (runtime.feature_sign) on overcomplete dictionaries: more atoms than dimensions, so
the active atoms are often linearly dependent and the active set's system singular.  The reference is
scikit-learn's coordinate-descent Lasso at the matching scaling, and the L1 optimality conditions."""

from __future__ import annotations

import numpy as np
import pytest

from ppvi.codegen.runtime import feature_sign


def _objective(a, c, lam, x):
    return 0.5 * x @ a @ x - c @ x + lam @ np.abs(x)


def _lasso(w, v, beta, lam):
    """argmin ½β‖v − W x‖² + λ‖x‖₁ = argmin (1/2D)‖v − W x‖² + (λ/(βD))‖x‖₁, scikit-learn's Lasso."""
    from sklearn.linear_model import Lasso

    d = w.shape[0]
    return Lasso(alpha=lam / (beta * d), fit_intercept=False, tol=1e-15, max_iter=10 ** 6,
                 selection="cyclic").fit(w, v).coef_


def _problems(seed: int, count: int):
    """Unit-norm atoms (D = 3, M = 5 or 8, one atom repeated in every other problem), signals from a few atoms
    plus noise, a noise precision β and an L1 weight λ."""
    rng = np.random.default_rng(seed)
    for k in range(count):
        d, m = 3, (5, 8)[k % 2]
        w = rng.normal(size=(d, m))
        if k % 3 == 0:
            w[:, 1] = w[:, 0]
        w /= np.linalg.norm(w, axis=0)
        v = w @ (rng.normal(size=m) * (rng.random(m) < 0.6)) + 0.1 * rng.normal(size=d)
        beta, lam = float(rng.choice([1.0, 25.0])), float(rng.choice([0.05, 0.3, 1.0]))
        yield w, v, beta, lam


@pytest.mark.parametrize("seed", [0, 1])
def test_the_l1_optimum_of_an_overcomplete_dictionary(seed):
    """Objectives equal to 1e-8 relative (the optimum may not be unique: the objective is), and the optimality
    conditions ∇ + λ sign x = 0 where x ≠ 0, |∇| ≤ λ where x = 0 — from zero and from a wrong warm start."""
    rng = np.random.default_rng(100 + seed)
    for w, v, beta, lam in _problems(seed, 40):
        a, c, lams = beta * w.T @ w, beta * w.T @ v, np.full(w.shape[1], lam)
        best = _objective(a, c, lams, _lasso(w, v, beta, lam))
        for start in (np.zeros(w.shape[1]), rng.normal(size=w.shape[1])):
            x = start.copy()
            feature_sign(a, c, lams, x)
            f = _objective(a, c, lams, x)
            assert f <= best + 1e-8 * max(1.0, abs(best)), (f, best, x)
            assert f == pytest.approx(best, rel=1e-8, abs=1e-10)
            g = a @ x - c
            scale = 1e-8 * (1 + np.abs(c).max() + lam)
            on = x != 0
            assert np.all(np.abs(g[on] + lam * np.sign(x[on])) <= scale)
            assert np.all(np.abs(g[~on]) <= lam + scale)


def test_a_dictionary_of_one_atom_repeated():
    """Every atom the same: A = β 11ᵀ is rank one; the optimum spreads |x|₁ = (|c₀|/β − λ/β)₊ / 1 in any way."""
    m, beta, lam = 4, 2.0, 0.5
    w = np.ones((1, m))
    v = np.array([3.0])
    a, c, lams = beta * w.T @ w, beta * w.T @ v, np.full(m, lam)
    x = np.zeros(m)
    feature_sign(a, c, lams, x)
    s = x.sum()
    assert s == pytest.approx(v[0] - lam / beta, rel=1e-12)
    assert np.all(x >= 0)
