"""Missing counts (issue 17): a missing entry of ``data y : count missing`` is a latent with the factor of the
observed ones, and 19.56 gives it a q of that factor's own family.  Checked against mathematics written here:

- y_n ~ Poisson(λ), λ ~ Gamma(a, b): log q(y) = y E[log λ] − log y! + const, so q(y) = Poisson(r) with
  r = exp E[log λ], and q(λ) = Gamma(a + Σ_obs y + Σ_mis r, b + N) — the observed-only posterior
  Gamma(a + Σ_obs y, b + N_obs) plus r in the shape and 1 in the rate per imputed entry;
- x_i ~ Binomial(n_i, p), p ~ Beta(α, β): q(x_i) = Binomial(n_i, ρ), ρ = A/(A + B) with A = exp E[log p],
  B = exp E[log(1 − p)], and q(p) = Beta(α + Σ_obs x + Σ_mis n ρ, β + Σ_obs (n − x) + Σ_mis n (1 − ρ));
- the ELBO against 19.7 evaluated here with each missing entry's E_q[log p(y | ·)] + H[q(y)] summed over its
  values (y = 0 … n exactly; a Poisson's to far past its tail): per entry that is r − E[λ], n log(A + B);
- z_k ~ NegativeBinomial(r_k, s), s ~ Beta(α', β'), r_k known data: q(z_k) is 19.56's exp E[log p(z_k | s)]
  normalised by enumerating z_k = 0, 1, … here (never the family's closed form), and q(s) = Beta(α' + Σ_obs z +
  Σ_mis E[z], β' + Σ_k r_k);
- c_m ~ Poisson(4) that nothing else reads: imputed by its prior, and the rest of the fit is that of the data
  without those entries, bit for bit.

The fits here run the generated kernels as plain Python (tests/harness/harness_fit.py; the harness ties them
to the compiled kernels).  ``ppvi run`` on models/gamma_poisson_missing (compiled) is `long`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from conftest import MODELS
from ppvi.errors import PPVIError

sys.path.insert(0, str(Path(__file__).parents[1] / "harness"))
from harness_fit import fit_result  # noqa: E402

POISSON = (MODELS / "gamma_poisson_missing.ppvi").read_text()
A, B = 1.0, 0.1          # the model's Gamma(a, b)
BINOMIAL = (MODELS / "links" / "missing_counts.ppvi").read_text()
ALPHA, BETA, RATE = 2.0, 3.0, 4.0
ALPHA_S, BETA_S = 1.5, 2.5          # s's Beta prior (the NegativeBinomial's p)


def _poisson_data() -> dict[str, np.ndarray]:
    return {"discoveries": pd.read_csv(MODELS / "gamma_poisson_missing.csv")["discoveries"].to_numpy(float)}


def _binomial_data() -> dict[str, np.ndarray]:
    """models/links/missing_counts.npz: 24 Binomial counts (one of no trials, at p = 0.35), 9 Poisson(RATE) and 14
    NegativeBinomial(fails_k, 0.4) counts with real fails_k, 11 of them NaN (models/make_data.py)."""
    with np.load(MODELS / "links" / "missing_counts.npz") as f:
        return dict(f)


@pytest.fixture(scope="module")
def poisson_fit():
    data = _poisson_data()
    return fit_result(POISSON, data, max_iter=60), data


@pytest.fixture(scope="module")
def binomial_fit():
    data = _binomial_data()
    return fit_result(BINOMIAL, data, max_iter=60), data


def _gamma_poisson_cavi(y: np.ndarray, miss: np.ndarray) -> tuple[float, float, float]:
    """The fixed point of q(λ) = Gamma(s, t), q(y_mis) = Poisson(r), iterated from r = 1."""
    r, t = 1.0, B + y.size
    for _ in range(200):
        s = A + y[~miss].sum() + miss.sum() * r
        r = np.exp(special.digamma(s) - np.log(t))
    return A + y[~miss].sum() + miss.sum() * r, t, r


def _poisson_entry(rate: float, e_log: float, e_lam: float) -> float:
    """E_q[log Poisson(y | λ)] + H[q] of one missing entry, q = Poisson(rate), by summing over y."""
    y = np.arange(int(rate + 40 * np.sqrt(rate) + 60))
    log_q = stats.poisson.logpmf(y, rate)
    q = np.exp(log_q)
    return float(np.sum(q * (y * e_log - e_lam - special.gammaln(y + 1.0) - log_q)))


def test_a_missing_poisson_count_and_the_rate_are_at_the_fixed_point_of_numpy_cavi(poisson_fit):
    r, data = poisson_fit
    y = data["discoveries"]
    miss = np.isnan(y)
    s, t, rate = _gamma_poisson_cavi(np.nan_to_num(y), miss)
    lam, q = r.q["rate"], r.q["discoveries"]
    assert q.family == "Poisson"
    np.testing.assert_array_equal(q.missing, miss)
    np.testing.assert_allclose([lam["shape"], lam["rate"]], [s, t], rtol=1e-10)
    np.testing.assert_allclose(q["rate"][miss], rate, rtol=1e-10)
    np.testing.assert_array_equal(q.mean[~miss], y[~miss])       # observed: a point mass at the datum
    # against the observed-only (dropped rows') posterior: r in the shape and 1 in the rate per imputed entry
    seen = y[~miss]
    np.testing.assert_allclose(lam["shape"] - (A + seen.sum()), q["rate"][miss].sum(), rtol=1e-10)
    np.testing.assert_allclose(lam["rate"] - (B + seen.size), miss.sum(), rtol=1e-12)


def test_the_poisson_elbo_equals_19_7_summed_over_each_missing_counts_values(poisson_fit):
    r, data = poisson_fit
    y = data["discoveries"]
    miss = np.isnan(y)
    s, t = float(r.q["rate"]["shape"]), float(r.q["rate"]["rate"])
    e_log, e_lam = special.digamma(s) - np.log(t), s / t
    seen = y[~miss]
    elbo = (A * np.log(B) - special.gammaln(A) + (A - 1) * e_log - B * e_lam + stats.gamma(s, scale=1 / t).entropy()
            + np.sum(seen * e_log - e_lam - special.gammaln(seen + 1.0)))
    rates = r.q["discoveries"]["rate"][miss]
    entries = [_poisson_entry(float(k), e_log, e_lam) for k in rates]
    np.testing.assert_allclose(r.elbo, elbo + sum(entries), rtol=1e-12)
    # at the fixed point each entry adds r − E[λ] (the E[log y!] of the factor and of H[q] cancel)
    np.testing.assert_allclose(entries, rates - e_lam, rtol=1e-9, atol=1e-12)


def _beta_binomial_cavi(n, x, miss) -> tuple[float, float, float]:
    """The fixed point of q(p) = Beta(a, b), q(x_mis) = Binomial(n, ρ), iterated from ρ = ½."""
    rho = 0.5
    for _ in range(200):
        a = ALPHA + x[~miss].sum() + (n[miss] * rho).sum()
        b = BETA + (n[~miss] - x[~miss]).sum() + (n[miss] * (1 - rho)).sum()
        e_a, e_b = np.exp(special.digamma(a)), np.exp(special.digamma(b))
        rho = e_a / (e_a + e_b)
    return a, b, rho


def test_a_missing_binomial_count_and_p_are_at_the_fixed_point_of_numpy_cavi(binomial_fit):
    r, data = binomial_fit
    n, x = data["trials"], data["x"]
    miss = np.isnan(x)
    a, b, rho = _beta_binomial_cavi(n, np.nan_to_num(x), miss)
    qp, qx = r.q["p"], r.q["x"]
    assert qx.family == "Binomial"
    np.testing.assert_allclose([qp["a"], qp["b"]], [a, b], rtol=1e-10)
    np.testing.assert_array_equal(qx["n"], n)
    np.testing.assert_allclose(qx["p"][miss], rho, rtol=1e-10)
    np.testing.assert_allclose(qx.mean[miss], n[miss] * rho, rtol=1e-10)
    np.testing.assert_array_equal(qx.mean[~miss], x[~miss])
    # against the observed-only posterior: n ρ successes and n (1 − ρ) failures per imputed entry
    seen = ~miss
    np.testing.assert_allclose(qp["a"] - (ALPHA + x[seen].sum()), (n[miss] * rho).sum(), rtol=1e-10)
    np.testing.assert_allclose(qp["b"] - (BETA + (n[seen] - x[seen]).sum()), (n[miss] * (1 - rho)).sum(), rtol=1e-10)


def test_the_binomial_elbo_equals_19_7_summed_over_each_missing_counts_values(binomial_fit):
    r, data = binomial_fit
    n, x, c = data["trials"], data["x"], data["c"]
    a, b = float(r.q["p"]["a"]), float(r.q["p"]["b"])
    e_lp, e_l1p = special.digamma(a) - special.digamma(a + b), special.digamma(b) - special.digamma(a + b)
    seen = ~np.isnan(x)
    log_c = special.gammaln(n + 1) - special.gammaln(np.nan_to_num(x) + 1) - special.gammaln(n - np.nan_to_num(x) + 1)
    elbo = (-special.betaln(ALPHA, BETA) + (ALPHA - 1) * e_lp + (BETA - 1) * e_l1p + stats.beta(a, b).entropy()
            + np.sum((log_c + x * e_lp + (n - x) * e_l1p)[seen]))
    entries = []
    for i in np.flatnonzero(~seen):
        k = np.arange(int(n[i]) + 1)
        log_q = stats.binom.logpmf(k, n[i], r.q["x"]["p"][i])
        lp = (special.gammaln(n[i] + 1) - special.gammaln(k + 1.0) - special.gammaln(n[i] - k + 1) + k * e_lp
              + (n[i] - k) * e_l1p)
        entries.append(np.sum(np.exp(log_q) * (lp - log_q)))
    cm = np.isnan(c)
    elbo += np.sum(stats.poisson.logpmf(c[~cm], RATE))
    elbo += sum(_poisson_entry(float(k), np.log(RATE), RATE) for k in r.q["c"]["rate"][cm])
    elbo += _negative_binomial_part(r, data)
    np.testing.assert_allclose(r.elbo, elbo + sum(entries), rtol=1e-12)
    # at the fixed point each entry adds n log(A + B)
    np.testing.assert_allclose(entries, n[~seen] * np.log(np.exp(e_lp) + np.exp(e_l1p)), rtol=1e-9, atol=1e-12)


def _nb_q(r_k: float, e_log: float) -> tuple[np.ndarray, np.ndarray]:
    """19.56 for a missing z ~ NegativeBinomial(r_k, s): q(z) ∝ exp E_q(s)[log p(z | s)] over z = 0 … far past its
    tail, normalised here by summing (the log-space pmf and z)."""
    z = np.arange(400.0)          # (ρ ≤ ½ here: ρ^400 is far below rounding)
    log_q = special.gammaln(z + r_k) - special.gammaln(r_k) - special.gammaln(z + 1.0) + z * e_log
    return z, log_q - special.logsumexp(log_q)


def _negative_binomial_part(r, data) -> float:
    """The terms of s and z in 19.7: E[log Beta(s)] + H[q(s)], the observed z's E[log p(z | s)], and each missing
    z's E_q[log p(z | s)] + H[q(z)] summed over its values with q(z) from the enumeration (_nb_q)."""
    fails, z = data["fails"], data["z"]
    a, b = float(r.q["s"]["a"]), float(r.q["s"]["b"])
    e_lp, e_l1p = special.digamma(a) - special.digamma(a + b), special.digamma(b) - special.digamma(a + b)
    seen = ~np.isnan(z)
    zs, rs = z[seen], fails[seen]
    total = (-special.betaln(ALPHA_S, BETA_S) + (ALPHA_S - 1) * e_lp + (BETA_S - 1) * e_l1p
             + stats.beta(a, b).entropy()
             + np.sum(special.gammaln(zs + rs) - special.gammaln(rs) - special.gammaln(zs + 1) + zs * e_lp + rs * e_l1p))
    for k in np.flatnonzero(~seen):
        values, log_q = _nb_q(fails[k], e_lp)
        lp = (special.gammaln(values + fails[k]) - special.gammaln(fails[k]) - special.gammaln(values + 1.0)
              + values * e_lp + fails[k] * e_l1p)
        total += np.sum(np.exp(log_q) * (lp - log_q))
    return float(total)


