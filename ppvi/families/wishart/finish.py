"""Wishart's Numba side (docs/architecture.md, "The family unit"): its finish (η of one element -> q's
parameters, moments and entropy), which generated code calls through ``ppvi.codegen.runtime``, and ``set_q``,
the same finish over every element of q's state (a warm start)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ppvi.codegen.plan import ArrayNames
from ppvi.codegen.special import LOG_2, digamma, lmvgamma

from ..elements import eta_of, flat, jitted

__all__ = ["finish_wishart"]


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


def _elements(elogdet, ex, df, scale, x, logdet, h):
    for i in range(elogdet.shape[0]):
        df[i], logdet[i], h[i] = finish_wishart(elogdet[i], ex[i], scale[i], x[i])


def set_q(s: dict[str, np.ndarray], v: str, eta: dict[str, np.ndarray]) -> None:
    """q(v) from η of every element (ppvi.families.elements)."""
    scale, df = s[ArrayNames.qparam(v, "scale")], s[ArrayNames.qparam(v, "df")]
    jitted(_elements)(eta_of(eta, "logdet", df), eta_of(eta, "X", scale, 2), flat(df), flat(scale, 2),
                      flat(s[ArrayNames.moment(v, "X")], 2), flat(s[ArrayNames.moment(v, "logdet")]),
                      flat(s[ArrayNames.entropy(v)]))
