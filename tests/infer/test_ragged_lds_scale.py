"""Memoized and stochastic VI over a ragged Gaussian chain (models/sequences/ragged_lds.ppvi: a local linear trend
over six series of 3 to 34 steps in long format, riding on `seq[t]`, q(x) a Kalman filter and RTS smoother per
series; issue 20).  Each chunk is whole series.

Checked against mathematics, not against ppvi's own sums: the statistics written out here in NumPy from the local
q (the first steps' Σ ⟨xₜ⟩ and Σ ⟨xₜxₜᵀ⟩, the steps inside a series' Σ ⟨xₜxₜᵀ⟩, Σ ⟨xₜ₋₁xₜᵀ⟩, …), each chunk's q(x)
a Kalman filter and RTS smoother written in tests/codegen/test_ragged_gaussian_kernels.py run on each of its
series alone, its entropy ½ log|2πe Λ⁻¹| with Λ, the block tridiagonal precision of a series, built here, and
batch CAVI's fixed point and sweeps (batch CAVI on this model takes the steps of VBEM written in NumPy:
test_ragged_gaussian_kernels.py).  The generated kernels run as plain Python (no model compiled here)."""

from __future__ import annotations

import numpy as np
import pytest

import ppvi
from codegen.test_ragged_gaussian_kernels import F, H, PATH, Q, smoothers
from infer.test_chain_scale import assert_svi_is_batch_sweeps, plain_programs
from infer.test_ragged_scale import RAGGED as RAGGED_HMM, first_steps, monotone_memoized, plain  # noqa: F401
from ppvi.api import SVI, Memoized
from ppvi.infer import svi
from ppvi.infer.cavi import fit
from ppvi.infer.chunks import Chunk, Layout, add_statistics, split
from ppvi.infer.program import Program

P0 = np.eye(2)          # the first state's precision (the model's text)


@pytest.fixture(scope="module")
def program():
    """A fresh Program of ragged_lds bound to its data at each call, its kernels run as plain Python."""
    table = np.genfromtxt(PATH.with_suffix(".csv"), delimiter=",", names=True)
    return plain_programs(PATH, {"seq": table["seq"].astype(np.int64), "y": table["y"]})


def fresh_statistics(p: Program) -> dict[str, np.ndarray]:
    """The sums a fresh pass over every series gives from the current local q, written out in NumPy."""
    s = p.state
    m, xx, y = s["q_x__mean"], s["m_x__xxT"], s["v_y"]
    cross = s.get("m_x__cross", xx)
    first = first_steps(s["v_seq"])
    inside = np.flatnonzero(~first)
    lag = np.einsum("td,te->tde", m[inside - 1], m[inside])
    out = {"yy": y @ y, "x0x0": xx[:, 0, 0].sum(), "x0y": m[:, 0] @ y, "firsts": first.sum(),
           "first_xx": xx[first].sum(0), "first_x": m[first].sum(0), "xx": xx[inside].sum(0),
           "previous_xx": xx[inside - 1].sum(0), "steps": len(inside), "cross": cross[inside].sum(0),
           "lag": lag.sum(0), "lag_QF": np.einsum("tde,ed->", lag, Q @ F)}
    return {k: v for k, v in out.items() if k != "cross" or "m_x__cross" in s}


def kept_statistics(p: Program) -> dict[str, np.ndarray]:
    """The same sums as the fit keeps them (the generated module's statistics arrays, by what they sum); under the
    mean field (no `approximate x jointly`) q(x) has no lag-one covariance, and the chain's statement no `cross`."""
    s = p.state
    names = [k for k in ("yy", "x0x0", "x0y", "firsts", "first_xx", "first_x", "xx", "previous_xx", "steps", "cross",
                         "lag", "lag_QF") if k != "cross" or "m_x__cross" in s]
    return dict(zip(names, (np.squeeze(s[f"t_{i}"]) for i in range(len(names)))))


