"""Memoized VI, stochastic VI and data read in chunks over two more ragged chains in long format (issue 20), each
chunk whole sequences:

(a) a chain of *data*, an AR(1) riding on `seq` (q(φ), q(τ); also with a per-series mean μ[seq[t]], a latent of the
    sequences' own, updated in their chunk's local step);
(b) a Gaussian chain under the mean field (models/sequences/ragged_lds.ppvi without `approximate x jointly`: one
    q(x[t]) per step, each read by its neighbours' updates).

Checked against mathematics, not against ppvi's own sums: (a)'s q(φ), q(τ) (and q(μ)) against VB linear regression
written in NumPy (PRML 10.1.3's coordinate ascent, one weight per input) on the transitions within each sequence,
never across a sequence boundary; the statistics written out here in NumPy (a's from the data, b's from the local
q: test_ragged_lds_scale.fresh_statistics); batch CAVI's fixed point and sweeps (b's batch fit: tests/infer/
test_ragged.py's mean-field means = each series' smoother).  The generated kernels run as plain Python."""

from __future__ import annotations

import numpy as np
import pytest

import ppvi
from codegen.test_ragged_gaussian_kernels import PATH as RAGGED_LDS
from infer.test_chain_scale import assert_svi_is_batch_sweeps, plain_programs
from infer.test_ragged_lds_scale import assert_bounds_add_up, assert_fresh as assert_lds_fresh
from infer.test_ragged_scale import monotone_memoized, plain  # noqa: F401
from ppvi.api import SVI, Memoized
from ppvi.infer import memoized
from ppvi.infer.cavi import fit
from ppvi.infer.program import Program

# (a): five series of 7, 1, 12, 2 and 30 steps, each regressed on its own past (a series of one step: no transition)
_PANEL = "dim T, S\ndata seq[T] : index(S)\ndata y[T]\nphi ~ Normal(0, 1)\ntau ~ Gamma(1, 1)\n"
RAGGED_AR1 = _PANEL + "for t in T[1:] by seq:\n    y[t] ~ Normal(phi * y[t-1], precision = tau)\n"
# (a) with a mean of each series' own: mu[s] is read at seq[t], so its statistics have the sequences' axis
RAGGED_AR1_MEAN = _PANEL + ("for s in S:\n    mu[s] ~ Normal(0, 0.5)\n"
                            "for t in T[1:] by seq:\n    y[t] ~ Normal(mu[seq[t]] + phi * y[t-1], precision = tau)\n")
# (b): ragged_lds's text under the mean field, on three of its series cut short (the mean field's sweeps are many)
LDS_MEAN_FIELD = RAGGED_LDS.read_text().replace("approximate x jointly", "")
LDS_LENGTHS = (3, 4, 2)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """The three models and their data: in memory, and as a directory of .npy files."""
    d = tmp_path_factory.mktemp("ragged_chains")
    rng = np.random.default_rng(11)
    seq = np.repeat(np.arange(5), (7, 1, 12, 2, 30))
    y = rng.normal(size=len(seq))
    for t in np.flatnonzero(seq[1:] == seq[:-1]) + 1:
        y[t] += 0.6 * y[t - 1] + 0.3 * seq[t]
    t = np.genfromtxt(RAGGED_LDS.with_suffix(".csv"), delimiter=",", names=True)
    rows = np.concatenate([np.flatnonzero(t["seq"] == s)[:n] for s, n in enumerate(LDS_LENGTHS)])
    out = {}
    for name, text, table in (("ar1", RAGGED_AR1, {"seq": seq, "y": y}),
                              ("ar1_mean", RAGGED_AR1_MEAN, {"seq": seq, "y": y}),
                              ("lds", LDS_MEAN_FIELD, {"seq": t["seq"][rows].astype(np.int64), "y": t["y"][rows]})):
        (d / f"{name}.ppvi").write_text(text)
        (d / name).mkdir()
        for k, v in table.items():
            np.save(d / name / f"{k}.npy", v)
        out[name] = (d / f"{name}.ppvi", table, str(d / name))
    return out


