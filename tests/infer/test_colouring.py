"""Two-colour updates of one binary latent on a bipartite graph (docs/derivation.md, section 7, "Schedule").

models/ising.ppvi writes a grid as one latent s[N] with its adjacency as data A[N, N].  Where A's graph is
bipartite the engine updates the checkerboard's two colours in turn, each colour's elements in parallel:
within a colour no two elements are coupled, so the sweep equals Gauss–Seidel in the order "colour 0, then
colour 1" and stays exact coordinate ascent.  Checked against a NumPy sweep written here (p_i = σ(η_i),
η_i = 2h_i + 2 Σ_j J_ij (2p_j − 1) for log p̃ = Σ h_i σ_i + ½ Σ J_ij σ_i σ_j, σ = 2s − 1), the tanh
mean-field equations, and log Z by enumeration.  The fits reuse the ising kernels tests/infer/test_energy.py
compiles.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import MODELS
from ppvi.api import Model
from ppvi.codegen.cache import fixed_sizes, load as load_module
from ppvi.codegen.plan import ArrayNames
from ppvi.infer.colouring import two_colouring
from ppvi.infer.program import Program
from ppvi.io.data import bind, check_dims, source_of
from test_energy import assert_monotone, fit_ising, grid, log_z_ising


@pytest.fixture(scope="module")
def ising():
    return Model.load(str(MODELS / "ising.ppvi"))


def triangle() -> np.ndarray:
    return np.ones((3, 3)) - np.eye(3)


def test_a_grid_is_coloured_as_a_checkerboard():
    elements, starts = two_colouring([grid(4, 1.0)])
    rows, cols = np.divmod(elements, 4)
    assert starts.tolist() == [0, 8, 16] and sorted(elements.tolist()) == list(range(16))
    assert np.all((rows + cols)[:8] % 2 == 0) and np.all((rows + cols)[8:] % 2 == 1)


def test_a_one_sided_pattern_couples_both_ways_and_the_diagonal_does_not_count():
    A = np.zeros((4, 4))
    A[0, 1] = A[2, 1] = A[3, 2] = 1.0         # only above or below the diagonal: still the path 0-1-2-3
    np.fill_diagonal(A, 5.0)
    elements, starts = two_colouring([A])
    assert elements.tolist() == [0, 2, 1, 3] and starts.tolist() == [0, 2, 4]


def test_an_odd_cycle_has_no_two_colouring():
    elements, edge = two_colouring([triangle()])
    assert elements is None and triangle()[edge] == 1.0
    # two matrices together: each alone bipartite, their union a triangle
    a, b = np.zeros((3, 3)), np.zeros((3, 3))
    a[0, 1] = a[1, 2] = 1.0
    b[0, 2] = 1.0
    assert two_colouring([a])[0] is not None and two_colouring([a, b])[0] is None


def gauss_seidel(J: np.ndarray, h: np.ndarray, p: np.ndarray, order) -> np.ndarray:
    """One sweep of the mean-field updates in ``order``, each element from the newest values (NumPy)."""
    p = p.copy()
    for i in order:
        eta = 2 * h[i] + 2 * J[i] @ (2 * p - 1)
        p[i] = 1 / (1 + np.exp(-eta))
    return p


def coupled_grid(side: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    J = grid(side, 0.6) * rng.uniform(0.5, 1.5, (side * side,) * 2)
    return (J + J.T) / 2, rng.normal(0, 0.5, side * side)


def program(model: Model, J: np.ndarray, h: np.ndarray) -> Program:
    m = model.checked
    bound = bind(m, source_of({"A": J / 0.5, "y": h}, m), check_dims(m, {}, "fit", "{name}={value!r}"))
    prog = Program.build(m, load_module(m, fixed=fixed_sizes(m, bound.sizes))[0], bound)
    prog.initialise(np.random.default_rng(0))
    return prog


def test_one_colour_sweep_is_gauss_seidel_in_colour_order(ising):
    """The plan's colour kernel on a 4 × 4 grid equals element-by-element updates (NumPy) in the colouring's
    order, and in any order of each colour's elements (no element of a colour reads another)."""
    J, h = coupled_grid(4, 11)
    prog = program(ising, J, h)
    assert "s" in prog.coloured and not prog.notes
    elements = prog.state[ArrayNames.constant("colour", "s")]
    p = np.random.default_rng(0).uniform(0.05, 0.95, 16)
    prog.state["q_s__p"][:] = p
    prog.update("s")
    got = prog.state["q_s__p"].copy()
    np.testing.assert_allclose(got, gauss_seidel(J, h, p, elements), rtol=0, atol=1e-14)
    shuffled = np.concatenate([elements[:8][::-1], np.random.default_rng(1).permutation(elements[8:])])
    np.testing.assert_allclose(got, gauss_seidel(J, h, p, shuffled), rtol=0, atol=1e-14)
    # while plain C order is another sweep: the schedule did change
    assert np.abs(got - gauss_seidel(J, h, p, range(16))).max() > 1e-6


