"""Data read chunk by chunk, never whole (docs/data.md, "Data beyond memory").

A :class:`Chunked` source gives every data variable's shape and dtype without reading it, and the rows
[a, b) of its first axis on demand.  Readers:

- a directory of ``.npy`` files (one per variable) or an uncompressed ``.npz`` (``numpy.savez``): rows are
  read by ``os.pread`` at their offset in the file, never through a memory map, so the pages read do not
  stay in the process's resident memory;
- Parquet (pyarrow): a column per variable (a list column for a vector per row; or, for a model with one
  2-D data variable, every numeric column), read a row group at a time;
- Zarr (a group of arrays, or one array), read a chunk of the first axis at a time;
- Dask arrays (one, or a dict by name) and Dask DataFrames passed to ``fit``: computed partition by
  partition in this process (no cluster is needed).

Reading never validates: :func:`ppvi.io.data.validate_rows` checks each chunk as the fit reads it.
"""

from __future__ import annotations

import os
import sys
import zipfile
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ppvi.io.reading import fail, numbers_hint

SCAN_ROWS = 1 << 14       # rows a pass over a whole column (an index's largest value, its groups) reads at a time
NPY_HINT = "save each data variable with numpy.save(DIR/NAME.npy, array), or all with numpy.savez (uncompressed)"


@dataclass
class Column:
    """One variable of a chunked source: its whole shape and dtype, and a reader of rows [a, b)."""

    shape: tuple[int, ...]
    dtype: np.dtype
    read: Callable[[int, int], np.ndarray]
    label: str | None = None       # the file it is in, where that is not the source's own path


@dataclass
class Chunked:
    """A source read chunk by chunk: ``label`` names it in diagnostics, ``native`` is its own chunk length
    along the rows (row groups, Zarr chunks, Dask partitions), if it has one."""

    label: str
    columns: dict[str, Column]
    native: int | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def offered(self) -> tuple[str, ...]:
        return tuple(self.columns)

    def rows(self, name: str, a: int, b: int) -> np.ndarray:
        c = self.columns[name]
        if b <= a and c.shape:          # (a chunk of groups without a row: nothing to read)
            return np.empty((0,) + c.shape[1:], dtype=c.dtype)
        return c.read(a, b)

    def whole(self, name: str) -> np.ndarray:
        return self.columns[name].read(0, self.columns[name].shape[0]) if self.columns[name].shape else \
            self.columns[name].read(0, 0)

    def close(self) -> None:
        for c in self.closers:
            c()
        self.closers.clear()


# ----------------------------------------------------------------- .npy files
def _npy_header(path: str, fh, name: str) -> tuple[tuple[int, ...], np.dtype, int, bool]:
    """(shape, dtype, offset of the data, whether in Fortran order) of the .npy array at the file's position."""
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
    except Exception as e:      # any failure to parse the header is a malformed file, whatever numpy raises
        raise fail(path, f"`{name}`: not a readable .npy array ({type(e).__name__}: {e})", NPY_HINT) from None
    if dtype.hasobject or dtype.kind not in "biuf" or dtype.subdtype is not None:
        raise fail(path, f"`{name}` is not numeric (dtype {dtype})",
                   numbers_hint(dtype.kind in "USO", "data read in chunks"))
    return tuple(int(n) for n in shape), dtype, fh.tell(), bool(fortran and len(shape) > 1)


def _pread(path: str, name: str, fd: int, view: memoryview, at: int) -> None:
    got = 0
    while got < len(view):
        n = os.preadv(fd, [view[got:]], at + got)
        if n <= 0:
            raise fail(path, f"`{name}` is truncated: the file ends before the data its header declares", NPY_HINT)
        got += n


