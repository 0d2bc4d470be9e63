"""A Gaussian block (issue 14, leftover): `approximate z jointly` on a latent of Normal elements that is no
chain gives one full Gaussian q(z[n, :]) per point, 19.56 applied to the row as one variable.

- fixed loadings and noise: q(z_n) is the exact posterior N((I + WᵀΨW)⁻¹WᵀΨx_n, (I + WᵀΨW)⁻¹) written here,
  and the ELBO is log p(x) with x_n ~ N(0, WWᵀ + Ψ⁻¹) (PRML 12.2.4), both compiled.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import multivariate_normal

from ppvi.language import loads

from codegen.programs import program      # noqa: E402  (tests/codegen/programs.py)

FA_FIXED = """\
dim N, D
dim M = 3
data x[N, D]
data W[D, M]
data psi[D]
for n in N:
    for m in M:
        z[n, m] ~ Normal(0, 1)
    for d in D:
        x[n, d] ~ Normal(sum(m in M: W[d, m] * z[n, m]), precision = psi[d])
approximate z jointly
"""


def _fixed_data(n: int = 40, d: int = 6, m: int = 3, seed: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    W, psi = rng.normal(size=(d, m)), rng.uniform(0.5, 4.0, size=d)
    x = rng.normal(size=(n, m)) @ W.T + rng.normal(size=(n, d)) / np.sqrt(psi)
    return {"x": x, "W": W, "psi": psi}


def test_fixed_loadings_give_the_exact_posterior_per_point_and_the_log_evidence():
    data = _fixed_data()
    x, W, psi = data["x"], data["W"], data["psi"]
    p = program(loads(FA_FIXED, "<fa_fixed>"), data)
    p.update("z")
    prec = np.eye(3) + W.T @ (psi[:, None] * W)
    cov = np.linalg.inv(prec)
    mean = x @ (psi[:, None] * W) @ cov
    assert p.plan.latents["z"].family == "MvNormal"
    np.testing.assert_allclose(p.state["q_z__mean"], mean, rtol=0, atol=1e-10)
    np.testing.assert_allclose(p.state["q_z__cov"], np.broadcast_to(cov, (len(x), 3, 3)), rtol=0, atol=1e-10)
    evidence = multivariate_normal(np.zeros(len(psi)), W @ W.T + np.diag(1 / psi)).logpdf(x).sum()
    assert abs(p.elbo() - evidence) < 1e-9 * max(1.0, abs(evidence)), (p.elbo(), evidence)
