"""Numba special functions shared by the families' finishes (``ppvi/families/<name>/finish.py``), the
runtime's helpers and the generated kernels (which import them through :mod:`ppvi.codegen.runtime`).

A leaf module: the runtime re-exports every family's finish, and the finishes read these, so they live
apart from both (no import cycle).  ψ and log Γ_D as scalar calls; vexp, vlog and vdigamma without a
library call or a branch, so that a loop of them vectorises; the entropy of Gamma(a, 1), which the Gamma,
Beta and Normal–Gamma finishes share.
"""

from __future__ import annotations

import math

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["LOG_2", "LOG_2PI", "digamma", "gamma_entropy_shape", "lmvgamma", "sigmoid", "softplus", "vdigamma",
           "vexp", "vlog", "xlogy"]

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
