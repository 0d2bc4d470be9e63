"""Each family of q as a numeric law: mean, variance, marginal quantiles, draws and log density.

A q is given by its standard parameters (docs/cli.md: Normal mean, sd; MvNormal
mean, cov; Gamma shape, rate; Beta a, b; Bernoulli p; Categorical p on the last
axis; Dirichlet alpha; Wishart df, scale; point value), each an array over the
latent's plates.  The *value* of a draw has the latent's shape: the plates, then
the event axes (D for a MvNormal, K for a Dirichlet, D × D for a Wishart).

Quantiles are those of scipy.stats (``norm``, ``gamma``, ``beta``, ``bernoulli``
ppf), computed by the special functions scipy.stats calls (``ndtri``,
``gammaincinv``, ``betaincinv``), imported only when asked for: scipy.stats
itself takes seconds to import.  Draws take log space where they could
underflow (a Dirichlet with α ≪ 1).
"""

from __future__ import annotations

import math

import numpy as np

STANDARD: dict[str, tuple[str, ...]] = {
    "Normal": ("mean", "sd"), "Gamma": ("shape", "rate"), "Beta": ("a", "b"), "Bernoulli": ("p",),
    "Categorical": ("p",), "Dirichlet": ("alpha",), "MvNormal": ("mean", "cov"), "Wishart": ("df", "scale"),
    "PolyaGamma": ("b", "c"), "point": ("value",),
}
DISCRETE = ("Bernoulli", "Categorical")
WISHART_DRAWS = 4000     # draws for the quantiles of a Wishart's off-diagonal entries (no closed form)
# A Beta or Dirichlet draw stays inside (0, 1): an entry that is below the smallest normal float in exact
# arithmetic (α ≪ 1) is that float, so its log density is finite.
TINY = float(np.finfo(float).tiny)
EPS = float(np.finfo(float).epsneg)

Params = dict[str, np.ndarray]


def value_shape(family: str, p: Params) -> tuple[int, ...]:
    """The shape of one draw of the latent (its parameters conformed: see :func:`conform`)."""
    if family == "Categorical":
        return p["p"].shape[:-1]
    return np.shape(p[{"Normal": "mean", "MvNormal": "mean", "Gamma": "shape", "Beta": "a", "Bernoulli": "p",
                       "Dirichlet": "alpha", "Wishart": "scale", "PolyaGamma": "b",
                       "point": "value"}[family]])


def param_shapes(family: str, value: tuple[int, ...], categories: int = 0) -> dict[str, tuple[int, ...]]:
    """The shape of each standard parameter of a q whose value has shape ``value`` (its plates, then its
    event axes): one entry per value entry; a MvNormal's cov per vector; a Wishart's df per matrix; a
    Categorical's p per element, over its ``categories``."""
    if family == "Categorical":
        return {"p": (*value, categories)}
    if family == "MvNormal":
        return {"mean": value, "cov": (*value, *value[-1:])}
    if family == "Wishart":
        return {"df": value[:-2], "scale": value}
    return {name: value for name in STANDARD[family]}


def conform(family: str, p: Params, value: tuple[int, ...] | None = None) -> Params:
    """The standard parameters in their declared shapes (:func:`param_shapes`): a parameter shared along an
    axis (a Gamma's shape [K, 1] of a q over [K, D]) is broadcast, one of the same size (a rank-0 df stored
    as [1]) reshaped.  ``value`` defaults to the broadcast of the parameters' value shapes.  A parameter
    that fits neither way is a ValueError naming it."""
    p = {k: np.asarray(v) for k, v in p.items()}
    if family == "Categorical" and p["p"].ndim == 0:
        raise ValueError("p")
    if value is None:
        value = _value_of(family, p)
    want = param_shapes(family, tuple(value), p["p"].shape[-1] if family == "Categorical" else 0)
    out = {}
    for name, shape in want.items():
        a = p[name]
        if a.shape != shape:
            try:
                a = np.broadcast_to(a, shape)
            except ValueError:
                if a.size != math.prod(shape):
                    raise ValueError(name) from None
                a = a.reshape(shape)
        out[name] = a
    return out


