"""An encoder: one data row v_n in, the parameters of the local q(h_n) out (the seed's 19.5, issue 19).

The input is every data variable in h's Markov blanket whose first axis is the data plate (the data the
factors of h read at n), each row flattened, concatenated and standardised with the training data's mean
and spread.  The output is the natural parameters of q(h_n) in the family the derivation chose, for every
element of h_n:

- Bernoulli: the logit η = log p − log(1 − p);
- Categorical: the logits η_k (p = softmax η);
- Normal: the precision-weighted mean η₁ = μτ and the log precision log τ (so τ > 0 whatever the network
  says), standardised;
- a point (MAP) latent: its value, standardised (a learned sparse-coding encoder, as PSD); or, with
  ``by lista(steps = T)``, the code of T + 1 learned shrinkage steps (:mod:`ppvi.amortise.lista`).

Any output is a valid q: an encoder's q is a start from which exact sweeps refine (``refine=k``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Mapping

import numpy as np

from ppvi.amortise.lista import LISTA
from ppvi.amortise.mlp import MLP, Loss
from ppvi.codegen.plan import ArrayNames
from ppvi.families.point import POINT
from ppvi.families.registry import UNITS, unit_of

# the q an encoder predicts: those whose unit names an output head (by name, as the messages list them)
FAMILIES = (*sorted(name for name, u in UNITS.items() if u.head), POINT.name)


@dataclass(frozen=True, eq=False)
class Encoder:
    """A trained encoder for the local latent ``latent`` (plain data: it saves with the result)."""

    latent: str
    family: str                    # of q(latent): one of FAMILIES
    inputs: tuple[str, ...]        # the data variables read, in order
    hidden: int
    layers: int
    x_mean: np.ndarray             # the inputs' standardisation
    x_scale: np.ndarray
    y_mean: np.ndarray             # the outputs' (Normal, point; 0 and 1 for logits)
    y_scale: np.ndarray
    net: MLP | LISTA
    sweeps: int                    # exact sweeps after the encoder that made its regression targets
    rounds: int
    gap: float                     # amortisation gap on the training data: ELBO refined to convergence − ELBO at the encoder
    training: str = "regression"   # or "sleep" (ppvi.amortise.train)
    method: str = "mlp"            # the network: an MLP, or "lista" (ppvi.amortise.lista; a point q)
    steps: int = 0                 # LISTA's shrinkage steps after the first
    trace: tuple[float, ...] = ()  # the gaps of its earlier refreshes during the fit, oldest first (`every = k`)

    def __eq__(self, other: object) -> bool:
        from ppvi.result import _same

        if type(other) is not type(self):
            return False
        mine, theirs = self.to_document(), other.to_document()
        return _same(mine, theirs)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        net = (f"LISTA, {self.steps + 1} shrinkage steps" if self.method == "lista"
               else f"{self.layers} × {self.hidden} tanh")
        return (f"Encoder(q({self.latent}): {self.family}; {len(self.inputs)} inputs {list(self.inputs)}, "
                f"{net}; gap {self.gap:.4g})")

    # ------------------------------------------------------------ use
    def features(self, state: Mapping[str, np.ndarray], units: int) -> np.ndarray:
        """The standardised input rows: [units, inputs]."""
        return (rows(state, self.inputs, units) - self.x_mean) / self.x_scale

    def outputs(self, state: Mapping[str, np.ndarray], units: int) -> np.ndarray:
        """The network's output for every unit, in natural parameters (unstandardised)."""
        return self.net(self.features(state, units)) * self.y_scale + self.y_mean

    def entry(self, state: Mapping[str, np.ndarray], shape: tuple[int, ...]) -> dict[str, Any]:
        """q(latent) for every unit as a start's entry (``ppvi.infer.warm``): the family and standard
        parameters, of the q arrays' ``shape`` (the units first)."""
        return standard(self.family, self.outputs(state, shape[0]), shape)

    # ------------------------------------------------------------ the file
    def to_document(self) -> dict[str, Any]:
        doc = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "net"}
        doc["inputs"] = list(self.inputs)
        doc["trace"] = np.asarray(self.trace, dtype=float)
        doc["weights"] = {str(i): w for i, w in enumerate(self.net.weights)}
        doc["biases"] = {str(i): b for i, b in enumerate(self.net.biases)}
        return doc


def rows(state: Mapping[str, np.ndarray], inputs: tuple[str, ...], units: int) -> np.ndarray:
    """The data rows: each input's array with its first axis the units, flattened after it, side by side."""
    return np.concatenate([np.asarray(state[ArrayNames.variable(name)], dtype=float).reshape(units, -1)
                           for name in inputs],
                          axis=1)


