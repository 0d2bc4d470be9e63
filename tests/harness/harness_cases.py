"""The harness's corpus: every model it checks, each with small valid data.

Cases come from five places, found anew on every run:

* the reproductions of issue 14 and the faults the harness found (below; their names are stable);
* every ``models/*.ppvi`` and ``models/sequences/*.ppvi`` example;
* ``tests/corpus/registry.py``'s ``CORPUS`` when that file exists (literature models);
* every model written inline in the test suite (a string constant of a test file that checks as a model);
* ``tests/derive/nonconjugate/*.ppvi``, which derive must refuse with a PPVIError.

Data: a case's own file cut to a few rows, else drawn from the declarations alone (:func:`random_data`): any
valid data serve checks that compare two computations of the same quantity, and small sizes keep the
reference evaluator (a tree walk) quick.
"""

from __future__ import annotations

import ast as pyast
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"
TESTS = ROOT / "tests"
REGISTRY = TESTS / "corpus" / "registry.py"

# Sizes of the dims random data give: the data plate, the other dims, the ranges of index data.
PLATE_SIZE = 16
OTHER_SIZE = 3
RANGE_SIZE = 4
MAX_FIXED = 10           # a dim the model fixes larger than this is overridden (--dim) to keep checks quick
MAX_AXIS = 16            # a data file's axes other than the data plate are cut to this (D of 64 pixels)


@dataclass(frozen=True)
class Case:
    """One model of the harness's corpus.

    ``text`` the model; ``data`` arrays by name, or {"path": a data file} (None: drawn by
    :func:`random_data`); ``dims`` overrides as ``--dim``; ``known`` a registry case's own known failure
    (of its fit against its reference: the harness's findings are in harness_known).
    """

    name: str
    text: str
    source: str
    data: dict | None = None
    dims: dict = field(default_factory=dict)
    known: str | None = None
    refused: bool = False          # the model is not conjugate: derive must refuse it with a PPVIError
    chains: bool = False           # a chain the derivation does not handle yet (ppvi.derive.chain.refusal):
                                   # compiling must refuse it


# ------------------------------------------------------------------ issue 14
def _constant(path: Path, name: str) -> str:
    """The string constant ``name`` of a test file (read, not imported: one text of a model in the suite)."""
    for node in pyast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, pyast.Assign) and any(isinstance(t, pyast.Name) and t.id == name for t in node.targets):
            return node.value.value
    raise LookupError(f"{path} has no constant {name}")


# Item 1: a local latent's mean reaches the parallel local step under two names (q_X__mean and m_X__x); the
# model of the codegen tests (tests/codegen/programs.py), kept here under the issue's name.
FACTOR_DATA_W = _constant(TESTS / "codegen" / "programs.py", "FA_KNOWN_W")

# Item 1 again: probabilistic PCA by variational EM (W a param), the codegen tests' text too.
PPCA_EM = _constant(TESTS / "codegen" / "programs.py", "PPCA_EM")

# Item 2: a conjugate bilinear model refused because the precision is a named scalar.
BILINEAR_CONST_TAU = """
dim N, D
dim M = 2
const tau = 2.0
data x[N, D]
for d in D:
    for m in M:
        W[d, m] ~ Normal(0, 1)
for n in N:
    for m in M:
        z[n, m] ~ Normal(0, 1)
    for d in D:
        x[n, d] ~ Normal(sum(m in M: W[d, m] * z[n, m]), precision = tau)
"""

# Item 2 with a latent precision (fully Bayesian factor analysis with one noise level).
BILINEAR_GAMMA_TAU = BILINEAR_CONST_TAU.replace("const tau = 2.0", "tau ~ Gamma(1, 1)")

# Items 2 and 4: Bayesian probabilistic matrix factorisation in long format (ratings r[t] of user[t], item[t]).
PMF_LONG = """
dim T, U, I
dim K = 2
const tau = 2.0
data user[T] : index(U)
data item[T] : index(I)
data r[T]
for u in U:
    for k in K:
        P[u, k] ~ Normal(0, 1)
for i in I:
    for k in K:
        Q[i, k] ~ Normal(0, 1)
for t in T:
    r[t] ~ Normal(sum(k in K: P[user[t], k] * Q[item[t], k]), precision = tau)
"""

# Item 4 alone: the same with a numeric precision, which derives; its statistic of P Q at data-valued
# indices must be a scatter over the ratings, not an array over [items, users, items, users].
PMF_LONG_LITERAL = PMF_LONG.replace("const tau = 2.0\n", "").replace("precision = tau", "precision = 2.0")

