"""Memoized and stochastic VI over a plate of hidden Markov chains (models/sequences/vghmm.ppvi, 100 sequences):
two faults found at the end of a session, kept here as strict xfails until fixed (issue 20)."""

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
@pytest.mark.xfail(strict=True, reason="memoized VI lowers the ELBO of a chain plate (-395.33454 -> -395.33582 at "
                   "sweep 36 with 4 chunks): every memoized step is exact coordinate ascent, so a chain's memoized "
                   "statistics are stale or counted twice")
def test_memoized_vi_over_chains_never_lowers_the_elbo():
    from ppvi.api import Memoized

    r = ppvi.load(str(VGHMM)).fit(_data(), algorithm=Memoized(chunks=4), max_iter=200)
    trace = np.asarray(r.elbo_trace)
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))


@pytest.mark.long
@pytest.mark.xfail(strict=True, reason="SVI's start leaves the states of a chain exchangeable: every state ends "
                   "with one mean (-0.417 for k = 0, 1, 2) where batch CAVI's k-means++ start separates them")
def test_svi_over_chains_separates_the_states():
    from ppvi.api import SVI

    r = ppvi.load(str(VGHMM)).fit(_data(), algorithm=SVI(batch=10, passes=20))
    means = np.asarray(r.q["mu"]["mean"])
    assert np.ptp(means) > 1.0
