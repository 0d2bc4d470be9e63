"""Ragged chains (``for t in T[1:] by seq:``, issue 18) in the simulator and the importance sampler's log joint:
the chain restarts at each sequence's first row, drawn (and weighed) by the first element's statement.

- evidence with q the exact posterior of each sequence (written here: scaled forward–backward, a Kalman filter
  and RTS smoother) is hmmlearn's score(X, lengths) for an HMM, the sum of each sequence's Kalman likelihood
  for a linear dynamical system;
- prior draws restart: the first element of each sequence follows the initial law (a χ² test, a
  Kolmogorov–Smirnov test, with a fixed seed), not the transition from the sequence before.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from simulate_cases import hand_result
from test_evidence import joint, posterior_pairs
from ppvi.language import loads
from ppvi.simulate.ancestral import sample_prior
from ppvi.simulate.evidence import evidence

from infer.test_chains import F, Qc, Rc, kalman_rts      # noqa: E402  (covariance form, written there)
from infer.test_ragged import FIXED_RAGGED, LDS_RAGGED   # noqa: E402

LENGTHS = (4, 7, 1, 5)
P0 = np.array([0.5, 0.3, 0.2])
A = np.array([[0.8, 0.15, 0.05], [0.1, 0.7, 0.2], [0.25, 0.25, 0.5]])
MU, SD = np.array([-2.0, 0.0, 2.5]), np.array([0.7, 1.0, 0.5])


def _seq(lengths) -> np.ndarray:
    return np.repeat(np.arange(len(lengths)), lengths)


def _starts(lengths) -> np.ndarray:
    return np.cumsum(lengths)[:-1]


def test_evidence_of_a_ragged_hmm_is_hmmlearns_score_over_its_lengths():
    """q(z) one exact posterior per sequence, independent across a restart (its pairs there the product of the
    marginals, as the compiled block keeps them): every weight is p(x), Σ_s log p(x_s)."""
    hmm = pytest.importorskip("hmmlearn.hmm")
    x = np.random.default_rng(18).normal(0, 2, sum(LENGTHS))
    rows = [posterior_pairs(P0, A, stats.norm.pdf(xs[:, None], MU, SD)) for xs in np.split(x, _starts(LENGTHS))]
    marginals, pairs = (np.concatenate(a) for a in zip(*rows))
    at = _starts(LENGTHS)
    pairs[at] = marginals[at - 1, :, None] * marginals[at, None, :]
    data = {"p0": P0, "A": A, "mu": MU, "sd": SD, "x": x, "seq": _seq(LENGTHS)}
    r = hand_result(FIXED_RAGGED, {"z": ("Categorical", {"p": marginals})}, data, S=len(LENGTHS))
    e = evidence(joint(r, "z", pairs), 100, seed=1)
    ref = hmm.GaussianHMM(n_components=3, covariance_type="diag", init_params="", params="")
    ref.startprob_, ref.transmat_, ref.means_, ref.covars_ = P0, A, MU[:, None], SD[:, None] ** 2
    assert e.log_evidence == pytest.approx(ref.score(x[:, None], list(LENGTHS)), abs=1e-9, rel=0)
    assert e.stderr < 1e-12


def test_evidence_of_a_ragged_lds_is_the_sum_of_each_sequences_kalman_likelihood():
    """q(x) each sequence's RTS smoother, its lag-one covariance 0 across a restart."""
    rng = np.random.default_rng(9)
    ys = [rng.normal(size=(n, 2)).cumsum(0) * 0.5 for n in LENGTHS]
    refs = [kalman_rts(y, np.zeros(2), np.eye(2), F, Qc, Rc) for y in ys]
    mean, cov, lag = (np.concatenate([ref[i] for ref in refs]) for i in range(3))
    lag[_starts(LENGTHS)] = 0.0
    r = hand_result(LDS_RAGGED + "approximate x jointly\n", {"x": ("MvNormal", {"mean": mean, "cov": cov})},
                    {"y": np.concatenate(ys), "seq": _seq(LENGTHS)}, S=len(LENGTHS))
    e = evidence(joint(r, "x", lag), 100, seed=1)
    assert e.log_evidence == pytest.approx(sum(ref[3] for ref in refs), abs=1e-9, rel=0)
    assert e.stderr < 1e-10


DRAWS = 4000
LENGTHS_DRAWN = (3, 5, 2, 6)


def test_a_ragged_hmm_drawn_from_the_prior_restarts_at_each_sequence():
    """z at each sequence's first row follows p0 (χ², p > 0.001), not the chain continued from the row before,
    whose law here is far from p0 (every state goes mostly to state 2): that one is rejected (p < 1e-12)."""
    p0, a = np.array([0.8, 0.1, 0.1]), np.array([[0.1, 0.1, 0.8], [0.1, 0.1, 0.8], [0.05, 0.05, 0.9]])
    data = {"p0": p0, "A": a, "mu": MU, "sd": SD, "seq": _seq(LENGTHS_DRAWN)}
    z = sample_prior(loads(FIXED_RAGGED, "ragged.ppvi"), DRAWS, data, seed=3)["z"]
    first = z[:, np.r_[0, _starts(LENGTHS_DRAWN)]]
    counts = np.stack([np.bincount(col, minlength=3) for col in first.T])
    assert stats.chisquare(counts.sum(0), DRAWS * first.shape[1] * p0).pvalue > 1e-3
    before = z[:, _starts(LENGTHS_DRAWN) - 1]
    continued = np.stack([np.bincount(col, minlength=3) for col in before.T]) @ a
    assert stats.chisquare(counts[1:].sum(0), continued.sum(0)).pvalue < 1e-12
    later = z[:, np.setdiff1d(np.arange(sum(LENGTHS_DRAWN)), np.r_[0, _starts(LENGTHS_DRAWN)])]
    assert np.mean(later == 2) > 0.8           # (inside a sequence the chain moves on: mostly state 2)


def test_a_ragged_lds_drawn_from_the_prior_restarts_at_each_sequence():
    """x at each sequence's first row is N(m0, P0⁻¹) = N(0, I) (Kolmogorov–Smirnov, p > 0.001) and independent of
    the last row of the sequence before (correlation within 4 standard errors of 0); inside a sequence x[t]
    follows F x[t-1] (its residual's variance is 1/4)."""
    data = {"seq": _seq(LENGTHS_DRAWN)}
    x = sample_prior(loads(LDS_RAGGED, "ragged.ppvi"), DRAWS, data, seed=4)["x"]
    at = _starts(LENGTHS_DRAWN)
    first = x[:, np.r_[0, at]]
    assert stats.kstest(first.ravel(), "norm").pvalue > 1e-3
    for d in range(2):
        r = np.corrcoef(x[:, at - 1, d].ravel(), x[:, at, d].ravel())[0, 1]
        assert abs(r) < 4 / np.sqrt(DRAWS * len(at)), r
    inside = np.setdiff1d(np.arange(1, sum(LENGTHS_DRAWN)), at)
    residual = x[:, inside] - x[:, inside - 1] @ F.T
    assert residual.var() == pytest.approx(0.25, rel=0.05)
