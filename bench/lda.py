"""LDA: held-out per-word bound against wall-clock, ppvi against scikit-learn and gensim (docs/scale.md, "LDA").

    PYTHONPATH=. python bench/lda.py --quick          # 2,000 training documents (a few minutes)
    PYTHONPATH=. python bench/lda.py                  # 100,000 training documents, read in chunks by ppvi

A corpus drawn from models/lda.ppvi's model (K topics φ_k ~ Dirichlet(η) over V words, θ_d ~ Dirichlet(α),
documents of 1 + Poisson(49) tokens), sorted by document, and held-out documents drawn alike.  Methods, all
with the model's α and η and K topics:

- ppvi batch CAVI, memoized VI (8 chunks) and stochastic VI (minibatches of 256 documents, ρ_t = (τ + t)^−κ,
  τ = 10, κ = 0.7) — in memory, or read from .npy files in chunks (``--chunk-size``);
- scikit-learn's ``LatentDirichletAllocation(learning_method="online")`` with the same minibatches and schedule
  (``learning_offset`` = τ, ``learning_decay`` = κ), fed by ``partial_fit``;
- gensim's ``LdaModel`` (online, ``chunksize`` 256, ``offset`` τ, ``decay`` κ; ``pip install "ppvi[bench]"``).

Each point is a fit of a given length (sweeps or passes; ppvi's fits are separate runs, each timed whole,
kernels compiled before), then its topics' variational Dirichlet λ (ppvi: q(φ)'s α; scikit-learn:
``components_``; gensim: ``state.get_lambda()``) scored by one held-out bound written here, the same for all:
each held-out document's q(θ_d) and q(z) fitted under the fixed E[log φ] = ψ(λ) − ψ(Σλ) (Blei et al.'s E-step
to a relative change of 1e-6 in γ), and the per-word ELBO of those documents (Hoffman et al. 2010, eq. 4
without the topics' term): Σ_d [E log p(w_d, z_d, θ_d | φ) − E log q(z_d, θ_d)] / Σ_d N_d, the sum over each
document's words taken at the optimal q(z), Σ_w n_dw log Σ_k exp(E log θ_dk + E log φ_kw).  The bound under
the true topics (E[log φ] = log φ) is printed for reference.  Documents per second: training documents times
passes over them, over the fit's seconds: wall, and the process's CPU (every thread's), the measure that holds
on a shared machine, where another process's load inflates wall time by what it takes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy import sparse
from scipy.special import digamma, gammaln, logsumexp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ppvi  # noqa: E402
from ppvi.api import SVI, Memoized  # noqa: E402

MODEL = Path(__file__).resolve().parents[1] / "models" / "lda.ppvi"
ALPHA, ETA = 0.5, 0.1         # models/lda.ppvi's
BATCH, TAU, KAPPA = 256, 10.0, 0.7


def draw(docs: int, topics: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``docs`` documents drawn from LDA under ``topics`` (K×V): long format (doc[t], word[t]), sorted by doc."""
    k, v = topics.shape
    lengths = 1 + rng.poisson(49, size=docs)
    doc = np.repeat(np.arange(docs), lengths)
    theta = rng.dirichlet(np.full(k, ALPHA), size=docs)
    z = (rng.random((len(doc), 1)) > np.cumsum(theta, axis=1)[doc]).sum(axis=1).clip(0, k - 1)
    word = np.empty(len(doc), dtype=np.int64)
    cdf = np.cumsum(topics, axis=1)
    for j in range(k):          # (by topic: a K×V cdf per token would not fit at the full size)
        at = np.flatnonzero(z == j)
        word[at] = np.searchsorted(cdf[j], rng.random(len(at)) * cdf[j, -1], side="right").clip(0, v - 1)
    return doc, word


def counts(doc: np.ndarray, word: np.ndarray, docs: int, words: int) -> sparse.csr_matrix:
    return sparse.csr_matrix((np.ones(len(doc)), (doc, word)), shape=(docs, words))


def heldout_bound(lam: np.ndarray, x: sparse.csr_matrix, alpha: float, tol: float = 1e-6,
                  max_iter: int = 500) -> float:
    """Per-word ELBO of the documents ``x`` (D×V counts) under topics q(φ_k) = Dirichlet(λ_k), each document's
    q(θ_d) = Dirichlet(γ_d) fitted by coordinate ascent (the module's docstring)."""
    elog_phi = digamma(lam) - digamma(lam.sum(axis=1, keepdims=True))
    return _bound(elog_phi, x, alpha, tol, max_iter)


