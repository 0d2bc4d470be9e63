"""The warm path's shortcuts through Numba's and SciPy's internals, each worth a part of a warm run's second.

Everything here leans on internals that no release promises to keep, so it is quarantined: imported only
through :func:`ppvi.codegen.cache.fast_load`, skipped with ``PPVI_FAST_LOAD=0``, and any failure to import or
to install it leaves the kernels on Numba's own path (tests/codegen/test_cache.py shows both).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.machinery
import importlib.util
import os
import pickle
import sys
import weakref
from types import ModuleType

import llvmlite
import numba
from numba.core import environment
from numba.core.caching import FunctionCache, IndexDataCacheFile
from numba.core.compiler_lock import global_compiler_lock
from numba.core.dispatcher import Dispatcher
from numba.core.runtime import nrtdynmod, rtsys

from ppvi.cachefiles import cache_dir
from ppvi.errors import PPVIError
from ppvi.files import write_atomic


def install(module: ModuleType) -> None:
    """Give the generated ``module``'s own kernels (not the runtime's, which they import) the cache that
    loads machine code without the compiler, over the Numba cache it was written for only: a Numba without
    ``_load_overload`` keeps its own."""
    if not hasattr(FunctionCache, "_load_overload"):
        return
    for kernel in vars(module).values():
        if isinstance(kernel, Dispatcher) and kernel.py_func.__module__ == module.__name__ and \
                type(kernel._cache) is FunctionCache and type(kernel._cache._cache_file) is IndexDataCacheFile:
            kernel._cache.__class__ = MachineCodeCache
            kernel._cache._cache_file.__class__ = MachineCodeFile


class MachineCodeCache(FunctionCache):
    """Numba's on-disk cache of a kernel, read without loading the compiler first.

    Before every lookup Numba refreshes its target context: it imports and
    installs all of its lowering registries (NumPy, linalg, random, typed
    containers…), about 0.4 s of a warm run, though machine code read from the
    cache needs only the runtime (NRT) it calls into.  Here a hit initialises
    just the runtime (:func:`initialize_runtime`); a miss refreshes as Numba
    would, then Numba compiles.
    """

    def load_overload(self, sig, target_context):
        initialize_runtime(target_context)
        try:
            cres = self._load_overload(sig, target_context)
        except Exception:      # (machine code that needs more of Numba than its runtime: load it as Numba does)
            target_context.refresh()
            try:
                return self._load_overload(sig, target_context)
            except Exception:  # (a damaged entry: a miss; the compile that follows writes it again)
                return None
        if cres is None:
            target_context.refresh()
        return cres


class MachineCodeFile(IndexDataCacheFile):
    """A kernel's cache files: the data unpickled with :func:`environment_without_import`; a damaged index or
    data file (truncated, emptied, overwritten) read as absent, so the kernel is compiled and written again;
    writes fsynced before they replace the old file."""

    def _load_index(self):
        try:
            return super()._load_index()
        except Exception:          # (damaged: a miss, and the save after the compile rewrites it)
            return {}

    def _load_data(self, name):
        try:
            with open(self._data_path(name), "rb") as fh:
                return _KernelUnpickler(fh).load()
        except OSError:
            raise
        except Exception as e:     # (damaged: IndexDataCacheFile.load reads an OSError as "absent")
            raise OSError(f"damaged cache file {name}") from e

    @contextlib.contextmanager
    def _open_for_write(self, filepath):
        with super()._open_for_write(filepath) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


class _KernelUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("numba.core.environment", "_rebuild_env"):
            return environment_without_import
        return super().find_class(module, name)


def environment_without_import(modname: str, consts: list, env_name: str) -> environment.Environment:
    """Numba's ``_rebuild_env``, but a module of Numba's own is not imported for its globals.

    Every function a kernel calls has an environment: the constants it boxes, and the
    globals of its module, which only object-mode code reads.  The NumPy functions Numba
    implements (``np.empty``, slicing…) live in modules such as ``numba.np.arrayobj``, whose
    import takes 0.07 s of a warm run; their code is nopython and never reads those globals.
    Such an environment gets a dict holding only the module's name.  It is shared by the kernels
    that call the function, as Numba shares its own, but kept out of Numba's memo, so anything
    compiled later in the process builds its own from the real module.
    """
    if modname in sys.modules or not modname.startswith("numba."):
        return environment._rebuild_env(modname, consts, env_name)
    env = environment.lookup_environment(env_name) or _WITHOUT_IMPORT.get(env_name)
    if env is None:
        env = environment.Environment({"__name__": modname})
        env.consts[:] = consts
        env.env_name = env_name
        _WITHOUT_IMPORT[env_name] = env
    return env


_WITHOUT_IMPORT: weakref.WeakValueDictionary = weakref.WeakValueDictionary()    # (as Numba's memo: alive while used)


def initialize_runtime(target_context) -> None:
    """``rtsys.initialize``, with NRT's own functions read as machine code from the cache directory.

    Numba compiles its runtime's atomic and memory functions from LLVM IR in every process
    that uses it (0.03–0.05 s); loaded as object code, as the kernels are, they take 2 ms.
    Only how that one library is made changes: Numba's ``initialize`` still registers the
    runtime's C symbols and sets its state.
    """
    if getattr(rtsys, "_init", False):
        return
    make = nrtdynmod.compile_nrt_functions
    with global_compiler_lock:            # (reentrant: initialize takes it again)
        nrtdynmod.compile_nrt_functions = _nrt_functions
        try:
            rtsys.initialize(target_context)
        finally:
            nrtdynmod.compile_nrt_functions = make


def _nrt_functions(ctx):
    """``nrtdynmod.compile_nrt_functions(ctx)``, kept as object code keyed by its IR (which Numba's debug
    settings change), Numba, llvmlite and the CPU."""
    ir_module, library = nrtdynmod.create_nrt_module(ctx)
    codegen = ctx.codegen()
    h = hashlib.sha256(repr((str(ir_module), numba.__version__, llvmlite.__version__,
                             codegen.magic_tuple())).encode())
    name = f"nrt_{h.hexdigest()[:24]}.pickle"
    try:
        with open(os.path.join(cache_dir(), name), "rb") as fh:
            return codegen.unserialize_library(pickle.load(fh))
    except Exception:
        pass                               # (absent or unreadable: compile it, as Numba does)
    library.enable_object_caching()
    library.add_ir_module(ir_module)
    library.finalize()
    try:
        write_atomic(os.path.join(cache_dir(), name),
                     pickle.dumps(library.serialize_using_object_code(), protocol=pickle.HIGHEST_PROTOCOL), private=True)
    except PPVIError:
        pass                               # (a cache that cannot be written: the next process compiles it again)
    return library


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
