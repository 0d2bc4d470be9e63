"""Memoized and stochastic VI over a plate of hidden Markov chains (models/sequences/vghmm.ppvi, 4 sequences of 50
steps; issue 20, with issue 18's rule that each sequence is one unit of the local step, never cut across chunks).

Checked against mathematics, not against ppvi's own sums: a chain's entropy from its marginals and pairwise
marginals (H[q] = Σₜ H[q(zₜ₋₁, zₜ)] − Σ_{0<t<T−1} H[q(zₜ)], exact for a Markov chain), the statistics written out
here in NumPy, and batch CAVI's fixed point (checked against a NumPy VB-HMM in tests/infer/test_vghmm.py).

The default tests run the generated kernels as plain Python (no model compiled for them: the runtime's
forward–backward stays compiled); the same through the API, compiled, are `--long`."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

import ppvi
from conftest import MODELS
from ppvi.api import SVI, Memoized
from ppvi.codegen.cache import fixed_sizes, load as load_module
from ppvi.infer import memoized, svi
from ppvi.infer.cavi import fit
from ppvi.infer.program import Program
from ppvi.io.data import bind, check_dims, source_of

VGHMM = MODELS / "sequences" / "vghmm.ppvi"


@pytest.fixture(scope="module")
def data() -> dict:
    return {k: np.asarray(v) for k, v in json.loads((MODELS / "sequences" / "vghmm.json").read_text()).items()}


@pytest.fixture(scope="module")
def program(data):
    """A fresh Program of vghmm bound to the data at each call, its kernels run as plain Python."""
    return plain_programs(VGHMM, data)


def plain_programs(path, data: dict):
    """Fresh Programs of the model at ``path`` bound to ``data``, its kernels run as plain Python."""
    m = ppvi.load(str(path)).checked
    bound = bind(m, source_of(data, m), check_dims(m, {}, "fit", "{name}={value!r}"))
    plain = plain_module(load_module(m, fixed=fixed_sizes(m, bound.sizes))[0])
    return lambda: Program.build(m, plain, bound)


def plain_module(module) -> types.SimpleNamespace:
    """A generated module with its own kernels as plain Python (the runtime's, forward–backward, stay compiled)."""
    from numba.core.dispatcher import Dispatcher

    return types.SimpleNamespace(PLAN=module.PLAN, __name__=module.__name__, **{
        n: k.py_func for n, k in vars(module).items()
        if isinstance(k, Dispatcher) and k.py_func.__module__ == module.__name__})


def chain_entropy(r: np.ndarray, xi: np.ndarray) -> float:
    """H[q(z)] of every sequence's Markov chain, from its marginals r[s, t, k] and pairs xi[s, t, j, k] =
    q(z[t-1] = j, z[t] = k) (t ≥ 1), summed over the sequences."""
    h = lambda p: -np.sum(p * np.log(np.where(p > 0, p, 1.0)))     # noqa: E731
    return float(h(xi[:, 1:]) - h(r[:, 1:-1]))


def fresh_statistics(p: Program) -> dict[str, np.ndarray]:
    """The sums a fresh pass over every sequence gives from the current local q, written out in NumPy."""
    r, xi, x = p.state["q_z__p"], p.state["m_z__pair"], p.state["v_x"] - p.state["c_shift__x"][0]
    return {"r0": r[:, 0].sum(0), "pairs": xi[:, 1:].sum((0, 1)), "counts": r.sum((0, 1)),
            "sx": np.einsum("st,stk->k", x, r), "sxx": np.einsum("st,stk->k", x * x, r)}


def kept_statistics(p: Program) -> dict[str, np.ndarray]:
    """The same sums as the fit keeps them (the generated module's statistics arrays, by what they sum)."""
    s = p.state
    return {"r0": s["t_0"], "pairs": s["t_1"], "counts": s["t_2"], "sx": s["t_4"], "sxx": s["t_3"]}


def assert_fresh(p: Program, where: str) -> None:
    kept, fresh = kept_statistics(p), fresh_statistics(p)
    for k in fresh:
        np.testing.assert_allclose(kept[k], fresh[k], rtol=1e-12, atol=1e-12, err_msg=f"{k} {where}")
    assert p.entropy("z") == pytest.approx(chain_entropy(p.state["q_z__p"], p.state["m_z__pair"]), rel=1e-10), where


def sorted_means(q_mean: np.ndarray) -> np.ndarray:
    return np.sort(np.asarray(q_mean))      # (the states up to their labels)


def test_memoized_steps_keep_every_chunks_statistics_and_entropy_fresh(program):
    """After every memoized step (4 chunks, a sequence each) the fit's statistics — the chunks' kept shares,
    summed — equal a fresh pass over every sequence, and so does the chains' entropy (before: the fit's entropy
    was the last chunk's alone, so the ELBO lost the other chunks' and fell, ElboDecrease at sweep 36)."""
    p = program()
    seen: list[float] = []

    def check(sweep: int, chunk: int, elbo: float) -> None:
        assert_fresh(p, f"sweep {sweep}, chunk {chunk}")
        seen.append(elbo)

    memoized.run(p, np.random.default_rng(0), 4, 3, 0.0, on_step=check)
    assert len(seen) == 3 * 4
    assert np.all(np.diff(seen) >= -1e-9 * np.abs(seen[1:]))


def test_memoized_vi_over_chains_reaches_batch_cavis_fixed_point(program):
    batch = fit(program(), seed=0, max_iter=500, tol=1e-12)
    for chunks in (2, 4):
        p = program()
        r = memoized.run(p, np.random.default_rng(0), chunks, 500, 1e-12)
        assert r.converged and np.all(np.diff(r.trace) >= -1e-9 * np.abs(r.trace[1:]))
        assert r.elbo == pytest.approx(batch.elbo, rel=1e-10)
        np.testing.assert_allclose(sorted_means(p.state["q_mu__mean"]),
                                   sorted_means(batch.program.state["q_mu__mean"]), atol=1e-6)
        assert_fresh(p, f"{chunks} chunks")


def test_svi_over_chains_starts_from_centres_and_separates_the_states(program):
    """The states' means are component means read at a chain's state (x[s, t] ~ Normal(mu[z[s, t]], …)): batch
    CAVI and SVI both start them at k-means++ centres of the data's elements (issue 14), so SVI's first local
    step does not meet exchangeable states (before: every state ended with one mean, −0.417)."""
    p = program()
    assert p.initialise(np.random.default_rng(0))      # (informed: the centres, then an E-step)
    assert np.ptp(p.state["q_mu__mean"]) > 1.0
    p = program()
    svi.run(p, np.random.default_rng(0), SVI(batch=10, passes=20))
    batch = fit(program(), seed=0, max_iter=500, tol=1e-12)
    np.testing.assert_allclose(sorted_means(p.state["q_mu__mean"]),
                               sorted_means(batch.program.state["q_mu__mean"]), atol=0.15)


def test_svi_kappa_zero_with_one_batch_is_batch_cavi_sweep_by_sweep_on_chains(program):
    assert_svi_is_batch_sweeps(program, 4)


def assert_svi_is_batch_sweeps(program, sequences: int) -> None:
    """ρ = 1 and one minibatch of every sequence: P steps and the final local pass are P batch sweeps."""
    for passes in (1, 3):
        batch = fit(program(), seed=4, max_iter=passes, tol=0)
        p = program()
        done = fit(p, seed=4, max_iter=1, tol=0,
                   runner=SVI(batch=sequences, kappa=0.0, tau=0.0, passes=passes, shuffle=False).runner())
        assert done.elbo == pytest.approx(batch.trace[-1], rel=1e-12)
        for k, v in batch.program.state.items():
            if k.startswith("q_"):
                np.testing.assert_allclose(p.state[k], v, rtol=1e-12, atol=1e-13, err_msg=f"{k} {passes}")


def test_svis_final_pass_in_minibatches_keeps_every_sequences_entropy(program):
    """The final local pass runs a minibatch at a time: the fit's entropy of the chains is every sequence's
    (before: the last minibatch's only), its statistics a fresh pass's, its ELBO the whole data's."""
    p = program()
    done = svi.run(p, np.random.default_rng(0), SVI(batch=1, passes=2))
    assert_fresh(p, "after SVI")
    assert done.elbo == p.elbo()


def test_a_chains_centres_are_the_same_from_data_read_in_chunks():
    """k-means++ over the elements x[s, t] (a chain's points): the same centres from the array and from its rows
    read a few at a time (a streamed fit's pilot), so a streamed fit starts where an in-memory one does."""
    from ppvi.infer.start import Seed, seeded

    x = np.random.default_rng(1).normal(size=(7, 9))

    class Rows:         # (the reader's interface: ppvi.infer.streamed.Column)
        count, row = 7, (9,)

        def chunks(self):
            for a in range(0, 7, 2):
                yield x[a:a + 2]

        def take(self, i):
            return x[list(i)]

    seed = Seed("mu", "centres", "x", 0, ("unit",), "z", points=(0,))
    assert seed.count(x.shape) == 63
    whole = seeded(seed, x, 3, (3,), np.random.default_rng(5))
    assert set(whole) <= set(x.ravel())
    np.testing.assert_array_equal(seeded(seed, Rows(), 3, (3,), np.random.default_rng(5)), whole)


@pytest.mark.parametrize("how", [["--memoized", "--chunks", "2"], ["--svi", "--batch", "2"]])
def test_one_sequence_along_the_data_plate_is_refused_naming_what_splits(capsys, how):
    """A chain along the data plate that is one sequence (models/sequences/ar1.ppvi: no `by`) is one unit, never
    cut: refused before any kernel runs, naming what splits.  (Every chain over sequences in long format splits
    now, of data or under the mean field too: test_ragged_chain_scale.py; before, those two were refused here.)"""
    from conftest import run_cli

    code, _, err = run_cli(["run", str(MODELS / "sequences" / "ar1.ppvi"), "--quiet", *how], capsys)
    assert code == 2 and "Traceback" not in err, err
    assert "ar1.ppvi: error: memoized and stochastic VI split the data into chunks of `T`, and `y` is a chain " \
        "along it: a sequence is one unit, never cut" in err, err
    assert "or in long format, each step naming its sequence, `for t in T[1:] by seq:`" in err, err


# ------------------------------------------------------------------ through the API, compiled (--long)
@pytest.mark.long
def test_memoized_vi_over_chains_never_lowers_the_elbo(data):
    """The fault as found: `ppvi run vghmm.ppvi --memoized --chunks 4` → ElboDecrease at sweep 36."""
    model = ppvi.load(str(VGHMM))
    r = model.fit(data, algorithm=Memoized(chunks=4), max_iter=200)
    trace = np.asarray(r.elbo_trace)
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))
    assert r.elbo == pytest.approx(model.fit(data, max_iter=200).elbo, rel=1e-8)


