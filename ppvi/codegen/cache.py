"""The generated module on disk, keyed by the model text and the ppvi, Numba and Python versions.

A warm run imports the cached module (Numba's own cache holds the machine
code beside it), so it does neither SymPy work nor compilation, and its kernels
load without Numba's compiler registries (:class:`MachineCodeCache`).  The cache
directory is :func:`ppvi.cachefiles.cache_dir`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.machinery
import importlib.util
import os
import pickle
import sys
import threading
import weakref
from types import ModuleType

import llvmlite
import numba
from numba.core import environment
from numba.core.caching import FunctionCache, IndexDataCacheFile
from numba.core.compiler_lock import global_compiler_lock
from numba.core.dispatcher import Dispatcher
from numba.core.runtime import nrtdynmod, rtsys

from ppvi import __version__
from ppvi.cachefiles import cache_dir, ppvi_fingerprint
from ppvi.errors import PPVIError
from ppvi.files import write_atomic
from ppvi.language.sequences import refuse_uncompiled


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
    for kernel in vars(module).values():
        # the module's own kernels (not the runtime's, which they import), and only over the Numba cache
        # this was written for: a Numba without _load_overload keeps its own
        if isinstance(kernel, Dispatcher) and kernel.py_func.__module__ == name and \
                type(kernel._cache) is FunctionCache and hasattr(FunctionCache, "_load_overload") and \
                type(kernel._cache._cache_file) is IndexDataCacheFile:
            kernel._cache.__class__ = MachineCodeCache
            kernel._cache._cache_file.__class__ = MachineCodeFile
    sys.modules[name] = module
    return module


def load(model, source_of=None, fixed: dict[str, int] | None = None) -> tuple[ModuleType, bool]:
    """The compiled module of a checked model specialised to the ``fixed`` dims, and whether it came from
    the cache.

    ``source_of(model)`` generates the source on a miss (SymPy is imported
    only then).
    """
    refuse_uncompiled(model, "compiled inference (`ppvi run`, `fit`)")
    path = path_for(model.text, fixed)
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
