"""Names never change the fit (issue 14, item 5): no decision of the code generator reads how a name is spelt
or where it sorts, and generated names cannot collide whatever a model calls its variables and indices."""

from __future__ import annotations

import keyword
import re

import numpy as np
import pytest

import ppvi
from ppvi.api import Model
from ppvi.codegen import runtime
from ppvi.codegen.emit import FIXED, Names
from ppvi.codegen.plan import KINDS
from ppvi.codegen.module import generate
from ppvi.derive import derive
from ppvi.language import loads
from programs import FA_BAYES, MODELS, factor_data, program

HOSTILE = ["np", "math", "prange", "njit", "update_x", "x", "_x", "lambda", "PLAN", "i0_k", "_pass", "_C", "_s0",
           "add_to", "finish_normal", "xlogy", "digamma", "statistics", "local_block", "expected_log_joint",
           "m_x__x", "q_x", "x__mean", "damped_x", "local_step_x", "class", "import", "def", "print", "t_0", "n_N",
           "Plan", "KernelSpec"]


def rename(text: str, mapping: dict[str, str]) -> str:
    """The model with its identifiers renamed (comments and the header dropped)."""
    lines = [line.split("#")[0].rstrip() for line in text.splitlines() if not line.startswith("model ")]
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, mapping)) + r")\b")
    return "\n".join(pattern.sub(lambda m: mapping[m.group(1)], line) for line in lines if line.strip()) + "\n"


# ------------------------------------------------------------------------------- the scheme
def _decode(word: str) -> tuple | None:
    """A generated name -> (kind, identifier, suffix); None for the module's own names and temporaries."""
    if word.startswith("o_"):
        return ("o_", word[2:], "") if _decode(word[2:]) else None
    for kind in ("q_", "m_", "e_"):
        if word.startswith(kind):
            var, _, suffix = word[len(kind):].rpartition("__")
            return (kind, var, suffix) if var and suffix and "_" not in suffix else None
    if word.startswith("c_"):
        what, _, name = word[2:].partition("__")
        return ("c_", name, what)
    m = re.fullmatch(r"i(\d+)_(.+)", word)
    if m:
        return ("i", m.group(2), m.group(1))
    for kind in KINDS:
        if word.startswith(kind):
            return (kind, word[len(kind):], "")
    return None


def test_generated_names_are_prefix_free_and_never_the_modules_own():
    names = Names()
    module_own = set(FIXED) | {"np", "math", "njit", "prange"} | {n for n in vars(runtime) if not n.startswith("_")}
    made = {}
    for ident in HOSTILE:
        for kind, name in [("v", names.variable(ident)), ("n", names.dim(ident)), ("h", names.entropy(ident)),
                           ("l", names.log_normaliser(ident)), ("g", names.gradient(ident)),
                           ("q", names.qparam(ident, "mean")), ("m", names.moment(ident, "x")),
                           ("e", names.natural(ident, "x2")), ("o", names.snapshot(names.qparam(ident, "sd"))),
                           ("c", names.constant("order", ident)), ("u", Names.kernel("update", ident)),
                           ("d", Names.kernel("damped", ident)), ("s", Names.kernel("local_step", ident))]:
            assert name not in made, f"{name}: {made.get(name)} and {(kind, ident)}"
            made[name] = (kind, ident)
            assert name not in module_own and not keyword.iskeyword(name) and not name.startswith("_")
            assert _decode(name) is not None and ident in _decode(name[2:] if kind == "o" else name)
    for a in KINDS:
        assert not any(b != a and b.startswith(a) for b in KINDS), a
        assert not any(f.startswith(a) for f in module_own), a