def _pread_rows(path: str, name: str, fd: int, offset: int, shape: tuple[int, ...], dtype: np.dtype,
                fortran: bool = False):
    """A reader of rows [a, b): one read of a C array's rows, or one per column of a Fortran array's."""
    cols = int(np.prod(shape[1:], dtype=np.int64)) if shape else 1
    item = dtype.itemsize

    def read(a: int, b: int) -> np.ndarray:
        if not shape:
            a, b = 0, 1
        # (read into a NumPy array, aligned as the kernels were compiled for: a bytearray's buffer need not be)
        buf = np.empty((b - a) * cols, dtype=dtype)
        view = memoryview(buf).cast("B")
        if not fortran:
            _pread(path, name, fd, view, offset + a * cols * item)
            return buf.reshape((b - a,) + shape[1:]) if shape else buf.reshape(())
        run = (b - a) * item       # (column j holds rows 0..N−1 at offset + j·N·item)
        for j in range(cols):
            _pread(path, name, fd, view[j * run:(j + 1) * run], offset + (j * shape[0] + a) * item)
        return np.ascontiguousarray(buf.reshape(cols, b - a).T.reshape((b - a,) + shape[1:], order="F"))
    return read


def _check_size(path: str, name: str, shape, dtype, offset: int, size: int) -> None:
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if offset + need > size:
        raise fail(path, f"`{name}` is truncated: its header declares shape {shape} of {dtype} ({need:,} bytes) but "
                         f"the file holds {max(0, size - offset):,}", NPY_HINT)


def read_npy_dir(path: str, names: list[str]) -> Chunked:
    """A directory of NAME.npy files; only the ``names`` the model uses are opened."""
    out = Chunked(path, {})
    present = sorted(f[:-4] for f in os.listdir(path) if f.endswith(".npy"))
    for name in names:
        if name not in present:
            continue
        file = os.path.join(path, name + ".npy")
        fd = os.open(file, os.O_RDONLY)
        out.closers.append(lambda fd=fd: os.close(fd))
        with open(file, "rb", closefd=True) as fh:
            shape, dtype, offset, fortran = _npy_header(file, fh, name)
        _check_size(file, name, shape, dtype, offset, os.fstat(fd).st_size)
        out.columns[name] = Column(shape, dtype, _pread_rows(file, name, fd, offset, shape, dtype, fortran), file)
    _offer(out, present)
    return out


def read_npz_stored(path: str, names: list[str]) -> Chunked:
    """An uncompressed .npz (numpy.savez): each member is a .npy stored as is at an offset in the file."""
    out = Chunked(path, {})
    with zipfile.ZipFile(path) as z:
        members = {i.filename[:-4]: i for i in z.infolist() if i.filename.endswith(".npy")}
    fd = os.open(path, os.O_RDONLY)
    out.closers.append(lambda: os.close(fd))
    size = os.fstat(fd).st_size
    for name in names:
        info = members.get(name)
        if info is None:
            continue
        if info.compress_type != zipfile.ZIP_STORED:
            out.close()
            raise fail(path, f"`{name}` is compressed: a compressed .npz cannot be read in chunks",
                       "save it with numpy.savez (not savez_compressed), or as a directory of .npy files")
        local = os.pread(fd, 30, info.header_offset)
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            out.close()
            raise fail(path, f"`{name}`: corrupt zip entry", NPY_HINT)
        start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")
        with open(path, "rb") as fh:
            fh.seek(start)
            shape, dtype, offset, fortran = _npy_header(path, fh, name)
        _check_size(path, name, shape, dtype, offset, min(size, start + info.file_size))
        out.columns[name] = Column(shape, dtype, _pread_rows(path, name, fd, offset, shape, dtype, fortran))
    _offer(out, sorted(members))
    return out


def _offer(out: Chunked, names: list[str]) -> None:
    """Record every name the source holds (for 'did you mean') without reading them."""
    out.all_names = tuple(names)       # type: ignore[attr-defined]