def test_a_missing_negative_binomial_count_is_19_56s_q_at_the_numpy_fixed_point(binomial_fit):
    """q(z_mis) is exp E[log p(z | s)] normalised (enumerated here), its mean and pmf those of the reported
    NegativeBinomial(r, ρ); q(s) is at the fixed point of the CAVI iteration written here."""
    r, data = binomial_fit
    fails, z = data["fails"], data["z"]
    miss = np.isnan(z)
    qz, qs = r.q["z"], r.q["s"]
    assert qz.family == "NegativeBinomial"
    np.testing.assert_array_equal(qz.missing, miss)
    np.testing.assert_array_equal(qz["r"], fails)
    np.testing.assert_allclose(qz.mean[~miss], z[~miss], rtol=1e-14)     # (r p/(1 − p) at p = z/(z + r))
    mean = np.zeros(miss.sum())                 # CAVI in NumPy: q(s) ← Beta, each E[z_mis] by enumeration
    for _ in range(200):
        a = ALPHA_S + z[~miss].sum() + mean.sum()
        b = BETA_S + fails.sum()
        e_lp = special.digamma(a) - special.digamma(a + b)
        mean, last = np.array([np.exp(lq) @ v for v, lq in (_nb_q(k, e_lp) for k in fails[miss])]), mean
        if np.array_equal(mean, last):
            break
    np.testing.assert_allclose([qs["a"], qs["b"]], [a, b], rtol=1e-10)
    np.testing.assert_allclose(qz.mean[miss], mean, rtol=1e-10)
    for k, i in enumerate(np.flatnonzero(miss)):
        values, log_q = _nb_q(fails[i], e_lp)
        reported = stats.nbinom.logpmf(values[:60], qz["r"][i], 1 - qz["p"][i])       # (SciPy counts failures)
        np.testing.assert_allclose(reported, log_q[:60], rtol=1e-9, atol=1e-12)


