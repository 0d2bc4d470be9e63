"""The Dask engine (ppvi.infer.dask_engine) against the in-process engine, on a LocalCluster of 2 workers.

The in-process fits (batch CAVI, memoized and stochastic VI) are checked against the mathematics elsewhere
(tests/infer/test_exact.py, test_memoized.py, test_svi.py); here the same fit with the units split into
partitions on Dask workers must give the same ELBO trace and the same q, to 1e-12 relative: only the order
of the sums over the units differs.  The number of partitions is what could change a result (each worker
runs whatever partitions it holds with the same kernels), so 1, 2 and 4 partitions are run on the one
module-wide cluster.  CI compiles one model, LDA (its group block is the harder case); tests marked ``long``
add the Gaussian mixture and clusters of 1 and 4 workers."""

import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

import ppvi  # noqa: E402
from ppvi.api import SVI, Memoized  # noqa: E402
from ppvi.cli import main  # noqa: E402
from ppvi.codegen.cache import fixed_sizes, load as load_module  # noqa: E402
from ppvi.errors import PPVIError  # noqa: E402
from ppvi.infer.cavi import fit  # noqa: E402
from ppvi.infer.chunks import Chunk, Layout  # noqa: E402
from ppvi.infer.dask_engine import Dask, close, connect  # noqa: E402
from ppvi.infer.program import Program  # noqa: E402
from ppvi.io.data import bind, check_dims, source_of  # noqa: E402

MODELS = Path(__file__).resolve().parents[2] / "models"
RTOL = 1e-12


def warm(name: str, data) -> None:
    """Every kernel the partitions call, compiled here once (the workers load them from the cache)."""
    p = program(name, data)
    p.initialise(np.random.default_rng(0))
    p.expected_terms()
    p.refresh_statistics()


@pytest.fixture(scope="module")
def client(data):
    warm("lda", data["lda"])
    c = connect("local:2", "test")
    yield c
    close(c)


@pytest.fixture(scope="module")
def data():
    with np.load(MODELS / "lda.npz") as f:
        keep = f["doc"] < 24
        corpus = {"doc": f["doc"][keep], "word": f["word"][keep]}
    return {"gmm": {"x": np.loadtxt(MODELS / "gmm.csv", delimiter=",", skiprows=1)[:150]}, "lda": corpus}


def program(name: str, data) -> Program:
    m = ppvi.load(str(MODELS / f"{name}.ppvi")).checked
    bound = bind(m, source_of(data, m), check_dims(m, {}, "fit", "{name}={value!r}"))
    return Program.build(m, load_module(m, fixed=fixed_sizes(m, bound.sizes))[0], bound)


def q_of(p: Program) -> dict:
    return {k: v.copy() for k, v in p.state.items() if k.startswith(("q_", "v_"))}


def assert_same(a, pa: Program, b, pb: Program, rtol: float = RTOL) -> None:
    """The same ELBO trace and every q (and param) to rtol, relative to each array's largest entry."""
    np.testing.assert_allclose(b.trace, a.trace, rtol=rtol, atol=0)
    assert b.iterations == a.iterations and b.converged == a.converged
    for k, v in q_of(pa).items():
        np.testing.assert_allclose(pb.state[k], v, rtol=0, atol=rtol * max(1.0, float(np.max(np.abs(v)))), err_msg=k)


MODELS_RUN = ["lda", pytest.param("gmm", marks=pytest.mark.long)]


@pytest.mark.parametrize("name", [*MODELS_RUN, pytest.param("em_gmm", marks=pytest.mark.long)])
def test_batch_cavi_is_the_in_process_fit_for_any_partitions(client, data, name):
    """(em_gmm: params learnt by M-steps on the driver, from the partitions' statistics.)"""
    local = program(name, data.get(name))
    a = fit(local, seed=3, max_iter=5, tol=0)
    for partitions in (1, 2, 4):
        p = program(name, data.get(name))
        b = fit(p, seed=3, max_iter=5, tol=0, runner=Dask(client, partitions).runner())
        assert_same(a, local, b, p)
        assert len(b.trace) == 5 and np.all(np.diff(b.trace) > -1e-9 * np.abs(b.trace[1:]))


