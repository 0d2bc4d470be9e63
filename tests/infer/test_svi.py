"""Stochastic VI (Hoffman, Blei, Wang & Paisley 2013).

Checked against batch CAVI (κ = 0 and one batch of all the data is the batch sweep, step by step),
against scikit-learn's online LDA (the same algorithm, written independently), and against the
conjugate update written out in the test (a Dirichlet's counts)."""

import re
from pathlib import Path

import numpy as np
import pytest
from scipy.special import digamma

import ppvi
from ppvi.api import SVI
from ppvi.codegen.cache import fixed_sizes, load as load_module
from ppvi.infer.cavi import fit
from ppvi.infer.chunks import Layout
from ppvi.infer.program import Program
from ppvi.infer.warm import Start
from ppvi.io.data import bind, check_dims, source_of

MODELS = Path(__file__).resolve().parents[2] / "models"


def program(name: str, data=None) -> Program:
    m = ppvi.load(str(MODELS / f"{name}.ppvi")).checked
    bound = bind(m, source_of(data, m), check_dims(m, {}, "fit", "{name}={value!r}"))
    return Program.build(m, load_module(m, fixed=fixed_sizes(m, bound.sizes))[0], bound)


def test_the_rate_is_hoffmans():
    s = SVI(batch=1, kappa=0.7, tau=10.0)
    assert [s.rate(t) for t in (1, 2, 5)] == [11 ** -0.7, 12 ** -0.7, 15 ** -0.7]
    assert SVI(batch=1, kappa=0.0, tau=0.0).rate(7) == 1.0


@pytest.fixture(scope="module")
def corpus():
    with np.load(MODELS / "lda.npz") as f:
        keep = f["doc"] < 40
        return {"doc": f["doc"][keep], "word": f["word"][keep]}


@pytest.mark.parametrize("name, given", [("gmm", False), pytest.param("em_gmm", False, marks=pytest.mark.long),
                                         ("lda", True), ("lda", False)])
def test_kappa_zero_with_one_batch_of_all_the_data_is_batch_cavi_sweep_by_sweep(name, given, corpus):
    """ρ_t = 1: every global is the batch update from every unit's statistics.  After P steps (and the final
    local pass) the q, params and ELBO are those of P batch sweeps, bit for bit up to the ELBO's sum.
    (em_gmm: params by stepwise EM; `--long`, it compiles a model of its own.)  LDA from its default start
    (uninformed: random q(z), topics alike): the first step, like the first sweep, takes q(φ) from the random
    q(z) before any local step (ppvi.infer.svi.first_local_step)."""
    data = {"gmm": {"x": np.loadtxt(MODELS / "gmm.csv", delimiter=",", skiprows=1)[:150]}, "em_gmm": None,
            "lda": corpus}[name]
    start = None
    if given:       # (a start given, so that both begin with the same E-step)
        phi = np.random.default_rng(0).gamma(100.0, 0.01, (4, program(name, data).sizes["V"]))
        start = Start({"phi": {"family": "Dirichlet", "alpha": phi}}, {}, "<test>")
    for passes in (1, 2, 3):
        batch = fit(program(name, data), seed=4, max_iter=passes, tol=0, start=start)
        p = program(name, data)
        units = p.sizes["M" if name == "lda" else "N"]
        svi = fit(p, seed=4, max_iter=1, tol=0, start=start,
                  runner=SVI(batch=units, kappa=0.0, tau=0.0, passes=passes, shuffle=False).runner())
        assert svi.iterations == passes
        assert svi.elbo == pytest.approx(batch.trace[-1], rel=1e-13)
        for k, v in batch.program.state.items():
            if k.startswith("q_") or k in {f"v_{w}" for w in p.plan.points}:
                np.testing.assert_allclose(p.state[k], v, rtol=1e-13, atol=1e-13, err_msg=f"{name} {k} {passes}")


