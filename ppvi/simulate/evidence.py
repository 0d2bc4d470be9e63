"""log p(v) by importance sampling with q as the proposal (the seed's 19.4.4: how far the ELBO is from it).

With draws h_s ~ q and weights w_s = p(v, h_s) / q(h_s),

    L_S = log (1/S) Σ_s w_s

is the S-sample bound: E[L_1] is the ELBO, E[L_S] grows with S to log p(v)
(Burda, Grosse & Salakhutdinov 2016).  Its standard error is the delta method's,
sd(w) / (√S mean(w)), computed from weights scaled by the largest (log space);
Pareto k̂ (:mod:`.pareto`) says whether that error can be believed.  Per data
point (models whose latents are all local: mixtures by EM, binary sparse coding),
q factorises over the data, so each point has its own small sampler and
log p(v) = Σ_n log p(v_n) is estimated far more precisely than by joint weights.

On new data (``result.evidence(S, data=new)``) the local q is fitted with the globals held, as ``predict``
does, and is the proposal of the local latents; the globals are drawn from their q, which stands in for
p(g | v).  The estimate is of log E_q(g)[p(v_new | g)] — log p(v_new | v) when q(g) is the posterior, and
log p(v_new; θ) exactly when the globals are params — and the bound it is compared with is the held-out
ELBO Σ_u s_u of ``result.score`` (ppvi.infer.given).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from ppvi.errors import Diagnostic, PPVIError, PPVIWarning, Reporter
from ppvi.families.registry import unit_of
from ppvi.io import joint_chain
from ppvi.io.results import ELBO_LOG_Z
from ppvi.io.draws import seed_of, whole
from ppvi.result import Result
from ppvi.simulate import pareto
from ppvi.simulate.density import log_density
from ppvi.simulate.inputs import Setting, from_result
from ppvi.simulate.joint import log_joint, log_joint_per_datum, outside_plate
from ppvi.simulate.values import Values

DRAW_ENTRIES = 1 << 23          # numbers of q's draws held at once (64 MiB)


@dataclass(frozen=True)
class Evidence:
    """What :func:`evidence` estimates; ``per_datum`` maps log_evidence, stderr, khat to arrays over the data
    plate's points; ``seconds`` is the time taken by the weights."""

    elbo: float
    log_evidence: float
    stderr: float
    gap: float
    khat: float
    samples: int
    per_datum: dict[str, np.ndarray] | None = None
    seconds: float = field(default=0.0, compare=False)

    def to_dict(self) -> dict:
        """The JSON of ``ppvi evidence`` (docs/simulate.md, "ppvi evidence": its keys)."""
        out = {"elbo": self.elbo, "log_evidence": self.log_evidence, "stderr": self.stderr, "gap": self.gap,
               "khat": self.khat, "samples": self.samples}
        if self.per_datum is not None:
            out["per_datum"] = {k: v.tolist() for k, v in self.per_datum.items()}
        return out


