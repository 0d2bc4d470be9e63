"""The summary table: intervals from scipy.stats, a Categorical by its components, empty components, sds and
correlations of matrices, the terminal's width, large variables in brief."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import ppvi
from conftest import MODELS, run_cli
from result_fits import components, fitted, gmm, gmm_1d, ranges  # (gmm, gmm_1d: shared fixtures)


@pytest.fixture(scope="module")
def lda():
    return fitted("lda", max_iter=30)


def _numbers(line: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?(?:e[+-]\d+)?", line)]


def test_summary_is_the_table_and_a_frame(gmm):
    s = gmm.summary()
    assert isinstance(s, str) and str(s).startswith("ELBO ") and repr(s) == str(s)
    frame = s.to_frame()
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == ["variable", "q", "mean", "sd", "5%", "95%",
                                                                       "note"]
    assert s.frame.equals(frame) and gmm.summary(as_frame=True).equals(frame)
    assert "z[0]" not in frame.index                       # labels are summarised by their components
    assert len(frame) == 6 + 12 + 24                       # every scalar entry of pi, mu, Lambda
    assert "<table>" in s._repr_html_()


def test_a_categorical_is_summarised_by_sizes_and_map_labels(gmm):
    """Its "mean" E[z] = Σ k p_k was shown, meaningless for labels."""
    p = np.asarray(gmm.q["z"]["p"])
    sizes, counts = p.sum(0), np.bincount(p.argmax(1), minlength=6)
    comps = gmm.summary().components_frame()
    np.testing.assert_allclose(comps["size"], np.where(sizes < 1e-9, 0, sizes), rtol=1e-12)
    np.testing.assert_array_equal(comps["map_count"], counts)
    assert list(comps["empty"]) == list((sizes < 0.5) & (counts == 0)) and comps["empty"].sum() == 4
    text = str(gmm.summary(width=100))
    assert "MAP labels" in text
    for k in np.flatnonzero(counts):
        row = next(line for line in text.splitlines() if line.split()[:1] == [str(k)])
        assert _numbers(row)[1:] == pytest.approx([sizes[k], counts[k]], rel=1e-3)


def test_empty_components_are_marked_and_round_off_shows_as_zero(gmm):
    """The README promises the two components that explain the data; the empty ones printed as -1.975e-49."""
    text = str(gmm.summary(width=100))
    used, unused = components(gmm)
    assert len(used) == 2 and "e-49" not in text and "e-50" not in text
    assert f"[{ranges(unused)}]  empty components" in text and f"[{ranges(unused)}, :]  empty components" in text
    frame = gmm.summary().to_frame()
    empty = frame[frame["note"] == "empty"]
    assert set(empty["variable"]) == {"pi", "mu", "Lambda"} and len(empty) == 4 * (1 + 2 + 4)
    assert (empty.loc[empty["variable"] == "mu", "mean"] == 0).all()
    listed = {line.split()[0] for line in text.splitlines() if line.startswith("  [")}
    assert listed >= {f"[{k}]" for k in used} | {f"[{k}," for k in used} and f"[{unused[-1]}]" not in listed


def test_intervals_are_scipys(gmm, gmm_1d):
    f = gmm.summary(p=0.9).to_frame()
    alpha = np.asarray(gmm.q["pi"]["alpha"])
    mean, cov = np.asarray(gmm.q["mu"]["mean"]), np.asarray(gmm.q["mu"]["cov"])
    df, scale = np.asarray(gmm.q["Lambda"]["df"]), np.asarray(gmm.q["Lambda"]["scale"])
    for k in components(gmm)[0]:
        law = stats.beta(alpha[k], alpha.sum() - alpha[k])
        assert f.loc[f"pi[{k}]", ["mean", "sd", "5%", "95%"]].tolist() == pytest.approx(
            [law.mean(), law.std(), *law.ppf([0.05, 0.95])], rel=1e-9)
        law = stats.norm(mean[k, 1], np.sqrt(cov[k, 1, 1]))
        assert f.loc[f"mu[{k}, 1]", ["sd", "5%", "95%"]].tolist() == pytest.approx([law.std(), *law.ppf([0.05, 0.95])],
                                                                                   rel=1e-9)
        law = stats.gamma(df[k] / 2, scale=2 * scale[k, 0, 0])      # Λ_00 ~ S_00 χ²_ν
        assert f.loc[f"Lambda[{k}, 0, 0]", ["mean", "sd", "5%", "95%"]].tolist() == pytest.approx(
            [law.mean(), law.std(), *law.ppf([0.05, 0.95])], rel=1e-9)
        w = stats.wishart(df[k], scale[k])
        assert f.loc[f"Lambda[{k}, 0, 1]", "sd"] == pytest.approx(np.sqrt(w.var()[0, 1]), rel=1e-9)
    f = gmm_1d.summary(p=0.5).to_frame()
    shape, rate = np.asarray(gmm_1d.q["tau"]["shape"]), np.asarray(gmm_1d.q["tau"]["rate"])
    assert list(f.columns[4:6]) == ["25%", "75%"]
    assert f.loc["tau[2]", ["25%", "75%"]].tolist() == pytest.approx(
        stats.gamma(shape[2], scale=1 / rate[2]).ppf([0.25, 0.75]), rel=1e-9)
    lo, hi = gmm_1d.interval(0.5)["tau"]
    assert [lo[2], hi[2]] == pytest.approx(f.loc["tau[2]", ["25%", "75%"]].tolist(), rel=1e-12)


def test_mvnormal_and_wishart_show_sds_and_correlations(gmm):
    text = str(gmm.summary(width=100))
    used = components(gmm)[0]
    for k in used:
        cov = np.asarray(gmm.q["mu"]["cov"])[k]
        corr = cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])
        assert f"  [{k}]  corr (0,1) {corr:.4g}" in text
        implied = np.linalg.inv(np.asarray(gmm.q["Lambda"]["df"])[k] * np.asarray(gmm.q["Lambda"]["scale"])[k])
        sd = np.sqrt(np.diag(implied))
        r = implied[0, 1] / (sd[0] * sd[1])
        assert f"  [{k}]  E[Λ]⁻¹: sd {sd[0]:.4g}, {sd[1]:.4g}; corr (0,1) {r:.4g}" in text
    k = used[0]
    rows = [line for line in text.splitlines() if line.startswith(f"  [{k}, ")]
    assert f"  [{k}, 1, 0]" not in text and any(line.startswith(f"  [{k}, 0, 1]") for line in rows)   # upper triangle


@pytest.mark.parametrize("width", [40, 60, 80, 120])
def test_the_table_fits_the_width(gmm, lda, width):
    """It wrapped at 80 columns (a line of up to eight values per variable)."""
    for r in (gmm, lda):
        lines = str(r.summary(width=width)).splitlines()
        assert max(map(len, lines)) <= width, [line for line in lines if len(line) > width]


def test_the_cli_summary_fits_the_terminal(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "64")
    code, out, _ = run_cli(["run", MODELS / "gmm.ppvi", "--max-iter", "3"], capsys)
    assert code == 0 and max(map(len, out.splitlines())) <= 64


def test_lda_shows_the_top_words_of_each_topic(lda):
    text = str(lda.summary(width=120))
    alpha = np.asarray(lda.q["phi"]["alpha"])
    for k in range(4):
        top = np.argsort(-alpha[k], kind="stable")[:5]
        line = next(line for line in text.splitlines() if line.startswith(f"  [{k}]  top V: "))
        assert [int(x) for x in re.findall(r"(\d+) \(", line)] == top.tolist()
    assert len(text.splitlines()) < 30          # theta (100 × 4) in one line, not 400 rows


def test_params_and_points(capsys):
    em = fitted("em_gmm", max_iter=20)
    text = str(em.summary(width=80))
    assert text.startswith("log-likelihood (EM)") and "weights  param  [K=3]" in text
    f = em.summary().to_frame()
    np.testing.assert_array_equal(f.loc[["mu[0]", "mu[1]", "mu[2]"], "mean"], np.asarray(em.params["mu"]))
    assert f["sd"].isna().all()


def test_p_must_be_a_probability(gmm):
    for p in (0, 1, 1.5, True, "0.9"):
        with pytest.raises(ppvi.PPVIError, match="p="):
            gmm.summary(p=p)
        with pytest.raises(ppvi.PPVIError, match="p="):
            gmm.interval(p)
