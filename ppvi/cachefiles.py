"""ppvi's cache directory and the files in it, without importing Numba or SymPy.

The cache lives in ``$PPVI_CACHE_DIR``, else ``$XDG_CACHE_HOME/ppvi``, else
``~/.cache/ppvi``.  It holds each model's generated module (codegen.cache),
Numba's machine code beside it, and checked models (language.load_cached).
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile


def cache_dir() -> str:
    root = os.environ.get("PPVI_CACHE_DIR")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "ppvi")
    os.makedirs(root, exist_ok=True)
    return root


@functools.lru_cache(maxsize=1)
def ppvi_fingerprint() -> str:
    """A digest of ppvi's own source, so a changed compiler never reuses what the old one wrote."""
    root = os.path.dirname(os.path.abspath(__file__))
    h = hashlib.sha256()
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(f for f in files if f.endswith((".py", ".lark"))):
            with open(os.path.join(folder, name), "rb") as fh:
                h.update(fh.read())
    return h.hexdigest()


def write_atomic(path: str, content: str | bytes) -> None:
    """Write to a temporary file beside ``path``, then rename: a reader never sees half a file."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
