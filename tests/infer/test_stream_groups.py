"""Streamed fits of a model with a group block (LDA: documents' E-steps) against the same fits in memory.

The in-memory LDA fits are checked against the mathematics elsewhere (tests/infer/test_exact.py,
test_memoized.py, test_svi.py); read in chunks of whole documents, a fit takes the same steps from the same
statistics and the same kept local q, so the ELBO trace and every q agree up to the rounding of the sums
(relative 1e-12).  The rows must be sorted by document: unsorted ones are refused at the first row that goes
back.  Memory: a corpus of 10⁶ tokens read in chunks allocates far less than its data (tracemalloc)."""

import errno
import os
from pathlib import Path

import numpy as np
import pytest

import ppvi
from ppvi.api import SVI, Memoized
from ppvi.errors import PPVIError
from conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"


@pytest.fixture(scope="module")
def lda():
    return ppvi.load(str(MODELS / "lda.ppvi"))


@pytest.fixture(scope="module")
def corpus():
    """models/lda.npz with documents 7 and 21..23 left without tokens (a chunk of 3 documents without a row)."""
    d = dict(np.load(MODELS / "lda.npz"))
    keep = ~np.isin(d["doc"], [7, 21, 22, 23])
    return {k: v[keep] for k, v in d.items()}


@pytest.fixture(scope="module")
def npy_dir(tmp_path_factory, corpus):
    d = tmp_path_factory.mktemp("lda")
    for name, a in corpus.items():
        np.save(d / f"{name}.npy", a)
    return d


@pytest.fixture(scope="module")
def start(lda, corpus):
    """A start holding the global q(φ) only: q(θ) and q(z) then come from an E-step, in memory and streamed."""
    r = lda.fit(corpus, max_iter=2, tol=0, progress=False).to_dict()
    del r["q"]["z"], r["q"]["theta"]
    return r


def same(memory, streamed, q_atol=1e-10):
    assert memory.iterations == streamed.iterations
    np.testing.assert_allclose(streamed.elbo_trace, memory.elbo_trace, rtol=1e-12)
    for var in ("theta", "phi", "z"):
        for p, value in memory.q[var].params.items():
            np.testing.assert_allclose(streamed.q[var][p], value, rtol=0, atol=q_atol, err_msg=f"q({var}) {p}")


def test_batch_cavi_streamed_equals_in_memory(lda, corpus, npy_dir, start):
    memory = lda.fit(corpus, init=start, max_iter=6, tol=0, progress=False)
    # (chunks of 3 documents: 21..23 is a chunk without a token)
    streamed = lda.fit(str(npy_dir), init=start, max_iter=6, tol=0, progress=False, chunk_size=3)
    same(memory, streamed)
    assert streamed.provenance.schedule == "streamed"
    assert streamed.q["theta"]["alpha"].shape == (100, 4) and streamed.q["z"]["p"].shape == (len(corpus["doc"]), 4)


def test_memoized_streamed_equals_in_memory(lda, corpus, npy_dir, start):
    """Kept local q: the streamed result's q(θ), q(z) are each chunk's last step's, as in memory."""
    memory = lda.fit(corpus, init=start, max_iter=4, tol=0, progress=False, algorithm=Memoized(3))
    streamed = lda.fit(str(npy_dir), init=start, max_iter=4, tol=0, progress=False, algorithm=Memoized(3),
                       chunk_size=16)
    same(memory, streamed)


def test_svi_streamed_equals_in_memory(lda, corpus, npy_dir, start):
    settings = SVI(batch=16, kappa=0.7, tau=1.0, passes=2, shuffle=False)
    memory = lda.fit(corpus, init=start, progress=False, algorithm=settings)
    streamed = lda.fit(str(npy_dir), init=start, progress=False, algorithm=settings, chunk_size=7)
    same(memory, streamed)
    assert streamed.elbo == pytest.approx(memory.elbo, rel=1e-12)