@pytest.mark.long
@pytest.mark.parametrize("workers", [1, 4])
def test_clusters_of_1_and_4_workers(data, workers):
    local = program("lda", data["lda"])
    a = fit(local, seed=3, max_iter=5, tol=0)
    c = connect(f"local:{workers}", "test")
    try:
        p = program("lda", data["lda"])
        b = fit(p, seed=3, max_iter=5, tol=0, runner=Dask(c).runner())
    finally:
        close(c)
    assert_same(a, local, b, p)


@pytest.mark.parametrize("name", MODELS_RUN)
def test_memoized_is_the_in_process_memoized_fit(client, data, name):
    """The partitions are memoized VI's chunks: their statistics are the in-process chunks', summed in the
    same order, so q is the same bit for bit; the ELBO is summed over the partitions (to rounding)."""
    local = program(name, data[name])
    a = fit(local, seed=1, max_iter=4, tol=0, runner=Memoized(chunks=3).runner())
    p = program(name, data[name])
    b = fit(p, seed=1, max_iter=4, tol=0, runner=Dask(client).runner(Memoized(chunks=3)))
    assert_same(a, local, b, p)
    for k, v in q_of(local).items():
        assert np.array_equal(p.state[k], v), (name, k)


@pytest.mark.parametrize("name", MODELS_RUN)
def test_svi_is_the_in_process_svi_fit(client, data, name):
    settings = SVI(batch=7, kappa=0.7, tau=1.0, passes=2)
    local = program(name, data[name])
    a = fit(local, seed=2, runner=settings.runner())
    p = program(name, data[name])
    b = fit(p, seed=2, runner=Dask(client).runner(settings))
    assert_same(a, local, b, p)
    assert b.elbo == pytest.approx(a.elbo, rel=RTOL)


def test_api_and_cli_record_the_engine(client, data, tmp_path):
    model = ppvi.load(str(MODELS / "lda.ppvi"))
    r = model.fit(data["lda"], seed=3, max_iter=4, tol=0, engine="dask", client=client)
    local = model.fit(data["lda"], seed=3, max_iter=4, tol=0)
    np.testing.assert_allclose(r.elbo_trace, local.elbo_trace, rtol=RTOL)
    assert r.provenance.engine == {"name": "dask", "workers": 2, "scheduler": client.scheduler.address}
    r.save(tmp_path / "r.json")
    assert ppvi.load_result(str(tmp_path / "r.json")).provenance.engine == r.provenance.engine
    np.savez(tmp_path / "c.npz", **data["lda"])
    code = main(["run", str(MODELS / "lda.ppvi"), "--data", str(tmp_path / "c.npz"), "--max-iter", "3", "--tol", "0",
                 "--seed", "3", "--quiet", "--dask", client.scheduler.address, "--out", str(tmp_path / "c.json")])
    assert code == 0
    doc = json.loads((tmp_path / "c.json").read_text())
    assert doc["provenance"]["engine"]["name"] == "dask" and doc["provenance"]["engine"]["workers"] == 2
    np.testing.assert_allclose(doc["elbo_trace"], local.elbo_trace[:3], rtol=RTOL)


def _written(corpus, tmp_path, kind: str):
    """The corpus as a directory of .npy files, a Parquet file of row groups of 100 tokens, a Zarr store, or a
    Dask DataFrame of 3 partitions (computed on the workers)."""
    if kind == "npy":
        for name, a in corpus.items():
            np.save(tmp_path / f"{name}.npy", a)
        return str(tmp_path)
    if kind == "parquet":
        pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
        pq.write_table(pa.table(corpus), tmp_path / "c.parquet", row_group_size=100)
        return str(tmp_path / "c.parquet")
    if kind == "dask":
        dd, pd = pytest.importorskip("dask.dataframe"), pytest.importorskip("pandas")
        return dd.from_pandas(pd.DataFrame(corpus), npartitions=3)
    zarr = pytest.importorskip("zarr")
    root = zarr.open_group(str(tmp_path / "c.zarr"), mode="w")
    for name, a in corpus.items():
        root.create_array(name, data=a, chunks=(100,))
    return str(tmp_path / "c.zarr")


