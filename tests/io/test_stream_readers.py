"""Readers of data read chunk by chunk (ppvi.io.chunked): each gives the fit the same numbers as the data in
memory, so each streamed fit equals the in-memory one (relative 1e-12); a mistake in the data is a positioned
``FILE: error:`` naming the entry in the whole data, however deep in the file it is, exit status 2."""

import os
from pathlib import Path

import numpy as np
import pytest

import ppvi
from ppvi.errors import PPVIError
from conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
zarr = pytest.importorskip("zarr")
da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
pd = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def gmm():
    return ppvi.load(str(MODELS / "gmm.ppvi"))


@pytest.fixture(scope="module")
def x():
    return np.loadtxt(MODELS / "gmm.csv", delimiter=",", skiprows=1)


@pytest.fixture(scope="module")
def reference(gmm, x):
    """The in-memory fit, and the start (global q only) every fit here takes."""
    start = gmm.fit({"x": x}, max_iter=2, tol=0, progress=False).to_dict()
    del start["q"]["z"]
    return gmm.fit({"x": x}, init=start, max_iter=6, tol=0, progress=False), start


def write_sources(d: Path, x: np.ndarray) -> dict:
    """The same data in every format a fit reads in chunks."""
    (d / "npy").mkdir()
    np.save(d / "npy" / "x.npy", np.asfortranarray(x))      # (Fortran order: a read per column)
    np.savez(d / "x.npz", x=x, unused=np.zeros(3))
    pq.write_table(pa.table({"x": pa.array(list(x), type=pa.list_(pa.float64(), 2))}), d / "list.parquet",
                   row_group_size=64)
    pd.DataFrame(x, columns=["eruptions", "waiting"]).to_parquet(d / "table.parquet", row_group_size=100)
    group = zarr.open_group(str(d / "x.zarr"), mode="w")
    group.create_array("x", data=x, chunks=(50, 2))
    return {"npy": str(d / "npy"), "npz": str(d / "x.npz"), "parquet (a list column)": str(d / "list.parquet"),
            "parquet (every numeric column)": str(d / "table.parquet"), "zarr": str(d / "x.zarr"),
            "dask array": da.from_array(x, chunks=(70, 2)),
            "dask frame": dd.from_pandas(pd.DataFrame(x, columns=["e", "w"]), npartitions=4),
            "dask dict": {"x": da.from_array(x, chunks=(100, 2))}}


