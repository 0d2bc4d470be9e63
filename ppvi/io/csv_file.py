"""``.csv`` data files: a header of column names, then one record per line.

Read with the standard library's csv module (its Sniffer picks the delimiter
among ``, ; tab |``), strictly: every record has the header's number of
fields, and every cell of a column the model uses is a finite number.  A cell
that is not is an error at its line and column; a missing value (an empty
cell, ``NA``, ``nan``…) is an error too, except in a column the plan says may
have missing entries (a variable declared ``: missing``): there it is NaN.  An
unnamed first column is the row index pandas' ``to_csv`` writes: it is dropped
with a note.  Only the columns the model uses are converted, a block of rows
at a time.
"""

from __future__ import annotations

import csv
import itertools
import math
import operator
import re
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from ppvi.errors import Diagnostic, PPVIError
from ppvi.io.labels import Column, from_cells
from ppvi.io.reading import at, fail, line_chunks, shown

# What pandas reads as missing by default, so a file pandas wrote with NaNs is read as missing, not as text.
NA_TOKENS = frozenset({"", "NA", "N/A", "n/a", "NaN", "nan", "-NaN", "-nan", "NULL", "null", "None", "#N/A",
                       "#N/A N/A", "#NA", "<NA>", "-1.#IND", "-1.#QNAN", "1.#IND", "1.#QNAN"})
DELIMITERS = ",;\t|"
SAMPLE_CHARS = 1 << 16     # the Sniffer's sample: at most these many characters and lines
SAMPLE_LINES = 100
BLOCK = 1 << 16          # rows converted at a time
_INDEX_NAME = re.compile(r"Unnamed: 0")      # how pandas names an unnamed column it read back
_DECIMAL_COMMA = re.compile(r"\s*[+-]?\d+,\d+\s*")
_THOUSANDS = re.compile(r"\d,\d{3}\b")


@dataclass(frozen=True)
class Plan:
    """The columns a model takes from a table (positions among its names), and whether it takes the whole
    table as one matrix (then a column of text is left out with a note, and names may repeat)."""

    columns: tuple[int, ...]
    whole: bool
    missing: frozenset[int] = frozenset()     # columns whose missing cells (NA_TOKENS) are read as NaN
    index: frozenset[int] = frozenset()       # columns of `index(K)` data: text in them is labels (ppvi.io.labels)


Choose = Callable[[tuple[str, ...]], Plan]


@dataclass(frozen=True)
class Table:
    """The columns of a data file: every column's name, the converted columns by position in ``names``, and
    notes for the user (a dropped index column, columns of text left out)."""

    names: tuple[str, ...]
    columns: dict[int, np.ndarray]
    notes: tuple[Diagnostic, ...]


def read_csv(path: str, choose: Choose) -> Table:
    """Read a .csv file; ``choose(names)`` says which columns to convert."""
    chunks = line_chunks(path)
    first = next(chunks, [])
    return _Reader(path, itertools.chain([first], chunks), _delimiter(first)).table(choose)


