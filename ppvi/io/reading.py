"""Bounded reading of data files: text lines, JSON objects and ``.npz`` members.

Every read has a bound fixed before it starts, so a device (``/dev/zero``), a
pipe that never ends or a compression bomb is a user error, never an
unbounded allocation: text files hold at most :data:`MAX_TEXT_BYTES`, a text
line at most :data:`MAX_LINE_CHARS`, and an ``.npz`` member is decompressed
only when the model uses it and its declared size fits in memory.
"""

from __future__ import annotations

import json
import math
import os
import stat
import zipfile
import zlib
from dataclasses import dataclass
from typing import IO, Iterable, Iterator

import numpy as np

from ppvi.errors import Diagnostic, PPVIError, Span, shown

MAX_TEXT_BYTES = 1 << 30          # a .csv or .json data file; larger data belong in .npz
MAX_LINE_CHARS = 1 << 24          # one line of a .csv file
EXCERPT_CHARS = 100               # the part of a long line shown under a diagnostic


def fail(path: str, message: str, hint: str | None = None) -> PPVIError:
    return PPVIError(Diagnostic(message, path, hint=hint))


def physical_memory() -> int | None:
    """Bytes of memory on this machine, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def size_text(n: int) -> str:
    """Bytes as people read them: 8,000 bytes, 3.2 MiB, 1.5 GiB, 4,352 GiB."""
    if n < 1 << 20:
        return f"{n:,} bytes"
    if n < 1 << 30:
        return f"{n / 2**20:.3g} MiB"
    x = n / 2**30
    return f"{x:,.0f} GiB" if x >= 100 else f"{x:.3g} GiB"


# ----------------------------------------------------------------- positions
def excerpt(line: str, col: int, width: int = 1) -> tuple[str, int, int]:
    """The line as shown under a diagnostic: control characters escaped, at most EXCERPT_CHARS around
    the 1-based column ``col``; returns (text, its column, caret width)."""
    start = max(0, min(col - 1 - EXCERPT_CHARS // 2, len(line) - EXCERPT_CHARS))
    part = line[start:start + EXCERPT_CHARS]
    pieces: list[str] = []
    new_col = None
    for i, ch in enumerate(part):
        if i == col - 1 - start:
            new_col = sum(map(len, pieces)) + 1
        pieces.append(shown(ch))
    text = "".join(pieces)
    if new_col is None:
        new_col = len(text) + 1
    prefix = "…" if start > 0 else ""
    suffix = "…" if start + EXCERPT_CHARS < len(line) else ""
    return prefix + text + suffix, new_col + len(prefix), max(1, min(width, len(text) - new_col + 2))


def at(path: str, line_no: int, col: int, line: str, message: str, hint: str | None = None,
       width: int = 1) -> PPVIError:
    """``FILE:LINE:COL: error: MESSAGE`` with the line (escaped, shortened) and a caret under ``col``."""
    text, c, w = excerpt(line.rstrip("\r\n"), col, width)
    return PPVIError(Diagnostic(message, path, Span(line_no, c, line_no, c + w), text, hint))


# ----------------------------------------------------------------- opening
_TOO_BIG_HINT = "write large data to .npz (numpy.savez)"


def _open_binary(path: str) -> IO[bytes]:
    """The file opened for reading; a regular file no larger than MAX_TEXT_BYTES (a pipe or a device is
    bounded as it is read)."""
    fh = open(path, "rb")
    try:
        st = os.fstat(fh.fileno())
        if stat.S_ISREG(st.st_mode) and st.st_size > MAX_TEXT_BYTES:
            raise fail(path, f"the file holds {size_text(st.st_size)}; a .csv or .json data file holds at most "
                             f"{size_text(MAX_TEXT_BYTES)}", _TOO_BIG_HINT)
    except BaseException:
        fh.close()
        raise
    return fh


_ODD_LINE_ENDS = "\v\f\x1c\x1d\x1e\x85\u2028\u2029"     # where str.splitlines splits besides \n, \r\n and \r


def line_chunks(path: str, chunk: int = 1 << 20) -> Iterator[list[str]]:
    """The lines of a UTF-8 text file, a list per ``chunk`` bytes read (a leading byte-order mark dropped, line
    ends kept, lines ended by ``\n`` alone); a line is at most MAX_LINE_CHARS bytes, the file MAX_TEXT_BYTES."""
    with _open_binary(path) as fh:
        rest, total, lines_before = b"", 0, 0
        while data := fh.read(chunk):
            total += len(data)
            if total > MAX_TEXT_BYTES:
                raise fail(path, f"the file holds more than {size_text(MAX_TEXT_BYTES)}; a .csv or .json data "
                                 f"file holds at most that", _TOO_BIG_HINT)
            if total == len(data):
                data = data.removeprefix(b"\xef\xbb\xbf")
            data = rest + data
            cut = data.rfind(b"\n") + 1
            rest = data[cut:]
            if len(rest) > MAX_LINE_CHARS:
                raise fail(path, f"line {lines_before + 1} is longer than {MAX_LINE_CHARS:,} bytes",
                           "is this a text data file? data files are .npz, .json or .csv")
            if cut:
                lines = _decoded_lines(path, data[:cut], lines_before)
                lines_before += len(lines)
                yield lines
        if rest:
            yield _decoded_lines(path, rest, lines_before)


def _decoded_lines(path: str, data: bytes, lines_before: int) -> list[str]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = lines_before + data.count(b"\n", 0, e.start) + 1
        raise fail(path, f"line {line} is not UTF-8 text (byte 0x{data[e.start]:02x})",
                   "save the file as UTF-8 (in a spreadsheet: CSV UTF-8)") from None
    if text.count("\r") == text.count("\r\n") and not any(ch in text for ch in _ODD_LINE_ENDS):
        return text.splitlines(keepends=True)
    parts = text.split("\n")
    last = parts.pop()
    return [part + "\n" for part in parts] + ([last] if last else [])


# ----------------------------------------------------------------- JSON
def read_json(path: str) -> dict[str, object]:
    """A JSON object of names to (nested lists of) numbers; integers are read as floats, so 10⁴⁰⁰ is a
    value out of range, not an internal error."""
    with _open_binary(path) as fh:
        head = fh.read(4096)
        first = head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")[:1]
        if first not in (b"{", b""):
            raise fail(path, "a .json data file holds an object mapping names to arrays",
                       'e.g. {"x": [1.5, 2.0, 0.3]}')
        raw = head + fh.read(MAX_TEXT_BYTES + 1 - len(head))
        if len(raw) > MAX_TEXT_BYTES:
            raise fail(path, f"the file holds more than {size_text(MAX_TEXT_BYTES)}; a .json data file holds at most "
                             f"that", _TOO_BIG_HINT)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise fail(path, f"the file is not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start})",
                   "save the file as UTF-8") from None
    try:
        obj = json.loads(text, parse_int=float, object_pairs_hook=_unique_keys(path))
    except json.JSONDecodeError as e:
        lines = text.split("\n")          # (the decoder counts lines by \n alone)
        line = lines[e.lineno - 1] if e.lineno <= len(lines) else ""
        raise at(path, e.lineno, e.colno, line, f"not valid JSON: {e.msg}") from None
    except RecursionError:
        raise fail(path, "the JSON is nested too deeply to be data",
                   "a data variable has at most a few axes: [[1, 2], [3, 4]]") from None
    if not isinstance(obj, dict):
        raise fail(path, "a .json data file holds an object mapping names to arrays", 'e.g. {"x": [1.5, 2.0, 0.3]}')
    return obj


def _unique_keys(path: str):
    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        out: dict[str, object] = {}
        for k, v in items:
            if k in out:
                raise fail(path, f"`{shown(k)}` appears twice in one JSON object", "give each name once")
            out[k] = v
        return out
    return pairs


def json_array(path: str, name: str, value: object, missing: bool = False) -> np.ndarray:
    """A JSON value as a float array: numbers (true/false as 1/0) in lists of equal lengths; with ``missing``
    (a variable declared ``: missing``) null is NaN."""
    try:
        a = np.asarray(value)
    except ValueError:
        raise fail(path, f"`{name}` is not an array: its lists have different lengths",
                   "every row of an array has the same number of entries") from None
    if a.dtype.kind in "biuf":
        return a.astype(float)
    obj = np.asarray(value, dtype=object)          # the entries as JSON gave them (a str array hides numbers)
    for index, entry in np.ndenumerate(obj):
        if entry is None and missing:
            obj[index] = math.nan
            continue
        if entry is None:
            raise fail(path, f"`{name}{list(index)}` is null, a missing value",
                       f"impute it, or declare `{name}` with `: missing` where it is drawn")
        if isinstance(entry, (bool, float, int)):
            continue
        what = "a string" if isinstance(entry, str) else ("a list" if isinstance(entry, list) else "an object")
        raise fail(path, f"`{name}{list(index)}` is {what}, not a number",
                   "data arrays hold numbers, in lists of equal lengths")
    return obj.astype(float)


def numbers_hint(text: bool, holder: str) -> str:
    """The hint for data that are not numbers; ``text``: labels, which only .csv, .json and Python objects read
    whole may hold (docs/language.md, "Labels")."""
    if not text:
        return "data arrays hold numbers"
    return (f"labels are read from .csv, .json or a DataFrame, whole; {holder} holds codes 0..K−1 (pandas: "
            f"`s.astype(\"category\").cat.codes`)")


# ----------------------------------------------------------------- .npz
NPZ_HINT = "write the data with numpy.savez(path, name=array, ...)"


@dataclass(frozen=True)
class Npz:
    """The members of an ``.npz`` file the model asked for, and the names of all its arrays."""

    arrays: dict[str, np.ndarray]
    names: tuple[str, ...]


def read_npz(path: str, wanted: Iterable[str], budget: int | None) -> Npz:
    """Decompress only the ``wanted`` members, each after checking its header against the size the zip
    directory declares and against ``budget`` bytes."""
    with open(path, "rb") as fh:
        magic = fh.read(6)
        if magic == b"\x93NUMPY":
            raise fail(path, "this is a .npy file (one array), not an .npz file", NPZ_HINT)
        if magic[:2] != b"PK":
            raise fail(path, "not an .npz file (an .npz file is a zip archive of .npy arrays)", NPZ_HINT)
        fh.seek(0)
        with zipfile.ZipFile(fh) as z:
            members = {info.filename[:-4]: info for info in z.infolist() if info.filename.endswith(".npy")}
            arrays = {}
            for name in wanted:
                if name in members:
                    try:
                        arrays[name] = _member(path, z, members[name], budget)
                    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as e:
                        raise fail(path, f"`{name}` cannot be read: {e}", NPZ_HINT) from None
    return Npz(arrays, tuple(sorted(members)))


def _member(path: str, z: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int | None) -> np.ndarray:
    name = info.filename[:-4]
    if budget is not None and info.file_size > budget:
        raise fail(path, f"`{name}` takes {size_text(info.file_size)} decompressed, more than this machine's "
                         f"{size_text(budget)} of memory")
    with z.open(info) as fp:
        try:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
            else:
                raise ValueError(f"unsupported .npy format version {version[0]}.{version[1]}")
        except (zipfile.BadZipFile, zlib.error, EOFError):
            raise
        except Exception as e:     # any failure to parse the header is a malformed file, whatever numpy raises
            raise fail(path, f"`{name}`: malformed .npy header ({type(e).__name__}: {e})", NPZ_HINT) from None
        if dtype.hasobject or dtype.kind not in "biuf" or dtype.subdtype is not None:
            raise fail(path, f"`{name}` is not numeric (dtype {dtype})", numbers_hint(dtype.kind in "USO", "an .npz"))
        if any(n < 0 for n in shape):
            raise fail(path, f"`{name}`: malformed .npy header (shape {shape})", NPZ_HINT)
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        held = info.file_size - fp.tell()
        if nbytes != held:
            raise fail(path, f"`{name}`: its header declares shape {shape} of {dtype} ({nbytes:,} bytes) but the "
                             f"member holds {held:,} bytes", NPZ_HINT)
        buf = bytearray(nbytes)
        view, got = memoryview(buf), 0
        while got < nbytes:
            n = fp.readinto(view[got:])
            if not n:
                raise fail(path, f"`{name}` is truncated", NPZ_HINT)
            got += n
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order="F" if fortran else "C")
