"""`ppvi derive` of a chain (issue 18): the structured block as a step of the derivation; refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import multivariate_normal

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
    assert "one structured block" in run_cli(["derive", path], capsys)[1]


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
     "        x[t, s] ~ Normal(x[t-1, s], 1)\napproximate x jointly\n", "ppvi cannot derive the joint q of `x` yet"),
], ids=["second_order", "plate_of_scalar_chains_jointly"])
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
