"""log p(x | θ) of each distribution of the language, elementwise, in log space.

Each function takes the value ``x`` and the parameters as arrays that broadcast
against each other (a vector-valued law's event on the last axis, a matrix's on
the last two) and returns the log density of every element, its event axes summed.
Γ is never evaluated: ``gammaln``, ``betaln``; ``xlogy`` makes 0 · log 0 = 0 (a
Poisson count 0 at rate 0, a Beta's edge with a = 1); a Bernoulli whose p is
``sigmoid(ψ)`` is given ψ, so log p = −softplus(−ψ) stays finite at any ψ.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
from scipy import special

LOG_2PI = math.log(2 * math.pi)


def normal(x, mean, *, sd=None, precision=None, variance=None):
    """One of sd, precision τ, variance: ½ log(τ / 2π) − ½ τ (x − μ)²."""
    log_tau = (-2 * np.log(sd) if sd is not None else np.log(precision) if precision is not None
               else -np.log(variance))
    return 0.5 * (log_tau - LOG_2PI) - 0.5 * np.exp(log_tau) * (x - mean) ** 2


def mvnormal(x, mean, *, precision=None, cov=None):
    d = x.shape[-1]
    root = np.linalg.cholesky(precision if precision is not None else cov)
    half_logdet = np.log(np.diagonal(root, axis1=-2, axis2=-1)).sum(-1)
    r = (x - mean)[..., None]
    if precision is not None:        # (x − μ)ᵀ P (x − μ) = |Lᵀ (x − μ)|², P = L Lᵀ
        z = np.swapaxes(root, -1, -2) @ r
    else:                            # (x − μ)ᵀ C⁻¹ (x − μ) = |L⁻¹ (x − μ)|², C = L Lᵀ
        z = np.linalg.solve(np.broadcast_to(root, np.broadcast_shapes(root.shape, r.shape[:-1] + (d,))),
                            np.broadcast_to(r, np.broadcast_shapes(r.shape, root.shape[:-1] + (1,))))
        half_logdet = -half_logdet
    return half_logdet - 0.5 * d * LOG_2PI - 0.5 * (z[..., 0] ** 2).sum(-1)


def gamma(x, shape, rate):
    return special.xlogy(shape, rate) - special.gammaln(shape) + special.xlogy(shape - 1, x) - rate * x


def beta(x, a, b):
    return special.xlogy(a - 1, x) + special.xlog1py(b - 1, -x) - special.betaln(a, b)


def bernoulli(x, p=None, *, logit=None):
    """log p(x) for x in {0, 1}; with ``logit`` ψ (p = sigmoid(ψ)): log p(1) = −softplus(−ψ) and
    log p(0) = −softplus(ψ)."""
    if logit is not None:
        return -np.logaddexp(0.0, np.where(x == 1, -logit, logit))
    return np.where(x == 1, np.log(p), np.log1p(-p))


def categorical(x, p):
    batch = np.broadcast_shapes(np.shape(x), p.shape[:-1])
    logp = np.log(np.broadcast_to(p, batch + p.shape[-1:]))
    return np.take_along_axis(logp, np.broadcast_to(x, batch)[..., None].astype(np.intp), -1)[..., 0]


def dirichlet(x, alpha):
    alpha = np.broadcast_to(alpha, np.broadcast_shapes(alpha.shape, x.shape))
    return (special.gammaln(alpha.sum(-1)) - special.gammaln(alpha).sum(-1)
            + special.xlogy(alpha - 1, x).sum(-1))


def poisson(x, rate):
    return special.xlogy(x, rate) - rate - special.gammaln(x + 1.0)


def binomial(x, n, p):
    return (special.gammaln(n + 1.0) - special.gammaln(x + 1.0) - special.gammaln(n - x + 1.0)
            + special.xlogy(x, p) + special.xlog1py(n - x, -p))


def negative_binomial(x, r, p):
    """Γ(x + r)/(Γ(r) x!) pˣ (1 − p)ʳ: x successes before the r-th failure."""
    return (special.gammaln(x + r) - special.gammaln(r) - special.gammaln(x + 1.0) + special.xlogy(x, p)
            + special.xlog1py(r, -p))


def multinomial(x, n, p):
    return special.gammaln(n + 1.0) + (special.xlogy(x, p) - special.gammaln(x + 1.0)).sum(-1)


def exponential(x, rate):
    return np.log(rate) - rate * x


def laplace(x, loc, scale):
    return -np.log(2 * scale) - np.abs(x - loc) / scale


def wishart(x, df, scale):
    """W(X; ν, S) = |X|^{(ν−D−1)/2} exp(−tr(S⁻¹X)/2) / (2^{νD/2} |S|^{ν/2} Γ_D(ν/2))."""
    d = x.shape[-1]
    logdet_x = np.linalg.slogdet(x)[1]
    logdet_s = np.linalg.slogdet(scale)[1]
    trace = np.einsum("...ij,...ji->...", np.linalg.inv(scale), x)
    log_multigamma = d * (d - 1) / 4 * math.log(math.pi) + sum(special.gammaln(df / 2 - j / 2) for j in range(d))
    return ((df - d - 1) / 2 * logdet_x - trace / 2 - df * d / 2 * math.log(2) - df / 2 * logdet_s
            - log_multigamma)


LOG_DENSITY = {"Normal": normal, "MvNormal": mvnormal, "Gamma": gamma, "Beta": beta, "Bernoulli": bernoulli,
               "Categorical": categorical, "Dirichlet": dirichlet, "Poisson": poisson, "Exponential": exponential,
               "Laplace": laplace, "Wishart": wishart, "Binomial": binomial, "Multinomial": multinomial,
               "NegativeBinomial": negative_binomial}
POSITIONAL = {"Normal": ("mean",), "MvNormal": ("mean",), "Gamma": ("shape", "rate"), "Beta": ("a", "b"),
              "Bernoulli": ("p",), "Categorical": ("p",), "Dirichlet": ("alpha",), "Poisson": ("rate",),
              "Exponential": ("rate",), "Laplace": ("loc", "scale"), "Wishart": ("df", "scale"),
              "Binomial": ("n", "p"), "Multinomial": ("n", "p"), "NegativeBinomial": ("r", "p")}


def log_density(dist: str, x: np.ndarray, args: Mapping[str, np.ndarray]) -> np.ndarray:
    """log p(x) of ``dist`` with its canonical arguments (``sd``, ``precision`` or ``variance`` by keyword)."""
    positional = [args[name] for name in POSITIONAL[dist] if name in args]
    keywords = {k: v for k, v in args.items() if k not in POSITIONAL[dist]}
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return LOG_DENSITY[dist](x, *positional, **keywords)