def _value_of(family: str, p: Params) -> tuple[int, ...]:
    try:
        if family == "Categorical":
            return p["p"].shape[:-1]
        if family == "MvNormal":
            return np.broadcast_shapes(p["mean"].shape, p["cov"].shape[:-1])
        if family == "Wishart":
            return p["scale"].shape
        return np.broadcast_shapes(*(p[name].shape for name in STANDARD[family]))
    except (ValueError, IndexError):
        largest = max(p.values(), key=np.size)       # (names the parameter that does not fit the largest)
        raise ValueError(next((k for k, v in p.items() if v.shape != largest.shape), STANDARD[family][-1])) from None


def mean(family: str, p: Params) -> np.ndarray:
    """E_q[x] (for a Categorical Σ_k k p_k, the file format's ``mean``; the summary shows sizes instead)."""
    if family in ("Normal", "MvNormal"):
        return p["mean"]
    if family == "Gamma":
        return p["shape"] / p["rate"]
    if family == "Beta":
        return p["a"] / (p["a"] + p["b"])
    if family == "Bernoulli":
        return p["p"]
    if family == "Categorical":
        return p["p"] @ np.arange(p["p"].shape[-1], dtype=float)
    if family == "Dirichlet":
        return p["alpha"] / p["alpha"].sum(-1, keepdims=True)
    if family == "Wishart":
        return np.asarray(p["df"])[..., None, None] * p["scale"]
    if family == "PolyaGamma":
        return _pg_moments(p["b"], p["c"])[0]
    return p["value"]


def variance(family: str, p: Params) -> np.ndarray | None:
    """Var_q of every entry of the value (None for a Categorical, whose values are labels)."""
    if family == "Normal":
        return p["sd"] ** 2
    if family == "MvNormal":
        return np.diagonal(p["cov"], axis1=-2, axis2=-1).copy()
    # (Gamma and Beta written as mean × ...: the point mass of an observed entry of data with missing entries
    # has parameters near 2⁶⁰⁰, whose squares overflow: ppvi.infer.program._point_mass)
    if family == "Gamma":
        return p["shape"] / p["rate"] / p["rate"]
    if family == "Beta":
        a, b = p["a"], p["b"]
        return a / (a + b) * (b / (a + b)) / (a + b + 1)
    if family == "Bernoulli":
        return p["p"] * (1 - p["p"])
    if family == "Dirichlet":
        a = p["alpha"]
        a0 = a.sum(-1, keepdims=True)
        return a * (a0 - a) / (a0 ** 2 * (a0 + 1))
    if family == "Wishart":
        # Var W_ij = n (S_ij² + S_ii S_jj)  (Muirhead 1982, Theorem 3.2.8)
        s, df = p["scale"], np.asarray(p["df"])[..., None, None]
        d = np.diagonal(s, axis1=-2, axis2=-1)
        return df * (s ** 2 + d[..., :, None] * d[..., None, :])
    if family == "PolyaGamma":
        return _pg_moments(p["b"], p["c"])[1]
    if family == "point":
        return np.zeros(np.shape(p["value"]))
    return None


