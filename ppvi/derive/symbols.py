"""The SymPy vocabulary of a derivation: sizes, plate indices, variables, moments.

Plates stay symbolic: a dim is an integer ``Symbol``, a loop variable an
``Idx`` over it, an array variable an ``IndexedBase``.  Nothing is unrolled, so
deriving a model costs the same for any data size.

Moments ⟨T(x)⟩ of a latent x are ``IndexedBase`` objects of their own
(:class:`MomentBase`), one per statistic key of :mod:`ppvi.families`
("x", "x2", "logx", "log1mx", "logp", "onehot", "xxT", "X", "logdet").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import sympy as sp

from ppvi.families.special import digamma, lgamma  # noqa: F401  (log Γ and ψ, never evaluated)


class _Moment:
    """What a moment knows of itself: the latent and the statistic."""

    @property
    def var(self) -> str:
        return self._ppvi_var

    @property
    def stat(self) -> str:
        return self._ppvi_stat


class MomentBase(_Moment, sp.IndexedBase):
    """⟨stat(var)⟩ as an array over var's indices (plus event indices for xxT)."""

    def __new__(cls, var, stat: str | None = None, **kwargs):
        if stat is None:  # rebuilt by SymPy from its label: E[stat](var)
            stat, var = re.fullmatch(r"E\[(\w+)\]\((\w+)\)", str(var)).groups()
        obj = super().__new__(cls, sp.Symbol(f"E[{stat}]({var})"))
        obj._ppvi_var, obj._ppvi_stat = var, stat
        return obj


class MomentSymbol(_Moment, sp.Symbol):
    """⟨stat(var)⟩ of a scalar latent."""

    def __new__(cls, var: str, stat: str):
        obj = super().__new__(cls, f"E[{stat}]({var})", real=True)
        obj._ppvi_var, obj._ppvi_stat = var, stat
        return obj

    def __getnewargs_ex__(self):
        return (self._ppvi_var, self._ppvi_stat), {}


class BoundLabel(sp.Symbol):
    """The label of a summation index in canonical form (:mod:`.canonical`).

    A class of its own: a canonical bound index never equals an index made by
    :meth:`Symbols.fresh` or a loop variable, however the two are spelled, so
    substituting one for the other can never capture.
    """


class logdet(sp.Function):
    """log |X| of a positive-definite matrix variable X (its argument names X and its plate index)."""

    nargs = 1


class softplus(sp.Function):
    """softplus(z) = log(1 + eᶻ); kept whole so code generation can use its stable form."""

    nargs = 1

    def fdiff(self, argindex=1):
        return 1 / (1 + sp.exp(-self.args[0]))


class shift(sp.Function):
    """c of a data array (its label's Symbol), the mean of its finite entries: the point codegen.centre reads a
    Normal's data around (``c_shift__<x>[0]``, bound with the data)."""

    nargs = 1


class centred(sp.Function):
    """a − c, one subtraction (codegen.centre): SymPy never distributes a number over it."""

    nargs = 2


class lmvgamma(sp.Function):
    """log Γ_D(a), the log multivariate gamma function (Wishart normaliser)."""

    nargs = 2


class Gate(sp.IndexedBase):
    """[z = k]: the one-hot indicator of a discrete latent z, indexed (z's plates..., k)."""

    def __new__(cls, var, **kwargs):
        var = str(var).strip("[]")  # also when rebuilt by SymPy from its label "[var]"
        obj = super().__new__(cls, sp.Symbol(f"[{var}]"))
        obj._ppvi_var = var
        return obj

    @property
    def var(self) -> str:
        return self._ppvi_var


@dataclass
class Symbols:
    """Symbols of one model, created on demand and shared by every stage of a derivation."""

    dims: dict[str, sp.Symbol] = field(default_factory=dict)
    bases: dict[str, sp.Basic] = field(default_factory=dict)
    moments: dict[tuple[str, str], sp.Basic] = field(default_factory=dict)
    gates: dict[str, Gate] = field(default_factory=dict)
    _fresh: dict[str, int] = field(default_factory=dict)

    def dim(self, name: str | int) -> sp.Expr:
        if isinstance(name, int):
            return sp.Integer(name)
        if name not in self.dims:
            self.dims[name] = sp.Symbol(name, integer=True, positive=True)
        return self.dims[name]

    def index(self, name: str, dim: str | int) -> sp.Idx:
        """A plate index ranging over 0..dim−1."""
        return sp.Idx(name, self.dim(dim))

    def fresh(self, stem: str, dim: str | int) -> sp.Idx:
        """A new summation index that clashes with nothing else in the derivation."""
        n = self._fresh.get(stem, 0) + 1
        self._fresh[stem] = n
        return self.index(f"{stem}{'′' * n}", dim)

    def var(self, name: str, rank: int) -> sp.Basic:
        """A variable: a Symbol when scalar, else an IndexedBase."""
        if name not in self.bases:
            self.bases[name] = sp.Symbol(name, real=True) if rank == 0 else sp.IndexedBase(name)
        return self.bases[name]

    def moment(self, var: str, stat: str, rank: int) -> sp.Basic:
        key = (var, stat)
        if key not in self.moments:
            self.moments[key] = MomentSymbol(var, stat) if rank == 0 else MomentBase(var, stat)
        return self.moments[key]

    def gate(self, var: str) -> Gate:
        if var not in self.gates:
            self.gates[var] = Gate(var)
        return self.gates[var]
