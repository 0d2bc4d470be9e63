"""Numba functions the generated kernels call: special functions and each q family's finish.

A *finish* turns one element's natural parameters (collected by the derived
kernel, eq. 19.56) into its standard parameters, the moments its neighbours
read, and its entropy (19.7), in numerically safe forms: logit and log space
for discrete q (log σ(z) = −softplus(−z), log-sum-exp), Cholesky for matrices.
These are per-family, not per-model: the model-specific part is the derived η.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

LOG_2PI = math.log(2.0 * math.pi)
LOG_2 = math.log(2.0)


@njit(cache=True)
def digamma(x):
    """ψ(x) for x > 0: ψ(x) = ψ(x + n) − Σ_{i<n} 1/(x + i) up to x + n ≥ 10, then the asymptotic series
    to x⁻¹² (truncation below 1e-15).  The n reciprocals are summed as one quotient S/P, P = Π (x + i)
    (P < 20¹⁰, so no overflow): one division instead of n, which Dirichlet updates mostly wait for."""
    if not x > 0.0:
        return math.nan
    r = 0.0
    if x < 1e-6:
        r = -1.0 / x
        x += 1.0
    if x < 10.0:
        p = 1.0
        s = 0.0
        while x < 10.0:
            s = s * x + p
            p *= x
            x += 1.0
        r -= s / p
    inv = 1.0 / x
    f = inv * inv
    t = f * (-1.0 / 12 + f * (1.0 / 120 + f * (-1.0 / 252 + f * (1.0 / 240 + f * (-1.0 / 132
                                                                                 + f * (691.0 / 32760))))))
    return r + math.log(x) - 0.5 * inv + t


@njit(cache=True)
def softplus(z):
    """log(1 + eᶻ) without overflow."""
    if z > 0.0:
        return z + math.log1p(math.exp(-z))
    return math.log1p(math.exp(z))


@njit(cache=True, inline="always")
def xlogy(x, y):
    """x log y, and 0 where x = 0 whatever y: a term weighted by an event of probability zero (a statistic
    Σₙ r_nk of an empty component times log w_k with w_k = 0) adds nothing, where 0 · (−∞) would be NaN."""
    return x * math.log(y) if x != 0.0 else 0.0


@njit(cache=True)
def sigmoid(z):
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@njit(cache=True)
def lmvgamma(a, d):
    """log Γ_D(a) = D(D−1)/4 log π + Σ_{i=1}^{D} log Γ(a + (1 − i)/2)."""
    out = d * (d - 1) / 4.0 * math.log(math.pi)
    for i in range(1, d + 1):
        out += math.lgamma(a + (1.0 - i) / 2.0)
    return out


# ------------------------------------------------------------------ finishes
# Each returns the entropy of the element; parameters and moments are written in place.

@njit(cache=True)
def finish_normal(eta_x, eta_x2):
    """τ = −2η₂, mean = η₁/τ (PRML B.32) -> (mean, sd, ⟨x²⟩, H)."""
    tau = -2.0 * eta_x2
    if not tau > 0.0:
        return math.nan, math.nan, math.nan, math.nan
    mean = eta_x / tau
    return mean, 1.0 / math.sqrt(tau), mean * mean + 1.0 / tau, 0.5 * (1.0 + LOG_2PI - math.log(tau))


@njit(cache=True)
def finish_gamma(eta_x, eta_logx):
    """shape = η_log x + 1, rate = −η_x -> (shape, rate, ⟨x⟩, ⟨log x⟩, H) (PRML B.26–B.31)."""
    a = eta_logx + 1.0
    b = -eta_x
    if not (a > 0.0 and b > 0.0):
        return math.nan, math.nan, math.nan, math.nan, math.nan
    return a, b, a / b, digamma(a) - math.log(b), gamma_entropy_shape(a) - math.log(b)


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


@njit(cache=True)
def gamma_entropy_shape(a):
    """log Γ(a) − (a − 1)ψ(a) + a, the entropy of Gamma(a, 1).  For a ≥ 100 the first two terms cancel to
    within ½ log a (ten digits lost at a = 10⁷): from Stirling's series for log Γ and ψ,
    ½ log(2πe a) − 1/2a + Σ_k B_2k (1/((2k − 1) a^{2k−1}) − 1/(2k a^{2k})), to k = 3 (the next term is
    below 1e-16 of it there)."""
    if a < 100.0:
        return math.lgamma(a) - (a - 1.0) * digamma(a) + a
    r = 1.0 / a
    series = r * (1.0 / 6.0 - 0.5 + r * (-1.0 / 12.0 + r * (-1.0 / 90.0 + r * (1.0 / 120.0 + r * (
        1.0 / 210.0 - r / 252.0)))))
    return 0.5 * math.log(2.0 * math.pi * math.e * a) + series


@njit(cache=True)
def finish_beta(eta_logx, eta_log1mx):
    """-> (a, b, ⟨x⟩, ⟨log x⟩, ⟨log(1 − x)⟩, H) (PRML B.6–B.9).  H = log B(a, b) − (a − 1)ψ(a) − (b − 1)ψ(b)
    + (a + b − 2)ψ(a + b) is written g(a) + g(b) − g(a + b) − ψ(a + b) with g the Gamma(·, 1) entropy
    (gamma_entropy_shape, Stirling's series for large arguments): the direct form adds terms of order a log a
    that cancel to ½ log(2πe ab/(a + b)³), losing 1e-11 of H already at b = 10⁴."""
    a = eta_logx + 1.0
    b = eta_log1mx + 1.0
    if not (a > 0.0 and b > 0.0):
        return math.nan, math.nan, math.nan, math.nan, math.nan, math.nan
    s = digamma(a + b)
    h = gamma_entropy_shape(a) + gamma_entropy_shape(b) - gamma_entropy_shape(a + b) - s
    return a, b, a / (a + b), digamma(a) - s, digamma(b) - s, h


@njit(cache=True)
def finish_bernoulli(eta):
    """-> (p, H) with H = softplus(η) − p η, exact in log space for any η."""
    p = sigmoid(eta)
    return p, softplus(eta) - p * eta


@intrinsic
def _f64_bits(typingctx, x):
    """The bits of a float64 as an int64 (an LLVM bitcast: no call, so loops around it vectorise)."""
    if x != types.float64:
        return None
    return types.int64(types.float64), lambda context, builder, sig, args: builder.bitcast(args[0], ir.IntType(64))


@intrinsic
def _bits_f64(typingctx, i):
    """The float64 with the bits of an int64."""
    if not (isinstance(i, types.Integer) and i.bitwidth == 64):
        return None
    return types.float64(i), lambda context, builder, sig, args: builder.bitcast(args[0], ir.DoubleType())


# eˣ = 2ᵏ eʳ with k = round(x / log 2) (found by adding 1.5·2⁵² and reading the bits), r = x − k log 2 in two
# parts (Cody & Waite), eʳ by a degree-11 near-minimax polynomial on |r| ≤ log 2 / 2 (< 1.3 ulp overall).
_LOG2E = 1.4426950408889634
_SHIFTER = 6755399441055744.0
_SHIFTER_BITS = 0x4338000000000000
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10


@njit(inline="always", cache=True)
def vexp(x):
    """eˣ without a library call and without branches (so a loop of them vectorises); exactly 0 for
    x ≤ −700 (never a subnormal), +inf above log(DBL_MAX), NaN for NaN."""
    xc = 709.782712893384 if x > 709.782712893384 else x
    xc = -708.39 if xc < -708.39 else xc
    t = xc * _LOG2E + _SHIFTER
    kf = t - _SHIFTER
    k = _f64_bits(t) - _SHIFTER_BITS
    r = (xc - kf * _LN2_HI) - kf * _LN2_LO
    q = 2.5110037605963777e-08 * r + 2.763263963904103e-07
    q = q * r + 2.755724091857897e-06
    q = q * r + 2.4801485482328494e-05
    q = q * r + 0.00019841269890047113
    q = q * r + 0.0013888888952314775
    q = q * r + 0.008333333333319601
    q = q * r + 0.0416666666664881
    q = q * r + 0.1666666666666668
    q = q * r + 0.5000000000000019
    q = q * r + 1.0
    q = q * r + 1.0
    res = (q * 2.0) * _bits_f64((k + 1022) << 52)      # 2·2ᵏ⁻¹: k reaches 1024 at the top of the range
    res = math.inf if x > 709.782712893384 else res
    return 0.0 if x <= -700.0 else res


@intrinsic
def _exponent(typingctx, x):
    """The unbiased binary exponent of a positive normal float64, as a float64, by bit operations only: a
    logical shift, an or and a subtraction (no int64 -> float conversion, which AVX2 lacks, so loops
    around it vectorise)."""
    if x != types.float64:
        return None

    def gen(context, builder, sig, args):
        i64 = ir.IntType(64)
        e = builder.or_(builder.lshr(builder.bitcast(args[0], i64), ir.Constant(i64, 52)),
                        ir.Constant(i64, 0x4330000000000000))
        return builder.fsub(builder.bitcast(e, ir.DoubleType()), ir.Constant(ir.DoubleType(), 2.0 ** 52 + 1023.0))
    return types.float64(types.float64), gen


@njit(inline="always", cache=True, error_model="numpy")
def vlog(x):
    """log x for finite positive normal x, without a library call or a branch (so a loop of them vectorises):
    x = 2ᵉ m with m in [√½, √2), log m = 2 atanh f, f = (m − 1)/(m + 1), |f| ≤ 0.172, by its series to f²¹
    (truncation below 1e-17); within 4e-16 of log x, relatively."""
    m = _bits_f64((_f64_bits(x) & 0xFFFFFFFFFFFFF) | 0x3FF0000000000000)
    e = _exponent(x)
    big = m > 1.4142135623730951
    m = m * 0.5 if big else m
    e = e + 1.0 if big else e
    f = (m - 1.0) / (m + 1.0)
    f2 = f * f
    q = 1.0 / 21
    q = q * f2 + 1.0 / 19
    q = q * f2 + 1.0 / 17
    q = q * f2 + 1.0 / 15
    q = q * f2 + 1.0 / 13
    q = q * f2 + 1.0 / 11
    q = q * f2 + 1.0 / 9
    q = q * f2 + 1.0 / 7
    q = q * f2 + 1.0 / 5
    q = q * f2 + 1.0 / 3
    r = e * _LN2_HI + (2.0 * f + 2.0 * f * f2 * q + e * _LN2_LO)
    return r if x > 0.0 else math.nan      # (NaN for NaN, not a number made of its bits)


@njit(inline="always", cache=True, error_model="numpy")
def vdigamma(x):
    """ψ(x) for 1e-6 ≤ x ≤ 1e15 without a branch or a loop of unknown length (so a loop of them
    vectorises): ψ(x) = ψ(x + 10) − Σ_{i<10} 1/(x + i), the ten reciprocals summed as one fraction (in
    pairs, 1/a + 1/b = (a + b)/ab), then the asymptotic series to (x + 10)⁻¹² as in digamma."""
    a0 = x * (x + 1.0)
    a1 = (x + 2.0) * (x + 3.0)
    a2 = (x + 4.0) * (x + 5.0)
    a3 = (x + 6.0) * (x + 7.0)
    a4 = (x + 8.0) * (x + 9.0)
    p01 = a0 * a1
    s01 = (2.0 * x + 1.0) * a1 + (2.0 * x + 5.0) * a0
    p23 = a2 * a3
    s23 = (2.0 * x + 9.0) * a3 + (2.0 * x + 13.0) * a2
    p03 = p01 * p23
    s03 = s01 * p23 + s23 * p01
    y = x + 10.0
    inv = 1.0 / y
    f = inv * inv
    t = f * (-1.0 / 12 + f * (1.0 / 120 + f * (-1.0 / 252 + f * (1.0 / 240 + f * (-1.0 / 132
                                                                                 + f * (691.0 / 32760))))))
    return vlog(y) - 0.5 * inv + t - (s03 * a4 + (2.0 * x + 17.0) * p03) / (p03 * a4)


# η − max η below this is a share e^(η − max η) = 0 exactly (vexp), and a finite d for 0 · d.
_FLOOR = -800.0


@njit(cache=True, fastmath={"contract"}, inline="always")
def exp_factor(eta, out):
    """out = e^(η − max η), returns max η: one factor of a softmax whose η is a sum of parts (exp_product)."""
    n = eta.shape[0]
    m = eta[0]
    for k in range(1, n):
        m = eta[k] if eta[k] > m else m
    for k in range(n):
        out[k] = vexp(eta[k] - m)
    return m


@njit(cache=True, fastmath={"contract"})
def finish_categorical(eta, p):
    """p = softmax(η) by log-sum-exp -> (H, log Σ e^η), with H = log Σ e^η − Σ p η = log s − Σ p d, where
    d = η − max η and s = Σ e^d.

    The exps are one vectorised loop (vexp); entries below e^−700 of the largest are exactly 0 (below any
    sum's rounding; subnormals would slow every later sum over them), and so is their share of H, also
    where η = −∞ (a category of probability zero; d is clamped at −800 so 0 · d is never 0 · ∞).  Sums
    in a fixed 4-way order.
    """
    n = eta.shape[0]
    m = exp_factor(eta, p)
    n4 = n - n % 4
    s0 = s1 = s2 = s3 = 0.0
    for k in range(0, n4, 4):
        s0 += p[k]
        s1 += p[k + 1]
        s2 += p[k + 2]
        s3 += p[k + 3]
    for k in range(n4, n):
        s0 += p[k]
    s = (s0 + s1) + (s2 + s3)
    inv = 1.0 / s
    ls = math.log(s)
    for k in range(n):
        p[k] *= inv
    t0 = t1 = t2 = t3 = 0.0
    for k in range(0, n4, 4):
        t0 += p[k] * max(eta[k] - m, _FLOOR)
        t1 += p[k + 1] * max(eta[k + 1] - m, _FLOOR)
        t2 += p[k + 2] * max(eta[k + 2] - m, _FLOOR)
        t3 += p[k + 3] * max(eta[k + 3] - m, _FLOOR)
    for k in range(n4, n):
        t0 += p[k] * max(eta[k] - m, _FLOOR)
    return ls - ((t0 + t1) + (t2 + t3)), m + ls


@njit(cache=True, fastmath={"contract"}, error_model="numpy")
def finish_categorical_block(eta, n, p, h, lse, m, s, t):
    """finish_categorical for points b < n at once: column b of eta (K × B) is point b's η; p[b] = softmax,
    h[b] = H, lse[b] = log Σ e^η.  Every loop runs along the points, so the exps vectorise across them
    (one point's K exps are too few to, and a chain of dependent steps each).  eta is overwritten
    (with e^(η − max η)); m, s, t are scratch of length ≥ n.  H = log s − Σ_k e_k d_k / s with
    d = η − max η (clamped at −800, as in finish_categorical) and s = Σ_k e_k."""
    kk = eta.shape[0]
    for b in range(n):
        m[b] = eta[0, b]
        s[b] = 0.0
        t[b] = 0.0
    for k in range(1, kk):
        for b in range(n):
            v = eta[k, b]
            m[b] = v if v > m[b] else m[b]
    for k in range(kk):
        for b in range(n):
            d = max(eta[k, b] - m[b], _FLOOR)
            e = vexp(d)
            s[b] += e
            t[b] += e * d
            eta[k, b] = e
    for b in range(n):
        inv = 1.0 / s[b]
        ls = vlog(s[b])                     # (1 ≤ s ≤ K: the largest term is e⁰)
        lse[b] = m[b] + ls
        h[b] = ls - t[b] * inv
        s[b] = inv
    for b in range(n):
        for k in range(kk):
            p[b, k] = eta[k, b] * s[b]


@njit(cache=True, inline="always")
def add_to(rows, p):
    """rows += p, over two rows (views): a loop the compiler vectorises, unlike the same sum written with
    a data-valued row index."""
    for k in range(p.shape[0]):
        rows[k] += p[k]


@njit(cache=True, fastmath={"contract", "reassoc"}, inline="always")
def exp_product(a, b, p):
    """p = softmax(η_a + η_b) from the factors a = e^(η_a − max η_a), b = e^(η_b − max η_b) (exp_factor):
    no exp per element.  Returns s = Σ a b; p is unusable when s < 1e-20: a factor flushed to 0 below
    e^−700 is then still below e^−650 of the result, as in finish_categorical; otherwise the caller takes
    the log-space route (finish_categorical).  Inlined, with the sum reassociable so that it vectorises
    (the order is then the compiler's, the same on every call: results do not depend on threads)."""
    n = p.shape[0]
    s = 0.0
    for k in range(n):
        v = a[k] * b[k]
        p[k] = v
        s += v
    if not s >= 1e-20:
        return s
    inv = 1.0 / s
    for k in range(n):
        p[k] *= inv
    return s


@njit(cache=True, fastmath={"contract", "reassoc"})
def exp_product_finish(a, b, ma, mb, eta_a, eta_b, eta, p):
    """finish_categorical(η_a + η_b, p) from the factors of exp_product (ma, mb: the maxima exp_factor
    returned): log Σ e^η = ma + mb + log Σ a b, one log instead of an exp per entry.  ``eta``: scratch for
    the log-space route, taken when Σ a b < 1e-20."""
    s = exp_product(a, b, p)
    if s >= 1e-20:
        ls = math.log(s)
        t = 0.0
        for k in range(p.shape[0]):       # H = log s − Σ p d, d clamped as in finish_categorical
            t += p[k] * max(eta_a[k] + eta_b[k] - ma - mb, _FLOOR)
        return ls - t, ma + mb + ls
    for k in range(p.shape[0]):
        eta[k] = eta_a[k] + eta_b[k]
    return finish_categorical(eta, p)


@njit(cache=True, fastmath={"contract", "reassoc"})
def add_shares(a, b, acc, sums):
    """acc += Σ_j b_j / (a · b_j) over the rows b_j of b, the members' parts of Σ_j softmax(η_a + η_b,j) =
    a ∘ Σ_j b_j / (a · b_j) (factors as in exp_product); a, the same for every member of a group, is
    multiplied in once after (add_product).  sums[j] = a · b_j; a row with a · b_j < 1e-20 is left out
    (as in exp_product) and counted in the result: the caller takes those rows in log space.  One loop
    over the rows here (not one call per row from a loop with a fallback in it), which vectorises."""
    n = a.shape[0]
    bad = 0
    for j in range(b.shape[0]):
        s = 0.0
        for k in range(n):
            s += a[k] * b[j, k]
        sums[j] = s
        if not s >= 1e-20:
            bad += 1
            continue
        inv = 1.0 / s
        for k in range(n):
            acc[k] += b[j, k] * inv
    return bad


@njit(cache=True, inline="always")
def add_product(rows, a, b):
    """rows += a ∘ b."""
    for k in range(a.shape[0]):
        rows[k] += a[k] * b[k]


@njit(cache=True, error_model="numpy")
def dirichlet_moments(eta, alpha, logp, mean):
    """α = η + 1; ⟨log π_k⟩ = ψ(α_k) − ψ(α₀) (PRML B.21), ⟨π_k⟩ = α_k / α₀.  False if some α_k ≤ 0.
    With every α_k in [1e-6, 1e15] (nearly always) by vdigamma, a loop that vectorises."""
    k = eta.shape[0]
    a0 = 0.0
    usual = True
    for i in range(k):
        alpha[i] = eta[i] + 1.0
        if not alpha[i] > 0.0:
            return False
        usual &= (alpha[i] >= 1e-6) & (alpha[i] <= 1e15)
        a0 += alpha[i]
    inv = 1.0 / a0
    if usual and a0 <= 1e15:
        d0 = vdigamma(a0)
        for i in range(k):
            logp[i] = vdigamma(alpha[i]) - d0
            mean[i] = alpha[i] * inv
        return True
    d0 = digamma(a0)
    for i in range(k):
        logp[i] = digamma(alpha[i]) - d0
        mean[i] = alpha[i] * inv
    return True


@njit(cache=True)
def dirichlet_entropy(alpha, logp):
    """H = log B(α) − Σ_k (α_k − 1) ⟨log π_k⟩ (PRML B.22 with ⟨log π_k⟩ in place of ψ(α_k) − ψ(α₀))."""
    a0 = 0.0
    h = 0.0
    for i in range(alpha.shape[0]):
        if not alpha[i] > 0.0:
            return math.nan
        a0 += alpha[i]
        h += math.lgamma(alpha[i]) - (alpha[i] - 1.0) * logp[i]
    return h - math.lgamma(a0)


@njit(cache=True)
def finish_dirichlet(eta, alpha, logp, mean):
    """q(π) = Dir(η + 1): its moments, and its entropy returned."""
    if not dirichlet_moments(eta, alpha, logp, mean):
        return math.nan
    return dirichlet_entropy(alpha, logp)


@njit(cache=True)
def finish_mvnormal(eta_x, eta_xx, mean, cov, xxt):
    """Λ = −2 sym(η_xxᵀ), Σ = Λ⁻¹ by Cholesky, μ = Σ η_x; H = D/2 (1 + log 2π) + ½ log|Σ|."""
    s = np.empty(eta_xx.shape)
    return finish_mvnormal_mean(eta_x, s, mvnormal_covariance(eta_xx, s), mean, cov, xxt)


@njit(cache=True)
def _spd_inverse(prec):
    """P⁻¹ and log|P| of a symmetric positive definite P, by its Cholesky factor."""
    c = np.linalg.cholesky(prec)
    cinv = np.linalg.inv(c)
    logdet = 0.0
    for i in range(prec.shape[0]):
        logdet += 2.0 * math.log(c[i, i])
    return cinv.T @ cinv, logdet


@njit(cache=True)
def mvnormal_covariance(eta_xx, cov):
    """The half of finish_mvnormal that reads only η_xxᵀ: Σ = (−2 sym η_xxᵀ)⁻¹ into ``cov``; returns
    H = D/2 (1 + log 2π) + ½ log|Σ| (NaN, ``cov`` untouched, where Λ is not finite).  Generated code calls it
    apart, so that where η_xxᵀ is the same for every element it runs once (codegen.passes.hoist)."""
    d = eta_xx.shape[0]
    prec = np.empty((d, d))
    for i in range(d):
        for j in range(d):
            prec[i, j] = -(eta_xx[i, j] + eta_xx[j, i])
    for i in range(d):
        for j in range(d):
            if not np.isfinite(prec[i, j]):
                return math.nan
    s, logdet_prec = _spd_inverse(prec)
    for i in range(d):
        for j in range(d):
            cov[i, j] = s[i, j]
    return 0.5 * d * (1.0 + LOG_2PI) - 0.5 * logdet_prec


@njit(cache=True)
def finish_mvnormal_mean(eta_x, sigma, h, mean, cov, xxt):
    """The other half: μ = Σ η_x, q's mean, covariance and ⟨x xᵀ⟩ = Σ + μ μᵀ from Σ and H of
    mvnormal_covariance (nothing written where H is NaN); returns H."""
    if math.isnan(h):
        return h
    d = eta_x.shape[0]
    m = sigma @ eta_x
    for i in range(d):
        mean[i] = m[i]
        for j in range(d):
            cov[i, j] = sigma[i, j]
            xxt[i, j] = sigma[i, j] + m[i] * m[j]
    return h


@njit(cache=True)
def finish_mvnormal_missing(eta_x, eta_xx, missing, mean, cov, xxt):
    """q of the missing block m of a row with observed entries o (data with missing entries, docs/language.md):
    19.56 over x_m as one block with x_o fixed, log q(x_m) = η_x,m·x_m + x_mᵀ η_mm x_m + 2 x_mᵀ η_mo x_o, i.e.
    precision P = −2 sym η_mm and mean P⁻¹ (η_x,m + 2 sym η_mo x_o): under a Normal factor, the Gaussian
    conditional μ_m − Λ_mm⁻¹ Λ_mo (x_o − μ_o), Λ_mm⁻¹.  ``mean`` holds x_o (the engine's clamp); the row's
    mean, covariance (0 on observed rows and columns) and ⟨x xᵀ⟩ are written; returns H of the block, 0 for a
    row with nothing missing (untouched), NaN (nothing written) where P is not finite."""
    d = eta_x.shape[0]
    m = 0
    for i in range(d):
        if missing[i]:
            m += 1
    if m == 0:
        return 0.0
    at = np.empty(m, dtype=np.int64)
    k = 0
    for i in range(d):
        if missing[i]:
            at[k] = i
            k += 1
    prec = np.empty((m, m))
    lin = np.empty(m)
    for a in range(m):
        i = at[a]
        lin[a] = eta_x[i]
        for j in range(d):
            if not missing[j]:
                lin[a] += (eta_xx[i, j] + eta_xx[j, i]) * mean[j]
        for b in range(m):
            prec[a, b] = -(eta_xx[i, at[b]] + eta_xx[at[b], i])
    for a in range(m):
        if not np.isfinite(lin[a]):
            return math.nan
        for b in range(m):
            if not np.isfinite(prec[a, b]):
                return math.nan
    s, logdet_prec = _spd_inverse(prec)
    mu = s @ lin
    for a in range(m):
        mean[at[a]] = mu[a]
    for i in range(d):
        for j in range(d):
            cov[i, j] = 0.0
    for a in range(m):
        for b in range(m):
            cov[at[a], at[b]] = s[a, b]
    for i in range(d):
        for j in range(d):
            xxt[i, j] = cov[i, j] + mean[i] * mean[j]
    return 0.5 * m * (1.0 + LOG_2PI) - 0.5 * logdet_prec


@njit(cache=True)
def finish_wishart(eta_logdet, eta_x, scale, x):
    """ν = 2η_log|X| + D + 1, W = (−2 sym η_X)⁻¹; returns (df, ⟨log|X|⟩, H) (PRML B.79–B.82)."""
    d = eta_x.shape[0]
    df = 2.0 * eta_logdet + d + 1.0
    winv = np.empty((d, d))
    for i in range(d):
        for j in range(d):
            winv[i, j] = -(eta_x[i, j] + eta_x[j, i])
    c = np.linalg.cholesky(winv)
    cinv = np.linalg.inv(c)
    w = cinv.T @ cinv
    logdet_w = 0.0
    for i in range(d):
        logdet_w -= 2.0 * math.log(c[i, i])
    elogdet = d * LOG_2 + logdet_w
    for i in range(1, d + 1):
        elogdet += digamma((df + 1.0 - i) / 2.0)
    for i in range(d):
        for j in range(d):
            scale[i, j] = w[i, j]
            x[i, j] = df * w[i, j]
    h = df / 2.0 * logdet_w + df * d / 2.0 * LOG_2 + lmvgamma(df / 2.0, d) - (df - d - 1.0) / 2.0 * elogdet \
        + df * d / 2.0
    return df, elogdet, h


# --------------------------------------------------------------- MAP under L1
@njit(cache=True)
def _l1_objective(a, c, lam, x, idx, n):
    """½ xᵀAx − cᵀx + Σ λ|x| for an x that is 0 off idx[:n]."""
    f = 0.0
    for p in range(n):
        i = idx[p]
        s = 0.0
        for q in range(n):
            s += a[i, idx[q]] * x[idx[q]]
        f += x[i] * (0.5 * s - c[i]) + lam[i] * abs(x[i])
    return f


@njit(cache=True)
def _cholesky_solve(a, idx, n, rhs, l, out, floor):
    """out[:n] = A[idx, idx]⁻¹ rhs[:n] by Cholesky (l: n × n scratch); False where A[idx, idx] is not
    numerically positive definite: a pivot not above ``floor`` times its diagonal entry (feature_sign: 1e-12,
    atoms on the active set linearly dependent)."""
    for i in range(n):
        for j in range(i + 1):
            s = a[idx[i], idx[j]]
            for k in range(j):
                s -= l[i, k] * l[j, k]
            if i == j:
                if not s > floor * a[idx[i], idx[i]]:
                    return False
                l[i, i] = math.sqrt(s)
            else:
                l[i, j] = s / l[j, j]
    for i in range(n):
        s = rhs[i]
        for k in range(i):
            s -= l[i, k] * out[k]
        out[i] = s / l[i, i]
    for i in range(n - 1, -1, -1):
        s = out[i]
        for k in range(i + 1, n):
            s -= l[k, i] * out[k]
        out[i] = s / l[i, i]
    return True


@njit(cache=True)
def _gradient(a, c, x, nz, grad):
    """grad = A x − c, reading only x's nonzeros (nz: scratch of x's length)."""
    m = x.shape[0]
    n = 0
    for j in range(m):
        if x[j] != 0.0:
            nz[n] = j
            n += 1
    for i in range(m):
        s = -c[i]
        for p in range(n):
            s += a[i, nz[p]] * x[nz[p]]
        grad[i] = s


@njit(cache=True)
def _pseudo_step(a, idx, n, h, d):
    """d[:n] = B⁺h for B = A[idx, idx] singular (by eigenvalues; relative cutoff 1e-10), and 1.0; or, where
    h has a part r in B's null space (the quadratic −hᵀy + ½yᵀBy falls without bound along it), d = r and ∞."""
    b = np.empty((n, n))
    for p in range(n):
        for q in range(n):
            b[p, q] = a[idx[p], idx[q]]
    w, v = np.linalg.eigh(b)
    proj = v.T @ h[:n]
    big = w > 1e-10 * max(w[-1], 0.0)
    if np.sum(proj[~big] ** 2) > 1e-20 * np.sum(proj ** 2):
        d[:n] = v @ np.where(big, 0.0, proj)
        return np.inf
    d[:n] = v @ np.where(big, proj / np.where(big, w, 1.0), 0.0)
    return 1.0


@njit(cache=True)
def feature_sign(a, c, lam, x):
    """min_x f(x) = ½ xᵀAx − cᵀx + Σ_i λ_i |x_i|, A positive semidefinite, by feature-sign search (Lee,
    Battle, Raina & Ng 2007); ``x`` is the warm start and is overwritten.

    Each step: once ∇_i + λ_i θ_i = 0 on the active set (θ = sign x), activate the coordinate that breaks
    |∇_i| ≤ λ_i most, with the sign that descends; none left: x is optimal.  With the signs fixed, f on the
    active set is a quadratic with gradient h = (∇ + λθ)_active and Hessian B = A_active.  Its step is
    −B⁺h (Cholesky where B is positive definite; else the pseudo-inverse by eigenvalues, the atoms being
    dependent), or, where h has a part r in B's null space, along r, on which f falls linearly until a
    coefficient reaches 0.  Of the end and the points on the way where a coefficient reaches 0, the lowest f
    is taken: a step that lowers nothing ends the search (it is optimal to rounding).
    """
    m = x.shape[0]
    tol = 1e-11 * (1.0 + np.max(np.abs(c)) + np.max(lam))
    grad, nz, idx, theta = np.empty(m), np.empty(m, np.int64), np.empty(m, np.int64), np.sign(x)
    h, d, chol, trial = np.empty(m), np.empty(m), np.empty((m, m)), np.empty(m)
    stuck = False
    for _ in range(50 * m + 100):
        _gradient(a, c, x, nz, grad)
        n, kkt, best, worst = 0, 0.0, -1, tol
        for i in range(m):
            if x[i] != 0.0:
                idx[n], n = i, n + 1
                kkt = max(kkt, abs(grad[i] + lam[i] * theta[i]))
            elif abs(grad[i]) - lam[i] > worst:
                best, worst = i, abs(grad[i]) - lam[i]
        if kkt <= tol or stuck:         # (stuck: the active set's step lowered nothing, to rounding)
            if best < 0:
                return
            theta[best] = -np.sign(grad[best])
            idx[n], n = best, n + 1
        for p in range(n):
            h[p] = -(grad[idx[p]] + lam[idx[p]] * theta[idx[p]])
        end = 1.0 if _cholesky_solve(a, idx, n, h, chol, d, 1e-12) else _pseudo_step(a, idx, n, h, d)
        f0, f_best, t_best, zero = _l1_objective(a, c, lam, x, idx, n), np.inf, 0.0, -1
        for k in range(-1, n):          # k = −1: the end of the step; else where x[idx[k]] reaches 0
            t = end if k < 0 else (-x[idx[k]] / d[k] if x[idx[k]] * d[k] < 0.0 else np.inf)
            if 0.0 < t <= end and t < np.inf:
                trial[:] = x
                for p in range(n):
                    trial[idx[p]] = x[idx[p]] + t * d[p]
                if k >= 0:
                    trial[idx[k]] = 0.0
                f = _l1_objective(a, c, lam, trial, idx, n)
                if f < f_best:
                    f_best, t_best, zero = f, t, k
        if not f_best < f0:
            if stuck or best < 0:
                return
            stuck = True
            continue
        stuck = False
        for p in range(n):
            x[idx[p]] += t_best * d[p]
        if zero >= 0:
            x[idx[zero]] = 0.0
        for i in range(m):
            theta[i] = np.sign(x[i])


# ------------------------------------------------------- chains (docs/derivation.md, section 8)
@njit(cache=True, inline="always")
def _times_log(p, logp):
    """p · log φ with 0 · log 0 = 0 (an impossible transition carries no weight and no NaN)."""
    return 0.0 if p == 0.0 else p * logp


@njit(cache=True)
def _lse(a):
    """log Σ exp(a), in loops: no temporary array (it runs T × K times per pass of forward–backward)."""
    m = -np.inf
    for v in a:
        m = max(m, v)
    if m == -np.inf:
        return m
    s = 0.0
    for v in a:
        s += math.exp(v - m)
    return m + math.log(s)


@njit(cache=True)
def forward_backward(log_init, log_trans, log_node, r, xi):
    """The exact block q(z) ∝ φ(z₀) Π_{t≥1} Ψₜ(zₜ₋₁, zₜ) Π_t ψₜ(zₜ) of a Categorical chain, in log space.

    log α₀ = log φ + log ψ₀, log αₜ(k) = lse_j(log αₜ₋₁(j) + log Ψₜ(j, k)) + log ψₜ(k); log βₜ₋₁(j) =
    lse_k(log Ψₜ(j, k) + log ψₜ(k) + log βₜ(k)); log Z = lse(log α_{T−1}).  Writes rₜₖ = q(zₜ = k) and
    ξₜⱼₖ = q(zₜ₋₁ = j, zₜ = k) (ξ₀ = 0) and returns (log Z, H[q(z)]) with H = log Z − E_q[Σ log potentials].
    ``log_trans`` is [T, K, K] (row t: Ψₜ) or [1, K, K], the same Ψ at every step.
    """
    T, K = log_node.shape
    step = 0 if log_trans.shape[0] == 1 else 1       # (one K × K matrix for every step: a stationary chain)
    la = np.empty((T, K))
    lb = np.zeros((T, K))
    tmp = np.empty(K)
    la[0] = log_init + log_node[0]
    for t in range(1, T):
        for k in range(K):
            for j in range(K):
                tmp[j] = la[t - 1, j] + log_trans[t * step, j, k]
            la[t, k] = _lse(tmp) + log_node[t, k]
    log_z = _lse(la[T - 1])
    for t in range(T - 1, 0, -1):
        for j in range(K):
            for k in range(K):
                tmp[k] = log_trans[t * step, j, k] + log_node[t, k] + lb[t, k]
            lb[t - 1, j] = _lse(tmp)
    energy = 0.0
    for t in range(T):
        for k in range(K):
            r[t, k] = math.exp(la[t, k] + lb[t, k] - log_z)
            energy += _times_log(r[t, k], log_node[t, k])
    for k in range(K):
        energy += _times_log(r[0, k], log_init[k])
    for j in range(K):
        for k in range(K):
            xi[0, j, k] = 0.0
    for t in range(1, T):
        for j in range(K):
            for k in range(K):
                xi[t, j, k] = math.exp(la[t - 1, j] + log_trans[t * step, j, k] + log_node[t, k] + lb[t, k] - log_z)
                energy += _times_log(xi[t, j, k], log_trans[t * step, j, k])
    return log_z, log_z - energy


@njit(cache=True)
def chain_mean_field(log_init, log_trans, log_node, r, xi):
    """One sequential sweep t = 0 … T−1 of the fully factorised q(z) = Πₜ q(zₜ) (19.56 for each zₜ):
    log q(zₜ = k) = log ψₜ(k) + Σⱼ rₜ₋₁ⱼ log Ψₜ(j, k) + Σ_k′ rₜ₊₁k′ log Ψₜ₊₁(k, k′) (log φ(k) at t = 0),
    each from the newest neighbours.  Writes ξₜ = rₜ₋₁ rₜᵀ; returns H[q(z)] = −Σ r log r."""
    T, K = log_node.shape
    step = 0 if log_trans.shape[0] == 1 else 1
    eta = np.empty(K)
    for t in range(T):
        for k in range(K):
            e = log_node[t, k]
            if t == 0:
                e += log_init[k]
            else:
                for j in range(K):
                    e += _times_log(r[t - 1, j], log_trans[t * step, j, k])
            if t + 1 < T:
                for k2 in range(K):
                    e += _times_log(r[t + 1, k2], log_trans[(t + 1) * step, k, k2])
            eta[k] = e
        norm = _lse(eta)
        for k in range(K):
            r[t, k] = math.exp(eta[k] - norm)
    entropy = 0.0
    for t in range(T):
        for k in range(K):
            entropy -= _times_log(r[t, k], math.log(r[t, k]) if r[t, k] > 0.0 else 0.0)
            for j in range(K):
                xi[t, j, k] = r[t - 1, j] * r[t, k] if t > 0 else 0.0
    return entropy


@njit(cache=True)
def gaussian_chain(J, C, h, mean, cov, cross, logdets):
    """The exact Gaussian q(x) ∝ exp(Σ_t hₜᵀxₜ − ½ Σ_t xₜᵀJₜxₜ − Σ_{t≥1} xₜ₋₁ᵀCₜxₜ) of a chain: a block
    tridiagonal precision (Jₜ on the diagonal, Cₜ = Λₜ₋₁,ₜ above it), solved as a Kalman filter in
    information form and an RTS smoother (Rauch, Tung & Striebel 1965):

    Sₜ = Jₜ − Cₜᵀ Sₜ₋₁⁻¹ Cₜ, uₜ = hₜ − Cₜᵀ Sₜ₋₁⁻¹ uₜ₋₁ (S₀ = J₀, u₀ = h₀); then backwards
    mₜ = Sₜ⁻¹(uₜ − Cₜ₊₁ mₜ₊₁), Σₜ = Sₜ⁻¹ + Sₜ⁻¹Cₜ₊₁Σₜ₊₁Cₜ₊₁ᵀSₜ⁻¹, Cov(xₜ, xₜ₊₁) = −Sₜ⁻¹Cₜ₊₁Σₜ₊₁.

    Writes the means, covariances, ``cross[t] = Cov(xₜ₋₁, xₜ)`` (cross[0] = 0) and ``logdets[t]`` = log|Sₜ|
    (Sₜ is the precision of xₜ given xₜ₊₁ under q); returns log|Λ| = Σ log|Sₜ|.
    """
    T, D = h.shape
    s_inv = np.empty((T, D, D))
    u = np.empty((T, D))
    logdet = 0.0
    for t in range(T):
        S = J[t].copy()
        u[t] = h[t]
        if t > 0:
            G = s_inv[t - 1] @ C[t]                  # Sₜ₋₁⁻¹ Cₜ
            S -= C[t].T @ G
            u[t] -= G.T @ u[t - 1]
        L = np.linalg.cholesky(S)
        logdets[t] = 0.0
        for d in range(D):
            logdets[t] += 2.0 * math.log(L[d, d])
        logdet += logdets[t]
        s_inv[t] = np.linalg.inv(S)
    for t in range(T - 1, -1, -1):
        if t == T - 1:
            mean[t] = s_inv[t] @ u[t]
            cov[t] = s_inv[t]
        else:
            G = s_inv[t] @ C[t + 1]                  # Sₜ⁻¹ Cₜ₊₁
            mean[t] = s_inv[t] @ (u[t] - C[t + 1] @ mean[t + 1])
            cov[t] = s_inv[t] + G @ cov[t + 1] @ G.T
            cross[t + 1] = -(G @ cov[t + 1])
    cross[0] = 0.0
    return logdet


@njit(cache=True)
def finish_gaussian_chain(J, C, h, mean, cov, xxT, cross, entropy):
    """A Gaussian chain's block (gaussian_chain) and its moments: ⟨xₜ⟩, Σₜ, ⟨xₜxₜᵀ⟩ = Σₜ + ⟨xₜ⟩⟨xₜ⟩ᵀ and
    Cov(xₜ₋₁, xₜ) (which E[xₜ₋₁xₜᵀ] reads: derive.expectation); ``entropy[t]`` = H[q(xₜ | xₜ₊₁)] =
    ½D(1 + log 2π) − ½ log|Sₜ|, whose sum is the joint H[q(x)] = ½ log|2πe Λ⁻¹|."""
    T, D = h.shape
    logdets = np.empty(T)
    gaussian_chain(J, C, h, mean, cov, cross, logdets)
    for t in range(T):
        entropy[t] = 0.5 * D * (1.0 + LOG_2PI) - 0.5 * logdets[t]
        for d in range(D):
            for e in range(D):
                xxT[t, d, e] = cov[t, d, e] + mean[t, d] * mean[t, e]


@njit(cache=True)
def finish_normal_chain(J, C, h, mean, sd, x2, cross, entropy):
    """A chain of scalars as the Gaussian chain of D = 1 (J, C [T, 1, 1], h [T, 1]): ⟨xₜ⟩, sdₜ, ⟨xₜ²⟩,
    Cov(xₜ₋₁, xₜ) and ``entropy[t]`` = H[q(xₜ | xₜ₊₁)] (finish_gaussian_chain)."""
    T = h.shape[0]
    m, cov, xxT, lag = np.empty((T, 1)), np.empty((T, 1, 1)), np.empty((T, 1, 1)), np.zeros((T, 1, 1))
    finish_gaussian_chain(J, C, h, m, cov, xxT, lag, entropy)
    for t in range(T):
        mean[t], sd[t], x2[t], cross[t] = m[t, 0], math.sqrt(cov[t, 0, 0]), xxT[t, 0, 0], lag[t, 0, 0]


@njit(cache=True)
def finish_polya_gamma(eta_x, eta_base):
    """b = η_base, c = √(−2η_x) -> (b, c, E[ω], 0, H) of PG(b, c) (ppvi.families.polya_gamma).

    E[ω] = b tanh(c/2)/(2c) and H = c²E[ω]/2 − b log cosh(c/2) (relative to the base measure PG(b, 0): the
    base statistic's moment is 0, and E[log p(ω)] + H = −KL(q ‖ PG(b, 0)) is exact).  Below c = 10⁻³ both by
    their series, b(1/4 − c²/48 + c⁴/480) and −b(c⁴/192 − c⁶/1440): the closed forms are 0/0 at c = 0 and H a
    difference of two terms of order c² there.  log cosh t = log1p(2 sinh²(t/2)), exact for small t, and
    t + log1p(e^{−2t}) − log 2 for large t (no overflow).  b = 0 (a Binomial row of no trials) is PG(0, c),
    a point mass at 0: E[ω] = 0, H = 0."""
    b = eta_base
    if not (b >= 0.0 and eta_x <= 0.0):
        return math.nan, math.nan, math.nan, math.nan, math.nan
    c = math.sqrt(-2.0 * eta_x)
    if b == 0.0:
        return 0.0, c, 0.0, 0.0, 0.0
    c2 = c * c
    if c < 1e-3:
        return b, c, b * (0.25 - c2 / 48.0 + c2 * c2 / 480.0), 0.0, -b * c2 * c2 * (1.0 / 192.0 - c2 / 1440.0)
    mean = b * math.tanh(0.5 * c) / (2.0 * c)
    t = 0.5 * c
    if t < 20.0:
        sh = math.sinh(0.5 * t)
        log_cosh = math.log1p(2.0 * sh * sh)
    else:
        log_cosh = t + math.log1p(math.exp(-2.0 * t)) - math.log(2.0)
    return b, c, mean, 0.0, 0.5 * c2 * mean - b * log_cosh


@njit(cache=True)
def finish_poisson(eta_x):
    """rate = e^η_x -> (rate, 0, H) of a missing count's Poisson q (ppvi.families.poisson): the place-holder
    moment of −log x! is 0 and H = r − r log r = r(1 − η_x) is relative to h(x) = 1/x!, so that
    E[log p(x)] + H is exact (their E[log x!] cancel)."""
    r = math.exp(eta_x)
    return r, 0.0, r * (1.0 - eta_x)


@njit(cache=True)
def finish_binomial(eta_x, eta_n):
    """n = η_lchoose, p = σ(η_x) -> (n, p, ⟨x⟩ = n p, 0, H) of a missing count's Binomial q
    (ppvi.families.binomial): H relative to h(x) = C(n, x), n times a Bernoulli's, softplus(η) − p η, exact in
    log space for any η."""
    n = eta_n
    if not n >= 0.0:
        return math.nan, math.nan, math.nan, math.nan, math.nan
    p = sigmoid(eta_x)
    return n, p, n * p, 0.0, n * (softplus(eta_x) - p * eta_x)


@njit(cache=True)
def finish_negative_binomial(eta_x, eta_r):
    """r = η_lnb, p = e^η_x -> (r, p, ⟨x⟩ = r p/(1 − p), 0, H) of a missing count's NegativeBinomial q
    (ppvi.families.negative_binomial): H relative to h(x) = Γ(x + r)/(Γ(r) x!), −(⟨x⟩ η_x + r log(1 − p)), with
    log(1 − e^η) and p/(1 − p) = 1/expm1(−η) in log space."""
    r = eta_r
    if not (r > 0.0 and eta_x < 0.0):
        return math.nan, math.nan, math.nan, math.nan, math.nan
    p = math.exp(eta_x)
    mean = r / math.expm1(-eta_x)
    return r, p, mean, 0.0, -(mean * eta_x + r * math.log(-math.expm1(eta_x)))


@njit(cache=True)
def newton_direction(m, v, g1, g2, h11, h12, h22):
    """One Newton step for a Normal q(x) = N(m, v) on f = 𝓛 + ½ log v (docs/derivation.md, section 10), from
    𝓛's gradient (g1, g2) and Hessian (h11, h12, h22) in the moments (⟨x⟩, ⟨x²⟩) = (m, m² + v): the chain rule
    gives ∇f and ∇²f in (m, v), and d = −(∇²f)⁻¹∇f where ∇²f is negative definite (f is concave), else ∇f
    scaled by the largest curvature.  -> (d_m, d_v, ∇fᵀd)."""
    gm = g1 + 2.0 * m * g2
    gv = g2 + 0.5 / v
    a = h11 + 4.0 * m * h12 + 4.0 * m * m * h22 + 2.0 * g2
    b = h12 + 2.0 * m * h22
    c = h22 - 0.5 / (v * v)
    det = a * c - b * b
    if a < 0.0 and det > 0.0:
        dm = -(c * gm - b * gv) / det
        dv = -(a * gv - b * gm) / det
    else:
        s = max(abs(a), abs(c), 1e-300)
        dm = gm / s
        dv = gv / s
    return dm, dv, gm * dm + gv * dv


@njit(cache=True)
def newton_block_direction(m, v, g1, g2, h11, h12, h21, h22, dm, dv):
    """The joint Newton step over all K elements of a Normal q on f = 𝓛 + ½ Σ log v (docs/derivation.md, section
    10, "Block steps"; derive.newton.in_m_v_block and block_direction): ∇f and ∇²f in (m, v) ∈ R^{2K} by the chain
    rule from 𝓛's gradient (g1, g2) and cross Hessian (h_st[a, b] = ∂g_s(a)/∂⟨T_t(b)⟩), then d = −(∇²f)⁻¹∇f by a
    Cholesky factor of −∇²f, else ∇f scaled by the largest curvature.  Writes d into (dm, dv) -> ∇fᵀd."""
    k = m.shape[0]
    n = 2 * k
    grad = np.empty(n)
    a = np.empty((n, n))
    for i in range(k):
        grad[i] = g1[i] + 2.0 * m[i] * g2[i]
        grad[k + i] = g2[i] + 0.5 / v[i]
    for i in range(k):
        for j in range(k):
            mm = h11[i, j] + 2.0 * m[j] * h12[i, j] + 2.0 * m[i] * h21[i, j] + 4.0 * m[i] * m[j] * h22[i, j]
            if i == j:
                mm += 2.0 * g2[i]
            a[i, j] = mm
            a[i, k + j] = h12[i, j] + 2.0 * m[i] * h22[i, j]
            vv = h22[i, j]
            if i == j:
                vv -= 0.5 / (v[i] * v[i])
            a[k + i, k + j] = vv
    for i in range(k):              # ∂²f/∂v_a∂m_b = ∂²f/∂m_b∂v_a, symmetrised with the transpose
        for j in range(k):
            a[k + j, i] = a[i, k + j]
    for i in range(n):
        for j in range(i):
            s = 0.5 * (a[i, j] + a[j, i])
            a[i, j] = s
            a[j, i] = s
    # d = (−∇²f)⁻¹∇f by Cholesky where −∇²f is positive definite (f strictly concave), with no pivot floor: a
    # relative one (feature_sign's 1e-12) refuses the definite but ill-conditioned −∇²f of covariates of large
    # scale, and the scaled gradient then crawls (test_covariates_of_large_scale_overflow_no_update).
    for i in range(n):
        for j in range(n):
            a[i, j] = -a[i, j]
    d = np.empty(n)
    if not _cholesky_solve(a, np.arange(n), n, grad, np.zeros((n, n)), d, 0.0):
        big = 1e-300
        for i in range(n):
            big = max(big, abs(a[i, i]))
        for i in range(n):
            d[i] = grad[i] / big
    slope = 0.0
    for i in range(n):
        slope += grad[i] * d[i]
    for i in range(k):
        dm[i] = d[i]
        dv[i] = d[k + i]
    return slope


@njit(cache=True)
def weighted_gram(f, w, scratch, out):
    """out = Fᵀ diag(w) F (F: N × K, w: N): the Gram matrix of a block Newton step's sums over the data plate
    (codegen.newton.gram_form), one matrix product (BLAS) rather than a scalar sum over N per entry."""
    for n in range(f.shape[0]):
        for k in range(f.shape[1]):
            scratch[n, k] = w[n] * f[n, k]
    np.dot(f.T, scratch, out)


@njit(cache=True)
def newton_block_first_step(v, dv):
    """The first step length of a block line search: 1, halved until every v + t·dv > 0."""
    t = 1.0
    for i in range(v.shape[0]):
        while not (v[i] + t * dv[i] > 0.0) and t > 1e-300:
            t *= 0.5
    return t


@njit(cache=True)
def newton_block_logs(v, dv, t):
    """½ Σ log(v + t·dv): the entropy's part of a block trial's f."""
    s = 0.0
    for i in range(v.shape[0]):
        s += math.log(v[i] + t * dv[i])
    return 0.5 * s


@njit(cache=True)
def newton_block_feasible(m, v, floor):
    """One move of derive.newton.feasible_block towards a finite f: v / 16 where every v stays above its floor,
    else m / 2."""
    shrink = True
    for i in range(v.shape[0]):
        if not (v[i] / 16.0 >= floor[i]):
            shrink = False
    for i in range(v.shape[0]):
        if shrink:
            v[i] = v[i] / 16.0
        else:
            m[i] = 0.5 * m[i]


@njit(cache=True)
def newton_first_step(v, dv):
    """The first step length of a line search from v along dv: 1, halved until v + t·dv > 0."""
    t = 1.0
    while not (v + t * dv > 0.0) and t > 1e-300:
        t *= 0.5
    return t


@njit(cache=True)
def finish_normal_mv(m, v):
    """A Normal q from its mean and variance -> (mean, sd, ⟨x²⟩, H)."""
    if not v > 0.0:
        return math.nan, math.nan, math.nan, math.nan
    return m, math.sqrt(v), m * m + v, 0.5 * (1.0 + LOG_2PI + math.log(v))