@pytest.fixture(scope="module")
def programs(files) -> dict:
    """Fresh Programs of each model bound to its data at each call, kernels as plain Python."""
    return {name: plain_programs(path, table) for name, (path, table, _) in files.items()}


def mean_field_regression(X: np.ndarray, r: np.ndarray, precisions: np.ndarray, a0: float, b0: float,
                          tol: float = 1e-15) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Mean-field VB for r = X w + noise, w_j ~ N(0, 1/precisions[j]) and τ ~ Gamma(a0, b0), q(τ) Π_j q(w_j)
    (PRML 10.1.3, each weight's q in turn from the others' means; with one input, 10.1.3's two factors): the fixed
    point's means, sds, shape and rate."""
    n, (_, J) = len(r), X.shape
    m, s2, e_tau, a = np.zeros(J), 1 / precisions, a0 / b0, a0 + len(r) / 2
    for _ in range(10000):
        old = m.copy()
        for j in range(J):
            rest = r - X @ m + X[:, j] * m[j]
            s2[j] = 1 / (precisions[j] + e_tau * X[:, j] @ X[:, j])
            m[j] = e_tau * s2[j] * (X[:, j] @ rest)
        b = b0 + (np.sum((r - X @ m) ** 2) + np.sum(X ** 2 @ s2)) / 2
        e_tau = a / b
        if np.max(np.abs(m - old)) < tol:
            break
    return m, np.sqrt(s2), a, b


def transitions(seq: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The regression's rows: (y[t-1], y[t]) for each step t inside a sequence (never across a boundary), and
    which steps those are."""
    inside = np.r_[False, seq[1:] == seq[:-1]]
    return np.r_[0.0, y[:-1]][inside], y[inside], inside


def ar1_statistics(p: Program) -> dict[str, float]:
    """An AR(1) of data's sums over the transitions inside each sequence, written out in NumPy."""
    x, r, _ = transitions(p.state["v_seq"], p.state["v_y"])
    return {"xr": x @ r, "xx": x @ x, "n": len(r), "rr": r @ r}


def assert_ar1_fresh(p: Program, where: str) -> None:
    kept = dict(zip(("xr", "xx", "n", "rr"), (float(p.state[f"t_{i}"][0]) for i in range(4))))
    for k, v in ar1_statistics(p).items():
        assert kept[k] == pytest.approx(v, rel=1e-12), f"{k} {where}"


def test_memoized_vi_over_an_ar1_of_data_is_vb_regression_on_the_transitions_within_sequences(programs, files):
    """An AR(1) of data riding on `seq`, 5 series (7, 1, 12, 2, 30 steps) in chunks of whole series (2 and 3): the
    kept statistics are the sums over the transitions within each series after every step, the ELBO never
    decreases, and the fit ends at batch CAVI's fixed point, which is VB linear regression of y[t] on y[t-1] over
    those transitions (PRML 10.1.3 in NumPy, q(φ) and q(τ) to 1e-8).  Before: refused (a chain of data)."""
    batch = fit(programs["ar1"](), seed=0, max_iter=500, tol=1e-13)
    x, r, _ = transitions(*files["ar1"][1].values())
    (m,), (sd,), a, b = mean_field_regression(x[:, None], r, np.ones(1), 1.0, 1.0)
    for chunks in (2, 3):
        p = programs["ar1"]()
        r = monotone_memoized(p, chunks, lambda sweep, chunk, where: assert_ar1_fresh(p, where))
        assert r.elbo == pytest.approx(batch.elbo, rel=1e-8)
        got = [p.state[k].item() for k in ("q_phi__mean", "q_phi__sd", "q_tau__shape", "q_tau__rate")]
        np.testing.assert_allclose(got, [m, sd, a, b], rtol=1e-8)


def test_memoized_vi_over_an_ar1_with_a_mean_per_series_is_its_vb_regression(programs, files):
    """The AR(1) with each series' own mean μ[seq[t]] (a latent of the sequences: its q is in its chunk's local
    step).  Batch CAVI's q are the mean-field VB regression of y[t] on (y[t-1], the series' indicator) over the
    transitions within each series, written in NumPy (a series of one step has no transition: its q(μ) is the
    prior), to 1e-10; memoized VI (2 and 3 chunks) is monotone and ends at its fixed point (the ELBO to 1e-8, the
    q to 1e-5: it stops on the ELBO's change, 1e-12).  Before: batch CAVI itself failed, the statistics kernel
    read the index of μ's sequences where it scatters by seq[t] (`i14_a0` undefined: Numba's NotDefinedError
    compiled, UnboundLocalError as plain Python); memoized VI was refused."""
    seq, y = files["ar1_mean"][1].values()
    x, r, inside = transitions(seq, y)
    X = np.column_stack([x, np.eye(seq.max() + 1)[seq[inside]]])
    m, sd, a, b = mean_field_regression(X, r, np.r_[1.0, np.full(seq.max() + 1, 4.0)], 1.0, 1.0)
    batch = fit(programs["ar1_mean"](), seed=0, max_iter=200, tol=0)      # (to rounding: the ELBO's tol leaves
    memo = [monotone_memoized(programs["ar1_mean"](), c, lambda *_: None) for c in (2, 3)]    # q at its square root)
    for p, rtol in ((batch.program, 1e-10), *((r.program, 1e-5) for r in memo)):
        s = p.state
        np.testing.assert_allclose(np.r_[s["q_phi__mean"], s["q_mu__mean"]], m, rtol=rtol, atol=rtol * 1e-2)
        np.testing.assert_allclose(np.r_[s["q_phi__sd"], s["q_mu__sd"]], sd, rtol=rtol)
        np.testing.assert_allclose([s["q_tau__shape"].item(), s["q_tau__rate"].item()], [a, b], rtol=rtol)
    for r in memo:
        assert r.elbo == pytest.approx(batch.elbo, rel=1e-8)


@pytest.mark.parametrize("chunks", [2, 3])
def test_memoized_steps_over_a_ragged_gaussian_chain_under_the_mean_field_keep_the_statistics_fresh(programs, chunks):
    """ragged_lds under the mean field (q(x[t]) one Gaussian per step, each update reading its neighbours' means),
    three series of 3, 4 and 2 steps in chunks of whole series: after every step of three sweeps the kept
    statistics are a fresh pass's, written in NumPy from the local q, and the ELBO never decreases.  Before:
    refused.  (To the fixed point, ~300 sweeps of the mean field: the next test, --long.)"""
    p = programs["lds"]()
    seen: list[float] = []

    def check(sweep: int, chunk: int, elbo: float) -> None:
        assert_lds_fresh(p, f"sweep {sweep}, chunk {chunk}")
        seen.append(elbo)

    memoized.run(p, np.random.default_rng(0), chunks, 3, 0.0, on_step=check)
    assert len(seen) == 3 * chunks and np.all(np.diff(seen) >= -1e-9 * np.abs(seen[1:]))


@pytest.mark.long       # (~300 sweeps of the mean field, ~3 CPU-s as plain Python)
def test_memoized_vi_over_a_ragged_gaussian_chain_under_the_mean_field_reaches_batch_cavis_fixed_point(programs):
    """The same in 2 and 3 chunks to tol 1e-12: monotone, the statistics fresh after each step of the first two
    sweeps, and the fit ends at batch CAVI's fixed point (its ELBO to 1e-8).  Before: refused."""
    batch = fit(programs["lds"](), seed=0, max_iter=2000, tol=1e-12)
    assert batch.converged
    for chunks in (2, 3):
        p = programs["lds"]()
        r = monotone_memoized(p, chunks, lambda sweep, chunk, where: assert_lds_fresh(p, where))
        assert r.elbo == pytest.approx(batch.elbo, rel=1e-8)
        for k in ("q_tau__shape", "q_tau__rate", "q_x__mean"):
            np.testing.assert_allclose(p.state[k], batch.program.state[k], rtol=1e-5, atol=1e-6)
        assert_lds_fresh(p, f"{chunks} chunks, at the end")


@pytest.mark.parametrize("name", ["ar1", "ar1_mean", "lds"])
def test_the_chunks_bounds_add_up_to_the_elbo_but_the_globals_terms_on_more_ragged_chains(programs, name):
    """SVI's progress bound is a minibatch's share of the ELBO (Chunk.bound): over 2 chunks of every sequence it
    adds up to the ELBO less the terms of the globals named from the model's text (φ, τ; ragged_lds's τ): an AR(1)
    of data's transitions, a series' own mean μ's prior and entropy, the mean field's first steps' statement."""
    assert_bounds_add_up(programs[name](), ("tau",) if name == "lds" else ("phi", "tau"))


@pytest.mark.parametrize("name, sequences", [("ar1", 5), ("lds", 3)])
def test_svi_kappa_zero_with_one_batch_is_batch_cavi_sweep_by_sweep_on_more_ragged_chains(programs, name, sequences):
    """ρ = 1 and one minibatch of every sequence: P steps and the final local pass are P batch sweeps (before:
    refused)."""
    assert_svi_is_batch_sweeps(programs[name], sequences)


@pytest.mark.parametrize("name, algorithm, chunk", [
    ("ar1", None, 1), ("ar1", Memoized(2), 2), ("ar1", SVI(batch=2, kappa=0.7, tau=1.0, passes=2, shuffle=False), 1),
    ("lds", None, 2), ("lds", Memoized(2), 1), ("lds", SVI(batch=2, kappa=0.7, tau=1.0, passes=2, shuffle=False), 2)])
def test_more_ragged_chains_read_in_chunks_are_the_in_memory_fit(files, plain, name, algorithm, chunk):
    """Read from .npy in chunks of whole sequences (1 or 2), batch CAVI, memoized VI and SVI in the same minibatches
    give the in-memory fit: the ELBO trace and the global q to 1e-12.  Before: refused (memoized, SVI), and an AR(1)
    of data, which has no local q, was refused read in chunks ("its local step updates nothing"); with that lifted
    alone its chunks' statistics were never summed (no local step made them stale): q(φ) stayed its prior, ELBO 0."""
    path, table, directory = files[name]
    model = ppvi.load(str(path))
    memory = model.fit(table, seed=0, max_iter=5, tol=0, progress=False, algorithm=algorithm)
    streamed = model.fit(directory, seed=0, max_iter=5, tol=0, progress=False, algorithm=algorithm, chunk_size=chunk)
    np.testing.assert_allclose(streamed.elbo_trace, memory.elbo_trace, rtol=1e-12)
    assert streamed.elbo == pytest.approx(memory.elbo, rel=1e-12)
    for var in ("phi", "tau") if name == "ar1" else ("tau",):
        for k, value in memory.q[var].params.items():
            np.testing.assert_allclose(streamed.q[var][k], value, rtol=1e-12, err_msg=f"q({var}) {k}")


@pytest.mark.parametrize("how", ["svi", "read in chunks"])
def test_a_mean_per_series_read_by_a_globals_update_is_still_refused_by_svi_and_read_in_chunks(files, plain, how):
    """What is still refused: the AR(1) with a mean per series under SVI and read in chunks (memoized VI in memory
    fits it, above).  q(φ)'s update reads ⟨μ[seq[t]]⟩ element by element, not through a statistic of the sequences
    (the generated kernel takes μ as a global), so neither a scaled minibatch nor one chunk in memory can give it:
    a located error before any kernel runs."""
    path, table, directory = files["ar1_mean"]
    model = ppvi.load(str(path))
    with pytest.raises(ppvi.PPVIError) as err:
        if how == "svi":
            model.fit(table, algorithm=SVI(batch=2), progress=False)
        else:
            model.fit(directory, chunk_size=2, progress=False)
    message = str(err.value)
    assert message.startswith(f"{path}: error: ") and "the update of `phi`" in message, message
    assert "q_mu__mean" in message and "hint: " in message, message
