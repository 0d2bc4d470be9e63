"""One home per family (docs/architecture.md, "The family unit"): no module outside ppvi/families names a
family, and every unit is complete and wired to its SymPy side and its Numba finish, all in its folder."""

from __future__ import annotations

import ast
import functools
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from ppvi.families import FAMILIES, JOINT, Q_FAMILIES, UNITS, family, unit_of
from ppvi.families.unit import Unit

ROOT = pathlib.Path(__file__).resolve().parents[2] / "ppvi"

# Modules that may still spell a family's name, and why.  Shrink it; never grow it without a reason here.
ALLOWED = {
    # the language's own table: the names a model may write, with their arguments and supports (docs/language.md),
    # including distributions that are no family of their own (StudentT, NegativeBinomial, StickBreaking)
    "language/distributions.py": "the language's signatures",
    "language/check.py": "the language's rules on particular distributions (docs/language.md)",
    # the SymPy side that is not yet in the units (issue 16, item 4: left for the derive refactor)
    "derive/lower.py": "not yet moved: index-notation log densities and η of each prior",
    "derive/meanfield.py": "not yet moved: Bernoulli's x² = x, a flat Normal, Pólya-Gamma labels",
    "derive/qfamily.py": "not yet moved: index-notation moments and entropy of the vector families",
    "derive/render.py": "not yet moved: the texts of a logistic link's b, an exp link, a MvNormal's missing block",
    "derive/chain.py": "not yet moved: which chains are Gaussian or Categorical",
    # code generation is another refactor's (issue 16, items 2-3): its finish calls name the runtime finish
    # each unit names (Unit.finish); the chain writer makes the q its block updates
    "codegen/module.py": "being refactored into the kernel IR; its finishes are the units' (Unit.finish)",
    "codegen/chain.py": "a chain's q is a Categorical or a MvNormal by construction",
}

NAMES = frozenset(UNITS)


def _named(source: str) -> list[tuple[int, str]]:
    """Every string constant in a module's source that is a family's name, with its line."""
    tree = ast.parse(source)
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in NAMES]


@functools.cache
def _hits() -> dict[str, list[tuple[int, str]]]:
    """Every module of ppvi outside ppvi/families that names a family (each parsed once)."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if not rel.startswith(("families/", "grammar/")):
            hits = _named(path.read_text(encoding="utf-8"))
            if hits:
                out[rel] = hits
    return out


def test_no_module_outside_the_families_names_a_family():
    found = {rel: hits for rel, hits in _hits().items() if rel not in ALLOWED}
    assert not found, f"family names outside ppvi/families (ask the family's unit instead): {found}"


def test_the_allow_list_is_not_stale():
    """Every allowed module still names a family: an entry that is no longer needed goes."""
    assert not set(ALLOWED) - set(_hits()), "these name no family any more: remove them from ALLOWED"


def test_the_grep_sees_a_family_name():
    """The check can fail: a branch on a family name is found."""
    assert _named('if q.family == "Wishart":\n    pass\nx = {"Gamma": 1}\n') == [(1, "Wishart"), (3, "Gamma")]
    assert _named('"""A Wishart q."""\nf"{family}"\n') == []


@pytest.mark.parametrize("name", sorted(UNITS))
def test_each_unit_is_its_symbolic_family(name):
    unit = UNITS[name]
    assert unit.name == name
    assert type(FAMILIES[name]).__module__ == f"{type(unit).__module__}.symbolic"
    symbolic = family(name)
    # the host side's standard parameters are the SymPy side's (the q result schema, docs/cli.md)
    assert unit.standard == symbolic.params
    if unit.q:        # (an exponential family, or one with a q side of its own: Binomial, ppvi.families.base)
        assert name in Q_FAMILIES and (symbolic.exponential or symbolic.q_statistics)


def _functions(path: pathlib.Path) -> set[str]:
    return {n.name for n in ast.parse(path.read_text(encoding="utf-8")).body if isinstance(n, ast.FunctionDef)}


def _tree(path: pathlib.Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def _defined(path: pathlib.Path) -> set[str]:
    """The module-level names ``path`` defines (functions, and names assigned)."""
    out = set()
    for n in _tree(path).body:
        if isinstance(n, ast.FunctionDef):
            out.add(n.name)
        elif isinstance(n, ast.Assign):
            out |= {t.id for t in n.targets if isinstance(t, ast.Name)}
    return out


def _exported(path: pathlib.Path) -> list[str]:
    """A module's ``__all__`` (read, not imported: Numba stays unloaded)."""
    for n in _tree(path).body:
        if isinstance(n, ast.Assign) and [getattr(t, "id", None) for t in n.targets] == ["__all__"]:
            return [e.value for e in n.value.elts]
    raise AssertionError(f"{path}: no __all__")