# ----------------------------------------------------------------- Parquet
def read_parquet(path: str, names: list[str], single_matrix: str | None) -> Chunked:
    """A Parquet file: a column per variable (a list column: a vector per row), or, for ``single_matrix`` (a
    model's one 2-D data variable, not a column's name), every numeric column; a row group at a time."""
    try:
        import pyarrow.parquet as pq
        import pyarrow as pa
    except ImportError:
        raise fail(path, "reading Parquet needs pyarrow", 'pip install "ppvi[stream]"') from None
    try:
        f = pq.ParquetFile(path)
    except Exception as e:      # pyarrow raises ArrowInvalid, OSError…, for a file that is not Parquet
        raise fail(path, f"cannot read Parquet: {e}", "write it with pandas.DataFrame.to_parquet or pyarrow") from None
    schema = f.schema_arrow
    meta = f.metadata
    starts = np.concatenate([[0], np.cumsum([meta.row_group(i).num_rows for i in range(meta.num_row_groups)])])
    total = int(starts[-1])
    cache: dict = {}

    def group(i: int, cols: tuple[str, ...]):
        key = (i, cols)
        if key not in cache:
            cache.clear()
            try:
                cache[key] = f.read_row_group(i, columns=list(cols))
            except Exception as e:
                raise fail(path, f"cannot read row group {i} (rows {starts[i]}–{starts[i + 1] - 1}): {e}") from None
        return cache[key]

    def reader(cols: tuple[str, ...], width: int | None, matrix: bool = False):
        def read(a: int, b: int) -> np.ndarray:
            parts = []
            for i in range(int(np.searchsorted(starts, a, side="right")) - 1, len(starts) - 1):
                if starts[i] >= b:
                    break
                t = group(i, cols)
                lo, hi = max(a, starts[i]) - starts[i], min(b, starts[i + 1]) - starts[i]
                parts.append(_arrow_rows(path, t, cols, width, matrix, int(lo), int(hi), int(starts[i])))
            return np.concatenate(parts) if len(parts) != 1 else parts[0]
        return read

    out = Chunked(path, {}, native=int(meta.row_group(0).num_rows) if meta.num_row_groups else None)
    fields = {fl.name: fl for fl in schema}
    if single_matrix is not None and single_matrix not in fields:
        numeric = tuple(fl.name for fl in schema if pa.types.is_integer(fl.type) or pa.types.is_floating(fl.type)
                        or pa.types.is_boolean(fl.type))
        if not numeric:
            raise fail(path, f"no numeric column for `{single_matrix}`")
        out.columns[single_matrix] = Column((total, len(numeric)), np.dtype(float), reader(numeric, None, True))
    for name in names:
        fl = fields.get(name)
        if fl is None:
            continue
        t = fl.type
        if pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t):
            inner = t.value_type
            width = t.list_size if pa.types.is_fixed_size_list(t) else None
            if width is None:
                first = group(0, (name,)).column(0)[0].as_py() if total else []
                width = len(first or [])
            if not (pa.types.is_integer(inner) or pa.types.is_floating(inner) or pa.types.is_boolean(inner)):
                raise fail(path, f"column `{name}` is not numeric (type {t})")
            out.columns[name] = Column((total, width), np.dtype(float), reader((name,), width))
        elif pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
            out.columns[name] = Column((total,), np.dtype(float), reader((name,), None))
        else:
            raise fail(path, f"column `{name}` is not numeric (type {t})",
                       numbers_hint(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t),
                                    "data read in chunks"))
    _offer(out, list(fields))
    return out


def _arrow_rows(path: str, table, cols: tuple[str, ...], width: int | None, matrix: bool, lo: int, hi: int,
                first: int) -> np.ndarray:
    """Rows lo..hi of a row group as floats: one column (scalars, or lists of ``width``), or (``matrix``) several
    side by side.  A null is NaN, which the fit's check of each chunk reports with its row."""
    part = table.slice(lo, hi - lo)
    if width is None:
        out = np.empty((hi - lo, len(cols)), dtype=float)
        for j, c in enumerate(cols):
            out[:, j] = part.column(c).to_numpy(zero_copy_only=False).astype(float)
        return out if matrix else out[:, 0]
    column = part.column(cols[0]).combine_chunks()
    if column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise fail(path, f"column `{cols[0]}` has a missing value at row {first + lo + row}",
                   "remove or impute missing values (support for missing data comes later)")
    lengths = np.diff(column.offsets.to_numpy()) if hasattr(column, "offsets") else np.full(len(column), width)
    bad = np.flatnonzero(lengths != width)
    if bad.size:
        raise fail(path, f"column `{cols[0]}` holds {int(lengths[bad[0]])} entries at row {first + lo + int(bad[0])}, "
                         f"{width} at row 0", "every row of a vector column has the same length")
    values = column.flatten().to_numpy(zero_copy_only=False).astype(float)
    return values.reshape(hi - lo, width)


