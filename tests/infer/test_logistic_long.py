"""Logistic links inside larger models (issue 17, build 1): the ELBO never decreases.

Each model compiles kernels no other test needs, so these run with ``--long`` only, on the examples of
models/links/ with their bundled data:

* hierarchical_logistic, a hierarchical logistic regression (group intercepts with a learnt mean and precision);
* logistic_experts, a mixture of logistic experts (the link's ψ indexed by a Categorical latent: one Pólya-Gamma
  weight per observation serves every expert, p(y, ω | z) = Π_k p(y, ω | ψ_k)^[z = k]);
* sigmoid_belief_net, a two-layer sigmoid belief net (binary latent parents, and binary latents that are
  themselves the target of a link) on 3 × 3 bars.

Every sweep is a sequence of exact coordinate updates of the augmented model's ELBO, so a decrease beyond
rounding is a bug (ppvi reports it as an internal fault: the fits here would fail).
"""

from __future__ import annotations

import numpy as np
import pytest

import ppvi
from conftest import MODELS

pytestmark = pytest.mark.long

LINKS = MODELS / "links"


@pytest.mark.parametrize("stem", ["hierarchical_logistic", "logistic_experts", "sigmoid_belief_net"])
def test_the_elbo_never_decreases(stem):
    r = ppvi.load(str(LINKS / f"{stem}.ppvi")).fit(tol=0, max_iter=150, seed=1)       # (its data beside it)
    trace = np.asarray(r.elbo_trace)
    assert np.all(np.isfinite(trace))
    assert np.all(np.diff(trace) >= -1e-12 * np.abs(trace[1:]))
    assert trace[-1] > trace[0]
