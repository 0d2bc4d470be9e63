"""Draws from q, their log density, and credible intervals (``Result.sample``, ``.log_q``, ``.interval``)."""

from __future__ import annotations

import numbers
from typing import Iterable, Mapping

import numpy as np

from ppvi.errors import Diagnostic, PPVIError, did_you_mean
from ppvi.io import joint_chain, posterior
from ppvi.result import Result


def _mistake(where: str, message: str, hint: str | None = None) -> PPVIError:
    return PPVIError(Diagnostic(message, where, hint=hint))


def whole(where: str, name: str, value: object, least: int) -> int:
    """An argument that must be a whole number ≥ least (bool is not a number)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < least:
        raise _mistake(where, f"{name}={value!r}: {name} is a whole number ≥ {least}")
    return int(value)


def seed_of(where: str, seed: object) -> np.random.Generator:
    if seed is not None:
        whole(where, "seed", seed, 0)
    return np.random.default_rng(seed)


def chosen(result: Result, var_names: Iterable[str] | str | None, where: str) -> list[str]:
    """The latents named (all when None), each checked."""
    if var_names is None:
        return list(result.q)
    names = [var_names] if isinstance(var_names, str) else list(var_names)
    for name in names:
        if name not in result.q:
            known = ", ".join(result.q) or "none"
            hint = did_you_mean(str(name), result.q) or f"the latents: {known}"
            raise _mistake(where, f"no latent `{name}` in this result"
                           + (" (it is a param: its value is in result.params)" if name in result.params else ""),
                           hint)
    return names


def sample(result: Result, n: int, seed: int | None = None, var_names=None) -> dict[str, np.ndarray]:
    """``n`` draws from q of each latent, in the order of ``result.q``, from one generator seeded by ``seed``
    (a chain approximated jointly: jointly, and μ of a Normal–Gamma pair with its λ: :mod:`ppvi.io.joint_chain`)."""
    n = whole("sample", "n", n, 1)
    rng = seed_of("sample", seed)
    return joint_chain.sample_all({name: result.q[name] for name in chosen(result, var_names, "sample")}, n, rng)


def log_q(result: Result, draws: Mapping[str, np.ndarray]) -> np.ndarray:
    """log q of each draw, summed over the latents in ``draws`` (a point q adds 0: it has no density)."""
    names = chosen(result, list(draws), "log_q")
    total = None
    for name in names:
        x = np.asarray(draws[name])
        q = result.q[name]
        if x.shape[1:] != q.shape:
            expected = ", ".join(map(str, q.shape))
            raise _mistake("log_q", f"draws of `{name}` have shape {x.shape}: expected (draws, {expected})")
        given = joint_chain.paired(q, x, draws) if q.pair in names else None
        lq = joint_chain.log_density(q, x) if given is None else given.reshape(x.shape[0], -1).sum(1)
        total = lq if total is None else total + lq
    return np.zeros(0) if total is None else total


def interval(result: Result, p: float = 0.9) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The central ``p`` interval of every entry: q's marginal quantiles (1 − p)/2 and (1 + p)/2; a param's
    and a point's value at both ends.  Categorical latents, whose values are labels, and Pólya-Gamma weights,
    whose law has no quantile function at hand (posterior.quantile), are left out."""
    if not (isinstance(p, numbers.Real) and not isinstance(p, bool) and 0 < p < 1):
        raise _mistake("interval", f"p={p!r}: p is a probability in (0, 1)", "e.g. interval(0.9)")
    out = {}
    for name, q in result.q.items():
        params = dict(q.params)
        lo, hi = (posterior.quantile(q.family, params, x) for x in ((1 - p) / 2, (1 + p) / 2))
        if lo is not None:
            out[name] = (lo, hi)
    for name, value in result.params.items():
        out[name] = (np.asarray(value), np.asarray(value))
    return out
