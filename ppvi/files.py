"""Writing files without losing data, and holding signals while a write is under way.

Every file ppvi writes — results, generated modules, cached models — goes through
:func:`write_atomic`: a reader sees the old file or the new one, never half of
one, and the new one is on disk (fsync) before it replaces the old.  Special
files (``/dev/stdout``, a pipe, ``/dev/null``) are written in place, never
replaced by a regular file; a symbolic link is written through.  New files get
the mode the umask gives (the cache's are private).

:class:`Interrupts` is the command line's handler of SIGINT, SIGTERM and SIGHUP:
each stops a fit the way Ctrl-C does (the current q is kept), and one that comes
while a result is being written waits until the file is whole.  :class:`Held`
holds them for the library around work that must not stop half-way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
from typing import Iterable, Iterator

from ppvi.errors import Diagnostic, PPVIError

_TMP = ".ppvi-tmp"       # .<name>.<pid>.ppvi-tmp: a writer's temporary file, named so a later write can clean up


def write_atomic(path: str, content: str | bytes | Iterable[bytes], *, private: bool = False) -> None:
    """Write ``content`` to ``path`` whole or not at all; an OS error is a :class:`PPVIError` naming the path.

    ``content`` may be pieces, written as they come (a large result's text is never held whole).
    ``private``: mode 0600 whatever the umask (the cache's files)."""
    data = (content.encode("utf-8"),) if isinstance(content, str) else \
        (content,) if isinstance(content, (bytes, bytearray, memoryview)) else content
    target = os.path.realpath(path)          # (through a link: the link stays, its target is replaced)
    try:
        if _is_special(target):
            _write_in_place(target, data)
            return
        folder, name = os.path.split(target)
        _remove_stale(folder, name)
        tmp = os.path.join(folder, f".{name}.{os.getpid()}{_TMP}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o666)
        try:
            with os.fdopen(fd, "wb") as fh:
                for piece in data:
                    fh.write(piece)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _sync_folder(folder)
    except OSError as e:
        raise PPVIError(Diagnostic(f"cannot write: {os.strerror(e.errno) if e.errno else e}", path)) from None


def check_writable(path: str, formats: tuple[str, ...]) -> None:
    """Before a long computation: ``path`` can be written (its folder exists and is writable, or it is a special
    file), and its extension is one of ``formats`` — a :class:`PPVIError` otherwise."""
    target = os.path.realpath(path)
    if _is_special(target):
        return
    ext = os.path.splitext(path)[1].lower()
    if ext not in formats:
        raise PPVIError(Diagnostic(f"unknown result format `{ext or '(none)'}`", path,
                                   hint="the extension chooses it: " + " or ".join(formats)))
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise PPVIError(Diagnostic("no such folder", path, hint="create the folder first"))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PPVIError(Diagnostic("the folder is not writable", path))
    if os.path.isdir(target):
        raise PPVIError(Diagnostic("is a folder", path, hint="name a file"))


def _is_special(path: str) -> bool:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _write_in_place(path: str, data: Iterable[bytes]) -> None:
    with open(path, "wb") as fh:
        for piece in data:
            fh.write(piece)
        fh.flush()


def _remove_stale(folder: str, name: str) -> None:
    """Temporary files of this target left by writers that no longer run (killed mid-write)."""
    stem = f".{name}."
    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for entry in entries:
        if not (entry.startswith(stem) and entry.endswith(_TMP)):
            continue
        pid = entry[len(stem):-len(_TMP)]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, entry))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sync_folder(folder: str) -> None:
    """The rename itself on disk (a crash after it keeps the new file)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP: a fit stops as on Ctrl-C, keeping its current q."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Interrupts:
    """The command line's handler of SIGINT, SIGTERM and SIGHUP (never installed by the library itself: a
    user's own process keeps its handlers).  ``received`` is the first signal that came."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self):
        self.received: int | None = None
        self._holding = False
        self._held: int | None = None

    def _handle(self, signum, frame) -> None:
        self.received = self.received or signum
        if self._holding:
            self._held = self._held or signum
            return
        raise Interrupted(signum)

    def check(self, *_) -> None:
        """Raise a signal that came but whose exception was swallowed (the handler ran inside a gc callback or
        a ``__del__``, which only print what they raise): a fit calls this after every sweep."""
        if self.received is not None and not self._holding:
            raise Interrupted(self.received)

    @contextlib.contextmanager
    def installed(self) -> Iterator["Interrupts"]:
        saved = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        try:
            yield self
        finally:
            for s, h in saved.items():
                signal.signal(s, h)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """A signal that comes meanwhile is held, and raised when the block ends (the write is whole by then)."""
        self._holding = True
        try:
            yield
        finally:
            self._holding = False
            held, self._held = self._held, None
        if held is not None:
            raise Interrupted(held)


class Held:
    """SIGINT, SIGTERM and SIGHUP held while a block runs that a signal must not cut in half (a Dask cluster
    starting or stopping), then handed to whatever handler was there before, the user's own included:
    ``with held: …`` then ``held.deliver()`` where it is safe to be interrupted.  Outside the main thread,
    where no handler can be set, nothing is held."""

    SIGNALS = Interrupts.SIGNALS

    def __init__(self):
        self.signum: int | None = None
        self._saved: dict = {}

    def __enter__(self) -> "Held":
        try:
            self._saved = {s: signal.signal(s, self._hold) for s in self.SIGNALS}
        except ValueError:        # (not the main thread)
            self._saved = {}
        return self

    def _hold(self, signum, frame) -> None:
        self.signum = self.signum or signum

    def __exit__(self, *exc) -> None:
        for s, h in self._saved.items():
            signal.signal(s, h)

    def deliver(self) -> None:
        """The held signal, if one came, to the handler restored on exit (raise_signal: the default action too)."""
        signum, self.signum = self.signum, None
        if signum is not None:
            signal.raise_signal(signum)


__all__ = ["Held", "Interrupted", "Interrupts", "check_writable", "write_atomic"]
