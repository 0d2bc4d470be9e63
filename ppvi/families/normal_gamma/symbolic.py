"""NormalGamma(mean m, beta β, shape a, rate b): the law of a pair x = (μ, λ) with μ | λ ~ N(m, (βλ)⁻¹) and
λ ~ Gamma(a, b) (PRML 2.154–2.155; the q of ``approximate mu, lam jointly``, docs/derivation.md, "A Normal–Gamma
pair").

Statistics T = (λμ², λμ, λ, log λ), η = (−β/2, βm, −b − βm²/2, a − ½), log h = −½ log 2π,
A(η) = log Γ(a) − a log b − ½ log β with β = −2η_λμ², m = η_λμ/β, a = η_logλ + ½, b = −η_λ − βm²/2.
Derive never recognises it (no mean-field update yields it: the pair's step is the engine's, from the two
mean-field updates), but reads :meth:`NormalGamma.pair_entropy` for the pair's term of the ELBO.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import sympy as sp
from sympy.logic.boolalg import Boolean

from ..base import ExponentialFamily, Params, Stats
from ..special import digamma, lgamma

__all__ = ["NormalGamma"]


@dataclass(frozen=True)
class NormalGamma(ExponentialFamily):
    """NormalGamma(mean m, beta β, shape a, rate b) of x = (μ, λ): N(μ | m, (βλ)⁻¹) Gamma(λ | a, b)."""

    name: ClassVar[str] = "NormalGamma"
    support: ClassVar[str] = "real_positive_pair"
    event_rank: ClassVar[int] = 1
    params: ClassVar[tuple[str, ...]] = ("mean", "beta", "shape", "rate")
    statistic_keys: ClassVar[tuple[str, ...]] = ("lam_x2", "lam_x", "lam", "loglam")
    moment_keys: ClassVar[tuple[str, ...]] = ("lam_x2", "lam_x", "lam", "loglam", "x", "x2")

    def statistics(self, x: Any) -> Stats:
        mu, lam = x
        return {"lam_x2": lam * mu**2, "lam_x": lam * mu, "lam": lam, "loglam": sp.log(lam)}

    def natural_from_standard(self, params: Params) -> Stats:
        m, beta, a, b = self.unpack(params)
        return {"lam_x2": -beta / 2, "lam_x": beta * m, "lam": -b - beta * m**2 / 2, "loglam": a - sp.Rational(1, 2)}

    def standard_from_natural(self, eta: Params) -> dict[str, sp.Expr]:
        beta = -2 * eta["lam_x2"]
        return {"mean": eta["lam_x"] / beta, "beta": beta, "shape": eta["loglam"] + sp.Rational(1, 2),
                "rate": -eta["lam"] + eta["lam_x"] ** 2 / (4 * eta["lam_x2"])}

    def log_normaliser(self, eta: Params) -> sp.Expr:
        s = self.standard_from_natural(eta)
        return lgamma(s["shape"]) - s["shape"] * sp.log(s["rate"]) - sp.log(s["beta"]) / 2

    def base_measure(self, x: Any) -> sp.Expr:
        return -sp.log(2 * sp.pi) / 2

    def expectations(self, params: Params) -> Stats:
        """E[λ] = a/b, E[log λ] = ψ(a) − log b, E[λμ] = m a/b, E[λμ²] = 1/β + m² a/b; and of μ alone
        (its Student-t marginal) E[μ] = m, E[μ²] = m² + b/(β(a − 1)) for a > 1."""
        m, beta, a, b = self.unpack(params)
        return {"lam_x2": 1 / beta + m**2 * a / b, "lam_x": m * a / b, "lam": a / b, "loglam": digamma(a) - sp.log(b),
                "x": m, "x2": m**2 + b / (beta * (a - 1))}

    def valid_natural(self, eta: Params) -> Boolean:
        s = self.standard_from_natural(eta)
        return sp.And(sp.sympify(s["beta"]) > 0, sp.sympify(s["shape"]) > 0, sp.sympify(s["rate"]) > 0)

    def log_density(self, x: Any, params: Params) -> sp.Expr:
        mu, lam = x
        m, beta, a, b = self.unpack(params)
        return (a * sp.log(b) - lgamma(a) + (a - 1) * sp.log(lam) - b * lam
                + (sp.log(beta * lam) - sp.log(2 * sp.pi) - beta * lam * (mu - m) ** 2) / 2)

    def mean(self, params: Params) -> sp.Expr:
        """E[μ] (the pair's first coordinate; λ's is ``expectations``' ``lam``)."""
        return self.unpack(params)[0]

    def entropy(self, params: Params) -> sp.Expr:
        """H[q(λ)] + E_λ H[q(μ | λ)] = log Γ(a) − (a − 1)ψ(a) − log b + a + ½(1 + log 2π − log β − E[log λ])."""
        m, beta, a, b = self.unpack(params)
        gamma = lgamma(a) - (a - 1) * digamma(a) - sp.log(b) + a
        h_mu = (1 + sp.log(2 * sp.pi) - sp.log(beta * a / b)) / 2       # q(μ)'s Normal, sd (β⟨λ⟩)^-½
        return gamma + self.pair_entropy(h_mu, a / b, digamma(a) - sp.log(b))

    @staticmethod
    def pair_entropy(h_mu: sp.Expr, e_lam: sp.Expr, e_loglam: sp.Expr) -> sp.Expr:
        """E_λ H[q(μ | λ)] from ``h_mu``, the entropy of the Normal q(μ) the state keeps (sd (β⟨λ⟩)^-½:
        ½(1 + log 2π − log β − log⟨λ⟩)), and λ's moments: h_mu + ½(log⟨λ⟩ − ⟨log λ⟩).  The ELBO's term of μ
        (ppvi.derive.meanfield)."""
        return h_mu + (sp.log(e_lam) - e_loglam) / 2