def _folder(unit: Unit) -> pathlib.Path:
    return pathlib.Path(sys.modules[type(unit).__module__].__file__).parent


def test_each_finish_lives_in_its_familys_folder():
    """A family's Numba side is its folder's ``finish.py`` (registry.finish imports it): the finish its unit
    names is defined and exported there (``__all__``, which ppvi.codegen.runtime re-exports for generated code),
    and a q family's ``set_q`` (its finish over every element: a warm start's q).  No two families export a
    name, the runtime defines none of them, and the warm start keeps no table of finishes of its own."""
    runtime = _functions(ROOT / "codegen" / "runtime.py")
    owner: dict[str, str] = {}
    for unit in (*UNITS.values(), *JOINT.values()):
        path = _folder(unit) / "finish.py"
        if unit.finish is None:
            assert not unit.q and not path.exists(), unit.name
            continue
        assert path.exists(), f"{unit.name}: its finish is not in its folder ({path.relative_to(ROOT)})"
        exported, defined = _exported(path), _defined(path)
        assert unit.finish in exported and set(exported) <= defined, unit.name
        assert ("set_q" in defined) == unit.q, unit.name
        assert not unit.q or (type(unit).natural is not Unit.natural and type(unit).init is not Unit.init), unit.name
        for name in exported:
            assert owner.setdefault(name, unit.name) == unit.name, (name, owner[name], unit.name)
    assert not runtime & set(owner), f"finishes defined in codegen/runtime.py: {runtime & set(owner)}"
    warm = _tree(ROOT / "infer" / "warm.py")
    assert not {n.id for n in ast.walk(warm) if isinstance(n, ast.Name)} & {"_FINISH", *owner}, "infer/warm.py"
    assert not {a.name for n in ast.walk(warm) if isinstance(n, ast.ImportFrom) for a in n.names} & set(owner)


def test_the_registry_finds_each_finish_and_the_runtime_re_exports_it():
    """``registry.finish`` is the one map from a family to its Numba side; generated code's
    ``from ppvi.codegen.runtime import finish_gamma`` gets the same function."""
    from ppvi.codegen import runtime
    from ppvi.families.registry import FINISHED, finish

    assert set(FINISHED) == {u.name for u in (*UNITS.values(), *JOINT.values()) if u.finish}
    for name in FINISHED:
        module, unit = finish(name), unit_of(name)
        assert pathlib.Path(module.__file__).parent == _folder(unit)
        assert all(getattr(runtime, f) is getattr(module, f) for f in module.__all__), name
    with pytest.raises(KeyError):
        finish("Exponential")


def test_point_is_no_family_of_the_language():
    assert unit_of("point").standard == ("value",) and "point" not in UNITS and "point" not in FAMILIES


