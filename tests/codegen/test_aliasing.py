"""No kernel sees one array under two names (issue 14, item 1).

A Normal's ⟨x⟩ is its mean: the program keeps one array under both names.  Numba's parallel loops assume
that distinct array arguments do not overlap, so a kernel that wrote ``q_X__mean`` and read ``m_X__x`` read
stale values (the factor models below lowered the ELBO).  Every alias is resolved to the array that owns
the memory when the code is emitted; here every kernel of every model is checked against the bound state.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from programs import all_models, kernels, program


@pytest.mark.parametrize("name", all_models())
def test_no_kernel_receives_one_array_under_two_names(name):
    p = program(name)
    assert p.plan.latents or p.plan.points
    for label, info in kernels(p.plan):
        arrays = {a: p.state[a] for a in info.args if isinstance(p.state.get(a), np.ndarray)}
        for a, b in itertools.combinations(arrays, 2):
            assert not np.shares_memory(arrays[a], arrays[b]), f"{name}: {label} gets one array as {a} and {b}"
