"""`ppvi derive` of a chain (issue 18): the structured block as a step of the derivation; refusals."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import special
from scipy.stats import multivariate_normal

import ppvi
from conftest import MODELS, assert_golden, run_cli
from helpers import derivation
from reference import elbo, sweep
from ppvi.derive.numeric import Env

HERE = Path(__file__).parent
HMM = MODELS / "sequences" / "hmm.ppvi"


def test_golden_chain_derivation(capsys, monkeypatch, update_golden):
    monkeypatch.chdir(MODELS.parent)
    code, out, err = run_cli(["derive", "models/sequences/hmm.ppvi"], capsys)
    assert code == 0, err
    assert "q(z) = Categorical chain, one structured block" in out
    golden = HERE / "golden" / "hmm.txt"
    assert_golden(golden, out, update_golden)


@pytest.mark.parametrize("path", sorted((MODELS / "sequences").glob("*.ppvi")), ids=lambda p: p.stem)
def test_every_sequence_example_checks_and_derives(path, capsys):
    for argv in (["check", path], ["derive", path], ["derive", path, "--format", "json"],
                 ["derive", path, "--format", "latex"]):
        code, out, err = run_cli(argv, capsys)
        assert code == 0, err
    jointly = re.search(r"^approximate \w+ jointly", path.read_text(), re.MULTILINE) is not None
    assert ("one structured block" in run_cli(["derive", path], capsys)[1]) == jointly, path.name


def test_chain_in_json_and_latex(capsys):
    code, out, _ = run_cli(["derive", HMM, "--format", "json"], capsys)
    z = json.loads(out)["q"]["z"]
    assert z["family"] == "Categorical chain" and z["structured"] is True
    assert z["potentials"]["log_trans"] == "E[logp](A)[j, k]"
    code, out, _ = run_cli(["derive", HMM, "--format", "latex"], capsys)
    assert code == 0 and r"\log \Psi_{j,k}" in out


AR2 = """model ar2_offsets
dim T
data y[T]
a1 ~ Normal(0, 1)
a2 ~ Normal(0, 1)
tau ~ Gamma(1.0, 1.0)
for t in T[2:]:
    y[t] ~ Normal(a1 * y[t-1] + a2 * y[t-2], precision = tau)