def test_lda_agrees_with_scikit_learns_online_lda():
    """The same corpus, initial topics λ⁰ (drawn by scikit-learn), batches (documents in order) and steps:
    scikit-learn's ρ = (learning_offset + n_batch_iter_)^(−learning_decay) with n_batch_iter_ = 1 at the first
    step is ours with τ = learning_offset, κ = learning_decay; its doc_ratio is our N/|B| (documents); its
    E-step (mean_change_tol, max_doc_update_iter) and ours (local_tol) both run to convergence.  The corpus
    has well separated topics, so that each document's E-step converges fast to its one fixed point."""
    from sklearn.decomposition import LatentDirichletAllocation

    rng = np.random.default_rng(7)
    M, V, K, B, kappa, tau = 48, 40, 4, 12, 0.7, 10.0
    topics = np.zeros((K, V))
    for k in range(K):
        topics[k, 10 * k:10 * k + 10] = rng.dirichlet(np.ones(10))
    doc, word = [], []
    for d in range(M):
        for z in rng.choice(K, 30, p=rng.dirichlet(0.1 * np.ones(K))):
            doc.append(d)
            word.append(rng.choice(V, p=topics[z]))
    doc, word = np.array(doc, dtype=np.int64), np.array(word, dtype=np.int64)
    counts = np.zeros((M, V))
    np.add.at(counts, (doc, word), 1)

    sk = LatentDirichletAllocation(n_components=K, doc_topic_prior=0.5, topic_word_prior=0.1,
                                   learning_method="online", learning_decay=kappa, learning_offset=tau,
                                   batch_size=B, total_samples=M, mean_change_tol=1e-12, max_doc_update_iter=5000,
                                   random_state=0)
    sk._init_latent_vars(V)            # (its initial topics: the start of both)
    start = Start({"phi": {"family": "Dirichlet", "alpha": sk.components_.copy()}}, {}, "<sklearn>")
    for _ in range(2):
        for b in range(0, M, B):
            sk.partial_fit(counts[b:b + B])
    assert sk.n_batch_iter_ == 1 + 2 * M // B

    p = program("lda", {"doc": doc, "word": word})
    done = fit(p, max_iter=1, tol=0, start=start,
               runner=SVI(batch=B, kappa=kappa, tau=tau, passes=2, shuffle=False, local_tol=1e-12).runner())
    assert done.iterations == 2 * M // B
    np.testing.assert_allclose(p.state["q_phi__alpha"], sk.components_, rtol=1e-6)


def test_partial_fit_steps_a_dirichlet_by_its_scaled_counts():
    """No local latent: a step is λ ← (1 − ρ_t) λ + ρ_t (α + N/|B| · counts of the batch), and the batch's bound
    per unit is E[log π_c] = ψ(λ_c) − ψ(Σ λ) under the λ before the step."""
    c = np.random.default_rng(3).integers(0, 5, 200)
    model = ppvi.load(str(MODELS / "dirichlet_categorical.ppvi"))
    kappa, tau = 0.6, 0.0              # (ρ_1 = 1: the first step forgets the start)
    lam = None
    for t, b in enumerate(range(0, 200, 50), start=1):
        r = model.partial_fit({"c": c[b:b + 50]}, total_size=200, kappa=kappa, tau=tau)
        if lam is not None:
            assert r.elbo == pytest.approx(np.mean(digamma(lam[c[b:b + 50]]) - digamma(lam.sum())), rel=1e-12)
        rho = (tau + t) ** -kappa
        fresh = 1.0 + 4.0 * np.bincount(c[b:b + 50], minlength=5)
        lam = fresh if lam is None else (1 - rho) * lam + rho * fresh
        np.testing.assert_allclose(r.q["pi"].params["alpha"], lam, rtol=1e-12)
        assert len(r.elbo_trace) == t and r.provenance.algorithm["step"] == t
    with pytest.raises(ppvi.PPVIError, match="total_size"):
        model.partial_fit({"c": c[:50]}, total_size=10, kappa=kappa, tau=tau)
    with pytest.raises(ppvi.PPVIError, match="differs from the stream"):
        model.partial_fit({"c": c[:50]}, total_size=200, kappa=0.9, tau=tau)


