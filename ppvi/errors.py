"""User-facing diagnostics: ``FILE:LINE:COL: error: MESSAGE``, the line, a caret, a hint.

Every mistake in a model, a data file or the flags becomes a :class:`Diagnostic`;
one or more of them travel in a :class:`PPVIError`, which the command line
prints and turns into exit status 2.  Anything else that escapes is an internal
fault (exit 1).
"""

from __future__ import annotations

import difflib
import unicodedata
from dataclasses import dataclass, field
from typing import Iterable, Sequence


@dataclass(frozen=True)
class Span:
    """A 1-based source position; ``end_col`` is exclusive (caret width)."""

    line: int
    col: int
    end_line: int | None = None
    end_col: int | None = None


@dataclass(frozen=True)
class Diagnostic:
    message: str
    path: str = "<model>"
    span: Span | None = None
    source_line: str | None = None
    hint: str | None = None
    severity: str = "error"

    def format(self) -> str:
        where = shown(self.path)
        if self.span is not None:
            where = f"{where}:{self.span.line}:{self.span.col}"
        out = [f"{where}: {self.severity}: {shown(self.message)}"]
        if self.span is not None and self.source_line is not None:
            raw = self.source_line.rstrip("\r\n")
            text = shown(raw).expandtabs(4)
            # Caret column after escaping and tab expansion, so it lines up under the text.
            col = len(shown(raw[: max(self.span.col - 1, 0)]).expandtabs(4))
            width = 1
            if self.span.end_col is not None and (self.span.end_line in (None, self.span.line)):
                width = max(1, self.span.end_col - self.span.col)
            width = max(1, min(width, max(len(text) - col, 1)))
            out.append(f"    {text}")
            out.append("    " + " " * col + "^" + "~" * (width - 1))
        if self.hint:
            out.append(f"hint: {shown(self.hint)}")
        return "\n".join(out)


class PPVIError(Exception):
    """A user's mistake (model, data or flags): exit status 2, never a traceback."""

    def __init__(self, diagnostics: Diagnostic | Sequence[Diagnostic]):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        super().__init__(self.format())

    def format(self) -> str:
        return "\n".join(d.format() for d in self.diagnostics)


class PPVIWarning(UserWarning):
    """A note or warning about the user's input or a fit's end (a symmetric stationary point), carrying its
    :class:`Diagnostic` (``FILE: note: …``, ``FILE: warning: …``); the command line prints the diagnostic,
    Python's warnings machinery shows it to API users."""

    def __init__(self, diagnostic: Diagnostic):
        self.diagnostic = diagnostic
        super().__init__(diagnostic.format())


@dataclass
class Reporter:
    """Collects diagnostics against one source text so a pass can report many."""

    path: str
    text: str
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def line(self, n: int) -> str | None:
        lines = source_lines(self.text)
        return lines[n - 1] if 1 <= n <= len(lines) else None

    def make(self, message: str, span: Span | None, hint: str | None = None) -> Diagnostic:
        src = self.line(span.line) if span is not None else None
        return Diagnostic(message, self.path, span, src, hint)

    def error(self, message: str, span: Span | None, hint: str | None = None) -> None:
        self.diagnostics.append(self.make(message, span, hint))

    def fail(self, message: str, span: Span | None, hint: str | None = None) -> PPVIError:
        return PPVIError(self.diagnostics + [self.make(message, span, hint)])

    def raise_if_any(self) -> None:
        if self.diagnostics:
            # Source order reads best; a stable sort keeps a pass's order for ties.
            ordered = sorted(self.diagnostics, key=lambda d: (d.span.line, d.span.col) if d.span else (0, 0))
            raise PPVIError(ordered)


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """``"did you mean `Normal`?"`` for the closest choice, or None."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    if word.lower() in lowered:
        return f"did you mean `{lowered[word.lower()]}`?"
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


def source_lines(text: str) -> list[str]:
    """A model's lines as its lexer counts them: only \\n ends a line (\\r\\n too).  Python's splitlines also
    breaks at form feeds, U+2028 and their kin, which would put a caret under another line."""
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    return lines[:-1] if lines[-1] == "" else lines        # (as splitlines: no line after the last newline)


# Characters shown escaped: controls (escape sequences, bells), format characters (bidirectional
# overrides), line and paragraph separators, surrogates and unassigned code points.
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def shown(text: str) -> str:
    """``text`` safe to print on a terminal: every hidden character as a Python escape (tabs kept)."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch != "\t" and unicodedata.category(ch) in _HIDDEN:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)
