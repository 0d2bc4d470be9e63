"""Hostile names through ``ppvi run`` (issue 21): every role of a model named with Python keywords,
dunders, SymPy's names, the generated code's own prefixes and helpers, and very long names — each
fit equal to the plain-named model's, entry by entry.

Nothing a model names is ever run or looked up as Python or SymPy (docs/SECURITY.md): ``E`` is not
Euler's number, ``I`` not the imaginary unit, ``N`` not a SymPy function, ``lambda`` not a keyword,
``v_x`` not the mangled name of ``x``.

Every name set compiles a model of its own, so the CI fits two sets that mix every kind of name
(:data:`MIXED`); ``pytest --long`` fits every set of :data:`HOSTILE` and the long names too.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli

# One model with every kind of name: dims, constants, data (real, index, binary), latents of four
# families, and a loop variable.  Every q is conjugate and global, so the fit has one fixed point.
TEMPLATE = """\
dim {NN}
dim {KK} = 3
const {A0}[{KK}] = 1.0
const {M0} = 0.5
data {YY}[{NN}]
data {CC}[{NN}] : index({KK})
data {BB}[{NN}] : binary
{MU} ~ Normal({M0}, sd = 10)
{TAU} ~ Gamma(2, 1)
{PI} ~ Dirichlet({A0})
{TH} ~ Beta(1, 1)
for {nn} in {NN}:
    {YY}[{nn}] ~ Normal({MU}, precision = {TAU})
    {CC}[{nn}] ~ Categorical({PI})
    {BB}[{nn}] ~ Bernoulli({TH})
"""
ROLES = ("NN", "KK", "A0", "M0", "YY", "CC", "BB", "MU", "TAU", "PI", "TH", "nn")
PLAIN = dict(zip(ROLES, ("n_size", "k_size", "alpha0", "m0", "y", "c", "b", "mu", "tau", "weights", "theta", "n")))
LATENTS = ("MU", "TAU", "PI", "TH")

HOSTILE = {
    "python_keywords": ("lambda", "class", "def", "import", "None", "True", "False", "print", "exec", "eval",
                        "return", "yield"),
    "dunders": ("__init__", "__class__", "__builtins__", "__import__", "__dict__", "__name__", "__file__",
                "__spec__", "__loader__", "__main__", "__all__", "_"),
    "sympy_names": ("N", "S", "E", "I", "pi", "oo", "zoo", "Sum", "beta", "gamma", "Symbol", "Idx"),
    "generated_prefixes": ("n_N", "c_inv__P", "v_x", "m_mu__x", "q_mu__mean", "h_x", "e_x__x", "o_v_x", "t_x",
                           "np", "math", "i0_n"),
    "generated_helpers": ("numba", "digamma", "lgamma", "softplus", "sigmoid", "xlogy", "feature_sign", "PLAN",
                          "nb", "prange", "njit", "self"),
    "sympy_functions": ("exp", "log", "sqrt", "Abs", "sign", "loggamma", "polygamma", "KroneckerDelta",
                        "Indexed", "IndexedBase", "Rational", "Float"),
}
# Role i takes the i-th name of a kind chosen in rotation: every kind of name in every CI run, in two models.
_KINDS = sorted(HOSTILE)
MIXED = {f"mixed_{j}": tuple(HOSTILE[_KINDS[(i + j) % len(_KINDS)]][i] for i in range(len(ROLES))) for j in (0, 3)}
LONG = {"long_names": tuple((r.lower() * 240)[:240] if i % 2 == 0 else (r.lower() * 64)[:64]
                            for i, r in enumerate(ROLES))}


def _fit(tmp_path, names: dict[str, str], capsys) -> dict:
    """``ppvi run`` of the template under ``names``, on the same data; the result file's contents."""
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.ppvi").write_text(TEMPLATE.format(**names))
    rng = np.random.default_rng(0)
    np.savez(folder / "model.npz", **{names["YY"]: rng.normal(1.0, 2.0, 20), names["CC"]: rng.integers(0, 3, 20),
                                      names["BB"]: rng.integers(0, 2, 20)})
    code, _, err = run_cli(["run", folder / "model.ppvi", "--quiet", "--tol", "1e-12", "--out",
                            folder / "r.json"], capsys)
    assert code == 0, err
    return json.loads((folder / "r.json").read_text())


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    class _Quiet:     # (a module-scoped fixture has no capsys; run_cli only reads what it captured)
        @staticmethod
        def readouterr():
            return type("C", (), {"out": "", "err": ""})()

    return _fit(tmp_path_factory.mktemp("plain"), PLAIN, _Quiet)


def _same_fit(result: dict, names: dict[str, str], plain: dict) -> None:
    assert result["elbo"] == pytest.approx(plain["elbo"], rel=1e-12, abs=1e-10)
    for role in LATENTS:
        mine, theirs = result["q"][names[role]], plain["q"][PLAIN[role]]
        assert mine["family"] == theirs["family"]
        for key, value in theirs.items():
            if key != "family":
                np.testing.assert_allclose(mine[key], value, rtol=1e-10, atol=1e-12, err_msg=f"{role} {key}")


