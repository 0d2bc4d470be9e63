"""Every q's stored entropy at a fit's start is the entropy of the q stored beside it (ppvi.families.*.init,
the located and clamped starts, chains, a Normal–Gamma pair): the ELBO read before a latent's first update
counts it.  The entropies are SciPy's or written from the mathematics (tests/harness/harness_state.entropy;
a chain's and a pair's here), never ppvi's."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from codegen.programs import program      # (tests/codegen/programs.py: bound and initialised, nothing compiled)
from ppvi.families.registry import Q_FAMILIES
from ppvi.infer.program import latent_start
from ppvi.language import load, loads

from conftest import MODELS
from infer.test_missing_counts import BINOMIAL     # (which puts tests/harness on the path)
from harness_state import entropy                  # noqa: E402  (H[q] per element, SciPy's)


def chain_entropy(family: str, q: dict[str, np.ndarray], pair: np.ndarray, start: int) -> float:
    """A Markov chain's joint entropy from its marginals and the pairs (ξₜ = q(zₜ₋₁, zₜ), or the lag-one
    covariances Cov(xₜ₋₁, xₜ)) for t ≥ start: Σ_{t<start} H[zₜ] + Σ_{t≥start} (H[zₜ₋₁, zₜ] − H[zₜ₋₁])."""
    marginal = entropy(family, q)
    if family == "Categorical":
        joint = -special.xlogy(pair, pair).sum((-1, -2))
    else:
        cov = q["cov"]
        top = np.concatenate([cov[:-1], pair[1:]], axis=-1)
        bottom = np.concatenate([np.swapaxes(pair[1:], -1, -2), cov[1:]], axis=-1)
        block = np.concatenate([top, bottom], axis=-2)
        joint = np.concatenate([[0.0], [stats.multivariate_normal(cov=b).entropy() for b in block]])
    return float(marginal[:start].sum() + (joint[start:] - marginal[start - 1:-1]).sum())


# One model per family a q takes, and the starts that are not a unit's init (located, clamped, chains, a pair):
# models other tests bind too (their kernels generated once a run).
CASES = {         # name: (the model's text if inline, its data, or the rows of its bundled data kept)
    "gmm": (None, 20),                             # Dirichlet, MvNormal (k-means++), Wishart, Categorical
    "sequences/lds_noise": (None, 15),             # Wishart, a Gaussian chain
    "sequences/hmm": (None, None),                 # Dirichlet, Normal, Gamma, a Categorical chain
    "normal_gamma_joint": (None, None),            # a Normal–Gamma pair
    "logistic_regression": (None, None),           # Normal, Pólya-Gamma
    "binary_sparse_coding": (None, 20),            # Bernoulli
    "counts": (BINOMIAL, {"trials": np.array([3.0, 5.0, 0.0, 4.0]), "x": np.array([1.0, np.nan, np.nan, 2.0]),
                          "c": np.array([np.nan, 2.0, np.nan]), "fails": np.array([2.5, 1.0, 4.0]),
                          "z": np.array([np.nan, 3.0, 0.0])}),     # Beta; Binomial, Poisson, NegativeBinomial imputed
}


@pytest.fixture(scope="module")
def programs():
    from ppvi.io.data import default_data_path, read_file

    out = {}
    for name, (text, data) in CASES.items():
        if text is not None:
            out[name] = program(loads(text, f"<{name}>"), data)
            continue
        path = str(MODELS / f"{name}.ppvi")
        model = load(path)
        arrays = read_file(default_data_path(path), model).arrays      # (each model here has one data array)
        out[name] = program(model, {k: np.asarray(a)[:data] for k, a in arrays.items()})
    return out


def test_the_cases_cover_every_q_family(programs):
    families = {info.family for p in programs.values() for info in p.plan.latents.values()}
    assert families >= set(Q_FAMILIES), set(Q_FAMILIES) - families


@pytest.mark.parametrize("name", list(CASES))
def test_each_start_stores_the_entropy_of_its_q(programs, name):
    """After Program.initialise (broad defaults, draws, k-means++ centres, clamped data; no E-step) and for
    each unit's init alone."""
    p = programs[name]
    for var, info in p.plan.latents.items():
        for label, state in (("start", p.state),
                             ("init", latent_start(info, var, p.sizes, np.random.default_rng(0)))):
            q = {k[len(f"q_{var}__"):]: v for k, v in state.items() if k.startswith(f"q_{var}__")}
            h = state[f"h_{var}"]
            if info.chain is not None:
                want = chain_entropy(info.family, q, state[info.chain.pair], info.chain.start)
                assert float(np.sum(h)) == pytest.approx(want, rel=1e-12, abs=1e-12), (label, var)
                continue
            want = entropy(info.family, q)
            if info.pair is not None and label == "start":
                # q(μ, λ) = N(μ | m, (βλ)⁻¹) Gamma(λ | a, b), β = 1/(sd² E[λ]): E_λ H[N(m, (βλ)⁻¹)] =
                # H[N(0, 1)] − ½ log β − ½ E[log λ], E[log λ] = ψ(a) − log b
                a, b = p.state[f"q_{info.pair}__shape"], p.state[f"q_{info.pair}__rate"]
                beta = 1 / (q["sd"] ** 2 * a / b)
                want = stats.norm().entropy() - 0.5 * np.log(beta) - 0.5 * (special.digamma(a) - np.log(b))
            if var in p.clamped and label == "start":
                want = np.where(p.clamped[var][1].reshape(want.shape), want, 0.0)    # a datum's point mass: 0
            assert h.reshape(-1) == pytest.approx(np.reshape(want, -1), rel=1e-12, abs=1e-12), (label, var)