ISSUE_14 = [      # (what each shows today: harness_known)
    Case("issue14:factor_data_W", FACTOR_DATA_W, "issue 14 item 1"),
    Case("issue14:ppca_em", PPCA_EM, "issue 14 item 1"),
    Case("issue14:bilinear_const_tau", BILINEAR_CONST_TAU, "issue 14 item 2"),
    Case("issue14:bilinear_gamma_tau", BILINEAR_GAMMA_TAU, "issue 14 item 2"),
    Case("issue14:pmf_long", PMF_LONG, "issue 14 items 2 and 4"),
    Case("issue14:pmf_long_literal", PMF_LONG_LITERAL, "issue 14 item 4"),
]


# ------------------------------------------------------------------ found by the harness
# Per-group mean and precision, both read at the data-valued index grp[n]: the statistics Σ_n [g = grp[n]]
# [h = grp[n]] x[n] are kept over [G, G] (and the pass loops over G for every n), not scattered into [G].
GROUP_MEAN_AND_PRECISION = """
dim N, G
data grp[N] : index(G)
data x[N]
for g in G:
    mu[g] ~ Normal(0, sd = 10)
    tau[g] ~ Gamma(1, 1)
for n in N:
    x[n] ~ Normal(mu[grp[n]], precision = tau[grp[n]])
"""

# A group block (θ[grp[n]] with z[n]) beside a param: the start's E-step walks Program.schedule(), whose block
# entry "theta, z" is neither a latent nor a point, and the fit ends in a KeyError.
GROUPED_MIXTURE_WITH_PARAM = """
dim N, G
dim K = 2
const a[K] = 1.0
data grp[N] : index(G)
data x[N]
param m[K]
for g in G:
    theta[g] ~ Dirichlet(a)
for n in N:
    z[n] ~ Categorical(theta[grp[n]])
    x[n] ~ Normal(m[z[n]], 1)
"""

# MAP sparse codes in an overcomplete dictionary (5 atoms, 3 dimensions): feature-sign search can stop at a
# code that is not the L1 optimum (its active atoms dependent).
OVERCOMPLETE_SPARSE_CODES = """
dim N
dim D = 3
dim M = 5
data v[N, D]
data W[D, M]
for n in N:
    for i in M:
        h[n, i] ~ Laplace(0, 1 / 0.3)
    for j in D:
        v[n, j] ~ Normal(sum(i in M: W[j, i] * h[n, i]), precision = 1.0)
approximate h by point
"""

def _overcomplete_data(n: int = 200) -> dict[str, np.ndarray]:
    """Unit-norm atoms in general position, signals from a few of them plus noise."""
    rng = np.random.default_rng(5)
    w = rng.normal(size=(3, 5))
    w /= np.linalg.norm(w, axis=0)
    codes = rng.normal(size=(n, 5)) * (rng.random((n, 5)) < 0.4)
    return {"W": w, "v": codes @ w.T + 0.1 * rng.normal(size=(n, 3))}


FOUND = [
    Case("found:group_mean_and_precision", GROUP_MEAN_AND_PRECISION, "test_random_models[groups]"),
    Case("found:grouped_mixture_with_param", GROUPED_MIXTURE_WITH_PARAM, "test_random_models[mixtures]"),
    Case("found:overcomplete_sparse_codes", OVERCOMPLETE_SPARSE_CODES, "test_kernels (SPARSE_FIXED)",
         data=_overcomplete_data()),
]


# The cases CI compiles (check 1, the thread probe): Numba takes 30–60 s per model cold on 2 cores, so one,
# issue 14 item 1's (a parallel local step of Normal latents writing the statistics it reads).  In CI every
# other case runs its kernels as plain Python (``py_func``); ``--long`` compiles every case.
COMPILED_IN_CI = ("issue14:factor_data_W",)
# The cases CI puts through checks 1–4 (a tenth of a minute each): issue 14's reproductions and the faults
# found, and one model of each kind the corpus has beside them — a mixture (Categorical, Dirichlet, Normal,
# Gamma), a group block (LDA), params (EM), MvNormal and Wishart at data-valued indices (BPMF), a Wishart from
# data, Beta, Gamma-Poisson, Categorical and Gaussian chains, a chain on ragged sequences, Pólya-Gamma weights
# (a logistic link), Newton-updated Normals (an exp link), imputed missing entries, a Normal–Gamma pair.  Every
# other case derives, generates and fits in CI (test_metamorphic).
CHECKED_IN_CI = frozenset(c.name for c in ISSUE_14 + FOUND) | {
    "models/gmm_1d", "models/lda", "models/em_gmm", "models/bpmf", "corpus:wishart_precision",
    "models/beta_bernoulli", "models/gamma_poisson",
    "inline:test_chains:SEQUENCES",     # a plate of Categorical chains, jointly (mean field: tests/codegen)
    "inline:test_gaussian_chain_kernels:BAYES_LDS",     # a Gaussian chain jointly, a Wishart beside it
    "models/logistic_regression", "models/poisson_regression", "models/iris_missing",
    "models/poisson_factorisation",
    "corpus:gmm_normal_gamma",      # a Normal–Gamma pair (approximate mu, lam jointly) beside a local latent
    "models/sequences/ragged_hmm"}     # a Categorical chain riding on ragged sequences (`by seq`)


