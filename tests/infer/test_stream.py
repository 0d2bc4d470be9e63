"""Fits of data read chunk by chunk (ppvi.infer.streamed) against the same fits of the data in memory.

The in-memory fits are checked against the mathematics elsewhere (tests/infer/test_fixed_points.py,
test_memoized.py, test_svi.py); a streamed fit computes the same coordinate steps from the same statistics,
summed chunk by chunk in a fixed order, so it must give the same ELBO trace and q up to the rounding of
those sums (relative 1e-12).  Memory: a mixture of 10⁶ points read in chunks of 2¹² allocates far less than
its data (tracemalloc), and the peak RSS of `ppvi run` (a subprocess) on a .npy of 10⁶ points (10⁸ with
--long) is that of a run on two chunks: it does not grow with the data."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import ppvi
from ppvi.api import SVI, Memoized

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"


@pytest.fixture(scope="module")
def gmm():
    return ppvi.load(str(MODELS / "gmm.ppvi"))


@pytest.fixture(scope="module")
def faithful():
    return np.loadtxt(MODELS / "gmm.csv", delimiter=",", skiprows=1)


@pytest.fixture(scope="module")
def npy_dir(tmp_path_factory, faithful):
    d = tmp_path_factory.mktemp("faithful")
    np.save(d / "x.npy", faithful)
    return d


@pytest.fixture(scope="module")
def start(gmm, faithful):
    """A start holding the global q only (the local q(z) then come from an E-step, in memory and streamed)."""
    layout = gmm.fit({"x": faithful}, max_iter=2, tol=0, progress=False).to_dict()
    del layout["q"]["z"]
    return layout


def same(a, b, q_atol=1e-10):
    assert a.iterations == b.iterations
    np.testing.assert_allclose(b.elbo_trace, a.elbo_trace, rtol=1e-12)
    for var in ("pi", "mu", "Lambda", "z"):
        for p, value in a.q[var].params.items():
            np.testing.assert_allclose(b.q[var][p], value, rtol=0, atol=q_atol, err_msg=f"q({var}) {p}")


def test_batch_cavi_streamed_equals_in_memory(gmm, faithful, npy_dir, start):
    memory = gmm.fit({"x": faithful}, init=start, tol=1e-10, progress=False)
    streamed = gmm.fit(str(npy_dir), init=start, tol=1e-10, progress=False, chunk_size=50)     # (6 chunks, the last 22)
    assert memory.converged and streamed.converged and memory.iterations > 5
    same(memory, streamed)
    assert streamed.provenance.schedule == "streamed" and streamed.provenance.algorithm["chunk_size"] == 50
    assert streamed.q["z"]["p"].shape == (272, 6)


def test_memoized_streamed_equals_in_memory(gmm, faithful, npy_dir, start):
    memory = gmm.fit({"x": faithful}, init=start, tol=1e-10, progress=False, algorithm=Memoized(3))
    streamed = gmm.fit(str(npy_dir), init=start, tol=1e-10, progress=False, algorithm=Memoized(3), chunk_size=40)
    # the ELBO trace and the global q agree; the streamed result's q(z) are those of the final globals (one more
    # local pass), in memory each chunk's q(z) are its last step's: they differ by that last step
    np.testing.assert_allclose(streamed.elbo_trace, memory.elbo_trace, rtol=1e-12)
    for var in ("pi", "mu", "Lambda"):
        for p, value in memory.q[var].params.items():
            np.testing.assert_allclose(streamed.q[var][p], value, rtol=0, atol=1e-10)
    np.testing.assert_allclose(streamed.q["z"]["p"], memory.q["z"]["p"], atol=1e-4)


def test_svi_streamed_equals_in_memory(gmm, faithful, npy_dir, start):
    settings = SVI(batch=64, kappa=0.7, tau=1.0, passes=2, shuffle=False)
    memory = gmm.fit({"x": faithful}, init=start, progress=False, algorithm=settings)
    streamed = gmm.fit(str(npy_dir), init=start, progress=False, algorithm=settings, chunk_size=30)
    same(memory, streamed)
    assert streamed.elbo == pytest.approx(memory.elbo, rel=1e-12)


def test_a_random_start_streamed_equals_the_in_memory_one(gmm, faithful, npy_dir):
    """No start given, a seed: the streamed start is the in-memory start of that seed — q(z) drawn over every
    point first, then k-means++ centres from every row (the draws, the cumulative distances and the data's
    variance read chunk by chunk), then every point's E-step.  It was the first chunk's k-means++ (sweep 1 at
    −616.0 streamed, −624.9 in memory)."""
    memory = gmm.fit({"x": faithful}, max_iter=4, tol=0, progress=False, seed=1)
    streamed = gmm.fit(str(npy_dir), max_iter=4, tol=0, progress=False, seed=1, chunk_size=50)
    same(memory, streamed)


def test_local_q_beside_the_result(gmm, npy_dir, tmp_path):
    out = tmp_path / "local"
    r = gmm.fit(str(npy_dir), max_iter=3, tol=0, progress=False, chunk_size=100, local_dir=str(out))
    on_disk = np.load(out / "q_z__p.npy", mmap_mode="r")
    np.testing.assert_array_equal(on_disk, r.q["z"]["p"])
    np.testing.assert_allclose(on_disk.sum(axis=1), 1.0, rtol=1e-12)
    assert sorted(os.listdir(out)) == ["q_z__p.npy"]


def test_a_final_pass_that_raises_leaves_no_scratch_store(gmm, npy_dir, tmp_path, monkeypatch):
    """The pass writing the result's local q to a scratch folder (no ``local_dir``) fails (Ctrl-C, a full
    disk): the folder is removed (it was left behind)."""
    import tempfile

    from ppvi.infer.streamed import Streamer

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    local_pass = Streamer.local_pass

    def failing(self, a, b, store=None, **kw):
        if store is not None:
            raise KeyboardInterrupt
        return local_pass(self, a, b, store, **kw)
    monkeypatch.setattr(Streamer, "local_pass", failing)
    with pytest.raises(KeyboardInterrupt):
        gmm.fit(str(npy_dir), max_iter=1, tol=0, progress=False, chunk_size=100)
    assert os.listdir(tmp_path) == []


STUDENT_T = textwrap.dedent("""\
    dim N
    dim K = 2
    const alpha[K] = 1.0
    data x[N]
    pi ~ Dirichlet(alpha)
    for k in K:
        mu[k] ~ Normal(0, 10)
    for n in N:
        z[n] ~ Categorical(pi)
        x[n] ~ StudentT(4, mu[z[n]], 1)
    """)


@pytest.mark.parametrize("algorithm, chunk", [(None, 30), (Memoized(3), 20),
                                              (SVI(batch=16, passes=2, shuffle=False), 7)])
def test_local_latents_that_read_each_other_are_kept_between_passes(tmp_path, algorithm, chunk):
    """A Student-t mixture's local step updates z and the weights `x_weight` in turn, each from the other's q:
    their q are kept on disk between passes (as a group block's), started as in memory; the streamed fit equals
    the in-memory one (it was refused: "its local step updates z, x_weight")."""
    model = tmp_path / "t.ppvi"
    model.write_text(STUDENT_T)
    m = ppvi.load(str(model))
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_t(4, 150) - 3, rng.standard_t(4, 100) + 3])
    np.save(tmp_path / "x.npy", x)
    start = m.fit({"x": x}, max_iter=2, tol=0, progress=False).to_dict()
    del start["q"]["z"], start["q"]["x_weight"]
    memory = m.fit({"x": x}, init=start, max_iter=6, tol=0, progress=False, algorithm=algorithm)
    streamed = m.fit(str(tmp_path), init=start, max_iter=6, tol=0, progress=False, algorithm=algorithm,
                     chunk_size=chunk)
    np.testing.assert_allclose(streamed.elbo_trace, memory.elbo_trace, rtol=1e-12)
    for var in ("pi", "mu", "z", "x_weight"):
        for p, value in memory.q[var].params.items():
            np.testing.assert_allclose(streamed.q[var][p], value, rtol=0, atol=1e-10, err_msg=f"q({var}) {p}")


def _write_mixture(path: Path, n: int, rows: int = 1 << 16) -> None:
    """A 2-D mixture of n points written a block at a time (never whole in memory)."""
    rng = np.random.default_rng(0)
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": (n, 2)})
        for a in range(0, n, rows):
            m = min(rows, n - a)
            centre = np.array([[0.0, 0.0], [4.0, 4.0], [-4.0, 4.0]])[rng.integers(3, size=m)]
            fh.write((centre + rng.normal(size=(m, 2))).tobytes())


def test_a_million_points_allocate_far_less_than_their_data(gmm, npy_dir, tmp_path):
    """Every allocation NumPy makes, traced: a fit of 16 MB of data (in memory it would also hold 48 MB of q(z))
    peaks near one chunk's arrays, about 250 bytes a point of a chunk plus the global state."""
    import tracemalloc

    n = 10 ** 6
    d = tmp_path / "big"
    d.mkdir()
    _write_mixture(d / "x.npy", n)
    size = 16 * n
    gmm.fit(str(npy_dir), max_iter=1, tol=0, progress=False, chunk_size=100)   # (compiled before, not traced)
    tracemalloc.start()
    try:
        r = gmm.fit(str(d), max_iter=1, tol=0, progress=False, chunk_size=1 << 12)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert r.q["z"]["p"].shape == (n, 6) and np.isfinite(r.elbo)
    assert peak < size / 8, f"peak {peak:,} bytes allocated for {size:,} bytes of data"


PEAK = textwrap.dedent("""\
    import resource, sys
    import numpy as np
    import ppvi
    m = ppvi.load(sys.argv[1])
    m.fit({"x": np.random.default_rng(0).normal(size=(500, 2))}, max_iter=2, tol=0, progress=False)   # warm
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    r = m.fit(sys.argv[2], max_iter=2, tol=0, progress=False, chunk_size=1 << 13)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(before, after)
    """)


# `ppvi run`, its peak resident set (VmHWM) written to a file at exit.  (The child's own: ru_maxrss from
# wait4 would also count the pages it shared with this process between fork and exec, the test runner's.)
PEAK_RUN = textwrap.dedent("""\
    import atexit, runpy, sys
    def peak(path=sys.argv.pop(1)):
        with open("/proc/self/status") as f, open(path, "w") as out:
            out.write(next(line.split()[1] for line in f if line.startswith("VmHWM:")))
    atexit.register(peak)
    sys.argv[0] = "ppvi"
    runpy.run_module("ppvi", run_name="__main__")
    """)


def _peak_rss(args: list[str], report: Path) -> int:
    """Run ``ppvi run ARGS`` and return its peak resident set in bytes."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}      # (PPVI_CACHE_DIR is the suite's: the kernels are warm)
    out = subprocess.run([sys.executable, "-c", PEAK_RUN, str(report), "run", *args], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=3600)
    assert out.returncode == 0, out.stderr
    return int(report.read_text()) * 1024


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="VmHWM is Linux's")
@pytest.mark.parametrize("n", [10 ** 6, pytest.param(10 ** 8, marks=pytest.mark.long)])
def test_ppvi_run_on_a_large_npy_holds_far_less_than_the_data(gmm, npy_dir, tmp_path, n):
    """`ppvi run --chunk-size` (the summary printed, the local q written beside the result) on a mixture of n
    points in a .npy, against the same run on a baseline of two chunks: the baseline's peak RSS already holds
    the interpreter, NumPy and Numba, the loaded kernels, the global state and one chunk's data, local q and
    temporaries; nothing else should grow with n.  Bound: the peak grows by less than a quarter of the data's
    size (growth measured: tens of KB; reading the data whole, with np.load, adds at least all of it).  It
    caught the summary reading q(z) whole (+100 MB at 10⁶ points: its pages of the mapped .npy, counted in
    the RSS, and the MAP labels' copy)."""
    gmm.fit(str(npy_dir), max_iter=1, tol=0, progress=False, chunk_size=100)   # (kernels in the suite's cache)
    chunk = 1 << 14
    runs = {}
    for name, points in (("baseline", 2 * chunk), ("large", n)):
        d = tmp_path / name
        d.mkdir()
        _write_mixture(d / "x.npy", points)
        runs[name] = _peak_rss([str(MODELS / "gmm.ppvi"), "--data", str(d), "--chunk-size", str(chunk),
                                "--max-iter", "1", "--tol", "0", "--out", str(tmp_path / f"{name}.json")],
                               tmp_path / f"{name}.peak")
    size = 16 * n
    grew = runs["large"] - runs["baseline"]
    assert grew < size / 4, f"peak RSS {runs['large']:,} bytes for {size:,} bytes of data: {grew:,} more than " \
                            f"the baseline's {runs['baseline']:,}"


@pytest.mark.long
def test_peak_resident_memory_grows_by_far_less_than_the_data(gmm, tmp_path):
    n = 4 * 10 ** 6                      # 64 MB of data; in memory the fit would hold 3 × 192 MB of q(z) besides
    d = tmp_path / "big"
    d.mkdir()
    _write_mixture(d / "x.npy", n)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", PEAK, str(MODELS / "gmm.ppvi"), str(d)], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    before, after = map(int, out.stdout.split())
    assert after - before < 16 * n / 4, f"peak RSS grew by {after - before:,} bytes for {16 * n:,} bytes of data"


TWO_COLUMNS = textwrap.dedent("""\
    dim N
    dim K = 2
    const alpha[K] = 1.0
    data x[N]
    data y[N]
    pi ~ Dirichlet(alpha)
    for k in K:
        mu[k] ~ Normal(0, 10)
    for n in N:
        z[n] ~ Categorical(pi)
        x[n] ~ Normal(mu[z[n]], 1)
        y[n] ~ Normal(mu[z[n]], 1)
    """)


@pytest.mark.parametrize("kind", ["npy", "parquet", "zarr"])
def test_a_start_reading_one_variable_reads_only_its_column(tmp_path, monkeypatch, kind):
    """The start's reads of the whole data (k-means++, the data's variance: ppvi.infer.streamed.Rows) ask for
    one variable's rows, and only that variable is read: Parquet's row groups with that column alone, Zarr's
    array alone (each read every column before)."""
    from ppvi.io.chunked import Chunked
    from ppvi.io.data import bind_streamed, chunked_source
    from ppvi.infer.streamed import Rows

    (tmp_path / "m.ppvi").write_text(TWO_COLUMNS)
    model = ppvi.load(str(tmp_path / "m.ppvi")).checked
    x, y = np.arange(40.0), -np.arange(40.0)
    if kind == "npy":
        np.save(tmp_path / "x.npy", x), np.save(tmp_path / "y.npy", y)
        path = str(tmp_path)
    elif kind == "parquet":
        pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
        pq.write_table(pa.table({"x": x, "y": y}), tmp_path / "d.parquet", row_group_size=16)
        path = str(tmp_path / "d.parquet")
        groups = []
        read_row_group = pq.ParquetFile.read_row_group
        monkeypatch.setattr(pq.ParquetFile, "read_row_group",
                            lambda self, i, columns=None, **kw: groups.append(tuple(columns)) or
                            read_row_group(self, i, columns=columns, **kw))
    else:
        zarr = pytest.importorskip("zarr")
        root = zarr.open_group(str(tmp_path / "d.zarr"), mode="w")
        root.create_array("x", data=x, chunks=(16,)), root.create_array("y", data=y, chunks=(16,))
        path = str(tmp_path / "d.zarr")
    data = bind_streamed(model, chunked_source(path, model))
    reads = []
    rows = Chunked.rows
    monkeypatch.setattr(Chunked, "rows", lambda self, name, a, b: reads.append(name) or rows(self, name, a, b))
    column = Rows(data, data.sizes, 16).of("y")
    np.testing.assert_array_equal(np.concatenate(list(column.chunks())), y)
    np.testing.assert_array_equal(column.take([3, 37]), y[[3, 37]])
    assert column.rows.variance("y") == pytest.approx(np.var(y), rel=1e-14)
    assert set(reads) == {"y"}
    if kind == "parquet":
        assert set(groups) == {("y",)}
    assert sorted(data.read(0, 40)) == ["x", "y"]       # (a chunk of a local pass reads every variable)
