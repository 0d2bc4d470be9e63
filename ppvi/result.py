"""What a fit leaves: q of every latent, the params, the ELBO and where it all came from.

A :class:`Result` is plain data, the same whether it came from ``Model.fit`` or
from :func:`load_result`: it never needs the compiled model.  (A fit also keeps
its live :class:`ppvi.infer.cavi.Fit` in ``result.fit`` and the data it was
given in ``result.data``; neither is saved.)

>>> r = ppvi.load("models/gmm.ppvi").fit()                          # doctest: +SKIP
>>> r.q["mu"]["mean"], r.q["mu"].family, r.summary()                # doctest: +SKIP
>>> r.save("r.json"); ppvi.load_result("r.json") == r               # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Iterator

import numpy as np

from ppvi.io import posterior


def _same(a: Any, b: Any) -> bool:
    """Equality of plain data with arrays in it; NaN equals NaN."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and (np.array_equal(a, b, equal_nan=True) if a.dtype.kind in "fc"
                                       else np.array_equal(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _fields_equal(a: Any, b: Any) -> bool:
    return type(a) is type(b) and all(_same(getattr(a, f.name), getattr(b, f.name)) for f in fields(a) if f.compare)


@dataclass(frozen=True, eq=False)
class Q(Mapping):
    """q of one latent: its family and standard parameters (docs/cli.md), and the names of its axes.

    As a mapping it is the result file's entry: ``q["family"]``, ``q["mean"]`` (E_q[x]) and every standard
    parameter (``q["sd"]``, ``q["cov"]``, …).  ``axes`` names the axes of one value of the latent (its
    plates, then its event axes: ``("K", "D")`` for ``mu[k] ~ MvNormal``); ``categories`` is the dim a
    Categorical's values index.  ``missing`` marks, for data with missing entries (``data x : missing``),
    the entries q imputes; q of the others is a point mass at the datum (sd 0).  ``lag_one`` is what q of a
    chain approximated jointly (``approximate z jointly``) holds beyond its marginals: the pairwise marginals
    ξ[…, t, j, k] = q(z[…, t−1] = j, z[…, t] = k) of a Categorical chain (its axis the last before the
    categories), the lag-one covariances Cov(x[t−1], x[t]) [t, d, e] of a Gaussian chain (its axis the first);
    row t = 0 is unused.  q is then the Markov chain these give, not the product of the marginals
    (docs/simulate.md, "Draws from a chain").  ``pair`` names λ of a NormalGamma q(μ, λ) (``approximate mu,
    lam jointly``): q of μ reports the pair, q of λ its Gamma marginal, and draws of both are joint.
    """

    family: str
    params: Mapping[str, np.ndarray]
    axes: tuple[str, ...]
    categories: str | None = None
    missing: np.ndarray | None = None     # data with missing entries: True where the entry is a latent (imputed)
    lag_one: np.ndarray | None = None     # a chain approximated jointly: pairwise marginals / lag-one covariances
    pair: str | None = None               # a NormalGamma q(μ, λ): the latent λ (its q beside it is λ's marginal)

    def __getitem__(self, key: str) -> Any:
        if key == "family":
            return self.family
        if key == "mean":
            return self.mean
        return self.params[key]

    def __iter__(self) -> Iterator[str]:
        return iter(("family", "mean", *self.params))

    def __len__(self) -> int:
        return 2 + len(self.params)

    def __eq__(self, other: object) -> bool:
        return _fields_equal(self, other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}{list(np.shape(v))}" for k, v in self.params.items())
        return f"Q({self.family}: {shapes}; axes {list(self.axes)})"

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one value of the latent."""
        return posterior.value_shape(self.family, dict(self.params))

    @property
    def mean(self) -> np.ndarray:
        return posterior.mean(self.family, dict(self.params))

    @property
    def sd(self) -> np.ndarray | None:
        """The standard deviation of every entry (None for a Categorical); 0 at an observed entry of data with
        missing entries, a point mass (a count's q there has the datum as mean, not a point mass's parameters)."""
        var = posterior.variance(self.family, dict(self.params))
        if var is not None and self.missing is not None and np.shape(var) == np.shape(self.missing):
            var = np.where(self.missing, var, 0.0)
        return None if var is None else np.sqrt(var)


@dataclass(frozen=True, eq=False)
class Provenance:
    """Where a result came from, enough to run the fit again: versions, the model (its text and SHA-256),
    the data (its path, or None for Python objects, and SHA-256) and every option of the fit."""

    ppvi: str
    model_path: str | None
    model_text: str
    model_sha256: str
    data_path: str | None
    data_sha256: str
    seed: int
    dims: Mapping[str, int]
    tol: float
    max_iter: int
    damping: float | None
    restarts: int
    schedule: str                    # "sequential", or "parallel" (with damping)
    sweep: tuple[str, ...]           # the steps of a sweep, in order
    created: str                     # UTC, ISO 8601
    versions: Mapping[str, str] = field(default_factory=dict)     # python, numpy, numba
    given: Mapping[str, str | None] | None = None    # a prediction: the result whose globals it held (path, hashes)
    algorithm: Mapping[str, str | float | int | bool] | None = None   # memoized or stochastic VI: name, settings
    engine: Mapping[str, str | float | int | bool] | None = None      # the Dask engine: name, workers, scheduler

    def __eq__(self, other: object) -> bool:
        return _fields_equal(self, other)

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, eq=False)
class Result:
    """A fitted q.

    ``elbo`` is the final objective (``objective`` says which: ``"elbo"``; ``"log_joint"`` when a latent has
    a point q, a log joint and not a bound; ``"log_likelihood"`` for EM, where q is exact given the params;
    ``"elbo_log_z"`` for a model with energy terms, a lower bound on log Z and not on log p(v));
    ``elbo_trace`` its value after every sweep; ``iterations`` the sweeps run; ``seconds`` their time;
    ``converged`` whether the relative change fell below ``tol`` (not when it stopped at ``max_iter`` or was
    interrupted); ``warnings`` what the fit warned about (also issued as :class:`ppvi.PPVIWarning`).
    ``axes`` names the axes of every param and data variable (latents: ``q[name].axes``).  ``encoders``
    holds the encoder trained for each latent the model amortises (``amortise h by mlp(…)``; docs/amortise.md).
    ``labels`` maps a dim whose index data held labels (strings, a pandas Categorical) to its labels in code
    order: ``labels["J"][j]`` is what code j stands for (docs/language.md, "Labels").
    """

    model: str
    elbo: float
    elbo_trace: tuple[float, ...]
    iterations: int
    converged: bool
    q: Mapping[str, Q]
    params: Mapping[str, np.ndarray]
    axes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    objective: str = "elbo"
    interrupted: bool = False
    seconds: float = 0.0
    restart: int = 0
    warnings: tuple[str, ...] = ()
    provenance: Provenance | None = None
    encoders: Mapping[str, Any] = field(default_factory=dict)      # latent -> ppvi.amortise.Encoder (`amortise`)
    labels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)   # dim -> its labels in code order
    fit: Any = field(default=None, compare=False, repr=False)       # the live Fit (not saved)
    data: Mapping[str, np.ndarray] | None = field(default=None, compare=False, repr=False)   # (not saved)
    chains: tuple[Mapping[str, Q], ...] = field(default=(), compare=False, repr=False)   # every restart's q (not saved)
    chain_elbos: tuple[float, ...] = field(default=(), compare=False, repr=False)

    def __eq__(self, other: object) -> bool:
        return _fields_equal(self, other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        status = "converged" if self.converged else ("interrupted" if self.interrupted else "not converged")
        latents = ", ".join(f"{k}: {v.family}" for k, v in self.q.items())
        params = f", params [{', '.join(self.params)}]" if self.params else ""
        return (f"<ppvi.Result {self.model}: {self.objective} {self.elbo:.8g} after {self.iterations} "
                f"iterations ({status}); q {{{latents}}}{params}>")

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()

    # ------------------------------------------------------------ views
    def summary(self, p: float = 0.9, width: int | None = None, as_frame: bool = False):
        """A table of every q: mean, sd and the central ``p`` credible interval of each entry; a
        Categorical's component sizes and MAP label counts.  Its ``str`` is the text table (``width``
        columns; default the terminal's); ``.to_frame()`` is a pandas DataFrame, also given by
        ``as_frame=True``."""
        from ppvi.io.summary import summarise

        s = summarise(self, p=p, width=width)
        return s.to_frame() if as_frame else s

    def interval(self, p: float = 0.9) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The central ``p`` credible interval of every entry of every latent (not Categorical ones) and
        param (a point: the interval is the value)."""
        from ppvi.io.draws import interval

        return interval(self, p)

    def sample(self, n: int, seed: int | None = None, var_names=None) -> dict[str, np.ndarray]:
        """``n`` draws from q of every latent (or of ``var_names``): arrays with a leading draws axis."""
        from ppvi.io.draws import sample

        return sample(self, n, seed=seed, var_names=var_names)

    def log_q(self, draws: Mapping[str, np.ndarray]) -> np.ndarray:
        """log q of each draw (as :meth:`sample` returns them), summed over the latents drawn."""
        from ppvi.io.draws import log_q

        return log_q(self, draws)

    def to_arviz(self, draws: int = 1000, seed: int | None = 0, var_names=None, data=None):
        """ArviZ InferenceData: ``posterior`` (draws from q, dims named after the model's dims),
        ``variational`` (q's standard parameters and the params), ``observed_data``, ``sample_stats``
        (``log_q`` of each draw); attrs name the library, version, algorithm and ELBO.  Needs ArviZ
        (``pip install "ppvi[arviz]"``)."""
        from ppvi.io.export import to_arviz

        return to_arviz(self, draws=draws, seed=seed, var_names=var_names, data=data)

    def plot(self, var_names=None, data=None, path: str | None = None):
        """A matplotlib figure: the ELBO trace, the marginals of ``var_names`` (default: the global latents),
        and for a mixture of 2-D data the points coloured by label with each component's ellipse.  ``path``
        saves it.  Needs matplotlib (``pip install "ppvi[plot]"``)."""
        from ppvi.io.plot import plot

        return plot(self, var_names=var_names, data=data, path=path)

    # ------------------------------------------------------------ simulation and evidence (ppvi.simulate)
    def sample_predictive(self, draws: int, seed: int | None = None, data: object = None) -> dict[str, np.ndarray]:
        """``draws`` posterior predictive draws: every latent from q and, given it, every observed variable from
        the model (arrays with a leading draws axis).  Covariates from the fit's data (or ``data``)."""
        from ppvi.simulate.ancestral import sample_predictive

        return sample_predictive(self, draws, seed=seed, data=data)

    def evidence(self, samples: int, per_datum: bool = False, seed: int | None = None, data: object = None):
        """log p(v) of the fit's data by importance sampling with q as the proposal (19.4.4): ``.log_evidence``,
        ``.stderr``, ``.gap`` (log p̂ − ELBO), ``.khat`` (Pareto k̂; a warning above 0.7), ``.elbo``,
        ``.samples``; ``per_datum`` (models whose latents are all local): one sampler per data point.  Other
        ``data``: their local q fitted with the globals held (as :meth:`predict`) is the proposal, and the
        estimate is of log E_q(g)[p(v_new | g)] against the held-out bound of :meth:`score` (docs/simulate.md)."""
        from ppvi.simulate.evidence import evidence

        return evidence(self, samples, per_datum=per_datum, seed=seed, data=data)

    # ------------------------------------------------------------ new data (ppvi.infer.given)
    @property
    def predicted(self) -> bool:
        """Whether this is a prediction (``provenance.given`` names the result whose globals it held)."""
        return self.provenance is not None and self.provenance.given is not None

    def predict(self, data: object, refine: int | None = None, *, seed: int = 0, max_iter: int = 1000,
                tol: float = 1e-8, progress: object = None, dims: Mapping[str, int] | None = None) -> "Result":
        """The local q of new data with this result's global q and params held fixed (never updated): a
        Result with the held q, the new data's local q (a mixture's responsibilities, a document's topics),
        and the ELBO of the new data under the held globals.  Dims of the local latents' plates come from
        ``data``; every other dim, and hyperparameter data, must be the fit's.  ``refine``: None fits the
        local q to convergence (``tol``, ``max_iter``); an int k runs at most k sweeps after the start's
        E-step (0: the E-step alone, 0 iterations).  A model with no local latent has nothing to predict (PPVIError)."""
        from ppvi.api import predict

        return predict(self, data, refine=refine, seed=seed, max_iter=max_iter, tol=tol, progress=progress,
                       dims=dims)

    def score(self, data: object, *, seed: int = 0, max_iter: int = 1000, tol: float = 1e-8,
              dims: Mapping[str, int] | None = None) -> np.ndarray:
        """The held-out local ELBO of every unit of ``data`` (a point of the data plate; an LDA document):
        s_u = E_q[log p(x_u, h_u | g)] − E_q[log q(h_u)], with the local q fitted as :meth:`predict` does, the
        expectation over q(h_u) and this result's q(g) of the globals, the globals' prior and entropy
        terms left out.  ``.sum()`` is the total.  See ``ppvi.infer.given``."""
        from ppvi.api import score

        return score(self, data, seed=seed, max_iter=max_iter, tol=tol, dims=dims)

    def amortisation_gap(self, data: object, *, seed: int = 0, max_iter: int = 1000, tol: float = 1e-8,
                         dims: Mapping[str, int] | None = None) -> float:
        """The amortisation gap on new data: the ELBO of their local q refined to convergence from the
        encoders' q, minus the ELBO at the encoders' q (``predict(data).elbo − predict(data, refine=0).elbo``;
        ≥ 0, each sweep being exact).  A result without an encoder (no ``amortise`` statement) is a PPVIError."""
        from ppvi.api import amortisation_gap

        return amortisation_gap(self, data, seed=seed, max_iter=max_iter, tol=tol, dims=dims)

    # ------------------------------------------------------------ files
    def to_dict(self) -> dict:
        """The result file's content (docs/cli.md): plain dicts of arrays and numbers."""
        from ppvi.io.results import to_document

        return to_document(self)

    def to_json(self) -> str:
        from ppvi.io.results import to_json

        return to_json(self)

    def save(self, path: str) -> None:
        """Write ``.json`` or ``.npz`` (the extension chooses) atomically."""
        from ppvi.io.results import write

        write(path, self)


def load_result(path: str) -> Result:
    """A result file (``.json`` or ``.npz``) read back into the :class:`Result` that was saved."""
    from ppvi.io.results import load

    return load(path)
