"""A Categorical chain compiled (issue 18): the generated kernels against the reference evaluator.

The reference (``ppvi.derive.chain.update_block`` for the chain, tests/derive/reference.py for every other q)
evaluates the derived expressions one number at a time; the program must take the same steps from the same
state: every moment and the ELBO equal to 1e-10 after each update of a few sweeps, with ``approximate z
jointly`` (forward–backward; compiled) and under the mean field (one sweep of Πₜ q(zₜ) per update; the same
generated kernels run as plain Python, to compile one model fewer).  The statistics the
globals read include Σ_{t≥1} ξₜ, a sum over part of the data plate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ppvi.derive import derive
from ppvi.derive.chain import update_block
from ppvi.derive.numeric import Env
from ppvi.language import load, loads

from codegen.programs import lockstep, plain, program      # noqa: E402  (tests/codegen/programs.py)
from derive import reference              # noqa: E402  (tests/derive/reference.py)
from infer.test_chains import BAYES, sample_hmm, scaled_forward_backward   # noqa: E402

HMM = Path(__file__).resolve().parents[2] / "models" / "sequences" / "hmm.ppvi"
BAUM_WELCH = HMM.with_name("baum_welch.ppvi")     # EM beside the chain: Baum–Welch
SWEEPS = 4


def _data(T: int = 80, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return sample_hmm(rng, T, np.array([0.6, 0.4]), np.array([[0.9, 0.1], [0.2, 0.8]]),
                      np.array([-1.5, 1.5]), np.array([1.0, 0.6]))


def _lockstep(model, x: np.ndarray, compiled: bool = True):
    """The program and the reference run side by side from the program's start (programs.lockstep).
    ``compiled=False``: the generated kernels run as plain Python (the compiled path is the structured chain's
    below; compiled = Python: tests/harness)."""
    p = program(model, {"x": x})
    if not compiled:
        p.module = plain(p.module)
    p.initialise(np.random.default_rng(0))
    d = derive(model)
    env = Env({"x": x, "a0": np.ones(2)}, {}, {"T": len(x), "K": 2})

    def update(var: str) -> list[float]:
        if var in d.blocks:
            update_block(d.blocks[var], env)
        else:
            reference.update(d, var, env)
        return []
    return (p, *lockstep(p, d, env, SWEEPS, update))


@pytest.fixture(scope="module")
def mean_field():
    return _lockstep(loads(BAYES, "<bayes_hmm>"), _data(), compiled=False)


@pytest.fixture(scope="module")
def jointly():
    return _lockstep(load(str(HMM)), _data(seed=5))


@pytest.mark.parametrize("which", ["mean_field", "jointly"])
def test_compiled_equals_reference(which, request):
    p, gaps, elbos = request.getfixturevalue(which)
    assert gaps.max() < 1e-10, gaps.max()
    np.testing.assert_allclose(elbos[:, 0], elbos[:, 1], rtol=0, atol=1e-10)


@pytest.mark.parametrize("which", ["mean_field", "jointly"])
def test_elbo_monotone(which, request):
    p, _, elbos = request.getfixturevalue(which)
    trace = [elbos[-1, 0]]
    for _ in range(20):
        for var in p.schedule():
            p.update(var)
        trace.append(p.elbo())
    trace = np.concatenate([elbos[:, 0], trace])
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:])), np.diff(trace).min()


def test_marginals_and_pairs_are_consistent(jointly):
    """The block's ξ sums to its marginals r along either axis (forward–backward, not a product)."""
    p = jointly[0]
    r, xi = p.state["q_z__p"], p.state["m_z__pair"]
    np.testing.assert_allclose(xi[1:].sum(axis=2), r[:-1], atol=1e-12)
    np.testing.assert_allclose(xi[1:].sum(axis=1), r[1:], atol=1e-12)
    assert np.isfinite(p.state["l_z"][0])


def test_run_writes_the_chains_marginals(jointly, tmp_path, capsys):
    """`ppvi run` on the HMM (warm: the module the fixture compiled) writes q(z)'s marginals, and they are the
    posterior of the chain given the final global q's as the result file holds them (PRML 13.2.2, written here)."""
    import json
    import math

    from scipy import special

    from conftest import run_cli

    out = tmp_path / "r.json"
    code, _, err = run_cli(["run", HMM, "--data", HMM.with_suffix(".json"), "--out", out, "--quiet"], capsys)
    assert code == 0, err
    r = json.loads(out.read_text())
    q, x = r["q"], np.array(json.loads(HMM.with_suffix(".json").read_text())["x"])
    trace = np.array(r["elbo_trace"])
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))
    e_log = lambda a: special.digamma(a) - special.digamma(a.sum(-1, keepdims=True))  # noqa: E731
    alpha_pi, alpha_A = np.array(q["pi"]["alpha"]), np.array(q["A"]["alpha"])
    m, s = np.array(q["mu"]["mean"]), np.array(q["mu"]["sd"])
    shape, rate = np.array(q["tau"]["shape"]), np.array(q["tau"]["rate"])
    e_tau, e_log_tau = shape / rate, special.digamma(shape) - np.log(rate)
    log_node = 0.5 * e_log_tau - 0.5 * np.log(2 * np.pi) - 0.5 * e_tau * (x[:, None] ** 2 - 2 * x[:, None] * m
                                                                          + m ** 2 + s ** 2)
    want = scaled_forward_backward(e_log(alpha_pi), e_log(alpha_A), log_node)
    got = np.array(q["z"]["p"])
    assert got.shape == (len(x), 2)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    # the file keeps q(z)'s pairs (issue 18: joint draws), so the evidence takes q(z) as its proposal
    pairs = np.array(q["z"]["lag_one"])
    assert pairs.shape == (len(x), 2, 2) and not pairs[0].any()
    np.testing.assert_allclose(pairs[1:].sum(2), got[:-1], atol=1e-12)
    np.testing.assert_allclose(pairs[1:].sum(1), got[1:], atol=1e-12)
    code, text, err = run_cli(["evidence", HMM, "--given", out, "--samples", "20", "--seed", "1"], capsys)
    assert code == 0, err
    assert math.isfinite(json.loads(text)["log_evidence"])