def test_every_reader_gives_the_in_memory_fit(gmm, x, reference, tmp_path):
    memory, start = reference
    for name, source in write_sources(tmp_path, x).items():
        r = gmm.fit(source, init=start, max_iter=6, tol=0, progress=False, chunk_size=100)
        np.testing.assert_allclose(r.elbo_trace, memory.elbo_trace, rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(r.q["mu"]["mean"], memory.q["mu"]["mean"], rtol=0, atol=1e-10, err_msg=name)
        np.testing.assert_allclose(r.q["z"]["p"], memory.q["z"]["p"], rtol=0, atol=1e-10, err_msg=name)


def test_the_native_chunks_by_default(gmm, x, reference, tmp_path):
    """Without a chunk size the budget decides (here: all 272 points at once): the in-memory fit to a few units in
    the last place (the in-memory sweep reads the ELBO's last term off the update, the streamed one sums it)."""
    memory, start = reference
    np.save(tmp_path / "x.npy", x)
    r = gmm.fit(str(tmp_path), init=start, max_iter=6, tol=0, progress=False)
    assert r.provenance.algorithm["chunk_size"] == 272
    np.testing.assert_allclose(r.elbo_trace, memory.elbo_trace, rtol=1e-14)


def fails(gmm, data, **options) -> str:
    with pytest.raises(PPVIError) as e:
        gmm.fit(data, max_iter=2, tol=0, progress=False, **options)
    return e.value.format()


def test_nan_in_chunk_37_names_its_row(gmm, tmp_path):
    x = np.random.default_rng(0).normal(size=(200, 2))
    x[37 * 5 + 2, 1] = np.nan
    np.save(tmp_path / "x.npy", x)
    text = fails(gmm, str(tmp_path), chunk_size=5)
    assert text.startswith(f"{tmp_path / 'x.npy'}: error: `x[187, 1]` is nan, a missing value"), text


def test_a_variable_declared_missing_is_refused_in_chunks_at_its_declaration(tmp_path):
    """Missing entries are latents of the in-memory fit (ppvi.language.missing); read in chunks they are not
    fitted yet: the refusal names the `missing` word, not a NaN the declaration allows."""
    model = tmp_path / "m.ppvi"
    model.write_text("dim N\ndata x[N] : missing\nmu ~ Normal(0, 1)\nfor n in N:\n    x[n] ~ Normal(mu, 1)\n")
    x = np.arange(20.0)
    x[3] = np.nan
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(PPVIError) as e:
        ppvi.load(str(model)).fit(str(tmp_path), chunk_size=5, progress=False)
    text = str(e.value)
    assert text.startswith(f"{model}:2:13: error: ") and "in chunks" in text and "is nan" not in text, text


def test_a_null_in_a_parquet_row_group_names_its_row(gmm, tmp_path):
    frame = pd.DataFrame({"a": np.arange(300.0), "b": np.ones(300)})
    frame.loc[250, "b"] = None
    frame.to_parquet(tmp_path / "t.parquet", row_group_size=64)
    text = fails(gmm, str(tmp_path / "t.parquet"), chunk_size=32)
    assert "`x[250, 1]` is nan" in text, text


def test_corrupt_and_wrong_files(gmm, x, tmp_path):
    d = tmp_path / "truncated"
    d.mkdir()
    np.save(d / "x.npy", x)
    with open(d / "x.npy", "r+b") as fh:
        fh.truncate(os.path.getsize(d / "x.npy") - 100)
    assert "`x` is truncated" in fails(gmm, str(d))
    d = tmp_path / "garbage"
    d.mkdir()
    (d / "x.npy").write_bytes(b"this is not an array")
    assert "not a readable .npy array" in fails(gmm, str(d))
    d = tmp_path / "complex"
    d.mkdir()
    np.save(d / "x.npy", x.astype(complex))
    assert "`x` is not numeric (dtype complex128)" in fails(gmm, str(d))
    np.savez_compressed(tmp_path / "c.npz", x=x)
    assert "a compressed .npz cannot be read in chunks" in fails(gmm, str(tmp_path / "c.npz"), chunk_size=10)
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    assert "cannot read Parquet" in fails(gmm, str(tmp_path / "bad.parquet"))
    d = tmp_path / "wrong_name"
    d.mkdir()
    np.save(d / "y.npy", x)
    text = fails(gmm, str(d))
    assert "data variable `x` is missing" in text and "y" in text
    d = tmp_path / "wrong_shape"
    d.mkdir()
    np.save(d / "x.npy", x[:, 0])
    assert "`x` has 1 axes but is declared with 2" in fails(gmm, str(d))


def test_the_command_line(gmm, x, tmp_path, capsys):
    d = tmp_path / "data"
    d.mkdir()
    bad = x.copy()
    bad[250, 0] = np.inf
    np.save(d / "x.npy", bad)
    code, out, err = run_cli(["run", MODELS / "gmm.ppvi", "--data", d, "--chunk-size", "16", "--quiet"], capsys)
    assert code == 2 and f"{d / 'x.npy'}: error: `x[250, 0]` is inf" in err and "Traceback" not in err
    np.save(d / "x.npy", x)
    code, out, err = run_cli(["run", MODELS / "gmm.ppvi", "--data", d, "--chunk-size", "100", "--max-iter", "3",
                              "--tol", "0", "--out", tmp_path / "r.json", "--quiet"], capsys)
    assert code == 0, err
    r = ppvi.load_result(str(tmp_path / "r.json"))
    assert "z" not in r.q and r.provenance.algorithm["local_q"] == "z"
    p = np.load(tmp_path / "r.local" / "q_z__p.npy", mmap_mode="r")
    assert p.shape == (272, 6)
    np.testing.assert_allclose(np.sum(p, axis=1), 1.0, rtol=1e-12)
