"""Dirichlet and Beta components start apart (ppvi.infer.start, seeds of kind "proportions"): a component's
probabilities read by a label over count or binary data start at greedy k-means++ seeds of the normalised
rows.  Before, every phi[k] started at the same uniform q and a mixture of multinomials ended at two
clusters (76/74/0, ELBO −2038.33) from every seed.  The reference is mean-field VB written here in NumPy
(Bishop PRML §10.2 for a mixture of multinomials), run from the true labels."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from scipy.special import digamma, gammaln

import ppvi
from conftest import MODELS

A0, B0, K = 1.0, 0.5, 3


def _dirichlet_log_norm(a):
    return gammaln(a.sum(-1)) - gammaln(a).sum(-1)


def numpy_vb(x, r, iters=300):
    """Coordinate ascent from responsibilities r: (ELBO, cluster sizes)."""
    n_rows, v = x.shape
    const = gammaln(x.sum(1) + 1) - gammaln(x + 1).sum(1)
    for _ in range(iters + 1):
        alpha, beta = A0 + r.sum(0), B0 + r.T @ x
        e_log_pi = digamma(alpha) - digamma(alpha.sum())
        e_log_phi = digamma(beta) - digamma(beta.sum(1, keepdims=True))
        log_r = e_log_pi + x @ e_log_phi.T + const[:, None]
        new = np.exp(log_r - np.logaddexp.reduce(log_r, 1, keepdims=True))
        if _ == iters:
            break
        r = new
    elbo = (r * log_r).sum() - (r * np.log(np.where(r > 0, r, 1))).sum()
    elbo += _dirichlet_log_norm(np.full(K, A0)) + ((A0 - 1) * e_log_pi).sum()
    elbo -= _dirichlet_log_norm(alpha) + ((alpha - 1) * e_log_pi).sum()
    elbo += K * _dirichlet_log_norm(np.full(v, B0)) + ((B0 - 1) * e_log_phi).sum()
    elbo -= _dirichlet_log_norm(beta).sum() + ((beta - 1) * e_log_phi).sum()
    return elbo, np.sort(r.sum(0))


@pytest.fixture(scope="module")
def mixture():
    sys.path.insert(0, str(MODELS))
    import make_data

    data, truth = make_data.multinomial_mixture()
    return ppvi.load(str(MODELS / "multinomial_mixture.ppvi")), data, truth["z"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_mixture_of_multinomials_finds_its_three_clusters(mixture, seed):
    model, data, z = mixture
    reference, sizes = numpy_vb(data["x"].astype(float), np.eye(K)[z])
    assert np.allclose(sizes, [30, 44, 76], atol=1)           # (the planted clusters: VB keeps them)
    r = model.fit(seed=seed, tol=1e-12)
    assert r.elbo >= reference - 1e-6
    found = np.sort(np.asarray(r.q["z"]["p"]).sum(0))
    assert np.allclose(found, [30, 44, 76], atol=3), found