# ----------------------------------------------------------------- Zarr
def read_zarr(path: str, names: list[str]) -> Chunked:
    """A Zarr group of arrays by name (or one array, for a model with one data variable: ``names[0]``)."""
    try:
        import zarr
    except ImportError:
        raise fail(path, "reading Zarr needs zarr", 'pip install "ppvi[stream]"') from None
    try:
        node = zarr.open(path, mode="r")
    except Exception as e:      # zarr raises several kinds for a store that is not Zarr
        raise fail(path, f"cannot open Zarr store: {e}", "write it with zarr.save_group or zarr.open_group") from None
    arrays = {names[0]: node} if isinstance(node, zarr.Array) and len(names) == 1 else \
        {k: node[k] for k in (node.array_keys() if hasattr(node, "array_keys") else [])}
    out = Chunked(path, {})
    for name in names:
        arr = arrays.get(name)
        if arr is None:
            continue
        dtype = np.dtype(arr.dtype)
        if dtype.kind not in "biuf":
            raise fail(path, f"`{name}` is not numeric (dtype {dtype})",
                   numbers_hint(dtype.kind in "USO", "data read in chunks"))
        if arr.ndim:
            out.native = int(arr.chunks[0]) if out.native is None else out.native

        def read(a: int, b: int, arr=arr, name=name) -> np.ndarray:
            try:
                return np.asarray(arr[a:b] if arr.ndim else arr[...])
            except Exception as e:
                raise fail(path, f"cannot read `{name}` rows {a}–{b - 1}: {e}") from None
        out.columns[name] = Column(tuple(int(n) for n in arr.shape), dtype, read)
    _offer(out, sorted(arrays))
    return out


# ----------------------------------------------------------------- Dask
def is_dask(data: object) -> bool:
    """A Dask array or DataFrame, or a dict holding one (no import of Dask for anything else)."""
    if "dask" not in sys.modules:
        return False
    items = data.values() if isinstance(data, dict) else [data]
    return any(type(v).__module__.startswith("dask") for v in items)


DASK_LABEL = "<dask>"


def read_dask(data: object, names: list[str], single_matrix: str | None, one: str | None) -> Chunked:
    """Dask arrays (one for a model with one data variable ``one``, or a dict by name) or a Dask DataFrame,
    computed a partition at a time in this process."""
    import dask.array as da
    import dask.dataframe as dd

    out = Chunked(DASK_LABEL, {})
    if isinstance(data, dd.DataFrame):
        lengths = np.asarray(data.map_partitions(len).compute(scheduler="synchronous"), dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)])
        out.native = int(lengths[0]) if len(lengths) else None
        cols = [str(c) for c in data.columns]
        pick: dict[str, tuple[str, ...]] = {n: (n,) for n in names if n in cols}
        if single_matrix is not None and single_matrix not in cols:
            pick[single_matrix] = tuple(c for c in cols if np.dtype(data[c].dtype).kind in "biuf")

        def reader(name: str, chosen: tuple[str, ...], matrix: bool):
            def read(a: int, b: int) -> np.ndarray:
                parts = []
                for i in range(int(np.searchsorted(starts, a, side="right")) - 1, len(lengths)):
                    if starts[i] >= b:
                        break
                    frame = data.partitions[i][list(chosen)].compute(scheduler="synchronous")
                    lo, hi = max(a, starts[i]) - starts[i], min(b, starts[i + 1]) - starts[i]
                    part = frame.iloc[int(lo):int(hi)]
                    for c in chosen:
                        if np.dtype(part[c].dtype).kind not in "biuf":
                            raise fail(DASK_LABEL, f"column `{c}` is not numeric (dtype {part[c].dtype})",
                                       numbers_hint(getattr(part[c].dtype, "kind", "O") in "USO",
                                                    "data read in chunks"))
                    values = part.to_numpy(dtype=float, na_value=np.nan)
                    parts.append(values if matrix else values[:, 0])
                return np.concatenate(parts)
            return read
        for name, chosen in pick.items():
            matrix = name == single_matrix and name not in cols
            shape = (int(starts[-1]), len(chosen)) if matrix else (int(starts[-1]),)
            out.columns[name] = Column(shape, np.dtype(float), reader(name, chosen, matrix))
        _offer(out, cols)
        return out
    arrays = data if isinstance(data, dict) else {one: data} if one is not None else {}
    for name in names:
        arr = arrays.get(name)
        if arr is None:
            continue
        if not isinstance(arr, da.Array):
            arr = da.from_array(np.asarray(arr), chunks=-1)
        if arr.ndim:
            out.native = int(arr.chunks[0][0]) if out.native is None else out.native

        def read(a: int, b: int, arr=arr) -> np.ndarray:
            return np.asarray((arr[a:b] if arr.ndim else arr).compute(scheduler="synchronous"))
        out.columns[name] = Column(tuple(int(n) for n in arr.shape), np.dtype(arr.dtype), read)
    _offer(out, list(arrays))
    return out