def series_precision(n: int, e_tau: float) -> np.ndarray:
    """Λ of one series of n steps: the Gaussian q(x) ∝ exp(E[log p(x, y)]) has this precision, block tridiagonal
    (the prior's P0 at the first step, Q and FᵀQF along the chain, E[τ] HHᵀ from each observation)."""
    lam = np.zeros((2 * n, 2 * n))
    for t in range(n):
        b = slice(2 * t, 2 * t + 2)
        lam[b, b] += (P0 if t == 0 else Q) + e_tau * np.outer(H, H)
        if t + 1 < n:
            nb = slice(2 * t + 2, 2 * t + 4)
            lam[b, b] += F.T @ Q @ F
            lam[b, nb] -= F.T @ Q
            lam[nb, b] -= Q @ F
    return lam


def assert_fresh(p: Program, where: str) -> None:
    kept, fresh = kept_statistics(p), fresh_statistics(p)
    for k in fresh:
        np.testing.assert_allclose(kept[k], fresh[k], rtol=1e-12, atol=1e-10, err_msg=f"{k} {where}")


def assert_smoothed(p: Program, series: np.ndarray, where: str) -> None:
    """The series ``series``' q(x) are each one's smoother at 1/E[τ] (the E[τ] their step read), and the
    entropy their rows hold is each one's ½ log|2πe Λ⁻¹|."""
    s = p.state
    e_tau, seq, y = float(s["m_tau__x"].reshape(())), s["v_seq"], s["v_y"]
    rows = np.isin(seq, series)
    ms, Ps, _ = smoothers(y[rows], np.unique(seq[rows], return_inverse=True)[1], 1 / e_tau)
    np.testing.assert_allclose(s["q_x__mean"][rows], ms, rtol=0, atol=1e-9, err_msg=where)
    np.testing.assert_allclose(s["q_x__cov"][rows], Ps, rtol=0, atol=1e-9, err_msg=where)
    for k in series:
        n = int(np.sum(seq == k))
        h = n * (1 + np.log(2 * np.pi)) - 0.5 * np.linalg.slogdet(series_precision(n, e_tau))[1]
        assert s["h_x"][seq == k].sum() == pytest.approx(h, rel=1e-10), f"series {k} {where}"


def test_memoized_vi_over_a_ragged_gaussian_chain_reaches_batch_cavis_fixed_point(program):
    """Chunks of whole series (2 and 3): after every step the chunk's series are each one's smoother with their
    entropy, the kept statistics a fresh pass's, the ELBO never decreases, and the fit ends at batch CAVI's fixed
    point.  Before: refused; with the refusal lifted alone, the statistics weighed each step by its series'
    number (a chunk numbers its own from 0) and the first element's statement read x[0] alone, so memoized VI
    went above batch's optimum (−118.84 with 2 chunks, −115.18 with 3, against −120.95) and lowered the ELBO."""
    batch = fit(program(), seed=0, max_iter=500, tol=1e-12)
    for chunks in (2, 3):
        p = program()
        parts = np.array_split(np.arange(6), chunks)

        def check(sweep: int, chunk: int, where: str) -> None:
            assert_smoothed(p, parts[chunk], where)
            assert_fresh(p, where)

        r = monotone_memoized(p, chunks, check)
        assert r.elbo == pytest.approx(batch.elbo, rel=1e-8)
        for k in ("q_tau__shape", "q_tau__rate", "q_x__mean"):
            np.testing.assert_allclose(p.state[k], batch.program.state[k], rtol=1e-5, atol=1e-8)
        assert_fresh(p, f"{chunks} chunks, at the end")


def test_svi_kappa_zero_with_one_batch_is_batch_cavi_sweep_by_sweep_on_a_ragged_gaussian_chain(program):
    """ρ = 1 and one minibatch of all 6 series: P steps and the final local pass are P batch sweeps."""
    assert_svi_is_batch_sweeps(program, 6)


def test_svi_in_minibatches_of_ragged_series_keeps_the_statistics_fresh(program):
    """Minibatches of 2 of the 6 series (shuffled): the final local pass leaves every series its smoother, the
    fit's statistics those of a fresh pass and its ELBO the whole data's."""
    p = program()
    done = svi.run(p, np.random.default_rng(0), SVI(batch=2, passes=2))
    assert_smoothed(p, np.arange(6), "after SVI")
    assert_fresh(p, "after SVI")
    assert done.elbo == p.elbo()


