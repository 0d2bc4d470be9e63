"""Helpers of the codegen tests: a model bound to data without a fit, the kernels of its plan, and the test
models that are not in models/ (each with data drawn here)."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np

from ppvi.codegen.cache import fixed_sizes, load as load_module
from ppvi.codegen.plan import KernelSpec, Plan
from ppvi.infer.program import Program
from ppvi.io.data import Source, bind, default_data_path, read_file
from ppvi.language import load, loads
from ppvi.language.missing import imputing

MODELS = Path(__file__).resolve().parents[2] / "models"

# Factor models (issue 14, item 1): a local latent X[n, m] read through a product with a loading.
FA_KNOWN_W = """
dim N, D
dim K = 2
data W[D, K]
data y[N, D]
tau ~ Gamma(1, 1)
for n in N:
    for k in K:
        X[n, k] ~ Normal(0, 1)
    for d in D:
        y[n, d] ~ Normal(sum(k in K: W[d, k] * X[n, k]), precision = tau)
"""

PPCA_EM = """
dim N, D
dim M = 2
param W[D, M]
param tau : positive
data y[N, D]
for n in N:
    for m in M:
        X[n, m] ~ Normal(0, 1)
    for d in D:
        y[n, d] ~ Normal(sum(m in M: W[d, m] * X[n, m]), precision = tau)
"""

# Fully Bayesian factor analysis: loadings, noise precisions and factors all latent.
FA_BAYES = """
dim N, D
dim M = 2
data y[N, D]
for d in D:
    psi[d] ~ Gamma(1, 1)
    for m in M:
        W[d, m] ~ Normal(0, 1)
for n in N:
    for m in M:
        X[n, m] ~ Normal(0, 1)
    for d in D:
        y[n, d] ~ Normal(sum(m in M: W[d, m] * X[n, m]), precision = psi[d])
"""


# Probabilistic matrix factorisation in long format (ratings r[t] of item[t] by user[t]), the noise precision
# known (a named τ is refused by derive today): products of two globals read at data-valued indices.
PMF = """
dim R, U, I
dim K = 3
data user[R] : index(U)
data item[R] : index(I)
data r[R]
for u in U:
    for k in K:
        P[u, k] ~ Normal(0, 1)
for i in I:
    for k in K:
        Q[i, k] ~ Normal(0, 1)
for t in R:
    r[t] ~ Normal(sum(k in K: P[user[t], k] * Q[item[t], k]), precision = 2.0)
"""


def pmf_data(users: int = 30, items: int = 20, ratings: int = 300, k: int = 3, seed: int = 0) -> dict:
    """Ratings of random (user, item) pairs from planted factors, noise sd ½ (precision 4)."""
    rng = np.random.default_rng(seed)
    p, q = rng.normal(size=(users, k)), rng.normal(size=(items, k))
    user, item = rng.integers(users, size=ratings), rng.integers(items, size=ratings)
    user[:users], item[:items] = np.arange(users), np.arange(items)        # every one rated at least once
    return {"user": user, "item": item, "r": (p[user] * q[item]).sum(1) + 0.5 * rng.normal(size=ratings)}


def factor_data(n: int = 400, d: int = 5, m: int = 2, noise: float = 0.3, seed: int = 0) -> dict:
    """y = X Wᵀ + noise with planted loadings of distinct column norms (a well-separated subspace)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(d, m)) * np.array([3.0, 1.5][:m] + [1.0] * max(0, m - 2))
    y = rng.normal(size=(n, m)) @ w.T + noise * rng.normal(size=(n, d))
    return {"W": w, "y": y - y.mean(0)}


INLINE = {
    "fa_known_w": (FA_KNOWN_W, lambda: factor_data()),
    "ppca_em": (PPCA_EM, lambda: {"y": factor_data()["y"]}),
    "fa_bayes": (FA_BAYES, lambda: {"y": factor_data()["y"]}),
    "pmf": (PMF, pmf_data),
}


def checked(name: str):
    """A model of models/ by stem, or an inline test model by name."""
    if name in INLINE:
        return loads(INLINE[name][0], f"<{name}>")
    return load(str(MODELS / f"{name}.ppvi"))