@pytest.mark.long
def test_svi_over_chains_separates_the_states(data):
    r = ppvi.load(str(VGHMM)).fit(data, algorithm=SVI(batch=10, passes=20))
    means = np.asarray(r.q["mu"]["mean"])
    assert np.ptp(means) > 1.0


@pytest.mark.long
@pytest.mark.parametrize("algorithm", [None, Memoized(2), Memoized(4), SVI(batch=2, passes=3, shuffle=False)])
def test_chains_read_in_chunks_equal_in_memory(data, tmp_path, algorithm):
    """The same fit from a directory of .npy read a sequence at a time: the start (the centres), the kept
    statistics and, for memoized VI, each chunk's kept entropy of its chains (not found again from stored q)."""
    np.save(tmp_path / "x.npy", np.asarray(data["x"], dtype=float))
    model = ppvi.load(str(VGHMM))
    memory = model.fit(data, algorithm=algorithm, max_iter=30, tol=0, progress=False)
    streamed = model.fit(str(tmp_path), algorithm=algorithm, max_iter=30, tol=0, chunk_size=1, progress=False)
    np.testing.assert_allclose(streamed.elbo_trace, memory.elbo_trace, rtol=1e-12)
    np.testing.assert_allclose(streamed.q["mu"]["mean"], memory.q["mu"]["mean"], rtol=1e-10)