@pytest.mark.parametrize("kind, algorithm", [("npy", None), pytest.param("parquet", None, marks=pytest.mark.long),
                                             pytest.param("zarr", Memoized(3), marks=pytest.mark.long),
                                             pytest.param("dask", None, marks=pytest.mark.long)])
def test_data_read_in_chunks_are_read_by_the_workers(client, data, tmp_path, monkeypatch, kind, algorithm):
    """Data read in chunks on the Dask engine: each worker reads its own partition's rows (the source opened
    again there); this process, the driver, reads only the first chunk of the words (the pilot, which starts
    the fit, and the first document, which sizes it) and the document index a chunk at a time (to find where
    the chunks begin), never the data whole.
    From a seed, the fit is the in-memory one: same ELBO trace and q (the random start drawn where the
    in-memory start draws it, docs/scale.md)."""
    from ppvi.io.chunked import SCAN_ROWS, Chunked

    corpus = data["lda"]
    path = _written(corpus, tmp_path, kind)
    reads = []
    rows = Chunked.rows
    monkeypatch.setattr(Chunked, "rows", lambda self, name, a, b: reads.append((name, a, b)) or rows(self, name, a, b))
    model = ppvi.load(str(MODELS / "lda.ppvi"))
    # (V given: the driver would otherwise find it from the largest word, a chunk at a time)
    memory = model.fit(corpus, seed=5, max_iter=3, tol=0, progress=False, algorithm=algorithm, V=50)
    streamed = model.fit(path, seed=5, max_iter=3, tol=0, progress=False, algorithm=algorithm, chunk_size=4,
                         engine="dask", client=client, V=50)
    np.testing.assert_allclose(streamed.elbo_trace, memory.elbo_trace, rtol=RTOL)
    for var in ("theta", "phi", "z"):
        for p, value in memory.q[var].params.items():
            np.testing.assert_allclose(streamed.q[var][p], value, rtol=0, atol=1e-10, err_msg=f"q({var}) {p}")
    assert streamed.provenance.engine["name"] == "dask" and streamed.provenance.schedule.endswith("streamed")
    tokens = len(corpus["word"])
    probe, pilot = (int(np.searchsorted(corpus["doc"], d)) for d in (1, 4))     # (documents 0, and 0..3)
    assert sum(b - a for name, a, b in reads if name == "word") == probe + pilot < tokens / 4
    assert max(b - a for name, a, b in reads if name == "doc") <= SCAN_ROWS


def test_mistakes(client, capsys):
    model = ppvi.load(str(MODELS / "gmm.ppvi"))
    for kwargs, text in (({"engine": "dask"}, 'engine="dask" needs client='),
                         ({"client": client}, 'without engine="dask"'),
                         ({"engine": "spark", "client": client}, "engine='spark'"),
                         ({"engine": "dask", "client": 3}, "client=int"),
                         ({"engine": "dask", "client": client, "damping": 0.5}, "sequential schedule")):
        with pytest.raises(PPVIError, match=text):
            model.fit(**kwargs)
    gmm = str(MODELS / "gmm.ppvi")
    for flags, text in ((["--dask", "tcp://127.0.0.1:9"], f"{gmm}: error: cannot reach the Dask scheduler at "
                                                           "tcp://127.0.0.1:9"),
                        (["--dask", "local:x"], "local:N takes a whole number of workers"),
                        (["--dask", "local:2", "--damping", "0.5"], "ppvi run: error: --dask with --damping")):
        assert main(["run", gmm, "--quiet", *flags]) == 2
        err = capsys.readouterr().err
        assert text in err and "Traceback" not in err and "internal error" not in err


def test_without_dask_the_error_says_how_to_install(monkeypatch):
    from ppvi.infer.dask_engine import distributed as find

    monkeypatch.setitem(sys.modules, "distributed", None)       # (import distributed raises ImportError)
    with pytest.raises(PPVIError) as e:
        find("models/gmm.ppvi")
    assert e.value.format().startswith("models/gmm.ppvi: error: Dask is not installed")
    assert 'pip install "ppvi[dask]"' in e.value.format()


