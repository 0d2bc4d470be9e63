"""Links at scale (issue 17, Speed): Poisson log-link and Bayesian logistic regression, ppvi against a NumPy
reference and NumPyro's SVI with AutoNormal, on the same data, in one run, as ratios.

    pip install -e .[bench]                          # numpyro, jax (the peers)
    python bench/explinks.py                         # both cases, N = 10^6, D = 20 (many minutes)
    python bench/explinks.py --n 20000 --d 20        # smaller
    python bench/explinks.py --cases poisson --no-numpyro

Each case: y from a regression with an intercept b and D coefficients w, priors N(0, 5²).

* ppvi fits q(b) q(w_1) … q(w_D), each Normal, until the ELBO changes by less than --tol (relative) in a sweep
  (its kernels compiled, or loaded from the cache, by a warm-up fit first).  Poisson: Newton steps on the exact
  ELBO (docs/derivation.md, section 10); logistic: the Pólya-Gamma augmentation, whose ELBO is the
  Jaakkola–Jordan bound (section 9).
* The NumPy references, written here, each step one pass of Xᵀ diag(·) X: Poisson, ppvi's own q (the mean-field
  Gaussian and its exact ELBO) by joint Newton steps in every (m_j, v_j) at once, a block step (mean_field_newton),
  and Newton's method on the log posterior (the Laplace fit) until its step is below 1e-10; logistic, the Jaakkola–Jordan fit with a full
  covariance (PRML 10.6: S⁻¹ = S₀⁻¹ + 2 Σ λ(ξ_n) x_n x_nᵀ, ξ_n² = x_nᵀ(S + m mᵀ)x_n) until its bound changes by
  less than --tol.  Both fit a full-covariance Gaussian, so their objective is at least the mean field's.  Its
  BLAS runs on --blas-threads threads (1 by default, as ppvi's Newton and coordinate updates of the global
  latents run: on a loaded machine OpenBLAS's threads, spinning while others hold the cores, made it 60×
  slower).
* NumPyro: SVI with AutoNormal (the same mean-field family), Adam with a decaying step, one particle, the whole
  data each step (JIT-compiled first, in float64).  Every --every steps its q's exact mean-field ELBO is
  evaluated here (closed form for Poisson; Gauss–Hermite over each ψ_n for logistic), outside the clock; its
  time is the time to reach T − --gap, T the exact ELBO of ppvi's q (for logistic above ppvi's own objective,
  the Jaakkola–Jordan bound of that q).  It stops
  at --cap seconds: then it did not reach T and the ratio is a lower bound.

Prints each time, ELBO and ratio, and the load average (os.getloadavg) before and after.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time

import numpy as np
from scipy import special

S0 = 5.0        # the prior sd of b and of every w_j

MODEL = """\
model {name}
dim N, D
data x[N, D]
data y[N] : {kind}
b ~ Normal(0, sd = 5)
for j in D:
    w[j] ~ Normal(0, sd = 5)
for n in N:
    y[n] ~ {law}
"""
LAWS = {"poisson": ("count", "Poisson(exp(b + dot(x[n], w)))"),
        "logistic": ("binary", "Bernoulli(sigmoid(b + dot(x[n], w)))")}


def data(case: str, n: int, d: int, seed: int = 0, corr: float = 0.0) -> dict[str, np.ndarray]:
    """y from the case's regression; covariates N(0, 1/d) each, every pair correlated ``corr`` (one shared factor)."""
    rng = np.random.default_rng(seed)
    x = (np.sqrt(1.0 - corr) * rng.normal(size=(n, d)) + np.sqrt(corr) * rng.normal(size=(n, 1))) / np.sqrt(d)
    w = rng.normal(scale=0.5 if case == "poisson" else 2.0, size=d)
    psi = 0.3 + x @ w
    y = rng.poisson(np.exp(psi)) if case == "poisson" else rng.random(n) < special.expit(psi)
    return {"x": x, "y": y.astype(np.int64)}


def design(x: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones(len(x)), x])


