"""``approximate mu, lam jointly``: one Normal–Gamma q(μ, λ) (issue 18; docs/derivation.md, "A Normal–Gamma pair").

With the conjugate prior λ ~ Gamma(a₀, b₀), μ | λ ~ N(m₀, (β₀λ)⁻¹) and x ~ N(μ, λ⁻¹), the posterior is the
Normal–Gamma of PRML 2.3.6 (Murphy 2007, "Conjugate Bayesian analysis of the Gaussian distribution", §3):
β = β₀ + N, m = (β₀m₀ + Σx)/β, a = a₀ + N/2, b = b₀ + ½Σ(x − x̄)² + β₀N(x̄ − m₀)²/(2β), and the evidence is
Γ(a)/Γ(a₀) · b₀^a₀/b^a · (β₀/β)^½ · (2π)^(−N/2).  The joint q holds it exactly: the ELBO is the log evidence.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

import ppvi
from conftest import MODELS
from derive import reference   # noqa: E402  (tests/derive/reference.py)
from ppvi.api import Model
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
    qmu, qlam = r.q["mu"], r.q["lam"]
    assert qmu.family == "NormalGamma" and qmu.pair == "lam" and qlam.family == "Gamma"
    np.testing.assert_allclose([qmu["mean"], qmu["beta"], qmu["shape"], qmu["rate"]], [m, beta, a, b], rtol=1e-10)
    np.testing.assert_allclose([qlam["shape"], qlam["rate"]], [a, b], rtol=1e-10)     # λ's marginal
    assert float(qmu.sd) == pytest.approx(np.sqrt(b / (beta * (a - 1))), rel=1e-12)      # μ's Student-t marginal
    assert len(r.elbo_trace) <= 2       # exact after one step: the second only confirms it


def test_draws_are_joint_and_their_density_the_normal_gamma(joint, tmp_path):
    """Draws of (μ, λ) from the result (and from it saved and read back): λ ~ Gamma(a, b), μ | λ ~ N(m, (βλ)⁻¹),
    their log q the Normal–Gamma density (scipy); the evidence by importance sampling from the exact posterior
    has weights all equal to it, and a warm start from the result is already the fit."""
    r, x = joint
    (m, beta, a, b), log_evidence = posterior(x, 0.0, 0.01, 1.0, 1.0)
    path = tmp_path / "r.npz"
    r.save(str(path))
    back = ppvi.load_result(str(path))
    assert back.q["mu"].pair == "lam" and back.q["mu"].family == "NormalGamma"
    d = back.sample(4000, seed=3)
    lam, mu = d["lam"], d["mu"]
    want = stats.gamma.logpdf(lam, a, scale=1 / b) + stats.norm.logpdf(mu, m, (beta * lam) ** -0.5)
    np.testing.assert_allclose(back.log_q(d), want, rtol=1e-12, atol=1e-12)    # (log q crosses 0)
    z = (mu - m) * np.sqrt(beta * lam)            # N(0, 1) whatever λ, and independent of it
    assert abs(z.mean()) < 0.06 and abs(z.var() - 1) < 0.08 and abs(np.corrcoef(z ** 2, lam)[0, 1]) < 0.06
    assert r.evidence(200, seed=1).log_evidence == pytest.approx(log_evidence, rel=1e-10)
    again = ppvi.load(str(JOINT)).fit(init=back, tol=1e-14)
    assert again.elbo == pytest.approx(r.elbo, rel=1e-12)
    # the start itself, before any update (a warm start's first value): the pair's entropy, not a Normal's
    from ppvi.infer.warm import Start

    p = r.fit.program
    p.initialise(np.random.default_rng(0), Start.of(back))
    assert p.elbo() == pytest.approx(r.elbo, rel=1e-12)


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


def test_a_pair_is_fitted_by_batch_cavi_only(waiting):
    """The pair's step is the in-process engine's: SVI's natural-gradient steps would skip it (a located error,
    before anything is compiled)."""
    from ppvi.api import SVI

    with pytest.raises(PPVIError) as e:
        ppvi.load(str(JOINT)).fit({"waiting": waiting}, algorithm=SVI(batch=10))
    assert "normal_gamma_joint.ppvi:22:1: error: `approximate mu, lam jointly` is fitted by batch CAVI" in str(e.value)


@pytest.mark.long
def test_data_far_from_zero_keep_their_scatter():
    """Mean 1e8, sd 1 (the prior's mean there too): read around the data's mean (codegen.centre), the scatter
    keeps its digits and the ELBO is still the log evidence (on main: Σx² − 2⟨μ⟩Σx + N⟨μ²⟩ lost it, q(λ) NaN)."""
    x = np.random.default_rng(1).normal(1e8, 1.0, size=50)
    text = JOINT.read_text().replace("const m0 = 0.0", "const m0 = 100000000.0")
    r = Model(loads(text, "far.ppvi")).fit({"waiting": x}, tol=1e-14)
    (m, beta, a, b), log_evidence = posterior(x, 1e8, 0.01, 1.0, 1.0)
    assert r.elbo == pytest.approx(log_evidence, rel=1e-8)
    q = r.q["mu"]
    np.testing.assert_allclose([q["beta"], q["shape"], q["rate"]], [beta, a, b], rtol=1e-8)
    # to 1e-8 of its own sd, or a few units in the last place of a number near 1e8 (spacing 1.5e-8 > 1e-8 sd)
    assert abs(q["mean"] - m) <= 1e-8 * np.sqrt(b / (beta * a)) + 4 * np.spacing(abs(m))
