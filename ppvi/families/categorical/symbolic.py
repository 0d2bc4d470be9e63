"""Categorical(p) on the indices {0, …, K − 1} (PRML B.19–B.24 with 1-of-K x).

Statistic T = onehot(x) = ([x = k])_k, natural parameters the log-probabilities
η_k = log p_k (defined up to a common constant: the parametrisation is not
minimal), A(η) = log Σ_k e^{η_k}, p = softmax(η), h = 1.  Mean-field updates of
a discrete latent (z[n] of a mixture) land here: 19.56 gives η_k directly as
the expected log joint at x = k.  For evaluation A lowers to
``stable.stable_logsumexp``.

The event x is a scalar index (event rank 0); its parameters are K-vectors,
explicit for an int K or indexed by ``self.k`` for a symbolic K (see
``base.IndexedVectorFamily``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import sympy as sp
from sympy.logic.boolalg import Boolean

from ..base import IndexedVectorFamily, Params, Stats, Value

__all__ = ["Categorical"]


@dataclass(frozen=True)
class Categorical(IndexedVectorFamily):
    """Categorical(p): P(x = k) = p_k, k = 0 … K − 1."""

    name: ClassVar[str] = "Categorical"
    support: ClassVar[str] = "index"
    event_rank: ClassVar[int] = 0
    params: ClassVar[tuple[str, ...]] = ("p",)
    statistic_keys: ClassVar[tuple[str, ...]] = ("onehot",)
    moment_keys: ClassVar[tuple[str, ...]] = ("onehot",)

    def onehot(self, x: Any, *like: Value) -> Value:
        """([x = k])_k; the size is ``dim`` or that of the vectors ``like``."""
        return self.map(lambda k: sp.KroneckerDelta(x, k), self.positions(*like))

    def statistics(self, x: Any) -> Stats:
        return {"onehot": self.onehot(x)}

    def natural_from_standard(self, params: Params) -> Stats:
        return {"onehot": self.map(sp.log, self.unpack(params)[0])}

    def standard_from_natural(self, eta: Params) -> dict[str, Value]:
        eta_ = self.vector(eta["onehot"])
        a = self.log_normaliser(eta)
        return {"p": self.map(lambda e: sp.exp(e - a), eta_)}

    def log_normaliser(self, eta: Params) -> sp.Expr:
        """log Σ_k exp η_k (log-sum-exp)."""
        return sp.log(self.total(self.map(sp.exp, self.vector(eta["onehot"]))))

    def base_measure(self, x: Any) -> sp.Expr:
        return sp.S.Zero

    def expectations(self, params: Params) -> Stats:
        return {"onehot": self.unpack(params)[0]}

    def valid_natural(self, eta: Params) -> Boolean:
        """Every real vector is valid."""
        return sp.true

    def log_density(self, x: Any, params: Params) -> sp.Expr:
        """Σ_k [x = k] log p_k."""
        p = self.unpack(params)[0]
        return self.inner(self.onehot(x, p), self.map(sp.log, p))

    def mean(self, params: Params) -> sp.Expr:
        """E[x] = Σ_k k p_k (the index value; the vector p itself is E[onehot])."""
        p = self.unpack(params)[0]
        return self.inner(self.positions(p), p)

    def entropy(self, params: Params) -> sp.Expr:
        """−Σ_k p_k log p_k."""
        p = self.unpack(params)[0]
        return -self.inner(p, self.map(sp.log, p))