@pytest.mark.parametrize("how", [["--memoized", "--chunks", "4"], ["--svi", "--batch", "50"]])
def test_chunked_fits_refuse_to_cut_a_chain(jointly, capsys, how):
    """Memoized and stochastic VI split the data plate; a chain along it is one unit: refused, located."""
    from conftest import run_cli

    code, _, err = run_cli(["run", HMM, "--quiet", *how], capsys)
    assert code == 2 and "hmm.ppvi: error: memoized and stochastic VI split the data into chunks of `T`, and `z` " \
        "is a chain along it" in err and "Traceback" not in err, err


def test_offset_reads_are_one_read_each_and_exact_at_both_ends():
    """A mean-field random walk (no block): q(x[t]) reads x[t − 1] and x[t + 1].  The derived
    Σ_{i≥1} [i − 1 = t] ⟨x[i]⟩ is written as one read under [t + 1 < T] (not a pass over the plate for each t),
    and the update, run as plain Python from the exact posterior means, leaves them there with sd 1/√Λₜₜ
    (PRML 10.1.2; Λ written out as in tests/infer/test_chains.py) — the first and last elements included."""
    from ppvi.codegen.ir import Loop

    from infer.test_chains import RANDOM_WALK

    from ppvi.codegen.cache import fixed_sizes
    from ppvi.codegen.module import lower

    model = loads(RANDOM_WALK, "<random_walk>")
    kernel = next(k for k in lower(derive(model), fixed_sizes(model)).kernels if k.name == "update_x")

    def depth(body) -> int:
        return max([1 + depth(n.body) for n in body if isinstance(n, Loop)], default=0)
    assert depth(kernel.body) == 1
    y = np.array([0.3, -0.2, 0.8, 1.5, 1.1, 0.4, -0.6, -0.1])
    T = len(y)
    lam = np.diag(np.full(T, 1.0))
    lam[0, 0] += 1.0
    for t in range(1, T):
        lam[t, t] += 4
        lam[t - 1, t - 1] += 4
        lam[t - 1, t] = lam[t, t - 1] = -4
    exact = np.linalg.solve(lam, y)
    p = program(model, {"y": y})
    p.state["q_x__mean"][:] = exact
    info = p.plan.latents["x"].update
    getattr(p.module, info.name).py_func(*(p.state[a] for a in info.args))
    np.testing.assert_allclose(p.state["q_x__mean"], exact, rtol=0, atol=1e-12)
    np.testing.assert_allclose(p.state["q_x__sd"], 1 / np.sqrt(np.diag(lam)), rtol=0, atol=1e-12)


def test_baum_welch_equals_hmmlearn_after_k_iterations():
    """Params beside the chain: from the same start, k sweeps (M-step of p0, A, mu, then tau at the new mu; then
    forward–backward) are k iterations of hmmlearn's GaussianHMM EM (its priors switched off), to 1e-8; the
    ELBO after each sweep is hmmlearn's log-likelihood at the params before that sweep's E-step (exact EM)."""
    hmm = pytest.importorskip("hmmlearn.hmm")
    x = _data(T=300)
    start = {"p0": np.array([0.5, 0.5]), "A": np.array([[0.7, 0.3], [0.4, 0.6]]), "mu": np.array([-1.0, 1.0]),
             "tau": np.array([1.0, 2.0])}
    p = program(load(str(BAUM_WELCH)), {"x": x, **start}, e_step=True)
    k = 5
    elbos = []
    for _ in range(k):
        for var in p.schedule():
            p.update(var)
        elbos.append(p.elbo())
    ref = hmm.GaussianHMM(n_components=2, covariance_type="diag", init_params="", params="stmc", n_iter=k,
                          tol=-np.inf, covars_prior=0.0, means_weight=0.0, covars_weight=1.0)
    ref.startprob_, ref.transmat_, ref.means_, ref.covars_ = (start["p0"], start["A"], start["mu"][:, None],
                                                              1 / start["tau"][:, None])
    ref.fit(x[:, None])
    for got, want in ((p.state["v_p0"], ref.startprob_), (p.state["v_A"], ref.transmat_),
                      (p.state["v_mu"], ref.means_.ravel()), (1 / p.state["v_tau"], ref.covars_.ravel())):
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-12)
    # hmmlearn's history: the log-likelihood at the start of each iteration, i.e. after our previous sweep
    np.testing.assert_allclose(elbos[:-1], list(ref.monitor_.history)[1:], rtol=1e-10)
    assert elbos[-1] == pytest.approx(ref.score(x[:, None]), rel=1e-10)
