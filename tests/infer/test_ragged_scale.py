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

import ppvi
from conftest import MODELS
from infer.test_chain_scale import assert_svi_is_batch_sweeps, plain_module, plain_programs
from ppvi.api import SVI, Memoized
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


def test_svi_bound_of_every_sequence_is_the_elbo_less_the_globals_terms(program):
    """A minibatch's bound is its units' share of the ELBO (docs/scale.md, "Stochastic VI"): for one minibatch of
    all 8 sequences, times 8, the ELBO less the globals' prior terms and entropies (pi, A, mu, tau: factors 0-3,
    named here from the model's text, not from what ppvi counts as a unit's).  The first steps' statement
    (`for t in T[:1] by seq:`) has no plate of its own, and was counted as a global's: the bound left out every
    first step's term (the bound was 5.72 too high here), and streamed and Dask ELBOs took it from one chunk (or
    none) only."""
    from ppvi.infer.chunks import Chunk, Layout, add_statistics

    p = program()
    fit(p, seed=0, max_iter=3, tol=0)
    layout = Layout.of(p)
    every = Chunk(p, layout, np.arange(8))
    every.local_step()                       # (as an SVI step takes it: the chain's entropy is the step's sum)
    bound = every.bound()
    add_statistics(p, layout, [every])       # (the whole program's statistics and entropy: the minibatch's)
    globals_ = [f.id for f in p.model.factors if f.target in ("pi", "A", "mu", "tau")]
    assert globals_ == [0, 1, 2, 3]
    outside = float(np.sum(np.asarray(p.expected_terms())[globals_])) + sum(p.entropy(v) for v in ("pi", "A", "mu",
                                                                                                     "tau"))
    assert p.entropy("z") > 1.0 and bound == pytest.approx(p.elbo() - outside, rel=1e-12)


# ------------------------------------------------------------------ data read in chunks (ppvi.infer.streamed)
@pytest.fixture(scope="module")
def table():
    t = np.genfromtxt(RAGGED.with_suffix(".csv"), delimiter=",", names=True)
    return {"seq": t["seq"].astype(np.int64), "x": t["x"]}


@pytest.fixture(scope="module")
def written(table, tmp_path_factory):
    """ragged_hmm's data as a directory of .npy files and as Parquet in row groups of 16 rows (which cut
    sequences: the reader's chunks are its own, not the sequences')."""
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    d = tmp_path_factory.mktemp("ragged")
    (d / "npy").mkdir()
    for k, v in table.items():
        np.save(d / "npy" / f"{k}.npy", v)
    pq.write_table(pa.table(table), d / "r.parquet", row_group_size=16)
    return {"npy": str(d / "npy"), "parquet": str(d / "r.parquet")}


@pytest.fixture
def plain(monkeypatch):
    """Every fit's kernels as plain Python (as tests/infer/test_stream_start.py's): no model compiled here."""
    import ppvi.codegen.cache as cache

    load = cache.load
    monkeypatch.setattr(cache, "load", lambda *a, **k: (lambda m, warm: (plain_module(m), warm))(*load(*a, **k)))
    with np.errstate(all="ignore"):
        yield


def assert_same(memory, streamed, local: bool = True) -> None:
    """The ELBO trace and every global q (and, ``local``, q(z)) to 1e-12 relative (q: to its largest entry)."""
    np.testing.assert_allclose(streamed.elbo_trace, memory.elbo_trace, rtol=1e-12)
    assert streamed.elbo == pytest.approx(memory.elbo, rel=1e-12)
    for var in ("pi", "A", "mu", "tau", "z") if local else ("pi", "A", "mu", "tau"):
        for p, value in memory.q[var].params.items():
            np.testing.assert_allclose(streamed.q[var][p], value, rtol=0, atol=1e-12 * max(1.0, np.max(np.abs(value))),
                                       err_msg=f"q({var}) {p}")


@pytest.mark.parametrize("algorithm, kind, chunk", [
    (None, "npy", 3), (Memoized(3), "npy", 2), (Memoized(3), "parquet", 1),
    (SVI(batch=3, kappa=0.7, tau=1.0, passes=2, shuffle=False), "npy", 3)])
def test_ragged_sequences_read_in_chunks_are_the_in_memory_fit(table, written, plain, algorithm, kind, chunk):
    """Read in chunks of whole sequences (the chunk size counts sequences; each chunk's rows found from `seq`),
    from a seed, batch CAVI, memoized VI and SVI in the same minibatches (contiguous, in order) give the
    in-memory fit: the ELBO trace and q to 1e-12 (memoized VI's q(z) are one local pass newer,
    docs/scale.md "The local q").  Before: refused; with the refusal lifted alone, batch CAVI's ELBO was
    −217.10 against −221.18 in memory, memoized VI's −216.55 (the first steps' terms taken from the first
    chunk's sequences only), SVI's final ELBO −218.13 against −221.84."""
    model = ppvi.load(str(RAGGED))
    memory = model.fit(table, seed=0, max_iter=5, tol=0, progress=False, algorithm=algorithm)
    streamed = model.fit(written[kind], seed=0, max_iter=5, tol=0, progress=False, algorithm=algorithm,
                         chunk_size=chunk)
    assert streamed.provenance.algorithm["chunk_size"] == chunk
    assert_same(memory, streamed, local=not isinstance(algorithm, Memoized))


@pytest.mark.parametrize("kind, at, what", [("npy", 40, "comes back to an earlier sequence"),
                                            ("parquet", 16, "skips a sequence number")])
def test_unsorted_sequences_read_in_chunks_are_a_located_error(table, tmp_path, capsys, kind, at, what):
    """Read in chunks, a chunk holds whole sequences only if each is one run of rows numbered in order: checked as
    `seq` is read (a chunk of rows at a time: the Parquet case's fault lies across two row groups), before any
    kernel runs, at its row of the whole data, as the in-memory fit reports it."""
    from conftest import run_cli

    seq = table["seq"].copy()
    seq[at] = seq[at] - 1 if what.startswith("comes") else seq[at - 1] + 2
    if kind == "npy":
        np.save(tmp_path / "seq.npy", seq)
        np.save(tmp_path / "x.npy", table["x"])
        path, label = str(tmp_path), str(tmp_path / "seq.npy")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = label = str(tmp_path / "r.parquet")
        pq.write_table(pa.table({"seq": seq, "x": table["x"]}), path, row_group_size=16)
    code, _, err = run_cli(["run", str(RAGGED), "--memoized", "--data", path, "--chunk-size", "2", "--quiet"], capsys)
    assert code == 2 and "Traceback" not in err, err
    assert f"{label}: error: `seq[{at}]` = {seq[at]} after `seq[{at - 1}]` = {seq[at - 1]} {what}" in err, err
    assert "hint: sort the rows by sequence, then time" in err
