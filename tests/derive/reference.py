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


def elbo(d, env: Env) -> float:
    return sum(evaluate(e, env) for _, e in d.elbo_terms())


def sweep(d, env: Env) -> None:
    for var in d.q:
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