@pytest.mark.parametrize("side", [3, 4])
def test_the_colour_fixed_point_solves_the_tanh_equations_below_log_z(ising, side):
    J, h = coupled_grid(side, side)
    r = fit_ising(ising, J, h, max_iter=300)
    m = 2 * np.asarray(r.q["s"]["p"]) - 1
    np.testing.assert_allclose(m, np.tanh(h + J @ m), atol=1e-10)
    assert_monotone(r.elbo_trace)
    assert not r.warnings and r.provenance.sweep == ("s in two colours, each in parallel",)
    if side == 3:
        assert r.elbo <= log_z_ising(J, h)


def test_an_odd_cycle_falls_back_to_gauss_seidel_and_says_so(ising):
    J, h = 0.4 * triangle(), np.array([0.3, -0.2, 0.5])
    with pytest.warns(UserWarning, match="not bipartite"):
        r = fit_ising(ising, J, h, max_iter=200)
    assert any("not bipartite" in w and "Gauss" in w for w in r.warnings)
    assert r.provenance.sweep == ("s",)
    m = 2 * np.asarray(r.q["s"]["p"]) - 1
    np.testing.assert_allclose(m, np.tanh(h + J @ m), atol=1e-10)
    assert r.elbo <= log_z_ising(J, h)
    assert_monotone(r.elbo_trace)
    prog = program(ising, J, h)
    assert "s" not in prog.coloured
    p = np.full(3, 0.5)
    prog.state["q_s__p"][:] = p
    prog.update("s")
    np.testing.assert_allclose(prog.state["q_s__p"], gauss_seidel(J, h, p, range(3)), rtol=0, atol=1e-14)


@pytest.mark.long
def test_a_grid_written_with_offsets_sweeps_by_parity(tmp_path):
    """models/ising_grid.ppvi (its own kernels: a compile, hence --long): one sweep is
    Gauss–Seidel in the order "(i + j) even, then odd" (NumPy), and the fit solves the tanh equations below
    log Z (3 × 3, enumeration)."""
    model = Model.load(str(MODELS / "ising_grid.ppvi"))
    H, W = 3, 3
    rng = np.random.default_rng(5)
    y = rng.normal(0, 0.5, (H, W))
    J = grid(3, 0.5)
    m = model.checked
    bound = bind(m, source_of({"y": y}, m), check_dims(m, {}, "fit", "{name}={value!r}"))
    prog = Program.build(m, load_module(m, fixed=fixed_sizes(m, bound.sizes))[0], bound)
    prog.initialise(np.random.default_rng(0))
    assert "s" in prog.coloured and prog.plan.latents["s"].pattern == ()
    p = rng.uniform(0.05, 0.95, (H, W))
    prog.state["q_s__p"][:] = p
    prog.update("s")
    odd = np.indices((H, W)).sum(axis=0).ravel() % 2
    order = np.concatenate([np.flatnonzero(odd == 0), np.flatnonzero(odd == 1)])
    np.testing.assert_allclose(prog.state["q_s__p"].ravel(), gauss_seidel(J, y.ravel(), p.ravel(), order),
                               rtol=0, atol=1e-14)
    r = model.fit({"y": y}, tol=0, max_iter=300)
    mm = 2 * np.asarray(r.q["s"]["p"]).ravel() - 1
    np.testing.assert_allclose(mm, np.tanh(y.ravel() + J @ mm), atol=1e-10)
    assert r.elbo <= log_z_ising(J, y.ravel())
    assert_monotone(r.elbo_trace)


THREADS = """
import numpy as np
from ppvi.api import Model
fits = [Model.load({models!r}[k]).fit(dict(np.load({data!r}[k])), tol=0, max_iter=60) for k in range(2)]
np.save({out!r}, np.concatenate([np.asarray(a).ravel() for r in fits for a in (r.q["s"]["p"], r.elbo_trace)]))
"""


@pytest.mark.long
def test_one_and_two_threads_give_the_same_bits(tmp_path):
    """models/ising.ppvi (colours from A's graph) on a 4 × 4 grid and models/ising_grid.ppvi (by parity) on a
    16 × 16 image, each fitted in a process of its own on 1 and on 2 threads."""
    J, h = coupled_grid(4, 7)
    np.savez(tmp_path / "matrix.npz", A=J / 0.5, y=h)
    np.savez(tmp_path / "grid.npz", y=np.random.default_rng(8).choice([-1.0, 1.0], (16, 16)))
    models = [str(MODELS / "ising.ppvi"), str(MODELS / "ising_grid.ppvi")]
    data = [str(tmp_path / "matrix.npz"), str(tmp_path / "grid.npz")]
    got = []
    for threads in (1, 2):
        out = tmp_path / f"t{threads}.npy"
        code = THREADS.format(models=models, data=data, out=str(out))
        env = {**os.environ, "NUMBA_NUM_THREADS": str(threads)}
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        got.append(np.load(out))
    assert np.array_equal(got[0], got[1])
