"""Multinomial(n, p): a count vector x on K categories with Σₖ xₖ = n.

log p(x) = log Γ(n + 1) − Σₖ log Γ(xₖ + 1) + Σₖ xₖ log pₖ.  In p it is
Dirichlet's statistic log pₖ, so a Dirichlet prior on p is conjugate:
q(p) = Dirichlet(α + Σ x) (PRML 2.2.1).  n is a known total (a constant or data).
Vectors are explicit K×1 matrices here; the derivation writes the same density
in index notation (``derive/lower.py``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, ClassVar

import sympy as sp

from ..base import Density, Params, as_matrix
from ..special import lgamma

__all__ = ["Multinomial"]


@dataclass(frozen=True)
class Multinomial(Density):
    """Multinomial(n, p): P(x) = n! Πₖ pₖ^{xₖ} / xₖ! on Σₖ xₖ = n."""

    name: ClassVar[str] = "Multinomial"
    support: ClassVar[str] = "count"
    event_rank: ClassVar[int] = 1
    params: ClassVar[tuple[str, ...]] = ("n", "p")
    sized: ClassVar[bool] = True

    def log_density(self, x: Any, params: Params) -> sp.Expr:
        n, p = self.unpack(params)
        x = as_matrix(x)
        return lgamma(n + 1) + sp.Add(*(xk * sp.log(pk) - lgamma(xk + 1) for xk, pk in zip(x, p, strict=True)))

    def mean(self, params: Params) -> sp.Expr:
        n, p = self.unpack(params)
        return n * p

    def entropy(self, params: Params) -> sp.Expr:
        """−Σ_x P(x) log P(x) over the compositions of an integer n into K parts (no closed form)."""
        n, p = self.unpack(params)
        if not (isinstance(n, sp.Integer) or (isinstance(n, sp.Basic) and n.is_Integer)):
            raise ValueError("Multinomial entropy: only for a given whole n")
        k = len(p)
        total = sp.S.Zero
        for cut in itertools.combinations(range(int(n) + k - 1), k - 1):
            bounds = (-1, *cut, int(n) + k - 1)
            x = [bounds[i + 1] - bounds[i] - 1 for i in range(k)]
            lp = self.log_density(x, params)
            total -= sp.exp(lp) * lp
        return total