def data_of(name: str) -> dict | str:
    if name in INLINE:
        return INLINE[name][1]()
    return default_data_path(str(MODELS / f"{name}.ppvi"))


def all_models() -> list[str]:
    return sorted(p.stem for p in MODELS.glob("*.ppvi")) + list(INLINE)


def program(model, data=None, dims=None, seed: int = 0, e_step: bool = False) -> Program:
    """``model`` (a name for :func:`checked`, or a checked model) bound to data, its state initialised as a
    fit starts; without ``e_step`` the first E-step a fit may begin with is not run, so nothing compiles."""
    m = checked(model) if isinstance(model, str) else model
    if data is None and isinstance(model, str):
        data = data_of(model)
    if isinstance(data, str):
        source = read_file(data, m)
    else:
        arrays = {k: np.asarray(v) for k, v in data.items()}
        source = Source("<data>", arrays, tuple(arrays))
    bound = bind(m, source, dims)
    m = imputing(m, bound.missing)      # (data with missing entries: those entries are latents)
    module, _ = load_module(m, fixed=fixed_sizes(m, bound.sizes))
    p = Program.build(m, module, bound)
    if not e_step:
        p.update = lambda *a, **k: None         # (an instance attribute: initialise's E-step does nothing)
    p.initialise(np.random.default_rng(seed))
    if not e_step:
        del p.update
    return p


def kernels(plan: Plan, rows: bool = True) -> list[tuple[str, KernelSpec]]:
    """(label, the kernel's spec) of every kernel a plan names (``rows``: the rows kernels too, passes.scatter_rows,
    which a fit of small data never calls and compiling takes seconds each: parallel loops)."""
    out = []
    for var, info in plan.latents.items():
        out.append((f"update {var}", info.update))
        for extra, spec in (("damped", info.damped), ("local_step", info.local_step),
                            ("rows", info.rows if rows else None)):
            if spec is not None:
                out.append((f"{extra} {var}", spec))
    for var, info in plan.points.items():
        out.append((f"update {var}", info.update))
        if info.local_step is not None:
            out.append((f"local_step {var}", info.local_step))
    out.append(("elbo", plan.elbo.kernel))
    if rows and plan.elbo.large is not None:
        out.append(("elbo large", plan.elbo.large))
    if plan.elbo.fast is not None:
        out.append(("elbo fast", plan.elbo.fast))
    if plan.stats:
        out.append(("statistics", plan.stats.kernel))
    if plan.block:
        out.append(("block", plan.block.kernel))
    return out


def plain(module) -> types.SimpleNamespace:
    """The module with its kernels as plain Python (``py_func``: the same generated code, nothing compiled; the
    runtime helpers it calls stay compiled)."""
    return types.SimpleNamespace(PLAN=module.PLAN, **{n: k.py_func for n, k in vars(module).items()
                                                      if getattr(getattr(k, "py_func", None), "__module__", None)
                                                      == module.__name__})


def moment(p: Program, var: str, stat: str) -> np.ndarray:
    """The program's array of a moment (under its owner's name: ⟨[zₜ = k]⟩ is q(z)'s p)."""
    name = f"m_{var}__{stat}"
    return p.state[p.plan.latents[var].aliases.get(name, name)]


def lockstep(p: Program, d, env, sweeps: int, update) -> tuple[np.ndarray, np.ndarray]:
    """The program (initialised) and a reference side by side from the program's state: ``update(var)`` takes
    the reference's step and returns its own differences (a block's numbers that are not moments).  Per update,
    the largest difference of any moment; per sweep, both ELBOs (tests/derive/reference.py's)."""
    from derive import reference      # (tests/derive/reference.py)

    for (var, stat) in d.syms.moments:
        value = moment(p, var, stat)
        env.moments[(var, stat)] = value.copy().reshape(value.shape if value.size > 1 else ())
    gaps, elbos = [], []
    for _ in range(sweeps):
        for var in p.schedule():
            p.update(var)
            gaps += update(var)
            for (v, stat) in d.syms.moments:
                want = env.moments[(v, stat)]
                gaps.append(float(np.max(np.abs(moment(p, v, stat).reshape(np.shape(want)) - want))))
        elbos.append((p.elbo(), reference.elbo(d, env)))
    return np.array(gaps), np.array(elbos)
