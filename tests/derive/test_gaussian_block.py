"""`approximate z jointly` on Normal elements that form no chain (a Gaussian block): `ppvi derive` shows one
MvNormal q per point over the last axis, with the full precision; what it cannot be is refused at a position.
(Fits: tests/codegen/test_gaussian_block_kernels.py, tests/infer/test_gaussian_block.py.)"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli
from reference import update
from ppvi.derive import derive
from ppvi.derive.numeric import Env
from ppvi.language import loads

FA = """\
dim N, D
dim M = 2
data x[N, D]
data W[D, M]
data psi[D]
for n in N:
    for m in M:
        z[n, m] ~ Normal(0, 1)
    for d in D:
        x[n, d] ~ Normal(sum(m in M: W[d, m] * z[n, m]), precision = psi[d])
approximate z jointly
"""

REGRESSION = """\
dim N
dim P = 3
data X[N, P]
data y[N]
const s[P] = [1.0, 2.0, 0.5]
for j in P:
    beta[j] ~ Normal(0, sd = s[j])
for n in N:
    y[n] ~ Normal(sum(j in P: X[n, j] * beta[j]), precision = 4.0)
approximate beta jointly
"""


def _model(tmp_path, text):
    p = tmp_path / "m.ppvi"
    p.write_text(text)
    return p


def test_derive_shows_one_gaussian_per_point(tmp_path, capsys):
    path = _model(tmp_path, FA)
    code, out, err = run_cli(["derive", path], capsys)
    assert code == 0, err
    assert "q(z[n]) = MvNormal    [local, for n in N]  (event axes m)" in out
    assert "one Gaussian block per point    [approximate z jointly" in out
    code, out, err = run_cli(["derive", path, "--format", "json"], capsys)
    z = json.loads(out)["q"]["z"]
    assert code == 0 and z["family"] == "MvNormal" and z["structured"] is True and z["index"] == ["n"]


def test_regression_coefficients_as_one_block_are_the_exact_posterior():
    """Bayesian linear regression (PRML 3.53–3.54): q(β) = N(S τ Xᵀy, S), S = (diag(1/s²) + τ XᵀX)⁻¹, one update of
    the derived η by the reference evaluator."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    d = derive(loads(REGRESSION, "<regression>"))
    assert d.q["beta"].family == "MvNormal" and d.q["beta"].index == ()
    env = Env({"X": X, "y": y, "s": [1.0, 2.0, 0.5]}, {}, {"N": 20, "P": 3})
    update(d, "beta", env)
    S = np.linalg.inv(np.diag(1 / np.array([1.0, 2.0, 0.5]) ** 2) + 4.0 * X.T @ X)
    np.testing.assert_allclose(env.arrays["cov(beta)"], S, rtol=0, atol=1e-12)
    np.testing.assert_allclose(env.arrays["mean(beta)"], S @ (4.0 * X.T @ y), rtol=0, atol=1e-12)


# (Named REFUSED_…: the differential harness takes every model text of the suite that checks as a case, and
# these must be refused by derive, not fitted.)
REFUSED_ALONG_THE_DATA_PLATE = ("dim N\ndata x[N]\nfor n in N:\n    z[n] ~ Normal(0, 1)\n"
                                "    x[n] ~ Normal(z[n], precision = 2.0)\napproximate z jointly\n")
REFUSED_INSIDE_AN_EXP_LINK = ("dim N\ndim M = 2\ndata W[M]\ndata y[N] : count\nfor n in N:\n    for m in M:\n"
                              "        z[n, m] ~ Normal(0, 1)\n"
                              "    y[n] ~ Poisson(exp(sum(m in M: W[m] * z[n, m])))\napproximate z jointly\n")
REFUSED_LAPLACE_ELEMENTS = ("dim N\ndim M = 2\ndata x[N, M]\nfor n in N:\n    for m in M:\n"
                            "        z[n, m] ~ Laplace(0, 1)\n"
                            "        x[n, m] ~ Normal(z[n, m], precision = 2.0)\napproximate z jointly\n")


@pytest.mark.parametrize("text, where, message", [
    (REFUSED_ALONG_THE_DATA_PLATE, ":4:5:", "cannot derive the joint q of `z` along the data plate `N` yet"),
    (REFUSED_INSIDE_AN_EXP_LINK, ":8:20:",
     "`z` is inside the exp of this link, and `approximate z jointly` makes its q an MvNormal per point"),
    (REFUSED_LAPLACE_ELEMENTS, ":8:13:",
     "`z` is neither a chain nor a block of Normal elements"),
], ids=["data_plate", "exp_link", "laplace"])
def test_blocks_outside_what_is_derived_are_refused(tmp_path, capsys, text, where, message):
    code, _, err = run_cli(["derive", _model(tmp_path, text)], capsys)
    assert code == 2 and f"m.ppvi{where} error: " in err and message in err and "Traceback" not in err, err
