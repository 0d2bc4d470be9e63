"""Reference solvers for the sparse-coding tests and bench/amortise.py.  Feature-sign search (Lee, Battle, Raina & Ng, "Efficient sparse coding algorithms", NIPS 2007): the exact
minimiser of ‖y − A x‖² + γ‖x‖₁, written here from the paper as the reference LISTA's codes are held to
(tests/amortise/test_lista.py, bench/amortise.py).

It guesses the signs of the nonzero coefficients (the active set), solves the quadratic that those signs make
of the objective in closed form, and line-searches from the current x to that solution, stopping at every
point where a coefficient crosses zero; a coefficient at zero whose gradient exceeds γ joins the active set.
"""

from __future__ import annotations

import numpy as np


def feature_sign(a: np.ndarray, y: np.ndarray, gamma: float, tol: float = 1e-10, max_steps: int = 1000,
                 target: float | None = None) -> np.ndarray:
    """argmin_x ‖y − A x‖² + γ‖x‖₁ for one y (A [D, M]); with ``target``, the first iterate whose objective
    ‖y − A x‖² + γ‖x‖₁ is at most ``target`` (bench/amortise.py: feature-sign stopped at LISTA's objective)."""
    yy = float(y @ y)
    gram, corr = a.T @ a, a.T @ y
    m = a.shape[1]
    x, theta = np.zeros(m), np.zeros(m)
    active = np.zeros(m, dtype=bool)

    def objective(v: np.ndarray) -> float:
        return float(v @ gram @ v - 2 * corr @ v + gamma * np.abs(v).sum())

    for _ in range(max_steps):
        grad = 2 * (gram @ x - corr)                       # of ‖y − A x‖² (up to ‖y‖²)
        zero = ~active
        if zero.any():                                     # step 2: activate the worst-violating zero
            i = int(np.argmax(np.where(zero, np.abs(grad), -np.inf)))
            if abs(grad[i]) > gamma + tol:
                theta[i], active[i] = -np.sign(grad[i]), True
        while True:                                        # steps 3–4: the feature-sign step until the
            idx = np.flatnonzero(active)                   # nonzero coefficients are optimal
            if idx.size == 0:
                break
            sub = gram[np.ix_(idx, idx)]
            new = np.linalg.solve(sub, corr[idx] - gamma * theta[idx] / 2)
            old = x[idx]
            # the points on the segment old → new where a coefficient changes sign, and new itself
            with np.errstate(divide="ignore", invalid="ignore"):
                cross = old / (old - new)
            stops = [1.0, *cross[(np.sign(new) != np.sign(old)) & (cross > 0) & (cross < 1)]]
            best, best_value = None, np.inf
            for s in stops:
                trial = x.copy()
                trial[idx] = old + s * (new - old)
                value = objective(trial)
                if value < best_value - 1e-15 * abs(value):
                    best, best_value = trial, value
            x = best
            x[np.abs(x) < 1e-14] = 0.0
            if target is not None and best_value + yy <= target:
                return x
            active = x != 0
            theta = np.sign(x)
            grad = 2 * (gram @ x - corr)
            if np.all(np.abs(grad[active] + gamma * theta[active]) <= tol * max(1.0, gamma)):
                break
        grad = 2 * (gram @ x - corr)
        if np.all(np.abs(grad[~active]) <= gamma + tol):
            return x
    raise RuntimeError("feature-sign search did not converge")


def codes(w: np.ndarray, b: np.ndarray, beta: float, lam: float, v: np.ndarray,
          targets: np.ndarray | None = None) -> np.ndarray:
    """The MAP codes of sparse coding, argmin_h β/2 ‖v − W h − b‖² + λ‖h‖₁ (19.16), row by row: feature-sign on
    ‖(v − b) − W h‖² + (2λ/β)‖h‖₁, the same objective divided by β/2; with ``targets`` (values of J per row),
    each row's first iterate at or below its target."""
    stop = [None] * len(v) if targets is None else 2 * np.asarray(targets) / beta
    return np.array([feature_sign(w, row - b, 2 * lam / beta, target=t) for row, t in zip(v, stop)])


def objective(w: np.ndarray, b: np.ndarray, beta: float, lam: float, v: np.ndarray, h: np.ndarray) -> np.ndarray:
    """J(h) = β/2 ‖v − W h − b‖² + λ‖h‖₁ of each row."""
    return 0.5 * beta * np.sum((v - h @ w.T - b) ** 2, axis=1) + lam * np.sum(np.abs(h), axis=1)


def digits(train: int, held: int, atoms: int = 32, seed: int = 0) -> tuple[np.ndarray, ...]:
    """scikit-learn's bundled digits in [0, 1], shuffled: a dictionary W [64, atoms] of centred digits (unit
    columns) from rows kept apart, the offset b (the training rows' mean), the training and held-out rows."""
    from sklearn.datasets import load_digits

    x = load_digits().data / 16.0
    order = np.random.default_rng(seed).permutation(len(x))
    rows, kept = x[order[:train]], x[order[train:train + held]]
    b = rows.mean(axis=0)
    w = (x[order[-atoms:]] - b).T
    return w / np.linalg.norm(w, axis=0), b, rows, kept


def ista(w: np.ndarray, b: np.ndarray, beta: float, lam: float, steps: int):
    """ISTA's own weights for the dictionary W, offset b, as a LISTA network (untrained) of ``steps`` + 1 steps."""
    from ppvi.amortise.lista import LISTA

    lipschitz = np.linalg.eigvalsh(w.T @ w)[-1]
    return LISTA((w / lipschitz, np.eye(w.shape[1]) - w.T @ w / lipschitz),
                 (-(b @ w) / lipschitz, np.full(w.shape[1], lam / beta / lipschitz)), steps)