# ------------------------------------------------------------------ discovery
def example_cases() -> list[Case]:
    """models/**/*.ppvi (the sequence models in models/sequences too) with their bundled data (cut to
    PLATE_SIZE rows of the data plate); a chain compiling does not handle yet is marked as an inline one is."""
    out = []
    for p in sorted(MODELS.rglob("*.ppvi")):
        data = next((p.with_suffix(e) for e in (".npz", ".csv", ".json") if p.with_suffix(e).exists()), None)
        text = p.read_text()
        model = _checked(text)
        out.append(Case(f"models/{p.relative_to(MODELS).with_suffix('').as_posix()}", text,
                        str(p.relative_to(ROOT)), data={"path": str(data)} if data else None,
                        chains=model is not None and not _compiled(model)))
    return out


def _checked(text: str):
    """The checked model, or None where the text does not check."""
    from ppvi.errors import PPVIError
    from ppvi.language import loads

    try:
        return loads(text)
    except PPVIError:
        return None


# A test file names a model that checks but must not derive (a sampling-only law, a constant outside double
# precision) with one of these prefixes; the harness then checks that derive refuses it with a PPVIError.
REFUSED_PREFIXES = ("REFUSED_", "NONCONJUGATE_")


def _compiled(model) -> bool:
    """Derivation and compilation handle the model's chains, if any (ppvi.derive.chain.refusal: a Categorical
    chain's block; gaussian_refusal: a Gaussian one approximated jointly)."""
    from ppvi.derive.chain import gaussian_refusal, refusal

    for c in model.chains.values():
        v = model.variables[c.name]
        if v.kind != "latent":
            continue
        if v.support == "index" and refusal(model, c):
            return False
        if v.support != "index" and model.approximations.get(c.name) == "jointly" and gaussian_refusal(model, c):
            return False
    return True


def inline_cases() -> list[Case]:
    """Every string constant of the test suite (outside this folder) that checks as a model."""
    out, seen = [], set()
    for path in sorted(TESTS.rglob("*.py")):
        if "harness" in path.parts:
            continue
        tree = pyast.parse(path.read_text(encoding="utf-8"))
        names = {}
        for node in pyast.walk(tree):
            if isinstance(node, pyast.Assign) and isinstance(node.value, (pyast.Constant, pyast.JoinedStr)):
                for t in node.targets:
                    if isinstance(t, pyast.Name):
                        names[id(node.value)] = t.id
        constants = _module_constants(tree)
        for node in pyast.walk(tree):
            text = _text(node, constants)
            if text is None:
                continue
            model = _checked(text) if "~" in text and "\n" in text and text not in seen else None
            if model is None:
                continue
            seen.add(text)
            label = names.get(id(node), f"line{node.lineno}")
            out.append(Case(f"inline:{path.stem}:{label}", text, str(path.relative_to(ROOT)),
                            refused=label.startswith(REFUSED_PREFIXES), chains=not _compiled(model)))
    return out


def _module_constants(tree) -> dict[str, object]:
    """A test file's module-level names bound to a number or a string (what its f-string models read)."""
    out = {}
    for node in tree.body:
        if not isinstance(node, pyast.Assign):
            continue
        for t in node.targets:
            pairs = [(t, node.value)]
            if isinstance(t, pyast.Tuple) and isinstance(node.value, pyast.Tuple):    # (R, S0 = 5, 2.0)
                pairs = list(zip(t.elts, node.value.elts))
            out.update({n.id: v.value for n, v in pairs
                        if isinstance(n, pyast.Name) and isinstance(v, pyast.Constant)})
    return out


