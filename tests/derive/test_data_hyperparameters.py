"""Hyperparameters from data (DESIGN §7, issue 14 item 6): any constant argument may be `data`.

Every constant position of every distribution is read once from the data file
and once written as a `const` with the same value; the two fits are the same
computation, so their ELBOs agree to rounding.  Matrices whose inverse or
log-determinant the model needs (MvNormal's precision and cov, Wishart's scale)
are computed from the data at bind time, as they are for constants.
"""

from __future__ import annotations

import numpy as np
import pytest

import ppvi
from conftest import run_cli
from ppvi.errors import PPVIError

RNG = np.random.default_rng(7)

# Positions: Dirichlet alpha; MvNormal mean, precision, cov; Wishart df, scale; Gamma shape, rate;
# Normal mean, sd, precision, variance; Beta a, b; Bernoulli p; Categorical p; Poisson rate;
# Exponential rate; Laplace loc, scale.
MODEL = """
dim N
dim D = 2
dim K = 2
dim P = 2
dim C = 3
{alpha0[K]}
{m0[D]}
{P0[D, D]}
{nu0}
{W0[D, D]}
{b0[P]}
{C0[P, P]}
{a0}
{r0}
{mn}
{s0}
{ba}
{bb}
{v0}
{p0}
{pc[C]}
{lam}
{er}
{loc}
{scale}
{prec}
data x[N, D]
data h[N] : index(K)
data X[N, P]
data y[N]
data u[N]
data w[N]
data f[N] : binary
data g[N] : binary
data c[N] : index(C)
data k[N] : count
data e[N] : positive
data l[N]
pi ~ Dirichlet(alpha0)
mu ~ MvNormal(m0, precision = P0)
Lambda ~ Wishart(nu0, W0)
tau ~ Gamma(a0, r0)
B ~ MvNormal(b0, cov = C0)
nu ~ Normal(mn, sd = s0)
theta ~ Beta(ba, bb)
for n in N:
    h[n] ~ Categorical(pi)
    x[n] ~ MvNormal(mu, precision = Lambda)
    y[n] ~ Normal(dot(X[n], B), precision = tau)
    u[n] ~ Normal(nu, variance = v0)
    w[n] ~ Normal(nu, precision = prec)
    f[n] ~ Bernoulli(theta)
    g[n] ~ Bernoulli(p0)
    c[n] ~ Categorical(pc)
    k[n] ~ Poisson(lam)
    e[n] ~ Exponential(er)
    l[n] ~ Laplace(loc, scale)
"""


def _literal(v) -> str:
    v = np.asarray(v, dtype=float)
    if v.ndim == 0:
        return repr(float(v))
    return "[" + ", ".join(_literal(r) for r in v) + "]"


def _versions(template: str, values: dict[str, np.ndarray]) -> tuple[str, str]:
    """(every hyperparameter a `data` variable, every one a `const` holding the same value)."""
    as_data = as_const = template
    for key, v in values.items():
        as_data = as_data.replace("{" + key + "}", f"data {key}")
        as_const = as_const.replace("{" + key + "}", f"const {key} = {_literal(v)}")
    return as_data, as_const


def _spd(d: int) -> np.ndarray:
    a = RNG.normal(size=(d, d))
    return a @ a.T + d * np.eye(d)


def _model(tmp_path, name: str, text: str):
    path = tmp_path / f"{name}.ppvi"
    path.write_text(text)
    return ppvi.load(str(path))


def _fit(tmp_path, name: str, text: str, data: dict):
    return _model(tmp_path, name, text).fit(data, seed=3, tol=1e-300, max_iter=25)


def _hyper() -> dict:
    pc = RNG.random(3) + 0.2
    return {"alpha0[K]": RNG.random(2) + 0.5, "m0[D]": RNG.normal(size=2), "P0[D, D]": _spd(2) / 10, "nu0": 3.7,
            "W0[D, D]": _spd(2) / 5, "b0[P]": RNG.normal(size=2), "C0[P, P]": _spd(2), "a0": 1.3, "r0": 0.7,
            "mn": 0.4, "s0": 3.1, "ba": 2.2, "bb": 1.6, "v0": 2.5, "p0": 0.35, "pc[C]": pc / pc.sum(), "lam": 2.9,
            "er": 0.8, "loc": 0.3, "scale": 1.7, "prec": 0.9}