def test_a_latent_named_mu_damped_beside_mu_has_kernels_of_its_own():
    """Before: both produced ``update_mu_damped`` (mu's damped kernel, mu_damped's update), one overwriting
    the other.  A chain of Gaussians, where mean field gets the exact posterior means: the parallel (damped)
    and the sequential schedule must both reach them."""
    text = ("dim N\ndata y[N]\nmu ~ Normal(0, sd = 10)\nmu_damped ~ Normal(mu, sd = 1)\n"
            "mu_damped_damped ~ Normal(mu_damped, sd = 1)\nfor n in N:\n    y[n] ~ Normal(mu_damped_damped, sd = 1)\n")
    y = np.random.default_rng(3).normal(2.0, 1.0, size=30)
    src = generate(derive(loads(text, "<chain>")))
    defs = re.findall(r"^def (\w+)\(", src, re.M)
    assert len(defs) == len(set(defs)), defs
    j = np.array([[1 / 100 + 1, -1, 0], [-1, 2, -1], [0, -1, 1 + len(y)]])
    exact = np.linalg.solve(j, [0.0, 0.0, y.sum()])
    plain = Model(loads(rename(text, {"mu": "a", "mu_damped": "b", "mu_damped_damped": "c"}), "<abc>"))
    for damping in (None, 0.5):
        p = program(loads(text, "<chain>"), {"y": y})
        for _ in range(3000):         # (not to the ELBO's convergence: it is flat to rounding 1e-7 away)
            for var in p.schedule(damped=damping is not None):
                p.update(var, damping)
        got = [p.state[f"q_{v}__mean"][0] for v in ("mu", "mu_damped", "mu_damped_damped")]
        assert got == pytest.approx(exact, rel=1e-10), damping
        sd = [p.state[f"q_{v}__sd"][0] for v in ("mu", "mu_damped", "mu_damped_damped")]
        assert sd == pytest.approx(1 / np.sqrt(np.diag(j)), rel=1e-10)
        r = Model(loads(text, "<chain>")).fit({"y": y}, max_iter=50, tol=0.0, damping=damping)
        assert r.elbo_trace == plain.fit({"y": y}, max_iter=50, tol=0.0, damping=damping).elbo_trace


# ------------------------------------------------------------------ the same code whatever the names
LDA = (MODELS / "lda.ppvi").read_text()
GMM_1D = (MODELS / "gmm_1d.ppvi").read_text()
LDA_NAMES = ["T", "M", "V", "K", "alpha", "eta", "doc", "word", "d", "k", "t", "theta", "phi", "z"]
GMM_1D_NAMES = ["N", "K", "alpha0", "m0", "eruptions", "pi", "k", "mu", "tau", "n", "z"]
FA_NAMES = ["N", "D", "M", "y", "d", "psi", "m", "W", "n", "X"]
# Two data plates sharing one exp-linked weight vector (as tests/derive/test_newton.py's RATES): its joint Newton block
# caches an exponent per plate, taken once in the derivation's order, which followed the names (found by the
# harness: test_metamorphic's hostile_reversed rewrite changed q(w) in its last bits).
TWO_RATES = """\
model two_rates
dim N, M, D
data a[N, D]
data c[M, D]
data b[N] : positive
data e[M] : positive
for j in D:
    w[j] ~ Normal(0, 1)
for n in N:
    b[n] ~ Exponential(exp(dot(a[n], w)))
for m in M:
    e[m] ~ Gamma(3, exp(dot(c[m], w)))
"""
TWO_RATES_NAMES = ["N", "M", "D", "a", "b", "c", "e", "j", "w", "n", "m"]
# Exp links with a block Newton step (an intercept joining it, two weight vectors in one exponent, one vector on two
# plates), and two data arrays multiplying one weight vector: its Gram features x, v, x², v², x·v, whose columns
# gram_form took in SymPy's traversal order, which follows the names.
EXP_LINKS = {"poisson_regression": ((MODELS / "poisson_regression.ppvi").read_text(),
                                   ["N", "D", "x", "y", "b", "j", "w", "n"]),
             "two_sums": ((MODELS / "links" / "two_sums.ppvi").read_text(),
                          ["N", "D", "K", "x", "z", "y", "b", "j", "w", "k", "u", "n"]),
             "two_rates": (TWO_RATES, TWO_RATES_NAMES)}
EXP_LINKS["two_features"] = (EXP_LINKS["two_sums"][0].replace("dim N, D, K", "dim N, D").replace("z[N, K]", "v[N, D]")
                             .replace("for k in K:\n    u[k] ~ Normal(0, sd = 1.5)\n", "")
                             .replace("sum(k in K: z[n, k] * u[k])", "sum(j in D: v[n, j] * w[j])"),
                             ["N", "D", "x", "v", "y", "b", "j", "w", "n"])


