"""Ragged sequences in long format (issue 18): a Categorical chain along T riding on ``seq[T] : index(S)``.

``for t in T[:1] by seq:`` draws the first step of each sequence, ``for t in T[1:] by seq:`` every later step
from the one before it in its sequence.  Checked against hmmlearn (an independent forward–backward over
``lengths``) with fixed parameters, against the equal-length form ``z[s, t]`` written as a plate (the same q
and ELBO through a whole reference CAVI), and the mean field's ELBO never decreases.  The reference evaluator
runs here in CI; the compiled fit of the same model against hmmlearn is behind ``--long``.  A Gaussian chain
(a linear dynamical system) rides on sequences the same way: jointly it is each sequence's RTS smoother.
"""

from __future__ import annotations

import numpy as np
import pytest

import ppvi
from ppvi.derive.chain import update_block
from ppvi.derive.meanfield import derive
from ppvi.derive.numeric import Env, evaluate
from ppvi.errors import PPVIError
from ppvi.io.data import bind, source_of
from ppvi.language.check import check
from ppvi.language.parser import parse

from derive import reference   # noqa: E402  (tests/derive/reference.py)
from infer.test_chains import F, Qc, Rc, kalman_rts   # noqa: E402

LENGTHS = (5, 9, 2)

FIXED_RAGGED = """\
dim T, S
dim K = 3
data seq[T] : index(S)
data p0[K]
data A[K, K]
data mu[K]
data sd[K]
data x[T]
for t in T[:1] by seq:
    z[t] ~ Categorical(p0)
for t in T[1:] by seq:
    z[t] ~ Categorical(A[z[t-1]])
for t in T:
    x[t] ~ Normal(mu[z[t]], sd[z[t]])
approximate z jointly
"""

BAYES_RAGGED = """\
dim T, S
dim K = 2
const a0[K] = 1.0
data seq[T] : index(S)
data x[T]
pi ~ Dirichlet(a0)
for k in K:
    A[k] ~ Dirichlet(a0)
    mu[k] ~ Normal(0, 10)
for t in T[:1] by seq:
    z[t] ~ Categorical(pi)
for t in T[1:] by seq:
    z[t] ~ Categorical(A[z[t-1]])
for t in T:
    x[t] ~ Normal(mu[z[t]], 1)
"""

BAYES_PLATE = """\
dim S, T
dim K = 2
const a0[K] = 1.0
data x[S, T]
pi ~ Dirichlet(a0)
for k in K:
    A[k] ~ Dirichlet(a0)
    mu[k] ~ Normal(0, 10)
for s in S:
    z[s, 0] ~ Categorical(pi)
    for t in T[1:]:
        z[s, t] ~ Categorical(A[z[s, t-1]])
    for t in T:
        x[s, t] ~ Normal(mu[z[s, t]], 1)
"""

P0 = np.array([0.5, 0.3, 0.2])
A3 = np.array([[0.8, 0.15, 0.05], [0.1, 0.7, 0.2], [0.25, 0.25, 0.5]])
MU, SD = np.array([-2.0, 0.0, 2.5]), np.array([0.7, 1.0, 0.5])


def derivation(text: str):
    return derive(check(parse(text, "ragged.ppvi")))


def sample_sequences(rng, lengths, p0, A, mu, sd) -> tuple[np.ndarray, np.ndarray]:
    """Long format: each sequence an independent HMM draw; -> (x, seq)."""
    xs = []
    for n in lengths:
        z = [rng.choice(len(p0), p=p0)]
        for _ in range(n - 1):
            z.append(rng.choice(len(p0), p=A[z[-1]]))
        xs.append(rng.normal(mu[z], sd[z]))
    return np.concatenate(xs), np.repeat(np.arange(len(lengths)), lengths)


def hmmlearn_reference(x, lengths):
    hmm = pytest.importorskip("hmmlearn.hmm")
    ref = hmm.GaussianHMM(n_components=3, covariance_type="diag", init_params="", params="")
    ref.startprob_, ref.transmat_, ref.means_, ref.covars_ = P0, A3, MU[:, None], SD[:, None] ** 2
    return ref.predict_proba(x[:, None], list(lengths)), ref.score(x[:, None], list(lengths))


@pytest.fixture(scope="module")
def ragged_data():
    return sample_sequences(np.random.default_rng(0), LENGTHS, P0, A3, MU, SD)


def test_fixed_parameters_match_hmmlearn(ragged_data):
    """q(z) jointly with the parameters known is the exact posterior of each sequence: its marginals are
    hmmlearn's predict_proba(X, lengths), Σ log Z its score(X, lengths), and the ELBO equals it (19.7, no gap)."""
    x, seq = ragged_data
    d = derivation(FIXED_RAGGED)
    env = Env({"p0": P0, "A": A3, "mu": MU, "sd": SD, "x": x, "seq": seq}, {}, {"T": len(x), "K": 3, "S": 3})
    log_z = update_block(d.blocks["z"], env)
    marginals, score = hmmlearn_reference(x, LENGTHS)
    np.testing.assert_allclose(env.moments[("z", "onehot")], marginals, rtol=0, atol=1e-10)
    assert log_z == pytest.approx(score, abs=1e-10, rel=0)
    assert sum(evaluate(e, env) for _, e in d.elbo_terms()) == pytest.approx(score, abs=1e-10, rel=0)


