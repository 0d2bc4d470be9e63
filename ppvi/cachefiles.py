"""ppvi's cache directory and the files in it, without importing Numba or SymPy.

The cache lives in ``$PPVI_CACHE_DIR``, else ``$XDG_CACHE_HOME/ppvi``, else
``~/.cache/ppvi``.  It holds each model's generated module (codegen.cache),
Numba's machine code beside it, checked models (language.load_cached) and the
parser's tables.  Everything in it is executed or unpickled, so the folder must
be the user's own and closed to everyone else (docs/SECURITY.md): it is created
with mode 0700, a folder of ours that others may write is closed, and one that
belongs to another user is refused.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import stat

from ppvi.errors import Diagnostic, PPVIError


def cache_dir() -> str:
    """The private cache folder, created if need be; a :class:`PPVIError` (exit 2) where it cannot be had."""
    root = os.environ.get("PPVI_CACHE_DIR")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "ppvi")
    return private_dir(root)


def private_dir(root: str) -> str:
    """``root`` as a folder only this user can read or write, or a PPVIError naming why it cannot be."""
    hint = "point PPVI_CACHE_DIR at a folder of your own"
    try:
        os.makedirs(root, mode=0o700, exist_ok=True)
        info = os.stat(root)
    except FileExistsError:
        raise PPVIError(Diagnostic("the cache folder is a file", root, hint=hint)) from None
    except OSError as e:
        raise PPVIError(Diagnostic(f"cannot create the cache folder: {e.strerror or e}", root, hint=hint)) from None
    if not stat.S_ISDIR(info.st_mode):
        raise PPVIError(Diagnostic("the cache folder is not a folder", root, hint=hint))
    if info.st_uid != os.geteuid():
        # Its modules and pickles would run as this user: never read another user's cache.
        raise PPVIError(Diagnostic(f"the cache folder belongs to another user (uid {info.st_uid})", root, hint=hint))
    if stat.S_IMODE(info.st_mode) != 0o700:
        try:
            os.chmod(root, 0o700)
        except OSError as e:
            raise PPVIError(Diagnostic(f"cannot make the cache folder private: {e.strerror or e}", root,
                                       hint=hint)) from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise PPVIError(Diagnostic("the cache folder is not writable", root, hint=hint))
    return root


@functools.lru_cache(maxsize=1)
def ppvi_fingerprint() -> str:
    """A digest of ppvi's own source, so a changed compiler never reuses what the old one wrote: the package
    and the grammar, also where a development install keeps it outside the package (grammar/)."""
    root = os.path.dirname(os.path.abspath(__file__))
    try:
        spec = importlib.util.find_spec("ppvi.grammar")
        grammar = list(spec.submodule_search_locations or []) if spec is not None else []
    except ImportError:
        grammar = []
    h = hashlib.sha256()
    for top in [root] + [os.path.abspath(g) for g in grammar if not os.path.abspath(g).startswith(root + os.sep)]:
        for folder, _, files in sorted(os.walk(top)):
            for name in sorted(f for f in files if f.endswith((".py", ".lark"))):
                with open(os.path.join(folder, name), "rb") as fh:
                    h.update(fh.read())
    return h.hexdigest()
