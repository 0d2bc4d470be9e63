"""Every q's stored entropy at a fit's start is the entropy of the q stored beside it (ppvi.families.*.init,
the located and clamped starts, chains): the ELBO read before a latent's first update counts it.  The
entropies are SciPy's or written here from the mathematics (PRML appendix B; Polson, Scott & Windle 2013 for
the Pólya-Gamma's), never ppvi's."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from codegen.programs import program      # (tests/codegen/programs.py: bound and initialised, nothing compiled)
from ppvi.families.registry import Q_FAMILIES
from ppvi.infer.program import latent_start
from ppvi.language import load, loads

from conftest import MODELS


def _rows(a: np.ndarray, event: int) -> np.ndarray:
    return a.reshape(-1, *a.shape[a.ndim - event:]) if event else a.reshape(-1)


def entropy(family: str, q: dict[str, np.ndarray]) -> np.ndarray:
    """H[q] per element; a count's relative to its base measure (1/y! for a Poisson, C(n, y) for a Binomial) and
    a Pólya-Gamma's relative to PG(b, 0), as the ELBO counts them."""
    if family == "Normal":
        return stats.norm(q["mean"], q["sd"]).entropy()
    if family == "MvNormal":
        return np.array([stats.multivariate_normal(m, c).entropy()
                         for m, c in zip(_rows(q["mean"], 1), _rows(q["cov"], 2))])
    if family == "Gamma":
        return stats.gamma(q["shape"], scale=1 / q["rate"]).entropy()
    if family == "Beta":
        return stats.beta(q["a"], q["b"]).entropy()
    if family == "Bernoulli":
        return stats.bernoulli(q["p"]).entropy()
    if family == "Categorical":
        return -special.xlogy(q["p"], q["p"]).sum(-1)
    if family == "Dirichlet":
        return np.array([stats.dirichlet(a).entropy() for a in _rows(q["alpha"], 1)])
    if family == "Wishart":
        return np.array([stats.wishart(df, w).entropy() for df, w in zip(_rows(q["df"], 0), _rows(q["scale"], 2))])
    if family == "Poisson":           # −E[y log r − r]
        return q["rate"] - special.xlogy(q["rate"], q["rate"])
    if family == "Binomial":          # −E[y log p + (n − y) log(1 − p)]
        return q["n"] * stats.bernoulli(q["p"]).entropy()
    assert family == "PolyaGamma"     # −KL(PG(b, c) ‖ PG(b, 0)): c² E[ω]/2 − b log cosh(c/2), E[ω] = b tanh(c/2)/2c
    b, c = q["b"], q["c"]
    mean = np.where(c == 0, b / 4, b * np.tanh(c / 2) / (2 * np.where(c == 0, 1.0, c)))
    return c ** 2 * mean / 2 - b * np.log(np.cosh(c / 2))


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
# models other tests bind too.  Binomial and Bernoulli only as imputed data and a local latent here.
COUNTS = """
dim N
data trials[N]
data x[N] : missing
p ~ Beta(2, 3)
for i in N:
    x[i] ~ Binomial(trials[i], p)
"""
CASES = {
    "gmm": None,                                   # Dirichlet, MvNormal (k-means++), Wishart, Categorical
    "sequences/lds_noise": None,                   # Wishart, a Gaussian chain
    "sequences/hmm": None,                         # Dirichlet, Normal, Gamma, a Categorical chain
    "normal_gamma_joint": None,                    # a Normal–Gamma pair
    "logistic_regression": None,                   # Normal, Pólya-Gamma
    "binary_sparse_coding": None,                  # Bernoulli
    "gamma_poisson_missing": None,                 # Poisson (imputed), Gamma
    "beta_binomial": None,                         # Beta
    "counts": (COUNTS, {"trials": np.array([3.0, 5.0, 0.0, 4.0]), "x": np.array([1.0, np.nan, np.nan, 2.0])}),
}


@pytest.fixture(scope="module")
def programs():
    out = {}
    for name, inline in CASES.items():
        if inline is None:
            path = MODELS / f"{name}.ppvi"
            from ppvi.io.data import default_data_path

            out[name] = program(load(str(path)), default_data_path(str(path)))
        else:
            out[name] = program(loads(inline[0], f"<{name}>"), inline[1])
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
            if var in p.clamped and label == "start":
                want = np.where(p.clamped[var][1].reshape(want.shape), want, 0.0)    # a datum's point mass: 0
            assert h.reshape(-1) == pytest.approx(np.reshape(want, -1), rel=1e-12, abs=1e-12), (label, var)
