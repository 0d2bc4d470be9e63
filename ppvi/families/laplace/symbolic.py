"""Laplace(loc, scale): p(x) = exp(−|x − loc|/scale) / (2 scale) (seed 19.14
with λ = 1/scale, the sparse-coding prior of 19.3).

Not an exponential family in loc (|x − loc| is no sum of products of a
function of x and a function of loc), so it has no statistics or natural
parameters: only log density, mean and entropy.  A model with a latent under
a Laplace factor has no conjugate mean-field update; MAP (19.11–19.13) is the
route for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import sympy as sp

from ..base import Density, Params

__all__ = ["Laplace"]


@dataclass(frozen=True)
class Laplace(Density):
    """Laplace(loc, scale); ``exponential`` is False."""

    name: ClassVar[str] = "Laplace"
    support: ClassVar[str] = "real"
    event_rank: ClassVar[int] = 0
    params: ClassVar[tuple[str, ...]] = ("loc", "scale")

    def log_density(self, x: Any, params: Params) -> sp.Expr:
        loc, scale = self.unpack(params)
        return -sp.Abs(x - loc) / scale - sp.log(2 * scale)

    def mean(self, params: Params) -> sp.Expr:
        return self.unpack(params)[0]

    def entropy(self, params: Params) -> sp.Expr:
        """1 + log(2 scale)."""
        return 1 + sp.log(2 * self.unpack(params)[1])