def test_a_missing_count_nothing_else_reads_is_its_prior_and_changes_nothing_else(binomial_fit):
    r, data = binomial_fit
    cm = np.isnan(data["c"])
    np.testing.assert_allclose(r.q["c"]["rate"][cm], RATE, rtol=1e-15)
    dropped = dict(data, c=data["c"][~cm])
    d = fit_result(BINOMIAL, dropped, max_iter=60)
    for name in ("p", "x", "s", "z"):
        for key in r.q[name]:
            np.testing.assert_array_equal(r.q[name][key], d.q[name][key])
    np.testing.assert_allclose(r.elbo, d.elbo, rtol=1e-14)     # (each adds r − 4 = 0 to rounding)


def test_the_result_reports_the_imputed_counts(binomial_fit, tmp_path):
    r, data = binomial_fit
    miss = np.isnan(data["x"])
    path = tmp_path / "r.json"
    r.save(str(path))
    table = json.loads(path.read_text())["imputations"]["x"]
    assert table["index"] == [[i] for i in np.flatnonzero(miss)]
    np.testing.assert_allclose(table["mean"], r.q["x"].mean[miss])
    np.testing.assert_array_equal(table["n"], data["trials"][miss])
    text = str(r.summary(width=100))
    assert "x  Binomial  [N=24]  imputed: 5 missing of 24 entries" in text
    assert "c  Poisson  [M=9]  imputed: 2 missing of 9 entries" in text
    assert "z  NegativeBinomial  [K=14]  imputed: 4 missing of 14 entries" in text
    nb = json.loads(path.read_text())["imputations"]["z"]
    np.testing.assert_allclose(nb["mean"], r.q["z"].mean[np.isnan(data["z"])])
    assert np.isnan(r.data["x"][1]) and r.data["x"][0] == data["x"][0]