# ------------------------------------------------------------------------------ the ELBO of the start
def reference_env(p, d):
    """The program's state as ppvi.derive.numeric reads it: data, consts and params by name, q's standard
    parameters as "param(var)", moments by (var, stat), a chain's lag-one pairs and joint entropy."""
    from ppvi.derive.numeric import Env

    def scalar(a):      # (rank-0 quantities are stored as [1])
        return float(a.reshape(-1)[0]) if a.size == 1 and a.ndim <= 1 else np.asarray(a, dtype=float)

    arrays = {v.name: scalar(p.state[f"v_{v.name}"]) for v in p.model.variables.values()
              if v.kind in ("const", "data", "param")}
    moments = {}
    for var, info in p.plan.latents.items():
        arrays.update({f"{k[len(f'q_{var}__'):]}({var})": scalar(a) for k, a in p.state.items()
                       if k.startswith(f"q_{var}__")})
        if info.chain is not None:
            moments[(var, "cross" if info.family != "Categorical" else "pair")] = p.state[info.chain.pair]
            moments[(var, "entropy")] = float(np.sum(p.state[f"h_{var}"]))
    for var, stat in d.syms.moments:
        name = f"m_{var}__{stat}"
        moments[(var, stat)] = scalar(p.state[p.plan.latents[var].aliases.get(name, name)])
    return Env(arrays, moments, dict(p.sizes))


@pytest.mark.parametrize("name", ["gmm", "sequences/lds_noise", "sequences/hmm", "normal_gamma_joint"])
def test_the_elbo_before_any_update_is_the_reference_evaluators(programs, name):
    """Program.elbo at the start (a warm start's first value, ``--max-iter 0``), its kernels as plain Python,
    against Σ of Derivation.elbo_terms() evaluated by ppvi.derive.numeric at the same q."""
    from codegen.programs import plain
    from derive import reference             # (tests/derive/reference.py)
    from ppvi.derive import derive

    p = programs[name]
    module, p.module = p.module, plain(p.module)
    try:
        have = p.elbo()
    finally:
        p.module = module
    d = derive(p.model)
    want = reference.elbo(d, reference_env(p, d))
    assert have == pytest.approx(want, rel=1e-10)


def test_a_large_local_start_has_every_entropy(monkeypatch):
    """The random starts of discrete locals are filled a chunk of elements at a time (no temporary as big as
    q): more elements than a chunk holds (a chunk made 7 elements here), every one's entropy."""
    from types import SimpleNamespace

    from ppvi.families import unit
    from ppvi.families.registry import UNITS

    monkeypatch.setattr(unit, "_CHUNK", 7)
    local = SimpleNamespace(scope="local", chain=None)
    for family, shape in (("Bernoulli", (3, 17)), ("Categorical", (23, 3))):
        s = {"q_v__p": np.zeros(shape), "h_v": np.zeros(shape if family == "Bernoulli" else shape[:1])}
        UNITS[family].init(s, "v", np.random.default_rng(1), local)
        assert s["h_v"] == pytest.approx(entropy(family, {"p": s["q_v__p"]}), rel=1e-12), family


def test_a_start_s_entropy_fills_an_empty_chunk_and_rows_wider_than_a_chunk(monkeypatch):
    """A streamed fit starts chunks that may hold no element (it raised on reshaping 0 rows), and a chunk counts
    numbers, not rows: rows of K = 40,000 made three temporaries as big as q(z) (tests/probes/test_memory.py)."""
    from types import SimpleNamespace

    from ppvi.families import unit
    from ppvi.families.registry import UNITS

    local = SimpleNamespace(scope="local", chain=None)
    s = {"q_v__p": np.zeros((0, 4)), "h_v": np.zeros(0)}
    UNITS["Categorical"].init(s, "v", np.random.default_rng(1), local)
    monkeypatch.setattr(unit, "_CHUNK", 5)
    seen = []
    monkeypatch.setattr(unit, "plogp", lambda r: seen.append(r.size) or np.where(r > 0, r * np.log(r), 0.0))
    from ppvi.families import categorical

    monkeypatch.setattr(categorical, "plogp", unit.plogp)
    s = {"q_v__p": np.zeros((4, 8)), "h_v": np.zeros(4)}
    UNITS["Categorical"].init(s, "v", np.random.default_rng(1), local)
    assert max(seen) == 8 and s["h_v"] == pytest.approx(entropy("Categorical", {"p": s["q_v__p"]}), rel=1e-12)
