"""A reference CAVI written with NumPy/SciPy from textbook formulas, driving ppvi's derived η.

The standard-parameter and moment formulas here are written independently of
``ppvi.derive.qfamily`` (PRML appendix B), so ELBO checks built on this module
test the derived expressions, the entropies and every constant at once.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import special

from ppvi.derive.numeric import Env, evaluate


def _size(i, env: Env) -> int:
    return int(round(evaluate(i.upper + 1, env)))


def natural_arrays(d, var: str, env: Env) -> dict[str, np.ndarray]:
    q = d.q[var]
    axes = list(q.index + q.event) + ([q.extra] if q.extra is not None else [])
    out = {}
    for s, eta in q.natural.items():
        free = [i for i in axes if i in eta.free_symbols] if s not in ("onehot", "xxT", "X") else axes
        if s in ("x", "logp", "x2", "logx", "log1mx") and q.family in ("MvNormal", "Dirichlet", "Normal", "Gamma",
                                                                         "Beta", "Bernoulli"):
            free = list(q.index + q.event)
        if s == "logdet":
            free = list(q.index)
        shape = [_size(i, env) for i in free]
        arr = np.empty(shape)
        for pos in itertools.product(*(range(n) for n in shape)):
            arr[pos] = evaluate(eta, env, dict(zip(free, pos)))
        out[s] = arr
    return out


def finish(family: str, eta: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Standard parameters from natural ones (PRML appendix B)."""
    if family == "Normal":
        tau = -2 * eta["x2"]
        return {"mean": eta["x"] / tau, "sd": tau ** -0.5}
    if family == "Gamma":
        return {"shape": eta["logx"] + 1, "rate": -eta["x"]}
    if family == "Beta":
        return {"a": eta["logx"] + 1, "b": eta["log1mx"] + 1}
    if family == "Bernoulli":
        return {"p": special.expit(eta["x"])}
    if family == "Categorical":
        return {"p": np.exp(eta["onehot"] - special.logsumexp(eta["onehot"], axis=-1, keepdims=True))}
    if family == "Dirichlet":
        return {"alpha": eta["logp"] + 1}
    if family == "MvNormal":
        prec = -2 * eta["xxT"]
        prec = (prec + np.swapaxes(prec, -1, -2)) / 2
        cov = np.linalg.inv(prec)
        return {"mean": np.einsum("...de,...e->...d", cov, eta["x"]), "cov": cov}
    if family == "Wishart":
        D = eta["X"].shape[-1]
        m = -2 * eta["X"]
        return {"df": 2 * eta["logdet"] + D + 1, "scale": np.linalg.inv((m + np.swapaxes(m, -1, -2)) / 2)}
    raise AssertionError(family)


def moments(family: str, p: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if family == "Normal":
        return {"x": p["mean"], "x2": p["mean"] ** 2 + p["sd"] ** 2}
    if family == "Gamma":
        return {"x": p["shape"] / p["rate"], "logx": special.digamma(p["shape"]) - np.log(p["rate"])}
    if family == "Beta":
        ab = p["a"] + p["b"]
        return {"x": p["a"] / ab, "logx": special.digamma(p["a"]) - special.digamma(ab),
                "log1mx": special.digamma(p["b"]) - special.digamma(ab)}
    if family == "Bernoulli":
        return {"x": p["p"], "x2": p["p"]}
    if family == "Categorical":
        return {"onehot": p["p"]}
    if family == "Dirichlet":
        a0 = p["alpha"].sum(-1, keepdims=True)
        return {"logp": special.digamma(p["alpha"]) - special.digamma(a0), "x": p["alpha"] / a0}
    if family == "MvNormal":
        m = p["mean"]
        return {"x": m, "xxT": p["cov"] + m[..., :, None] * m[..., None, :]}
    if family == "Wishart":
        df, W = p["df"], p["scale"]
        D = W.shape[-1]
        i = np.arange(1, D + 1)
        logdet = (special.digamma((df[..., None] + 1 - i) / 2).sum(-1) + D * np.log(2)
                  + np.linalg.slogdet(W)[1])
        return {"X": df[..., None, None] * W, "logdet": logdet}
    raise AssertionError(family)


def update(d, var: str, env: Env) -> None:
    """19.56 for one latent: η from its neighbours' moments, then q's parameters and moments."""
    q = d.q[var]
    params = finish(q.family, natural_arrays(d, var, env))
    for name, value in params.items():
        env.arrays[f"{name}({var})"] = np.asarray(value, dtype=float)
    for stat, value in moments(q.family, params).items():
        env.moments[(var, stat)] = np.asarray(value, dtype=float)


def update_pair(d, mu: str, env: Env) -> None:
    """``approximate mu, lam jointly``: q(μ, λ) = N(μ | m, (βλ)⁻¹) Gamma(λ | a, b) from the coefficients of
    λμ², λμ, λ and log λ in the expected log joint, read off the two latents' η at the same moments
    (η_μ = ⟨λ⟩(η_λμ, η_λμ²), η_λ = (η_λμ²⟨μ²⟩ + η_λμ⟨μ⟩ + η_λ, η_logλ)), then PRML 2.3.6's parameters directly
    (b = −η_λ − βm²/2), not ppvi's runtime finish."""
    lam = d.model.pairs[mu]
    e_mu, e_lam = natural_arrays(d, mu, env), natural_arrays(d, lam, env)
    e_l, mean, x2 = env.moments[(lam, "x")], env.moments[(mu, "x")], env.moments[(mu, "x2")]
    n_mu2, n_mu = e_mu["x2"] / e_l, e_mu["x"] / e_l
    n_lam, n_log = e_lam["x"] - n_mu2 * x2 - n_mu * mean, e_lam["logx"]
    beta = -2 * n_mu2
    m, a = n_mu / beta, n_log + 0.5
    b = -n_lam - beta * m ** 2 / 2
    sd = (beta * a / b) ** -0.5
    for name, value in {"mean": m, "sd": sd}.items():
        env.arrays[f"{name}({mu})"] = np.asarray(value, dtype=float)
    for name, value in {"shape": a, "rate": b}.items():
        env.arrays[f"{name}({lam})"] = np.asarray(value, dtype=float)
    env.moments.update({(mu, "x"): m, (mu, "x2"): m ** 2 + sd ** 2, (lam, "x"): a / b,
                        (lam, "logx"): special.digamma(a) - np.log(b)})


def elbo(d, env: Env) -> float:
    return sum(evaluate(e, env) for _, e in d.elbo_terms())


def sweep(d, env: Env) -> None:
    partners = set(d.model.pairs.values())     # (updated with their pair's μ)
    for var in d.q:
        if var in d.model.pairs:
            update_pair(d, var, env)
        elif var not in partners:
            update(d, var, env)


def chain_sweeps(d, env: Env, sweeps: int) -> np.ndarray:
    """CAVI beside a Categorical chain: every q from its derived η, then the chain's block
    (ppvi.derive.chain.update_block); the ELBO after each sweep."""
    from ppvi.derive.chain import update_block

    trace = []
    for _ in range(sweeps):
        sweep(d, env)
        update_block(d.blocks["z"], env)
        trace.append(elbo(d, env))
    return np.array(trace)
