"""Binomial and Multinomial likelihoods (issue 17, build 3): exact where the mean field is exact, and
their data checked against the totals.

Beta–Binomial and Dirichlet–Multinomial have one conjugate latent, so the converged ELBO is the log
evidence, written here in closed form with scipy.special (PRML 2.1.1, 2.2.1):

    log p(x) = Σᵢ log C(nᵢ, xᵢ) + log B(a + Σx, b + Σ(n − x)) − log B(a, b)
    log p(X) = Σᵢ [log nᵢ! − Σₖ log xᵢₖ!] + log Γ(Σα) − log Γ(Σα + Σn) + Σₖ [log Γ(αₖ + Σᵢ xᵢₖ) − log Γ(αₖ)]
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import special

import ppvi
from conftest import MODELS, assert_golden, run_cli

GOLDEN = Path(__file__).parent / "golden"

DIRICHLET_MULTINOMIAL = MODELS / "links" / "dirichlet_multinomial.ppvi"     # (alpha = 0.7 over K = 4, 12 draws a row)


def _binomial_evidence(trials, x, a, b):
    log_choose = special.gammaln(trials + 1) - special.gammaln(x + 1) - special.gammaln(trials - x + 1)
    return log_choose.sum() + special.betaln(a + x.sum(), b + (trials - x).sum()) - special.betaln(a, b)


def _multinomial_evidence(x, alpha):
    n = x.sum(axis=1)
    coefficients = (special.gammaln(n + 1) - special.gammaln(x + 1).sum(axis=1)).sum()
    return (coefficients + special.gammaln(alpha.sum()) - special.gammaln(alpha.sum() + n.sum())
            + (special.gammaln(alpha + x.sum(axis=0)) - special.gammaln(alpha)).sum())


@pytest.fixture(scope="module")
def beta_binomial():
    return ppvi.load(str(MODELS / "beta_binomial.ppvi"))


@pytest.fixture(scope="module")
def dirichlet_multinomial():
    return ppvi.load(str(DIRICHLET_MULTINOMIAL))


def test_beta_binomial_elbo_is_the_closed_form_evidence(beta_binomial):
    data = json.loads((MODELS / "beta_binomial.json").read_text())
    trials, x = np.array(data["trials"], float), np.array(data["x"], float)
    r = beta_binomial.fit(tol=1e-14)
    a, b = 2.0, 3.0
    assert float(r.q["p"]["a"]) == pytest.approx(a + x.sum(), rel=1e-12)
    assert float(r.q["p"]["b"]) == pytest.approx(b + (trials - x).sum(), rel=1e-12)
    assert r.elbo == pytest.approx(_binomial_evidence(trials, x, a, b), rel=1e-8, abs=1e-8)


def test_beta_binomial_with_extreme_totals_stays_finite(beta_binomial):
    """n = 10⁹ trials: the coefficient is lgamma of large numbers, never a factorial (the terms are
    ~2·10¹⁰ and cancel to ~20, so a double holds the sum to about 10⁻⁶)."""
    trials, x = np.array([1e9, 3.0, 0.0]), np.array([4e8, 0.0, 0.0])
    r = beta_binomial.fit({"trials": trials, "x": x}, tol=1e-14)
    assert r.elbo == pytest.approx(_binomial_evidence(trials, x, 2.0, 3.0), abs=1e-5)


def test_dirichlet_multinomial_elbo_is_the_closed_form_evidence(dirichlet_multinomial):
    x = np.asarray(json.loads(DIRICHLET_MULTINOMIAL.with_suffix(".json").read_text())["x"])
    r = dirichlet_multinomial.fit(tol=1e-14)         # (its data beside it)
    alpha = np.full(4, 0.7)
    assert r.q["p"]["alpha"] == pytest.approx(alpha + x.sum(axis=0), rel=1e-12)
    assert r.elbo == pytest.approx(_multinomial_evidence(x.astype(float), alpha), rel=1e-8, abs=1e-8)


# ------------------------------------------------------------------ data against the totals
BAD_DATA = {
    "binomial_above_total": (MODELS / "beta_binomial.ppvi", {"trials": [10, 12, 7], "x": [3, 13, 2]}),
    "binomial_negative": (MODELS / "beta_binomial.ppvi", {"trials": [10, 12, 7], "x": [3, -1, 2]}),
    "binomial_fraction": (MODELS / "beta_binomial.ppvi", {"trials": [10, 12, 7], "x": [3, 1.5, 2]}),
    "binomial_fractional_total": (MODELS / "beta_binomial.ppvi", {"trials": [10, 12.5, 7], "x": [3, 1, 2]}),
    "multinomial_row_sum": (DIRICHLET_MULTINOMIAL, {"x": [[3, 3, 3, 3], [3, 3, 3, 2]]}),
    "multinomial_row_total": (MODELS / "multinomial_mixture.ppvi", {"total": [4, 5], "x": [[1, 1, 1, 1, 0, 0, 0, 0],
                                                                                       [1, 1, 1, 1, 0, 0, 0, 0]]}),
}


@pytest.mark.parametrize("name", sorted(BAD_DATA))
def test_counts_against_their_totals_are_positioned_data_errors(name, tmp_path, capsys, monkeypatch, update_golden):
    model, data = BAD_DATA[name]
    monkeypatch.chdir(tmp_path)
    Path("bad.json").write_text(json.dumps(data))
    code, out, err = run_cli(["run", model, "--data", "bad.json", "--quiet"], capsys)
    assert code == 2 and out == "" and "Traceback" not in err, err
    assert err.startswith("bad.json: error: ")
    expected = GOLDEN / f"{name}.expected"
    assert_golden(expected, err, update_golden)
