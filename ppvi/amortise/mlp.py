"""A small multilayer perceptron in NumPy: tanh hidden layers, a linear output, backprop by hand, Adam.

Why not a library: the encoders are small (a data row of tens to hundreds of numbers in, a local q's
natural parameters out) and train on a few thousand rows, where NumPy's matrix products are the whole
cost; scikit-learn's MLPRegressor has no loss for soft targets (a Bernoulli q's probabilities) and
scipy.optimize's L-BFGS would need the full-batch gradient anyway.  A deep-learning framework would be
a heavy dependency for this.  Everything is deterministic given the generator passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np



@dataclass(frozen=True)
class Loss:
    """A regression loss averaged over the rows, ``value(outputs, targets)``, and its gradient in the outputs."""

    value: Callable[[np.ndarray, np.ndarray], float]
    grad: Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True, eq=False)
class MLP:
    """y = W_L tanh(… tanh(x W_0 + b_0) …) + b_L; weights[l] is [inputs, outputs] of layer l."""

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.activations(x)[-1]

    def rebuilt(self, weights: tuple[np.ndarray, ...], biases: tuple[np.ndarray, ...]) -> "MLP":
        """The same network with other weights (what :class:`Adam` steps)."""
        return MLP(weights, biases)

    def activations(self, x: np.ndarray) -> list[np.ndarray]:
        """The input, every hidden layer's output and the network's output."""
        out = [x]
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = out[-1] @ w + b
            out.append(np.tanh(z) if i < len(self.weights) - 1 else z)
        return out

    def gradients(self, x: np.ndarray, targets: np.ndarray, loss: Loss) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The loss's gradients on (x, targets) by backpropagation: δ_L = ∂loss/∂y, ∂W_l = a_lᵀ δ_l,
        δ_{l−1} = (δ_l W_lᵀ) ⊙ (1 − a_l²) for a tanh layer."""
        acts = self.activations(x)
        delta = loss.grad(acts[-1], targets)
        gw: list[np.ndarray] = [np.empty(0)] * len(self.weights)
        gb: list[np.ndarray] = [np.empty(0)] * len(self.weights)
        for layer in range(len(self.weights) - 1, -1, -1):
            gw[layer] = acts[layer].T @ delta
            gb[layer] = delta.sum(axis=0)
            if layer:
                delta = (delta @ self.weights[layer].T) * (1.0 - acts[layer] ** 2)
        return gw, gb


def initial(sizes: list[int], rng: np.random.Generator) -> MLP:
    """Glorot-uniform weights (tanh layers), zero biases; the output layer starts small, so an untrained
    encoder predicts about the targets' mean."""
    weights, biases = [], []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        bound = np.sqrt(6.0 / (a + b)) * (0.1 if i == len(sizes) - 2 else 1.0)
        weights.append(rng.uniform(-bound, bound, size=(a, b)))
        biases.append(np.zeros(b))
    return MLP(tuple(weights), tuple(biases))


@dataclass
class Adam:
    """Adam (Kingma & Ba 2015) over a network's weights and biases, its moments kept between calls."""

    rate: float = 1e-2
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    decay: float = 1e-5          # L2 on the weights (not the biases): keeps a row the data never saw bounded
    steps: int = 0
    m: list[np.ndarray] | None = None
    v: list[np.ndarray] | None = None

    def fit(self, net: Any, x: np.ndarray, targets: np.ndarray, loss: Loss, *, epochs: int, batch: int,
            rng: np.random.Generator) -> tuple[Any, float]:
        """``epochs`` passes over the rows in shuffled minibatches; the trained network (an MLP or a LISTA: any
        network with ``weights``, ``biases``, ``gradients`` and ``rebuilt``) and the final loss on
        all rows."""
        params = [*(w.copy() for w in net.weights), *(b.copy() for b in net.biases)]
        if self.m is None:
            self.m = [np.zeros_like(p) for p in params]
            self.v = [np.zeros_like(p) for p in params]
        layers = len(net.weights)
        n = x.shape[0]
        batch = max(1, min(batch, n))
        for _ in range(epochs):
            order = rng.permutation(n)
            for lo in range(0, n, batch):
                rows = order[lo:lo + batch]
                current = net.rebuilt(tuple(params[:layers]), tuple(params[layers:]))
                gw, gb = current.gradients(x[rows], targets[rows], loss)
                self.steps += 1
                c1, c2 = 1 - self.beta1 ** self.steps, 1 - self.beta2 ** self.steps
                for i, g in enumerate([*gw, *gb]):
                    if i < layers:
                        g = g + self.decay * params[i]
                    self.m[i] = self.beta1 * self.m[i] + (1 - self.beta1) * g
                    self.v[i] = self.beta2 * self.v[i] + (1 - self.beta2) * g * g
                    params[i] -= self.rate * (self.m[i] / c1) / (np.sqrt(self.v[i] / c2) + self.eps)
        trained = net.rebuilt(tuple(params[:layers]), tuple(params[layers:]))
        return trained, loss.value(trained(x), targets)