def _bound(elog_phi: np.ndarray, x: sparse.csr_matrix, alpha: float, tol: float, max_iter: int) -> float:
    k = elog_phi.shape[0]
    x = x.tocoo()
    d, w, n = x.row, x.col, x.data
    docs = x.shape[0]
    exp_phi = np.exp(elog_phi - elog_phi.max())          # (a common factor cancels in the responsibilities)
    gamma = np.full((docs, k), alpha + x.sum() / docs / k)
    for _ in range(max_iter):
        elog_theta = digamma(gamma) - digamma(gamma.sum(axis=1, keepdims=True))
        exp_theta = np.exp(elog_theta)
        norm = np.einsum("nk,kn->n", exp_theta[d], exp_phi[:, w])
        share = sparse.csr_matrix((n / norm, (d, w)), shape=x.shape) @ exp_phi.T
        new = alpha + exp_theta * share
        change = np.max(np.abs(new - gamma) / new)
        gamma = new
        if change < tol:
            break
    elog_theta = digamma(gamma) - digamma(gamma.sum(axis=1, keepdims=True))
    words = float(np.sum(n * logsumexp(elog_theta[d] + elog_phi[:, w].T, axis=1)))
    theta = float(np.sum((alpha - gamma) * elog_theta) + np.sum(gammaln(gamma)) - np.sum(gammaln(gamma.sum(axis=1)))
                  + docs * (gammaln(k * alpha) - k * gammaln(alpha)))
    return (words + theta) / float(n.sum())


def _now() -> np.ndarray:
    """(wall, CPU) seconds now; CPU is the process's, every thread's: on a shared machine the fairer measure."""
    return np.array([time.perf_counter(), time.process_time()])


def ppvi_runs(model, data, sweeps, algorithm, chunk_size, k, v):
    """((wall, CPU) seconds, λ, sweeps) of a ppvi fit of each number of sweeps."""
    for n in sweeps:
        began = _now()
        r = model.fit(data, max_iter=n, tol=0, progress=False, algorithm=algorithm, chunk_size=chunk_size, K=k, V=v,
                      seed=1)
        yield _now() - began, np.asarray(r.q["phi"]["alpha"]), n


def sklearn_runs(x, k, passes, seed=1):
    """scikit-learn's online LDA by partial_fit over minibatches of BATCH documents, checkpointed at ``passes``."""
    from sklearn.decomposition import LatentDirichletAllocation

    lda = LatentDirichletAllocation(n_components=k, doc_topic_prior=ALPHA, topic_word_prior=ETA,
                                    learning_method="online", learning_offset=TAU, learning_decay=KAPPA,
                                    batch_size=BATCH, total_samples=x.shape[0], random_state=seed)
    spent, done = np.zeros(2), 0
    for p in passes:
        began = _now()
        for _ in range(p - done):
            for a in range(0, x.shape[0], BATCH):
                lda.partial_fit(x[a:a + BATCH])
        spent += _now() - began
        done = p
        yield spent.copy(), lda.components_.copy(), p


