"""Faults the harness found that need more than a corpus case to show: each reproduced as found, marked with a
strict xfail until its fix."""

from __future__ import annotations

import numpy as np
import pytest

from harness_cases import MODELS
from harness_fit import fit_text


def test_sparse_coding_on_fewer_examples_than_atoms_reports_the_divergence(harness_long):
    """models/sparse_coding (32 atoms) on 16 of its rows, compiled as a user runs it (40 s: --long): the
    dictionary reproduces the rows exactly and β diverges (×30 a sweep); the fit says so at β's declaration
    instead of ending in an internal ElboDecrease once the expanded squares lose their digits."""
    if not harness_long:
        pytest.skip("run with --long (a compilation of 40 s)")
    text = (MODELS / "sparse_coding.ppvi").read_text()
    with np.load(MODELS / "sparse_coding.npz") as f:
        v = f["v"][:16]
    out = fit_text(text, {"v": v}, None, python=False, max_iter=40)
    assert out.error == "PPVIError" and "param `beta` has no maximum" in out.detail and "diverges" in out.detail, \
        out.problems()
