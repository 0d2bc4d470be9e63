"""The fits the result tests share, each made once per process (a cold fit compiles for seconds)."""

from __future__ import annotations

import functools
import warnings

import ppvi
from conftest import MODELS


def quiet_fit(path, data=None, **options) -> ppvi.Result:
    """The model at ``path`` fitted, its warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ppvi.PPVIWarning)
        return ppvi.load(str(path)).fit(data, **options)


@functools.cache
def fitted(stem: str, **options) -> ppvi.Result:
    """``models/STEM.ppvi`` fitted to its data.  Shared: do not change it (a test that must, restores it)."""
    return quiet_fit(MODELS / f"{stem}.ppvi", **options)