def _normalised(src: str, back: dict[str, str]) -> str:
    """The kernels of a generated module (PLAN and comments left out) with every generated name decoded, its identifier
    mapped by ``back`` and encoded again; in each kernel its arguments sorted and each loop index renamed where
    a loop (or an assignment) binds it, by the order of the bindings (which index objects a derivation shares
    is not the code generator's to decide)."""
    src = src[: src.index("\nPLAN = ")]

    def word(w: str) -> str:
        snap = w.startswith("o_")
        d = _decode(w[2:] if snap else w)
        if d is None or d[0] == "i":
            return w
        kind, ident, suffix = d
        ident = back.get(ident, ident)
        if kind in ("q_", "m_", "e_"):
            name = f"{kind}{ident}__{suffix}"
        elif kind == "c_":
            name = f"c_{suffix}__{ident}"
        else:
            name = kind + ident
        return "o_" + name if snap else name

    out = []
    for kernel in src.split("\n@njit"):
        lines, scopes, count = [], [], 0        # scopes: (indent, index, new name), innermost last
        for line in kernel.splitlines():
            if line.lstrip().startswith("#"):
                continue        # (provenance comments: model lines, which a renamed text may move)
            indent = len(line) - len(line.lstrip())
            while scopes and line.strip() and scopes[-1][0] >= indent:
                scopes.pop()
            bind = re.match(r"\s*(?:for (i\d+_\w+) in|(i\d+_\w+) = )", line)
            if bind:
                # (a loop binds the lines below it; an assignment those from it on, at its indent)
                scopes.append((indent if bind.group(1) else indent - 1, bind.group(1) or bind.group(2), f"j{count}"))
                count += 1
            names = {old: new for _, old, new in scopes}
            line = re.sub(r"\b[A-Za-z_][A-Za-z0-9_]*\b", lambda m: names.get(m.group(0)) or word(m.group(0)), line)
            lines.append(re.sub(r"^def (\w+)\((.*)\):$",
                                lambda m: f"def {m.group(1)}({', '.join(sorted(m.group(2).split(', ')))}):", line))
        out.append("\n".join(lines))
    return "\n@njit".join(out)


def _source(text: str, dims: dict | None = None) -> str:
    return generate(derive(loads(text, "<model>")), dims)


@pytest.mark.parametrize("text, idents, fixed, first", [(LDA, LDA_NAMES, {"K": 4}, 0),
                                                        (GMM_1D, GMM_1D_NAMES, {"K": 3}, 14),
                                                        (FA_BAYES, FA_NAMES, {"M": 2}, 21),
                                                        (TWO_RATES, TWO_RATES_NAMES, {}, 0)],
                         ids=["lda", "gmm_1d", "fa_bayes", "two_rates"])
@pytest.mark.parametrize("how", ["reversed", "hostile"])
def test_renaming_every_variable_index_and_dim_gives_the_same_kernels(text, idents, fixed, first, how):
    """Names sorted the other way round, or hostile ones (Python's and the module's own names, generated
    names, keywords): the same kernels, name for name, so the same arithmetic in the same order."""
    if how == "reversed":
        # each name mapped to one that sorts on the other side of the rest: zz…, then aa…
        order = sorted(idents)
        mapping = {n: ("a" * (len(order) - r) if r % 2 else "z" * (r + 1)) + "q" for r, n in enumerate(order)}
    else:
        mapping = dict(zip(idents, HOSTILE[first:] + HOSTILE[:first]))
    back = {v: k for k, v in mapping.items()}
    new_fixed = {mapping[k]: v for k, v in fixed.items()}
    plain = _normalised(_source(text, fixed), {})
    other = _normalised(_source(rename(text, mapping), new_fixed), back)
    assert other == plain


def flipped(idents: list[str]) -> dict[str, str]:
    """Every name to a hostile one (HOSTILE's), in the reverse of the names' sort order."""
    return dict(zip(sorted(idents), sorted(HOSTILE[:len(idents)], reverse=True)))


def _exp_link_data(idents: list[str], mapping: dict[str, str]) -> dict:
    """Small data for EXP_LINKS's models, under their renamed names: covariates, counts, positive values."""
    rng = np.random.default_rng(3)
    n, m, d, k = 30, 20, 3, 2
    shapes = {"x": (n, d), "z": (n, k), "v": (n, d), "a": (n, d), "c": (m, d)}
    data = {name: rng.normal(scale=0.5, size=shape) for name, shape in shapes.items() if name in idents}
    if "e" in idents:       # (two_rates: positive waits b[N] and values e[M])
        data.update(b=rng.gamma(2.0, size=n), e=rng.gamma(2.0, size=m))
    if "y" in idents:
        data["y"] = rng.poisson(2.0, size=n).astype(float)
    return {mapping.get(name, name): value for name, value in data.items()}


