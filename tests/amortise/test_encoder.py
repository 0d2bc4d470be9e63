"""Encoders trained on CAVI-refined targets, checked against mathematics (issue 19, the seed's 19.5).

- EM mixture (q(z) Categorical): one exact sweep from the encoder is the exact posterior (PRML 9.23), and
  the amortisation gap is Σ_n KL(q_enc(z_n) ‖ p(z_n | x_n)), both computed here by hand.
- Binary sparse coding on the bars (q(h) Bernoulli): from the encoder, one sweep beats CAVI from scratch run
  to convergence, and nearly every held-out point reaches the same fixed point.
- Factor scores (q(X) Normal, W known, τ latent): from the encoder, sweeps reach the mean-field fixed
  point, whose means are the exact posterior means (I + E[τ] WᵀW)⁻¹ E[τ] Wᵀ y_n (PRML 10.1.2) and whose
  precisions are the diagonal of I + E[τ] WᵀW, both computed here.
- Save/load, determinism, and the user's mistakes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil

import numpy as np
import pytest

import ppvi
from ppvi.errors import PPVIError

MODELS = os.path.join(os.path.dirname(__file__), "..", "..", "models")

def _amortised(name: str, statement: str) -> str:
    """A model of models/ as it is, with an ``amortise`` statement added (one text of the model, not a copy)."""
    with open(os.path.join(MODELS, f"{name}.ppvi"), encoding="utf-8") as f:
        return f.read() + f"\n{statement}\n"


EM_GMM = _amortised("em_gmm", "amortise z by mlp(hidden = 16)")
CORPUS = os.path.join(os.path.dirname(__file__), "..", "corpus", "models")
BSC = _amortised("binary_sparse_coding", "amortise h by mlp(hidden = 32)")


def _model(tmp_path_factory, name: str, text: str, data: str):
    d = tmp_path_factory.mktemp(name)
    path = d / f"{name}.ppvi"
    path.write_text(text)
    shutil.copy(os.path.join(MODELS, data), d / f"{name}{os.path.splitext(data)[1]}")
    return ppvi.load(str(path))


@pytest.fixture(scope="module")
def em(tmp_path_factory):
    return _model(tmp_path_factory, "em_gmm_amortised", EM_GMM, "em_gmm.json").fit()


@pytest.fixture(scope="module")
def bsc(tmp_path_factory):
    return _model(tmp_path_factory, "bsc_amortised", BSC, "binary_sparse_coding.npz").fit()


def _mixture_draws(n: int, seed: int) -> np.ndarray:
    """The generator of models/em_gmm.json (models/make_data.py): weights .5 .3 .2, means −2 1 4, precisions 1 4 2."""
    rng = np.random.default_rng(seed)
    z = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    return np.array([-2.0, 1.0, 4.0])[z] + rng.standard_normal(n) / np.sqrt(np.array([1.0, 4.0, 2.0])[z])


def _bars(n: int, seed: int) -> np.ndarray:
    """The generator of models/binary_sparse_coding.npz: 5×5 images, 10 bars each on with probability 0.2,
    noise sd 0.25."""
    rng = np.random.default_rng(seed)
    w = np.zeros((25, 10))
    for k in range(5):
        w[np.arange(5) + 5 * k, k] = 1.0           # horizontal bar k
        w[5 * np.arange(5) + k, 5 + k] = 1.0       # vertical bar k
    h = (rng.random((n, 10)) < 0.2).astype(float)
    return h @ w.T + 0.25 * rng.standard_normal((n, 25))


def _log_joint_terms(r, x: np.ndarray) -> np.ndarray:
    """log w_k + log N(x_n | μ_k, τ_k⁻¹) for every n, k (PRML 9.23's numerator), from the fit's params."""
    w, mu, tau = (np.asarray(r.params[k]) for k in ("weights", "mu", "tau"))
    return np.log(w) + 0.5 * (np.log(tau) - math.log(2 * math.pi)) - 0.5 * tau * (x[:, None] - mu) ** 2


# ------------------------------------------------------------------ the EM mixture
def test_one_sweep_from_the_encoder_is_the_exact_posterior(em):
    x = _mixture_draws(400, seed=3)
    terms = _log_joint_terms(em, x)
    lse = np.logaddexp.reduce(terms, axis=1)
    p = em.predict({"x": x}, refine=1)
    np.testing.assert_allclose(p.q["z"]["p"], np.exp(terms - lse[:, None]), rtol=1e-9, atol=1e-12)
    # with q exact the bound is the log-likelihood Σ_n log Σ_k w_k N(x_n | μ_k, τ_k⁻¹) (PRML 9.28)
    assert p.elbo == pytest.approx(float(lse.sum()), rel=1e-10)


def test_the_amortisation_gap_is_the_kl_to_the_posterior(em):
    """refine=0 is the encoder's own q; ELBO(q) = log p(x) − KL(q ‖ p(z | x)), so the gap is Σ_n KL ≥ 0."""
    x = _mixture_draws(400, seed=4)
    terms = _log_joint_terms(em, x)
    log_post = terms - np.logaddexp.reduce(terms, axis=1)[:, None]
    at_encoder = em.predict({"x": x}, refine=0)
    assert at_encoder.iterations == 0
    q = at_encoder.q["z"]["p"]
    kl = float(np.sum(np.where(q > 0, q * (np.log(np.where(q > 0, q, 1.0)) - log_post), 0.0)))
    gap = em.amortisation_gap({"x": x})
    assert gap >= 0 and gap == pytest.approx(kl, rel=1e-7, abs=1e-9)
    # the encoder learned the responsibilities: a small KL per point (the untrained network's is ~0.5)
    assert kl / len(x) < 0.02
    assert 0 <= em.encoders["z"].gap / 300 < 0.02


def test_save_and_load_keep_the_encoder(em, tmp_path):
    x = _mixture_draws(50, seed=5)
    want = em.predict({"x": x}, refine=0).q["z"]["p"]
    for ext in ("json", "npz"):
        path = str(tmp_path / f"r.{ext}")
        em.save(path)
        back = ppvi.load_result(path)
        assert back == em and back.encoders["z"] == em.encoders["z"]
        assert np.array_equal(back.predict({"x": x}, refine=0).q["z"]["p"], want)
    assert json.loads((tmp_path / "r.json").read_text())["encoders"]["z"]["family"] == "Categorical"


def test_a_damaged_encoder_in_a_file_is_refused(em, tmp_path):
    path = tmp_path / "r.json"
    em.save(str(path))
    doc = json.loads(path.read_text())
    doc["encoders"]["z"]["weights"]["1"] = [[1.0]]
    path.write_text(json.dumps(doc))
    with pytest.raises(PPVIError, match="encoders/z/weights/1"):
        ppvi.load_result(str(path))


def test_training_is_deterministic_given_the_seed(em):
    from ppvi.amortise.train import train

    program, spec = em.fit.program, em.fit.program.model.amortised["z"]
    before = program.snapshot()
    arrays = program.snapshot(copy=False)
    again = train(program, spec, seed=0, rounds=1)
    assert again == train(program, spec, seed=0, rounds=1)
    assert again != train(program, spec, seed=1, rounds=1)
    # the fit's q is put back, in its own arrays (the result's q are views of them)
    assert all(program.state[k] is arrays[k] and np.array_equal(before[k], arrays[k]) for k in before)
    np.testing.assert_array_equal(em.q["z"]["p"], before["q_z__p"])


def test_the_sleep_phase_learns_the_posterior(em):
    """Wake–sleep's sleep phase (19.5.1): fitted to (z, x) dreamed from the model, whose optimum is the exact
    posterior p(z | x) — here also what one CAVI sweep gives (PRML 9.23)."""
    from ppvi.amortise.train import train

    program = em.fit.program
    spec = dataclasses.replace(program.model.amortised["z"], sleep=10)
    enc = train(program, spec, seed=0, result=em)
    assert enc.training == "sleep" and enc.gap >= 0
    x = _mixture_draws(400, seed=8)
    terms = _log_joint_terms(em, x)
    log_post = terms - np.logaddexp.reduce(terms, axis=1)[:, None]
    out = enc.outputs({"v_x": x}, len(x))
    log_q = out - np.logaddexp.reduce(out, axis=1)[:, None]
    kl = np.sum(np.exp(log_q) * (log_q - log_post), axis=1)
    assert np.all(kl >= -1e-12) and kl.mean() < 0.02
    assert dataclasses.replace(em, encoders={"z": enc}).amortisation_gap({"x": x}) == \
        pytest.approx(kl.sum(), rel=1e-6, abs=1e-9)


def test_lista_is_refused_for_a_q_that_is_not_a_point(em):
    from ppvi.amortise.train import train

    program = em.fit.program
    spec = dataclasses.replace(program.model.amortised["z"], method="lista", steps=3)
    line = EM_GMM.rstrip("\n").count("\n") + 1
    with pytest.raises(PPVIError, match=rf":{line}:1: error: LISTA predicts a MAP code, a point q; q\(z\) is a "
                                        r"Categorical"):
        train(program, spec, seed=0, result=em)


def test_a_result_without_an_encoder_has_no_gap(em):
    with pytest.raises(PPVIError, match="amortises no latent"):
        dataclasses.replace(em, encoders={}).amortisation_gap({"x": _mixture_draws(10, seed=6)})


# ------------------------------------------------------------------ binary sparse coding on the bars
def test_bars_encoder_plus_one_sweep_beats_cavi_from_scratch(bsc):
    """Held-out bars: CAVI from scratch (an E-step from the standard start, globals held) run to convergence
    against the encoder plus sweeps.  One sweep from the encoder is already at least as high, and nearly
    every image reaches the same fixed point either way."""
    x = {"v": _bars(300, seed=7)}
    scratch = dataclasses.replace(bsc, encoders={})
    converged = scratch.predict(x)
    assert converged.converged and converged.iterations >= 2
    one = bsc.predict(x, refine=1)
    assert one.elbo >= converged.elbo - 1e-9 * abs(converged.elbo)
    assert bsc.predict(x, refine=0).elbo > scratch.predict(x, refine=0).elbo
    refined = bsc.predict(x)
    same = np.max(np.abs(refined.q["h"]["p"] - converged.q["h"]["p"]), axis=1) < 1e-6
    assert same.mean() >= 0.95
    assert refined.elbo >= converged.elbo - 1e-9 * abs(converged.elbo)


def test_bars_encoder_reaches_the_fits_fixed_point(bsc):
    """On the training images the encoder plus two sweeps is the fit's own local q (49 sweeps from its start)."""
    x = {"v": bsc.data["v"]}
    p = bsc.predict(x, refine=2)
    np.testing.assert_allclose(p.q["h"]["p"], bsc.q["h"]["p"], atol=1e-6)
    assert p.iterations <= 2 < bsc.iterations
    gap = bsc.amortisation_gap(x)
    assert gap >= 0 and gap == pytest.approx(bsc.encoders["h"].gap, rel=1e-6)


# ------------------------------------------------------------------ a Normal local latent: factor scores
@pytest.fixture(scope="module")
def scores(tmp_path_factory):
    """tests/corpus/models/factor_scores with ``amortise X``, fitted on 150 of its rows; W and all of y."""
    with open(os.path.join(CORPUS, "factor_scores.ppvi"), encoding="utf-8") as f:
        text = f.read() + "\namortise X by mlp(hidden = 16)\n"
    with np.load(os.path.join(CORPUS, "factor_scores.npz")) as f:
        W, y = f["W"], f["y"]
    path = tmp_path_factory.mktemp("factor_scores") / "factor_scores_amortised.ppvi"
    path.write_text(text, encoding="utf-8")
    return ppvi.load(str(path)).fit({"W": W, "y": y[:150]}, progress=False), W, y


def test_factor_scores_from_the_encoder_reach_the_exact_posterior_means(scores):
    """Predicting 50 new rows with q(τ) held.  Mean field over X's coordinates keeps the exact posterior means
    of this Gaussian (PRML 10.1.2); from the encoder's q each sweep comes closer, and the fixed point is the
    closed form."""
    r, W, y = scores
    tau = r.q["tau"]["shape"] / r.q["tau"]["rate"]
    A = np.eye(W.shape[1]) + tau * W.T @ W
    exact = np.linalg.solve(A, tau * W.T @ y[150:].T).T
    new = {"W": W, "y": y[150:]}
    errors = [np.abs(r.predict(new, refine=k, progress=False).q["X"]["mean"] - exact).max() for k in (0, 1, 2)]
    assert errors[0] > errors[1] > errors[2]
    start = dataclasses.replace(r, encoders={}).predict(new, refine=0, progress=False)   # (the standard start)
    assert errors[0] < np.abs(start.q["X"]["mean"] - exact).max()
    p = r.predict(new, tol=1e-14, progress=False)
    np.testing.assert_allclose(p.q["X"]["mean"], exact, atol=1e-9)
    np.testing.assert_allclose(p.q["X"]["sd"], np.broadcast_to(1 / np.sqrt(np.diag(A)), exact.shape), rtol=1e-12)
    scratch = dataclasses.replace(r, encoders={}).predict(new, tol=1e-14, progress=False)
    np.testing.assert_allclose(scratch.q["X"]["mean"], exact, atol=1e-9)
    assert p.iterations <= scratch.iterations
    assert r.amortisation_gap(new) > 0


def test_the_sleep_phase_for_a_normal_q_learns_the_posterior_marginals(scores):
    """Wake–sleep's sleep phase for q(X) Normal (`sleep = 10`): fitted to maximise Σ log q(x | y) over (x, y)
    dreamed from the model, a factorised Gaussian encoder learns each score's posterior marginal,
    N(μ_k, (A⁻¹)_kk) with μ = A⁻¹ τ Wᵀ y and A = I + τ WᵀW (PRML 2.116), computed here at τ = E_q[τ]."""
    from ppvi.amortise.train import train

    r, W, y = scores
    program = r.fit.program
    enc = train(program, dataclasses.replace(program.model.amortised["X"], sleep=10), seed=0, result=r)
    assert enc.training == "sleep" and enc.gap >= 0
    tau = r.q["tau"]["shape"] / r.q["tau"]["rate"]
    A = np.eye(W.shape[1]) + tau * W.T @ W
    exact = np.linalg.solve(A, tau * W.T @ y[150:].T).T
    q = enc.entry({"v_y": y[150:]}, exact.shape)
    marginal_sd = np.sqrt(np.diag(np.linalg.inv(A)))
    # learned from 1500 noisy dreams, not from the posterior itself: the root-mean-square error of the means is
    # a quarter of a posterior sd (measured 0.080; the prior mean's is 0.7), the sds right on (geometric) average
    rms = np.sqrt(np.mean((q["mean"] - exact) ** 2))
    assert rms < 0.1 < np.sqrt(np.mean(exact ** 2)), rms
    np.testing.assert_allclose(np.exp(np.log(q["sd"]).mean(axis=0)), marginal_sd, rtol=0.2)
    p = dataclasses.replace(r, encoders={"X": enc}).predict({"W": W, "y": y[150:]}, tol=1e-14, progress=False)
    np.testing.assert_allclose(p.q["X"]["mean"], exact, atol=1e-9)


# ------------------------------------------------------------------ evidence of new data (ppvi.simulate.evidence)
# (here, where the EM mixture and the bars are already compiled: the new data's local q is a prediction)
def test_held_out_evidence_of_the_em_mixture_is_the_closed_form_likelihood(em):
    """Globals are params: log p(x_new; θ) = Σ_n log Σ_k w_k N(x_n | μ_k, τ_k⁻¹), computed here.  The predicted
    q(z_n) is the exact posterior (PRML 9.23), so every weight is the point's likelihood: no error, no gap."""
    x = _mixture_draws(40, seed=11)
    exact = np.logaddexp.reduce(_log_joint_terms(em, x), axis=1)
    e = em.evidence(200, per_datum=True, seed=0, data={"x": x})
    np.testing.assert_allclose(e.per_datum["log_evidence"], exact, rtol=1e-9)
    assert e.log_evidence == pytest.approx(exact.sum(), rel=1e-10)
    assert e.elbo == pytest.approx(exact.sum(), rel=1e-8) and abs(e.gap) < 1e-6 * abs(e.elbo)
    assert np.all(e.per_datum["stderr"] < 1e-8)


def test_held_out_evidence_of_binary_sparse_coding_matches_enumeration(bsc):
    """Held-out bars, m = 10: log p(v_n; W, b, β) summed over all 2¹⁰ states of h_n, against one importance
    sampler per image whose proposal is the predicted mean-field q(h_n)."""
    v = _bars(6, seed=12)
    w, b, beta = (np.asarray(bsc.params[k]) for k in ("W", "b", "beta"))
    m = w.shape[1]
    states = ((np.arange(2 ** m)[:, None] >> np.arange(m)) & 1).astype(float)
    log_prior = (states * -np.logaddexp(0, -b) + (1 - states) * -np.logaddexp(0, b)).sum(1)
    resid = v[:, None, :] - states @ w.T
    log_lik = (0.5 * np.log(beta / (2 * math.pi)) - 0.5 * beta * resid ** 2).sum(-1)
    exact = np.logaddexp.reduce(log_prior + log_lik, axis=1)
    e = bsc.evidence(4000, per_datum=True, seed=1, data={"v": v})
    per = e.per_datum
    assert np.all(np.abs(per["log_evidence"] - exact) < 4 * per["stderr"] + 1e-9)
    assert e.elbo <= exact.sum() + 1e-9 and e.gap >= -3 * e.stderr
    assert e.elbo == pytest.approx(float(bsc.score({"v": v}).sum()), rel=1e-10)


# ------------------------------------------------------------------ training along with the fit (`every = k`)
def test_training_during_the_fit_leaves_the_fit_as_it_was(em):
    """``amortise z by mlp(hidden = 16, every = 10)``: refreshed every 10 sweeps from the fit's current q, the
    encoder only proposes, so the fit's trace and q are those of the fit without it (to rounding: a refresh
    leaves the cached statistics to be summed afresh); the encoder keeps the gaps of its refreshes."""
    checked = em.fit.program.model
    spec = dataclasses.replace(checked.amortised["z"], every=10)
    # (the same model text, so the same compiled kernels: only the checked statement differs)
    model = ppvi.api.Model(dataclasses.replace(checked, amortised={"z": spec}))
    r = model.fit({"x": np.asarray(em.data["x"])})
    np.testing.assert_allclose(r.elbo_trace, em.elbo_trace, rtol=1e-12)
    np.testing.assert_allclose(r.q["z"]["p"], em.q["z"]["p"], rtol=1e-9, atol=1e-12)
    for k in ("weights", "mu", "tau"):
        np.testing.assert_allclose(r.params[k], em.params[k], rtol=1e-9)
    enc = r.encoders["z"]
    assert len(enc.trace) == r.iterations // 10 and all(g >= -1e-9 for g in (*enc.trace, enc.gap))


@pytest.mark.long
def test_training_during_the_fit_shrinks_the_gap(bsc):
    """Bars, refreshed every 5 sweeps (`every = 5`): the fit is the fixture's, to rounding, and the encoder's gap
    shrinks with each refresh (measured: 32, 16, 8.9, 5.6, … 5.4 nats), below that of the encoder trained after
    the fit alone (12)."""
    from ppvi.amortise.train import During
    from ppvi.infer.cavi import fit

    program = bsc.fit.program
    kept = program.snapshot()
    try:
        during = During(program, {"h": dataclasses.replace(program.model.amortised["h"], every=5)}, seed=0)
        with_it = fit(program, seed=0, max_iter=1000, tol=1e-8, on_iteration=during)
        np.testing.assert_allclose(with_it.trace, bsc.elbo_trace, rtol=1e-12)
        for k, a in program.snapshot().items():
            np.testing.assert_allclose(a, kept[k], rtol=1e-9, atol=1e-12)
    finally:
        for k, a in kept.items():
            program.state[k][...] = a
        program.relink()
        program.stale = True
    enc = during.encoders["h"]
    gaps = (*enc.trace, enc.gap)
    assert len(gaps) == len(with_it.trace) // 5 and all(g >= -1e-9 for g in gaps)
    assert gaps[-1] < 0.25 * gaps[0] and gaps[-1] < bsc.encoders["h"].gap, (gaps, bsc.encoders["h"].gap)
