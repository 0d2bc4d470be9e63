"""The fits the result tests share, each made once per process (a cold fit compiles for seconds); as fixtures,
``from result_fits import gmm``."""

from __future__ import annotations

import functools
import warnings

import pytest

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


@pytest.fixture(scope="module")
def gmm() -> ppvi.Result:
    """The README's main job: the 2-D mixture of Old Faithful with K = 6, four components empty out."""
    return fitted("gmm")


@pytest.fixture(scope="module")
def gmm_1d() -> ppvi.Result:
    return fitted("gmm_1d", seed=1)
