"""LISTA, the learned iterative shrinkage-thresholding encoder of Gregor & LeCun (2010), for a MAP code.

ISTA minimises J(h) = β/2 ‖v − W h − b‖² + λ ‖h‖₁ (the seed's 19.16) by

    h ← shrink_θ(B v + c + S h),   B = Wᵀ / L,  c = −Wᵀ b / L,  S = I − Wᵀ W / L,  θ = λ / (β L),

with L = ‖W‖₂² and shrink_θ(u) = sign(u) max(|u| − θ, 0).  LISTA keeps that structure for T steps,
z₀ = shrink_θ(B v + c), z_t = shrink_θ(B v + c + S z_{t−1}), and learns B, c, S and θ (one per element)
by backpropagation through the T steps onto exact codes, starting from ISTA's values.

The starting values are read off the fit, not the model text: the dictionary W and offset b are the least
squares fit of the rows v_n on their exact codes h_n (the params the fit's M-step chose, when the model is
sparse coding), and λ/β from the codes' optimality conditions, Wᵀ(v − W h − b) = (λ/β) sign h on the
nonzero elements.  Everything is in the data's own units: the encoder's standardisations are the identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ppvi.amortise.mlp import Loss


def shrink(u: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Soft thresholding, the proximal map of θ‖·‖₁."""
    return np.sign(u) * np.maximum(np.abs(u) - theta, 0.0)


@dataclass(frozen=True, eq=False)
class LISTA:
    """z_T of T = ``steps`` learned ISTA steps; weights = (B [inputs, M], S [M, M]), biases = (c, θ) [M]
    (the layout :class:`ppvi.amortise.mlp.Adam` trains and a result file saves)."""

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    steps: int

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._forward(x)[1][-1]

    def rebuilt(self, weights: tuple[np.ndarray, ...], biases: tuple[np.ndarray, ...]) -> "LISTA":
        return LISTA(weights, biases, self.steps)

    def _forward(self, x: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The pre-activations u_0 … u_T and the codes z_0 … z_T."""
        (b, s), (c, theta) = self.weights, self.biases
        theta = np.maximum(theta, 0.0)
        drive = x @ b + c
        us, zs = [drive], [shrink(drive, theta)]
        for _ in range(self.steps):
            us.append(drive + zs[-1] @ s)
            zs.append(shrink(us[-1], theta))
        return us, zs

    def gradients(self, x: np.ndarray, targets: np.ndarray, loss: Loss) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Backpropagation through the T steps: with δ = ∂loss/∂z_t and g = δ ⊙ [|u_t| > θ],
        ∂S += z_{t−1}ᵀ g, ∂θ −= Σ sign(u_t) g, ∂(Bv + c) += g, and δ ← g Sᵀ for z_{t−1}."""
        (_, s), (_, theta) = self.weights, self.biases
        clipped = np.maximum(theta, 0.0)
        us, zs = self._forward(x)
        delta = loss.grad(zs[-1], targets)
        g_s = np.zeros_like(s)
        g_theta = np.zeros_like(theta)
        g_drive = np.zeros_like(us[0])
        for t in range(self.steps, -1, -1):
            g = delta * (np.abs(us[t]) > clipped)
            g_theta -= np.sum(np.sign(us[t]) * g, axis=0)
            g_drive += g
            if t:
                g_s += zs[t - 1].T @ g
                delta = g @ s.T
        g_theta = np.where(theta > 0, g_theta, np.minimum(g_theta, 0.0))     # (θ ≤ 0 acts as 0: only growth moves it)
        return [x.T @ g_drive, g_s], [g_drive.sum(axis=0), g_theta]


def from_codes(x: np.ndarray, codes: np.ndarray, steps: int) -> LISTA:
    """ISTA's network for the dictionary that the rows ``x`` [N, D] and their exact codes [N, M] imply
    (the module's docstring), as LISTA's starting point."""
    n, m = codes.shape
    design = np.concatenate([codes, np.ones((n, 1))], axis=1)
    ridge = 1e-8 * max(1.0, float(np.trace(design.T @ design))) / (m + 1)
    coef = np.linalg.solve(design.T @ design + ridge * np.eye(m + 1), design.T @ x)
    w, offset = coef[:m].T, coef[m]                                   # x ≈ W h + b: W [D, M]
    gram = w.T @ w
    lipschitz = max(float(np.linalg.eigvalsh(gram)[-1]), 1e-12)
    grad = (x - codes @ w.T - offset) @ w                             # Wᵀ(v − W h − b) per row
    on = np.abs(codes) > 1e-10 * max(1.0, float(np.abs(codes).max(initial=0.0)))
    ratio = float(np.mean(np.sign(codes[on]) * grad[on])) if on.any() else float(np.abs(grad).max(initial=0.0))
    theta = np.full(m, max(ratio, 0.0) / lipschitz)
    return LISTA((w / lipschitz, np.eye(m) - gram / lipschitz), (-(offset @ w) / lipschitz, theta), steps)
