"""The generated module on disk, keyed by the model text and the ppvi, Numba and Python versions.

A warm run imports the cached module (Numba's own cache holds the machine
code beside it), so it does neither SymPy work nor compilation, and its kernels
load without Numba's compiler registries (:class:`MachineCodeCache`).  The cache
directory is :func:`ppvi.cachefiles.cache_dir`.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import sys
from types import ModuleType

import numba
from numba.core.caching import FunctionCache
from numba.core.dispatcher import Dispatcher
from numba.core.runtime import rtsys

from ppvi import __version__
from ppvi.cachefiles import cache_dir, ppvi_fingerprint, write_atomic


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


class MachineCodeCache(FunctionCache):
    """Numba's on-disk cache of a kernel, read without loading the compiler first.

    Before every lookup Numba refreshes its target context: it imports and
    installs all of its lowering registries (NumPy, linalg, random, typed
    containers…), about 0.4 s of a warm run, though machine code read from the
    cache needs only the runtime (NRT) it calls into.  Here a hit initialises
    just the runtime; a miss refreshes as Numba would, then Numba compiles.
    """

    def load_overload(self, sig, target_context):
        rtsys.initialize(target_context)
        try:
            cres = self._load_overload(sig, target_context)
        except Exception:      # (machine code that needs more of Numba than its runtime: load it as Numba does)
            target_context.refresh()
            return self._load_overload(sig, target_context)
        if cres is None:
            target_context.refresh()
        return cres


def blas_alone() -> None:
    """Make ``scipy.linalg.cython_blas`` importable without ``scipy.linalg``.

    A kernel's ``np.dot`` calls BLAS through Numba, which finds dgemm in
    ``scipy.linalg.cython_blas`` (its ``__pyx_capi__``) at the first call.  Importing that
    module the ordinary way first runs ``scipy.linalg/__init__`` and the whole linalg API
    it pulls in, 0.2 s of a warm run; the extension itself needs none of it and loads in
    milliseconds.  Where it cannot be loaded on its own, Numba imports it as usual.

    For the ``ppvi`` command only (cli): a module loaded this way is not an attribute of
    ``scipy.linalg`` when that is imported later, which code in a user's own process
    (``ppvi.load(...).fit``) might rely on.
    """
    name = "scipy.linalg.cython_blas"
    if name in sys.modules or "scipy.linalg" in sys.modules:
        return
    import scipy

    folder = os.path.join(os.path.dirname(scipy.__file__), "linalg")
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(folder, "cython_blas" + suffix)
        if os.path.exists(path):
            break
    else:
        return
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    except Exception:        # (a SciPy laid out otherwise: the ordinary import still works)
        sys.modules.pop(name, None)


def import_path(path: str) -> ModuleType:
    name = os.path.splitext(os.path.basename(path))[0]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    for kernel in vars(module).values():
        # the module's own kernels (not the runtime's, which they import), and only over the Numba cache
        # this was written for: a Numba without _load_overload keeps its own
        if isinstance(kernel, Dispatcher) and kernel.py_func.__module__ == name and \
                type(kernel._cache) is FunctionCache and hasattr(FunctionCache, "_load_overload"):
            kernel._cache.__class__ = MachineCodeCache
    return module


def load(model, source_of=None, fixed: dict[str, int] | None = None) -> tuple[ModuleType, bool]:
    """The compiled module of a checked model specialised to the ``fixed`` dims, and whether it came from
    the cache.

    ``source_of(model)`` generates the source on a miss (SymPy is imported
    only then).
    """
    path = path_for(model.text, fixed)
    warm = os.path.exists(path)
    if not warm:
        if source_of is None:
            from ppvi.codegen.module import generate
            from ppvi.derive import derive

            source_of = lambda m: generate(derive(m), fixed)  # noqa: E731
        write_atomic(path, source_of(model))
    return import_path(path), warm
