"""Canonical and normal forms: a decision never depends on how an index is spelled.

``canonical`` names summation indices by position, so equal sums combine;
``normal_form`` expands products and resolves Kronecker deltas, so an
identically zero polynomial is 0 (issue 14, item 2: the self-dependence check
missed both).
"""

from __future__ import annotations

import sympy as sp

from ppvi.derive.canonical import canonical, is_zero, normal_form
from ppvi.derive.symbols import Symbols

S = Symbols()
N, M = S.dim("N"), S.dim("M")
A, B, C = sp.IndexedBase("A"), sp.IndexedBase("B"), sp.IndexedBase("C")
tau = sp.Symbol("tau", real=True)


def idx(name: str, dim: str = "M") -> sp.Idx:
    return S.index(name, dim)


def test_equal_sums_with_differently_named_indices_combine():
    i, j = idx("i"), idx("j")
    e = canonical(sp.Sum(A[i], (i, 0, M - 1)) - sp.Sum(A[j], (j, 0, M - 1)))
    assert e == 0
    # and the same sum twice is one term, whatever its index was called
    assert canonical(sp.Sum(A[i], (i, 0, M - 1)) + sp.Sum(A[j], (j, 0, M - 1))) == 2 * canonical(
        sp.Sum(A[i], (i, 0, M - 1)))


def test_canonical_indices_never_equal_a_fresh_or_free_index():
    syms = Symbols()
    m = syms.index("m", "M")
    e = canonical(sp.Sum(A[m], (m, 0, M - 1)))
    (bound,) = e.variables
    assert str(bound) == "m′"
    assert bound != syms.fresh("m", "M") and bound != m


def test_canonical_renames_without_capture():
    # the first index already carries the name canonical gives the second: renaming must not capture
    syms = Symbols()
    o, i = syms.index("m", "M"), syms.index("n", "M")
    first = canonical(sp.Sum(A[o] * B[i], (o, 0, M - 1), (i, 0, M - 1)))
    again = canonical(sp.Sum(first.function, *reversed(first.limits)))
    assert again.function.free_symbols & set(again.variables) == set(again.variables)
    x, y = again.variables
    assert x != y and again.function in (A[x] * B[y], A[y] * B[x])


def test_a_product_left_unexpanded_is_zero():
    i = idx("i")
    s1, s2 = sp.Sum(A[i], (i, 0, M - 1)), sp.Sum(B[i], (i, 0, M - 1))
    e = -tau * (-2 * C[0] * s1 + 2 * C[0] * s2) / 2 - tau * (2 * C[0] * s1 - 2 * C[0] * s2) / 2
    assert e != 0            # SymPy's own form keeps it
    assert is_zero(e)


def test_sums_differing_in_index_names_and_order_cancel():
    i, j, k, l_ = idx("i"), idx("j"), idx("k"), idx("l")
    e1 = sp.Sum(sp.Sum(A[i, j] * B[j] * C[i], (j, 0, M - 1)), (i, 0, M - 1))
    e2 = sp.Sum(sp.Sum(C[l_] * B[k] * A[l_, k], (l_, 0, M - 1)), (k, 0, M - 1))
    assert is_zero(e1 - e2)
    assert not is_zero(e1 - sp.Sum(sp.Sum(A[j, i] * B[j] * C[i], (j, 0, M - 1)), (i, 0, M - 1)))


def test_square_of_a_sum_is_the_double_sum():
    i, j = idx("i"), idx("j")
    e = sp.Sum(A[i], (i, 0, M - 1)) ** 2 - sp.Sum(sp.Sum(A[i] * A[j], (j, 0, M - 1)), (i, 0, M - 1))
    assert is_zero(e)
    assert not is_zero(sp.Sum(A[i], (i, 0, M - 1)) ** 2 - sp.Sum(A[i] ** 2, (i, 0, M - 1)))