@pytest.mark.parametrize("data, line", [("data z[N]", "z[n] ~ Normal(discoveries[n], 1.0)"),
                                        ("data z[N] : count", "z[n] ~ Binomial(discoveries[n], 0.5)")])
def test_a_missing_count_read_other_than_linearly_is_refused_where_it_is_read(data, line):
    from ppvi.derive import derive
    from ppvi.language import loads
    from ppvi.language.missing import imputing

    # (built here, not a constant: with its entries observed the model is conjugate, and the harness would fit it)
    text = POISSON.replace("data discoveries[N] : count missing", f"data discoveries[N] : count missing\n{data}")
    model = imputing(loads(text + f"    {line}\n", "m.ppvi"))
    with pytest.raises(PPVIError) as err:
        derive(model)
    message = str(err.value)
    assert message.startswith(f"m.ppvi:{text.count(chr(10)) + 1}:") and "`discoveries`" in message
    assert "a missing count's q is its own law's" in message and "by point" not in message


def test_a_result_with_an_observed_zero_count_is_a_valid_start():
    """An observed 0's q is Poisson(0), the point mass at 0: `--init` from that result was refused ("rate must
    be > 0"), and its η was −∞ (the start's moments NaN)."""
    from ppvi.codegen.runtime import finish_poisson
    from ppvi.families.registry import unit_of

    unit, q = unit_of("Poisson"), {"rate": np.array([0.0, 3.0])}
    assert unit.outside(q) is None and unit.outside({"rate": np.array([-1.0])}) is not None
    eta = unit.natural(q)["x"]
    assert np.all(np.isfinite([finish_poisson(e) for e in eta]))
    np.testing.assert_allclose(finish_poisson(eta[1])[0], 3.0, rtol=1e-15)


