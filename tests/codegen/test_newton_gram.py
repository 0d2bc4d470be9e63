"""The block Newton step's sums over the data plate as Gram matrices (codegen.newton.gram_form; docs/derivation.md,
section 10, "Block steps"): Σ_n c·u(n, j)·u'(n, j2)·w(n) is c·(Fᵀ diag(w) F)[(u, j), (u', j2)].

Checked on numbers, nothing compiled: each rewritten expression, its Gram matrices built here in NumPy from the
features and weights gram_form names, equals the original sums written here in NumPy; a sum that is no Gram entry
(a factor reading both elements, a weight that is not an exponent) stays as written.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from ppvi.codegen.newton import GramEntry, gram_form

N, D = 4, 3
n = sp.Idx("n", (0, N - 1))
j, j2 = sp.Idx("j", (0, D - 1)), sp.Idx("j2", (0, D - 1))
x, y, X, m, z = (sp.IndexedBase(s) for s in ("x", "y", "X", "m", "z"))


def _values(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(size=(N, D)), "y": rng.uniform(0.5, 2.0, size=N), "X": rng.uniform(0.1, 3.0, size=N),
            "m": rng.normal(size=D), "z": rng.normal(size=(N, D, D))}


def _number(e: sp.Expr, values: dict, at: dict) -> float:
    """e at the element indices ``at``, every sum expanded by SymPy and every array entry read from ``values``."""
    e = e.xreplace(at).doit()
    return float(e.xreplace({a: values[str(a.base.label)][tuple(int(i) for i in a.indices)]
                             for a in e.atoms(sp.Indexed)}))


def _gram(gram, values: dict) -> np.ndarray:
    """Fᵀ diag(w) F, written here: F's columns the constant, then each feature at j = 0 … D − 1."""
    def at(e, nn, jj=0):
        return _number(e, values, {gram.plate: nn, j: jj})
    cols = [np.ones(N)] + [np.array([at(u, nn, jj) for nn in range(N)]) for u in gram.features for jj in range(D)]
    f, w = np.column_stack(cols), np.array([at(gram.weight, nn) for nn in range(N)])
    return f.T @ (w[:, None] * f)


def _reader(form, values: dict):
    """The rewritten expressions' value at element indices, their Gram matrices built here (once)."""
    grams = [_gram(g, values) for g in form.grams]

    def column(f: int, jj: int) -> int:
        return 0 if f == 0 else 1 + (f - 1) * D + jj

    def read(e: sp.Expr, at: dict) -> float:
        e = e.xreplace(at)
        entries = {}
        for g in e.atoms(GramEntry):
            gi, fa, fb, ja, jb = (int(a) for a in g.args)
            entries[g] = sp.Float(grams[gi][column(fa, ja), column(fb, jb)], 30)
        return _number(e.xreplace(entries), values, {})
    return read


HESSIAN = (m[j] * sp.Sum(X[n] * y[n] * x[n, j] ** 2 * x[n, j2], (n, 0, N - 1))
           + sp.KroneckerDelta(j, j2) * sp.Sum(X[n] * x[n, j] ** 2, (n, 0, N - 1))
           - sp.Sum(X[n] * (x[n, j] + x[n, j2] ** 2) * x[n, j2], (n, 0, N - 1))
           + sp.Sum(x[n, j] * y[n], (n, 0, N - 1)))
GRADIENT = m[j] * sp.Sum(X[n] * x[n, j] ** 2, (n, 0, N - 1)) - sp.Sum(X[n] * x[n, j], (n, 0, N - 1))


def _hessian(v: dict, a: int, b: int) -> float:
    """HESSIAN at (j, j2) = (a, b), in NumPy."""
    x, y, X, m = v["x"], v["y"], v["X"], v["m"]
    return float(m[a] * np.sum(X * y * x[:, a] ** 2 * x[:, b]) + (a == b) * np.sum(X * x[:, a] ** 2)
                 - np.sum(X * (x[:, a] + x[:, b] ** 2) * x[:, b]) + np.sum(x[:, a] * y))


def test_the_sums_read_off_the_gram_matrices_equal_the_sums():
    form = gram_form([GRADIENT, HESSIAN], j, j2, frozenset({X}))
    assert len(form.grams) == 2                      # two weights: X[n], and y[n] X[n]
    assert {g.weight for g in form.grams} == {X[n], X[n] * y[n]}
    assert all(not any(s.has(X) for s in e.atoms(sp.Sum)) for e in form.rewritten)
    assert sp.Sum(x[n, j] * y[n], (n, 0, N - 1)) in form.rewritten[1].atoms(sp.Sum)    # (no exponent: a statistic)
    v = _values()
    read = _reader(form, v)
    for a in range(D):
        gradient = v["m"][a] * np.sum(v["X"] * v["x"][:, a] ** 2) - np.sum(v["X"] * v["x"][:, a])
        assert np.isclose(read(form.rewritten[0], {j: a}), gradient, rtol=1e-12), a
        for b in range(D):
            assert np.isclose(read(form.rewritten[1], {j: a, j2: b}), _hessian(v, a, b), rtol=1e-12), (a, b)


def test_a_sum_that_is_no_gram_entry_stays():
    """A factor reading both elements (z[n, j, j2]) or a weight without an exponent is left a sum over N."""
    both = sp.Sum(X[n] * z[n, j, j2], (n, 0, N - 1))
    mixed = m[j2] * sp.Sum(X[n] * x[n, j], (n, 0, N - 1)) + both
    form = gram_form([mixed], j, j2, frozenset({X}))
    assert both in form.rewritten[0].atoms(sp.Sum)
    v = _values(1)
    read = _reader(form, v)
    for a in range(D):
        for b in range(D):
            want = v["m"][b] * np.sum(v["X"] * v["x"][:, a]) + np.sum(v["X"] * v["z"][:, a, b])
            assert np.isclose(read(form.rewritten[0], {j: a, j2: b}), want, rtol=1e-12), (a, b)


def test_the_columns_follow_the_model_not_the_names():
    """Two data arrays multiplying one weight vector (features u, v, u², v², u·v): the same Gram matrices and
    columns whatever the arrays are called, the first declared first (``rank``: Names.rank's places).  Before, the
    columns went in SymPy's traversal order, which follows the names (tests/codegen/test_names.py, two_features)."""
    def form(first: str, second: str) -> tuple:
        """The form of sums over arrays named ``first`` (declared first) and ``second``, both renamed u and v."""
        a, b = sp.IndexedBase(first), sp.IndexedBase(second)
        eta = a[n, j] + b[n, j]
        exprs = [sp.Sum(X[n] * eta * eta.xreplace({j: j2}), (n, 0, N - 1)),
                 sp.Sum(X[n] * y[n] * eta ** 2, (n, 0, N - 1))]
        f = gram_form(exprs, j, j2, frozenset({X}), {first: 0, second: 1})
        back = {a: sp.IndexedBase("u"), b: sp.IndexedBase("v")}
        return (sp.Tuple(*f.rewritten).xreplace(back),
                [(g.weight, sp.Tuple(*g.features).xreplace(back)) for g in f.grams])

    plain = form("p", "q")
    assert form("q", "p") == plain
    assert [len(features) for _, features in plain[1]] == [5, 5]
    assert plain[1][0][1][:2] == (sp.IndexedBase("u")[n, j], sp.IndexedBase("v")[n, j])
