"""PolyaGamma(b, c): the q of the local weight ω that makes a logistic link conjugate.

Polson, Scott & Windle (2013): for b > 0,

    (e^ψ)^a / (1 + e^ψ)^b = 2^{−b} e^{κψ} ∫ e^{−ωψ²/2} PG(ω | b, 0) dω,   κ = a − b/2,

and PG(b, c) is PG(b, 0) exponentially tilted: p(ω | b, c) = cosh^b(c/2) e^{−c²ω/2} PG(ω | b, 0).
Its Laplace transform E_{PG(b,0)}[e^{−tω}] = cosh^{−b}(√(t/2)) gives every moment that 19.7 needs:

    E[ω] = b tanh(c/2) / (2c)            (b/4 − b c²/48 + b c⁴/480 − … near c = 0)
    KL(PG(b, c) ‖ PG(b, 0)) = b log cosh(c/2) − c² E[ω]/2.

PG(b, 0) has no closed-form density, and needs none.  The family is {h_b(ω) e^{η ω}} with h_b the
density of PG(b, 0): in ω it is the one statistic ``x`` (η_x = −c²/2), and b is read off the prior
exactly as 19.56 reads a natural parameter: the prior ω ~ PG(b, 0) is b·``base`` with ``base`` the
place-holder statistic log h_b(ω)/b, whose coefficient in the expected log joint is b.  Its moment
E_q[log h_b(ω)]/b is never evaluated: in the ELBO it appears once in E[log p(ω)] and once, with
the opposite sign, in H[q(ω)], so the moment is carried as 0 and the entropy is taken relative to
the base measure, H_h[q] = −E_q[log q(ω)/h_b(ω)] = c² E[ω]/2 − b log cosh(c/2) = −KL.  Their sum,
the only thing the ELBO needs, is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import sympy as sp
from sympy.logic.boolalg import Boolean

from ..base import ExponentialFamily, Params, Stats

__all__ = ["PolyaGamma", "pg_base", "pg_mean", "log_cosh_half"]


class pg_base(sp.Function):
    """pg_base(ω) = log h_b(ω) / b, h_b the density of PG(b, 0) with the b of ω's prior: the place-holder
    statistic ``base``.  Never evaluated (its expectation cancels in the ELBO, see the module docstring)."""

    nargs = 1


def log_cosh_half(c: sp.Expr) -> sp.Expr:
    """log cosh(c/2)."""
    return sp.log(sp.cosh(c / 2))


def pg_mean(b: sp.Expr, c: sp.Expr) -> sp.Expr:
    """E[ω] = b tanh(c/2) / (2c) of PG(b, c) (its limit b/4 at c = 0 is the generated code's business)."""
    return b * sp.tanh(c / 2) / (2 * c)


@dataclass(frozen=True)
class PolyaGamma(ExponentialFamily):
    """PG(b, c) on ω > 0: cosh^b(c/2) e^{−c²ω/2} PG(ω | b, 0)."""

    name: ClassVar[str] = "PolyaGamma"
    support: ClassVar[str] = "polya_gamma"
    event_rank: ClassVar[int] = 0
    params: ClassVar[tuple[str, ...]] = ("b", "c")
    statistic_keys: ClassVar[tuple[str, ...]] = ("x", "base")
    moment_keys: ClassVar[tuple[str, ...]] = ("x", "base")

    def statistics(self, x: Any) -> Stats:
        return {"x": x, "base": pg_base(x)}

    def natural_from_standard(self, params: Params) -> Stats:
        b, c = self.unpack(params)
        return {"x": -c ** 2 / 2, "base": b}

    def standard_from_natural(self, eta: Params) -> dict[str, sp.Expr]:
        return {"b": eta["base"], "c": sp.sqrt(-2 * eta["x"])}

    def log_normaliser(self, eta: Params) -> sp.Expr:
        """A(η) = log E_{PG(b,0)}[e^{η_x ω}] = −b log cosh(√(−2η_x)/2)."""
        return -eta["base"] * log_cosh_half(sp.sqrt(-2 * eta["x"]))

    def base_measure(self, x: Any) -> sp.Expr:
        return sp.S.Zero      # h_b is carried by the place-holder statistic (module docstring)

    def expectations(self, params: Params) -> Stats:
        b, c = self.unpack(params)
        return {"x": pg_mean(b, c), "base": sp.S.Zero}

    def valid_natural(self, eta: Params) -> Boolean:
        return sp.And(sp.sympify(eta["x"]) <= 0, sp.sympify(eta["base"]) > 0)

    def log_density(self, x: Any, params: Params) -> sp.Expr:
        b, c = self.unpack(params)
        return b * log_cosh_half(c) - c ** 2 * x / 2 + b * pg_base(x)

    def mean(self, params: Params) -> sp.Expr:
        return self.expectations(params)["x"]

    def entropy(self, params: Params) -> sp.Expr:
        """Relative to the base measure PG(b, 0): c² E[ω]/2 − b log cosh(c/2) = −KL(q ‖ PG(b, 0))."""
        b, c = self.unpack(params)
        return c ** 2 * pg_mean(b, c) / 2 - b * log_cosh_half(c)
