"""What the corpus tests share: reading a case's data independently of ppvi, fitting it, and the
moments of the families (PRML appendix B) that the hand-written updates need."""

from __future__ import annotations

import csv
import json

import numpy as np
from scipy import special

import ppvi
from corpus.registry import Case


def data(c: Case) -> dict[str, np.ndarray]:
    """The case's data file read with NumPy and the csv module (not ppvi's reader)."""
    p = c.data_path
    if p.suffix == ".npz":
        with np.load(p) as f:
            return {k: f[k] for k in f.files}
    if p.suffix == ".json":
        return {k: np.asarray(v) for k, v in json.loads(p.read_text()).items()}
    with open(p, newline="") as fh:
        header, *rows = list(csv.reader(fh))
    cols = {}
    for j, name in enumerate(header):
        cells = [row[j] for row in rows]
        integral = all(c.lstrip("-").isdigit() for c in cells)
        cols[name] = np.array([int(c) for c in cells] if integral else [float(c) for c in cells])
    return cols


def columns(c: Case) -> np.ndarray:
    """A csv's numeric columns as one [N, D] matrix (the model's single 2-D data variable)."""
    return np.column_stack(list(data(c).values())).astype(float)


def fit(c: Case, data=None, **kw):
    """Fit past the ELBO tolerance (q itself settles) and check the sequential schedule never lowered it."""
    kw = {"tol": 1e-13, "max_iter": 5000, **kw}
    if c.dims:
        kw.setdefault("dims", c.dims)
    r = ppvi.load(str(c.model_path)).fit(data, **kw)
    trace = np.asarray(r.elbo_trace)
    assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:])), "the ELBO decreased"
    return r


def fitted(name: str, *statements: str, read=data, **kw):
    """The case, its fit and its data, after checking the model still says what the reference assumes."""
    from corpus.registry import case

    c = case(name)
    require(c, *statements)
    return c, fit(c, **kw), read(c)


def text(c: Case) -> str:
    return c.model_path.read_text()


def require(c: Case, *lines: str) -> None:
    """The hand-written reference assumes these statements; fail loudly if the model changed."""
    t = text(c)
    for line in lines:
        assert line in t, f"{c.name}: the reference assumes `{line}`"


# ---- moments under q (PRML appendix B)

def gamma_mean(q: dict) -> np.ndarray:
    return np.asarray(q["shape"]) / np.asarray(q["rate"])


def gamma_elog(q: dict) -> np.ndarray:
    return special.digamma(q["shape"]) - np.log(q["rate"])


def normal_m2(q: dict) -> np.ndarray:
    return np.asarray(q["mean"]) ** 2 + np.asarray(q["sd"]) ** 2


def dirichlet_elog(alpha: np.ndarray) -> np.ndarray:
    alpha = np.asarray(alpha)
    return special.digamma(alpha) - special.digamma(alpha.sum(-1, keepdims=True))


def beta_elog(q: dict) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(q["a"]), np.asarray(q["b"])
    return special.digamma(a) - special.digamma(a + b), special.digamma(b) - special.digamma(a + b)


def mvnormal_outer(q: dict) -> np.ndarray:
    m = np.asarray(q["mean"])
    return np.asarray(q["cov"]) + m[..., :, None] * m[..., None, :]


def wishart_mean(q: dict) -> np.ndarray:
    return np.asarray(q["df"])[..., None, None] * np.asarray(q["scale"])


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    return np.exp(logits - special.logsumexp(logits, axis=-1, keepdims=True))


def adjusted_rand(a, b) -> float:
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(a, b))


def principal_angle(A: np.ndarray, B: np.ndarray) -> float:
    """Largest principal angle (radians) between the column spans of A and B (Björck & Golub 1973)."""
    qa, _ = np.linalg.qr(A)
    qb, _ = np.linalg.qr(B)
    s = np.linalg.svd(qa.T @ qb, compute_uv=False)
    return float(np.arccos(np.clip(s.min(), -1.0, 1.0)))