def test_the_result_records_the_algorithm_and_its_settings(tmp_path):
    model = ppvi.load(str(MODELS / "dirichlet_categorical.ppvi"))
    c = np.random.default_rng(0).integers(0, 5, 100)
    r = model.fit({"c": c}, algorithm=SVI(batch=10, kappa=0.8, tau=1.0, passes=2))
    assert r.iterations == 20 and len(r.elbo_trace) == 20 and not r.converged     # (no convergence test)
    assert r.provenance.algorithm == {"name": "svi", "batch": 10, "kappa": 0.8, "tau": 1.0, "passes": 2,
                                      "shuffle": True, "rate": "rho_t = (tau + t)^(-kappa), t = 1, 2, ..."}
    for ext in (".json", ".npz"):
        r.save(str(tmp_path / f"r{ext}"))
        assert ppvi.load_result(str(tmp_path / f"r{ext}")).provenance == r.provenance
    for bad, message in ((SVI(batch=0), "batch is a whole number"), (SVI(batch=5, kappa=1.5), "kappa is a number"),
                         (SVI(batch=5, tau=-1.0), "tau is a number"), ("svi", "needs a minibatch size")):
        with pytest.raises(ppvi.PPVIError, match=message):
            model.fit({"c": c}, algorithm=bad)


def test_the_command_line_flags(tmp_path, capsys):
    from conftest import run_cli

    data = tmp_path / "c.npz"
    np.savez(data, c=np.random.default_rng(0).integers(0, 5, 60))
    model = MODELS / "dirichlet_categorical.ppvi"
    out = tmp_path / "r.json"
    code, _, err = run_cli(["run", model, "--data", data, "--svi", "--batch", "20", "--kappa", "0.9", "--tau", "2",
                            "--passes", "2", "--quiet", "--out", out], capsys)
    assert code == 0, err
    r = ppvi.load_result(str(out))
    assert r.provenance.algorithm["batch"] == 20 and r.provenance.algorithm["kappa"] == 0.9 and r.iterations == 6
    code, _, err = run_cli(["run", model, "--data", data, "--memoized", "--chunks", "3", "--quiet", "--out", out],
                           capsys)
    assert code == 0, err
    assert ppvi.load_result(str(out)).provenance.algorithm == {"name": "memoized", "chunks": 3}
    for flags, message in ((["--chunks", "3"], "--chunks without --memoized"), (["--svi"], "needs --batch"),
                           (["--tau", "1"], "--tau without --svi"), (["--svi", "--batch", "2", "--kappa", "2"],
                                                                       "not in \\[0, 1\\]"),
                           (["--memoized", "--damping", "0.5"], "--memoized with --damping")):
        code, _, err = run_cli(["run", model, "--data", data, *flags], capsys)
        assert code == 2 and "Traceback" not in err
        assert re.search(message, err), err


def test_the_progress_line_shows_the_minibatch_bound_not_an_elbo_change(tmp_path, capsys, monkeypatch):
    """SVI's trace holds each minibatch's bound per unit before its step, not an ELBO that must rise: under
    --svi the command line's progress shows it as such, counted in steps, with no "change"; a batch run
    still shows the ELBO and its change."""
    import functools

    from conftest import run_cli
    from ppvi.io import progress

    monkeypatch.setattr(progress, "Lines", functools.partial(progress.Lines, every=0.0))     # (a line each step)
    data = tmp_path / "c.npz"
    np.savez(data, c=np.random.default_rng(0).integers(0, 5, 60))
    model, out = MODELS / "dirichlet_categorical.ppvi", tmp_path / "r.json"
    code, _, err = run_cli(["run", model, "--data", data, "--svi", "--batch", "20", "--kappa", "0.9", "--tau", "2",
                            "--passes", "1", "--out", out], capsys)
    assert code == 0, err
    trace = ppvi.load_result(str(out)).elbo_trace
    lines = [line for line in err.splitlines() if "step" in line]
    assert lines[-1].startswith(f"ppvi: dirichlet_categorical: step 3/3, minibatch bound per unit {trace[-1]:.10g} "
                                "(before its step), "), err
    assert "ELBO" not in err and "change" not in err
    code, _, err = run_cli(["run", model, "--data", data, "--max-iter", "2", "--tol", "0"], capsys)
    assert code == 0 and "iteration 2/2, ELBO" in err and "change" in err, err


