"""NegativeBinomial(r, p) with a Beta prior on p (issue 17 build 1's law, before its logistic link).

P(y) = Γ(y + r)/(Γ(r) y!) pʸ (1 − p)ʳ is Beta's statistics in p, so q(p) = Beta(a + Σy, b + N r) exactly and
the ELBO is the closed-form evidence Σ log h(y) + log B(a + Σy, b + N r) − log B(a, b) (to 1e-8, DESIGN §5.6).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

import ppvi
from conftest import plain_kernels

A, B, R = 2.0, 3.0, 4
MODEL = f"""\
dim N
data y[N] : count
p ~ Beta({A}, {B})
for n in N:
    y[n] ~ NegativeBinomial({R}, p)
"""


def test_beta_negative_binomial_is_exact(tmp_path):
    y = stats.nbinom.rvs(R, 1 - 0.35, size=40, random_state=np.random.default_rng(5))   # scipy: p ↔ 1 − p
    path = tmp_path / "nb.ppvi"
    path.write_text(MODEL)
    with plain_kernels():           # (40 counts: the model's kernels as plain Python, nothing compiled)
        r = ppvi.load(str(path)).fit({"y": y}, tol=1e-14)
    assert float(r.q["p"]["a"]) == pytest.approx(A + y.sum(), rel=1e-12)
    assert float(r.q["p"]["b"]) == pytest.approx(B + len(y) * R, rel=1e-12)
    log_h = special.gammaln(y + R) - special.gammaln(R) - special.gammaln(y + 1)
    evidence = log_h.sum() + special.betaln(A + y.sum(), B + len(y) * R) - special.betaln(A, B)
    assert r.elbo == pytest.approx(evidence, rel=1e-8)
