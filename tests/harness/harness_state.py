"""A compiled model bound to data, at a random valid state; the q families' formulas written independently.

The formulas (standard parameters -> moments, entropy, natural parameters) follow PRML appendix B and SciPy
(the moments are tests/derive/reference.py's), not ``ppvi.derive.qfamily`` or ``ppvi.codegen.runtime``, so a
check built on them tests the derivation, the generated code and the runtime at once.
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import types
from dataclasses import dataclass, field

import numpy as np
from scipy import special, stats

from harness_cases import TESTS, Case, data_for
from ppvi.codegen.plan import KernelSpec, LatentPlan, Plan

# q's standard parameters (DESIGN §3) and the moments neighbours read, per family, with their event rank
# (axes after the plates).
PARAMS = {
    "Normal": {"mean": 0, "sd": 0}, "Gamma": {"shape": 0, "rate": 0}, "Beta": {"a": 0, "b": 0},
    "Bernoulli": {"p": 0}, "Categorical": {"p": 1}, "Dirichlet": {"alpha": 1},
    "MvNormal": {"mean": 1, "cov": 2}, "Wishart": {"df": 0, "scale": 2}, "PolyaGamma": {"b": 0, "c": 0},
    "Poisson": {"rate": 0}, "Binomial": {"n": 0, "p": 0}, "NegativeBinomial": {"r": 0, "p": 0},
}
MOMENTS = {
    "Normal": {"x": 0, "x2": 0}, "Gamma": {"x": 0, "logx": 0}, "Beta": {"x": 0, "logx": 0, "log1mx": 0},
    "Bernoulli": {"x": 0, "x2": 0}, "Categorical": {"onehot": 1}, "Dirichlet": {"logp": 1, "x": 1},
    "MvNormal": {"x": 1, "xxT": 2}, "Wishart": {"X": 2, "logdet": 0}, "PolyaGamma": {"x": 0, "base": 0},
    "Poisson": {"x": 0, "lfact": 0}, "Binomial": {"x": 0, "lchoose": 0}, "NegativeBinomial": {"x": 0, "lnb": 0},
}
NATURAL = {
    "Normal": {"x": 0, "x2": 0}, "Gamma": {"x": 0, "logx": 0}, "Beta": {"logx": 0, "log1mx": 0},
    "Bernoulli": {"x": 0}, "Categorical": {"onehot": 1}, "Dirichlet": {"logp": 1},
    "MvNormal": {"x": 1, "xxT": 2}, "Wishart": {"logdet": 0, "X": 2}, "PolyaGamma": {"x": 0, "base": 0},
    "Poisson": {"x": 0, "lfact": 0}, "Binomial": {"x": 0, "lchoose": 0}, "NegativeBinomial": {"x": 0, "lnb": 0},
}


# ------------------------------------------------------------------ families
def _spd(rng, shape: tuple, d: int) -> np.ndarray:
    g = rng.normal(size=shape + (d, d))
    return np.einsum("...ij,...kj->...ik", g, g) / d + 0.5 * np.eye(d)


def random_q(family: str, shapes: dict[str, tuple], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Standard parameters drawn validly: positive sds and rates, alphas > 0, p on the simplex, PD matrices."""
    s = shapes
    if family == "Normal":
        return {"mean": rng.normal(0, 1.5, s["mean"]), "sd": np.exp(rng.uniform(-1.5, 0.5, s["sd"]))}
    if family == "Gamma":
        return {"shape": rng.uniform(0.5, 6.0, s["shape"]), "rate": rng.uniform(0.3, 4.0, s["rate"])}
    if family == "Beta":
        return {"a": rng.uniform(0.5, 6.0, s["a"]), "b": rng.uniform(0.5, 6.0, s["b"])}
    if family == "Bernoulli":
        return {"p": rng.uniform(0.02, 0.98, s["p"])}
    if family == "Categorical":
        shape = s["p"]
        return {"p": rng.dirichlet(np.ones(shape[-1]), shape[:-1])}
    if family == "Dirichlet":
        return {"alpha": rng.uniform(0.3, 5.0, s["alpha"])}
    if family == "PolyaGamma":          # (b is the model's own: random_state sets it from the derived η)
        return {"b": np.ones(s["b"]), "c": rng.uniform(0.05, 4.0, s["c"])}
    if family == "Poisson":
        return {"rate": rng.uniform(0.2, 8.0, s["rate"])}
    if family == "Binomial":            # (n is the model's own: random_state sets it from the derived η)
        return {"n": np.ones(s["n"]), "p": rng.uniform(0.02, 0.98, s["p"])}
    if family == "NegativeBinomial":    # (r is the model's own likewise)
        return {"r": np.ones(s["r"]), "p": rng.uniform(0.02, 0.9, s["p"])}
    if family == "MvNormal":
        d = s["mean"][-1]
        return {"mean": rng.normal(0, 1.5, s["mean"]), "cov": _spd(rng, s["cov"][:-2], d)}
    d = s["scale"][-1]
    df = d - 1 + rng.uniform(1.5, 6.0, s["df"])
    return {"df": df, "scale": _spd(rng, s["scale"][:-2], d) / np.asarray(df)[..., None, None]}


