"""Log-space helpers for the discrete families (docs/derivation.md, "Numerics").

The families write their log-normalisers in the plain mathematical form,
e.g. softplus(η) = log(1 + exp(η)), which is what the derivation engine reads
and prints.  Evaluated naively, exp overflows for large η; the forms below are
equal everywhere and safe in floating point, and are what a code generator
should lower the plain forms to.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp

__all__ = [
    "log_sigmoid",
    "logsumexp",
    "sigmoid",
    "softplus",
    "stable_logsumexp",
    "stable_softplus",
]


def softplus(z: sp.Expr) -> sp.Expr:
    """softplus(z) = log(1 + eᶻ), the Bernoulli log-normaliser."""
    return sp.log(1 + sp.exp(z))


def stable_softplus(z: sp.Expr) -> sp.Expr:
    """softplus(z) = max(z, 0) + log(1 + e^{−|z|}); the exponent is never positive."""
    return sp.Max(z, 0) + sp.log(1 + sp.exp(-sp.Abs(z)))


def sigmoid(z: sp.Expr) -> sp.Expr:
    """σ(z) = 1/(1 + e^{−z})."""
    return 1 / (1 + sp.exp(-z))


def log_sigmoid(z: sp.Expr) -> sp.Expr:
    """log σ(z) = −softplus(−z) (docs/derivation.md)."""
    return -softplus(-z)


def logsumexp(terms: Sequence[sp.Expr]) -> sp.Expr:
    """log Σ_k e^{z_k}, the Categorical log-normaliser."""
    return sp.log(sp.Add(*(sp.exp(z) for z in terms)))


def stable_logsumexp(terms: Sequence[sp.Expr]) -> sp.Expr:
    """log Σ_k e^{z_k} = m + log Σ_k e^{z_k − m} with m = max_k z_k, so every
    exponent is ≤ 0 and one of them is 0.  For a symbolic number of terms the
    generated loop does the same with a running maximum."""
    m = sp.Max(*terms)
    return m + sp.log(sp.Add(*(sp.exp(z - m) for z in terms)))