SETS = ([pytest.param(MIXED[k], False, id=k) for k in sorted(MIXED)]
        + [pytest.param(HOSTILE[k], True, id=k) for k in sorted(HOSTILE)]
        + [pytest.param(LONG["long_names"], True, id="long_names")])


@pytest.mark.parametrize("chosen, long_only", SETS)
def test_hostile_names_fit_as_plain_ones(chosen, long_only, plain, tmp_path, capsys, request):
    if long_only and not request.config.getoption("--long"):
        pytest.skip("a model compiled for each set of names: `pytest --long` (the CI fits the mixed sets)")
    names = dict(zip(ROLES, chosen))
    _same_fit(_fit(tmp_path, names, capsys), names, plain)


# ------------------------------------------------------------------ long names (issue 21, item 13)
def test_kernel_names_are_bounded_and_stay_distinct():
    """A kernel's name is its kind and the identifier, with a long one cut to a prefix and a hash of the whole:
    bounded (Numba's cache file is named after it), and injective — names that share a 240-character prefix,
    differ only at their end or in their kind stay apart, and a kept short name is never a shortened one."""
    from ppvi.codegen.emit import Names
    from ppvi.codegen.plan import KERNEL_NAME_MAX

    stem = "a" * 240
    idents = [stem + "x", stem + "y", stem, "a" * 239 + "x", "b" + stem, "mu", "a" * 48, "a" * 100]
    made = {}
    for ident in idents:
        for kind in ("update", "damped", "local_step"):
            name = Names.kernel(kind, ident)
            assert name.isidentifier() and len(name) <= KERNEL_NAME_MAX + 1, name
            assert name.startswith(f"{kind}_{ident}"[:32]), name      # readable: the kind and the name's start
            assert name not in made, f"{name}: {made.get(name)} and {(kind, ident)}"
            made[name] = (kind, ident)
            assert Names.kernel(kind, ident) == name                    # the same model, the same names
    assert Names.kernel("update", "mu") == "update_mu"                   # short names as before
    # a short identifier spelt like a shortened one is still its own name
    long_made = Names.kernel("update", "c" * 200)
    assert Names.kernel("update", long_made.removeprefix("update_")) != long_made


# Two latents whose 240-character names differ only in their last letter, a data variable and a dim as long.
LONG_MU, LONG_TAU = "m" * 240 + "x", "m" * 240 + "y"
LONG_MODEL = f"""\
dim {"n" * 240}
data {"y" * 240}[{"n" * 240}]
{LONG_MU} ~ Normal(0, sd = 10)
{LONG_TAU} ~ Gamma(2, 1)
for {"i" * 240} in {"n" * 240}:
    {"y" * 240}[{"i" * 240}] ~ Normal({LONG_MU}, precision = {LONG_TAU})
"""


def test_a_model_of_240_character_names_fits_to_the_textbook_fixed_point(tmp_path, capsys):
    """Once OSError ENAMETOOLONG from Numba's cache (exit 1).  The fit must be mean field's fixed point for an
    unknown mean and precision (PRML §10.1.3, with independent priors μ ~ N(0, 10²), τ ~ Gamma(2, 1)):
    q(μ) = N(m, 1/λ), λ = 1/100 + N⟨τ⟩, m = ⟨τ⟩Σy/λ;  q(τ) = Gamma(2 + N/2, 1 + ½Σ⟨(y − μ)²⟩)."""
    y = np.random.default_rng(5).normal(1.5, 0.7, 25)
    (tmp_path / "long.ppvi").write_text(LONG_MODEL)
    np.savez(tmp_path / "long.npz", **{"y" * 240: y})
    code, _, err = run_cli(["run", tmp_path / "long.ppvi", "--quiet", "--tol", "0", "--max-iter", "300",
                            "--out", tmp_path / "r.json"], capsys)
    assert code == 0, err
    q = json.loads((tmp_path / "r.json").read_text())["q"]

    n, s1, s2 = len(y), y.sum(), (y ** 2).sum()
    a, b = 2 + n / 2, 1.0
    for _ in range(500):
        lam = 1 / 100 + n * a / b
        m = (a / b) * s1 / lam
        b = 1 + 0.5 * (s2 - 2 * m * s1 + n * (m ** 2 + 1 / lam))
    assert q[LONG_MU]["mean"] == pytest.approx(m, rel=1e-9)
    assert q[LONG_MU]["sd"] == pytest.approx(lam ** -0.5, rel=1e-9)
    assert q[LONG_TAU]["shape"] == pytest.approx(a, rel=1e-12)
    assert q[LONG_TAU]["rate"] == pytest.approx(b, rel=1e-9)