def _derive_reference():
    """tests/derive/reference.py: q's moments from its standard parameters, written from PRML appendix B."""
    spec = importlib.util.spec_from_file_location("harness_derive_reference", TESTS / "derive" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_reference_moments = _derive_reference().moments   # E_q[T(x)] per family (PRML B.8, B.27, B.21, B.80–B.81)


def _log_cosh(t: np.ndarray) -> np.ndarray:
    """log cosh t = log(e^t + e^{−t}) − log 2, without overflow."""
    return np.logaddexp(t, -t) - np.log(2.0)


def _pg_mean(b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """E[ω] of PG(b, c) = b tanh(c/2) / (2c) (Polson, Scott & Windle 2013, section 2.2), b/4 at c = 0."""
    c = np.asarray(c, dtype=float)
    safe = np.where(c == 0, 1.0, c)
    return np.where(c == 0, b / 4, b * np.tanh(safe / 2) / (2 * safe))


def moments(family: str, q: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """E_q[T(x)] per family: tests/derive/reference.py's, and PG(b, c)'s E[ω] with the place-holder statistic
    ``base`` carried as 0 (ppvi.families.polya_gamma: its expectation cancels in the ELBO)."""
    if family == "PolyaGamma":
        return {"x": _pg_mean(q["b"], q["c"]), "base": np.zeros(np.shape(q["c"]))}
    if family == "Poisson":             # (−log x! carried as 0 likewise: ppvi.families.poisson)
        return {"x": q["rate"], "lfact": np.zeros(np.shape(q["rate"]))}
    if family == "Binomial":            # (log C(n, x)/n carried as 0: ppvi.families.binomial)
        return {"x": q["n"] * q["p"], "lchoose": np.zeros(np.shape(q["p"]))}
    if family == "NegativeBinomial":    # (log h(x)/r carried as 0: ppvi.families.negative_binomial; SciPy's mean)
        return {"x": stats.nbinom(q["r"], 1 - q["p"]).mean(), "lnb": np.zeros(np.shape(q["p"]))}
    return _reference_moments(family, q)


def entropy(family: str, q: dict[str, np.ndarray]) -> np.ndarray:
    """H[q] per element, from SciPy's distributions where it has them."""
    if family == "Normal":
        return stats.norm(q["mean"], q["sd"]).entropy()
    if family == "Gamma":
        return stats.gamma(q["shape"], scale=1 / q["rate"]).entropy()
    if family == "Beta":
        return stats.beta(q["a"], q["b"]).entropy()
    if family == "Bernoulli":
        return stats.bernoulli(q["p"]).entropy()
    if family == "Categorical":
        return -special.xlogy(q["p"], q["p"]).sum(-1)
    if family == "Dirichlet":
        a = q["alpha"]
        return np.array([stats.dirichlet(row).entropy() for row in a.reshape(-1, a.shape[-1])]).reshape(a.shape[:-1])
    if family == "PolyaGamma":          # relative to PG(b, 0): −KL(PG(b, c) ‖ PG(b, 0)) from the tilting
        b, c = q["b"], q["c"]
        return c ** 2 * _pg_mean(b, c) / 2 - b * _log_cosh(c / 2)
    if family == "Poisson":             # relative to h(x) = 1/x!: H + E[log h] = H − E[log x!], by SciPy's H
        r = q["rate"]
        return stats.poisson(r).entropy() - _expected_log_factorial(r)
    if family == "Binomial":            # relative to h(x) = C(n, x): H + E[log C(n, x)], by SciPy's H
        n, p = q["n"], q["p"]
        return stats.binom(n, p).entropy() + _expected_log_choose(n, p)
    if family == "NegativeBinomial":    # relative to h(x) = Γ(x + r)/(Γ(r) x!): H + E[log h], by SciPy's H
        r = np.asarray(q["r"], dtype=float)     # (r = 0, a start before r is filled: the point mass at 0, H = 0)
        some = np.where(r > 0, r, 1.0)
        return np.where(r > 0, stats.nbinom(some, 1 - q["p"]).entropy() + _expected_log_nb_base(some, q["p"]), 0.0)
    if family == "MvNormal":
        cov = q["cov"]
        d = cov.shape[-1]
        return d / 2 * (1 + np.log(2 * np.pi)) + np.linalg.slogdet(cov)[1] / 2
    w = q["scale"]
    d = w.shape[-1]
    flat_w, flat_df = w.reshape(-1, d, d), q["df"].ravel()
    return np.array([stats.wishart(df, s).entropy() for df, s in zip(flat_df, flat_w)]).reshape(q["df"].shape)


def _expected_log_factorial(rate: np.ndarray) -> np.ndarray:
    """E[log x!] under Poisson(rate), summed to far past the rate's tail (x ≤ rate + 40√rate + 60)."""
    rate = np.asarray(rate, dtype=float)
    x = np.arange(int(rate.max() + 40 * np.sqrt(rate.max()) + 60))
    return (stats.poisson.pmf(x, rate[..., None]) * special.gammaln(x + 1.0)).sum(-1)


def _expected_log_choose(n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """E[log C(n, x)] under Binomial(n, p), summed over x = 0 … n."""
    n, p = np.broadcast_arrays(np.asarray(n, dtype=float), np.asarray(p, dtype=float))
    x = np.arange(int(n.max()) + 1)
    lc = special.gammaln(n[..., None] + 1) - special.gammaln(x + 1.0) - special.gammaln(n[..., None] - x + 1)
    return (stats.binom.pmf(x, n[..., None], p[..., None]) * np.where(x <= n[..., None], lc, 0.0)).sum(-1)


def _expected_log_nb_base(r: np.ndarray, p: np.ndarray) -> np.ndarray:
    """E[log Γ(x + r) − log Γ(r) − log x!] under NegativeBinomial(r, p) (SciPy's, with 1 − p), summed to far past
    its tail."""
    r, p = np.broadcast_arrays(np.asarray(r, dtype=float), np.asarray(p, dtype=float))
    x = np.arange(int(stats.nbinom(r, 1 - p).ppf(1 - 1e-16).max()) + 60)
    lh = special.gammaln(x + r[..., None]) - special.gammaln(r[..., None]) - special.gammaln(x + 1.0)
    return (stats.nbinom.pmf(x, r[..., None], 1 - p[..., None]) * lh).sum(-1)


def natural(family: str, q: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """η from the standard parameters (PRML appendix B); Categorical's is log p (defined up to a constant)."""
    if family == "Normal":
        tau = q["sd"] ** -2.0
        return {"x": q["mean"] * tau, "x2": -tau / 2}
    if family == "Gamma":
        return {"x": -q["rate"], "logx": q["shape"] - 1}
    if family == "Beta":
        return {"logx": q["a"] - 1, "log1mx": q["b"] - 1}
    if family == "Bernoulli":
        return {"x": special.logit(q["p"])}
    if family == "Categorical":
        with np.errstate(divide="ignore"):
            return {"onehot": np.log(q["p"])}
    if family == "Dirichlet":
        return {"logp": q["alpha"] - 1}
    if family == "PolyaGamma":
        return {"x": -q["c"] ** 2 / 2, "base": q["b"]}
    if family == "Poisson":
        return {"x": np.log(q["rate"]), "lfact": np.ones(np.shape(q["rate"]))}
    if family == "Binomial":
        return {"x": special.logit(q["p"]), "lchoose": q["n"]}
    if family == "NegativeBinomial":
        return {"x": np.log(q["p"]), "lnb": q["r"]}
    if family == "MvNormal":
        prec = np.linalg.inv(q["cov"])
        return {"x": np.einsum("...de,...e->...d", prec, q["mean"]), "xxT": -prec / 2}
    d = q["scale"].shape[-1]
    return {"logdet": (q["df"] - d - 1) / 2, "X": -np.linalg.inv(q["scale"]) / 2}


# ------------------------------------------------------------------ state
def copy_state(state: dict) -> dict:
    """A deep copy that keeps aliases: arrays that are one array under two names stay one array."""
    made: dict[int, np.ndarray] = {}
    out = {}
    for k, v in state.items():
        if isinstance(v, np.ndarray):
            if id(v) not in made:
                made[id(v)] = v.copy()
            out[k] = made[id(v)]
        else:
            out[k] = v
    return out


def kernels(module) -> dict[str, object]:
    """The module's own Numba kernels by name (not the runtime helpers it imports)."""
    from numba.core.dispatcher import Dispatcher

    return {n: k for n, k in vars(module).items()
            if isinstance(k, Dispatcher) and k.py_func.__module__ == module.__name__}


class _NumpyMath:
    """``math`` as Numba's ``error_model='numpy'`` (every generated kernel's) runs it: IEEE results, NaN and
    ±inf, where Python's raises (log of a negative, lgamma at a pole)."""

    def __init__(self):
        for name, f in {"log": np.log, "sqrt": np.sqrt, "exp": np.exp, "lgamma": special.gammaln}.items():
            setattr(self, name, lambda x, f=f: f(np.float64(x)))

    def __getattr__(self, name):          # (the rest as Python's: pi, isfinite, …)
        return getattr(math, name)


_MATH = _NumpyMath()


def plain(kernel):
    """A kernel as plain Python: its ``py_func`` with ``math`` as Numba's NumPy error model runs it (run it
    under ``np.errstate(all="ignore")``).  The runtime helpers it calls stay compiled."""
    f = kernel.py_func
    made = getattr(f, "_harness_plain", None)
    if made is None:
        made = types.FunctionType(f.__code__, {**f.__globals__, "math": _MATH}, f.__name__, f.__defaults__,
                                  f.__closure__)
        f._harness_plain = made
    return made


def python_module(module) -> types.SimpleNamespace:
    """The same module with every kernel as plain Python (:func:`plain`): what a fit runs with the JIT
    disabled."""
    ns = types.SimpleNamespace(PLAN=module.PLAN, __name__=module.__name__)
    for n, k in kernels(module).items():
        setattr(ns, n, plain(k))
    return ns


@dataclass
class Subject:
    """One case, derived, generated, loaded and bound to data, with a random valid state ``base``."""

    case: Case
    model: object
    derivation: object
    source: str
    module: object
    program: object
    sizes: dict
    base: dict = field(default_factory=dict)
    python: bool = False          # run kernels as plain Python unless asked otherwise (no compilation)
    data: dict = field(default_factory=dict)      # the data and --dim overrides it was bound to
    dims: dict = field(default_factory=dict)

    @property
    def plan(self) -> Plan:
        return self.module.PLAN

    def kernel_infos(self) -> list[tuple[str, str, KernelSpec]]:
        """Every kernel of the module with the PLAN entry that calls it: (role, owner, the kernel's spec)."""
        plan = self.plan
        out = []
        for var, info in plan.latents.items():
            if info.chain is not None:   # a chain's block: one kernel, never damped (codegen.chain)
                out.append(("chain", var, info.update))
                continue
            out.append(("update", var, info.update))
            if info.damped:
                out.append(("damped", var, info.damped))
            if info.local_step:
                out.append(("local_step", var, info.local_step))
            if info.colour and var in self.program.coloured:     # (the data's coupling graph is bipartite)
                out.append(("colour", var, info.colour))
            if info.rows:               # (the update by rows, in its place on a large data plate: passes.scatter_rows)
                out.append(("rows", var, info.rows))
        for var, info in plan.points.items():
            out.append(("point", var, info.update))
            if info.local_step:
                out.append(("local_step", var, info.local_step))
        out.append(("elbo", "", plan.elbo.kernel))
        if plan.elbo.large:
            out.append(("large_elbo", "", plan.elbo.large))
        if plan.elbo.fast:
            out.append(("fast_elbo", plan.elbo.fast_after, plan.elbo.fast))
        if plan.stats:
            out.append(("statistics", "", plan.stats.kernel))
        if plan.block:
            out.append(("block", plan.block.name, plan.block.kernel))
        return out

    def signature_of(self, name: str) -> list[str]:
        return list(inspect.signature(getattr(self.module, name).py_func).parameters)

    def refresh_statistics(self, state: dict, python: bool | None = None) -> None:
        """The statistics pass over ``state`` (the sums the global kernels read)."""
        stats = self.plan.stats
        if stats:
            self.call(stats.kernel, state, python)

    def call(self, info: KernelSpec, state: dict, python: bool | None = None):
        """Run a PLAN entry's kernel on ``state``: compiled, or as plain Python (``py_func``)."""
        k = getattr(self.module, info.name)
        if python is None:
            python = self.python
        if not python:
            return k(*(state[a] for a in info.args))
        with np.errstate(all="ignore"):
            return plain(k)(*(state[a] for a in info.args))


def build(case: Case, seed: int = 0, damping: float = 0.6, python: bool = False):
    """Parse, check, derive and generate ``case`` (a PPVIError propagates), load its module (compiled on
    first call; ``python``: kernels run as plain Python unless a check asks for them compiled), bind random
    or given data, and draw a random valid state."""
    from ppvi.codegen.cache import fixed_sizes, load
    from ppvi.codegen.module import generate
    from ppvi.derive import derive
    from ppvi.infer.program import Program
    from ppvi.language import loads
    from ppvi.language.missing import imputing

    rng = np.random.default_rng(seed)
    model = loads(case.text, f"{case.name}.ppvi")
    data, dims = data_for(case, model, rng)
    bound = bind(model, data, dims)
    model = imputing(model, bound.missing)      # (data with missing entries: those entries are latents)
    d = derive(model)
    fixed = fixed_sizes(model, bound.sizes)
    source = generate(d, fixed)
    module, _ = load(model, source_of=lambda m: source, fixed=fixed)
    program = Program.build(model, module, bound)
    s = Subject(case, model, d, source, module, program, dict(bound.sizes), python=python,
                data=data, dims=dims)
    s.base = random_state(s, rng, damping)
    return s


def bind(model, data: dict, dims: dict | None):
    """``data`` (arrays by name) checked against the model and every dim resolved, as ``ppvi.fit`` binds."""
    from ppvi.io.data import Source, bind as bind_source

    return bind_source(model, Source("<harness data>", dict(data), tuple(data)), dims)


def shape_of(shape, sizes) -> tuple[int, ...]:
    """A declared shape (dim names and sizes) in numbers."""
    return tuple(sizes[e] if isinstance(e, str) else int(e) for e in shape)


def random_params(model, sizes: dict, state: dict, names: list[str], rng: np.random.Generator) -> None:
    """Params and MAP latents at random values in their supports."""
    for name in names:
        v = model.variables[name]
        shape = shape_of(v.shape, sizes) or (1,)
        if v.support == "positive":
            a = rng.uniform(0.3, 3.0, shape)
        elif v.support == "unit_interval":
            a = rng.uniform(0.05, 0.95, shape)
        elif v.support == "simplex":
            a = rng.dirichlet(np.ones(shape[-1]), shape[:-1])
        elif v.support == "unit_columns":
            a = rng.normal(size=shape)
            a /= np.linalg.norm(a, axis=0, keepdims=True)
        else:
            a = rng.normal(0.0, 1.0, shape)
            prior = model.prior(name)
            if prior is not None and prior.dist == "Laplace":
                # a sparse code, as a MAP code under an L1 prior is (a dense start with more nonzeros than
                # dimensions sends feature-sign search into its iteration caps: test_kernels' finding)
                a *= rng.random(shape) < 0.1
        state[f"v_{name}"] = np.ascontiguousarray(a, dtype=float)


def copies(s: "Subject", var: str):
    """How many draws one element's q stands for: a superposition's allocation is y draws of one Categorical,
    whose kernels write y·H[q] (docs/derivation.md, section 9); 1 for every other latent."""
    q = s.derivation.q.get(var)
    if q is None or q.replicas is None:
        return 1.0
    return s.program.state[f"v_{q.replicas.base if q.index else q.replicas}"]


def write_q(state: dict, var: str, family: str, q: dict[str, np.ndarray], count=1.0) -> None:
    """q's standard parameters, its moments and entropy (times ``count``: see copies) into the state arrays (in
    place: aliases follow)."""
    for p, value in q.items():
        state[f"q_{var}__{p}"][...] = np.reshape(value, state[f"q_{var}__{p}"].shape)
    for stat, value in moments(family, q).items():
        name = f"m_{var}__{stat}"
        if name in state:
            state[name][...] = np.reshape(value, state[name].shape)
    state[f"h_{var}"][...] = np.reshape(count * entropy(family, q), state[f"h_{var}"].shape)


def read_q(state: dict, var: str, family: str, plates: int) -> dict[str, np.ndarray]:
    """q's standard parameters from the state, at their true ranks (a scalar latent's [1] arrays squeezed)."""
    out = {}
    for p, extra in PARAMS[family].items():
        a = state[f"q_{var}__{p}"]
        out[p] = a.reshape(a.shape[:plates + extra]) if plates + extra else a.reshape(())
    return out


def random_state(s: Subject, rng: np.random.Generator, damping: float) -> dict:
    """Every q at random valid parameters, params and MAP latents in their supports, the damped kernels'
    inputs (η of q, copies of the moments, α), statistics from a fresh pass."""
    state = s.program.state
    plan = s.plan
    drawn = {}
    for var, info in plan.latents.items():
        for name, shape in info.state.items():
            state[name] = np.zeros(shape_of(shape, s.sizes))
        for alias, target in info.aliases.items():
            state[alias] = state[target]
        if info.chain is not None and info.family == "Categorical":
            random_chain(state, var, info, rng)
            continue
        # (a Gaussian chain's q at random as any MvNormal's: a product, its lag-one covariances 0)
        fam = info.family
        plates = len(info.index)
        shapes = {p: shape_of(info.state[f"q_{var}__{p}"], s.sizes) for p in PARAMS[fam]}
        shapes = {p: sh[:plates + PARAMS[fam][p]] if plates + PARAMS[fam][p] else () for p, sh in shapes.items()}
        drawn[var] = random_q(fam, shapes, rng)
    random_params(s.model, s.sizes, state, [v.name for v in s.model.of_kind("param")] + list(plan.point), rng)
    for var, q in drawn.items():
        fam = plan.latents[var].family
        if fam == "PolyaGamma":
            q["b"] = polya_gamma_b(s, state, var)
        elif fam == "Binomial":         # (its trials, known data, as PG's b: the derived η)
            q["n"] = polya_gamma_b(s, state, var, "lchoose")
        elif fam == "NegativeBinomial":  # (its known r likewise: η[lnb])
            q["r"] = polya_gamma_b(s, state, var, "lnb")
        write_q(state, var, fam, q, copies(s, var))
        if f"l_{var}" in state:
            state[f"l_{var}"][...] = 0.0
        for stat, value in natural(fam, q).items():
            state[f"e_{var}__{stat}"] = np.ascontiguousarray(np.reshape(value, _eta_shape(s, var, stat)))
        seen = observed(s, var)
        if seen is not None:
            clamp(state, var, fam, s.program.clamped[var][0], seen)
    for mu, lam in s.model.pairs.items():
        # q(μ, λ) Normal–Gamma (approximate mu, lam jointly): q(μ)'s share of H is H[N(m, (βλ)⁻¹)] averaged over
        # q(λ), ½(1 + log 2π) − ½ log β − ½E[log λ], with β = 1/(sd² E[λ]) (the state keeps sd = (βE[λ])^-½)
        a, b, sd = drawn[lam]["shape"], drawn[lam]["rate"], drawn[mu]["sd"]
        beta = 1 / (sd ** 2 * a / b)
        h = 0.5 * (1 + np.log(2 * np.pi)) - 0.5 * np.log(beta) - 0.5 * (special.digamma(a) - np.log(b))
        state[f"h_{mu}"][...] = np.reshape(h, state[f"h_{mu}"].shape)
    state["c__damping"] = np.array([damping])
    for _, _, info in s.kernel_infos():
        for a in info.args:
            if a.startswith("o_"):
                state[a] = state[a[2:]].copy()
            elif a.startswith("g_") and a not in state:
                state[a] = np.zeros_like(state["v_" + a[2:]])
    s.refresh_statistics(state)
    return copy_state(state)


def observed(s: Subject, var: str) -> np.ndarray | None:
    """The observed entries of data with missing entries (ppvi.language.missing), whose q is a point mass at
    the datum and which no kernel finishes: a mask over q's plates, or None where ``var`` is not such data."""
    mask = s.plan.missing.get(var)
    if mask is None:
        return None
    info = s.plan.latents[var]
    shape = shape_of(info.index, s.sizes) + (() if info.family != "MvNormal" else shape_of((info.event,), s.sizes))
    return ~np.asarray(s.program.state[mask], dtype=bool).reshape(shape)      # (MvNormal: entry by entry of a row)


def clamp(state: dict, var: str, family: str, data: np.ndarray, seen: np.ndarray) -> None:
    """q of the observed entries a point mass at the datum (docs/language.md, "Missing data"): ⟨x⟩ = x,
    ⟨x²⟩ = x², a one-hot row, H = 0; η there is never read (0)."""
    if family == "MvNormal":
        clamp_rows(state, var, np.asarray(data, dtype=float), seen)
        return
    x = np.asarray(data, dtype=float)[seen]
    if family in ("Gamma", "Beta"):
        # (a point mass to rounding: parameters 2⁶⁰⁰ times the datum's; the kernels read only the moments)
        big = 2.0 ** 600
        q = {"shape": x * big, "rate": big} if family == "Gamma" else {"a": x * big, "b": (1 - x) * big}
        mom = {"x": x, "logx": np.log(x)} | ({"log1mx": np.log1p(-x)} if family == "Beta" else {})
    elif family == "Normal":
        q, mom = {"mean": x, "sd": 0.0}, {"x": x, "x2": x * x}
    elif family == "Bernoulli":
        q, mom = {"p": x}, {"x": x, "x2": x}
    elif family == "Poisson":           # (the place-holder's moment: the datum's −log x!)
        q, mom = {"rate": x}, {"x": x, "lfact": -special.gammaln(x + 1.0)}
    elif family == "Binomial":          # (the datum's log C(n, x)/n, 0 at n = 0)
        n = state[f"q_{var}__n"][seen]
        safe = np.where(n > 0, n, 1.0)
        lc = special.gammaln(n + 1.0) - special.gammaln(x + 1.0) - special.gammaln(n - x + 1.0)
        q, mom = {"p": np.where(n > 0, x / safe, 0.5)}, {"x": x, "lchoose": np.where(n > 0, lc / safe, 0.0)}
    elif family == "NegativeBinomial":  # (the datum's log h(x)/r; p = x/(x + r))
        r = state[f"q_{var}__r"][seen]
        lh = special.gammaln(x + r) - special.gammaln(r) - special.gammaln(x + 1.0)
        q, mom = {"p": x / (x + r)}, {"x": x, "lnb": lh / r}
    else:
        onehot = np.eye(state[f"q_{var}__p"].shape[-1])[x.astype(np.int64)]
        q, mom = {"p": onehot}, {"onehot": onehot}
    for p, value in q.items():
        state[f"q_{var}__{p}"][seen] = value
    for stat, value in mom.items():
        if f"m_{var}__{stat}" in state:
            state[f"m_{var}__{stat}"][seen] = value
    state[f"h_{var}"][seen] = 0.0
    for stat in NATURAL[family]:
        state[f"e_{var}__{stat}"][seen] = 0.0


def clamp_rows(state: dict, var: str, data: np.ndarray, seen: np.ndarray) -> None:
    """MvNormal rows with observed entries o and missing m (docs/language.md, "Missing data"): the mean is the
    datum on o, the covariance 0 in o's rows and columns, ⟨x xᵀ⟩ = Σ + μ μᵀ, H the missing block's Gaussian
    entropy ½(|m|(1 + log 2π) + log det Σ_mm) (0 for a complete row); η the block's own, P = Σ_mm⁻¹: (P μ_m,
    −P/2) on m and 0 elsewhere, the state from which a damped step moves."""
    d = seen.shape[-1]
    mean = state[f"q_{var}__mean"].reshape(-1, d)
    cov = state[f"q_{var}__cov"].reshape(-1, d, d)
    ex, exx = state[f"e_{var}__x"].reshape(-1, d), state[f"e_{var}__xxT"].reshape(-1, d, d)
    h = state[f"h_{var}"].reshape(-1)
    for n, (o, x) in enumerate(zip(seen.reshape(-1, d), data.reshape(-1, d))):
        if not o.any():
            continue
        m = ~o
        mean[n, o] = x[o]
        cov[n][o, :] = 0.0
        cov[n][:, o] = 0.0
        ex[n], exx[n] = 0.0, 0.0
        h[n] = 0.0
        if m.any():
            block = cov[n][np.ix_(m, m)]
            prec = np.linalg.inv(block)
            ex[n, m] = prec @ mean[n, m]
            exx[n][np.ix_(m, m)] = -prec / 2
            h[n] = 0.5 * (m.sum() * (1 + np.log(2 * np.pi)) + np.linalg.slogdet(block)[1])
    if f"m_{var}__xxT" in state:
        state[f"m_{var}__xxT"][...] = state[f"q_{var}__cov"] + state[f"q_{var}__mean"][..., :, None] * \
            state[f"q_{var}__mean"][..., None, :]


def polya_gamma_b(s: Subject, state: dict, var: str, key: str = "base") -> np.ndarray:
    """A Pólya-Gamma q's b: not random but the model's own (the count of the Bernoulli or Binomial it weights,
    ppvi.families.polya_gamma), the derived η[base] evaluated by the reference evaluator at every element (a
    Binomial q's n likewise, its η[lchoose])."""
    from harness_checks import Reference

    q = s.derivation.q[var]
    ref = Reference(s, state)
    plates = tuple(ref.size(i) for i in q.index)
    b = np.empty(plates)
    for at in np.ndindex(*plates):
        b[at] = ref.value(q.natural[key], dict(zip(q.index, at)))
    return b


def random_chain(state: dict, var: str, info: LatentPlan, rng: np.random.Generator) -> None:
    """A chain's q at random: a product of random marginals (a member of the structured family too), its
    pairs ξₜ = rₜ₋₁ rₜᵀ from the chain's start, its entropy −Σ r log r, no log Z."""
    r = state[f"q_{var}__p"]
    r[...] = rng.dirichlet(np.ones(r.shape[-1]), r.shape[:-1])
    xi, start = state[info.chain.pair], info.chain.start
    xi[...] = 0.0
    xi[..., start:, :, :] = r[..., start - 1:-1, :, None] * r[..., start:, None, :]
    state[f"h_{var}"][...] = -np.sum(r * np.log(r))
    state[f"l_{var}"][...] = np.nan


def _eta_shape(s: Subject, var: str, stat: str) -> tuple:
    """η arrays as the kernels keep them: plates, then the statistic's event axes ([1] for a scalar)."""
    info = s.plan.latents[var]
    rank = NATURAL[info.family][stat]
    shape = shape_of(info.index, s.sizes) + (shape_of([info.event], s.sizes) * rank if rank else ())
    return shape or (1,)
