"""The generated module on disk, keyed by the model text and the ppvi, Numba and Python versions.

A warm run imports the cached module (Numba's own cache holds the machine
code beside it), so it does neither SymPy work nor compilation, and its kernels
load without Numba's compiler registries (:mod:`ppvi.codegen.fastload`, off with
``PPVI_FAST_LOAD=0``).  The cache directory is :func:`ppvi.cachefiles.cache_dir`.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from types import ModuleType

import numba

from ppvi import __version__
from ppvi.cachefiles import cache_dir, ppvi_fingerprint
from ppvi.files import write_atomic


def fixed_sizes(model, sizes: dict[str, int] | None = None) -> dict[str, int]:
    """The dims a model gives a value (``dim K = 10``), at their values in ``sizes`` (a --dim override)
    or else the model's: the kernels are specialised to them (see codegen.module.ModuleWriter)."""
    sizes = sizes or {}
    return {n: int(sizes.get(n, d.default)) for n, d in model.dims.items() if d.default is not None}


def key(model_text: str, fixed: dict[str, int] | None = None) -> str:
    h = hashlib.sha256()
    sizes = ",".join(f"{k}={v}" for k, v in sorted((fixed or {}).items()))
    for part in (model_text, sizes, __version__, ppvi_fingerprint(), numba.__version__, sys.version):
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:24]


def path_for(model_text: str, fixed: dict[str, int] | None = None) -> str:
    return os.path.join(cache_dir(), f"ppvi_{key(model_text, fixed)}.py")


def fast_load() -> ModuleType | None:
    """:mod:`ppvi.codegen.fastload`, the warm path's shortcuts through Numba's internals, unless
    ``PPVI_FAST_LOAD=0`` or it fails to import (a Numba whose internals moved): then Numba's own path."""
    if os.environ.get("PPVI_FAST_LOAD", "1") == "0":
        return None
    try:
        from ppvi.codegen import fastload
    except Exception:
        return None
    return fastload


# The last line of a generated module: a digest of everything before it.  A module is imported only from
# bytes that carry their own digest, so a truncated, emptied or edited file is generated again, never run.
SEAL = "# ppvi-seal "


def sealed(source: str) -> str:
    body = source if source.endswith("\n") else source + "\n"
    return body + SEAL + hashlib.sha256(body.encode("utf-8")).hexdigest() + "\n"


def _unsealed(raw: bytes) -> str | None:
    """The module's source if its seal holds, else None."""
    body, sep, digest = raw.rstrip(b"\n").rpartition(b"\n" + SEAL.encode())
    if not sep or hashlib.sha256(body + b"\n").hexdigest().encode() != digest:
        return None
    try:
        return (body + b"\n").decode("utf-8")
    except UnicodeDecodeError:
        return None


# One module is imported at a time: a thread must never see a module that another is still executing.
_IMPORTING = threading.RLock()


def import_source(path: str, source: str) -> ModuleType:
    """The module of ``source`` (the verified text of ``path``), published in sys.modules only once whole."""
    name = os.path.splitext(os.path.basename(path))[0]
    if name in sys.modules:
        return sys.modules[name]
    module = ModuleType(name)
    module.__file__ = path
    exec(compile(source, path, "exec"), module.__dict__)
    fast = fast_load()
    if fast is not None:
        try:
            fast.install(module)
        except Exception:       # (internals that fail when used: the kernels keep Numba's own cache)
            pass
    sys.modules[name] = module
    return module


def load(model, source_of=None, fixed: dict[str, int] | None = None) -> tuple[ModuleType, bool]:
    """The compiled module of a checked model specialised to the ``fixed`` dims, and whether it came from
    the cache.

    ``source_of(model)`` generates the source on a miss (SymPy is imported
    only then).
    """
    from ppvi.language.missing import cache_text

    path = path_for(cache_text(model), fixed)
    with _IMPORTING:
        name = os.path.splitext(os.path.basename(path))[0]
        if name in sys.modules:
            return sys.modules[name], True
        try:
            with open(path, "rb") as fh:
                source = _unsealed(fh.read())
        except OSError:
            source = None                  # (absent, or unreadable: generated again)
        warm = source is not None
        if not warm:
            if source_of is None:
                from ppvi.codegen.module import generate
                from ppvi.derive import derive

                source_of = lambda m: generate(derive(m), fixed)  # noqa: E731
            source = sealed(source_of(model))
            write_atomic(path, source, private=True)
        return import_source(path, source), warm
