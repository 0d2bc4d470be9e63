"""log p(v, h) at values: each density against scipy.stats, the model's log joint against the reference
evaluator (ppvi.derive.numeric) with point moments and against scipy.stats written here."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from conftest import MODELS
from ppvi.derive import derive
from ppvi.derive.numeric import Env, evaluate
from ppvi.language import load
from ppvi.simulate.density import log_density
from ppvi.simulate.inputs import Setting, _fixed
from ppvi.simulate.joint import log_joint, log_joint_per_datum
from ppvi.simulate.values import Values

RNG = np.random.default_rng(1968)


def spd(d: int, *batch: int) -> np.ndarray:
    a = RNG.normal(size=(*batch, d, d))
    return a @ np.swapaxes(a, -1, -2) + d * np.eye(d)


# ----------------------------------------------------------------- densities
def test_scalar_densities_are_scipy_stats():
    x, mu, sd = RNG.normal(size=7), RNG.normal(size=7), RNG.uniform(0.5, 2, 7)
    for args in ({"sd": sd}, {"precision": sd ** -2}, {"variance": sd ** 2}):
        assert log_density("Normal", x, {"mean": mu, **args}) == pytest.approx(stats.norm(mu, sd).logpdf(x))
    pos, a, b = RNG.gamma(2.0, size=7), RNG.uniform(0.5, 3, 7), RNG.uniform(0.5, 3, 7)
    assert log_density("Gamma", pos, {"shape": a, "rate": b}) == pytest.approx(stats.gamma(a, scale=1 / b).logpdf(pos))
    u = RNG.random(7)
    assert log_density("Beta", u, {"a": a, "b": b}) == pytest.approx(stats.beta(a, b).logpdf(u))
    bits, p = RNG.integers(0, 2, 7), RNG.random(7)
    assert log_density("Bernoulli", bits, {"p": p}) == pytest.approx(stats.bernoulli(p).logpmf(bits))
    psi = special.logit(p)
    assert log_density("Bernoulli", bits, {"logit": psi}) == pytest.approx(stats.bernoulli(p).logpmf(bits))
    counts = RNG.poisson(3.0, 7)
    assert log_density("Poisson", counts, {"rate": b}) == pytest.approx(stats.poisson(b).logpmf(counts))
    assert log_density("Exponential", pos, {"rate": b}) == pytest.approx(stats.expon(scale=1 / b).logpdf(pos))
    assert log_density("Laplace", x, {"loc": mu, "scale": sd}) == pytest.approx(stats.laplace(mu, sd).logpdf(x))


def test_vector_and_matrix_densities_are_scipy_stats():
    d = 3
    x, mu, P = RNG.normal(size=(4, d)), RNG.normal(size=(4, d)), spd(d, 4)
    want = [stats.multivariate_normal(mu[i], np.linalg.inv(P[i])).logpdf(x[i]) for i in range(4)]
    assert log_density("MvNormal", x, {"mean": mu, "precision": P}) == pytest.approx(want)
    want = [stats.multivariate_normal(mu[i], P[i]).logpdf(x[i]) for i in range(4)]
    assert log_density("MvNormal", x, {"mean": mu, "cov": P}) == pytest.approx(want)
    alpha = RNG.uniform(0.3, 3, (4, 5))
    s = RNG.dirichlet(np.ones(5), 4)
    assert log_density("Dirichlet", s, {"alpha": alpha}) == pytest.approx(
        [stats.dirichlet(alpha[i]).logpdf(s[i]) for i in range(4)])
    c = RNG.integers(0, 5, 4)
    assert log_density("Categorical", c, {"p": s}) == pytest.approx(np.log(s[np.arange(4), c]))
    X, S, nu = spd(d, 4), spd(d, 4) / 10, RNG.uniform(d, d + 4, 4)
    assert log_density("Wishart", X, {"df": nu, "scale": S}) == pytest.approx(
        [stats.wishart(nu[i], S[i]).logpdf(X[i]) for i in range(4)])


def test_extreme_but_valid_values_give_no_nan():
    """A Bernoulli's logit far out, a count 0 at a tiny rate, a Beta at a = 1 near an edge, a Gamma with
    shape 1 at a tiny value: finite, and what the limit says."""
    lp = log_density("Bernoulli", np.array([1, 0, 1, 0]), {"logit": np.array([800.0, -800.0, -800.0, 800.0])})
    assert lp == pytest.approx([0.0, 0.0, -800.0, -800.0])
    assert log_density("Poisson", np.array([0]), {"rate": np.array([1e-300])}) == pytest.approx([-1e-300])
    assert np.isfinite(log_density("Beta", np.array([1e-300]), {"a": np.array([1.0]), "b": np.array([2.0])})).all()
    assert log_density("Gamma", np.array([0.0]), {"shape": np.array([1.0]), "rate": np.array([2.0])}) == \
        pytest.approx([math.log(2.0)])
    assert log_density("Categorical", np.array([1]), {"p": np.array([[1.0, 0.0]])}) == [-math.inf]


# ----------------------------------------------------------------- the model's log joint
def random_value(support: str, shape: tuple[int, ...], k: int | None) -> np.ndarray:
    """A value in ``support``: what a latent, data or param of that support could hold."""
    if support == "real":
        return RNG.normal(size=shape)
    if support == "positive":
        return RNG.gamma(2.0, size=shape)
    if support == "unit_interval":
        return RNG.uniform(0.05, 0.95, shape)
    if support == "binary":
        return RNG.integers(0, 2, shape)
    if support == "count":
        return RNG.poisson(2.0, shape)
    if support == "index":
        return RNG.integers(0, k, shape)
    if support == "simplex":
        return RNG.dirichlet(np.ones(shape[-1]), shape[:-1])
    if support == "real_vector":
        return RNG.normal(size=shape)
    if support == "pd_matrix":
        return spd(shape[-1], *shape[:-2])
    if support == "unit_columns":
        w = RNG.normal(size=shape)
        return w / np.linalg.norm(w, axis=0)
    raise AssertionError(support)


def values_of(model, sizes: dict[str, int], draws: int) -> tuple[Setting, dict[str, np.ndarray]]:
    """Random data and params (leading axis 1) and latents (``draws`` of them)."""
    size = (lambda e: sizes[e] if isinstance(e, str) else e)
    fixed, latents = {}, {}
    for v in model.variables.values():
        shape = tuple(size(e) for e in v.shape)
        k = size(v.support_dim) if v.support_dim is not None else None
        if v.kind in ("data", "param"):
            fixed[v.name] = random_value(v.support, shape, k)
        elif v.kind == "latent":
            latents[v.name] = np.stack([random_value(v.support, shape, k) for _ in range(draws)])
    return Setting(model, sizes, _fixed(model, sizes, fixed)), latents


POINT_MOMENTS = {
    "real": lambda v: {"x": v, "x2": v ** 2},
    "positive": lambda v: {"x": v, "logx": np.log(v)},
    "unit_interval": lambda v: {"x": v, "logx": np.log(v), "log1mx": np.log1p(-v)},
    "binary": lambda v: {"x": v, "x2": v},
    "simplex": lambda v: {"x": v, "logp": np.log(v)},
    "real_vector": lambda v: {"x": v, "xxT": v[..., :, None] * v[..., None, :]},
    "pd_matrix": lambda v: {"X": v, "logdet": np.linalg.slogdet(v)[1]},
}


def reference(derivation, setting: Setting, latents: dict[str, np.ndarray], s: int) -> float:
    """Σ_f E_q[log p_f] of the derivation with q of every latent a point mass at draw ``s``."""
    model = setting.model
    arrays = {k: a[0] for k, a in setting.fixed.items()}
    moments = {}
    for name, value in latents.items():
        v = model.variables[name]
        if name in model.approximations:
            arrays[name] = value[s]
        elif v.support == "index":
            k = setting.sizes[v.support_dim] if isinstance(v.support_dim, str) else v.support_dim
            moments[(name, "onehot")] = np.eye(k)[value[s]]
        else:
            moments.update({(name, stat): m for stat, m in POINT_MOMENTS[v.support](value[s]).items()})
    env = Env(arrays, moments, setting.sizes)
    return sum(evaluate(derivation.expected[f.id], env) for f in model.factors)


CASES = [("gmm", {"N": 3, "D": 2, "K": 2}),
         ("bernoulli_mixture", {"N": 3, "D": 2, "K": 2}),
         ("binary_sparse_coding", {"N": 2, "D": 3, "M": 3}),
         ("robust_regression", {"N": 4, "D": 2}),
         ("sparse_coding", {"N": 2, "D": 3, "M": 2}),
         ("lda", {"T": 6, "M": 2, "K": 2, "V": 3}),
         ("bpmf", {"R": 4, "U": 2, "I": 3, "K": 2}),
         ("multilevel_regression", {"N": 5, "J": 2}),
         ("eight_schools", {"J": 3})]


@pytest.mark.parametrize("stem, sizes", CASES, ids=[c[0] for c in CASES])
def test_the_log_joint_is_the_derivations_expected_log_joint_at_point_moments(stem, sizes):
    model = load(str(MODELS / f"{stem}.ppvi"))
    setting, latents = values_of(model, {**{d.name: d.default for d in model.dims.values()}, **sizes}, 3)
    got = log_joint(model, Values({**setting.fixed, **latents}, setting.sizes))
    d = derive(model)
    want = [reference(d, setting, latents, s) for s in range(3)]
    assert got == pytest.approx(want, rel=1e-10)


CORPUS = sorted(p.stem for p in (MODELS.parent / "tests" / "corpus" / "models").glob("*.ppvi")
                if p.stem != "wishart_precision")          # (its df as data: random values outside Γ_D's domain)


@pytest.mark.long
@pytest.mark.parametrize("stem", CORPUS)
def test_the_log_joint_of_every_corpus_model_is_its_expected_log_joint_at_point_moments(stem):
    model = load(str(MODELS.parent / "tests" / "corpus" / "models" / f"{stem}.ppvi"))
    sizes = {d.name: min(d.default or 3, 3) for d in model.dims.values()}
    setting, latents = values_of(model, sizes, 2)
    got = log_joint(model, Values({**setting.fixed, **latents}, setting.sizes))
    d = derive(model)
    assert got == pytest.approx([reference(d, setting, latents, s) for s in range(2)], rel=1e-9)


def test_the_gmm_log_joint_is_scipy_stats():
    model = load(str(MODELS / "gmm.ppvi"))
    n, dd, k = 4, 2, 3
    setting, h = values_of(model, {"N": n, "D": dd, "K": k}, 2)
    x = setting.fixed["x"][0]
    alpha0, m0, P0 = np.full(k, 0.01), np.zeros(dd), 0.1 * np.eye(dd)
    nu0, W0 = dd + 2, np.eye(dd) / (dd + 2)
    want = []
    for s in range(2):
        pi, mu, lam, z = h["pi"][s], h["mu"][s], h["Lambda"][s], h["z"][s]
        lp = stats.dirichlet(alpha0).logpdf(pi)
        lp += sum(stats.multivariate_normal(m0, np.linalg.inv(P0)).logpdf(mu[j])
                  + stats.wishart(nu0, W0).logpdf(lam[j]) for j in range(k))
        lp += sum(np.log(pi[z[i]]) + stats.multivariate_normal(mu[z[i]], np.linalg.inv(lam[z[i]])).logpdf(x[i])
                  for i in range(n))
        want.append(lp)
    values = Values({**setting.fixed, **h}, setting.sizes)
    assert log_joint(model, values) == pytest.approx(want, rel=1e-12)


def test_the_log_joint_of_chains_is_scipy_stats():
    """A chain's first elements (`z[s, 0] ~ …`) and its sliced loop (`for t in T[1:]`) each weigh their own
    elements: before, every statement weighed the whole chain (the first element's law at every t, and the
    transition at t = 0 from NumPy's z[-1]).  Several HMM sequences and an LDS, written out with scipy.stats."""
    from infer.test_chains import LDS, SEQUENCES, F, Qc, Rc     # noqa: E402  (tests/infer/test_chains.py)
    from ppvi.language import loads

    hmm = loads(SEQUENCES, "hmm.ppvi")
    setting, h = values_of(hmm, {"S": 2, "T": 4, "K": 3}, 3)
    p0, A, mu, sd, x = (setting.fixed[k][0] for k in ("p0", "A", "mu", "sd", "x"))
    z = h["z"]
    want = (np.log(p0[z[:, :, 0]]).sum(1) + np.log(A[z[:, :, :-1], z[:, :, 1:]]).sum((1, 2))
            + stats.norm(mu[z], sd[z]).logpdf(x).sum((1, 2)))
    assert log_joint(hmm, Values({**setting.fixed, **h}, setting.sizes)) == pytest.approx(want, rel=1e-12)

    lds = loads(LDS, "lds.ppvi")
    setting, h = values_of(lds, {"T": 5, "D": 2}, 3)
    y, xs = setting.fixed["y"][0], h["x"]
    want = [stats.multivariate_normal(np.zeros(2), np.eye(2)).logpdf(x[0])
            + sum(stats.multivariate_normal(F @ x[t - 1], Qc).logpdf(x[t]) for t in range(1, 5))
            + sum(stats.multivariate_normal(x[t], Rc).logpdf(y[t]) for t in range(5)) for x in xs]
    assert log_joint(lds, Values({**setting.fixed, **h}, setting.sizes)) == pytest.approx(want, rel=1e-12)


def test_binary_sparse_coding_per_datum_is_scipy_stats():
    model = load(str(MODELS / "binary_sparse_coding.ppvi"))
    setting, h = values_of(model, {"N": 5, "D": 4, "M": 3}, 6)
    b, W, beta, v = (setting.fixed[k][0] for k in ("b", "W", "beta", "v"))
    hh = h["h"]
    want = (stats.bernoulli(special.expit(b)).logpmf(hh).sum(-1)
            + stats.norm(hh @ W.T, beta ** -0.5).logpdf(v).sum(-1))
    got = log_joint_per_datum(model, Values({**setting.fixed, **h}, setting.sizes), "N")
    assert got == pytest.approx(want, rel=1e-12)


def test_chunks_of_draws_give_the_same_log_joint(monkeypatch):
    from ppvi.simulate import joint

    model = load(str(MODELS / "binary_sparse_coding.ppvi"))
    setting, h = values_of(model, {"N": 5, "D": 4, "M": 3}, 9)
    values = Values({**setting.fixed, **h}, setting.sizes)
    whole = log_joint(model, values)
    monkeypatch.setattr(joint, "CHUNK_ENTRIES", 100)          # 5 × 4 × 3 per draw: a draw per chunk
    assert log_joint(model, values) == pytest.approx(whole, rel=1e-14)


def test_a_chains_first_element_is_one_element_when_draws_are_chunked():
    """`z[0] ~ Categorical(p0)` draws one element of z, not all T of them: the chunks of draws are sized by
    the largest statement, here T numbers a draw.  (Counted as T × T before, 1000 draws of a 1000-step HMM
    were cut into 250 chunks, and sampling it, element after element in each, took minutes.)"""
    from ppvi.simulate.joint import draw_slices

    model = load(str(MODELS / "sequences" / "baum_welch.ppvi"))
    assert [(s.start, s.stop) for s in draw_slices(model, {"T": 1000, "K": 2}, 1000)] == [(0, 1000)]


def test_a_poisson_sum_s_allocation_is_integrated_out():
    """models/poisson_factorisation.ppvi: prior draws hold θ, β and y (never the allocation the checker adds),
    and the log joint at them is Σ log Gamma + Σ log Poisson(y | Σ_k θ β), written here with scipy.stats
    (a KeyError before: the allocation's flat factor had no law to evaluate)."""
    from ppvi.simulate.ancestral import sample_prior

    model = load(str(MODELS / "poisson_factorisation.ppvi"))
    draws = sample_prior(model, 3, seed=5, dims={"U": 4, "I": 3})
    assert set(draws) == {"theta", "beta", "y"}
    theta, beta, y = draws["theta"], draws["beta"], draws["y"]
    rate = np.einsum("suk,sik->sui", theta, beta)
    want = (stats.gamma(0.3, scale=1 / 0.3).logpdf(theta).sum((1, 2))
            + stats.gamma(0.3, scale=1 / 0.3).logpdf(beta).sum((1, 2)) + stats.poisson(rate).logpmf(y).sum((1, 2)))
    values = Values({**draws, "a": np.full(1, 0.3), "b": np.full(1, 0.3)}, {"U": 4, "I": 3, "K": 3})
    assert log_joint(model, values) == pytest.approx(want, rel=1e-10)