# ------------------------------------------------------------------ the families
def width(family: str, shape: tuple[int, ...]) -> int:
    """Outputs per unit: one per element of h_n (per category of a Categorical; two for a Normal)."""
    per = int(np.prod(shape[1:], dtype=np.int64))
    return 2 * per if unit_of(family).head == "gaussian" else per


def targets(family: str, state: Mapping[str, np.ndarray], latent: str, units: int) -> np.ndarray:
    """What the encoder regresses onto, read off the current (refined) q: probabilities for the
    discrete families (a cross-entropy loss), natural parameters (η₁ = μτ, log τ) for a Normal, the
    value for a point."""
    head = unit_of(family).head
    if head in ("sigmoid", "softmax"):
        return np.asarray(state[ArrayNames.qparam(latent, "p")], dtype=float).reshape(units, -1)
    if head == "value":
        return np.asarray(state[ArrayNames.variable(latent)], dtype=float).reshape(units, -1)
    mean = np.asarray(state[ArrayNames.qparam(latent, "mean")], dtype=float).reshape(units, -1)
    sd = np.asarray(state[ArrayNames.qparam(latent, "sd")], dtype=float).reshape(units, -1)
    return np.concatenate([mean / sd ** 2, -2.0 * np.log(sd)], axis=1)


def standard(family: str, out: np.ndarray, shape: tuple[int, ...]) -> dict[str, Any]:
    """Standard parameters of the q the outputs ``out`` [units, width] stand for."""
    head = unit_of(family).head
    if head == "sigmoid":
        return {"family": family, "p": _sigmoid(out).reshape(shape)}
    if head == "softmax":
        return {"family": family, "p": _softmax(out.reshape(shape)).reshape(shape)}
    if head == "value":
        return {"family": family, "value": out.reshape(shape)}
    half = out.shape[1] // 2
    log_tau = np.clip(out[:, half:], -700.0, 700.0)
    return {"family": family, "mean": (out[:, :half] * np.exp(-log_tau)).reshape(shape),
            "sd": np.exp(-0.5 * log_tau).reshape(shape)}


def loss_of(family: str, categories: int) -> Loss:
    """The regression loss of a family, averaged over rows: cross-entropy against the target probabilities
    for logits (∂ = σ(o) − p, softmax(o) − p), half the squared error otherwise (∂ = o − t)."""
    head = unit_of(family).head
    if head == "sigmoid":
        # −p log σ(o) − (1 − p) log σ(−o) = softplus(o) − p o
        return Loss(lambda o, p: float(np.sum(np.logaddexp(0.0, o) - p * o)) / len(o),
                    lambda o, p: (_sigmoid(o) - p) / len(o))
    if head == "softmax":
        def logits(o: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            z = o.reshape(len(o), -1, categories)
            return z, z - np.logaddexp.reduce(z, axis=-1, keepdims=True)

        def value(o: np.ndarray, p: np.ndarray) -> float:
            _, log_q = logits(o)
            return -float(np.sum(p.reshape(log_q.shape) * log_q)) / len(o)

        def grad(o: np.ndarray, p: np.ndarray) -> np.ndarray:
            _, log_q = logits(o)
            return ((np.exp(log_q) - p.reshape(log_q.shape)) / len(o)).reshape(o.shape)
        return Loss(value, grad)
    return Loss(lambda o, t: float(np.sum((o - t) ** 2)) / (2 * len(o)), lambda o, t: (o - t) / len(o))


def gaussian_loss(y_mean: np.ndarray, y_scale: np.ndarray) -> Loss:
    """−log q(h) averaged over rows, for a Normal q whose natural parameters are the outputs o of the network as
    (η₁, l) = o ⊙ ``y_scale`` + ``y_mean`` (τ = eˡ, μ = η₁/τ): ½ τ (h − μ)² − ½ l + ½ log 2π, with
    ∂/∂η₁ = μ − h and ∂/∂l = ½ τ (h² − μ²) − ½ (the sleep phase's loss against dreamed h)."""
    half = len(y_mean) // 2

    def natural(o: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out = o * y_scale + y_mean
        log_tau = np.clip(out[:, half:], -700.0, 700.0)
        tau = np.exp(log_tau)
        return out[:, :half] / tau, tau, log_tau

    def value(o: np.ndarray, h: np.ndarray) -> float:
        mu, tau, log_tau = natural(o)
        return float(np.sum(0.5 * tau * (h - mu) ** 2 - 0.5 * log_tau + 0.5 * math.log(2 * math.pi))) / len(o)

    def grad(o: np.ndarray, h: np.ndarray) -> np.ndarray:
        mu, tau, _ = natural(o)
        g = np.concatenate([mu - h, 0.5 * tau * (h ** 2 - mu ** 2) - 0.5], axis=1)
        return g * y_scale / len(o)
    return Loss(value, grad)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)
