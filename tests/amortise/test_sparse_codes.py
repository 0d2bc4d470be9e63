"""A learned sparse-coding encoder (PSD-style, the seed's 19.5; Kavukcuoglu et al. 2008) trained on ppvi's exact
MAP codes: `approximate h by point` with `amortise h`.

J(h) = β/2 ‖v − W h − b‖² + λ ‖h‖₁ (19.16) is computed here by hand; the MAP code is checked by the lasso's
optimality conditions, not by ppvi.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

import ppvi

# It compiles a model no other test needs (about a minute under load, alone): run with --long.
pytestmark = pytest.mark.long

MODELS = os.path.join(os.path.dirname(__file__), "..", "..", "models")
LAMBDA = 1.0

with open(os.path.join(MODELS, "sparse_coding.ppvi"), encoding="utf-8") as _f:
    SPARSE_CODING = _f.read() + "\namortise h by mlp(hidden = 32)\n"       # (models/sparse_coding.ppvi, λ = 1)


@pytest.fixture(scope="module")
def digits():
    return np.load(os.path.join(MODELS, "sparse_coding.npz"))["v"]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, digits):
    d = tmp_path_factory.mktemp("sparse_codes")
    (d / "sc.ppvi").write_text(SPARSE_CODING)
    with pytest.warns(ppvi.PPVIWarning, match="max_iter"):
        return ppvi.load(str(d / "sc.ppvi")).fit({"v": digits[:200]}, max_iter=20, M=16)


def _objective(r, h: np.ndarray, v: np.ndarray) -> np.ndarray:
    """J(h) of each example (19.16) at the fit's W, b, β."""
    w, b, beta = (np.asarray(r.params[k]) for k in ("W", "b", "beta"))
    resid = v - h @ w.T - b
    return 0.5 * float(beta) * np.sum(resid ** 2, axis=1) + LAMBDA * np.sum(np.abs(h), axis=1)


def test_the_encoders_codes_beat_a_zero_start(fitted, digits):
    v = digits[300:400]                       # held out
    enc = fitted.predict({"v": v}, refine=0)
    codes = enc.q["h"]["value"]
    j_enc, j_zero = _objective(fitted, codes, v), _objective(fitted, np.zeros_like(codes), v)
    exact = fitted.predict({"v": v}, refine=1)
    j_exact = _objective(fitted, exact.q["h"]["value"], v)
    assert np.all(j_enc < j_zero)
    # of J's excess over the MAP code at a zero start, the encoder's code leaves a tenth (measured: 4%)
    remaining = (j_enc - j_exact).sum() / (j_zero - j_exact).sum()
    assert remaining < 0.1, (remaining, j_enc.sum(), j_zero.sum(), j_exact.sum())
    # the objective reported is the log joint: −J up to a constant, so differences agree with J's
    assert exact.elbo - enc.elbo == pytest.approx(j_enc.sum() - j_exact.sum(), rel=1e-8)
    assert np.all(j_exact <= j_enc + 1e-9 * np.abs(j_enc))


def test_one_sweep_from_the_encoder_is_the_map_code(fitted, digits):
    """The lasso's optimality (KKT) conditions at the code: with g = β Wᵀ (v − W h − b), g_i = λ sign h_i where
    h_i ≠ 0 and |g_i| ≤ λ where h_i = 0; and the same code as CAVI from scratch."""
    v = digits[300:400]
    h = fitted.predict({"v": v}, refine=1).q["h"]["value"]
    w, b, beta = (np.asarray(fitted.params[k]) for k in ("W", "b", "beta"))
    g = float(beta) * (v - h @ w.T - b) @ w
    on = np.abs(h) > 1e-12
    assert np.allclose(g[on], LAMBDA * np.sign(h[on]), atol=1e-6)
    assert np.all(np.abs(g[~on]) <= LAMBDA + 1e-6)
    import dataclasses

    scratch = dataclasses.replace(fitted, encoders={}).predict({"v": v})
    np.testing.assert_allclose(h, scratch.q["h"]["value"], atol=1e-6)