"""


def test_a_sliced_plate_keeps_its_loop_variable_and_offsets(tmp_path, capsys):
    """A sum over a sliced plate is named by its dim like the whole plate's (it was `Σ_i≥2`, its dim read off
    the slice's length T − 2), and earlier elements print as the model writes them (`y[t-1]`, not `y[-1 + t]`),
    in text and LaTeX."""
    code, out, err = run_cli(["derive", _model(tmp_path, AR2)], capsys)
    assert code == 0, err
    assert "Σ_t≥2 y[t-1]·y[t-2]" in out and "Σ_i" not in out and "+ t]" not in out
    code, out, err = run_cli(["derive", HMM], capsys)
    assert "Σ_t≥1 q(z[t-1] = k, z[t] = d)" in out and "Σ_i" not in out
    code, out, err = run_cli(["derive", _model(tmp_path, AR2), "--format", "latex"], capsys)
    assert r"\sum_{t\geq 2} \mathrm{y}_{t-1} \mathrm{y}_{t-2}" in out and "+ t}" not in out


@pytest.mark.parametrize("path", [MODELS / "gmm_1d.ppvi", HMM], ids=lambda p: p.stem)
def test_latex_has_one_row_a_line(path, capsys):
    """Each row of the align* its own line ending in ``\\\\`` (the last none): the terminal escape turned the
    newlines of rows joined into one string into literal ``\\x0a``, which no LaTeX compiles (pdflatex is not on
    CI's machine, so the compile test skips)."""
    code, out, err = run_cli(["derive", path, "--format", "latex"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    body = lines[lines.index(r"\begin{align*}") + 1:lines.index(r"\end{align*}")]
    assert "\\x0a" not in out and len(body) > 3
    assert all(line.endswith(r" \\") for line in body[:-1]) and not body[-1].endswith("\\")


def _model(tmp_path, text):
    p = tmp_path / "m.ppvi"
    p.write_text(text)
    return p


@pytest.mark.parametrize("text, message", [
    ("dim T\ndim K = 2\nconst p[K] = 0.5\nconst A[K, K] = 0.5\nz[0] ~ Categorical(p)\nz[1] ~ Categorical(p)\n"
     "for t in T[2:]:\n    z[t] ~ Categorical(A[z[t-2]])\n", "looks back more than one step"),
    ("dim T\ndim S = 2\nfor s in S:\n    x[0, s] ~ Normal(0, 1)\nfor t in T[1:]:\n    for s in S:\n"
     "        x[t, s] ~ Normal(x[t-1, s], 1)\napproximate x jointly\n",
     "ppvi cannot derive the joint q of `x` yet: a first-order chain of vectors or scalars along its last plate axis"),
], ids=["second_order", "chain_along_a_plates_first_axis_jointly"])     # (`x[s, t]` is derived: test_lds_plate)
def test_chains_outside_the_block_are_refused(tmp_path, capsys, text, message):
    code, _, err = run_cli(["derive", _model(tmp_path, text)], capsys)
    assert code == 2 and message in err and "Traceback" not in err


def test_sampling_a_chain_that_starts_from_the_data_is_refused_at_the_statement(tmp_path, capsys):
    """AR1 below draws no y[0]: it is conditioned on the data's.  Ancestral sampling does not take it from there
    yet, so it says so at the chain's statement (before: a KeyError traceback).  Chains that draw their first
    elements are sampled: tests/simulate/test_sampling.py."""
    (tmp_path / "ar1.ppvi").write_text(AR1)
    code, _, err = run_cli(["sample", tmp_path / "ar1.ppvi", "--draws", "2", "--dim", "T=4", "--out",
                            tmp_path / "s.npz"], capsys)
    assert code == 2 and "ar1.ppvi:5:5: error: no statement draws `y[0]`: the chain starts from the data" in err, err
    assert "hint: to simulate, draw them: `y[0] ~ …`" in err
    assert "Traceback" not in err and "internal error" not in err


AR1 = """\
dim T
data y[T]
rho ~ Normal(0, 1)
for t in T[1:]:
    y[t] ~ Normal(rho * y[t-1], 0.5)
"""


def test_observed_chain_sums_from_the_slice_and_is_exact(tmp_path, capsys):
    """AR(1) with a Normal prior on ρ: one conjugate latent, so the ELBO at the fixed point equals
    log p(y[1:] | y[0]) = log N(y[1:]; 0, 0.25 I + a aᵀ), a = y[:-1] (the sums start at t = 1)."""
    rng = np.random.default_rng(5)
    y = np.zeros(30)
    for t in range(1, 30):
        y[t] = 0.7 * y[t - 1] + 0.5 * rng.normal()
    d = derivation(AR1)
    env = Env({"y": y}, {}, {"T": len(y)})
    sweep(d, env)
    a, b = y[:-1], y[1:]
    exact = multivariate_normal(np.zeros(len(b)), 0.25 * np.eye(len(b)) + np.outer(a, a)).logpdf(b)
    assert elbo(d, env) == pytest.approx(exact, abs=1e-8, rel=0)
    code, out, err = run_cli(["derive", _model(tmp_path, AR1), "--code"], capsys)   # (its kernels: from t = 1)
    assert code == 0 and "if i" in out and " >= 1:" in out, err


def _vb_regression(x, r, prior_precision, a0, b0, tol=1e-15):
    """Mean-field VB for r = w x + noise, w ~ N(0, 1/prior_precision), noise precision τ ~ Gamma(a0, b0) and
    q(w) q(τ) (PRML 10.1.3's two-factor coordinate ascent, the regression form of Drugowitsch 2013 with the
    weight's prior precision fixed): q(w) = N(m, s²), q(τ) = Gamma(a, b); the ELBO of the fixed point."""
    n, sxx, sxr, srr = len(r), x @ x, x @ r, r @ r
    a, e_tau = a0 + n / 2, a0 / b0
    for _ in range(1000):
        precision = prior_precision + e_tau * sxx
        m, s2 = e_tau * sxr / precision, 1 / precision
        b = b0 + (srr - 2 * m * sxr + (m * m + s2) * sxx) / 2     # b0 + E_w[Σ (r - w x)²] / 2
        e_tau, old = a / b, e_tau
        if abs(e_tau - old) < tol * e_tau:
            break
    e_log_tau, e_sq = special.digamma(a) - np.log(b), srr - 2 * m * sxr + (m * m + s2) * sxx
    elbo = (0.5 * np.log(prior_precision / (2 * np.pi)) - prior_precision * (m * m + s2) / 2            # E log p(w)
            + a0 * np.log(b0) - special.gammaln(a0) + (a0 - 1) * e_log_tau - b0 * e_tau              # E log p(τ)
            + n / 2 * (e_log_tau - np.log(2 * np.pi)) - e_tau * e_sq / 2                               # E log p(r | w, τ)
            + 0.5 * np.log(2 * np.pi * np.e * s2)                                                      # H[q(w)]
            + a - np.log(b) + special.gammaln(a) + (1 - a) * special.digamma(a))                       # H[q(τ)]
    return m, np.sqrt(s2), a, b, elbo


def test_ar1_example_is_a_bayesian_regression_on_the_series_past():
    """models/sequences/ar1.ppvi regresses each year's level on the year before's: y is data, so the lag reads
    data and there is no chain to smooth.  Its compiled fit is the coordinate ascent of VB linear regression with
    one input y[t-1] and targets y[t], t ≥ 1 (written above from PRML 10.1.3, not from ppvi), q(φ), q(τ) and the
    ELBO to 1e-10; the posterior mean of φ is within 1 % of the least-squares estimate (a prior of precision 1
    against Σ y[t-1]² ≈ 170 data points' worth)."""
    path = MODELS / "sequences" / "ar1.ppvi"
    y = np.loadtxt(path.with_suffix(".csv"), skiprows=1)          # (one column, `y`)
    x, r = y[:-1], y[1:]
    m, sd, a, b, elbo_ = _vb_regression(x, r, prior_precision=1.0, a0=1.0, b0=1.0)
    fit = ppvi.load(str(path)).fit(tol=0, max_iter=60)
    assert float(fit.q["phi"]["mean"]) == pytest.approx(m, rel=1e-10)
    assert float(fit.q["phi"]["sd"]) == pytest.approx(sd, rel=1e-10)
    assert float(fit.q["tau"]["shape"]) == pytest.approx(a, rel=1e-10) and a == 1 + 97 / 2
    assert float(fit.q["tau"]["rate"]) == pytest.approx(b, rel=1e-10)
    assert fit.elbo == pytest.approx(elbo_, rel=1e-10)
    ols = (x @ r) / (x @ x)
    assert 0.8 < m < ols and m == pytest.approx(ols, rel=0.01)       # (shrunk towards the prior's 0, a little)


_PANEL = """\
dim T, S
data seq[T] : index(S)
data y[T]
"""

RAGGED_AR1 = f"""\
{_PANEL}phi ~ Normal(0, 1)
tau ~ Gamma(1, 1)
for t in T[1:] by seq:
    y[t] ~ Normal(phi * y[t-1], precision = tau)
"""

# the same, each sequence's first step drawn too: a row (0, y[first]) more of the regression
RAGGED_AR1_FIRSTS = f"""\
{_PANEL}phi ~ Normal(0, 1)
tau ~ Gamma(1, 1)
for t in T[:1] by seq:
    y[t] ~ Normal(0, precision = tau)
for t in T[1:] by seq:
    y[t] ~ Normal(phi * y[t-1], precision = tau)
"""


def _panel(lengths=(7, 1, 12, 2, 30), seed=11):
    """AR(1) series of the given lengths in long format (sequence numbers, values), each from its own level."""
    rng = np.random.default_rng(seed)
    seq, y = [], []
    for s, n in enumerate(lengths):
        v = [rng.normal(4 * s, 2)]
        for _ in range(n - 1):
            v.append(0.6 * v[-1] + rng.normal())
        seq, y = seq + [s] * n, y + v
    return np.array(seq), np.array(y)


def _pairs(seq, y, firsts):
    """Regression rows (y[t-1], y[t]) within each sequence; with ``firsts``, (0, y[t]) at each sequence's start."""
    inside = np.r_[False, seq[1:] == seq[:-1]]
    x, r = np.where(inside, np.r_[0.0, y[:-1]], 0.0), y
    keep = inside | firsts
    return x[keep], r[keep]


@pytest.mark.parametrize("text, firsts", [(RAGGED_AR1, False), (RAGGED_AR1_FIRSTS, True)], ids=["conditioned", "drawn"])
def test_a_ragged_chain_of_data_regresses_each_step_on_the_one_before_in_its_sequence(text, firsts):
    """An AR(1) of several series of different lengths in long format, `for t in T[1:] by seq:` (it was refused
    at the check): the derived updates, run by the reference evaluator, are VB linear regression on the pairs
    (y[t-1], y[t]) inside each sequence, none across a restart (and with the first steps drawn, the rows
    (0, y[first]) besides): q(φ), q(τ) and the ELBO to 1e-10.  Compiled: the next test; tests/harness."""
    seq, y = _panel()
    d = derivation(text)
    env = Env({"y": y, "seq": seq}, {("tau", "x"): 1.0}, {"T": len(y), "S": seq[-1] + 1})
    for _ in range(12):        # (each sweep shrinks the change ~50-fold: at rounding by the 9th)
        sweep(d, env)
    m, sd, a, b, elbo_ = _vb_regression(*_pairs(seq, y, firsts), prior_precision=1.0, a0=1.0, b0=1.0)
    got = [float(env.arrays[k]) for k in ("mean(phi)", "sd(phi)", "shape(tau)", "rate(tau)")]
    np.testing.assert_allclose(got, [m, sd, a, b], rtol=1e-10)
    assert elbo(d, env) == pytest.approx(elbo_, rel=1e-10)


@pytest.mark.long       # (a compilation; the harness compares its kernels with the reference evaluator too)
def test_a_ragged_chain_of_data_is_fitted_compiled(tmp_path):
    """The compiled fit of the conditioned form (a Gaussian chain of data riding on `seq`: its statistics are
    the data's, read once) is the same regression."""
    seq, y = _panel()
    (tmp_path / "panel.ppvi").write_text(RAGGED_AR1)
    fit = ppvi.load(str(tmp_path / "panel.ppvi")).fit({"y": y, "seq": seq}, tol=0, max_iter=60)
    m, sd, a, b, elbo_ = _vb_regression(*_pairs(seq, y, False), prior_precision=1.0, a0=1.0, b0=1.0)
    got = [float(fit.q["phi"]["mean"]), float(fit.q["phi"]["sd"]), float(fit.q["tau"]["shape"]),
           float(fit.q["tau"]["rate"])]
    np.testing.assert_allclose(got, [m, sd, a, b], rtol=1e-10)
    assert fit.elbo == pytest.approx(elbo_, rel=1e-10)


def test_sampling_a_ragged_chain_of_data_restarts_or_asks_for_its_first_steps(tmp_path, capsys):
    """Without first steps drawn, the refusal named the missing `y[0]` and hinted `y[0] ~ …`, which a ragged chain
    cannot write: it now asks for the first step of each sequence, by a loop riding on `seq`. With them drawn, the
    simulator restarts the chain at each sequence (tests/simulate/test_ragged_sampling.py checks the law)."""
    seq, y = _panel()
    import pandas as pd

    pd.DataFrame({"seq": seq, "y": y}).to_csv(tmp_path / "panel.csv", index=False)
    for name, text in (("conditioned", RAGGED_AR1), ("drawn", RAGGED_AR1_FIRSTS)):
        (tmp_path / f"{name}.ppvi").write_text(text)
        code, _, err = run_cli(["sample", tmp_path / f"{name}.ppvi", "--draws", "2", "--data", tmp_path / "panel.csv",
                                "--out", tmp_path / "s.npz"], capsys)
        if name == "conditioned":
            assert code == 2 and "first step of each sequence of `seq`" in err and "T[:1] by seq" in err, err
            assert "y[0]" not in err, err
        else:
            assert code == 0, err
            assert np.load(tmp_path / "s.npz")["y"].shape == (2, len(seq))