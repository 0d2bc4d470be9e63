"""Memoized and stochastic VI over a plate of hidden Markov chains (models/sequences/vghmm.ppvi): two faults found
at the end of a session (issue 20); the memoized one is kept here as a strict xfail until fixed.  SVI's was its
start: the state means had no k-means++ seed (ppvi.infer.start: a chain's points are x[s, t])."""

from __future__ import annotations

import json

import numpy as np
import pytest

import ppvi
from conftest import MODELS

VGHMM = MODELS / "sequences" / "vghmm.ppvi"


def _data() -> dict:
    return {k: np.asarray(v) for k, v in json.loads((MODELS / "sequences" / "vghmm.json").read_text()).items()}


@pytest.mark.long
@pytest.mark.xfail(strict=True, reason="memoized VI lowers the ELBO of a chain plate (-351.87412 -> -351.87605 at "
                   "sweep 5 with 4 chunks, seed 2): every memoized step is exact coordinate ascent, so a chain's "
                   "memoized statistics are stale or counted twice")
def test_memoized_vi_over_chains_never_lowers_the_elbo():
    from ppvi.api import Memoized

    # (seed 2: from seeds 0 and 1 the fit ends before a decrease shows; before the chain's k-means++ start, seed 0
    # showed it at sweep 36)
    r = ppvi.load(str(VGHMM)).fit(_data(), algorithm=Memoized(chunks=4), max_iter=200, seed=2)
    trace = np.asarray(r.elbo_trace)
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))


@pytest.mark.long
def test_svi_over_chains_separates_the_states():
    """(Before the chain's k-means++ start every state ended with one mean, -0.417 for k = 0, 1, 2.)"""
    from ppvi.api import SVI

    r = ppvi.load(str(VGHMM)).fit(_data(), algorithm=SVI(batch=10, passes=20))
    means = np.asarray(r.q["mu"]["mean"])
    assert np.ptp(means) > 1.0