# ----------------------------------------------------------------- which
STREAM_FORMATS = "a directory of .npy files, an uncompressed .npz, a .parquet file or a .zarr store"


def chunked_kind(path: str) -> str | None:
    """The chunked reader for ``path``: "npy" (a directory of .npy), "npz", "parquet", "zarr", or None."""
    ext = os.path.splitext(path.rstrip("/"))[1].lower()
    if ext == ".zarr" or (os.path.isdir(path) and any(os.path.exists(os.path.join(path, f)) for f in
                                                       ("zarr.json", ".zgroup", ".zarray"))):
        return "zarr"
    if os.path.isdir(path):
        return "npy"
    return {".npz": "npz", ".parquet": "parquet", ".pq": "parquet"}.get(ext)


# ----------------------------------------------------------------- groups in long format
SORT_HINT = "sort the rows by `{name}` (numpy.argsort({name}, kind=\"stable\") applied to every data variable), or " \
            "load the data whole"


def group_starts(read: Callable[[int, int], np.ndarray], rows: int, label: str, name: str, wanted,
                 step: int) -> dict[int, int]:
    """The first row of each group in ``wanted`` (group numbers) in a column ``name`` of ``rows`` rows naming
    each row's group, sorted (long-format data: a document's tokens are a run of rows): one pass, ``step``
    rows a read, as a reader of sorted long-format data finds where each group begins.  Unsorted rows are
    refused at the first row that goes back (docs/scale.md, "Groups"); the pass stops at the first row of
    the last wanted group (asking for the group past the last checks every row)."""
    want = np.unique(np.asarray(list(wanted), dtype=np.int64))
    first = np.zeros(len(want), dtype=np.int64)
    last = None
    for a in range(0, rows, max(1, step)):
        col = np.asarray(read(a, min(rows, a + step))).astype(np.int64)
        back = np.flatnonzero(np.diff(col) < 0)
        if last is not None and len(col) and col[0] < last:
            at, before, value = a, last, col[0]
        elif back.size:
            at, before, value = a + int(back[0]) + 1, col[back[0]], col[back[0] + 1]
        else:
            first += np.searchsorted(col, want, side="left")   # (rows of this read in a group before each wanted one)
            last = col[-1] if len(col) else last
            if len(want) and last is not None and last >= want[-1]:
                break           # (sorted so far: no later row is in a group before a wanted one)
            continue
        raise fail(label, f"`{name}[{at}]` = {value} comes after `{name}[{at - 1}]` = {before}: read in chunks, the "
                          f"rows of a group (every `{name}` value) must be one run, sorted by `{name}`",
                   SORT_HINT.format(name=name))
    return dict(zip(want.tolist(), first.tolist()))