def test_a_nan_in_a_count_not_declared_missing_stays_an_error():
    from harness_state import bind
    from ppvi.language import loads

    model = loads(BINOMIAL, "counts.ppvi")
    data = _binomial_data()
    data["trials"][5] = np.nan
    with pytest.raises(PPVIError, match=r"`trials\[5\]` is nan, a missing value"):
        bind(model, data, None)


@pytest.mark.long
def test_ppvi_run_imputes_the_empty_cells_of_a_csv(tmp_path, capsys):
    from ppvi.cli import main

    out = tmp_path / "r.json"
    assert main(["run", str(MODELS / "gamma_poisson_missing.ppvi"), "--out", str(out), "--tol", "0",
                 "--max-iter", "60"]) == 0
    shown = capsys.readouterr().out
    assert "discoveries  Poisson  [N=100]  imputed: 10 missing of 100 entries" in shown
    y = _poisson_data()["discoveries"]
    miss = np.isnan(y)
    s, t, rate = _gamma_poisson_cavi(np.nan_to_num(y), miss)
    table = json.loads(out.read_text())["imputations"]["discoveries"]
    assert table["index"] == [[i] for i in np.flatnonzero(miss)]
    np.testing.assert_allclose(table["rate"], rate, rtol=1e-10)


def test_missing_binomial_counts_of_a_mixture_start_with_their_totals():
    """Found by the random-model harness (--long, mixtures): counts with a known total read at a mixture's label,
    `y[n] ~ Binomial(n[n], p[z[n]])` with missing entries.  The start sets q(y)'s trials from the prior's
    total alone; it evaluated every argument, p[z[n]] too, and a label has no mean: NotEvaluable: z."""
    text = """
dim N
dim K = 2
const a[K] = 1.0
data n[N] : count
data y[N] : count missing
pi ~ Dirichlet(a)
for k in K:
    p[k] ~ Beta(1.5, 1.5)
for i in N:
    z[i] ~ Categorical(pi)
    y[i] ~ Binomial(n[i], p[z[i]])
"""
    n = np.array([4, 7, 2, 9, 5, 6])
    y = np.array([1.0, np.nan, 2.0, 8.0, np.nan, 3.0])
    r = fit_result(text, {"n": n, "y": y}, max_iter=60, path="mixture.ppvi")
    miss = np.isnan(y)
    qy, qp, resp = r.q["y"], r.q["p"], r.q["z"]["p"]
    np.testing.assert_array_equal(qy["n"], n)       # each entry's q is Binomial(n_i, ·), observed or imputed
    np.testing.assert_array_equal(qy.mean[~miss], y[~miss])
    # 19.56 at the fixed point: log ρ_i/(1 − ρ_i) = Σ_k r_ik (E[log p_k] − E[log(1 − p_k)])
    e_log = special.digamma(qp["a"]) - special.digamma(qp["a"] + qp["b"])
    e_log1m = special.digamma(qp["b"]) - special.digamma(qp["a"] + qp["b"])
    np.testing.assert_allclose(qy["p"][miss], special.expit(resp[miss] @ (e_log - e_log1m)), rtol=1e-6)
    assert np.all(np.diff(r.elbo_trace) >= -1e-9 * np.abs(r.elbo_trace[1:]))