def test_a_worker_killed_mid_fit_changes_nothing(client, data):
    """Its partitions are computed again from their lineage on the other worker (the nanny starts a new one).
    Equal to the engine's promise (RTOL: the order of the sums over the units), not bit for bit: a recomputed
    partition's arrays arrive laid out as its new messages put them, and once, under load, the last bit of the
    trace differed.  The one dependence on that layout found (NumPy's sums of arrays not aligned to their
    items) is removed (the next test); no other was found."""
    name = "lda"
    undisturbed = program(name, data[name])
    a = fit(undisturbed, seed=5, max_iter=6, tol=0, runner=Dask(client).runner())
    pids = client.run(os.getpid)

    def kill(it, elbo, change):
        if it == 3:
            os.kill(pids[sorted(pids)[0]], signal.SIGKILL)
    p = program(name, data[name])
    b = fit(p, seed=5, max_iter=6, tol=0, runner=Dask(client).runner(), on_iteration=kill)
    assert_same(a, undisturbed, b, p)


def test_interrupted_fit_keeps_the_newest_q(client, data):
    """Ctrl-C (or SIGTERM on the command line) after sweep 2: the partitions' q of that sweep are gathered."""
    local = program("lda", data["lda"])
    a = fit(local, seed=4, max_iter=2, tol=0)

    def stop(it, elbo, change):
        if it == 2:
            raise KeyboardInterrupt
    p = program("lda", data["lda"])
    b = fit(p, seed=4, max_iter=10, tol=0, runner=Dask(client).runner(), on_iteration=stop)
    assert b.interrupted and not a.interrupted
    a.interrupted = True
    assert_same(a, local, b, p)


