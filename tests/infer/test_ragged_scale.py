"""Memoized and stochastic VI over ragged sequences in long format (models/sequences/ragged_hmm.ppvi: 8 sequences
of different lengths, 150 steps, a chain riding on `seq[t]`; issue 20).  Each chunk is whole sequences.

Checked against mathematics, not against ppvi's own sums: the statistics written out here in NumPy from the
local q (the first steps' Σ r[t], the pairs Σ ξ[t] of steps inside a sequence, the emissions' sums), each chain's
entropy from its marginals and pairwise marginals (exact for a Markov chain), and batch CAVI's fixed point and
sweeps (batch CAVI on this model is checked against hmmlearn in tests/infer/test_ragged.py).  The generated
kernels run as plain Python (no model compiled here: the runtime's forward–backward stays compiled)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest

from conftest import MODELS
from infer.test_chain_scale import assert_svi_is_batch_sweeps, plain_programs
from ppvi.api import SVI
from ppvi.infer import memoized
from ppvi.infer.cavi import fit
from ppvi.infer.program import Program

RAGGED = MODELS / "sequences" / "ragged_hmm.ppvi"


@pytest.fixture(scope="module")
def program():
    """A fresh Program of ragged_hmm bound to its data at each call, its kernels run as plain Python."""
    table = np.genfromtxt(RAGGED.with_suffix(".csv"), delimiter=",", names=True)
    return plain_programs(RAGGED, {"seq": table["seq"].astype(np.int64), "x": table["x"]})


def first_steps(seq: np.ndarray) -> np.ndarray:
    return np.r_[True, seq[1:] != seq[:-1]]


def fresh_statistics(p: Program) -> dict[str, np.ndarray]:
    """The sums a fresh pass over every sequence gives from the current local q, written out in NumPy."""
    r, xi, x = p.state["q_z__p"], p.state["m_z__pair"], p.state["v_x"] - p.state["c_shift__x"][0]
    first = first_steps(p.state["v_seq"])
    return {"r0": r[first].sum(0), "pairs": xi[~first].sum(0), "counts": r.sum(0),
            "sx": x @ r, "sxx": (x * x) @ r}


def kept_statistics(p: Program) -> dict[str, np.ndarray]:
    """The same sums as the fit keeps them (the generated module's statistics arrays, by what they sum)."""
    s = p.state
    return {"r0": s["t_0"], "pairs": s["t_1"], "sx": s["t_2"], "counts": s["t_3"], "sxx": s["t_4"]}


def chain_entropy(seq: np.ndarray, r: np.ndarray, xi: np.ndarray) -> float:
    """H[q(z)] of every sequence's Markov chain: H[q(z_first)] + Σ_t (H[q(z_{t-1}, z_t)] − H[q(z_{t-1})])."""
    h = lambda p: -np.sum(p * np.log(np.where(p > 0, p, 1.0)))     # noqa: E731
    first = first_steps(seq)
    inside = np.flatnonzero(~first)
    return float(h(r[first]) + h(xi[inside]) - h(r[inside - 1]))


def assert_fresh(p: Program, where: str) -> None:
    kept, fresh = kept_statistics(p), fresh_statistics(p)
    for k in fresh:
        np.testing.assert_allclose(kept[k], fresh[k], rtol=1e-12, atol=1e-12, err_msg=f"{k} {where}")
    assert p.entropy("z") == pytest.approx(chain_entropy(p.state["v_seq"], p.state["q_z__p"], p.state["m_z__pair"]),
                                           rel=1e-10), where


def monotone_memoized(p: Program, chunks: int, check: Callable[[int, int, str], None]):
    """Memoized VI on ``p`` in ``chunks`` chunks to tol 1e-12, ``check(sweep, chunk, where)`` after each step of
    the first two sweeps; it converges and never lowers the ELBO.  -> its Fit."""
    steps: list[float] = []

    def step(sweep: int, chunk: int, elbo: float) -> None:
        if sweep < 3:
            check(sweep, chunk, f"{chunks} chunks: sweep {sweep}, chunk {chunk}")
        steps.append(elbo)

    r = memoized.run(p, np.random.default_rng(0), chunks, 500, 1e-12, on_step=step)
    assert r.converged and np.all(np.diff(steps) >= -1e-9 * np.abs(steps[1:]))
    return r


def test_memoized_vi_over_ragged_sequences_reaches_batch_cavis_fixed_point(program):
    """Chunks of whole sequences (2 and 3): every step keeps the statistics and the chains' entropy a fresh
    pass's (before: refused; with the refusal lifted alone, a chunk's first sequence's first step fell out of
    q(pi)'s statistic and the sequences' numbers weighed the transitions), the ELBO never decreases, and the
    fit ends at batch CAVI's fixed point."""
    batch = fit(program(), seed=0, max_iter=500, tol=1e-12)
    for chunks in (2, 3):
        p = program()
        r = monotone_memoized(p, chunks, lambda sweep, chunk, where: assert_fresh(p, where))
        assert r.elbo == pytest.approx(batch.elbo, rel=1e-8)
        for k in ("q_mu__mean", "q_tau__shape", "q_tau__rate"):
            np.testing.assert_allclose(np.sort(p.state[k]), np.sort(batch.program.state[k]), rtol=1e-5)
        assert_fresh(p, f"{chunks} chunks, at the end")


def test_svi_kappa_zero_with_one_batch_is_batch_cavi_sweep_by_sweep_on_ragged_sequences(program):
    """ρ = 1 and one minibatch of all 8 sequences: P steps and the final local pass are P batch sweeps."""
    assert_svi_is_batch_sweeps(program, 8)


def test_svi_in_minibatches_of_ragged_sequences_keeps_the_statistics_fresh(program):
    """Minibatches of 3 of the 8 sequences (shuffled): the final local pass leaves the fit's statistics, the
    chains' entropy and its ELBO those of a fresh pass over every sequence."""
    from ppvi.infer import svi

    p = program()
    done = svi.run(p, np.random.default_rng(0), SVI(batch=3, passes=2))
    assert_fresh(p, "after SVI")
    assert done.elbo == p.elbo()


def test_ragged_sequences_read_in_chunks_are_refused(capsys, tmp_path):
    """Data read in chunks find a chunk's rows by the units' count, not yet by `seq` (the fit was wrong before:
    memoized VI lowered its ELBO): refused before any kernel runs, naming what works."""
    from conftest import run_cli

    table = np.genfromtxt(RAGGED.with_suffix(".csv"), delimiter=",", names=True)
    np.save(tmp_path / "seq.npy", table["seq"].astype(np.int64))
    np.save(tmp_path / "x.npy", table["x"])
    code, _, err = run_cli(["run", str(RAGGED), "--memoized", "--chunks", "2", "--data", str(tmp_path),
                            "--chunk-size", "2", "--quiet"], capsys)
    assert code == 2 and "Traceback" not in err, err
    assert "ragged_hmm.ppvi: error: memoized and stochastic VI split `ragged_hmm`'s sequences in long format " \
        "(riding on `seq`) into chunks in this process only, not yet with data read in chunks" in err, err


def test_ragged_sequences_on_the_dask_engine_are_refused(program):
    """The Dask engine's partitions are the same units in process (ppvi.infer.dask_engine._setup calls this)."""
    from ppvi.errors import PPVIError
    from ppvi.infer.chunks import Layout, refuse_ragged

    p = program()
    with pytest.raises(PPVIError, match="into chunks in this process only, not yet on the Dask engine"):
        refuse_ragged(p, Layout.of(p), "on the Dask engine")
