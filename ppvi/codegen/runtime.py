"""The Numba functions generated kernels call, by name (``from ppvi.codegen.runtime import …``).

Each family's *finish* lives in its folder (``ppvi/families/<name>/finish.py``: one element's natural
parameters, collected by the derived kernel, eq. 19.56, to its standard parameters, the moments its
neighbours read, and its entropy, 19.7, in numerically safe forms); this module re-exports every name a
finish module lists in ``__all__``, found through the registry (``registry.finish``), and the shared special
functions (:mod:`ppvi.codegen.special`).  What it defines itself belongs to no family: the sums a group
block scatters, MAP under an L1 prior, the chains' blocks and the Newton steps of an exp link.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ppvi.codegen.special import (LOG_2, LOG_2PI, digamma, gamma_entropy_shape, lmvgamma, sigmoid,  # noqa: F401
                                  softplus, vdigamma, vexp, vlog, xlogy)


def _finishes() -> dict:
    """Every family's Numba functions (its ``finish.py``'s ``__all__``), by name."""
    from ppvi.families.registry import FINISHED, finish

    out: dict = {}
    for family in FINISHED:
        module = finish(family)
        for name in module.__all__:
            assert name not in out, f"{name}: two families' finishes"
            out[name] = getattr(module, name)
    return out


globals().update(_finishes())


@njit(cache=True, inline="always")
def add_to(rows, p):
    """rows += p, over two rows (views): a loop the compiler vectorises, unlike the same sum written with
    a data-valued row index."""
    for k in range(p.shape[0]):
        rows[k] += p[k]


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
