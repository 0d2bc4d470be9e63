"""The kernels' numeric building blocks against NumPy/SciPy."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit
from scipy import special

from ppvi.codegen.runtime import finish_categorical, vexp


@njit
def _vexp_all(x, out):
    for i in range(x.shape[0]):
        out[i] = vexp(x[i])


def test_vexp_is_within_two_ulp_of_exp_and_never_subnormal():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-745.0, 709.78, 200_001), rng.normal(scale=30.0, size=200_000),
                        rng.uniform(-1, 1, size=100_000), [0.0, -0.0, 1e-300, -1e-17, -699.99, 709.782712893384]])
    got = np.empty_like(x)
    _vexp_all(x, got)
    with np.errstate(over="ignore"):
        want = np.exp(x)
    normal = x > -700.0
    ulp = np.abs(got[normal] - want[normal]) / np.spacing(want[normal])
    assert ulp.max() <= 2.0
    assert np.all(got[~normal] == 0.0)                  # exactly 0 below e^-700: no subnormals


def test_vexp_special_values():
    x = np.array([np.nan, -np.inf, np.inf, 710.0, -1e300])
    got = np.empty_like(x)
    _vexp_all(x, got)
    assert np.isnan(got[0]) and got[1] == 0.0 and got[2] == np.inf and got[3] == np.inf and got[4] == 0.0


@pytest.mark.parametrize("k", [1, 3, 4, 10, 37])
@pytest.mark.parametrize("scale", [1.0, 1e3, 1e6])
def test_finish_categorical_is_the_softmax_its_entropy_and_log_normaliser(k, scale):
    rng = np.random.default_rng(k)
    eta = rng.normal(scale=scale, size=k)
    p = np.empty(k)
    h, lse = finish_categorical(eta, p)
    want = special.softmax(eta)
    np.testing.assert_allclose(p, want, rtol=1e-13, atol=1e-300)
    assert lse == pytest.approx(special.logsumexp(eta), rel=1e-14, abs=1e-14)
    assert h == pytest.approx(special.entr(want).sum(), rel=1e-10, abs=1e-9 * scale * 1e-6 + 1e-12)
    assert np.isfinite(h) and h >= -1e-12
