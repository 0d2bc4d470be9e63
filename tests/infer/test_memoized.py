"""Memoized VI (Hughes & Sudderth 2013): exact coordinate steps on chunks of the data.

Checked against batch CAVI (ppvi.infer.cavi), which is checked against the textbook elsewhere: every
memoized step is a coordinate update of the same ELBO, so the ELBO never decreases, one chunk is the batch
sweep itself, and the batch fixed point is a fixed point of memoized VI."""

from pathlib import Path

import numpy as np
import pytest

import ppvi
from ppvi.api import Memoized
from ppvi.codegen.cache import fixed_sizes, load as load_module
from ppvi.infer.cavi import fit
from ppvi.infer.program import Program
from ppvi.io.data import bind, check_dims, source_of

MODELS = Path(__file__).resolve().parents[2] / "models"


def program(name: str, data=None) -> Program:
    m = ppvi.load(str(MODELS / f"{name}.ppvi")).checked
    bound = bind(m, source_of(data, m), check_dims(m, {}, "fit", "{name}={value!r}"))
    return Program.build(m, load_module(m, fixed=fixed_sizes(m, bound.sizes))[0], bound)


@pytest.fixture(scope="module")
def faithful():
    return {"x": np.loadtxt(MODELS / "gmm.csv", delimiter=",", skiprows=1)[:150]}


@pytest.fixture(scope="module")
def corpus():
    with np.load(MODELS / "lda.npz") as f:
        keep = f["doc"] < 40
        return {"doc": f["doc"][keep], "word": f["word"][keep]}


def q_state(p: Program) -> dict:
    return {k: v.copy() for k, v in p.state.items() if k.startswith("q_")}


def test_every_memoized_step_raises_the_elbo(faithful, corpus):
    for name, data in (("gmm", faithful), ("lda", corpus)):
        steps = []
        done = fit(program(name, data), seed=3, max_iter=6, tol=0,
                   runner=Memoized(chunks=4).runner(on_step=lambda it, c, elbo: steps.append(elbo)))
        assert len(steps) == 6 * 4 and done.iterations == 6
        rise = np.diff(steps)
        assert np.all(rise >= -1e-9 * np.abs(steps[1:])), (name, rise.min())
        assert steps[-1] > steps[0] + 1.0          # (and it moves)


def test_one_chunk_is_the_batch_sweep(faithful):
    batch = fit(program("gmm", faithful), seed=2, max_iter=5, tol=0)
    p = program("gmm", faithful)
    memo = fit(p, seed=2, max_iter=5, tol=0, runner=Memoized(chunks=1).runner())
    np.testing.assert_allclose(memo.trace, batch.trace, rtol=1e-12)
    for k, v in q_state(batch.program).items():
        np.testing.assert_allclose(p.state[k], v, rtol=1e-12, atol=1e-12)


def test_gmm_reaches_the_batch_optimum(faithful):
    batch = fit(program("gmm", faithful), seed=1, max_iter=2000, tol=1e-12)
    p = program("gmm", faithful)
    memo = fit(p, seed=1, max_iter=2000, tol=1e-12, runner=Memoized(chunks=5).runner())
    assert batch.converged and memo.converged
    assert memo.elbo == pytest.approx(batch.elbo, rel=1e-9)
    assert memo.iterations < batch.iterations      # (the globals move five times a sweep)
    for k in ("q_mu__mean", "q_pi__alpha", "q_Lambda__scale"):
        np.testing.assert_allclose(p.state[k], batch.program.state[k], rtol=1e-4, atol=1e-6)


def test_lda_batch_fixed_point_is_a_memoized_fixed_point(corpus):
    """LDA has many local optima (another path may end at another): from batch CAVI's converged q, memoized
    steps on chunks stay there."""
    from ppvi.infer.warm import Start
    from ppvi.io.results import from_fit

    batch = fit(program("lda", corpus), seed=0, max_iter=3000, tol=1e-11)
    assert batch.converged
    start = Start.of(from_fit(batch))
    p = program("lda", corpus)
    memo = fit(p, seed=0, max_iter=3, tol=0, start=start, runner=Memoized(chunks=3).runner())
    assert memo.elbo == pytest.approx(batch.elbo, rel=1e-8)
    # (the block's E-step stops at a relative change of 1e-4: q(φ) is flat to about that along a slow mode)
    np.testing.assert_allclose(p.state["q_phi__alpha"], batch.program.state["q_phi__alpha"], rtol=2e-3)


def test_chunks_of_interleaved_documents_are_gathered_and_written_back(corpus):
    """Tokens in another order (documents interleaved: a chunk's tokens are not one run, so its arrays are
    gathered copies written back after each step) give the same fit, token by token."""
    perm = np.random.default_rng(0).permutation(len(corpus["doc"]))
    shuffled = {k: np.ascontiguousarray(v[perm]) for k, v in corpus.items()}
    a, b = program("lda", corpus), program("lda", shuffled)
    runner = Memoized(chunks=3).runner()
    from ppvi.infer.warm import Start

    rng = np.random.default_rng(1)
    phi = rng.gamma(100.0, 0.01, (4, a.sizes["V"]))
    z = rng.dirichlet(np.ones(4), len(perm))      # (the same start token by token: no random draw differs)
    fa = fit(a, max_iter=4, tol=0, runner=runner, start=Start(
        {"phi": {"family": "Dirichlet", "alpha": phi}, "z": {"family": "Categorical", "p": z}}, {}, "<test>"))
    fb = fit(b, max_iter=4, tol=0, runner=runner, start=Start(
        {"phi": {"family": "Dirichlet", "alpha": phi}, "z": {"family": "Categorical", "p": z[perm]}}, {}, "<test>"))
    np.testing.assert_allclose(fb.trace, fa.trace, rtol=1e-9)
    np.testing.assert_allclose(b.state["q_z__p"], a.state["q_z__p"][perm], atol=1e-8)
    np.testing.assert_allclose(b.state["q_theta__alpha"], a.state["q_theta__alpha"], rtol=1e-8)


def test_the_api_records_memoized_vi(faithful):
    r = ppvi.load(str(MODELS / "gmm.ppvi")).fit(faithful, algorithm=Memoized(chunks=3), max_iter=3, tol=0)
    assert r.provenance.algorithm == {"name": "memoized", "chunks": 3}
    assert r.provenance.schedule == "memoized" and r.iterations == 3
    with pytest.raises(ppvi.PPVIError, match="chunks is a whole number"):
        ppvi.load(str(MODELS / "gmm.ppvi")).fit(faithful, algorithm=Memoized(chunks=0))


def test_a_model_without_a_data_plate_is_refused(tmp_path):
    path = tmp_path / "one.ppvi"
    path.write_text("model one\ndata y\nmu ~ Normal(0, 1)\ny ~ Normal(mu, 1)\n")
    for algorithm in ("memoized", ppvi.api.SVI(batch=1)):
        with pytest.raises(ppvi.PPVIError, match="no data plate"):
            ppvi.load(str(path)).fit({"y": 0.5}, algorithm=algorithm)