def test_the_sleep_phase_for_a_point_starts_sweeps_to_the_map_code(fitted, digits):
    """Sleep phase for a MAP code (`sleep = 5`): regressed onto codes dreamed from the Laplace prior with their
    digits, the encoder predicts E[h | v] (squared error's optimum), from which one sweep is the MAP code."""
    import dataclasses

    from ppvi.amortise.train import train

    program = fitted.fit.program
    enc = train(program, dataclasses.replace(program.model.amortised["h"], sleep=5), seed=0, result=fitted)
    assert enc.training == "sleep" and enc.gap >= 0
    v = digits[300:400]
    r = dataclasses.replace(fitted, encoders={"h": enc})
    start, exact = r.predict({"v": v}, refine=0), r.predict({"v": v}, refine=1)
    j_start, j_exact = (_objective(r, p.q["h"]["value"], v) for p in (start, exact))
    assert j_start.sum() < _objective(r, np.zeros((100, 16)), v).sum()
    np.testing.assert_allclose(exact.q["h"]["value"], fitted.predict({"v": v}, refine=1).q["h"]["value"], atol=1e-6)
    assert np.all(j_exact <= j_start + 1e-9 * np.abs(j_start))


@pytest.fixture(scope="module")
def lista_result(fitted):
    """The same fit, its encoder for h trained as LISTA (``amortise h by lista(steps = 3)``) on ppvi's codes."""
    import dataclasses

    from ppvi.amortise.train import train

    program = fitted.fit.program
    spec = dataclasses.replace(program.model.amortised["h"], method="lista", steps=3)
    return dataclasses.replace(fitted, encoders={"h": train(program, spec, seed=0, result=fitted)})


def test_lista_codes_approach_the_map_codes(lista_result, digits):
    """Trained on the fit's exact codes of 200 digits: on 100 held-out digits LISTA's 4 shrinkage steps leave
    less of J's excess over the MAP codes than the plain encoder (measured: 4%) and ISTA's 4 steps with the
    fit's own dictionary; one exact sweep from them is the MAP code."""
    enc = lista_result.encoders["h"]
    assert (enc.method, enc.steps, enc.family) == ("lista", 3, "point") and enc.gap >= 0
    v = digits[300:400]
    codes = lista_result.predict({"v": v}, refine=0).q["h"]["value"]
    exact = lista_result.predict({"v": v}, refine=1).q["h"]["value"]
    w, b, beta = (np.asarray(lista_result.params[k]) for k in ("W", "b", "beta"))
    lipschitz = np.linalg.eigvalsh(w.T @ w)[-1]
    z = np.zeros_like(codes)
    for _ in range(4):                                     # ISTA (19.16's proximal gradient), by hand
        u = z + (v - z @ w.T - b) @ w / lipschitz
        z = np.sign(u) * np.maximum(np.abs(u) - LAMBDA / (float(beta) * lipschitz), 0.0)
    j_lista, j_ista, j_exact = (_objective(lista_result, h, v) for h in (codes, z, exact))
    j_zero = _objective(lista_result, np.zeros_like(codes), v)
    assert np.all(j_exact <= j_lista + 1e-9 * np.abs(j_lista))
    excess = (j_lista - j_exact).sum()
    assert excess < 0.5 * (j_ista - j_exact).sum(), (excess, (j_ista - j_exact).sum())
    assert excess < 0.1 * (j_zero - j_exact).sum()
    assert np.linalg.norm(codes - exact) < 0.5 * np.linalg.norm(exact)


def test_a_lista_encoder_is_saved_and_loaded(lista_result, digits, tmp_path):
    v = digits[300:310]
    want = lista_result.predict({"v": v}, refine=0).q["h"]["value"]
    for ext in ("json", "npz"):
        lista_result.save(str(tmp_path / f"r.{ext}"))
        back = ppvi.load_result(str(tmp_path / f"r.{ext}"))
        assert back.encoders["h"] == lista_result.encoders["h"] and back.encoders["h"].method == "lista"
        np.testing.assert_array_equal(back.predict({"v": v}, refine=0).q["h"]["value"], want)