@pytest.mark.long     # (two compilations of one large model, 50 s; CI checks and derives it below)
def test_every_hyperparameter_position_from_data_equals_the_const(tmp_path):
    N = 40
    X = RNG.normal(size=(N, 2))
    data = {"x": RNG.normal(1, 2, size=(N, 2)), "h": RNG.integers(0, 2, N), "X": X, "y": X @ [1.0, -2.0] + RNG.normal(size=N), "u": RNG.normal(1, 2, N),
            "w": RNG.normal(1, 1, N), "f": RNG.integers(0, 2, N), "g": RNG.integers(0, 2, N),
            "c": RNG.integers(0, 3, N), "k": RNG.poisson(3.0, N), "e": RNG.exponential(2.0, N),
            "l": RNG.laplace(0.5, 2.0, N)}
    hyper = _hyper()
    data_text, const_text = _versions(MODEL, hyper)
    by_data = _fit(tmp_path, "by_data", data_text, {**data, **{k.split("[")[0]: v for k, v in hyper.items()}})
    by_const = _fit(tmp_path, "by_const", const_text, data)
    assert np.isfinite(by_data.elbo) and len(by_data.elbo_trace) > 5
    assert by_data.elbo == pytest.approx(by_const.elbo, rel=1e-12, abs=0)
    assert np.allclose(by_data.elbo_trace, by_const.elbo_trace, rtol=1e-12, atol=0)
    for var, q in by_const.q.items():
        for p, v in q.items():
            if isinstance(v, (np.ndarray, float)):
                assert np.allclose(by_data.q[var][p], v, rtol=1e-10, atol=1e-12), (var, p)


# ------------------------------------------------------------------ check time
def test_data_hyperparameters_check_and_derive(tmp_path, capsys):
    text, _ = _versions(MODEL, _hyper())
    m = _model(tmp_path, "m", text).checked
    for command in ("check", "derive"):
        code, out, err = run_cli([command, m.path], capsys)
        assert code == 0, err
    # a data variable standing in a domain takes its support: its values are checked on load
    assert {n: m.variables[n].support for n in ("alpha0", "P0", "nu0", "W0", "C0", "s0", "ba", "p0", "pc", "m0")} == {
        "alpha0": "positive", "P0": "pd_matrix", "nu0": "positive", "W0": "pd_matrix", "C0": "pd_matrix",
        "s0": "positive", "ba": "positive", "p0": "unit_interval", "pc": "simplex", "m0": "real"}


def test_data_outside_its_domain_is_a_user_error(tmp_path):
    text = ("dim N\ndim D = 2\ndim K = 2\ndata alpha0[K]\ndata W0[D, D]\nconst m0[D] = 0.0\ndata x[N, D]\n"
            "pi ~ Dirichlet(alpha0)\nfor j in K:\n    Lambda[j] ~ Wishart(3, W0)\nfor n in N:\n"
            "    z[n] ~ Categorical(pi)\n    x[n] ~ MvNormal(m0, precision = Lambda[z[n]])\n")
    model = _model(tmp_path, "m", text)
    good = {"x": RNG.normal(size=(10, 2)), "alpha0": np.ones(2), "W0": np.eye(2)}
    with pytest.raises(PPVIError, match=r"`alpha0\[1\]` = -1.0 must be > 0"):
        model.fit({**good, "alpha0": np.array([1.0, -1.0])}, max_iter=1)
    with pytest.raises(PPVIError, match="`W0` is not symmetric positive definite") as e:
        model.fit({**good, "W0": np.array([[1.0, 2.0], [2.0, 1.0]])}, max_iter=1)
    assert "m.ppvi:" in str(e.value) and "hint:" in str(e.value)


STACKED = """
dim N
dim J = 2
dim P = 2
data g[N] : index(J)
{Prec[J, P, P]}
const m0[P] = 0.0
data X[N, P]
data y[N]
for j in J:
    beta[j] ~ MvNormal(m0, precision = Prec[j])
for n in N:
    y[n] ~ Normal(dot(X[n], beta[g[n]]), precision = 1.0)
"""


@pytest.mark.parametrize("kind", ["const", "data"])
def test_a_stack_of_matrices_under_a_plate_gives_the_exact_evidence(tmp_path, kind):
    """Each group's coefficients have their own prior precision Prec[j]; q(beta[j]) is then the exact
    posterior, so the ELBO is log p(y) = log N(y; 0, I + Σ_j X_j Prec_j⁻¹ X_jᵀ) (PRML 3.86)."""
    N = 24
    prec = np.stack([_spd(2), _spd(2) / 3])
    g, X = RNG.integers(0, 2, N), RNG.normal(size=(N, 2))
    y = RNG.normal(size=N)
    data_text, const_text = _versions(STACKED, {"Prec[J, P, P]": prec})
    data = {"g": g, "X": X, "y": y} | ({"Prec": prec} if kind == "data" else {})
    r = _fit(tmp_path, kind, data_text if kind == "data" else const_text, data)
    cov = np.eye(N)
    for j in range(2):
        Xj = X * (g == j)[:, None]
        cov += Xj @ np.linalg.inv(prec[j]) @ Xj.T
    from scipy import stats
    assert r.elbo == pytest.approx(stats.multivariate_normal(np.zeros(N), cov).logpdf(y), rel=1e-10)