def test_params_by_stepwise_em_with_a_rate_below_one():
    """ρ_t < 1: after two steps on minibatches of half the data (κ = 0.7, τ = 1: ρ_1 = 2^−0.7, ρ_2 = 3^−0.7),
    em_gmm's params are θ ← (1 − ρ_t) θ + ρ_t θ̂, θ̂ the M-step's maximiser from the minibatch's
    responsibilities' sums × N/|B|, written out here (Bishop, PRML 9.2.2): the params in the order the fit
    updates them, τ's maximiser given the μ just stepped.  The start is informed (k-means++ means), so its E-step is the first
    step's local q.  Kernels as plain Python (tests/harness): nothing compiles."""
    import json
    import sys

    from scipy.special import logsumexp

    sys.path.insert(0, str(Path(__file__).parents[1] / "harness"))
    from harness_state import python_module

    x = np.array(json.loads((MODELS / "em_gmm.json").read_text())["x"])[:40]
    m = ppvi.load(str(MODELS / "em_gmm.ppvi")).checked
    bound = bind(m, source_of({"x": x}, m), check_dims(m, {}, "fit", "{name}={value!r}"))
    module = python_module(load_module(m, fixed=fixed_sizes(m, bound.sizes))[0])
    start, p = Program.build(m, module, bound), Program.build(m, module, bound)
    with np.errstate(all="ignore"):
        assert start.initialise(np.random.default_rng([4, 0]))      # (fit's generator for seed 4, its first start)
        fit(p, seed=4, max_iter=1, tol=0, runner=SVI(batch=20, kappa=0.7, tau=1.0, passes=1, shuffle=False).runner())
    assert Layout.of(p).global_steps == ("mu", "weights", "tau")
    w, mu, tau = (start.state[f"v_{n}"].copy() for n in ("weights", "mu", "tau"))
    scale = 40 / 20
    for t, xb in ((1, x[:20]), (2, x[20:])):
        log_r = np.log(w) + 0.5 * np.log(tau) - 0.5 * tau * (xb[:, None] - mu) ** 2     # E-step under θ_{t−1}
        r = np.exp(log_r - logsumexp(log_r, axis=1, keepdims=True))
        n0, n1, n2 = scale * r.sum(0), scale * r.T @ xb, scale * r.T @ xb ** 2
        rho = (1.0 + t) ** -0.7
        assert rho < 1
        mu = (1 - rho) * mu + rho * n1 / n0
        w = (1 - rho) * w + rho * n0 / n0.sum()
        tau = (1 - rho) * tau + rho * n0 / (n2 - 2 * mu * n1 + mu ** 2 * n0)
    for name, value in (("mu", mu), ("weights", w), ("tau", tau)):
        np.testing.assert_allclose(p.state[f"v_{name}"], value, rtol=1e-12, err_msg=name)


def test_the_command_line_s_svi_is_the_apis(corpus, tmp_path, capsys):
    """`ppvi run models/lda.ppvi --svi --batch B --kappa K --tau T --passes P --seed S` (shuffled minibatches,
    drawn from the seed) is fit(algorithm=SVI(…), seed=S): the same q(φ), and the result records the algorithm."""
    from conftest import run_cli

    data, out = tmp_path / "corpus.npz", tmp_path / "r.json"
    np.savez(data, **corpus)
    code, _, err = run_cli(["run", MODELS / "lda.ppvi", "--data", data, "--svi", "--batch", "10", "--kappa", "0.6",
                            "--tau", "2", "--passes", "2", "--seed", "5", "--quiet", "--out", out], capsys)
    assert code == 0, err
    r = ppvi.load_result(str(out))
    api = ppvi.load(str(MODELS / "lda.ppvi")).fit(corpus, seed=5, progress=False,
                                                   algorithm=SVI(batch=10, kappa=0.6, tau=2.0, passes=2))
    assert r.provenance.algorithm == api.provenance.algorithm == {
        "name": "svi", "batch": 10, "kappa": 0.6, "tau": 2.0, "passes": 2, "shuffle": True,
        "rate": "rho_t = (tau + t)^(-kappa), t = 1, 2, ..."}
    assert r.iterations == api.iterations == 8
    np.testing.assert_allclose(r.elbo_trace, api.elbo_trace, rtol=1e-12)
    np.testing.assert_allclose(r.q["phi"].params["alpha"], api.q["phi"].params["alpha"], rtol=1e-12, atol=0)