def cavi(d, x, seq, r, jointly: bool, sweeps: int, sizes: dict):
    """Reference CAVI (tests/derive/reference.py for every q but the chain's), from the marginals ``r``."""
    block = d.blocks["z"]
    d.blocks["z"] = type(block)(**{**block.__dict__, "jointly": jointly})
    xi = np.zeros(r.shape + r.shape[-1:])
    xi[..., 1:, :, :] = r[..., :-1, :, None] * r[..., 1:, None, :]
    data = {"x": x, "a0": np.ones(2), **({"seq": seq} if seq is not None else {})}
    env = Env(data, {("z", "onehot"): r, ("z", "pair"): xi, ("z", "entropy"): 0.0}, sizes)
    return env, reference.chain_sweeps(d, env, sweeps)


@pytest.mark.parametrize("jointly", [False, pytest.param(True, marks=pytest.mark.long)])
def test_long_format_equals_the_plate_of_equal_sequences(jointly):
    """Three sequences of four steps, written ``z[s, t]`` in a plate and in long format riding on ``seq``: the
    same q of every latent and the same ELBO, sweep after sweep."""
    rng = np.random.default_rng(5)
    x, seq = sample_sequences(rng, (4, 4, 4), np.array([0.6, 0.4]), np.array([[0.9, 0.1], [0.2, 0.8]]),
                              np.array([-1.5, 1.5]), np.array([1.0, 1.0]))
    r = rng.dirichlet(np.ones(2), size=12)
    long_env, long_trace = cavi(derivation(BAYES_RAGGED), x, seq, r.copy(), jointly, 4, {"T": 12, "S": 3, "K": 2})
    plate_env, plate_trace = cavi(derivation(BAYES_PLATE), x.reshape(3, 4), None, r.reshape(3, 4, 2).copy(),
                                  jointly, 4, {"T": 4, "S": 3, "K": 2})
    np.testing.assert_allclose(long_trace, plate_trace, rtol=0, atol=1e-12)
    np.testing.assert_allclose(long_env.moments[("z", "onehot")], plate_env.moments[("z", "onehot")].reshape(12, 2),
                               rtol=0, atol=1e-12)
    for key, value in plate_env.arrays.items():
        if "(" in key:        # q's parameters (reference.update: "alpha(pi)", "mean(mu)", …)
            np.testing.assert_allclose(long_env.arrays[key], value, rtol=0, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("jointly", [False, pytest.param(True, marks=pytest.mark.long)])
def test_elbo_never_decreases(jointly):
    rng = np.random.default_rng(3)
    x, seq = sample_sequences(rng, (6, 9, 2), np.array([0.6, 0.4]), np.array([[0.9, 0.1], [0.2, 0.8]]),
                              np.array([-1.5, 1.5]), np.array([1.0, 1.0]))
    r = rng.dirichlet(np.ones(2), size=len(x))
    _, trace = cavi(derivation(BAYES_RAGGED), x, seq, r, jointly, 12, {"T": len(x), "S": 3, "K": 2})
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:])), np.diff(trace).min()


# ------------------------------------------------------------ the data: sequences in runs, numbered in order
@pytest.mark.parametrize("seq, dims, message, hint", [
    ([0, 0, 1, 1, 0, 2], {}, "`seq[4]` = 0 after `seq[3]` = 1 comes back to an earlier sequence", "sort_values"),
    ([0, 0, 2, 2, 2, 2], {}, "`seq[2]` = 2 after `seq[1]` = 0 skips a sequence number", "factorize"),
    ([1, 1, 1, 2, 2, 2], {}, "`seq[0]` = 1: the first step must be of sequence 0", "sort_values"),
    ([0, 0, 0, 1, 1, 1], {"S": 3}, "sequence 2 of S = 3 has no steps in `seq`", "--dim S=2"),
])
def test_unsorted_sequences_are_refused(seq, dims, message, hint):
    model = check(parse(FIXED_RAGGED, "ragged.ppvi"))
    data = {"p0": P0, "A": A3, "mu": MU, "sd": SD, "x": np.zeros(6), "seq": np.array(seq)}
    with pytest.raises(PPVIError) as err:
        bind(model, source_of(data, model), dims)
    assert message in str(err.value) and hint in str(err.value)