def _text(node, constants: dict) -> str | None:
    """A string constant's text, or an f-string's where every field is a plain module-level constant
    (``f"w ~ Normal(0, sd = {S0})"``: the exp links' models); None for anything else (nothing is executed)."""
    if isinstance(node, pyast.Constant) and isinstance(node.value, str):
        return node.value
    if not isinstance(node, pyast.JoinedStr):
        return None
    parts = []
    for v in node.values:
        if isinstance(v, pyast.Constant):
            parts.append(str(v.value))
        elif (isinstance(v, pyast.FormattedValue) and isinstance(v.value, pyast.Name) and v.conversion == -1
              and v.format_spec is None and v.value.id in constants):
            parts.append(str(constants[v.value.id]))
        else:
            return None
    return "".join(parts)


def nonconjugate_cases() -> list[Case]:
    """Models derive must refuse (with a PPVIError, never an internal error)."""
    folder = TESTS / "derive" / "nonconjugate"
    return [Case(f"nonconjugate/{p.stem}", p.read_text(), str(p.relative_to(ROOT)), refused=True)
            for p in sorted(folder.glob("*.ppvi"))]


def registry_cases() -> list[Case]:
    """tests/corpus/registry.py's CORPUS, when it exists (fields name, model_path, data_path, dims, kind,
    notes, known_failure)."""
    if not REGISTRY.exists():
        return []
    spec = importlib.util.spec_from_file_location("ppvi_corpus_registry", REGISTRY)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module       # (a dataclass under postponed annotations looks its module up)
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    out = []
    for c in getattr(module, "CORPUS", []):
        path = Path(c.model_path)
        path = path if path.is_absolute() else ROOT / path
        data = None
        if getattr(c, "data_path", None):
            dpath = Path(c.data_path)
            data = {"path": str(dpath if dpath.is_absolute() else ROOT / dpath)}
        out.append(Case(f"corpus:{c.name}", path.read_text(), str(path), data=data,
                        dims=dict(getattr(c, "dims", None) or {}), known=getattr(c, "known_failure", None) or None))
    return out


def _normal_form(text: str) -> str:
    """The text without comments, blank lines and trailing space: two spellings of one model are one case."""
    lines = (line.split("#", 1)[0].rstrip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line.strip())


def corpus() -> list[Case]:
    """Every case, names unique; a model met twice (on the same data) is checked once, under the name it has
    first in: the harness's own cases (their known faults are keyed by name), examples, registry, inline."""
    out, texts = [], set()
    for c in ISSUE_14 + FOUND + example_cases() + registry_cases() + inline_cases() + nonconjugate_cases():
        key = (_normal_form(c.text), repr(c.data.get("path") if c.data else None))
        if key in texts:
            continue
        texts.add(key)
        out.append(c)
    return out


# ------------------------------------------------------------------ data
def sizes_for(model, dims: dict | None = None) -> dict[str, int]:
    """A size for every dim: the model's value (at most MAX_FIXED), else small ones by role."""
    from ppvi.graph import build

    plate = build(model).data_plate
    ranges = {v.support_dim for v in model.variables.values() if v.kind == "data" and v.support == "index"}
    literal = _literal_sizes(model)
    out = {}
    for name, d in model.dims.items():
        if dims and name in dims:
            out[name] = int(dims[name])
        elif name in literal:            # `const m0[D] = [1.0, -2.0]`: D is 2 whatever the data
            out[name] = literal[name]
        elif d.default is not None:
            out[name] = min(d.default, MAX_FIXED)
        elif name == plate:
            out[name] = plate_rows(model)
        elif name in ranges:
            out[name] = RANGE_SIZE
        else:
            out[name] = OTHER_SIZE
    return out


def _literal_sizes(model) -> dict[str, int]:
    """The dims a constant's vector literal fixes: its length along each axis declared by a dim."""
    from ppvi.language import ast

    out = {}
    for v in model.of_kind("const"):
        value = v.value
        for axis in v.shape:
            if not isinstance(value, ast.Vector):
                break
            if isinstance(axis, str):
                out.setdefault(axis, len(value.items))
            value = value.items[0]
    return out


def overrides(model, sizes: dict[str, int]) -> dict[str, int]:
    """The --dim overrides that give the model these sizes: dims it fixes at another value, and dims no data
    variable has (a param's axis)."""
    from_data = {e for v in model.of_kind("data") for e in v.shape if isinstance(e, str)}
    from_data |= {v.support_dim for v in model.of_kind("data") if v.support == "index"}
    return {n: s for n, s in sizes.items()
            if (model.dims[n].default is None and n not in from_data)
            or (model.dims[n].default is not None and model.dims[n].default != s)}


def _extent(e, sizes) -> int:
    return sizes[e] if isinstance(e, str) else int(e)


