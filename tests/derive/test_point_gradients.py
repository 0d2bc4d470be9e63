"""Point estimates inside functions (issue 21, item 9): the ascent direction derive gives for
`approximate w by point` is ∂/∂w of the log joint, checked against a central difference of the log
joint written here with NumPy.  A sigmoid of the point estimate (the remedy derive itself suggests for a
sigmoid of a latent) used to be an internal error: "cannot differentiate Derivative(sigmoid(w), w)"."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from ppvi.derive import derive
from ppvi.derive.numeric import Env, evaluate
from ppvi.language import loads

Y = np.array([0.3, -1.2, 2.0, 0.7])
MODELS = {
    # log p = −w²/2 − Σ_n (y[n] − σ(w))²/2 + const
    "mean": ("Normal(sigmoid(w), 1)", lambda w: -w**2 / 2 - ((Y - special.expit(w)) ** 2).sum() / 2),
    # log p = −w²/2 + N·log τ/2 − τ·Σ_n y[n]²/2 + const, with τ = exp(σ(w)) (so log τ = σ(w))
    "precision": ("Normal(0, precision = exp(sigmoid(w)))",
                  lambda w: -w**2 / 2 + len(Y) * special.expit(w) / 2 - np.exp(special.expit(w)) * (Y**2).sum() / 2),
}


@pytest.mark.parametrize("which", sorted(MODELS))
def test_the_ascent_direction_of_a_point_estimate_inside_a_sigmoid_is_the_gradient(which):
    dist, log_joint = MODELS[which]
    d = derive(loads(f"dim N\ndata y[N]\nw ~ Normal(0, 1)\nfor n in N:\n    y[n] ~ {dist}\napproximate w by point\n"))
    pu = d.points["w"]
    assert pu.method == "gradient"
    for w in (-2.0, 0.1, 1.5):
        got = evaluate(pu.value, Env({"y": Y, "w": w}, {}, {"N": len(Y)}))
        h = 1e-5
        assert got == pytest.approx((log_joint(w + h) - log_joint(w - h)) / (2 * h), rel=1e-6, abs=1e-8)
