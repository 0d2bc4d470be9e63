"""Logistic links inside larger models (issue 17, build 1): the ELBO never decreases.

Each model compiles kernels no other test needs, so these run with ``--long`` only:

* a hierarchical logistic regression (group intercepts with a learnt mean and precision);
* a mixture of logistic experts (the link's ψ indexed by a Categorical latent: one Pólya-Gamma weight per
  observation serves every expert, p(y, ω | z) = Π_k p(y, ω | ψ_k)^[z = k]);
* a two-layer sigmoid belief net (binary latent parents, and binary latents that are themselves the target
  of a link) on 3 × 3 bars.

Every sweep is a sequence of exact coordinate updates of the augmented model's ELBO, so a decrease beyond
rounding is a bug (ppvi reports it as an internal fault: the fits here would fail).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

import ppvi

pytestmark = pytest.mark.long

HIERARCHICAL = """\
dim N, J
data g[N] : index(J)
data x[N]
data y[N] : binary
mu ~ Normal(0, 2)
tau ~ Gamma(2, 1)
b ~ Normal(0, 2)
for j in J:
    a[j] ~ Normal(mu, precision = tau)
for n in N:
    y[n] ~ Bernoulli(sigmoid(a[g[n]] + b * x[n]))
"""

EXPERTS = """\
dim N, D
dim K = 2
const alpha[K] = 1.0
data x[N, D]
data y[N] : binary
pi ~ Dirichlet(alpha)
for k in K:
    for d in D:
        w[k, d] ~ Normal(0, 1)
for n in N:
    z[n] ~ Categorical(pi)
    y[n] ~ Bernoulli(sigmoid(sum(d in D: x[n, d] * w[z[n], d])))
"""

BELIEF_NET = """\
dim N, D
dim K = 2
dim H = 6
data v[N, D] : binary
for k in K:
    for h in H:
        V[k, h] ~ Normal(0, 1)
for h in H:
    u[h] ~ Normal(0, 1)
    for d in D:
        W[h, d] ~ Normal(0, 1)
for d in D:
    c[d] ~ Normal(0, 1)
for n in N:
    for k in K:
        t[n, k] ~ Bernoulli(0.5)
    for h in H:
        s[n, h] ~ Bernoulli(sigmoid(u[h] + sum(k in K: t[n, k] * V[k, h])))
    for d in D:
        v[n, d] ~ Bernoulli(sigmoid(c[d] + sum(h in H: s[n, h] * W[h, d])))
"""


def _hierarchical(rng):
    n, j = 150, 6
    g = rng.integers(0, j, n)
    x = rng.normal(size=n)
    a = rng.normal(0.5, 1.0, j)
    return {"g": g, "x": x, "y": (rng.random(n) < special.expit(a[g] - x)).astype(np.int64)}


def _experts(rng):
    x = np.column_stack([rng.normal(size=200), np.ones(200)])
    w = np.array([[3.0, 0.0], [-3.0, 1.0]])[(x[:, 0] > 0).astype(int)]
    return {"x": x, "y": (rng.random(200) < special.expit((x * w).sum(1))).astype(np.int64)}


def _bars(rng):
    bars = []
    for i in range(3):
        for rows in (True, False):
            b = np.zeros((3, 3))
            b[(i, slice(None)) if rows else (slice(None), i)] = 1
            bars.append(b.ravel())
    image = np.clip((rng.random((120, 6)) < 0.25) @ np.array(bars), 0, 1)
    return {"v": (rng.random(image.shape) < np.where(image > 0, 0.9, 0.05)).astype(np.int64)}


@pytest.mark.parametrize(("text", "make"), [(HIERARCHICAL, _hierarchical), (EXPERTS, _experts),
                                            (BELIEF_NET, _bars)], ids=["hierarchical", "experts", "belief_net"])
def test_the_elbo_never_decreases(tmp_path, text, make):
    path = tmp_path / "m.ppvi"
    path.write_text(text)
    r = ppvi.load(str(path)).fit(make(np.random.default_rng(0)), tol=0, max_iter=150, seed=1)
    trace = np.asarray(r.elbo_trace)
    assert np.all(np.isfinite(trace))
    assert np.all(np.diff(trace) >= -1e-12 * np.abs(trace[1:]))
    assert trace[-1] > trace[0]
