"""An energy over a grid written with index offsets (`s[i - 1, j]` in a `factor` over `for i in H[1:]`:
models/ising_grid.ppvi).

The slice bounds the energy's sum as it bounds a draw's: log p̃ = Σ_ij field·y_ij σ_ij + c Σ_{i≥1, j} σ_ij σ_{i−1,j}
+ c Σ_{i, j≥1} σ_ij σ_{i,j−1} with σ = 2s − 1, so η of s_ij is 2·field·y_ij + 2c Σ_{neighbours} (2⟨s⟩ − 1): the
border pixels have fewer neighbours, none outside the grid.  Checked through the reference evaluator
(derive/numeric.py) against that formula written here, at a random q; no kernel is compiled.
"""

from __future__ import annotations

import numpy as np
import pytest

from ppvi.derive import derive
from ppvi.derive.numeric import Env, evaluate
from ppvi.errors import PPVIError
from ppvi.language import loads

from conftest import MODELS

OFFSET_GRID = (MODELS / "ising_grid.ppvi").read_text()


def neighbours(sigma: np.ndarray) -> np.ndarray:
    near = np.zeros_like(sigma)
    near[1:, :] += sigma[:-1, :]
    near[:-1, :] += sigma[1:, :]
    near[:, 1:] += sigma[:, :-1]
    near[:, :-1] += sigma[:, 1:]
    return near


def test_the_slice_bounds_an_energy_and_eta_sums_the_neighbours_inside_the_grid():
    d = derive(loads(OFFSET_GRID, "offset_grid.ppvi"))
    H, W = 3, 4
    rng = np.random.default_rng(0)
    y, p = rng.normal(size=(H, W)), rng.uniform(0.1, 0.9, (H, W))
    env = Env({"y": y, "coupling": 0.5, "field": 1.0}, {("s", "x"): p, ("s", "x2"): p}, {"H": H, "W": W})
    q = d.q["s"]
    eta = np.array([[evaluate(q.natural["x"], env, dict(zip(q.index, (i, j)))) for j in range(W)]
                    for i in range(H)])
    np.testing.assert_allclose(eta, 2 * y + 2 * 0.5 * neighbours(2 * p - 1), rtol=1e-13, atol=1e-13)
    sigma = 2 * p - 1
    want = [0.0, (y * sigma).sum(), 0.5 * (sigma[1:] * sigma[:-1]).sum(), 0.5 * (sigma[:, 1:] * sigma[:, :-1]).sum()]
    got = [evaluate(e, env) for _, e in d.elbo_terms()[:4]]
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)


def test_an_offset_in_an_energy_still_needs_its_loop_sliced():
    with pytest.raises(PPVIError, match=r"`i - 1` reads element -1 of axis 0 of `s` when i = 0"):
        loads(OFFSET_GRID.replace("for i in H[1:]:", "for i in H:"), "offset_grid.ppvi")
