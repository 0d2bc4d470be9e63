"""Factor analysis by variational EM with `approximate z jointly` on its Normal factors (issue 14): q(z_n) is
the exact posterior per point, so the fit is EM and reaches scikit-learn's FactorAnalysis (implied covariance
W Wᵀ + Ψ⁻¹, which is free of W's rotation), and in fewer sweeps than the element-wise mean field (--long:
both compile and run to convergence)."""

from __future__ import annotations

import numpy as np
import pytest

import ppvi

FA_EM = """\
model fa_em_block

dim N, D
dim M = 2

data x[N, D]

param W[D, M]
param mu[D]
param psi[D] : positive

for n in N:
    for m in M:
        z[n, m] ~ Normal(0, 1)
    for d in D:
        x[n, d] ~ Normal(sum(m in M: W[d, m] * z[n, m]) + mu[d], precision = psi[d])

approximate z jointly
"""


def _data(N: int = 300, D: int = 6, M: int = 2, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    W, psi = rng.normal(size=(D, M)) * np.array([2.0, 1.0]), rng.uniform(1, 4, size=D)
    return rng.normal(size=(N, M)) @ W.T + rng.normal(size=(N, D)) / np.sqrt(psi) + rng.normal(size=D)


@pytest.mark.long
def test_em_with_the_block_is_scikit_learns_factor_analysis_in_fewer_sweeps(tmp_path):
    from sklearn.decomposition import FactorAnalysis

    x = _data()
    fa = FactorAnalysis(n_components=2, tol=1e-14, max_iter=100_000).fit(x)
    sweeps, gaps = {}, {}
    for name, text in (("block", FA_EM), ("mean_field", FA_EM.replace("approximate z jointly\n", ""))):
        path = tmp_path / f"{name}.ppvi"
        path.write_text(text)
        r = ppvi.load(str(path)).fit({"x": x}, max_iter=20_000, tol=1e-12)
        W, psi = np.asarray(r.params["W"]), np.asarray(r.params["psi"])
        gaps[name] = np.abs(W @ W.T + np.diag(1 / psi) - fa.get_covariance()).max()
        sweeps[name] = r.iterations
        if name == "block":         # (q(z) exact: the ELBO is the log-likelihood)
            assert r.elbo == pytest.approx(fa.score(x) * len(x), rel=1e-9)
    assert gaps["block"] < 1e-6, gaps
    assert sweeps["block"] < sweeps["mean_field"], sweeps