def _delimiter(lines: list[str]) -> str:
    """The delimiter the Sniffer finds in the first lines; the comma for one column (or nothing to tell by).

    (A sample without any candidate is one column: the Sniffer would fail, slowly, after trying them all.)"""
    sample, size = [], 0
    for line in itertools.islice(lines, SAMPLE_LINES):
        sample.append(line)
        size += len(line)
        if size >= SAMPLE_CHARS:
            break
    text = "".join(sample)
    if not any(d in text for d in DELIMITERS):
        return ","
    try:
        return csv.Sniffer().sniff(text, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","


def _blank(record: list[str]) -> bool:
    return not record or record == [""]


def _number(cell: str) -> bool:
    """A cell that reads as a finite number."""
    if cell.strip() in NA_TOKENS:
        return False
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


class _Reader:
    """One pass over the records, a block at a time; the lines of the current block are kept to place errors.

    The csv module pulls lines from whole chunks (a C-level chain), so a line costs no Python call."""

    def __init__(self, path: str, chunks: Iterator[list[str]], delimiter: str):
        self.path = path
        self.delimiter = delimiter
        self.pieces: list[tuple[int, list[str]]] = []     # (line number of its first line, lines) read lately
        self.first = 1                                    # the line number where the current block begins
        self.records = csv.reader(itertools.chain.from_iterable(self._recorded(chunks)), delimiter=delimiter,
                                  skipinitialspace=True, strict=True)
        self.trailing: int | None = None    # a blank line in a one-column file: an empty cell if data follow

    def _recorded(self, chunks: Iterator[list[str]]) -> Iterator[list[str]]:
        line_no = 1
        for lines in chunks:
            self.pieces.append((line_no, lines))
            line_no += len(lines)
            yield lines

    def _block_lines(self) -> list[str]:
        """The lines from the current block's first on, as far as they have been read."""
        out: list[str] = []
        for start, lines in self.pieces:
            out.extend(lines[max(0, self.first - start):])
        return out

    def _next_block(self, n: int) -> list[list[str]]:
        self.first = self.records.line_num + 1
        self.pieces = [p for p in self.pieces if p[0] + len(p[1]) > self.first]
        try:
            return list(itertools.islice(self.records, n))
        except csv.Error as e:
            line_no = self.records.line_num
            lines = self._block_lines()
            message, hint = str(e), "quote a field that holds the delimiter, and double a quote inside quotes"
            if "field limit" in message:
                message, hint = f"a field longer than {csv.field_size_limit():,} characters", "a cell holds one number"
            elif "new-line character" in message:
                message, hint = "a carriage return (\\r) alone ends a line", "save the file with \\n or \\r\\n line ends"
            raise at(self.path, line_no, 1, lines[line_no - self.first] if lines else "",
                     f"cannot read the record: {message}", hint) from None

    # ------------------------------------------------------------- reading
    def table(self, choose: Choose) -> Table:
        names, skip, notes = self._header()
        header_line, header = self.first, self._block_lines()[0]
        fields = len(names) + skip
        if all(_number(n) for n in names) and names != [str(i) for i in range(len(names))]:
            raise at(self.path, header_line, 1, header, "the first line holds numbers, not column names",
                     "a .csv data file begins with a line of column names, e.g. x,y")
        plan = choose(tuple(names))
        for j in plan.columns:
            if not plan.whole and names.count(names[j]) > 1:
                raise at(self.path, header_line, 1, header, f"column `{names[j]}` appears more than once",
                         "give each column its own name")
        parts: dict[int, list[np.ndarray]] = {j: [] for j in plan.columns}
        text: list[int] = []
        labelled: dict[int, list[str]] = {}      # index columns read as labels: their cells
        first_block = True
        while block := self._next_block(BLOCK):
            rows, positions = self._data_rows(block, fields, names[0])
            if not rows:
                continue
            if set(map(len, rows)) != {fields}:
                k = next(k for k, r in enumerate(rows) if len(r) != fields)
                raise self._fields_error(positions[k], len(rows[k]), fields, header_line)
            for j in plan.columns:
                if j in text:
                    continue
                cells = list(map(operator.itemgetter(j + skip), rows))
                if j not in labelled and j in plan.index and not plan.whole and any(map(_label, cells)):
                    labelled[j] = [_cell_of(x) for part in parts[j] for x in part]
                if j in labelled:
                    if j not in plan.missing and not all(c.strip() not in NA_TOKENS for c in cells):
                        k = next(k for k, c in enumerate(cells) if c.strip() in NA_TOKENS)
                        raise self._cell_error(positions[k], j + skip, cells[k], names[j])
                    labelled[j] += cells
                    continue
                values = _floats(cells, j in plan.missing)
                if values is None:
                    if first_block and plan.whole and _text(cells, unnamed=names[j] == ""):
                        text.append(j)
                        continue
                    k = next(k for k, c in enumerate(cells) if not _number(c))
                    raise self._cell_error(positions[k], j + skip, cells[k], names[j])
                parts[j].append(values)
            first_block = False
        for j in text:
            what = "has no name and no values" if names[j] == "" else "holds text, not numbers"
            notes.append(Diagnostic(f"column {j + skip + 1}{f' `{shown(names[j])}`' if names[j] else ''} {what}: "
                                    "left out", self.path, severity="note"))
        columns: dict[int, np.ndarray | Column] = {
            j: np.concatenate(parts[j]) if parts[j] else np.empty(0) for j in plan.columns if j not in text}
        for j, cells in labelled.items():
            columns[j] = from_cells(cells, NA_TOKENS)
            if any(map(_number, cells)):
                notes.append(Diagnostic(f"column `{shown(names[j])}` holds text and numbers: every cell is read as a "
                                        "label, a number too (codes follow the labels' sorted order)", self.path,
                                        severity="note", hint="write codes 0..K−1 only, or labels only"))
        return Table(tuple(names), columns, tuple(notes))

    def _header(self) -> tuple[list[str], int, list[Diagnostic]]:
        """The column names (an index column dropped), how many leading fields are dropped, notes."""
        while True:
            rows = self._next_block(1)
            if not rows:
                raise fail(self.path, "the .csv file is empty", "the first line names the columns: x,y")
            if not _blank(rows[0]):
                break
        names = [name.strip() for name in rows[0]]
        if len(names) > 1 and (names[0] == "" or _INDEX_NAME.fullmatch(names[0])):
            return names[1:], 1, [Diagnostic("the first column has no name: read as the row index (as pandas' "
                                             "to_csv writes it) and left out", self.path, severity="note",
                                             hint="write the file with to_csv(path, index=False), or name the "
                                                  "column to use it")]
        return names, 0, []

    def _data_rows(self, block: list[list[str]], fields: int, name: str) -> tuple[list[list[str]], Sequence[int]]:
        """The records of a block that hold data, and their positions in it.  A blank line is skipped, but in
        a one-column file it is an empty cell unless only blank lines follow."""
        if fields == 1:
            rows = [r or [""] for r in block]
            end = len(rows)
            while end and rows[end - 1] == [""]:
                end -= 1
            if end and self.trailing is not None:
                raise self._blank_line_error(self.trailing, name)
            if end < len(rows) and self.trailing is None:
                self.trailing = self._spans(end)[0]
            return rows[:end], range(end)
        if all(block) and [""] not in block:
            return block, range(len(block))
        positions = [i for i, r in enumerate(block) if not _blank(r)]
        return [block[i] for i in positions], positions

    # ------------------------------------------------------------- errors, placed in the file
    def _spans(self, i: int) -> tuple[int, str]:
        """The first line number of record ``i`` of the current block, and its text."""
        lines = self._block_lines()
        records = csv.reader(iter(lines), delimiter=self.delimiter, skipinitialspace=True)
        before = 0
        for k, _ in enumerate(records):
            if k == i:
                return self.first + before, "".join(lines[before:records.line_num])
            before = records.line_num
        return self.first, ""

    def _fields_error(self, i: int, got: int, want: int, header_line: int) -> PPVIError:
        line_no, raw = self._spans(i)
        hint = "every record has one field per column"
        if self.delimiter == "," and got > want and _THOUSANDS.search(raw):
            hint = "a thousands separator or a decimal comma splits a number in two: write 1234.5, or quote it"
        return at(self.path, line_no, 1, raw.split("\n")[0],
                  f"this record has {got} fields but the header (line {header_line}) has {want}", hint)

    def _blank_line_error(self, line_no: int, name: str) -> PPVIError:
        return at(self.path, line_no, 1, "", f"an empty cell in column `{shown(name)}`: a missing value",
                  f"impute it, or declare `{shown(name)}` with `: missing` where it is drawn")

    def _cell_error(self, i: int, field: int, cell: str, name: str) -> PPVIError:
        """The error for ``cell``, field ``field`` of record ``i`` of the block."""
        line_no, raw = self._spans(i)
        start, end = _field_span(raw, field, self.delimiter)
        line_no += raw.count("\n", 0, start)
        line_start = raw.rfind("\n", 0, start) + 1
        line_end = raw.find("\n", start)
        line = raw[line_start:line_end if line_end >= 0 else len(raw)]
        token = shown(cell.strip())
        hint = None
        name = shown(name)
        if cell.strip() in NA_TOKENS:
            message = f"{'an empty cell' if token == '' else f'`{token}`'} in column `{name}`: a missing value"
            hint = f"impute it, or declare `{shown(name)}` with `: missing` where it is drawn"
        elif _is_float(cell):
            message = f"`{token}` in column `{name}` is not finite"
            hint = "data must be finite (a float is at most 1.8e308)"
        else:
            message = f"`{token}` in column `{name}` is not a number"
            if _DECIMAL_COMMA.fullmatch(cell):
                hint = "the decimal point is `.`: write 1.5, not 1,5"
        return at(self.path, line_no, start - line_start + 1, line, message, hint, width=max(1, end - start))


def _floats(cells: list[str], missing: bool = False) -> np.ndarray | None:
    """The cells as finite floats, or None if one is not; with ``missing`` a missing cell is NaN."""
    try:
        values = np.fromiter(map(float, cells), float, len(cells))
    except ValueError:
        if not missing:
            return None
        try:
            values = np.fromiter((math.nan if c.strip() in NA_TOKENS else float(c) for c in cells), float, len(cells))
        except ValueError:
            return None
    finite = np.isfinite(values)
    if missing:
        finite |= np.isnan(values)
    return values if finite.all() else None


def _label(cell: str) -> bool:
    """A cell that is neither a number nor missing: in an index column, a label."""
    return cell.strip() not in NA_TOKENS and not _number(cell)


def _cell_of(x: float) -> str:
    """A number read before the column turned out to hold labels, as the label its cell was (``3``, ``2.5``)."""
    x = float(x)
    return "" if math.isnan(x) else str(int(x)) if x.is_integer() else str(x)


def _text(cells: list[str], unnamed: bool) -> bool:
    """A column of text (no number among the cells) — or, unnamed, of nothing at all — not a column of data."""
    return not any(map(_number, cells)) and (unnamed or any(c.strip() not in NA_TOKENS for c in cells))


def _is_float(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _field_span(raw: str, field: int, delimiter: str) -> tuple[int, int]:
    """Offsets in ``raw`` of field number ``field`` of a record (quotes and doubled quotes respected)."""
    i, n = 0, len(raw)
    for k in itertools.count():
        while i < n and raw[i] == " ":
            i += 1
        start = i
        if i < n and raw[i] == '"':
            i += 1
            while i < n:
                if raw[i] == '"':
                    if raw[i + 1:i + 2] == '"':
                        i += 2
                        continue
                    i += 1
                    break
                i += 1
        while i < n and raw[i] != delimiter and raw[i] not in "\r\n":
            i += 1
        if k == field or i >= n or raw[i] != delimiter:
            return start, i
        i += 1
    raise AssertionError("unreachable")
