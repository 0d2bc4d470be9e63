"""The pass two_colour (codegen.passes): which latents the plan updates two colours at a time.

The writer makes a colour kernel for a latent whose elements read each other only through data matrices
(models/ising.ppvi's s, through A) or only at odd offsets (models/ising_grid.ppvi); the pass plans it where
the latent is sequential and global and nothing else takes its step, and drops it otherwise.  No kernel is
compiled: the IR and the plan only.
"""

from __future__ import annotations

import dataclasses

import pytest

from conftest import MODELS
from ppvi.codegen.ir import Loop, walk
from ppvi.codegen.module import lower
from ppvi.codegen.passes import run_passes, two_colour
from ppvi.derive import derive
from ppvi.derive.colouring import coupling, parity
from ppvi.language import load


@pytest.fixture(scope="module")
def ising():
    return lower(derive(load(str(MODELS / "ising.ppvi"))))


def test_the_adjacency_matrix_is_the_pattern_and_the_kernel_runs_each_colour_under_prange(ising):
    assert [(c.var, c.pattern) for c in ising.colourings] == [("s", ("v_A",))]
    m = run_passes(ising)
    info = m.plan.latents["s"]
    assert info.colour.name == "colour_s" and info.pattern == ("v_A",) and m.colourings == ()
    k = m.kernel("colour_s")
    assert k.parallel and [n.range.parallel for n in walk(k.body) if isinstance(n, Loop)][:2] == [False, True]
    assert set(info.colour.args) == set(k.params) >= {"c_colour__s", "c_colours__s", "v_A"}


@pytest.mark.parametrize("change", [{"sequential": False}, {"scope": "local"}, {"pair": "t"}])
def test_a_latent_not_swept_in_order_alone_keeps_its_update(ising, change):
    plan = ising.plan
    latents = {"s": dataclasses.replace(plan.latents["s"], **change)}
    m = two_colour(dataclasses.replace(ising, plan=dataclasses.replace(plan, latents=latents)))
    assert m.plan.latents["s"].colour is None and "colour_s" not in [k.name for k in m.kernels]


def test_which_latents_are_coloured_by_data_by_parity_or_not_at_all():
    grid = derive(load(str(MODELS / "ising_grid.ppvi")))
    assert coupling(grid, "s") is None and parity(grid, "s")
    rbm = derive(load(str(MODELS / "rbm.ppvi")))        # (two latents: each side is already one parallel update)
    assert all(coupling(rbm, v) is None and not parity(rbm, v) for v in rbm.q)
