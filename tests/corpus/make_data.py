#!/usr/bin/env python
"""Regenerate the data files of the corpus models in tests/corpus/models/.

Run from anywhere:  python tests/corpus/make_data.py [STEM ...]   (all by default)

The same conventions as models/make_data.py, whose writers this uses:
synthetic data drawn from the model's own generative process with fixed
seeds and planted values (each generator returns (arrays, truth), the truth
for tests that check recovery), real data from the sets bundled with
scikit-learn, byte-for-byte reproducible files.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODELS = HERE / "models"


def _models_make_data():
    spec = importlib.util.spec_from_file_location("models_make_data", HERE.parents[1] / "models" / "make_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


examples = _models_make_data()     # models/make_data.py: its writers and the examples' generators
_md = examples
_standardise = _md._standardise


def _iris():
    from sklearn.datasets import load_iris

    return load_iris()


# --------------------------------------------------------------------------
# factor models
# --------------------------------------------------------------------------


def bayes_pca():
    # Bishop (1999)'s test: a 3-dimensional subspace in D = 10 (columns of
    # sd 3, 2, 1), isotropic noise sd 0.5, N = 300, mu = 0.
    rng = np.random.default_rng(1999)
    N, D, Q, noise_sd = 300, 10, 3, 0.5
    W = rng.standard_normal((D, Q)) * np.array([3.0, 2.0, 1.0])
    z = rng.standard_normal((N, Q))
    x = z @ W.T + noise_sd * rng.standard_normal((N, D))
    return {"x": x}, {"W": W, "z": z, "tau": 1.0 / noise_sd**2}


def factor_analysis():
    # scikit-learn's wine data, every column a z-score (population sd).
    from sklearn.datasets import load_wine

    d = load_wine()
    X = _standardise(d.data)
    names = [n.replace("/", "_") for n in d.feature_names]
    return {n: X[:, i] for i, n in enumerate(names)}, {"cultivar": d.target}


def ppca_em():
    # scikit-learn's iris measurements (150 x 4), every column a z-score.
    return {"x": _standardise(_iris().data)}, {}


def ppca_bayes():
    rng = np.random.default_rng(1999)
    N, D, M, noise_sd = 200, 8, 2, 0.3
    W = rng.standard_normal((D, M))
    z = rng.standard_normal((N, M))
    x = z @ W.T + noise_sd * rng.standard_normal((N, D))
    return {"x": x}, {"W": W, "z": z, "tau": 1.0 / noise_sd**2}


def fa_bayes():
    rng = np.random.default_rng(1982)
    N, D, M = 300, 10, 3
    W = rng.standard_normal((D, M))
    sd = np.linspace(0.2, 0.8, D)
    z = rng.standard_normal((N, M))
    x = z @ W.T + sd * rng.standard_normal((N, D))
    return {"x": x}, {"W": W, "z": z, "psi": 1.0 / sd**2}


def factor_scores():
    rng = np.random.default_rng(1937)
    N, D, K, tau = 200, 6, 2, 4.0
    W = rng.standard_normal((D, K))
    X = rng.standard_normal((N, K))
    y = X @ W.T + rng.standard_normal((N, D)) / np.sqrt(tau)
    return {"W": W, "y": y}, {"X": X, "tau": tau}


def vbmf():
    rng = np.random.default_rng(2007)
    U, I, K, R, noise_sd = 50, 40, 3, 1000, 0.5
    P = rng.standard_normal((U, K))
    Q = rng.standard_normal((I, K))
    cells = np.sort(rng.choice(U * I, size=R, replace=False))
    user, item = cells // I, cells % I
    rating = np.einsum("rk,rk->r", P[user], Q[item]) + noise_sd * rng.standard_normal(R)
    return {"user": user.astype(np.int64), "item": item.astype(np.int64), "rating": rating}, {
        "P": P, "Q": Q, "tau": 1 / noise_sd**2}


def mfa():
    # Two components, each a 2-D subspace of R^6 around its own mean.
    rng = np.random.default_rng(1996)
    N, D, M, K, noise_sd = 300, 6, 2, 2, 0.3
    mu = np.zeros((K, D))
    mu[0, 0], mu[1, 1] = -3.0, 3.0
    W = rng.standard_normal((K, D, M))
    z = rng.choice(K, size=N, p=[0.6, 0.4])
    h = rng.standard_normal((N, M))
    x = mu[z] + np.einsum("ndm,nm->nd", W[z], h) + noise_sd * rng.standard_normal((N, D))
    return {"x": x}, {"mu": mu, "W": W, "z": z, "psi": np.full(D, 1 / noise_sd**2)}


# --------------------------------------------------------------------------
# hierarchical models
# --------------------------------------------------------------------------


def hier_normal():
    rng = np.random.default_rng(1981)
    J, N = 12, 240
    theta = 5.0 + 2.0 * rng.standard_normal(J)
    group = np.sort(rng.choice(J, size=N, p=rng.dirichlet(np.full(J, 3.0))))
    y = theta[group] + rng.standard_normal(N)
    return {"group": group.astype(np.int64), "y": y}, {"theta": theta, "mu": 5.0, "sd_theta": 2.0, "sd_y": 1.0}


def normal_gamma_coupled():
    return {"sepal_width": _iris().data[:, 1]}, {}


def hier_gamma_poisson():
    # Gaver & O'Muircheartaigh (1987): failures of 10 pumps and their
    # operating times in thousands of hours.
    x = np.array([5, 1, 5, 14, 3, 19, 1, 1, 4, 22], dtype=np.int64)
    t = np.array([94.32, 15.72, 62.88, 125.76, 5.24, 31.44, 1.048, 1.048, 2.096, 10.48])
    return {"x": x, "t": t}, {}


def beta_bernoulli_groups():
    rng = np.random.default_rng(1987)
    J, N = 15, 300
    theta = rng.beta(1.5, 6.0, J)
    group = np.sort(rng.choice(J, size=N))
    y = (rng.random(N) < theta[group]).astype(np.int64)
    return {"group": group.astype(np.int64), "y": y}, {"theta": theta}


# --------------------------------------------------------------------------
# mixtures
# --------------------------------------------------------------------------


def tied_gmm():
    d = _iris()
    names = [n.replace(" (cm)", "").replace(" ", "_") for n in d.feature_names]
    return {n: d.data[:, i] for i, n in enumerate(names)}, {"species": d.target}


def diag_gmm():
    from sklearn.datasets import load_wine

    d = load_wine()
    X = _standardise(d.data)
    return {n.replace("/", "_"): X[:, i] for i, n in enumerate(d.feature_names)}, {"cultivar": d.target}


def poisson_mixture():
    rng = np.random.default_rng(2000)
    weights, rates = np.array([0.5, 0.3, 0.2]), np.array([2.0, 10.0, 25.0])
    z = rng.choice(3, size=300, p=weights)
    return {"counts": rng.poisson(rates[z]).astype(np.int64)}, {"weights": weights, "rates": rates, "z": z}


def categorical_mixture():
    rng = np.random.default_rng(1974)
    N, D, K, V = 400, 8, 3, 4
    weights = np.array([0.45, 0.35, 0.2])
    theta = rng.dirichlet(np.full(V, 0.5), size=(K, D))
    z = rng.choice(K, size=N, p=weights)
    u = rng.random((N, D, 1))
    answers = (u > np.cumsum(theta[z], axis=-1)).sum(-1)
    return {"answers": answers.astype(np.int64)}, {"weights": weights, "theta": theta, "z": z}


def sbm():
    rng = np.random.default_rng(2001)
    sizes = [25, 20, 15]
    z = np.repeat(np.arange(3), sizes)
    eta = np.full((3, 3), 0.05) + 0.45 * np.eye(3)
    A = (rng.random((60, 60)) < eta[z][:, z]).astype(np.int64)
    return {"A": A}, {"z": z, "eta": eta}


def semi_supervised():
    d = _iris()
    rng = np.random.default_rng(2000)
    lab = np.sort(np.concatenate([rng.choice(np.flatnonzero(d.target == k), 5, replace=False) for k in range(3)]))
    unl = np.setdiff1d(np.arange(150), lab)
    return {"x_lab": d.data[lab], "y_lab": d.target[lab].astype(np.int64), "x_unl": d.data[unl]}, {
        "y_unl": d.target[unl]}


def unit_variance_gmm():
    rng = np.random.default_rng(2017)
    mu = 5.0 * rng.standard_normal(4)
    c = rng.choice(4, size=500)
    return {"x": mu[c] + rng.standard_normal(500)}, {"mu": mu, "c": c}


def gmm_normal_gamma():
    rng = np.random.default_rng(1006)
    weights, means, sds = np.array([0.5, 0.3, 0.2]), np.array([-4.0, 0.0, 5.0]), np.array([1.0, 0.5, 2.0])
    z = rng.choice(3, size=300, p=weights)
    return {"x": means[z] + sds[z] * rng.standard_normal(300)}, {"weights": weights, "means": means, "sds": sds,
                                                                  "z": z}


def naive_bayes():
    pixels, labels = _md._digits_subset(300, seed=1)
    return {"label": labels.astype(np.int64), "x": (pixels >= 8).astype(np.int64)}, {}


def mixture_of_unigrams():
    rng = np.random.default_rng(2000)
    M, V, K = 60, 30, 3
    pi = np.array([0.5, 0.3, 0.2])
    phi = rng.dirichlet(np.full(V, 0.2), size=K)
    z = rng.choice(K, size=M, p=pi)
    lengths = 20 + rng.poisson(20, size=M)
    doc = np.repeat(np.arange(M), lengths)
    word = np.array([rng.choice(V, p=phi[z[d]]) for d in doc])
    return {"doc": doc.astype(np.int64), "word": word.astype(np.int64)}, {"pi": pi, "phi": phi, "z": z}


# --------------------------------------------------------------------------
# regression
# --------------------------------------------------------------------------


def mixture_of_regressions():
    # Three lines over x uniform on [-3, 3].
    rng = np.random.default_rng(1991)
    N = 240
    weights = np.array([0.4, 0.35, 0.25])
    w = np.array([[2.0, 1.5], [-1.0, -1.0], [-4.0, 0.5]])
    sd = np.array([0.3, 0.5, 0.4])
    z = rng.choice(3, size=N, p=weights)
    x = rng.uniform(-3.0, 3.0, N)
    X = np.column_stack([np.ones(N), x])
    y = np.einsum("nd,nd->n", X, w[z]) + sd[z] * rng.standard_normal(N)
    return {"X": X, "y": y}, {"w": w, "sd": sd, "weights": weights, "z": z}


def blr_known_noise():
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    return {"X": _standardise(d.data), "y": _standardise(d.target[:, None])[:, 0]}, {}


def vlr():
    from sklearn.datasets import load_linnerud

    d = load_linnerud()
    X = _standardise(d.data)
    cols = {"x0": np.ones(len(X))}
    cols.update({n: X[:, i] for i, n in enumerate(d.feature_names)})
    return {"X": np.column_stack(list(cols.values())), "y": _standardise(d.target[:, :1])[:, 0]}, {
        "columns": list(cols)}


def blr_data_prior():
    # PRML 3.3.1: the first half's posterior (w ~ N(0, I), beta = 2) is the second half's prior.
    X, y = blr_known_noise()[0].values()
    half = len(y) // 2
    A = np.eye(X.shape[1]) + 2.0 * X[:half].T @ X[:half]
    m0 = 2.0 * np.linalg.solve(A, X[:half].T @ y[:half])
    return {"m0": m0, "P0": A, "X": X[half:], "y": y[half:]}, {}


def wishart_precision():
    d = _iris()
    x = d.data[d.target == 0]
    D = x.shape[1]
    return {"mean": x.mean(0), "nu0": D + 2.0, "W0": np.eye(D) / (D + 2.0), "x": x}, {}


# stem -> (generator, file format)
GENERATORS = {
    "bayes_pca": (bayes_pca, "npz"),
    "factor_analysis": (factor_analysis, "csv"),
    "ppca_em": (ppca_em, "npz"),
    "ppca_bayes": (ppca_bayes, "npz"),
    "fa_bayes": (fa_bayes, "npz"),
    "factor_scores": (factor_scores, "npz"),
    "vbmf": (vbmf, "npz"),
    "mfa": (mfa, "npz"),
    "hier_normal": (hier_normal, "csv"),
    "normal_gamma_coupled": (normal_gamma_coupled, "csv"),
    "hier_gamma_poisson": (hier_gamma_poisson, "json"),
    "beta_bernoulli_groups": (beta_bernoulli_groups, "csv"),
    "tied_gmm": (tied_gmm, "csv"),
    "diag_gmm": (diag_gmm, "csv"),
    "poisson_mixture": (poisson_mixture, "csv"),
    "categorical_mixture": (categorical_mixture, "npz"),
    "sbm": (sbm, "npz"),
    "semi_supervised": (semi_supervised, "npz"),
    "unit_variance_gmm": (unit_variance_gmm, "json"),
    "gmm_normal_gamma": (gmm_normal_gamma, "json"),
    "naive_bayes": (naive_bayes, "npz"),
    "mixture_of_unigrams": (mixture_of_unigrams, "npz"),
    "mixture_of_regressions": (mixture_of_regressions, "json"),
    "blr_known_noise": (blr_known_noise, "npz"),
    "vlr": (vlr, "json"),
    "blr_data_prior": (blr_data_prior, "npz"),
    "wishart_precision": (wishart_precision, "json"),
}


def main(argv: list[str] | None = None) -> None:
    examples.main(argv, GENERATORS, str(MODELS))


if __name__ == "__main__":
    main()