def test_a_signal_while_the_local_cluster_starts_waits_until_it_is_up_then_closes_it(monkeypatch, default_sigint):
    """SIGTERM during a cold `--dask local:2` left a half-started LocalCluster: distributed's exit hook then
    failed on it with a traceback (AssertionError: Status.init).  The signal is held while the cluster and its
    client start, and delivered once both are whole, after connect closed them."""
    events = []

    class Started:
        def __init__(self, **kwargs):
            os.kill(os.getpid(), signal.SIGINT)        # (arrives mid-start)
            events.append("cluster up")

        def close(self, timeout=None):
            events.append("cluster closed")

    class Client:
        def __init__(self, cluster, set_as_default=True):
            self.cluster = cluster
            events.append("client up")

        def close(self, timeout=None):
            events.append("client closed")

    monkeypatch.setattr(distributed, "LocalCluster", Started)
    monkeypatch.setattr(distributed, "Client", Client)
    with pytest.raises(KeyboardInterrupt):
        connect("local:2", "test")
    assert events == ["cluster up", "client up", "client closed", "cluster closed"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler       # (the handler is back)


def test_svi_on_data_read_in_chunks_on_dask(client, data, tmp_path):
    """Stochastic VI on a .npy directory read in chunks, each worker reading its partition: with the same
    minibatches as the in-process streamed fit (contiguous documents, in order: ``shuffle=False``), the bound's
    trace, the global q and every document's local q agree to 1e-12.  Shuffled (the command line's), the
    minibatches are random sets of documents as in memory (the workers hold their partitions whole):
    `ppvi run --svi --dask` gives the in-memory fit's trace and q(z)."""
    path = _written(data["lda"], tmp_path, "npy")
    model = ppvi.load(str(MODELS / "lda.ppvi"))
    settings = SVI(batch=5, kappa=0.7, tau=1.0, passes=2, shuffle=False)
    local = model.fit(path, seed=4, progress=False, algorithm=settings, chunk_size=4, V=50)
    r = model.fit(path, seed=4, progress=False, algorithm=settings, chunk_size=4, V=50, engine="dask", client=client)
    assert r.provenance.engine["name"] == "dask" and r.provenance.schedule == local.provenance.schedule
    assert r.iterations == local.iterations == 10
    np.testing.assert_allclose(r.elbo_trace, local.elbo_trace, rtol=RTOL)
    assert r.elbo == pytest.approx(local.elbo, rel=RTOL)
    for var in ("theta", "phi", "z"):
        for p, value in local.q[var].params.items():
            np.testing.assert_allclose(r.q[var][p], value, rtol=0, atol=1e-12, err_msg=f"q({var}) {p}")
    shuffled = SVI(batch=5, kappa=0.7, tau=1.0, passes=2)
    memory = model.fit(data["lda"], seed=4, progress=False, algorithm=shuffled, V=50)
    out = tmp_path / "svi.json"
    code = main(["run", str(MODELS / "lda.ppvi"), "--data", path, "--chunk-size", "4", "--dim", "V=50", "--svi",
                 "--batch", "5", "--kappa", "0.7", "--tau", "1", "--passes", "2", "--seed", "4", "--quiet",
                 "--dask", client.scheduler.address, "--out", str(out)])
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["provenance"]["engine"]["name"] == "dask"
    np.testing.assert_allclose(doc["elbo_trace"], memory.elbo_trace, rtol=RTOL)      # (random sets, as in memory)
    np.testing.assert_allclose(np.load(tmp_path / "svi.local" / "q_z__p.npy"), memory.q["z"]["p"], rtol=0, atol=1e-12)


def _misaligned(a: np.ndarray) -> np.ndarray:
    """A copy of ``a`` one byte off its items' alignment, as an array a worker receives may be (distributed
    joins a message's small frames into one buffer and maps each array at its offset there)."""
    raw = np.zeros(a.nbytes + 1, dtype=np.uint8)
    out = np.ndarray(a.shape, dtype=a.dtype, buffer=raw.data, offset=1)
    out[...] = a
    return out


def test_a_partition_s_outcome_does_not_depend_on_where_its_arrays_lie():
    """NumPy sums a float64 array that is not 8-byte aligned in blocks of 8192 items, an aligned one pairwise,
    and the layout of a message, hence each received array's alignment, depends on what else was sent with
    it.  A partition of more than 8192 tokens gave the entropy of its start's q(z) another last bit when its
    arrays came one byte off (the same kernels, the same numbers).  A worker now copies such arrays first."""
    from ppvi.codegen.cache import _unsealed
    from ppvi.infer.dask_engine import Kernels, _start

    rng = np.random.default_rng(0)       # (15,000 tokens whose entropies the two orders sum differently)
    corpus = {"doc": np.repeat(np.arange(50), 300), "word": rng.integers(0, 50, 15_000)}
    p = program("lda", corpus)         # (the module of the other tests: K = 4, V = 50)
    p.initialise(np.random.default_rng(1))
    layout = Layout.of(p)
    for var in layout.local_steps:
        p.update(var)              # (an informed start's E-step: the partitions start from its entropies)
    with open(p.module.__file__, "rb") as fh:
        kernels = Kernels(p.model, p.module.__file__, _unsealed(fh.read()))
    chunk = Chunk(p, layout, np.arange(layout.units(p)))
    state = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in chunk.program.state.items()}
    moved = {k: _misaligned(v) if isinstance(v, np.ndarray) and v.size > 1 else v for k, v in state.items()}
    assert not moved["h_z"].flags.aligned and moved["h_z"].size > 8192
    a = _start(kernels, layout, dict(chunk.program.sizes), state)
    b = _start(kernels, layout, dict(chunk.program.sizes), moved)
    assert a.entropies["z"] != 0 and a.entropies == b.entropies
    assert np.array_equal(a.terms, b.terms)


