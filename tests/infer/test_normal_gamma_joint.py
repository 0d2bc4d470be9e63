"""``approximate mu, lam jointly``: one Normal–Gamma q(μ, λ) (issue 18; docs/derivation.md, "A Normal–Gamma pair").

With the conjugate prior λ ~ Gamma(a₀, b₀), μ | λ ~ N(m₀, (β₀λ)⁻¹) and x ~ N(μ, λ⁻¹), the posterior is the
Normal–Gamma of PRML 2.3.6 (Murphy 2007, "Conjugate Bayesian analysis of the Gaussian distribution", §3):
β = β₀ + N, m = (β₀m₀ + Σx)/β, a = a₀ + N/2, b = b₀ + ½Σ(x − x̄)² + β₀N(x̄ − m₀)²/(2β), and the evidence is
Γ(a)/Γ(a₀) · b₀^a₀/b^a · (β₀/β)^½ · (2π)^(−N/2).  The joint q holds it exactly: the ELBO is the log evidence.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

import ppvi
from conftest import MODELS
from derive import reference   # noqa: E402  (tests/derive/reference.py)
from ppvi.derive import derive
from ppvi.derive.numeric import Env
from ppvi.errors import PPVIError
from ppvi.language import loads

JOINT = MODELS / "normal_gamma_joint.ppvi"


def posterior(x: np.ndarray, m0: float, beta0: float, a0: float, b0: float) -> tuple[tuple, float]:
    """The exact Normal–Gamma posterior (m, β, a, b) and the log evidence, from the centred scatter."""
    N, xbar = len(x), x.mean()
    beta = beta0 + N
    m = (beta0 * m0 + x.sum()) / beta
    a = a0 + N / 2
    b = b0 + 0.5 * np.sum((x - xbar) ** 2) + beta0 * N * (xbar - m0) ** 2 / (2 * beta)
    log_evidence = (special.gammaln(a) - special.gammaln(a0) + a0 * np.log(b0) - a * np.log(b)
                    + 0.5 * np.log(beta0 / beta) - N / 2 * np.log(2 * np.pi))
    return (m, beta, a, b), log_evidence


@pytest.fixture(scope="module")
def waiting() -> np.ndarray:
    """The model's data, read with NumPy, after checking the model says what the closed form assumes."""
    text = JOINT.read_text()
    for line in ("const m0 = 0.0", "const beta0 = 0.01", "const a0 = 1.0", "const b0 = 1.0", "lam ~ Gamma(a0, b0)",
                 "mu ~ Normal(m0, precision = beta0 * lam)", "waiting[n] ~ Normal(mu, precision = lam)",
                 "approximate mu, lam jointly"):
        assert line in text
    return np.loadtxt(JOINT.with_suffix(".csv"), skiprows=1)


@pytest.fixture(scope="module")
def joint(waiting):
    return ppvi.load(str(JOINT)).fit(tol=1e-14), waiting


def test_the_joint_q_is_the_exact_posterior_and_the_elbo_the_log_evidence(joint):
    r, x = joint
    (m, beta, a, b), log_evidence = posterior(x, 0.0, 0.01, 1.0, 1.0)
    assert abs(r.elbo - log_evidence) <= 1e-10 * abs(log_evidence)
    assert float(r.q["lam"]["shape"]) == pytest.approx(a, rel=1e-12)
    assert float(r.q["lam"]["rate"]) == pytest.approx(b, rel=1e-10)
    assert float(r.q["mu"]["mean"]) == pytest.approx(m, rel=1e-12)
    # q(μ)'s spread is (β⟨λ⟩)^-½: ⟨λ⟩⟨μ²⟩ is then E[λμ²] (the expected log joint reads no other product)
    assert float(r.q["mu"]["sd"]) == pytest.approx((beta * a / b) ** -0.5, rel=1e-10)
    assert len(r.elbo_trace) <= 2       # exact after one step: the second only confirms it


def test_the_reference_evaluator_reaches_the_evidence_in_one_step(waiting):
    """ppvi's derived η and ELBO terms, evaluated in NumPy (tests/derive/reference.py, its own pair step), from
    a start far from the posterior: one step is the exact posterior, the ELBO the log evidence."""
    x = waiting
    d = derive(loads(JOINT.read_text(), str(JOINT)))
    env = Env({"waiting": x, "m0": 0.0, "beta0": 0.01, "a0": 1.0, "b0": 1.0}, {}, {"N": len(x)})
    env.arrays.update({"mean(mu)": np.array(3.0), "sd(mu)": np.array(2.0), "shape(lam)": np.array(0.5),
                       "rate(lam)": np.array(7.0)})
    env.moments.update({("mu", "x"): 3.0, ("mu", "x2"): 13.0, ("lam", "x"): 0.5 / 7.0,
                        ("lam", "logx"): special.digamma(0.5) - np.log(7.0)})
    reference.sweep(d, env)
    (m, beta, a, b), log_evidence = posterior(x, 0.0, 0.01, 1.0, 1.0)
    assert abs(reference.elbo(d, env) - log_evidence) <= 1e-10 * abs(log_evidence)
    np.testing.assert_allclose([env.arrays["mean(mu)"], env.arrays["shape(lam)"], env.arrays["rate(lam)"]],
                               [m, a, b], rtol=1e-10)


# μ read by a statement without λ: the pair's q would not be Normal–Gamma (derive refuses it; the harness too)
REFUSED_PAIR = """dim N
data x[N]
data y[N]
lam ~ Gamma(2.0, 1.0)
mu ~ Normal(0.0, precision = lam)
for n in N:
    x[n] ~ Normal(mu, precision = lam)
    y[n] ~ Normal(mu, 1.0)
approximate mu, lam jointly
"""


def test_a_pair_read_elsewhere_without_its_precision_is_refused():
    with pytest.raises(PPVIError) as e:
        derive(loads(REFUSED_PAIR, "pair.ppvi"))
    assert "pair.ppvi:8:5: error: `mu` is read here without `lam`" in str(e.value)