LDS_RAGGED = """\
dim T, S
dim D = 2
const m0[D] = 0.0
const P0[D, D] = eye(D)
const F[D, D] = [[0.9, 0.1], [-0.1, 0.9]]
const Q[D, D] = 4.0 * eye(D)
const R[D, D] = 2.0 * eye(D)
data seq[T] : index(S)
data y[T, D]
for t in T[:1] by seq:
    x[t] ~ MvNormal(m0, precision = P0)
for t in T[1:] by seq:
    x[t] ~ MvNormal(dot(F, x[t-1]), precision = Q)
for t in T:
    y[t] ~ MvNormal(x[t], precision = R)
"""


@pytest.fixture(scope="module")
def lds():
    """Three sequences of a linear dynamical system in long format, and each one's Kalman filter and RTS
    smoother (tests/infer/test_chains.py: covariance form, written from Särkkä 2013)."""
    rng = np.random.default_rng(4)
    ys = []
    for n in LENGTHS:
        x = np.zeros((n, 2))
        x[0] = rng.normal(size=2)
        for t in range(1, n):
            x[t] = F @ x[t - 1] + rng.multivariate_normal(np.zeros(2), Qc)
        ys.append(x + rng.multivariate_normal(np.zeros(2), Rc, size=n))
    refs = [kalman_rts(y, np.zeros(2), np.eye(2), F, Qc, Rc) for y in ys]
    y, seq = np.concatenate(ys), np.repeat(np.arange(len(LENGTHS)), LENGTHS)
    arrays = {"y": y, "seq": seq, "F": F, "Q": np.linalg.inv(Qc), "R": np.linalg.inv(Rc), "m0": np.zeros(2),
              "P0": np.eye(2)}
    ms, Ps = np.concatenate([r[0] for r in refs]), np.concatenate([r[1] for r in refs])
    return arrays, ms, Ps, np.concatenate([r[2] for r in refs]), sum(r[3] for r in refs)


@pytest.mark.long       # (Gaussian derivations cost seconds each: the Gaussian checks run with --long)
def test_gaussian_chain_jointly_is_each_sequences_rts_smoother(lds):
    """With F, Q, R known, q(x) jointly is the exact posterior of each sequence: the smoothed means and
    covariances, the lag-one covariances (zero across a restart) and Σ log p(y_s) as the ELBO."""
    from ppvi.derive.chain import update_gaussian_block

    arrays, ms, Ps, lag, ll = lds
    d = derivation(LDS_RAGGED + "approximate x jointly\n")
    env = Env(dict(arrays), {}, {"T": len(ms), "D": 2, "S": len(LENGTHS)})
    update_gaussian_block(d.gaussian["x"], env)
    np.testing.assert_allclose(env.moments[("x", "x")], ms, atol=1e-10)
    np.testing.assert_allclose(env.moments[("x", "xxT")], Ps + ms[:, :, None] * ms[:, None, :], atol=1e-10)
    np.testing.assert_allclose(env.moments[("x", "cross")], lag, atol=1e-10)
    assert sum(evaluate(e, env) for _, e in d.elbo_terms()) == pytest.approx(ll, abs=1e-9, rel=0)


@pytest.fixture(scope="module")
def lds_mean_field():
    return derivation(LDS_RAGGED)


@pytest.mark.long
def test_gaussian_chain_mean_field_means_are_exact(lds, lds_mean_field):
    """PRML 10.1.2: one sweep of the mean field's derived updates from the smoothers' means leaves them there."""
    arrays, ms, Ps, _, ll = lds
    d = lds_mean_field
    env = Env(dict(arrays), {("x", "x"): ms.copy(), ("x", "xxT"): Ps + ms[:, :, None] * ms[:, None, :]},
              {"T": len(ms), "D": 2, "S": len(LENGTHS)})
    reference.sweep(d, env)
    np.testing.assert_allclose(env.moments[("x", "x")], ms, atol=1e-10)
    assert reference.elbo(d, env) < ll - 1e-3


# ------------------------------------------------------------ compiled (one more model to compile: --long)
@pytest.mark.long
def test_compiled_fit_matches_hmmlearn(ragged_data, tmp_path):
    x, seq = ragged_data
    (tmp_path / "ragged.ppvi").write_text(FIXED_RAGGED)
    r = ppvi.load(str(tmp_path / "ragged.ppvi")).fit({"p0": P0, "A": A3, "mu": MU, "sd": SD, "x": x, "seq": seq}, max_iter=3)
    marginals, score = hmmlearn_reference(x, LENGTHS)
    np.testing.assert_allclose(np.asarray(r.q["z"]["p"]), marginals, rtol=0, atol=1e-10)
    assert r.elbo == pytest.approx(score, abs=1e-10, rel=0)
    lag = np.asarray(r.q["z"].lag_one)
    starts = np.flatnonzero(np.diff(seq)) + 1      # (q is one block per sequence: independent across a restart)
    np.testing.assert_allclose(lag[starts], marginals[starts - 1, :, None] * marginals[starts, None, :], atol=1e-12)
