"""Pareto k̂ against ArviZ's PSIS and on weights whose tail is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ppvi.simulate.pareto import khat


@pytest.mark.parametrize("s", [100, 1000, 5000])
def test_khat_is_arviz_psis_tail_index(s):
    az = pytest.importorskip("arviz")
    rng = np.random.default_rng(s)
    for lw in (rng.standard_t(3, s), rng.normal(0, 2, s), np.log(rng.pareto(1.5, s) + 1)):
        _, k = az.psislw(lw.copy())
        assert khat(lw) == pytest.approx(float(k), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("shape", [0.3, 0.8, 1.2])
def test_khat_recovers_a_generalised_pareto_shape(shape):
    """Weights whose upper tail is generalised Pareto with shape k: k̂ ≈ k (the prior pulls it a little
    towards 1/2)."""
    rng = np.random.default_rng(int(10 * shape))
    u = rng.random(20000)
    w = ((1 - u) ** -shape - 1) / shape           # the GPD's quantile function, σ = 1
    assert khat(np.log(w)) == pytest.approx(shape, abs=0.2)          # (its sd: about (1 + k) / √424)


def test_edge_cases():
    assert khat(np.zeros(100)) == -math.inf                       # equal weights: q is p
    assert khat(np.r_[np.zeros(50), np.full(50, -3.0)]) == -math.inf     # recurring largest weights
    assert math.isnan(khat(np.zeros(10) + np.arange(10)))         # too few to tell
    assert math.isnan(khat(np.r_[np.nan, np.zeros(99)]))


@pytest.mark.parametrize("s", [10, 30, 2000])
def test_every_column_at_once_is_each_column_alone(s):
    """khats_of_largest (per-datum evidence: one k̂ per data point) fits columns in groups by tail size and in
    blocks: the same k̂ as each column's own, for heavy and light tails, equal weights, recurring largest
    weights, and more columns than a block."""
    from ppvi.simulate import pareto

    rng = np.random.default_rng(s)
    cols = pareto.BLOCK + 40
    lw = rng.standard_t(3, (s, cols)) * rng.uniform(0.1, 3, cols)
    lw[:, 0] = 0.0                                                   # equal
    lw[:, 1] = np.round(rng.standard_normal(s))                      # recurring largest
    lw[:, 2] = np.log(rng.pareto(1.5, s) + 1)
    each = np.array([khat(lw[:, j]) for j in range(cols)])
    m = pareto.tail_length(s)
    top = np.sort(lw, axis=0)[-min(s, m + 1):]
    together = pareto.khats_of_largest(top, lw.min(axis=0), s)
    assert np.array_equal(np.isnan(each), np.isnan(together)) and np.array_equal(np.isinf(each), np.isinf(together))
    finite = np.isfinite(each)
    np.testing.assert_allclose(together[finite], each[finite], rtol=1e-12, atol=1e-14)
    if s == 2000:
        assert finite.sum() >= cols - 2 and np.isinf(together[0])
