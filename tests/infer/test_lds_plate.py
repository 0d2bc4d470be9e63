"""A plate of equal-length Gaussian chains approximated jointly (issue 18): ``x[s, t]`` inside ``for s in S:``,
each sequence a block of its own (a Kalman filter and an RTS smoother per s, docs/derivation.md, section 8).

- with F, Q, R known, q(x) is each sequence's exact posterior: means, covariances and lag-one covariances equal
  S Kalman filters and RTS smoothers written in NumPy here (tests/infer/test_chains.py's, covariance form), and
  the ELBO is Σ_s log p(y_s) (the reference evaluator, by default; the compiled fit with --long);
- the plate fitted by ppvi equals the same data written ragged in long format (``for t in T[1:] by seq:``,
  models/sequences/ragged_lds.ppvi's form; tests/infer/test_ragged.py's model) fitted by ppvi: q and ELBO to 1e-10,
  with F, Q known, with q(Q) a Wishart or F a param learned from all sequences, and for a chain of scalars with its
  precision τ ~ Gamma learned (--long: each is two more models to compile).
"""

from __future__ import annotations

import numpy as np
import pytest

import ppvi
from ppvi.derive.chain import update_gaussian_block
from ppvi.derive.meanfield import derive
from ppvi.derive.numeric import Env, evaluate
from ppvi.language.check import check
from ppvi.language.parser import parse

from infer.test_chains import F, Qc, Rc, kalman_rts   # noqa: E402
from infer.test_ragged import LDS_RAGGED   # noqa: E402

S, T = 3, 7

PLATE = """\
dim S, T
dim D = 2
data F[D, D]
data Q[D, D]
data R[D, D]
const m0[D] = 0.0
const P0[D, D] = eye(D)
data y[S, T, D]
for s in S:
    x[s, 0] ~ MvNormal(m0, precision = P0)
    for t in T[1:]:
        x[s, t] ~ MvNormal(dot(F, x[s, t-1]), precision = Q)
for s in S:
    for t in T:
        y[s, t] ~ MvNormal(x[s, t], precision = R)
approximate x jointly
"""

# the same sequences in long format: tests/infer/test_ragged.py's LDS_RAGGED, whose F, Q and R are the data
# test_chains' F, Qc⁻¹ and Rc⁻¹ given to PLATE here
RAGGED = LDS_RAGGED + "approximate x jointly\n"

# Q learned from all sequences: a Wishart q read through Σ_s Σ_t≥1 E[x[s,t] x[s,t-1]ᵀ]
LEARNED = "const W0[D, D] = eye(D)\n", "Q ~ Wishart(4.0, W0)\napproximate x jointly\n"

SCALAR_PLATE = """\
dim S, T
data y[S, T]
tau ~ Gamma(2, 0.5)
for s in S:
    x[s, 0] ~ Normal(0, 1)
    for t in T[1:]:
        x[s, t] ~ Normal(0.8 * x[s, t-1], precision = tau)
    for t in T:
        y[s, t] ~ Normal(x[s, t], 1.0)
approximate x jointly
"""

SCALAR_RAGGED = """\
dim T, S
data seq[T] : index(S)
data y[T]
tau ~ Gamma(2, 0.5)
for t in T[:1] by seq:
    x[t] ~ Normal(0, 1)
for t in T[1:] by seq:
    x[t] ~ Normal(0.8 * x[t-1], precision = tau)
for t in T:
    y[t] ~ Normal(x[t], 1.0)
approximate x jointly
"""


def _learned(text: str, declared: str) -> str:
    """``text`` with Q (declared by the line ``declared``) a latent under a Wishart prior."""
    assert declared in text
    return text.replace(declared, LEARNED[0]).replace("approximate x jointly\n", LEARNED[1])


@pytest.fixture(scope="module")
def sequences():
    """S sequences of a linear dynamical system, and each one's Kalman filter and RTS smoother."""
    rng = np.random.default_rng(5)
    y = np.empty((S, T, 2))
    for s in range(S):
        x = rng.normal(size=2)
        for t in range(T):
            x = x if t == 0 else F @ x + rng.multivariate_normal(np.zeros(2), Qc)
            y[s, t] = x + rng.multivariate_normal(np.zeros(2), Rc)
    refs = [kalman_rts(y[s], np.zeros(2), np.eye(2), F, Qc, Rc) for s in range(S)]
    return y, [np.array([r[i] for r in refs]) for i in range(3)] + [sum(r[3] for r in refs)]


def known(y: np.ndarray) -> dict:
    return {"y": y, "F": F, "Q": np.linalg.inv(Qc), "R": np.linalg.inv(Rc)}


def long_format(y: np.ndarray) -> dict:
    return {"y": y.reshape((-1,) + y.shape[2:]), "seq": np.repeat(np.arange(y.shape[0]), y.shape[1])}