def gensim_runs(x, k, passes, seed=1):
    """gensim's online LdaModel, one more pass at a time by ``update``, checkpointed at ``passes``."""
    from gensim.matutils import Sparse2Corpus
    from gensim.models import LdaModel

    corpus = list(Sparse2Corpus(x, documents_columns=False))
    id2word = {i: str(i) for i in range(x.shape[1])}
    spent, done, model = np.zeros(2), 0, None
    for p in passes:
        began = _now()
        for _ in range(p - done):
            if model is None:
                model = LdaModel(corpus, id2word=id2word, num_topics=k, alpha=np.full(k, ALPHA), eta=ETA,
                                 chunksize=BATCH, passes=1, update_every=1, offset=TAU, decay=KAPPA,
                                 eval_every=None, random_state=seed)
            else:
                model.update(corpus, chunksize=BATCH, passes=1, update_every=1, offset=TAU, decay=KAPPA,
                             eval_every=None)
        spent += _now() - began
        done = p
        yield spent.copy(), model.state.get_lambda().copy(), p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2,000 training documents (else 100,000)")
    ap.add_argument("--docs", type=int, help="training documents (overrides --quick)")
    ap.add_argument("--heldout", type=int, default=500)
    ap.add_argument("-K", type=int, default=10)
    ap.add_argument("-V", type=int, default=1000)
    ap.add_argument("--chunk-size", type=int, help="ppvi reads the corpus from .npy files in chunks of this many "
                                                    "documents (default: in memory for --quick, 4096 otherwise)")
    ap.add_argument("--dir", default="/tmp/ppvi-bench-lda", help="where the .npy corpus is written")
    ap.add_argument("--only", default="batch,memoized,svi,sklearn,gensim")
    ap.add_argument("--sweeps", help="ppvi batch and memoized fits' sweeps, e.g. 1,2,4 (default 1,2,4,8,16 with "
                                     "--quick, else 1,2,4,8)")
    ap.add_argument("--passes", help="the online methods' passes, e.g. 1,2 (default 1,2,4,8 with --quick, else 1,2,4)")
    args = ap.parse_args()
    docs = args.docs or (2000 if args.quick else 100_000)
    chunk = args.chunk_size if args.chunk_size or args.quick else 4096
    rng = np.random.default_rng(2003)
    topics = rng.dirichlet(np.full(args.V, ETA), size=args.K)
    doc, word = draw(docs, topics, rng)
    hdoc, hword = draw(args.heldout, topics, rng)
    x, held = counts(doc, word, docs, args.V), counts(hdoc, hword, args.heldout, args.V)
    data: object = {"doc": doc, "word": word}
    if chunk:
        os.makedirs(args.dir, exist_ok=True)
        np.save(os.path.join(args.dir, "doc.npy"), doc)
        np.save(os.path.join(args.dir, "word.npy"), word)
        data = args.dir
    print(f"# LDA bench: {docs:,} documents ({len(doc):,} tokens), K = {args.K}, V = {args.V}, held out "
          f"{args.heldout} documents ({len(hdoc):,} tokens); ppvi {'chunks of %d documents' % chunk if chunk else 'in memory'}"
          f"; load {os.getloadavg()[0]:.1f}")
    print(f"# true topics: held-out per-word bound {_bound(np.log(topics), held, ALPHA, 1e-6, 500):.4f}")
    model = ppvi.load(str(MODEL))
    small = {"doc": doc[:2000], "word": word[:2000]}
    for algo in (None, Memoized(2), SVI(batch=8, passes=1)):      # (kernels compiled before any timing)
        model.fit(small, max_iter=2, tol=0, progress=False, algorithm=algo, K=args.K, V=args.V)
    sweeps = [int(n) for n in args.sweeps.split(",")] if args.sweeps else [1, 2, 4, 8, 16] if args.quick else [1, 2, 4, 8]
    passes = [int(n) for n in args.passes.split(",")] if args.passes else [1, 2, 4, 8] if args.quick else [1, 2, 4]
    methods = {
        "ppvi batch": lambda: ppvi_runs(model, data, sweeps, None, chunk, args.K, args.V),
        "ppvi memoized": lambda: ppvi_runs(model, data, sweeps[:-1] or sweeps, Memoized(8), chunk, args.K, args.V),
        "ppvi svi": lambda: _svi(model, data, passes, chunk, args.K, args.V),
        "sklearn online": lambda: sklearn_runs(x, args.K, passes),
        "gensim online": lambda: gensim_runs(x, args.K, passes),
    }
    keys = {"batch": "ppvi batch", "memoized": "ppvi memoized", "svi": "ppvi svi", "sklearn": "sklearn online",
            "gensim": "gensim online"}
    print("method\tpasses\twall s\tCPU s\theld-out per-word bound\tdocuments/s\tdocuments/CPU-s")
    for key in args.only.split(","):
        name = keys[key]
        for (wall, cpu), lam, n in methods[name]():
            bound = heldout_bound(lam, held, ALPHA)
            print(f"{name}\t{n}\t{wall:.2f}\t{cpu:.2f}\t{bound:.4f}\t{docs * n / wall:,.0f}\t{docs * n / cpu:,.0f}",
                  flush=True)


def _svi(model, data, passes, chunk, k, v):
    """((wall, CPU) seconds, λ, passes) of a ppvi SVI fit of each number of passes."""
    for p in passes:
        settings = SVI(batch=BATCH, kappa=KAPPA, tau=TAU, passes=p, shuffle=True)
        began = _now()
        r = model.fit(data, algorithm=settings, progress=False, chunk_size=chunk, K=k, V=v, seed=1)
        yield _now() - began, np.asarray(r.q["phi"]["alpha"]), p


if __name__ == "__main__":
    main()
