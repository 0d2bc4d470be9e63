"""Categorical's Numba side (docs/architecture.md, "The family unit"): its finish (η of one element -> q's
probabilities, entropy and log-normaliser, by log-sum-exp), the same for a block of elements at once, and a
softmax whose η is a sum of two parts from their factors (a group block's members), which generated code
calls through ``ppvi.codegen.runtime``; and ``set_q``, the finish over every element of q's state (a warm
start)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ppvi.codegen.plan import ArrayNames
from ppvi.codegen.special import vexp, vlog

from ..elements import eta_of, flat, jitted

__all__ = ["exp_factor", "exp_product", "exp_product_finish", "finish_categorical", "finish_categorical_block"]

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


def _elements(eta, p, h, lse):
    for i in range(eta.shape[0]):
        h[i], lse[i] = finish_categorical(eta[i], p[i])


def set_q(s: dict[str, np.ndarray], v: str, eta: dict[str, np.ndarray]) -> None:
    """q(v) from η of every element (ppvi.families.elements)."""
    p = s[ArrayNames.qparam(v, "p")]
    jitted(_elements)(eta_of(eta, "onehot", p, 1), flat(p, 1), flat(s[ArrayNames.entropy(v)]),
                      flat(s[ArrayNames.log_normaliser(v)]))