# ------------------------------------------------------------------ the mathematics, in NumPy
def gaussian_terms(m: np.ndarray, cov: np.ndarray) -> float:
    """E_q[log prior] + H[q] of q = N(m, cov) (full or diagonal given as a vector) under N(0, S0² I)."""
    var = np.diag(cov) if cov.ndim == 2 else cov
    logdet = np.linalg.slogdet(cov)[1] if cov.ndim == 2 else np.sum(np.log(cov))
    k = len(m)
    prior = -0.5 * np.sum(m ** 2 + var) / S0 ** 2 - k * (math.log(S0) + 0.5 * math.log(2 * math.pi))
    return float(prior + 0.5 * (k * math.log(2 * math.pi * math.e) + logdet))


def psi_moments(X: np.ndarray, m: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """E[ψ_n] and Var[ψ_n] under q."""
    var = np.einsum("nd,de,ne->n", X, cov, X) if cov.ndim == 2 else (X ** 2) @ cov
    return X @ m, var


def exact_elbo(case: str, X: np.ndarray, y: np.ndarray, m: np.ndarray, cov: np.ndarray) -> float:
    """The ELBO of the Gaussian q = N(m, cov): Poisson in closed form (E[e^ψ] = exp(E ψ + Var ψ / 2)); logistic,
    E[log σ(±ψ)] by 40-point Gauss–Hermite quadrature over each ψ_n (exact to far below the figures printed)."""
    mu, var = psi_moments(X, m, cov)
    if case == "poisson":
        lik = np.sum(y * mu - np.exp(mu + 0.5 * var) - special.gammaln(y + 1.0))
    else:
        z, wq = np.polynomial.hermite_e.hermegauss(40)
        wq = wq / math.sqrt(2 * math.pi)
        lik, sd = 0.0, np.sqrt(var)
        for lo in range(0, len(mu), 100_000):
            psi = mu[lo:lo + 100_000, None] + sd[lo:lo + 100_000, None] * z
            lik += np.sum(y[lo:lo + 100_000] * mu[lo:lo + 100_000]) - np.sum(np.logaddexp(0.0, psi) @ wq)
    return float(lik + gaussian_terms(m, cov))


def newton_laplace(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """The mode of log p(β | y) of the Poisson regression by Newton's method, and the Laplace covariance."""
    beta = np.zeros(X.shape[1])
    prec0 = np.eye(X.shape[1]) / S0 ** 2
    for it in range(1, 101):
        rate = np.exp(X @ beta)
        step = np.linalg.solve((X.T * rate) @ X + prec0, X.T @ (y - rate) - prec0 @ beta)
        beta += step
        if np.max(np.abs(step)) < 1e-10:
            break
    rate = np.exp(X @ beta)
    return beta, np.linalg.inv((X.T * rate) @ X + prec0), it


def mean_field_newton(X: np.ndarray, y: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray, int]:
    """ppvi's q for the Poisson regression, q = Π_j N(m_j, v_j), by joint Newton steps in all 2K of (m, v) at once
    (the block step ppvi's coordinate updates could take), with a backtracking line search on the exact ELBO

        f(m, v) = Σ_n y_n μ_n − e_n − Σ_j (m_j² + v_j)/(2 S0²) + ½ Σ_j log v_j,   μ = X m, e_n = exp(μ_n + (X² v)_n / 2),

    jointly concave; ∇²f from Xᵀ diag(e) X, Xᵀ diag(e) X², (X²)ᵀ diag(e) X²: one pass of N exps and three Gram
    products a step.  Until the Newton decrement is below ``tol``·|f|: (m, v, steps)."""
    k = X.shape[1]
    X2 = X * X
    m, v = np.zeros(k), np.full(k, 0.1)

    def value(m, v):
        if np.any(v <= 0):
            return -np.inf
        mu = X @ m
        with np.errstate(over="ignore"):
            return float(y @ mu - np.sum(np.exp(mu + 0.5 * (X2 @ v))) - 0.5 * np.sum(m * m + v) / S0 ** 2
                         + 0.5 * np.sum(np.log(v)))

    f = value(m, v)
    while not np.isfinite(f):                               # (a start where E[e^ψ] overflows: narrow q first)
        v = v / 16
        f = value(m, v)
    for it in range(1, 201):
        e = np.exp(X @ m + 0.5 * (X2 @ v))
        g = np.concatenate([X.T @ (y - e) - m / S0 ** 2, -0.5 * (X2.T @ e) - 0.5 / S0 ** 2 + 0.5 / v])
        Xe = X.T * e
        H = np.block([[-(Xe @ X) - np.eye(k) / S0 ** 2, -0.5 * (Xe @ X2)],
                      [-0.5 * (X2.T * e) @ X, -0.25 * ((X2.T * e) @ X2) - np.diag(0.5 / v ** 2)]])
        d = -np.linalg.solve(H, g)
        slope = float(g @ d)
        if slope <= tol * abs(f):
            break
        t = 1.0
        while True:
            ft = value(m + t * d[:k], v + t * d[k:])
            if ft >= f + 1e-4 * t * slope or t < 1e-12:
                break
            t *= 0.5
        m, v, f = m + t * d[:k], v + t * d[k:], ft
    return m, v, it


def jaakkola_jordan(X: np.ndarray, y: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Bayesian logistic regression by the Jaakkola–Jordan bound (PRML 10.6, 10.150–10.164): (m, S, the bound at
    the last ξ, iterations), until the bound changes by less than ``tol`` (relative)."""
    k = X.shape[1]
    prec0 = np.eye(k) / S0 ** 2
    xi = np.ones(len(X))
    t = X.T @ (y - 0.5)
    bound_old = -np.inf
    for it in range(1, 501):
        lam = np.tanh(xi / 2) / (4 * xi)
        prec = prec0 + 2 * (X.T * lam) @ X
        cov = np.linalg.inv(prec)
        m = cov @ t
        bound = float(0.5 * (np.linalg.slogdet(cov)[1] + k * math.log(1 / S0 ** 2)) + 0.5 * m @ prec @ m
                      + np.sum(-np.logaddexp(0.0, -xi) - xi / 2 + lam * xi ** 2))
        xi = np.sqrt(np.einsum("nd,de,ne->n", X, cov + np.outer(m, m), X))
        if abs(bound - bound_old) <= tol * abs(bound):
            break
        bound_old = bound
    return m, cov, bound, it


# ------------------------------------------------------------------ the three fits
def fit_ppvi(case: str, dd: dict, tol: float):
    import ppvi

    kind, law = LAWS[case]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{case}_bench.ppvi")
        with open(path, "w") as f:
            f.write(MODEL.format(name=f"{case}_bench", kind=kind, law=law))
        model = ppvi.load(path)
        model.fit(data(case, 1000, dd["x"].shape[1]), max_iter=2, tol=0)       # compile (or load) the kernels
        t0, c0 = time.perf_counter(), time.process_time()
        r = model.fit(dd, tol=tol, max_iter=1000)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    m = np.concatenate([np.ravel(r.q["b"]["mean"]), np.ravel(r.q["w"]["mean"])])
    v = np.concatenate([np.ravel(r.q["b"]["sd"]), np.ravel(r.q["w"]["sd"])]) ** 2
    return seconds, cpu, r, m, v


def fit_numpyro(case: str, dd: dict, target: float, gap: float, every: int, cap: float, seed: int = 0):
    """SVI with AutoNormal until its exact ELBO reaches ``target − gap`` (checked every ``every`` steps, off the
    clock) or ``cap`` seconds pass: (seconds, steps, its last exact ELBO, reached)."""
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoNormal
    from numpyro.optim import Adam

    x, y = jnp.asarray(dd["x"]), jnp.asarray(dd["y"])
    d = dd["x"].shape[1]

    def model(x, y):
        b = numpyro.sample("b", dist.Normal(0.0, S0))
        w = numpyro.sample("w", dist.Normal(0.0, S0).expand([d]).to_event(1))
        psi = b + x @ w
        law = dist.Poisson(jnp.exp(psi)) if case == "poisson" else dist.Bernoulli(logits=psi)
        numpyro.sample("y", law, obs=y)

    guide = AutoNormal(model)
    schedule = lambda i: 0.05 * 0.1 ** (i / 2000)  # noqa: E731      (Adam's step: 0.05 down by 10 every 2000 steps)
    svi = SVI(model, guide, Adam(schedule), Trace_ELBO())
    state = svi.init(jax.random.PRNGKey(seed), x, y)
    update = jax.jit(svi.update)
    jax.block_until_ready(update(state, x, y))                        # compile
    X = design(dd["x"])

    def elbo_now(state) -> float:
        p = svi.get_params(state)
        m = np.concatenate([np.ravel(p["b_auto_loc"]), np.ravel(p["w_auto_loc"])])
        v = np.concatenate([np.ravel(p["b_auto_scale"]), np.ravel(p["w_auto_scale"])]) ** 2
        return exact_elbo(case, X, dd["y"], m, v)

    seconds, steps, value = 0.0, 0, -np.inf
    while seconds < cap:
        t0 = time.perf_counter()
        for _ in range(every):
            state, _ = update(state, x, y)
        jax.block_until_ready(state)
        seconds += time.perf_counter() - t0
        steps += every
        value = elbo_now(state)
        if value >= target - gap:
            return seconds, steps, value, True
    return seconds, steps, value, False


def run(case: str, args) -> None:
    dd = data(case, args.n, args.d, corr=args.corr)
    X = design(dd["x"])
    t_ppvi, cpu, r, m, v = fit_ppvi(case, dd, args.tol)
    target = exact_elbo(case, X, dd["y"], m, v)         # the exact ELBO of ppvi's q: NumPyro's target
    print(f"{case}: N = {args.n}, D = {args.d}, covariates correlated {args.corr}")
    own = "exact ELBO" if case == "poisson" else "ELBO (the Jaakkola–Jordan bound)"
    print(f"  ppvi                   {t_ppvi:8.2f} s  {r.iterations} sweeps ({cpu:.2f} CPU-s, "
          f"{cpu / max(r.iterations, 1):.3f} a sweep), converged {r.converged}; its {own} "
          f"{r.elbo:.6f}; the exact ELBO of its q (NumPy) {target:.6f}")
    t0 = time.perf_counter()
    if case == "poisson":
        mm, vv, its = mean_field_newton(X, dd["y"], args.tol)
        t_mf = time.perf_counter() - t0
        print(f"  NumPy joint Newton     {t_mf:8.2f} s  {its} steps; exact ELBO {exact_elbo(case, X, dd['y'], mm, vv):.6f} "
              f"(the same q, block steps); ratio ppvi / NumPy {t_ppvi / t_mf:.2f}")
        t0 = time.perf_counter()
        mode, cov, its = newton_laplace(X, dd["y"])
        t_np = time.perf_counter() - t0
        label, objective = "NumPy Newton (Laplace)", f"exact ELBO of N(mode, Laplace cov) {exact_elbo(case, X, dd['y'], mode, cov):.6f}"
    else:
        mode, cov, bound, its = jaakkola_jordan(X, dd["y"], args.tol)
        t_np = time.perf_counter() - t0
        label, objective = "NumPy Jaakkola–Jordan", f"bound {bound:.6f} (full covariance)"
    shift = np.max(np.abs(m - mode) / np.sqrt(np.diag(cov)))
    print(f"  {label:<22} {t_np:8.2f} s  {its} steps; {objective}; ppvi's means within {shift:.3f} of its sds; "
          f"ratio ppvi / NumPy {t_ppvi / t_np:.2f}")
    if not args.no_numpyro:
        s, steps, value, reached = fit_numpyro(case, dd, target, args.gap, args.every, args.cap)
        print(f"  NumPyro SVI AutoNormal {s:8.2f} s  {steps} steps; exact ELBO {value:.6f} "
              f"({'reached' if reached else 'did NOT reach'} {target:.6f} − {args.gap}); "
              f"ratio ppvi / NumPyro {t_ppvi / s:.3f}{'' if reached else ' (NumPyro capped: an upper bound)'}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=20)
    ap.add_argument("--tol", type=float, default=1e-8)
    ap.add_argument("--corr", type=float, default=0.0, help="the correlation of every pair of covariates")
    ap.add_argument("--cases", default="poisson,logistic")
    ap.add_argument("--no-numpyro", action="store_true")
    ap.add_argument("--gap", type=float, default=1.0, help="NumPyro's ELBO must reach ppvi's minus this (nats)")
    ap.add_argument("--every", type=int, default=100, help="SVI steps between checks of its exact ELBO")
    ap.add_argument("--cap", type=float, default=600.0, help="seconds of SVI at most")
    ap.add_argument("--blas-threads", type=int, default=1, help="NumPy's BLAS threads (0: the library's default)")
    args = ap.parse_args()
    print(f"load before: {os.getloadavg()}; NumPy's BLAS on {args.blas_threads or 'its default number of'} thread(s)")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(args.blas_threads or None, user_api="blas"):
        for case in args.cases.split(","):
            run(case, args)
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