def test_deltas_are_summed_out_and_normalised():
    i, m, n = idx("i"), idx("m"), idx("n", "N")
    user, item = sp.IndexedBase("user"), sp.IndexedBase("item")
    # Σ_i δ(i, m) A[i] = A[m]
    assert is_zero(sp.Sum(sp.KroneckerDelta(i, m) * A[i], (i, 0, M - 1)) - A[m])
    # δ(u[n], m) δ(v[n], m) = δ(u[n], v[n]) δ(u[n], m): the same event, written two ways
    a, b = user[n], item[n]
    e = (sp.KroneckerDelta(a, m) * sp.KroneckerDelta(b, m) * B[a]
         - sp.KroneckerDelta(a, b) * sp.KroneckerDelta(a, m) * B[b])
    assert is_zero(e)
    assert not is_zero(sp.KroneckerDelta(a, m) * B[a] - sp.KroneckerDelta(b, m) * B[b])


def test_normal_form_keeps_what_is_not_zero():
    i = idx("i")
    assert not is_zero(sp.Sum(A[i] * B[i], (i, 0, M - 1)) - sp.Sum(A[i], (i, 0, M - 1)) * B[0])
    assert not is_zero(tau * A[0] - A[0])
    assert normal_form(sp.Integer(0)) == 0


def test_functions_of_sums_compare_by_their_normal_form():
    i, j = idx("i"), idx("j")
    e = sp.log(sp.Sum(A[i] * (B[i] + C[i]), (i, 0, M - 1))) - sp.log(
        sp.Sum(C[j] * A[j], (j, 0, M - 1)) + sp.Sum(A[j] * B[j], (j, 0, M - 1)))
    assert is_zero(e)


def test_the_self_dependence_guard_names_the_factor_and_says_what_works(monkeypatch):
    """In the paired-comparison model q(s)'s η[x] holds ⟨s[a[t]]⟩ in terms that cancel only where
    δ(u, a[t]) δ(u, b[t]) is read as δ(a[t], b[t]) δ(u, a[t]); a structural test sees a dependence.
    With the normal form disabled the guard fires: it names the factor and does not send the user
    to MAP as if the model were at fault."""
    from pathlib import Path

    import pytest

    from ppvi.derive import meanfield
    from ppvi.derive.meanfield import derive
    from ppvi.errors import PPVIError
    from ppvi.language import load

    path = str(Path(__file__).parent / "literature" / "paired_comparison.ppvi")
    derive(load(path))                              # derives with the normal form
    monkeypatch.setattr(meanfield, "is_zero", lambda e: e == 0)
    with pytest.raises(PPVIError) as err:
        derive(load(path))
    text = str(err.value)
    assert "no conjugate q for `s`" in text and "r[t] ~ Normal(s[a[t]] - s[b[t]], precision = tau)" in text
    assert "limit is ppvi's algebra" in text and "`approximate s by point`" in text


def test_a_simplex_point_gets_the_lagrange_update_when_its_terms_cancel():
    """MAP of Dirichlet weights: ∂L/∂π_k · π_k holds Σ_n [k = c[n]] π_k / π_c[n], which is
    Σ_n [k = c[n]]; on the normal form the update is π_k ∝ α_k − 1 + n_k (before: gradient steps)."""
    import numpy as np

    from ppvi.derive.meanfield import derive
    from ppvi.derive.numeric import Env, evaluate
    from ppvi.language import loads

    d = derive(loads("dim N\ndim K = 3\nconst alpha[K] = 2.0\ndata c[N] : index(K)\npi ~ Dirichlet(alpha)\n"
                     "for n in N:\n    c[n] ~ Categorical(pi)\napproximate pi by point\n"))
    up = d.points["pi"]
    assert up.method == "simplex"
    c = np.array([0, 2, 2, 1, 2, 0, 2])
    alpha = np.array([2.0, 1.5, 3.0])
    env = Env({"c": c, "alpha": alpha, "pi": np.full(3, 1 / 3)}, {}, {"N": len(c), "K": 3})
    got = [evaluate(up.value, env, {up.index[0]: k}) for k in range(3)]
    assert np.allclose(got, alpha - 1 + np.bincount(c, minlength=3))
