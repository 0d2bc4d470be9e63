"""NormalGamma's Numba side (docs/architecture.md, "The family unit"): its finish, the pair's natural
parameters -> q(μ, λ)'s parameters, moments and entropy, which the engine's step of a pair calls
(``ppvi.infer.program``)."""

from __future__ import annotations

import math

from numba import njit

from ppvi.codegen.special import digamma, gamma_entropy_shape

__all__ = ["finish_normal_gamma"]


@njit(cache=True)
def finish_normal_gamma(eta_mu_x, eta_mu_x2, eta_lam_x, eta_lam_logx, lam, mean, sd):
    """q(μ, λ) = NormalGamma(m, β, a, b), μ | λ ~ N(m, (βλ)⁻¹), λ ~ Gamma(a, b), from the mean-field natural
    parameters of μ and of λ read at the same moments (⟨λ⟩ = ``lam``, q(μ)'s ``mean`` and ``sd``): η_μ = ⟨λ⟩(βm,
    −β/2) and η_λ = (a − ½, −b − β((mean − m)² + sd²)/2) (docs/derivation.md, "A Normal–Gamma pair"), with no
    difference of large numbers.  -> (m, s, ⟨μ²⟩, H[q(μ | λ)] averaged over λ, a, b, ⟨λ⟩, ⟨log λ⟩, H[q(λ)], β),
    s = (β⟨λ⟩)^-½ the spread that makes ⟨λ⟩⟨μ²⟩ = E[λμ²] and ⟨λ⟩⟨μ⟩ = E[λμ]."""
    beta = -2.0 * eta_mu_x2 / lam
    m = eta_mu_x / (beta * lam)
    a = eta_lam_logx + 0.5
    b = -eta_lam_x - 0.5 * beta * ((mean - m) ** 2 + sd * sd)
    if not (beta > 0.0 and a > 0.0 and b > 0.0 and lam > 0.0):
        nan = math.nan
        return nan, nan, nan, nan, nan, nan, nan, nan, nan, nan
    e_lam = a / b
    e_log = digamma(a) - math.log(b)
    s = 1.0 / math.sqrt(beta * e_lam)
    h_mu = 0.5 * (1.0 + math.log(2.0 * math.pi)) - 0.5 * math.log(beta) - 0.5 * e_log
    return m, s, m * m + s * s, h_mu, a, b, e_lam, e_log, gamma_entropy_shape(a) - math.log(b), beta