def _pg_moments(b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean b tanh(c/2)/(2c) and variance b (sinh c − c) / (4c³ cosh²(c/2)) of PG(b, c) (Polson et al. 2013),
    by their series b/4 − bc²/48 and b/24 − bc²/160·… near c = 0."""
    b, c = np.asarray(b, dtype=float), np.abs(np.asarray(c, dtype=float))
    small = c < 1e-2
    safe = np.where(small, 1.0, c)
    c2 = c * c
    mean = np.where(small, b * (0.25 - c2 / 48), b * np.tanh(safe / 2) / (2 * safe))
    var = np.where(small, b * (1 / 24 - c2 / 240),
                   b * (np.sinh(np.minimum(safe, 700)) - safe) / (4 * safe ** 3 * np.cosh(np.minimum(safe, 700) / 2) ** 2))
    return mean, var


def quantile(family: str, p: Params, prob: float) -> np.ndarray | None:
    """The ``prob`` quantile of each entry's marginal under q (None for a Categorical, and for a Pólya-Gamma
    weight: its law's CDF is an alternating series, and nothing downstream needs its quantiles).

    Dirichlet entries are Beta(α_k, α₀ − α_k); a MvNormal's are Normal(mean_d, cov_dd); a Wishart's diagonal
    entries are S_ii χ²_n = Gamma(n/2, rate 1/(2 S_ii)); its off-diagonal entries, whose law has no
    quantile function in SciPy, take the quantile of WISHART_DRAWS draws (a fixed seed)."""
    from scipy.special import betaincinv, gammaincinv, ndtri

    if family in ("Normal", "MvNormal"):
        sd = np.sqrt(variance(family, p))
        return p["mean"] + sd * ndtri(prob)
    if family == "Gamma":
        return gammaincinv(p["shape"], prob) / p["rate"]
    if family == "Beta":
        return betaincinv(p["a"], p["b"], prob)
    if family == "Dirichlet":
        a = p["alpha"]
        return betaincinv(a, a.sum(-1, keepdims=True) - a, prob)
    if family == "Bernoulli":
        return (prob > 1 - p["p"]).astype(float)       # scipy.stats.bernoulli.ppf
    if family == "Wishart":
        draws = sample(family, p, WISHART_DRAWS, np.random.default_rng(0))
        out = np.quantile(draws, prob, axis=0)
        df = np.asarray(p["df"], dtype=float)
        diag = np.diagonal(p["scale"], axis1=-2, axis2=-1)
        d = np.arange(p["scale"].shape[-1])
        out[..., d, d] = 2 * diag * gammaincinv(df[..., None] / 2, prob)
        return out
    if family == "point":
        return np.asarray(p["value"], dtype=float)
    return None


# ----------------------------------------------------------------- draws
def sample(family: str, p: Params, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` independent draws from q, stacked on a leading axis."""
    shape = value_shape(family, p)
    if family == "Normal":
        return p["mean"] + p["sd"] * rng.standard_normal((n, *shape))
    if family == "MvNormal":
        root = _root(p["cov"])
        return p["mean"] + np.einsum("...de,n...e->n...d", root, rng.standard_normal((n, *shape)))
    if family == "Gamma":
        return rng.gamma(p["shape"], 1 / p["rate"], size=(n, *shape))
    if family == "Beta":
        return _beta(p["a"], p["b"], (n, *shape), rng)
    if family == "Bernoulli":
        return (rng.random((n, *shape)) < p["p"]).astype(np.int64)
    if family == "Categorical":
        return _categorical(p["p"], n, rng)
    if family == "Dirichlet":
        return _dirichlet(p["alpha"], n, rng)
    if family == "Wishart":
        return _wishart(np.asarray(p["df"], dtype=float), p["scale"], n, rng)
    if family == "PolyaGamma":
        return _polya_gamma(np.asarray(p["b"], dtype=float), np.asarray(p["c"], dtype=float), (n, *shape), rng)
    return np.broadcast_to(p["value"], (n, *shape)).copy()


def _root(cov: np.ndarray) -> np.ndarray:
    """A square root R of each covariance (R Rᵀ = cov): Cholesky, or from the eigenvalues where round-off
    left one not positive definite."""
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(cov)
        return v * np.sqrt(np.clip(w, 0, None))[..., None, :]


def _log_gamma_draws(alpha: np.ndarray, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """log G for G ~ Gamma(α, 1), exact for small α too: G = G' U^{1/α} with G' ~ Gamma(α + 1)
    (Marsaglia & Tsang 2000, §6), so log G never underflows."""
    return np.log(rng.gamma(alpha + 1.0, size=shape)) + np.log(rng.random(shape)) / alpha


def _beta(a: np.ndarray, b: np.ndarray, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """X = G_a / (G_a + G_b) from log-gamma draws (no 0/0 when both are tiny)."""
    la, lb = _log_gamma_draws(a, shape, rng), _log_gamma_draws(b, shape, rng)
    return np.clip(np.exp(-np.logaddexp(0.0, lb - la)), TINY, 1 - EPS)


def _dirichlet(alpha: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Normalised gammas, in log space (LDA's α ≪ 1 would underflow every gamma to 0), each at least TINY."""
    logs = _log_gamma_draws(alpha, (n, *alpha.shape), rng)
    logs -= logs.max(-1, keepdims=True)
    g = np.exp(logs)
    return np.maximum(g / g.sum(-1, keepdims=True), TINY)


PG_TERMS = 200     # terms of the series of a Pólya-Gamma draw; the rest is replaced by its mean


def _polya_gamma(b: np.ndarray, c: np.ndarray, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """ω = (1/2π²) Σ_k g_k / ((k − ½)² + c²/4π²), g_k ~ Gamma(b, 1) (Polson et al. 2013, eq. 1), its first
    PG_TERMS terms drawn and the tail by its mean (it holds about 1/(π² PG_TERMS) of ω's mean)."""
    out = np.zeros(shape)
    shift = c * c / (4 * math.pi ** 2)
    for k in range(1, PG_TERMS + 1):
        out += rng.gamma(np.broadcast_to(b, shape)) / ((k - 0.5) ** 2 + shift)
    k = np.arange(PG_TERMS + 1, 20 * PG_TERMS + 1)[:, None]
    tail = (1.0 / ((k - 0.5) ** 2 + np.ravel(shift)[None, :])).sum(0).reshape(np.shape(shift))
    return (out + b * tail) / (2 * math.pi ** 2)


def _categorical(p: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Inverse-CDF draws, one draw (over every element) at a time to bound the memory by p's."""
    cdf = np.cumsum(p, axis=-1)
    cdf /= cdf[..., -1:]
    out = np.empty((n, *p.shape[:-1]), dtype=np.int64)
    for i in range(n):
        u = rng.random((*p.shape[:-1], 1))
        out[i] = np.minimum((cdf <= u).sum(-1), p.shape[-1] - 1)
    return out


def _wishart(df: np.ndarray, scale: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Bartlett's decomposition: W = L A Aᵀ Lᵀ, S = L Lᵀ, A lower triangular with A_ii² ~ χ²_{n−i} and
    standard normals below the diagonal (Bartlett 1933; Anderson 2003, Theorem 7.2.1)."""
    d = scale.shape[-1]
    batch = scale.shape[:-2]
    lower = np.linalg.cholesky(scale)
    a = np.tril(rng.standard_normal((n, *batch, d, d)), -1)
    idx = np.arange(d)
    a[..., idx, idx] = np.sqrt(rng.chisquare(df[..., None] - idx, size=(n, *batch, d)))
    la = lower @ a
    return la @ np.swapaxes(la, -1, -2)


# ----------------------------------------------------------------- log density
def log_density(family: str, p: Params, x: np.ndarray) -> np.ndarray:
    """log q(x) of each draw in ``x`` (leading draws axis), summed over the latent's elements.  A point q
    has no density: it adds 0."""
    from scipy.special import betaln, gammaln

    n = x.shape[0]

    def total(terms: np.ndarray) -> np.ndarray:
        return np.asarray(terms).reshape(n, -1).sum(1)

    if family == "Normal":
        z = (x - p["mean"]) / p["sd"]
        return total(-0.5 * z * z - np.log(p["sd"]) - 0.5 * math.log(2 * math.pi))
    if family == "MvNormal":
        root = np.linalg.cholesky(p["cov"])
        z = np.linalg.solve(np.broadcast_to(root, (n, *root.shape)), (x - p["mean"])[..., None])[..., 0]
        d = x.shape[-1]
        logdet = np.log(np.diagonal(root, axis1=-2, axis2=-1)).sum(-1)
        return total(-0.5 * (z * z).sum(-1) - logdet - 0.5 * d * math.log(2 * math.pi))
    if family == "Gamma":
        k, r = p["shape"], p["rate"]
        return total(k * np.log(r) - gammaln(k) + (k - 1) * np.log(x) - r * x)
    if family == "Beta":
        a, b = p["a"], p["b"]
        return total((a - 1) * np.log(x) + (b - 1) * np.log1p(-x) - betaln(a, b))
    if family == "Bernoulli":
        with np.errstate(divide="ignore"):
            return total(np.where(x == 1, np.log(p["p"]), np.log1p(-p["p"])))
    if family == "Categorical":
        with np.errstate(divide="ignore"):
            logp = np.log(p["p"])
        return total(np.take_along_axis(np.broadcast_to(logp, (n, *logp.shape)), x[..., None], -1))
    if family == "Dirichlet":
        a = p["alpha"]
        norm = gammaln(a.sum(-1)) - gammaln(a).sum(-1)
        return total(norm + ((a - 1) * np.log(x)).sum(-1))
    if family == "Wishart":
        df, s = np.asarray(p["df"], dtype=float), p["scale"]
        d = s.shape[-1]
        logdet_x = np.linalg.slogdet(x)[1]
        logdet_s = np.linalg.slogdet(s)[1]
        trace = np.einsum("...ij,n...ji->n...", np.linalg.inv(s), x)
        multigamma = d * (d - 1) / 4 * math.log(math.pi) + gammaln(df[..., None] / 2 - np.arange(d) / 2).sum(-1)
        return total((df - d - 1) / 2 * logdet_x - trace / 2 - df * d / 2 * math.log(2) - df / 2 * logdet_s
                     - multigamma)
    return np.zeros(n)
