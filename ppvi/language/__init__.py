"""Front end: text -> AST (:mod:`.parser`) -> checked model (:mod:`.check`).

The parser (and Lark with it) is imported on first use, so a run whose model
comes from the cache (:func:`load_cached`) never imports it.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys

from ppvi.language.check import CheckedModel, Factor, Variable, check


def __getattr__(name: str):
    if name in ("parse", "parse_file"):
        from ppvi.language import parser

        return getattr(parser, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load(path: str) -> CheckedModel:
    """Parse and check a model file."""
    from ppvi.language.parser import parse_file

    return check(parse_file(path))


def loads(text: str, path: str = "<model>") -> CheckedModel:
    """Parse and check model text."""
    from ppvi.language.parser import parse

    return check(parse(text, path))


def load_cached(path: str) -> CheckedModel:
    """``load(path)``, kept on disk for the next run: pickled under a key of the path as given, the file's
    bytes and ppvi's own source, so a warm ``ppvi run`` neither imports Lark nor parses (0.1 s).  Only a
    model that checks is kept; a model with mistakes is checked, and reported, every time."""
    from ppvi.cachefiles import cache_dir, ppvi_fingerprint
    from ppvi.errors import PPVIError
    from ppvi.files import write_atomic

    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError:
        return load(path)                  # (which reports it)
    h = hashlib.sha256()
    for part in (os.fsencode(path), raw, ppvi_fingerprint().encode(), sys.version.encode()):
        h.update(part)
        h.update(b"\0")
    try:
        file = os.path.join(cache_dir(), f"model_{h.hexdigest()[:24]}.pickle")
    except PPVIError:
        return load(path)                  # (no private cache folder: check every time; a run says why)
    try:
        with open(file, "rb") as fh:
            model = pickle.load(fh)
        if isinstance(model, CheckedModel):
            return model
    except Exception:
        pass                               # (absent, or written by something else: check again)
    model = load(path)
    try:
        write_atomic(file, pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL), private=True)
    except PPVIError:
        pass                               # (a read-only cache: the next run checks again)
    return model


__all__ = ["CheckedModel", "Factor", "Variable", "check", "load", "load_cached", "loads", "parse", "parse_file"]