@pytest.mark.long
@pytest.mark.parametrize("algorithm", [None, Memoized(3), SVI(batch=30, passes=2, shuffle=False)])
def test_units_on_another_axis_on_dask(client, tmp_path, algorithm):
    """A factor analyser with its scores declared X[m, n], the units on their second axis (compiled: the workers
    run its kernels; tests/infer/test_stream_start.py checks the same in-process with them as plain Python):
    from a seed, Dask with the data in memory and read by the workers from .npy chunks gives the in-process
    in-memory fit, the trace to 1e-12 and q to 1e-10."""
    from infer.test_stream_start import TRANSPOSED

    (tmp_path / "t.ppvi").write_text(TRANSPOSED)
    model = ppvi.load(str(tmp_path / "t.ppvi"))
    rng = np.random.default_rng(3)
    y = rng.normal(size=(90, 2)) @ rng.normal(size=(5, 2)).T + 0.3 * rng.normal(size=(90, 5))
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "y.npy", y)
    memory = model.fit({"y": y}, seed=2, max_iter=4, tol=0, progress=False, algorithm=algorithm)
    for source, chunk in (({"y": y}, None), (str(tmp_path / "data"), 20)):
        r = model.fit(source, seed=2, max_iter=4, tol=0, progress=False, algorithm=algorithm, chunk_size=chunk,
                      engine="dask", client=client)
        np.testing.assert_allclose(r.elbo_trace, memory.elbo_trace, rtol=RTOL)
        for var in ("W", "psi") if isinstance(algorithm, Memoized) and chunk else ("W", "psi", "X"):
            for p, value in memory.q[var].params.items():
                np.testing.assert_allclose(r.q[var][p], value, rtol=0, atol=1e-10, err_msg=f"q({var}) {p}")


# ------------------------------------------------------------------ chains: a plate of sequences, ragged sequences
RAGGED = "sequences/ragged_hmm"
RAGGED_LDS = "sequences/ragged_lds"
VGHMM = "sequences/vghmm"


def _chain_data() -> dict:
    table = np.genfromtxt(MODELS / f"{RAGGED}.csv", delimiter=",", names=True)
    return {RAGGED: {"seq": table["seq"].astype(np.int64), "x": table["x"]},
            VGHMM: {k: np.asarray(v) for k, v in json.loads((MODELS / f"{VGHMM}.json").read_text()).items()}}


def _plain_kernels(path: str, source: str, plain: bool) -> None:
    """The generated module of ``source`` (imported here as the engine imports it: by ``path``) with its kernels
    as plain Python (``plain``), or compiled again.  (Run on the driver and, by ``client.run``, on the workers.)"""
    from numba.core.dispatcher import Dispatcher

    from ppvi.codegen.cache import import_source

    module = import_source(path, source)
    saved = module.__dict__.setdefault("_compiled_kernels", {})
    if plain:
        for n, k in list(vars(module).items()):
            if isinstance(k, Dispatcher) and k.py_func.__module__ == module.__name__:
                saved[n] = k
                setattr(module, n, k.py_func)
    else:
        for n, k in saved.items():
            setattr(module, n, k)


def _chain_modules(data: dict) -> list[tuple[str, str]]:
    """The chain models' generated modules: (path, source)."""
    from ppvi.codegen.cache import _unsealed

    out = []
    for name, d in data.items():
        path = program(name, d).module.__file__
        with open(path, "rb") as fh:
            out.append((path, _unsealed(fh.read())))
    return out


@pytest.fixture
def chains(client):
    """The chain models' data, their kernels run as plain Python on the driver and every worker for the test (no
    model compiled for these checks of where the units are cut; the compiled kernels are the same source:
    tests/harness); the runtime's forward–backward stays compiled."""
    yield from _plain_on(client, _chain_data())


@pytest.fixture
def lds(client):
    """ragged_lds's data (models/sequences/ragged_lds.ppvi), its kernels run as plain Python as ``chains``'."""
    table = np.genfromtxt(MODELS / f"{RAGGED_LDS}.csv", delimiter=",", names=True)
    yield from _plain_on(client, {RAGGED_LDS: {"seq": table["seq"].astype(np.int64), "y": table["y"]}})


def _plain_on(client, data: dict):
    """``data``, its models' kernels as plain Python on the driver and the workers while the test runs."""
    modules = _chain_modules(data)
    for path, source in modules:
        _plain_kernels(path, source, True)
        client.run(_plain_kernels, path, source, True)
    with np.errstate(all="ignore"):
        yield data
    for path, source in modules:
        _plain_kernels(path, source, False)
        client.run(_plain_kernels, path, source, False)