def test_plate_jointly_is_each_sequences_rts_smoother(sequences):
    """The reference evaluator's block: per sequence, the smoother's means, second moments and lag-one
    covariances; the ELBO (19.7 with the joint entropy) is Σ_s log p(y_s), no gap."""
    y, (ms, Ps, lag, ll) = sequences
    d = derive(check(parse(PLATE, "plate.ppvi")))
    env = Env({**known(y), "m0": np.zeros(2), "P0": np.eye(2)}, {}, {"S": S, "T": T, "D": 2})
    update_gaussian_block(d.gaussian["x"], env)
    np.testing.assert_allclose(env.moments[("x", "x")], ms, rtol=0, atol=1e-10)
    np.testing.assert_allclose(env.moments[("x", "xxT")], Ps + ms[..., :, None] * ms[..., None, :], rtol=0, atol=1e-10)
    np.testing.assert_allclose(env.moments[("x", "cross")], lag, rtol=0, atol=1e-10)
    assert sum(evaluate(e, env) for _, e in d.elbo_terms()) == pytest.approx(ll, abs=1e-9, rel=0)


def fit(tmp_path, name: str, text: str, data: dict, iters: int):
    (tmp_path / f"{name}.ppvi").write_text(text)
    return ppvi.load(str(tmp_path / f"{name}.ppvi")).fit(data, max_iter=iters, tol=0)


def assert_same_fit(plate, ragged, shape) -> None:
    """The plate's q and ELBO equal the long format's (its arrays reshaped to the plate's) to 1e-10."""
    assert plate.elbo == pytest.approx(ragged.elbo, abs=1e-10, rel=0)
    for name, q in ragged.q.items():
        for k, v in q.params.items():
            v = np.asarray(v)
            got = np.asarray(plate.q[name].params[k])
            np.testing.assert_allclose(got, v.reshape(got.shape), rtol=0, atol=1e-10, err_msg=f"{name}.{k}")
        if q.lag_one is not None:
            np.testing.assert_allclose(np.asarray(plate.q[name].lag_one).ravel(), np.asarray(q.lag_one).ravel(),
                                       rtol=0, atol=1e-10)


@pytest.mark.long
def test_compiled_plate_is_each_sequences_rts_smoother_and_the_long_format(sequences, tmp_path):
    y, (ms, Ps, lag, ll) = sequences
    plate = fit(tmp_path, "plate", PLATE, known(y), 2)
    q = plate.q["x"]
    np.testing.assert_allclose(q.params["mean"], ms, rtol=0, atol=1e-10)
    np.testing.assert_allclose(q.params["cov"], Ps, rtol=0, atol=1e-10)
    np.testing.assert_allclose(q.lag_one, lag, rtol=0, atol=1e-10)
    assert plate.elbo == pytest.approx(ll, abs=1e-9, rel=0)
    ragged = fit(tmp_path, "ragged", RAGGED, long_format(y), 2)
    assert_same_fit(plate, ragged, y.shape)
    # draws from q are joint within a sequence (the lag-one covariances) and independent across sequences
    x = plate.sample(20000, seed=1)["x"]
    assert x.shape == (20000, S, T, 2)
    centred = x - ms
    np.testing.assert_allclose(np.einsum("nsd,nse->sde", centred[:, :, 2], centred[:, :, 3]) / len(x), lag[:, 3],
                               atol=0.03)
    assert np.abs(np.einsum("nd,ne->de", centred[:, 0, 0], centred[:, 1, 0]) / len(x)).max() < 0.03


@pytest.mark.long
def test_wishart_state_precision_learned_from_all_sequences_equals_the_long_format(sequences, tmp_path):
    """q(Q) reads the lag-one statistics summed over s: the plate's CAVI takes the long format's steps."""
    y, _ = sequences
    data = {k: v for k, v in known(y).items() if k != "Q"}
    plate = fit(tmp_path, "plate", _learned(PLATE, "data Q[D, D]\n"), data, 8)
    ragged = fit(tmp_path, "ragged", _learned(RAGGED, "const Q[D, D] = 4.0 * eye(D)\n"), long_format(y), 8)
    assert_same_fit(plate, ragged, y.shape)


@pytest.mark.long
def test_transition_matrix_as_a_param_learned_from_all_sequences_equals_the_long_format(sequences, tmp_path):
    """F's M-step reads Σ_s Σ_t≥1 E[x[s,t] x[s,t-1]ᵀ] and Σ_s Σ_t≥1 E[x[s,t-1] x[s,t-1]ᵀ] (Shumway & Stoffer)."""
    y, _ = sequences
    data = {k: v for k, v in known(y).items() if k != "F"}
    plate = fit(tmp_path, "plate", PLATE.replace("data F[D, D]\n", "param F[D, D]\n"), data, 8)
    ragged = fit(tmp_path, "ragged", RAGGED.replace("const F[D, D] = [[0.9, 0.1], [-0.1, 0.9]]\n", "param F[D, D]\n"),
                 long_format(y), 8)
    np.testing.assert_allclose(plate.params["F"], ragged.params["F"], rtol=0, atol=1e-10)
    assert_same_fit(plate, ragged, y.shape)


@pytest.mark.long
def test_scalar_chains_with_learned_precision_equal_the_long_format(sequences, tmp_path):
    y = sequences[0][..., 0]
    plate = fit(tmp_path, "plate", SCALAR_PLATE, {"y": y}, 8)
    ragged = fit(tmp_path, "ragged", SCALAR_RAGGED, long_format(y), 8)
    assert_same_fit(plate, ragged, y.shape)