def _plain_fit(text: str, data: dict) -> tuple:
    """Six sweeps with the kernels as plain Python (the same generated source, nothing compiled): the ELBO trace
    and the state."""
    from ppvi.codegen.cache import fixed_sizes, load as load_module
    from ppvi.infer.cavi import fit
    from ppvi.infer.program import Program
    from ppvi.io.data import Source, bind
    from programs import plain

    m = loads(text, "<exp link>")
    bound = bind(m, Source("<data>", data, tuple(data)), None)
    module, _ = load_module(m, fixed=fixed_sizes(m, bound.sizes))
    f = fit(Program.build(m, plain(module), bound), max_iter=6, tol=0.0)
    return f.trace, f.program.state


@pytest.mark.long
@pytest.mark.parametrize("name", list(EXP_LINKS))
def test_exp_links_renamed_in_the_reverse_sort_order_give_the_same_kernels_and_fit(name):
    """Every name hostile and sorting the other way round: the same kernels up to the renaming (the block Newton
    step's Gram columns included) and the same fit bit for bit.  two_features failed before: F's columns of x and v
    (and of their squares) swapped."""
    text, idents = EXP_LINKS[name]
    mapping = flipped(idents)
    back = {v: k for k, v in mapping.items()}
    assert _normalised(_source(rename(text, mapping)), back) == _normalised(_source(text), {})
    (trace, state), (other_trace, other) = (_plain_fit(t, _exp_link_data(idents, mp))
                                            for t, mp in ((text, {}), (rename(text, mapping), mapping)))
    assert other_trace == trace
    for var in ("w", "u", "b"):
        for key in ("mean", "sd") if f"q_{var}__mean" in state else ():     # (the latents: b is data in two_rates)
            assert np.array_equal(other[f"q_{mapping[var]}__{key}"], state[f"q_{var}__{key}"]), (var, key)


# ---------------------------------------------------------------------------------- the fits
def _lda_fit(text: str) -> tuple:
    f = np.load(MODELS / "lda.npz")
    r = Model(loads(text, "<lda>")).fit({"doc": f["doc"], "word": f["word"]}, max_iter=8, tol=0.0, seed=4)
    return r, r.fit.program.plan


@pytest.mark.parametrize("name", ["m", pytest.param("a", marks=pytest.mark.long)])
def test_lda_with_its_document_index_renamed_keeps_the_group_block_and_the_fit(name):
    """Before: with `d` renamed to `m` (after `k`) the group block was silently dropped and the fit converged
    elsewhere (ELBO −14057.8 against −14036.1): the statistic's axes were ordered by the indices' names."""
    plain, plan = _lda_fit(LDA)
    other, other_plan = _lda_fit(rename(LDA, {"d": name}))
    assert plan.block.members == other_plan.block.members == ("theta", "z")
    assert other.elbo_trace == plain.elbo_trace
    for var in ("theta", "phi", "z"):
        for key, value in plain.q[var].items():
            if isinstance(value, np.ndarray):
                assert np.array_equal(other.q[var][key], value), (var, key)


def test_hostile_names_fit_bit_for_bit_like_plain_names():
    mapping = dict(zip(FA_NAMES, HOSTILE))
    y = factor_data(n=200, d=4)["y"]
    start = np.random.default_rng(5).normal(size=(200, 2))

    def fit(text, names):
        p = program(loads(text, "<fa>"), {names["y"]: y}, dims=None)
        p.state[f"q_{names['X']}__mean"][...] = start
        p.stale = True
        elbos = []
        for _ in range(5):
            for var in p.schedule():
                p.update(var)
            elbos.append(p.elbo())
        return elbos, p.state[f"q_{names['W']}__mean"].copy()

    plain = fit(FA_BAYES, {n: n for n in FA_NAMES})
    hostile = fit(rename(FA_BAYES, mapping), mapping)
    assert hostile[0] == plain[0]
    assert np.array_equal(hostile[1], plain[1])
