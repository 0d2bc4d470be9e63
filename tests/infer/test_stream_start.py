"""Streamed fits start and run as in-memory fits of the same seed (docs/scale.md, "The start").

A factor analyser's scores X[n, m] ~ Normal(0, 1), one Normal q per element: the update of X[n, m] reads
the other elements' q of its unit (Gauss–Seidel), so a streamed fit must keep every unit's q(X) between
passes, and start them where an in-memory start draws them (from the prior, at X's turn among the
continuous latents' draws, scaled by the whole data's variance).  The in-memory fit is the reference: the
streamed one takes the same coordinate steps from the same statistics, so the ELBO trace agrees to the
rounding of the sums (1e-12 relative) and q to 1e-10.  The in-memory sweeps themselves are checked against
hand-written factor-analysis updates in tests/corpus/test_factor.py.
"""

import copy
import sys
from pathlib import Path

import numpy as np
import pytest

import ppvi
from ppvi.api import SVI, Memoized

from codegen.programs import FA_BAYES     # (scores X[n, m] ~ Normal(0, 1), loadings W, noise precisions psi)

sys.path.insert(0, str(Path(__file__).parents[1] / "harness"))
from harness_state import python_module  # noqa: E402

@pytest.fixture(scope="module")
def fa(tmp_path_factory):
    d = tmp_path_factory.mktemp("fa")
    (d / "fa.ppvi").write_text(FA_BAYES)
    rng = np.random.default_rng(3)
    loadings, scores = rng.normal(size=(5, 2)), rng.normal(size=(90, 2))
    x = scores @ loadings.T + 0.3 * rng.normal(size=(90, 5))
    (d / "data").mkdir()
    np.save(d / "data" / "y.npy", x)
    return ppvi.load(str(d / "fa.ppvi")), x, str(d / "data")


def same(memory, streamed, names=("W", "psi", "X")):
    np.testing.assert_allclose(streamed.elbo_trace, memory.elbo_trace, rtol=1e-12)
    for var in names:
        for p, value in memory.q[var].params.items():
            np.testing.assert_allclose(streamed.q[var][p], value, rtol=0, atol=1e-10, err_msg=f"q({var}) {p}")


@pytest.mark.parametrize("algorithm, chunk", [(None, 90), (None, 25), (Memoized(3), 20),
                                              (SVI(batch=30, passes=2, shuffle=False), 13)])
def test_element_wise_scores_streamed_equal_in_memory(fa, algorithm, chunk):
    """From a seed, no start given: X drawn from its prior over every unit at its turn, W from its prior (it
    multiplies X), then sweeps that keep q(X).  It was q(X) restarted from 0 at every pass (kept only for a
    group block or several local steps), and the pilot's units drawn only: sweep 1 at −879.23 streamed against
    −881.67 in memory, and the streamed fit stuck near W = 0 (−875.01 after 5 sweeps, −799.91 in memory)."""
    model, x, directory = fa
    memory = model.fit({"y": x}, seed=2, max_iter=5, tol=0, progress=False, algorithm=algorithm)
    streamed = model.fit(directory, seed=2, max_iter=5, tol=0, progress=False, algorithm=algorithm,
                         chunk_size=chunk)
    same(memory, streamed, ("W", "psi") if isinstance(algorithm, Memoized) else ("W", "psi", "X"))
    if isinstance(algorithm, Memoized):
        # (the streamed result's q(X) are one local pass newer: docs/scale.md, "The local q")
        np.testing.assert_allclose(streamed.q["X"]["mean"], memory.q["X"]["mean"], atol=0.05)


def test_scores_are_kept_between_passes_from_a_given_start(fa):
    """From an earlier result's global q: every unit's q(X) from the start's E-step, then kept."""
    model, x, directory = fa
    start = model.fit({"y": x}, seed=1, max_iter=3, tol=0, progress=False).to_dict()
    del start["q"]["X"]
    memory = model.fit({"y": x}, init=start, max_iter=4, tol=0, progress=False)
    streamed = model.fit(directory, init=start, max_iter=4, tol=0, progress=False, chunk_size=40)
    same(memory, streamed)


BICLUSTER = """\
dim N, J
dim K = 2
dim L = 2
const a[K] = 1.0
const b[L] = 1.0
data x[N, J]
pi ~ Dirichlet(a)
rho ~ Dirichlet(b)
for k in K:
    for l in L:
        mu[k, l] ~ Normal(0, 10)
for j in J:
    c[j] ~ Categorical(rho)
for n in N:
    z[n] ~ Categorical(pi)
    for j in J:
        x[n, j] ~ Normal(mu[z[n], c[j]], 1)
"""


