"""A Categorical chain compiled (issue 18): the generated kernels against the reference evaluator.

The reference (``ppvi.derive.chain.update_block`` for the chain, tests/derive/reference.py for every other q)
evaluates the derived expressions one number at a time; the compiled program must take the same steps from the
same state: every moment and the ELBO equal to 1e-10 after each update of a few sweeps, under the mean field
(one sweep of Πₜ q(zₜ) per update) and with ``approximate z jointly`` (forward–backward).  The statistics the
globals read include Σ_{t≥1} ξₜ, a sum over part of the data plate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ppvi.derive import derive
from ppvi.derive.chain import update_block
from ppvi.derive.numeric import Env
from ppvi.language import load, loads

from codegen.programs import program      # noqa: E402  (tests/codegen/programs.py)
from derive import reference              # noqa: E402  (tests/derive/reference.py)
from infer.test_chains import BAYES, sample_hmm   # noqa: E402

HMM = Path(__file__).resolve().parents[2] / "models" / "sequences" / "hmm.ppvi"
SWEEPS = 4


def _data(T: int = 80, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return sample_hmm(rng, T, np.array([0.6, 0.4]), np.array([[0.9, 0.1], [0.2, 0.8]]),
                      np.array([-1.5, 1.5]), np.array([1.0, 0.6]))


def _moment(p, var: str, stat: str) -> np.ndarray:
    """The program's array of a moment (under its owner's name: ⟨[zₜ = k]⟩ is q(z)'s p)."""
    name = f"m_{var}__{stat}"
    return p.state[p.plan["latents"][var]["aliases"].get(name, name)]


def _lockstep(model, x: np.ndarray):
    """The compiled program and the reference run side by side from the program's start: per update, the
    largest difference of any moment; per sweep, both ELBOs."""
    p = program(model, {"x": x}, e_step=True)
    d = derive(model)
    env = Env({"x": x, "a0": np.ones(2)}, {}, {"T": len(x), "K": 2})
    for (var, stat) in d.syms.moments:
        value = _moment(p, var, stat)
        env.moments[(var, stat)] = value.copy().reshape(value.shape if value.size > 1 else ())
    gaps, elbos = [], []
    for _ in range(SWEEPS):
        for var in p.schedule():
            p.update(var)
            if var in d.blocks:
                update_block(d.blocks[var], env)
            else:
                reference.update(d, var, env)
            for (v, stat) in d.syms.moments:
                want = env.moments[(v, stat)]
                gaps.append(float(np.max(np.abs(_moment(p, v, stat).reshape(np.shape(want)) - want))))
        elbos.append((p.elbo(), reference.elbo(d, env)))
    return p, np.array(gaps), np.array(elbos)


@pytest.fixture(scope="module")
def mean_field():
    return _lockstep(loads(BAYES, "<bayes_hmm>"), _data())


@pytest.fixture(scope="module")
def jointly():
    return _lockstep(load(str(HMM)), _data(seed=5))


@pytest.mark.parametrize("which", ["mean_field", "jointly"])
def test_compiled_equals_reference(which, request):
    p, gaps, elbos = request.getfixturevalue(which)
    assert gaps.max() < 1e-10, gaps.max()
    np.testing.assert_allclose(elbos[:, 0], elbos[:, 1], rtol=0, atol=1e-10)


@pytest.mark.parametrize("which", ["mean_field", "jointly"])
def test_elbo_monotone(which, request):
    p, _, elbos = request.getfixturevalue(which)
    trace = [elbos[-1, 0]]
    for _ in range(20):
        for var in p.schedule():
            p.update(var)
        trace.append(p.elbo())
    trace = np.concatenate([elbos[:, 0], trace])
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:])), np.diff(trace).min()


def test_marginals_and_pairs_are_consistent(jointly):
    """The block's ξ sums to its marginals r along either axis (forward–backward, not a product)."""
    p = jointly[0]
    r, xi = p.state["q_z__p"], p.state["m_z__pair"]
    np.testing.assert_allclose(xi[1:].sum(axis=2), r[:-1], atol=1e-12)
    np.testing.assert_allclose(xi[1:].sum(axis=1), r[1:], atol=1e-12)
    assert np.isfinite(p.state["l_z"][0])
