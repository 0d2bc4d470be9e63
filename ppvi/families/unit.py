"""The host side of a family: what the engine and the reports know of it, in NumPy (docs/architecture.md,
"The family unit").

Each family's folder (``ppvi/families/<name>/``) holds its SymPy side (``symbolic.py``: T, η ↔ θ, A, moments,
entropy; what derive reads) and, in its ``__init__.py``, a ``Unit``: its metadata (standard parameter names,
event rank, the name of its Numba finish) and its numeric law (mean, variance, quantiles, draws, log density),
its initial q, its natural parameters from standard ones, its point mass at a datum and the check of given
parameters.  This module and the units import neither SymPy nor Numba: the warm path (a cached model's
``ppvi run``) reads them.

A q is given by its standard parameters (docs/cli.md), each an array over the latent's plates; the *value*
of a draw has the latent's shape: the plates, then the event axes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ppvi.codegen.plan import ArrayNames

__all__ = ["EPS", "EULER", "LOG_2PI", "Params", "TINY", "Unit", "digamma_half", "fill", "log_gamma_draws", "root"]

Params = dict[str, np.ndarray]
State = dict[str, np.ndarray]

# A Beta or Dirichlet draw stays inside (0, 1): an entry that is below the smallest normal float in exact
# arithmetic (α ≪ 1) is that float, so its log density is finite.
TINY = float(np.finfo(float).tiny)
EPS = float(np.finfo(float).epsneg)
EULER = 0.5772156649015329
LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class Unit:
    """One family's host side.  The defaults are those of a family with a scalar value whose standard
    parameters all have the value's shape; a family overrides what differs.  Its SymPy side is the class
    called ``name`` in the folder's ``symbolic.py`` (imported only by :func:`ppvi.families.family`)."""

    # what it is
    name: ClassVar[str]                         # the language's name; the ``family`` of a q in result files
    standard: ClassVar[tuple[str, ...]]         # standard parameters, in the q result schema's order
    finish: ClassVar[str | None] = None         # its Numba finish, in its folder's finish.py (η of one
                                                # element → q; registry.finish finds the module)
    q: ClassVar[bool] = True                    # a mean-field factor may take it
    event: ClassVar[int] = 0                    # event axes of its value
    shape_of: ClassVar[str]                     # the parameter whose shape is the value's
    expectation: ClassVar[tuple[str, ...]] = ("m", "x")   # the state array of E[x] (ArrayNames.owned's role, key)
    # what the reports and the start read
    discrete: ClassVar[bool] = False            # values are labels or counts
    labelled: ClassVar[bool] = False            # values are labels over a dim of categories (components)
    located: ClassVar[bool] = False             # its start may be a location (k-means++ centres, a prior draw)
    location: ClassVar[str | None] = None       # the argument that is its mean (a start seeds it)
    imputed: ClassVar[tuple[str, ...]] = ()     # parameters reported per imputed entry (after mean and sd)
    symmetric: ClassVar[bool] = False           # symmetric matrices (a precision): one triangle, E[x]⁻¹ shown
    proportions: ClassVar[bool] = False         # proportions on the last axis: a long row by its top entries
    # as a law of the language (simulation, the joint density, derive's special cases)
    vector: ClassVar[tuple[str, int]] = ("", 0)  # the argument with event axes, and their number
    auxiliary: ClassVar[bool] = False           # a weight integrated out: never drawn, adds 0 to log p
    logit: ClassVar[bool] = False               # ``p`` may be ``sigmoid(ψ)``, passed as ``logit`` ψ
    trials: ClassVar[str | None] = None         # the argument that is a count's total (data checked against it)
    given: ClassVar[str | None] = None          # a known argument q holds as its own parameter (trials, or none)
    exp_link: ClassVar[bool] = False            # its rate may be exp(ψ) (docs/language.md, "Exponential links")
    sparse: ClassVar[bool] = False              # an L1 prior: a MAP step is a soft threshold (19.16)
    shifted: ClassVar[bool] = False             # its data, and the scalar latents its mean adds, are read around
                                                # the data's mean (codegen.centre: data far from zero)
    # a chain approximated jointly: q keeps its neighbours' joint law (ppvi.result.Q.lag_one; docs/simulate.md)
    chained: ClassVar[bool] = False
    lag_one_of: ClassVar[str] = ""             # the parameter whose axes ``lag_one`` starts with
    # text and heads
    head: ClassVar[str | None] = None           # an amortised encoder's output head (docs/amortise.md)
    in_eta: ClassVar[Mapping[str, str]] = {}    # each standard parameter in terms of η, as ``ppvi derive`` prints

    # ------------------------------------------------------------ a location start (``located`` families)
    def spread(self, variance: float, shape: tuple[int, ...]) -> np.ndarray:
        """An isotropic spread of q's shape around a location (variances, or covariances)."""
        raise NotImplementedError(self.name)

    def located_at(self, s: State, v: str, mean: np.ndarray, spread: np.ndarray) -> None:
        """q(v) centred at ``mean`` with ``spread``, its moments and entropy too."""
        raise NotImplementedError(self.name)

    # ------------------------------------------------------------ a seeded start (``centred`` families)
    centred: ClassVar[bool] = False             # a component's probabilities: its start may be centred at a data row

    def centred_at(self, s: State, v: str, mean: np.ndarray, prior: Params) -> None:
        """q(v) the posterior of its prior (arguments ``prior``, broadcast to v) after as many pseudo-observations
        at ``mean`` as the prior's total concentration: centred near ``mean``, as broad as the prior allows."""
        raise NotImplementedError(self.name)

    # ------------------------------------------------------------ a chain's joint q (``chained`` families)
    def lag_one_shape(self, p: Params) -> tuple[int, ...] | None:
        """The shape of ``lag_one`` for a chain with parameters p (None: no chain has these parameters)."""
        raise NotImplementedError(self.name)

    def lag_one_axes(self, axes: tuple[str, ...]) -> tuple[str, ...]:
        """``lag_one``'s axes, from those of the parameter ``lag_one_of``."""
        return axes

    def chain_sample(self, p: Params, lag_one: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` joint draws of the chain (leading draws axis)."""
        raise NotImplementedError(self.name)

    def chain_elements(self, p: Params, lag_one: np.ndarray, x: np.ndarray) -> np.ndarray:
        """log q of each draw's elements, each given its neighbour: ``(draws, *plates)``."""
        raise NotImplementedError(self.name)

    # ------------------------------------------------------------ shapes
    def value_shape(self, p: Params) -> tuple[int, ...]:
        """The shape of one draw (its parameters conformed: ``ppvi.io.posterior.conform``)."""
        return np.shape(p[self.shape_of])

    def param_shapes(self, value: tuple[int, ...], categories: int = 0) -> dict[str, tuple[int, ...]]:
        """The shape of each standard parameter of a q whose value has shape ``value``."""
        return {name: value for name in self.standard}

    def categories(self, p: Params) -> int:
        """The number of categories of a q whose parameters carry them on an axis (0 if none do; a
        ValueError naming the parameter that should and does not)."""
        return 0

    def value_of(self, p: Params) -> tuple[int, ...]:
        """The value's shape read off parameters that may be broadcast (ValueError, IndexError if none)."""
        return np.broadcast_shapes(*(p[name].shape for name in self.standard))

    # ------------------------------------------------------------ the law
    def mean(self, p: Params) -> np.ndarray:
        """E_q[x]."""
        raise NotImplementedError(self.name)

    def variance(self, p: Params) -> np.ndarray | None:
        """Var_q of every entry of the value (None where values are labels)."""
        return None

    def quantile(self, p: Params, prob: float) -> np.ndarray | None:
        """The ``prob`` quantile of each entry's marginal (None where it has none worth computing)."""
        return None

    def sample(self, p: Params, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` independent draws, stacked on a leading axis."""
        raise NotImplementedError(self.name)

    def log_density(self, p: Params, x: np.ndarray) -> np.ndarray:
        """log q(x) of each draw in ``x`` (leading draws axis), entrywise (the caller sums)."""
        return np.zeros(x.shape[:1])

    def marginal(self, p: Params, index: tuple[int, ...]) -> Any:
        """The marginal of the entry at ``index`` as a frozen scipy.stats law (None where there is none)."""
        return None

    def covariance(self, p: Params) -> np.ndarray | None:
        """The covariance matrices of a vector-valued q (None for other values)."""
        return None

    # ------------------------------------------------------------ as a law of the language
    def draw(self, args: Params, plate_shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """One value for each draw and plate element, ``(*plate_shape, *event)``, given the language's
        arguments (each in the layout of the plates, its event axes last)."""
        return self.sample(self.full(args, plate_shape), 1, rng)[0]

    def full(self, args: Params, plate_shape: tuple[int, ...]) -> Params:
        """The arguments broadcast to one value per draw and plate element (event axes kept)."""
        return {k: full(v, plate_shape, self.vector[1] if k == self.vector[0] else 0) for k, v in args.items()}

    def log_p(self, x: np.ndarray, args: Params) -> np.ndarray:
        """log p(x | args) elementwise (event axes summed), the language's arguments by name; Γ never
        evaluated, 0 · log 0 = 0."""
        raise NotImplementedError(self.name)

    def prior_moments(self, args: Params) -> tuple[np.ndarray, np.ndarray] | None:
        """(E[x], Var[x]) entrywise (covariance matrices for a vector) under this family with the language's
        arguments ``args`` (docs/language.md), or None where the start needs none."""
        return None

    # ------------------------------------------------------------ the engine
    def natural(self, p: Params) -> Params:
        """η from the standard parameters (PRML appendix B), keyed as the SymPy side's statistics."""
        raise NotImplementedError(self.name)

    def natural_missing(self, p: Params, missing: np.ndarray) -> Params:
        """η of a q clamped at the observed entries of data with ``missing`` entries (``clamp``): as
        ``natural`` where the entries are independent."""
        return self.natural(p)

    def init(self, s: State, v: str, rng: np.random.Generator, info: Any) -> None:
        """q(v)'s broad start (drawn from ``rng`` where a symmetric start would never move), written into
        the zeroed state arrays ``info.state`` lists: its parameters, moments and entropy (the ELBO before
        q(v)'s first update reads them)."""
        raise NotImplementedError(self.name)

    def clamp(self, s: State, v: str, values: np.ndarray, missing: np.ndarray) -> None:
        """q(v) at the observed entries (not ``missing``) of data with missing entries ``values``: a point
        mass at the datum (its entropy 0).  Only the supports ``ppvi.language.check`` allows after
        ``: missing`` have one."""
        raise AssertionError(f"no point mass for a {self.name} q")

    def outside(self, p: Params) -> str | None:
        """Why given standard parameters lie outside the family's domain, or None."""
        for name in self.standard:
            if name in _POSITIVE and name in p and not np.all(p[name] > 0):
                return f"`{name}` must be > 0"
        return None


_POSITIVE = ("sd", "shape", "rate", "a", "b", "alpha")


# ---------------------------------------------------------------- shared by several units
def full(a: np.ndarray, plate_shape: tuple[int, ...], event: int) -> np.ndarray:
    """An argument broadcast to one value per draw and plate element (its ``event`` axes kept)."""
    a = np.asarray(a, dtype=float)
    return np.broadcast_to(a, plate_shape + (a.shape[a.ndim - event:] if event else ()))


def fill(s: State, v: str, values: Mapping[tuple[str, ...], Any]) -> None:
    """Set q(v)'s arrays, each named by role and key as ``ArrayNames.owned`` reads them."""
    for role, value in values.items():
        s[ArrayNames.owned(v, *role)][...] = value


def digamma_half(x: float) -> float:
    """ψ at a positive multiple of ½, exactly: ψ(n) = −γ + Σ_{k<n} 1/k, ψ(n + ½) = −γ − 2 log 2 + Σ_{k≤n} 2/(2k − 1).
    (The initial q only needs these; importing SciPy for them would cost more than a warm run.)"""
    n = int(x)
    if x == n:
        return -EULER + sum(1.0 / k for k in range(1, n))
    return -EULER - 2 * math.log(2) + sum(2.0 / (2 * k - 1) for k in range(1, n + 1))


def log_gamma_draws(alpha: np.ndarray, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """log G for G ~ Gamma(α, 1), exact for small α too: G = G' U^{1/α} with G' ~ Gamma(α + 1)
    (Marsaglia & Tsang 2000, §6), so log G never underflows."""
    return np.log(rng.gamma(alpha + 1.0, size=shape)) + np.log(rng.random(shape)) / alpha


def root(cov: np.ndarray) -> np.ndarray:
    """A square root R of each covariance (R Rᵀ = cov): Cholesky, or from the eigenvalues where round-off
    left one not positive definite."""
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(cov)
        return v * np.sqrt(np.clip(w, 0, None))[..., None, :]


def plogp(p: np.ndarray) -> np.ndarray:
    """p log p, 0 at p = 0 (the terms of a discrete q's entropy −Σ p log p)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, p * np.log(p), 0.0)


def entropy_by_rows(p: np.ndarray, h: np.ndarray, each: Callable[[np.ndarray], np.ndarray]) -> None:
    """h's elements set to ``each`` of p's rows (p seen as h.size rows), a chunk of rows at a time: a local
    q's start makes no temporary as big as q."""
    if h.size == 0:         # an empty chunk of a streamed fit
        return
    rows, out = p.reshape(h.size, -1), h.reshape(-1)
    step = max(1, _CHUNK // max(1, rows.shape[1]))      # rows of ≤ _CHUNK numbers: a row may be K = 10⁵ wide
    for a in range(0, h.size, step):
        out[a:a + step] = each(rows[a:a + step])


_CHUNK = 1 << 16


def point_entropy(s: State, v: str, seen: np.ndarray) -> None:
    """A point mass's entropy: 0."""
    s[ArrayNames.entropy(v)][seen] = 0.0