@pytest.mark.long
def test_a_global_drawn_before_a_local_takes_the_same_numbers(tmp_path):
    """Rows and columns clustered: the columns' labels c[j] are a global Categorical over a plate, whose start
    draws random rows, and come before the rows' labels z[n] in the canonical order.  Every local draw was
    taken first streamed, before the globals': c and z took other numbers than in memory (sweep 4 at −578.3
    streamed, −992.4 in memory).  Now each local latent's draws are skipped at its own turn."""
    (tmp_path / "b.ppvi").write_text(BICLUSTER)
    model = ppvi.load(str(tmp_path / "b.ppvi"))
    rng = np.random.default_rng(5)
    rows, columns = rng.integers(0, 2, 80), np.array([0, 1, 1, 0, 1, 0])
    x = np.array([[-2.0, 1.0], [2.0, -1.0]])[rows][:, columns] + 0.5 * rng.normal(size=(80, 6))
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "x.npy", x)
    memory = model.fit({"x": x}, seed=4, max_iter=4, tol=0, progress=False)
    streamed = model.fit(str(tmp_path / "data"), seed=4, max_iter=4, tol=0, progress=False, chunk_size=30)
    same(memory, streamed, ("pi", "rho", "mu", "c", "z"))


# the same factor analyser with its scores declared X[m, n]: the units on their second axis
TRANSPOSED = """\
dim N, D
dim M = 2
data y[N, D]
for d in D:
    psi[d] ~ Gamma(1, 1)
    for m in M:
        W[d, m] ~ Normal(0, 1)
for m in M:
    for n in N:
        X[m, n] ~ Normal(0, 1)
for n in N:
    for d in D:
        y[n, d] ~ Normal(sum(m in M: W[d, m] * X[m, n]), precision = psi[d])
"""


@pytest.fixture(scope="module")
def transposed(fa, tmp_path_factory):
    path = tmp_path_factory.mktemp("fa_t") / "t.ppvi"
    path.write_text(TRANSPOSED)
    return ppvi.load(str(path))


@pytest.fixture
def plain(monkeypatch):
    """Every fit's kernels run as plain Python (tests/harness/harness_fit.py): no model compiled for these checks
    of where the units are sliced (the compiled kernels are the same source: tests/harness, check 1)."""
    import ppvi.codegen.cache as cache

    load = cache.load
    monkeypatch.setattr(cache, "load", lambda *a, **k: (lambda m, warm: (python_module(m), warm))(*load(*a, **k)))
    with np.errstate(all="ignore"):
        yield


def transposed_start(start: dict) -> dict:
    """An X[n, m] model's result dict as the X[m, n] model's."""
    out = copy.deepcopy(start)
    out["q"]["X"] = {p: (np.asarray(v).T if p != "family" else v) for p, v in start["q"]["X"].items()}
    return out


@pytest.mark.parametrize("algorithm, chunk", [(None, 25), (Memoized(3), 20),
                                              (SVI(batch=30, passes=2, shuffle=False), 13)])
def test_units_on_another_axis_are_cut_where_they_lie(fa, transposed, plain, tmp_path, algorithm, chunk):
    """Scores declared X[m, n], the units second.  It failed inside the second pass of a streamed fit ("could
    not broadcast input array from shape (25,90) into shape (2,25)"), then was refused at X's declaration.  Now
    a chunk takes its units along X's second axis, the kept store holds them first, and the start draws X along
    its units first, so that a chunk's draws are a run of the stream.  From a seed the streamed fit is the
    in-memory fit of the same model; from the same given start (W, psi and X) the model written X[n, m] gives
    the same numbers transposed (from a seed it does not: the canonical order, hence the order of the start's
    draws, tells the two shapes apart)."""
    model, x, directory = fa
    memory = transposed.fit({"y": x}, seed=2, max_iter=4, tol=0, progress=False, algorithm=algorithm)
    streamed = transposed.fit(directory, seed=2, max_iter=4, tol=0, progress=False, algorithm=algorithm,
                              chunk_size=chunk, local_dir=str(tmp_path / "local"))
    same(memory, streamed, ("W", "psi") if isinstance(algorithm, Memoized) else ("W", "psi", "X"))
    assert streamed.q["X"]["mean"].shape == (2, 90)
    # (the file holds the units first: a chunk's q(X) is a run of its rows)
    np.testing.assert_array_equal(np.load(tmp_path / "local" / "q_X__mean.npy").T, streamed.q["X"]["mean"])
    start = model.fit({"y": x}, seed=1, max_iter=2, tol=0, progress=False).to_dict()
    rows = model.fit({"y": x}, init=start, max_iter=3, tol=0, progress=False, algorithm=algorithm)
    columns = transposed.fit({"y": x}, init=transposed_start(start), max_iter=3, tol=0, progress=False,
                             algorithm=algorithm)
    np.testing.assert_allclose(columns.elbo_trace, rows.elbo_trace, rtol=1e-12)
    for var in ("W", "psi", "X"):
        for p, value in rows.q[var].params.items():
            got = columns.q[var][p].T if var == "X" else columns.q[var][p]
            np.testing.assert_allclose(got, value, rtol=0, atol=1e-10, err_msg=f"q({var}) {p}")
