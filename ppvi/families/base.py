"""The interface every family implements, and the linear algebra they share.

An exponential family (PRML §2.4) has densities

    log p(x | η) = Σ_s ⟨η_s, T_s(x)⟩ − A(η) + log h(x)

with sufficient statistics T, natural parameters η, log-normaliser A and base
measure h.  The mean-field fixed point (seed eq. 19.56) makes log q*(x) a sum
of terms linear in the statistics of x, so q* is recognised by *which*
statistics appear; the derivation engine matches on the keys of ``T``.

Conventions shared by every family:

* ``T`` and ``η`` are dicts with the same keys (the statistic keys); the
  moments ``E[T]`` come from ``expectations``, which may add further keys a
  neighbour needs (e.g. Beta also gives ``"x"``).
* Standard parameters are dicts keyed by the names of the q result schema
  (docs/cli.md): Normal ``mean, sd``; Gamma ``shape, rate``; …
* ``⟨a, b⟩`` is the product for scalars, Σ_ij a_ij b_ij for explicit
  matrices, Tr(aᵀb) for matrix expressions and a sum over the family's free
  index for symbolic-size vectors (see ``IndexedVectorFamily``).
* Where possible the base measure is chosen so that the coefficients collected
  by the engine *are* η (e.g. Gamma's η_logx = shape − 1, h = 1).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Self, TypeAlias

import sympy as sp
from sympy.logic.boolalg import Boolean
from sympy.matrices import MatrixBase
from sympy.matrices.expressions import MatrixExpr

Dim: TypeAlias = int | sp.Symbol
"""A size: a Python int (explicit matrices) or a SymPy Symbol (symbolic size)."""

Value: TypeAlias = sp.Expr | MatrixBase | MatrixExpr
Params: TypeAlias = Mapping[str, Any]
Stats: TypeAlias = dict[str, Value]

__all__ = [
    "Density",
    "Dim",
    "ExponentialFamily",
    "IndexedVectorFamily",
    "MatrixFamily",
    "Params",
    "Stats",
    "Value",
    "as_matrix",
    "inner",
    "logdet",
    "positive_definite",
    "quadratic",
    "sum_over",
    "symmetric_part",
]


# --------------------------------------------------------------------------
# linear algebra that works for explicit matrices and matrix expressions alike


def as_matrix(value: Any) -> Value:
    """Lists and tuples become explicit column (or nested: full) matrices."""
    if isinstance(value, (list, tuple)):
        return sp.Matrix(value)
    return sp.sympify(value)


def inner(a: Value, b: Value) -> sp.Expr:
    """⟨a, b⟩: a·b for scalars, Σ_ij a_ij b_ij for matrices (= Tr(aᵀb))."""
    if isinstance(a, MatrixExpr) or isinstance(b, MatrixExpr):
        return sp.trace(a.T * b)
    if isinstance(a, MatrixBase):
        return sp.Add(*(ai * bi for ai, bi in zip(a, b, strict=True)))
    return a * b


def quadratic(v: Value, m: Value, w: Value | None = None) -> sp.Expr:
    """The scalar vᵀ M w (w defaults to v)."""
    w = v if w is None else w
    product = v.T * m * w
    return product[0, 0] if isinstance(product, MatrixBase) else sp.trace(product)


def logdet(m: Value) -> sp.Expr:
    """log |M| (Determinant(M) for a matrix symbol)."""
    return sp.log(sp.det(m))


def symmetric_part(m: Value) -> Value:
    """(M + Mᵀ)/2: only this part of a coefficient of xxᵀ or X matters.

    A matrix expression is returned as it is: SymPy cannot tell that a
    ``MatrixSymbol`` is symmetric, so symbolic-size coefficients are taken to
    be symmetric already (the derivation engine symmetrises what it collects).
    """
    return (m + m.T) / 2 if isinstance(m, MatrixBase) else m


def positive_definite(m: Value) -> Boolean:
    """M ≻ 0 for symmetric M: Sylvester's criterion (all leading principal
    minors positive) for explicit matrices, ``Q.positive_definite`` otherwise."""
    if isinstance(m, MatrixBase):
        return sp.And(*(m[:i, :i].det() > 0 for i in range(1, m.rows + 1)))
    return sp.Q.positive_definite(m)


def sum_over(term: Callable[[sp.Expr], sp.Expr], first: int, last: sp.Expr, name: str = "i") -> sp.Expr:
    """Σ_{i=first}^{last} term(i): a Python sum when the bounds are integers,
    an unevaluated ``Sum`` over an integer symbol otherwise."""
    if isinstance(last, int) or (isinstance(last, sp.Basic) and last.is_Integer):
        return sp.Add(*(term(sp.Integer(i)) for i in range(first, int(last) + 1)))
    i = sp.Symbol(name, integer=True)
    return sp.Sum(term(i), (i, first, last))


# --------------------------------------------------------------------------
# the interface


@dataclass(frozen=True)
class Density(ABC):
    """A distribution with a closed-form log density, mean and entropy.

    ``dim`` is the event size for families that need one (Categorical's K,
    Dirichlet's K, MvNormal's and Wishart's D): an int, a Symbol, or None to
    infer it from the shapes of explicit arguments.
    """

    name: ClassVar[str]
    support: ClassVar[str]
    event_rank: ClassVar[int]
    params: ClassVar[tuple[str, ...]]
    exponential: ClassVar[bool] = False
    sized: ClassVar[bool] = False

    dim: Dim | None = None

    def __post_init__(self) -> None:
        if self.dim is None:
            return
        if not self.sized:
            raise ValueError(f"{self.name} has no size; do not give dim")
        if isinstance(self.dim, bool) or not isinstance(self.dim, (int, sp.Symbol)):
            raise TypeError(f"{self.name}: dim must be an int or a sympy Symbol, not {self.dim!r}")
        if isinstance(self.dim, int) and self.dim < 1:
            raise ValueError(f"{self.name}: dim must be positive, not {self.dim}")

    def unpack(self, params: Params) -> tuple[Value, ...]:
        """The standard parameters in ``self.params`` order, as SymPy values."""
        return tuple(as_matrix(params[name]) for name in self.params)

    def with_dim(self, dim: Dim | None) -> Self:
        """The same family with event size ``dim``."""
        return replace(self, dim=dim)

    @abstractmethod
    def log_density(self, x: Any, params: Params) -> sp.Expr:
        """log p(x | params), with every normalising constant."""

    @abstractmethod
    def mean(self, params: Params) -> Value:
        """E[x]."""

    @abstractmethod
    def entropy(self, params: Params) -> sp.Expr:
        """H[p] = −E[log p(x)] (differential entropy for continuous x, 19.48)."""

    # ------------------------------------------------ the q side (what derive reads of a latent's q)
    # A family whose base measure h is no constant in x and has no closed-form expectation (a count's 1/x!)
    # carries log h as a place-holder statistic (PolyaGamma's way): its moment is 0 under q, and H[q] is taken
    # relative to h, so that E_q[log h] in the factor that drew x and in H[q] cancel (their sum is exact).
    q_statistics: ClassVar[tuple[str, ...] | None] = None    # T's keys of a q of this family (None: statistic_keys)

    def q_moments(self, params: Params) -> Stats:
        """E_q[T] of every key a neighbour reads (a place-holder's: 0)."""
        return self.expectations(params)        # type: ignore[attr-defined]

    def q_entropy(self, params: Params) -> sp.Expr:
        """H[q] as the ELBO adds it (relative to a place-holder's base measure)."""
        return self.entropy(params)


@dataclass(frozen=True)
class ExponentialFamily(Density):
    """A density of the form exp(⟨η, T(x)⟩ − A(η) + log h(x))."""

    exponential: ClassVar[bool] = True
    statistic_keys: ClassVar[tuple[str, ...]]
    moment_keys: ClassVar[tuple[str, ...]]

    @abstractmethod
    def statistics(self, x: Any) -> Stats:
        """T(x), keyed by statistic key."""

    @abstractmethod
    def natural_from_standard(self, params: Params) -> Stats:
        """η as a function of the standard parameters."""

    @abstractmethod
    def standard_from_natural(self, eta: Params) -> dict[str, Value]:
        """The standard parameters as functions of η."""

    @abstractmethod
    def log_normaliser(self, eta: Params) -> sp.Expr:
        """A(η) = log ∫ h(x) exp⟨η, T(x)⟩ dx."""

    @abstractmethod
    def base_measure(self, x: Any) -> sp.Expr:
        """log h(x)."""

    @abstractmethod
    def expectations(self, params: Params) -> Stats:
        """E[T(x)] = ∇A(η), plus the extra moments listed in ``moment_keys``."""

    @abstractmethod
    def valid_natural(self, eta: Params) -> Boolean:
        """The condition under which η gives a normalisable density."""

    def inner(self, a: Value, b: Value) -> sp.Expr:
        """⟨a, b⟩ for two values of one statistic."""
        return inner(a, b)

    def log_density_natural(self, x: Any, eta: Params) -> sp.Expr:
        """Σ_s ⟨η_s, T_s(x)⟩ − A(η) + log h(x)."""
        stats = self.statistics(x)
        linear = sp.Add(*(self.inner(eta[key], stats[key]) for key in self.statistic_keys))
        return linear - self.log_normaliser(eta) + self.base_measure(x)


@dataclass(frozen=True)
class IndexedVectorFamily(ExponentialFamily):
    """A family whose parameters are K-vectors (Categorical, Dirichlet).

    With an int K vectors are explicit K×1 matrices (lists are accepted).
    With a Symbol K a vector is represented by the expression for its k-th
    component, k = ``self.k`` = ``Idx(index, K)`` a free index over 0..K−1;
    an ``IndexedBase`` v is read as v[k].  Sums over components bind a fresh
    integer symbol, so results keep k free only where they are vectors.
    """

    sized: ClassVar[bool] = True
    index: str = "k"

    @property
    def symbolic(self) -> bool:
        return isinstance(self.dim, sp.Symbol)

    @property
    def k(self) -> sp.Idx:
        """The free component index of symbolic-size vectors."""
        if not self.symbolic:
            raise ValueError(f"{self.name}: the free index exists only for a symbolic dim")
        return sp.Idx(self.index, self.dim)

    def size(self, *values: Any) -> Dim:
        """K (as a SymPy integer or symbol): ``dim``, else the length of the
        first explicit vector given."""
        if self.dim is not None:
            return sp.sympify(self.dim)
        for value in values:
            if isinstance(value, (list, tuple, MatrixBase)):
                return sp.Integer(len(value))
        raise ValueError(f"{self.name}: the size cannot be inferred; give dim=")

    def vector(self, value: Any) -> Value:
        """A parameter or value as a vector of this family's representation."""
        if isinstance(value, (list, tuple, MatrixBase)):
            if self.symbolic:
                raise ValueError(f"{self.name}: explicit vector given for symbolic size {self.dim}")
            v = sp.Matrix(list(value))
            if self.dim is not None and len(v) != self.dim:
                raise ValueError(f"{self.name}: vector of length {len(v)}, expected {self.dim}")
            return v
        if not self.symbolic:
            raise ValueError(f"{self.name}: {value!r} is no list or Matrix; indexed vectors need a symbolic dim")
        if isinstance(value, sp.IndexedBase):
            return value[self.k]
        return sp.sympify(value)

    def unpack(self, params: Params) -> tuple[Value, ...]:
        return tuple(self.vector(params[name]) for name in self.params)

    def positions(self, *like: Value) -> Value:
        """The vector (0, 1, …, K−1)."""
        if self.symbolic:
            return self.k
        return sp.Matrix(list(range(self.size(*like))))

    def map(self, f: Callable[..., sp.Expr], *vectors: Value) -> Value:
        """The componentwise f(v1_k, v2_k, …)."""
        if isinstance(vectors[0], MatrixBase):
            return sp.Matrix([f(*parts) for parts in zip(*vectors, strict=True)])
        return f(*vectors)

    def total(self, v: Value) -> sp.Expr:
        """Σ_k v_k."""
        if isinstance(v, MatrixBase):
            return sp.Add(*v)
        j = sp.Symbol(f"{self.index}_", integer=True)
        return sp.Sum(v.xreplace({self.k: j}), (j, 0, self.dim - 1))

    def inner(self, a: Value, b: Value) -> sp.Expr:
        return self.total(self.map(sp.Mul, a, b))

    def all(self, condition: Callable[[sp.Expr], Boolean], v: Value) -> Boolean:
        """condition(v_k) for every k (for a symbolic size: with k free)."""
        if isinstance(v, MatrixBase):
            return sp.And(*(condition(vk) for vk in v))
        return condition(v)


@dataclass(frozen=True)
class MatrixFamily(ExponentialFamily):
    """A family over D-vectors or D×D matrices (MvNormal, Wishart).

    Values are explicit sympy matrices (size D an int) or matrix expressions
    (``MatrixSymbol`` of symbolic shape); both go through the same formulas,
    which use only transpose, ``inv``, ``det`` and ``trace``.
    """

    sized: ClassVar[bool] = True

    def size(self, value: Value) -> Dim:
        """D (as a SymPy integer or symbol): ``dim``, else the number of rows of ``value``."""
        return sp.sympify(self.dim if self.dim is not None else value.shape[0])
