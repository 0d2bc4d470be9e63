"""The encoder's network and heads in isolation (no model compiled): backpropagation against finite
differences, each family's output and regression target the inverse of each other."""

from __future__ import annotations

import numpy as np
import pytest

from ppvi.amortise.encoder import loss_of, standard, targets, width
from ppvi.amortise.mlp import Adam, initial


def _targets(family: str, rng, rows: int, out: int, categories: int) -> np.ndarray:
    if family == "Bernoulli":
        return rng.random((rows, out))
    if family == "Categorical":
        p = rng.random((rows, out // categories, categories))
        return (p / p.sum(-1, keepdims=True)).reshape(rows, out)
    return rng.standard_normal((rows, out))


@pytest.mark.parametrize("family", ["Bernoulli", "Categorical", "Normal"])
def test_backpropagation_is_the_gradient(family):
    rng = np.random.default_rng(0)
    categories, out = 3, 6
    net = initial([4, 5, 5, out], rng)
    net = type(net)(tuple(w * 10 for w in net.weights), tuple(rng.standard_normal(b.shape) for b in net.biases))
    x, t = rng.standard_normal((7, 4)), _targets(family, rng, 7, out, categories)
    loss = loss_of(family, categories)
    gw, gb = net.gradients(x, t, loss)
    eps = 1e-6
    for layer in range(len(net.weights)):
        for grads, arrays in ((gw, net.weights), (gb, net.biases)):
            a = arrays[layer]
            for idx in [(0,) * a.ndim, tuple(s - 1 for s in a.shape)]:
                old = a[idx]
                a[idx] = old + eps
                up = loss.value(net(x), t)
                a[idx] = old - eps
                down = loss.value(net(x), t)
                a[idx] = old
                assert grads[layer][idx] == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-8)


@pytest.mark.parametrize("family", ["Bernoulli", "Categorical"])
def test_cross_entropy_is_least_at_the_targets_logits(family):
    """At o = logit p (log p for a Categorical), the gradient vanishes and the loss is the entropy of p."""
    rng = np.random.default_rng(1)
    p = _targets(family, rng, 5, 6, 3)
    o = np.log(p) - np.log1p(-p) if family == "Bernoulli" else np.log(p)
    loss = loss_of(family, 3)
    assert np.allclose(loss.grad(o, p), 0, atol=1e-15)
    entropy = -np.sum(p * np.log(p) + ((1 - p) * np.log1p(-p) if family == "Bernoulli" else 0)) / len(p)
    assert loss.value(o, p) == pytest.approx(entropy, rel=1e-12)


def test_a_normal_output_is_the_precision_weighted_mean_and_log_precision():
    rng = np.random.default_rng(2)
    shape = (5, 3)
    out = rng.standard_normal((5, width("Normal", shape)))
    q = standard("Normal", out, shape)
    tau = 1 / q["sd"] ** 2
    np.testing.assert_allclose(np.log(tau), out[:, 3:], rtol=1e-12)
    np.testing.assert_allclose(q["mean"] * tau, out[:, :3], rtol=1e-12)
    state = {"q_h__mean": q["mean"], "q_h__sd": q["sd"]}
    np.testing.assert_allclose(targets("Normal", state, "h", 5), out, rtol=1e-12, atol=1e-14)


def test_adam_fits_a_smooth_map():
    """Regression of y = sin(x₁) + x₂² on 256 points: the loss falls a hundredfold."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-2, 2, size=(256, 2))
    y = (np.sin(x[:, 0]) + x[:, 1] ** 2)[:, None]
    y = (y - y.mean()) / y.std()
    loss = loss_of("point", 1)
    net = initial([2, 32, 1], rng)
    before = loss.value(net(x), y)
    net, after = Adam().fit(net, x, y, loss, epochs=300, batch=64, rng=rng)
    assert after < before / 100


def test_the_sleep_phases_gaussian_loss_is_minus_the_log_density_and_its_gradient():
    """gaussian_loss: −log N(h | μ, 1/τ) (scipy) for (η₁, log τ) = o ⊙ scale + mean, μ = η₁/τ; its gradient in o
    by central differences; least where μ and 1/τ are the mean and variance of the h it is given."""
    from scipy import stats

    from ppvi.amortise.encoder import gaussian_loss

    rng = np.random.default_rng(3)
    y_mean, y_scale = np.array([0.5, -1.0, 0.3, 0.2]), np.array([2.0, 0.5, 1.0, 1.5])
    loss = gaussian_loss(y_mean, y_scale)
    o, h = rng.standard_normal((6, 4)), rng.standard_normal((6, 2))
    out = o * y_scale + y_mean
    tau = np.exp(out[:, 2:])
    want = -stats.norm.logpdf(h, out[:, :2] / tau, 1 / np.sqrt(tau)).sum() / len(o)
    assert loss.value(o, h) == pytest.approx(want, rel=1e-12)
    g = loss.grad(o, h)
    for idx in [(0, 0), (2, 1), (3, 2), (5, 3)]:
        step = np.zeros_like(o)
        step[idx] = 1e-6
        assert g[idx] == pytest.approx((loss.value(o + step, h) - loss.value(o - step, h)) / 2e-6, rel=1e-5)
    many = rng.normal(1.5, 0.4, (400, 1))
    m, var = many.mean(), many.var()
    best = np.array([m / var, -np.log(var)]) * np.ones((400, 2))
    assert np.allclose(gaussian_loss(np.zeros(2), np.ones(2)).grad(best, many).sum(axis=0), 0, atol=1e-12)