def test_the_units_import_no_sympy():
    """The warm path reads the units: importing them (and the numeric law) loads neither SymPy nor Numba."""
    code = ("import sys; import ppvi.families, ppvi.io.posterior; "
            "print(int('sympy' in sys.modules), int('numba' in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(ROOT.parent), "PATH": ""}).stdout.split()
    assert out == ["0", "0"]


@pytest.mark.parametrize("name", Q_FAMILIES)
def test_natural_parameters_agree_with_the_symbolic_side(name):
    """η of a q from its standard parameters: the unit's NumPy against the SymPy side's
    ``natural_from_standard`` (PRML appendix B), at one point of each family."""
    import sympy as sp

    point = {"Normal": {"mean": 0.3, "sd": 1.7}, "Gamma": {"shape": 2.5, "rate": 0.4},
             "Beta": {"a": 1.5, "b": 3.0}, "Bernoulli": {"p": 0.2},
             "Categorical": {"p": [0.2, 0.5, 0.3]}, "Dirichlet": {"alpha": [0.5, 2.0, 4.0]},
             "MvNormal": {"mean": [1.0, -2.0], "cov": [[2.0, 0.3], [0.3, 1.0]]},
             "Wishart": {"df": 4.0, "scale": [[1.0, 0.2], [0.2, 0.5]]},
             "PolyaGamma": {"b": 1.0, "c": 0.7}, "Poisson": {"rate": 2.5}, "Binomial": {"n": 12.0, "p": 0.3},
             "NegativeBinomial": {"r": 3.5, "p": 0.4}}[name]
    got = unit_of(name).natural({k: np.asarray(v, dtype=float) for k, v in point.items()})
    sym = family(name).natural_from_standard({k: sp.Matrix(v) if isinstance(v, list) else sp.Float(v)
                                              for k, v in point.items()})
    assert set(got) == set(sym)
    for key, value in sym.items():
        want = np.array(sp.N(value), dtype=float).reshape(np.shape(got[key]))
        np.testing.assert_allclose(got[key], want, rtol=1e-12)


def test_a_joint_q_has_its_registry_line_and_symbolic_side():
    """``approximate mu, lam jointly``'s q is no distribution of the language, but has its folder's two sides
    and one registry line (registry.JOINT) like every family: no distribution of the language, never
    recognised, found by ``unit_of`` and ``family``."""
    from ppvi.families import JOINT, JOINT_FAMILIES, recognise

    for name, unit in JOINT.items():
        symbolic = family(name)
        assert type(symbolic).__module__ == f"{type(unit).__module__}.symbolic" and JOINT_FAMILIES[name] is symbolic
        assert unit_of(name) is unit and unit.standard == symbolic.params and not unit.q
        assert name not in FAMILIES and name not in UNITS
        assert recognise(symbolic.support, symbolic.statistic_keys) is None


def test_normal_gamma_symbolic_side_is_the_product_of_its_normal_and_gamma():
    """NormalGamma's T, η ↔ θ, A, E[T] = ∇A and entropy against SciPy's N(μ | m, (βλ)⁻¹) Gamma(λ | a, b) (log
    density, entropy by quadrature of the Gamma mixture) and the pair's ELBO term (derive reads it)."""
    import sympy as sp
    from scipy import special, stats

    f = family("NormalGamma")
    theta = {"mean": sp.Rational(3, 10), "beta": sp.Rational(5, 2), "shape": sp.Rational(7, 2), "rate": sp.Rational(6, 5)}
    m, beta, a, b = (float(theta[k]) for k in ("mean", "beta", "shape", "rate"))
    eta = f.natural_from_standard(theta)
    assert {k: float(v) for k, v in f.standard_from_natural(eta).items()} == pytest.approx(
        {k: float(v) for k, v in theta.items()}, rel=1e-14)
    mu, lam = 0.7, 1.9
    want = stats.norm.logpdf(mu, m, (beta * lam) ** -0.5) + stats.gamma.logpdf(lam, a, scale=1 / b)
    assert float(f.log_density((mu, lam), theta)) == pytest.approx(want, rel=1e-12)
    assert float(f.log_density_natural((sp.Float(mu), sp.Float(lam)), eta)) == pytest.approx(want, rel=1e-12)
    # E[T] = ∇A(η)
    syms = {k: sp.Symbol(f"eta_{k}") for k in f.statistic_keys}
    A = f.log_normaliser(syms)
    moments = f.expectations(theta)
    for k in f.statistic_keys:
        assert float(sp.diff(A, syms[k]).subs({syms[j]: eta[j] for j in syms})) == pytest.approx(float(moments[k]))
    # E[λμ²] = E_λ[λ (1/(βλ) + m²)], E[log λ] of the Gamma by SciPy's expect
    assert float(moments["lam_x2"]) == pytest.approx(1 / beta + m * m * stats.gamma.mean(a, scale=1 / b))
    assert float(moments["loglam"]) == pytest.approx(stats.gamma.expect(np.log, (a,), scale=1 / b), rel=1e-9)
    # H = H[Gamma] + E_λ H[N(m, (βλ)⁻¹)]
    h_gamma = stats.gamma.entropy(a, scale=1 / b)
    h_normal = 0.5 * (1 + np.log(2 * np.pi) - np.log(beta)) - 0.5 * (special.digamma(a) - np.log(b))
    assert float(f.entropy(theta)) == pytest.approx(h_gamma + h_normal, rel=1e-12)
    assert float(f.mean(theta)) == m
