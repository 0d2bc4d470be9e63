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


def components(r: ppvi.Result) -> tuple[list[int], list[int]]:
    """A mixture's components that hold points (expected size ≥ 0.5) and the empty ones, by number: which
    numbers they get depends on the start, so the tests ask the fit (q(z)) rather than name them."""
    import numpy as np

    sizes = np.asarray(r.q["z"]["p"]).reshape(-1, np.shape(r.q["z"]["p"])[-1]).sum(0)
    return [int(k) for k in np.flatnonzero(sizes >= 0.5)], [int(k) for k in np.flatnonzero(sizes < 0.5)]


def ranges(ks: list[int]) -> str:
    """Numbers as the summary lists them: runs of consecutive ones as a–b (``[0, 2, 3, 5]`` → ``0, 2–3, 5``)."""
    runs: list[list[int]] = []
    for k in ks:
        if runs and k == runs[-1][-1] + 1:
            runs[-1].append(k)
        else:
            runs.append([k])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}–{r[-1]}" for r in runs)


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