def random_data(model, sizes: dict[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Valid data for every data variable, from its declared shape and support alone."""
    out = {}
    for v in model.of_kind("data"):
        shape = tuple(_extent(e, sizes) for e in v.shape)
        s = v.support
        if s == "binary":
            a = rng.integers(0, 2, shape)
        elif s == "count":
            a = rng.poisson(3.0, shape)
        elif s == "index":
            k = _extent(v.support_dim, sizes)
            a = rng.integers(0, k, shape)
            a.flat[0] = k - 1             # (a range no other data give is max + 1)
        elif s == "positive":
            a = rng.gamma(2.0, 1.0, shape)
        elif s == "unit_interval":
            a = rng.uniform(0.05, 0.95, shape)
        elif s == "simplex":
            a = rng.dirichlet(np.ones(shape[-1]), shape[:-1])
        elif s == "pd_matrix" or (len(shape) >= 2 and v.shape[-1] == v.shape[-2] and s == "real"
                                  and model.prior(v.name) is None):
            d = shape[-1]
            g = rng.normal(size=shape[:-1] + (d,))
            a = np.einsum("...ij,...kj->...ik", g, g) / d + np.eye(d)
        elif model.prior(v.name) is None:
            a = rng.uniform(0.5, 1.5, shape)      # a covariate (or a hyperparameter): positive is valid for both
        else:
            a = rng.normal(0.0, 1.5, shape)
        out[v.name] = np.asarray(a)
    for c in model.chains.values():      # (a ragged chain's sequences: numbered 0, 1, … in runs, none empty)
        if c.by is not None:
            n, k = len(out[c.by]), _extent(model.variables[c.by].support_dim, sizes)
            out[c.by] = np.sort(np.concatenate([np.arange(min(k, n)), rng.integers(0, k, max(n - k, 0))]))
    for name in model.missing:           # (data declared `: missing`: a quarter of the entries left empty)
        a = out[name].astype(float)
        a[rng.random(a.shape) < 0.25] = np.nan
        a.flat[-1] = out[name].flat[-1]     # (one entry observed at least)
        out[name] = a
    from ppvi.io.totals import totals

    for f, n in list(totals(model, out, sizes)):   # counts within their totals (Binomial, Multinomial)
        x = out[f.target]
        n = np.broadcast_to(n, x.shape[:len(f.target_index)]).astype(np.int64)
        out[f.target] = (np.minimum(x, n) if f.dist == "Binomial"
                         else rng.multinomial(n, np.full(x.shape[-1], 1 / x.shape[-1])))
    return out


def plate_rows(model) -> int:
    """Rows of the data plate: PLATE_SIZE, or twice the largest dim the model fixes (as many examples as
    atoms or components at least: fewer make a degenerate fit, see test_found)."""
    return max([PLATE_SIZE] + [2 * min(d.default, MAX_FIXED) for d in model.dims.values() if d.default is not None])


def data_for(case: Case, model, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """(arrays, --dim overrides) for a case: its own data file, cut to ``plate_rows`` rows, or random data."""
    if case.data is not None and "path" in case.data:
        from ppvi.graph import build
        from ppvi.io.data import read

        raw = read(case.data["path"], model)
        plate = build(model).data_plate
        ranges = {v.support_dim for v in model.variables.values() if v.support == "index"}
        rows = None
        out = {}
        for k, a in raw.items():
            v = model.variables.get(k)
            if v is not None and v.kind == "data" and a.ndim == len(v.shape):
                for axis, dim in enumerate(v.shape):
                    if dim == plate:
                        if rows is None:
                            keep = min(a.shape[axis], plate_rows(model))
                            rows = np.sort(rng.choice(a.shape[axis], size=keep, replace=False))
                        a = np.take(a, rows, axis=axis)
                    elif isinstance(dim, str) and dim not in ranges and model.dims[dim].default is None:
                        a = np.take(a, np.arange(min(a.shape[axis], MAX_AXIS)), axis=axis)
            out[k] = a
        for c in model.chains.values():      # (rows cut from a ragged chain's data: its sequences renumbered)
            if c.by is not None:
                out[c.by] = np.unique(out[c.by], return_inverse=True)[1]
        dims = dict(case.dims)
        dims.update({n: MAX_FIXED for n, d in model.dims.items()
                     if d.default is not None and d.default > MAX_FIXED and n not in dims})
        return out, dims
    if case.data is not None:
        return dict(case.data), dict(case.dims)
    sizes = sizes_for(model, case.dims)
    return random_data(model, sizes, rng), overrides(model, sizes)