@pytest.mark.parametrize("algorithm", [None, pytest.param(Memoized(3), marks=pytest.mark.long)])
def test_a_random_start_streamed_equals_the_in_memory_one(lda, corpus, npy_dir, algorithm):
    """No start given, a seed: every token's q(z) is drawn chunk by chunk where the in-memory start draws it, and
    the start is not informed, so the first sweep's global step reads the drawn q(z) of every token, as in memory
    (it read the first chunk's: sweep 1 at −14778 streamed, −15383 in memory)."""
    memory = lda.fit(corpus, max_iter=3, tol=0, progress=False, seed=5, algorithm=algorithm)
    streamed = lda.fit(str(npy_dir), max_iter=3, tol=0, progress=False, seed=5, algorithm=algorithm, chunk_size=16)
    same(memory, streamed)


@pytest.mark.parametrize("algorithm", [None, pytest.param(Memoized(3), marks=pytest.mark.long)])
def test_restarts_keep_the_best_restarts_own_local_q(lda, corpus, npy_dir, algorithm, tmp_path):
    """--restarts 3 with kept local q: each restart starts from its own draws (the in-memory restart's: a
    restart that read the previous one's kept q(θ), q(z) would end elsewhere) and the best restart's q, local
    ones included, are the result's — its own, not the last restart's stepped once more under its globals (as
    they were), in ``local_dir`` with nothing left beside it."""
    memory = lda.fit(corpus, max_iter=3, tol=0, progress=False, seed=4, restarts=3, algorithm=algorithm)
    streamed = lda.fit(str(npy_dir), max_iter=3, tol=0, progress=False, seed=4, restarts=3, algorithm=algorithm,
                       chunk_size=16, local_dir=str(tmp_path / "local"))
    np.testing.assert_allclose(streamed.fit.restart_elbos, memory.fit.restart_elbos, rtol=1e-12)
    assert streamed.restart == memory.restart != 2        # (the best is not the last)
    same(memory, streamed)
    assert os.listdir(tmp_path) == ["local"]
    np.testing.assert_array_equal(np.load(tmp_path / "local" / "q_z__p.npy"), streamed.q["z"]["p"])


def test_restarts_keep_local_q_in_a_folder_not_made_yet(lda, npy_dir, tmp_path):
    """``local_dir`` inside folders that do not exist yet, with restarts (a FileNotFoundError before: the
    restarts' stores are made beside it, and only a single start made its folders)."""
    out = tmp_path / "new" / "run" / "local"
    r = lda.fit(str(npy_dir), max_iter=1, tol=0, progress=False, seed=4, restarts=2, chunk_size=40,
                local_dir=str(out))
    np.testing.assert_array_equal(np.load(out / "q_z__p.npy"), r.q["z"]["p"])
    assert os.listdir(out.parent) == ["local"]


@pytest.mark.parametrize("where", ["scratch", "local_dir"])
def test_a_restart_that_raises_leaves_no_scratch_store(lda, npy_dir, tmp_path, monkeypatch, where):
    """A failure in restart 2 (a full disk in its start's local pass; a data error alike; Ctrl-C there ends the
    restarts, keeping the best) removes every store of kept local q the fit made: the best start's so far and the
    current start's (both were left behind, in the temporary folder or beside ``local_dir``)."""
    import tempfile

    from ppvi.infer.streamed import Streamer

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    calls, local_pass = [], Streamer.local_pass

    def failing(self, a, b, store=None, **kw):
        calls.append((a, b))
        if len(calls) == 3:         # (restart 1: its start's pass and one sweep's; then restart 2's start)
            raise OSError(errno.ENOSPC, "No space left on device")
        return local_pass(self, a, b, store, **kw)
    monkeypatch.setattr(Streamer, "local_pass", failing)
    beside = tmp_path / "out"
    local_dir = {"scratch": None, "local_dir": str(beside / "r.local")}[where]
    with pytest.raises(OSError):
        lda.fit(str(npy_dir), max_iter=1, tol=0, progress=False, seed=4, restarts=3, chunk_size=40,
                local_dir=local_dir)
    assert len(calls) >= 3 and os.listdir(scratch) == []
    assert not beside.exists() or [f for f in os.listdir(beside) if f.startswith("ppvi-")] == []