class Weights:
    """Running statistics of log weights, one column per estimate (one, or one per data point), fed in chunks
    of draws: what the estimate, its error and k̂ need, in memory that does not grow with S × columns.

    Per column: the largest log weight c, the mean and the sum of squared deviations of w e^{−c} (merged
    chunk by chunk as Chan, Golub & LeVeque's pairwise update; rescaled when c grows), the smallest log
    weight, and the M + 1 largest for k̂ (M from :func:`ppvi.simulate.pareto.tail_length` of the S asked for).
    """

    def __init__(self, samples: int, columns: int):
        self.keep = min(samples, pareto.tail_length(samples) + 1)
        self.n = 0
        self.top = np.full(columns, -math.inf)
        self.shift = np.zeros(columns)           # c, or 0 while every weight is 0
        self.mean = np.zeros(columns)
        self.m2 = np.zeros(columns)
        self.smallest = np.full(columns, math.inf)
        self.largest = np.empty((0, columns))
        self.nan = np.zeros(columns, dtype=bool)

    def add(self, lw: np.ndarray) -> None:
        """A chunk of log weights, ``(draws, columns)``."""
        self.nan |= np.isnan(lw).any(axis=0)
        top = np.maximum(self.top, lw.max(axis=0))
        shift = np.where(np.isfinite(top), top, 0.0)     # (a column of zero weights so far: any scale will do)
        with np.errstate(over="ignore"):                 # (overflow only where there is no mass to rescale)
            old = np.where(self.mean > 0, np.exp(self.shift - shift), 0.0)
        scaled = np.exp(lw - shift)
        mean, m2 = self.mean * old, self.m2 * old ** 2
        n_b = lw.shape[0]
        mean_b = scaled.mean(axis=0)
        m2_b = ((scaled - mean_b) ** 2).sum(axis=0)
        n = self.n + n_b
        delta = mean_b - mean
        self.mean = mean + delta * n_b / n
        self.m2 = m2 + m2_b + delta ** 2 * self.n * n_b / n
        self.n, self.top, self.shift = n, top, shift
        self.smallest = np.minimum(self.smallest, lw.min(axis=0))
        both = np.concatenate([self.largest, lw])
        self.largest = np.partition(both, both.shape[0] - self.keep, axis=0)[-self.keep:] \
            if both.shape[0] > self.keep else both

    def estimate(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """log-mean-exp of the weights, its delta-method standard error sd(w) / (√S mean w), and k̂, per column."""
        with np.errstate(divide="ignore", invalid="ignore"):
            log_mean = self.shift + np.log(self.mean)
            sd = np.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else np.full(self.mean.shape, math.inf)
            stderr = sd / (math.sqrt(self.n) * self.mean)
        k = np.where(self.nan, math.nan, pareto.khats_of_largest(self.largest, self.smallest, self.n))
        return log_mean, stderr, k


def evidence(result: Result, samples: int, per_datum: bool = False, seed: int | None = None,
             data: object = None, where: str = "evidence") -> Evidence:
    """Importance-sampled log p(v) of the data ``result`` was fitted to, with ``samples`` draws from its q; of
    other ``data``, log E_q(g)[p(v_new | g)] with their local q fitted under the held globals (:func:`held_out`),
    ``elbo`` then the held-out bound Σ_u s_u of ``result.score``."""
    samples = whole(where, "samples", samples, 1)
    if not isinstance(per_datum, bool):
        raise PPVIError(Diagnostic(f"per_datum={per_datum!r}: per_datum is True or False", where))
    rng = seed_of(where, seed)
    point = [name for name, q in result.q.items() if q.family == "point"]
    if point:
        raise PPVIError(Diagnostic(f"`{point[0]}` has a point q (MAP): q has no density there, so it cannot be "
                                   "an importance sampler's proposal", where,
                                   hint="the evidence is estimated for mean-field fits"))
    if result.objective == ELBO_LOG_Z:
        raise PPVIError(Diagnostic("the model has `factor` energy terms: p̃ is known only up to its normaliser Z, "
                                   "so there is no log p(v) to estimate by importance sampling", where,
                                   hint="the fit's `elbo` is a lower bound on log Z itself; for a small model, "
                                        "log Z is a sum over every state"))
    held: frozenset[str] = frozenset()
    bound = float(result.elbo)
    if data is not None and not same_data(result, data):
        result, held, bound = held_out(result, data, where)
    setting = from_result(result, data, where, observed=True)
    _no_joint_chain(setting.model, result)
    plate = _data_plate(setting, where) if per_datum else None
    start = time.perf_counter()
    chunk = max(1, DRAW_ENTRIES // max(1, sum(math.prod(setting.shape(n)) for n in result.q)))
    weights = Weights(samples, 1 if plate is None else setting.sizes[plate])
    for first in range(0, samples, chunk):
        lw = _log_weights(setting, result, min(chunk, samples - first), rng, plate, held)
        weights.add(lw.reshape(lw.shape[0], -1))
    each, each_se, ks = weights.estimate()
    seconds = time.perf_counter() - start
    if plate is None:
        log_p, stderr, k, per = float(each[0]), float(each_se[0]), float(ks[0]), None
    else:
        log_p, stderr, k = float(each.sum()), float(np.sqrt((each_se ** 2).sum())), float(ks.max())
        per = {"log_evidence": each, "stderr": each_se, "khat": ks}
    if k > pareto.LIMIT:
        warnings.warn(PPVIWarning(Diagnostic(
            f"Pareto k̂ = {k:.2f} > {pareto.LIMIT}: the importance weights have a heavy tail, so the estimate of "
            "log p(v) and its standard error are not reliable", where, severity="warning",
            hint="q misses mass of the posterior; more samples help little")), stacklevel=3)
    return Evidence(bound, log_p, stderr, log_p - bound, k, samples, per, seconds)


def _no_joint_chain(model, result: Result) -> None:
    """A chain approximated jointly whose result keeps its q's marginals only (a file written before the pairs
    were kept, or a q made by hand): draws from them are not draws from q (they drop its correlations along
    the chain), and their log density is not q's."""
    for name, chain in model.chains.items():
        q = result.q.get(name)
        if model.approximations.get(name) == "jointly" and chain.body is not None and q is not None \
                and q.lag_one is None:
            raise Reporter(model.path, model.text).fail(
                f"q of `{name}` is one block over its chain, and the result keeps only its marginals (not its "
                "pairs or lag-one covariances): draws from them are not draws from q, so they cannot be the "
                "importance sampler's proposal", model.factors[chain.body].span,
                "fit the model again with this version of ppvi: its result keeps them")


def same_data(result: Result, data: object) -> bool:
    """Whether ``data`` hold the arrays ``result`` was fitted to (by value, or by the SHA-256 its provenance
    keeps)."""
    from ppvi.io.results import observed, sha256_of_arrays, sha256_of_file

    try:
        given, _ = observed(result, data)
    except PPVIError:           # (other sizes: other data; a mistake in them is the prediction's to report)
        return False
    own, _ = observed(result)
    if own is not None:
        return own.keys() == given.keys() and all(np.array_equal(own[k], given[k]) for k in own)
    p = result.provenance
    return p is not None and (sha256_of_arrays(given) == p.data_sha256 or (
        isinstance(data, (str, os.PathLike)) and sha256_of_file(os.fspath(data)) == p.data_sha256))


def held_out(result: Result, data: object, where: str) -> tuple[Result, frozenset[str], float]:
    """New data: their local q fitted with ``result``'s globals held (``result.predict``), the held latents, and
    the held-out bound Σ_u s_u (``result.score``).  The target is then log E_q(g)[p(v_new | g)], with q(g) in
    place of p(g | v): draws (g, h) ~ q(g) q(h), weights p(v_new, h | g) / q(h)."""
    from ppvi.api import _prediction
    from ppvi.infer.given import predict

    given, sizes = _prediction(result, refine=None, seed=0, max_iter=1000, tol=1e-8, progress=False, dims=None)
    new, scores = predict(given, data, dims=sizes, seed=0, max_iter=1000, tol=1e-8, refine=None, scored=True,
                          where=where)
    # (the prediction carries the held q over as they were; a local q fitted to other data is another q)
    held = frozenset(name for name, q in new.q.items() if name in result.q and result.q[name] == q)
    return new, held, float(np.sum(scores))


def _data_plate(setting: Setting, where: str) -> str:
    """The plate of the data points, when every statement lies in it (so q and p factorise over it) and no
    chain runs along it (a chain's sequences are points: each is its own chain, its q one block)."""
    from ppvi.graph.factor_graph import build

    model = setting.model
    plate = build(model).data_plate
    chain = next((c for c in model.chains.values() if c.dim == plate and c.body is not None), None)
    if chain is not None:
        # (its first elements lie outside the plate too, but that is not why)
        raise Reporter(model.path, model.text).fail(
            f"the evidence per data point needs the points independent, and `{chain.name}` is a chain along them "
            f"(`{plate}`): p does not factorise over its elements", model.factors[chain.body].span,
            "per-datum evidence of a chain model is per sequence: write several sequences, "
            f"`{chain.name}[s, t]` in `for s in S:`, and each is a data point")
    outside = outside_plate(model, plate) if plate is not None else model.factors[0]
    if outside is not None:
        raise Reporter(model.path, model.text).fail(
            f"the evidence per data point needs every latent inside the data plate; `{outside.target}` is not",
            outside.span, "per-datum evidence is for models whose globals are params (EM mixtures, binary sparse "
                          "coding)")
    return plate


def _log_weights(setting: Setting, result: Result, n: int, rng: np.random.Generator,
                 plate: str | None, held: frozenset[str] = frozenset()) -> np.ndarray:
    """log p(v, h_s) − log q(h_s) for n draws h_s ~ q: ``(n,)``, or ``(n, points)`` per point of ``plate``.
    The ``held`` latents (new data: the globals, :func:`held_out`) are drawn from q but weigh nothing: their
    prior and their q cancel."""
    # (a logistic link's Pólya-Gamma weight is integrated out exactly, in the joint and here)
    # (so is a Poisson sum's allocation: the sum's own law is the likelihood)
    result_q = {name: q for name, q in result.q.items()
                if not unit_of(q.family).auxiliary and name not in setting.model.allocations}
    draws = joint_chain.sample_all(result_q, n, rng)
    values = Values({**setting.fixed, **draws}, setting.sizes)
    if plate is None:
        lw = log_joint(setting.model, values, skip=held)
    else:
        lw = log_joint_per_datum(setting.model, values, plate)
    for name, q in result_q.items():
        if name in held:
            continue
        lq = joint_chain.paired(q, draws[name], draws)
        if lq is None:
            lq = (log_density(q.family, draws[name], dict(q.params)) if q.lag_one is None
                  else joint_chain.elements(q, draws[name]))
        if plate is None:
            lw -= lq.reshape(n, -1).sum(1)
        else:
            axis = 1 + list(setting.model.variables[name].shape).index(plate)
            lw -= lq.sum(axis=tuple(a for a in range(1, lq.ndim) if a != axis))
    return lw