@pytest.mark.parametrize("path", [PATH, RAGGED_HMM], ids=["ragged_lds", "ragged_hmm"])
def test_the_chunks_bounds_add_up_to_the_elbo_but_the_globals_terms(path):
    """SVI's progress bound is a minibatch's share of the ELBO (ppvi.infer.chunks.Chunk.bound): over chunks of
    every series it adds up to the ELBO less the global latents' terms (their priors' statements, their
    entropies).  The
    first element's statement of a ragged chain is a sum over the series' first steps (before: left out, as a
    statement outside the data plate, so the bound lost every series' first-step prior term)."""
    table = np.genfromtxt(path.with_suffix(".csv"), delimiter=",", names=True)
    p = plain_programs(path, {k: table[k].astype(np.int64) if k == "seq" else table[k]
                              for k in table.dtype.names})()
    assert_bounds_add_up(p)


def assert_bounds_add_up(p: Program, held: tuple[str, ...] | None = None) -> None:
    """Over 2 chunks of every unit, the chunks' bounds add up to the ELBO less the terms of ``held`` (by default
    the latents that are not a unit's own): their priors' statements and entropies."""
    p.initialise(np.random.default_rng(0))
    layout = Layout.of(p)
    parts = [Chunk(p, layout, units) for units in split(layout.units(p), 2)]
    shares = []
    for c in parts:
        c.local_step()      # (as SVI's step does: its share of the local sums is then its own)
        shares.append(c.bound())
    add_statistics(p, layout, parts)
    held = [v for v in p.plan.latents if v not in layout.local_latents] if held is None else held
    terms = p.expected_terms()
    globals_ = sum(terms[f.id] for f in p.model.factors if f.target in held) + sum(p.entropy(v) for v in held)
    assert sum(shares) == pytest.approx(p.elbo() - globals_, rel=1e-12)



# ------------------------------------------------------------------ data read in chunks (ppvi.infer.streamed)
@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """ragged_lds's data in memory and as a directory of .npy files."""
    t = np.genfromtxt(PATH.with_suffix(".csv"), delimiter=",", names=True)
    table = {"seq": t["seq"].astype(np.int64), "y": t["y"]}
    d = tmp_path_factory.mktemp("ragged_lds")
    for k, v in table.items():
        np.save(d / f"{k}.npy", v)
    return table, str(d)


@pytest.mark.parametrize("algorithm, chunk", [
    (None, 2), (None, 1), (Memoized(3), 2), (SVI(batch=2, kappa=0.7, tau=1.0, passes=2, shuffle=False), 2)])
def test_a_gaussian_chain_over_ragged_sequences_read_in_chunks_is_the_in_memory_fit(written, plain, algorithm,
                                                                                     chunk):
    """Read in chunks of whole series (the chunk size counts series), from a seed, batch CAVI, memoized VI and SVI
    in the same minibatches (contiguous, in order) give the in-memory fit: the ELBO trace and q(τ), q(x) to 1e-12
    (memoized VI's q(x) are one local pass newer, docs/scale.md "The local q").  Before: with the two branches'
    work merged, q(τ)'s shape read the steps' count n_T of the first chunk (the pilot's), not the whole data's:
    5 sweeps, chunks of 2 series, batch CAVI's ELBO −195.51 against −121.87 in memory, memoized VI's −181.81
    against −121.04, SVI's −217.63 against −147.01 (then refused, before this fix)."""
    table, directory = written
    model = ppvi.load(str(PATH))
    memory = model.fit(table, seed=0, max_iter=5, tol=0, progress=False, algorithm=algorithm)
    streamed = model.fit(directory, seed=0, max_iter=5, tol=0, progress=False, algorithm=algorithm, chunk_size=chunk)
    assert streamed.provenance.algorithm["chunk_size"] == chunk
    np.testing.assert_allclose(streamed.elbo_trace, memory.elbo_trace, rtol=1e-12)
    assert streamed.elbo == pytest.approx(memory.elbo, rel=1e-12)
    for var in ("tau",) if isinstance(algorithm, Memoized) else ("tau", "x"):
        for p, value in memory.q[var].params.items():
            np.testing.assert_allclose(streamed.q[var][p], value, rtol=0, atol=1e-12 * max(1.0, np.max(np.abs(value))),
                                       err_msg=f"q({var}) {p}")