def test_parquet_row_groups_cut_documents(lda, corpus, start, tmp_path):
    """Row groups of 100 tokens end inside documents; the chunks still hold whole documents (and 21..23 none)."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table(corpus), tmp_path / "c.parquet", row_group_size=100)
    memory = lda.fit(corpus, init=start, max_iter=3, tol=0, progress=False)
    same(memory, lda.fit(str(tmp_path / "c.parquet"), init=start, max_iter=3, tol=0, progress=False, chunk_size=3))


def test_local_q_beside_the_result(lda, npy_dir, tmp_path):
    out = tmp_path / "local"
    r = lda.fit(str(npy_dir), max_iter=2, tol=0, progress=False, chunk_size=40, local_dir=str(out))
    assert sorted(os.listdir(out)) == ["q_theta__alpha.npy", "q_z__p.npy"]
    np.testing.assert_array_equal(np.load(out / "q_z__p.npy"), r.q["z"]["p"])
    np.testing.assert_allclose(r.q["z"]["p"].sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(np.load(out / "q_theta__alpha.npy"), r.q["theta"]["alpha"])


def test_unsorted_documents_are_refused_at_the_row(lda, corpus, tmp_path, capsys):
    doc = corpus["doc"].copy()
    at = int(np.flatnonzero(doc == 60)[0])      # (doc 60's first token moved before doc 59's last)
    doc[at - 1], doc[at] = doc[at], doc[at - 1]
    d = tmp_path / "unsorted"
    d.mkdir()
    np.save(d / "doc.npy", doc)
    np.save(d / "word.npy", corpus["word"])
    with pytest.raises(PPVIError) as e:
        lda.fit(str(d), chunk_size=10, progress=False)
    message = str(e.value)
    assert message.startswith(f"{d / 'doc.npy'}: error: `doc[{at}]` = 59 comes after `doc[{at - 1}]` = 60")
    assert "numpy.argsort(doc" in message
    code, _, err = run_cli(["run", MODELS / "lda.ppvi", "--data", d, "--chunk-size", 10, "--out",
                            tmp_path / "r.json"], capsys)
    assert code == 2 and f"`doc[{at}]` = 59 comes after" in err and "Traceback" not in err


def _write_corpus(d: Path, docs: int, words: int = 50, length: int = 50) -> int:
    """A corpus of ``docs`` documents of ``length`` tokens drawn from 4 topics, written a block at a time."""
    rng = np.random.default_rng(0)
    topics = rng.dirichlet(np.full(words, 0.1), size=4)
    tokens = docs * length
    files = {}
    for name in ("doc", "word"):
        fh = open(d / f"{name}.npy", "wb")
        np.lib.format.write_array_header_1_0(fh, {"descr": "<i8", "fortran_order": False, "shape": (tokens,)})
        files[name] = fh
    block = 1 << 12
    for a in range(0, docs, block):
        n = min(block, docs - a)
        theta = rng.dirichlet(np.full(4, 0.5), size=n)
        z = (rng.random((n, length, 1)) > np.cumsum(theta, axis=1)[:, None, :]).sum(axis=2).clip(0, 3)
        cdf = np.cumsum(topics[z], axis=2)
        word = (rng.random((n, length, 1)) > cdf).sum(axis=2).clip(0, words - 1)
        files["doc"].write(np.repeat(np.arange(a, a + n), length).astype("<i8").tobytes())
        files["word"].write(word.astype("<i8").tobytes())
    for fh in files.values():
        fh.close()
    return tokens


def test_a_million_tokens_allocate_far_less_than_their_data(lda, npy_dir, tmp_path):
    """Every allocation NumPy makes, traced: a fit of 16 MB of data (in memory q(z) alone would take 32 MB more)
    peaks near two chunks' arrays (the pilot's, which started the fit, and the one being read: about 140 bytes a
    token each, 5000 tokens here) plus the global state."""
    import tracemalloc

    d = tmp_path / "big"
    d.mkdir()
    size = 16 * _write_corpus(d, 20_000)
    lda.fit(str(npy_dir), max_iter=1, tol=0, progress=False, chunk_size=50)     # (compiled before, not traced)
    tracemalloc.start()
    try:
        r = lda.fit(str(d), max_iter=1, tol=0, progress=False, chunk_size=100)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert r.q["z"]["p"].shape == (size // 16, 4) and np.isfinite(r.elbo)
    assert peak < size / 8, f"peak {peak:,} bytes allocated for {size:,} bytes of data"