CHAIN_SVI = SVI(batch=3, kappa=0.7, tau=1.0, passes=2)
SHORT_SVI = SVI(batch=3, kappa=0.7, tau=1.0, passes=1)
# (by default one case of a few rounds, about 1 CPU-s of the driver and workers, and 1 more for each worker's first
# chain; memoized VI's rounds include batch CAVI's, a round of every partition at the end of a sweep)
CHAIN_CASES = [(RAGGED, Memoized(3), (None,), 2)] + [pytest.param(*case, marks=pytest.mark.long) for case in [
                   (RAGGED, SHORT_SVI, (None,), 0), (VGHMM, None, (None,), 2),
                   (RAGGED, None, (1, 2, 3), 4), (RAGGED, Memoized(3), (None,), 4), (RAGGED, CHAIN_SVI, (None,), 0),
                   (VGHMM, None, (1, 3), 4), (VGHMM, Memoized(3), (None,), 4), (VGHMM, CHAIN_SVI, (None,), 0)]]


@pytest.mark.parametrize("name, algorithm, runs, sweeps", CHAIN_CASES)
def test_chains_on_dask_are_the_in_process_fit(client, chains, name, algorithm, runs, sweeps):
    """A partition holds whole sequences: ragged_hmm's (8 of different lengths in long format, riding on `seq`:
    a partition's rows found from it) and vghmm's (4 of 50 steps, `x[s, t]`).  Batch CAVI (``runs``: the
    partitions; None, one per worker), memoized VI (3 chunks) and SVI (minibatches of 3 sequences) give the
    in-process fit's ELBO trace and q within 1e-12.  Before: ragged sequences refused on the Dask engine,
    vghmm never run on it."""
    _same_on_dask(client, name, chains[name], algorithm, runs, sweeps)


@pytest.mark.long
@pytest.mark.parametrize("algorithm, runs", [(None, (1, 2, 3)), (Memoized(3), (None,)), (CHAIN_SVI, (None,))])
def test_a_ragged_gaussian_chain_on_dask_is_the_in_process_fit(client, lds, algorithm, runs):
    """ragged_lds (6 series of 3 to 34 steps in long format, q(x) a Kalman filter and RTS smoother per series): a
    partition holds whole series; batch CAVI (1, 2, 3 partitions), memoized VI and SVI give the in-process fit's
    ELBO trace and q within 1e-12.  (Refused on the Dask engine before, for the fault read in chunks below.)"""
    _same_on_dask(client, RAGGED_LDS, lds[RAGGED_LDS], algorithm, runs, 4)


def _same_on_dask(client, name: str, data: dict, algorithm, runs, sweeps: int) -> None:
    settings = {"seed": 2} if isinstance(algorithm, SVI) else {"seed": 1, "max_iter": sweeps, "tol": 0}
    local = program(name, data)
    a = fit(local, runner=algorithm.runner() if algorithm else None, **settings)
    for partitions in runs:
        p = program(name, data)
        b = fit(p, runner=Dask(client, partitions).runner(algorithm), **settings)
        assert_same(a, local, b, p)
        assert b.elbo == pytest.approx(a.elbo, rel=RTOL)


@pytest.mark.parametrize("algorithm", [Memoized(3), pytest.param(CHAIN_SVI, marks=pytest.mark.long),
                                       pytest.param(None, marks=pytest.mark.long)])
def test_ragged_sequences_read_in_chunks_by_the_workers(client, chains, tmp_path, algorithm):
    """ragged_hmm from .npy files, each worker reading its partition's whole sequences (their rows found from
    `seq` on the driver, read on the worker): from a seed, the in-memory fit's ELBO trace within 1e-12 and q
    within 1e-10 (memoized VI's q(z) are one local pass newer, docs/scale.md "The local q"; SVI's minibatches
    are random sets of sequences, as in memory)."""
    _read_by_the_workers(client, RAGGED, chains[RAGGED], tmp_path, algorithm, ("pi", "A", "mu", "tau"), "z")


@pytest.mark.long
@pytest.mark.parametrize("algorithm", [Memoized(3), CHAIN_SVI, None])
def test_a_ragged_gaussian_chain_read_in_chunks_by_the_workers(client, lds, tmp_path, algorithm):
    """ragged_lds from .npy files, each worker reading its partition's whole series: the in-memory fit, as
    ragged_hmm's above.  Before: q(τ)'s shape read the first chunk's count of steps n_T, not the whole data's
    (read in chunks in process: batch CAVI's ELBO −195.51 against −121.87 in memory after 5 sweeps;
    tests/infer/test_ragged_lds_scale.py)."""
    _read_by_the_workers(client, RAGGED_LDS, lds[RAGGED_LDS], tmp_path, algorithm, ("tau",), "x")


def _read_by_the_workers(client, name: str, table: dict, tmp_path, algorithm, globals_: tuple, local: str) -> None:
    for k, v in table.items():
        np.save(tmp_path / f"{k}.npy", v)
    model = ppvi.load(str(MODELS / f"{name}.ppvi"))
    settings = {"seed": 2} if isinstance(algorithm, SVI) else {"seed": 1, "max_iter": 2, "tol": 0}
    memory = model.fit(table, progress=False, algorithm=algorithm, **settings)
    r = model.fit(str(tmp_path), progress=False, algorithm=algorithm, chunk_size=2, engine="dask", client=client,
                  **settings)
    assert r.provenance.engine["name"] == "dask"
    np.testing.assert_allclose(r.elbo_trace, memory.elbo_trace, rtol=RTOL)
    assert r.elbo == pytest.approx(memory.elbo, rel=RTOL)
    for var in globals_ if isinstance(algorithm, Memoized) else (*globals_, local):
        for p, value in memory.q[var].params.items():
            np.testing.assert_allclose(r.q[var][p], value, rtol=0, atol=1e-10, err_msg=f"q({var}) {p}")


@pytest.mark.long
@pytest.mark.parametrize("kind", ["ar1 of data", "mean field"])
def test_a_ragged_chain_of_data_and_one_under_the_mean_field_on_dask(client, tmp_path, kind):
    """An AR(1) of data riding on `seq` and ragged_lds under the mean field (tests/infer/test_ragged_chain_scale.py),
    both on ragged_lds's data: memoized VI (3 chunks) on the workers, the data in memory and read by the workers
    from .npy in chunks of 2 series, is the in-process fit (ELBO trace 1e-12, global q 1e-10).  Before: refused."""
    from infer.test_ragged_chain_scale import LDS_MEAN_FIELD, RAGGED_AR1

    (tmp_path / "m.ppvi").write_text(RAGGED_AR1 if kind == "ar1 of data" else LDS_MEAN_FIELD)
    table = np.genfromtxt(MODELS / f"{RAGGED_LDS}.csv", delimiter=",", names=True)
    data = {"seq": table["seq"].astype(np.int64), "y": table["y"]}
    (tmp_path / "npy").mkdir()
    for k, v in data.items():
        np.save(tmp_path / "npy" / f"{k}.npy", v)
    model = ppvi.load(str(tmp_path / "m.ppvi"))
    settings = {"seed": 1, "max_iter": 4, "tol": 0, "progress": False, "algorithm": Memoized(3)}
    memory = model.fit(data, **settings)
    for source, more in ((data, {}), (str(tmp_path / "npy"), {"chunk_size": 2})):
        r = model.fit(source, engine="dask", client=client, **settings, **more)
        assert r.provenance.engine["name"] == "dask"
        np.testing.assert_allclose(r.elbo_trace, memory.elbo_trace, rtol=RTOL)
        for var in ("phi", "tau") if kind == "ar1 of data" else ("tau",):
            for p, value in memory.q[var].params.items():
                np.testing.assert_allclose(r.q[var][p], value, rtol=0, atol=1e-10, err_msg=f"q({var}) {p}")


@pytest.mark.long
def test_chains_on_a_cluster_of_one_worker(chains):
    """ragged_hmm and vghmm, memoized VI on a LocalCluster of 1 worker: the in-process fit."""
    c = connect("local:1", "test")
    try:
        for path, source in _chain_modules(chains):
            c.run(_plain_kernels, path, source, True)
        for name in (RAGGED, VGHMM):
            local = program(name, chains[name])
            a = fit(local, seed=1, max_iter=4, tol=0, runner=Memoized(3).runner())
            p = program(name, chains[name])
            b = fit(p, seed=1, max_iter=4, tol=0, runner=Dask(c).runner(Memoized(3)))
            assert_same(a, local, b, p)
    finally:
        close(c)
