"""Semantic checks: AST -> :class:`CheckedModel` (names, shapes, supports, domains).

One pass collects declarations, a second types every expression and draw.
Errors are collected, not raised one by one, so a user sees every mistake of a
model at once; the pass stops only where going on would report nonsense.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Iterator

import numpy as np

from ppvi.errors import Reporter, Span, did_you_mean, source_lines
from ppvi.families.registry import unit_of_distribution
from ppvi.language import ast, consts
from ppvi.language.sequences import Chain, element, offset, subscript
from ppvi.language.distributions import (
    COMPATIBLE, CONST_FUNCTIONS, DOMAIN_DATA_SUPPORT, DOMAIN_PRIOR, DOMAIN_SUPPORTS, DOMAIN_WORDS, FUNCTIONS,
    LOG_GAMMA_SHAPES, LOGISTIC_LINKS,
    NAMED_MATRIX, PARAM_SUPPORTS, POINT_REFUSED, SIGNATURES, SUPPORT_ANNOTATIONS, SUPPORT_WORDS, Param, Signature,
)

Extent = str | int          # a dim name or a literal size
MAX_DIM = 2**31 - 1
ENERGY = "factor"           # the dist of a `factor EXPR` statement: EXPR is added to log p̃
FLAT = "Flat"               # the dist standing for "no prior" of a `latent` declaration: log density 0
ENERGY_SUPPORTS = ("binary", "real")
# The supports whose missing entries get a q (Normal, Bernoulli, Categorical, Gamma, Beta, MvNormal's missing
# block: docs/language.md, "Missing data"; a count's where its law is a q family, Poisson, Binomial or
# NegativeBinomial with a known r and no logistic link: MISSING_COUNTS), and why each other one does not.
MISSING_SUPPORTS = ("real", "binary", "index", "positive", "unit_interval", "real_vector")
MISSING_COUNTS = "count"
MISSING_SUPPORTS_NOT = {
    "count": "19.56 gives them a {dist} q, and {dist} is no q family of ppvi",
    "simplex": "a simplex is read whole", "pd_matrix": "a matrix is read whole"}   # a prior-less latent's q: Bernoulli, or Normal for a quadratic energy
# What does work instead, by support.
MISSING_HINTS = {
    "count": "missing counts drawn one by one from a Poisson, a Binomial or a NegativeBinomial(r, p) are imputed; "
             "leave the missing entries of others out of the data"}
# A missing NegativeBinomial count under a logistic link: what works instead.
MISSING_NB_LOGISTIC = ("a missing count is imputed from NegativeBinomial(r, p) with p a Beta latent or known; with "
                       "`p = sigmoid(ψ)` write the law as the Gamma-Poisson mixture it is (`lam[n] ~ Gamma(r, exp(-ψ))`, "
                       "`y[n] ~ Poisson(lam[n])`), or leave the missing entries out of the data")
MISSING_HINT = ("missing entries are fitted where the variable is drawn element by element from a Normal, "
                "Bernoulli, Categorical, Gamma, Exponential, Beta or MvNormal; impute the others before the fit")


# ----------------------------------------------------------------- the result
@dataclass(frozen=True)
class Dim:
    name: str
    default: int | None
    span: Span


@dataclass(frozen=True)
class Variable:
    """A named quantity: ``kind`` is const, data, param or latent.

    ``shape`` lists extents (dim names or sizes); for latents it is the plates of
    its draw followed by the distribution's event axes.  ``support`` is one of
    real, positive, unit_interval, binary, count, index, simplex, unit_columns,
    real_vector, pd_matrix; ``support_dim`` is the K of ``index(K)``.
    """

    name: str
    kind: str
    shape: tuple[Extent, ...]
    support: str
    span: Span
    support_dim: Extent | None = None
    value: ast.Expr | None = None          # constants only
    missing: bool = False                  # data declared `: missing`: NaN / empty entries are latents


@dataclass(frozen=True)
class Factor:
    """One ``target[...] ~ Dist(...)`` statement with its plates.

    ``plates`` are the enclosing loops ``(var, dim)``, outermost first;
    ``target_index`` the loop variables that subscript the target, in order;
    ``args`` maps every canonical parameter name given to its expression;
    ``parents`` names the variables (not loop variables) the arguments read.
    """

    id: int
    target: str
    target_index: tuple[str, ...]
    plates: tuple[tuple[str, str], ...]
    dist: str
    args: tuple[tuple[str, ast.Expr], ...]
    parents: tuple[str, ...]
    observed: bool
    span: Span
    fixed: tuple[tuple[int, int], ...] = ()      # (axis, element) of a first element's literal subscript
    slices: tuple[tuple[str, int], ...] = ()     # (loop variable, start) of each sliced plate
    partial: bool = False      # a draw of data with missing entries (ppvi.language.missing): observed where given

    def arg(self, name: str) -> ast.Expr | None:
        return dict(self.args).get(name)

    @property
    def energy(self) -> bool:
        """A ``factor EXPR`` statement (``target`` is the first latent EXPR reads; it has no subscripts)."""
        return self.dist == ENERGY


@dataclass(frozen=True)
class CheckedModel:
    name: str
    path: str
    text: str
    dims: dict[str, Dim]
    variables: dict[str, Variable]
    factors: tuple[Factor, ...]
    approximations: dict[str, str]         # latent -> "point" | "jointly"
    module: ast.Module = field(repr=False)
    amortised: dict[str, "Amortised"] = field(default_factory=dict)    # local latent -> its encoder (issue 19)
    chains: dict[str, Chain] = field(default_factory=dict)   # variables drawn along a sliced plate
    # data declared `: missing` -> (the missing entries' support, its index range, the `missing` word's span)
    missing: dict[str, tuple[str, Extent | None, Span]] = field(default_factory=dict)
    # `approximate mu, lam jointly`: the Normal latent -> the Gamma latent its precision reads (one Normal–Gamma q)
    pairs: dict[str, str] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[Variable]:
        return [v for v in self.variables.values() if v.kind == kind]

    @cached_property
    def unnormalised(self) -> bool:
        """True when the model has energy terms: p̃ is then known only up to log Z, which the ELBO bounds."""
        return any(f.energy for f in self.factors)

    def prior(self, name: str) -> Factor | None:
        return self._priors.get(name)

    def statement(self, f: Factor) -> str:
        """A factor's statement on one line, for labels (:func:`statement_text`); a flat factor's (its span the
        name's, for carets) is the latent's declaration."""
        return statement_text(self._lines, self._declarations.get(f.target, f.span) if f.dist == FLAT else f.span)

    @cached_property
    def _declarations(self) -> dict[str, Span]:
        """Each declared variable's statement span."""
        out, stack = {}, list(self.module.statements)
        while stack:
            s = stack.pop()
            if isinstance(s, ast.VarDecl):
                out[s.name.id] = s.span
            elif isinstance(s, ast.Loop):
                stack.extend(s.body)
        return out

    @cached_property
    def _lines(self) -> list[str]:
        """The model's lines, split once: a label per factor stays linear in the model's size."""
        return source_lines(self.text)

    @cached_property
    def allocations(self) -> dict[str, str]:
        """The allocation latents the checker added to Poisson sums (``_Checker.superposition``) -> the count each
        splits.  A sampler never draws them (summing over them gives back the Poisson of the sum)."""
        return {(a.base.id if isinstance(a, ast.Index) else a.id): f.target
                for f in self.factors if (a := f.arg("alloc")) is not None}

    @cached_property
    def _priors(self) -> dict[str, Factor]:
        """Each target's (first) factor: one pass, so a lookup per variable stays linear in the model."""
        out: dict[str, Factor] = {}
        for f in sorted(self.factors, key=lambda f: bool(f.fixed)):   # a chain's prior: its loop's statement
            out.setdefault(f.target, f)
        return out


@dataclass(frozen=True)
class Amortised:
    """``amortise NAME by mlp(hidden = H, layers = L, sleep = S)`` or ``by lista(steps = T)``: an encoder from
    a data row to q(NAME[n]) (ppvi.amortise)."""

    latent: str
    method: str                            # "mlp" or "lista"
    hidden: int                            # units per hidden layer (mlp)
    layers: int                            # hidden layers (mlp)
    span: Span
    sleep: int = 0                         # data sets dreamed for the sleep phase (0: regression on CAVI targets)
    steps: int = 0                         # LISTA's shrinkage steps after the first (lista)
    every: int = 0                         # sweeps between refreshes during the fit (0: trained after it only)


_EVERY = (0, 0, 100_000, "sweeps of the fit between the encoder's refreshes")
# Each encoder's options: name -> (default, smallest, largest, what it is).
AMORTISE_OPTIONS = {
    "mlp": {"hidden": (64, 1, 4096, "units per hidden layer"), "layers": (1, 1, 8, "hidden layers"),
            "sleep": (0, 0, 1000, "data sets dreamed for the sleep phase"), "every": _EVERY},
    "lista": {"steps": (3, 1, 100, "shrinkage steps after the first"), "every": _EVERY},
}


# ------------------------------------------------------------- expression types
@dataclass(frozen=True)
class Ty:
    shape: tuple[Extent, ...] = ()
    discrete: bool = False
    range: Extent | None = None            # the extent a discrete scalar's values index


SCALAR = Ty()
UNKNOWN = Ty(shape=("?",))               # after an error: suppresses follow-on reports


def _not_constant(expr: ast.Expr) -> ast.Expr | None:
    """The first sum or indexing in a constant's value (neither is a constant expression), or None."""
    return next((n for n in walk(expr) if isinstance(n, (ast.PlateSum, ast.Index))), None)


def walk(expr: ast.Expr) -> Iterator[ast.Expr]:
    """Every node of an expression, parents before children."""
    stack = [expr]
    while stack:
        e = stack.pop()
        yield e
        match e:
            case ast.Index(base=b, indices=ix):
                stack.extend(reversed(ix))
                stack.append(b)
            case ast.BinOp(left=l, right=r):
                stack.extend([r, l])
            case ast.Neg(operand=o):
                stack.append(o)
            case ast.Call(args=a):
                stack.extend(reversed(a))
            case ast.PlateSum(body=b):
                stack.append(b)
            case ast.Vector(items=i):
                stack.extend(reversed(i))


def statement_text(lines: list[str], span: Span) -> str:
    """A statement's own source on one line: its lines from ``span``'s start to its end without their comments
    (the grammar has no strings, so ``#`` always opens one), line continuations or the breaks inside brackets.

    ``lines`` are the model's (:func:`ppvi.errors.source_lines`).  A statement's span runs on over the end of
    line that closes it, comments and blank lines included.
    """
    if not 1 <= span.line <= len(lines):
        return ""
    pieces = []
    for n in range(span.line, min(span.end_line or span.line, len(lines)) + 1):
        line = lines[n - 1]
        if n == span.end_line and span.end_col is not None:
            line = line[:span.end_col - 1]
        if n == span.line:
            line = line[span.col - 1:]
        line = line.split("#", 1)[0].strip()
        line = line[:-1].rstrip() if line.endswith("\\") else line
        if line:
            pieces.append(line)
    out = ""
    for p in pieces:
        out += p if not out or out[-1] in "([" or p[0] in ")]," else " " + p
    return out


def show_shape(shape: tuple[Extent, ...]) -> str:
    return "a scalar" if not shape else "[" + ", ".join(str(s) for s in shape) + "]"


# -------------------------------------------------------------------- checker
class _Checker:
    def __init__(self, module: ast.Module):
        self.m = module
        self.rep = Reporter(module.path, module.text)
        self.dims: dict[str, Dim] = {}
        self.vars: dict[str, Variable] = {}
        self.decl_span: dict[str, Span] = {}
        self.draws: dict[str, list[tuple[ast.Draw, tuple[tuple[str, str], ...]]]] = {}
        self.factors: list[Factor] = []
        self.approx: dict[str, str] = {}
        self.pairs: dict[str, str] = {}
        self.const_values: dict[str, np.ndarray | None] = {}
        self.poisoned: set[str] = set()      # names whose type is unknown after an error
        self.form_errors = 0                 # errors about an argument's form: the draw's type is still known
        self.sticks: set[str] = set()        # latents drawn from StickBreaking: their q is over the sticks
        self.energies: list[tuple[ast.Energy, tuple[tuple[str, str], ...]]] = []
        self.priorless: dict[str, ast.VarDecl] = {}   # `latent NAME … : support` declarations
        self.loop_of: dict[int, dict[str, ast.Loop]] = {}   # id(draw) -> its enclosing loops by variable
        self.starts: dict[str, int] = {}     # the current draw's sliced loop variables -> first element
        self.target: ast.Draw | None = None  # the draw being checked (offsets read against it)
        self.chain_axis: dict[str, tuple[int, ast.Loop]] = {}   # variable -> (axis, its sliced loop)
        self.chain_factors: dict[str, list[int]] = {}
        self.chain_plates: dict[str, tuple[Extent, ...]] = {}
        self.lags: dict[str, int] = {}
        self.missing: dict[str, Span] = {}   # data declared `: missing` -> the word's span
        self.drawn_missing: dict[str, tuple] = {}   # ... -> (its distribution, support, index range, target span)

    # ---------------------------------------------------------------- pass 1
    def declare(self, name: ast.Name, what: str) -> bool:
        if name.id in self.decl_span:
            prev = self.decl_span[name.id]
            self.rep.error(f"`{name.id}` is already declared (line {prev.line})", name.span,
                           "each name is declared once; rename one of them")
            return False
        self.decl_span[name.id] = name.span
        return True

    def collect(self, stmts, plates: tuple[tuple[str, str], ...] = (), loops: tuple[ast.Loop, ...] = ()) -> None:
        for s in stmts:
            match s:
                case ast.DimDecl(items=items):
                    for it in items:
                        if self.declare(it.name, "dim"):
                            default = it.default
                            if default is not None and not 1 <= default <= MAX_DIM:
                                self.rep.error(f"dim `{it.name.id}` = {default} is not a usable size",
                                               it.default_span, "a dim is a whole number from 1 to 2^31-1")
                                default = None        # (no value is built from it: eye(0) has no eigenvalues)
                            self.dims[it.name.id] = Dim(it.name.id, default, it.name.span)
                case ast.ConstDecl(name=n):
                    self.declare(n, "const")
                case ast.VarDecl(name=n):
                    self.declare(n, s.kind)
                case ast.Draw(target=t):
                    self.draws.setdefault(t.id, []).append((s, plates))
                    self.loop_of[id(s)] = {lp.var.id: lp for lp in loops}
                case ast.Loop(var=v, dim=d, body=body):
                    self.collect(body, plates + ((v.id, d.id),), loops + (s,))
                case ast.Energy():
                    self.energies.append((s, plates))
                    self.loop_of[id(s)] = {lp.var.id: lp for lp in loops}
                case ast.Approximate() | ast.Amortise():
                    pass

    # ---------------------------------------------------------------- shapes
    def extent(self, e: ast.Extent) -> Extent | None:
        if e.name is None:
            if not 1 <= e.size <= MAX_DIM:
                self.rep.error(f"size {e.size} is not a usable size", e.span, "sizes are whole numbers from 1")
                return None
            return e.size
        if e.name not in self.dims:
            self.unknown_dim(e.name, e.span)
            return None
        return e.name

    def unknown_dim(self, name: str, span: Span) -> None:
        if name in self.decl_span:
            self.rep.error(f"`{name}` is not a dim", span, f"declare it with `dim {name}` to use it as a size or plate")
        else:
            hint = did_you_mean(name, self.dims) or f"declare it first: `dim {name}`"
            self.rep.error(f"unknown dim `{name}`", span, hint)

    def shape_of(self, extents: tuple[ast.Extent, ...]) -> tuple[Extent, ...] | None:
        out = [self.extent(e) for e in extents]
        return None if any(o is None for o in out) else tuple(out)

    # --------------------------------------------------------- declarations
    def check_decls(self, stmts) -> None:
        for s in stmts:
            match s:
                case ast.ConstDecl():
                    self.check_const(s)
                case ast.VarDecl():
                    self.check_var(s)
                case ast.Loop(body=body):
                    self.check_decls(body)

    def check_const(self, s: ast.ConstDecl) -> None:
        shape = self.shape_of(s.shape)
        before = len(self.rep.diagnostics)
        ty = self.infer(s.value, {}, const=True)
        if len(self.rep.diagnostics) == before and (node := _not_constant(s.value)) is not None:
            ty = UNKNOWN                 # (consts.evaluate knows no sums or indexing: it would fail at run time)
            what = ("`sum(…)`", "the sum") if isinstance(node, ast.PlateSum) else ("indexing", "the indexed value")
            self.rep.error(f"{what[0]} is not a constant expression", node.span,
                           "a constant is built from numbers, dims, whole constants, arithmetic, `eye` and "
                           f"elementwise functions; write {what[1]} where the constant is used (a distribution's "
                           "arguments may sum and index)")
        if shape is None:
            shape = ty.shape if ty is not UNKNOWN else ()
        elif ty is not UNKNOWN and ty.shape and ty.shape != shape and not self.literal_fits(ty.shape, shape):
            self.rep.error(f"value of `{s.name.id}` has shape {show_shape(ty.shape)}, declared {show_shape(shape)}",
                           _span(s.value), "give a scalar to fill the shape, or a literal of the declared shape")
        self.vars[s.name.id] = Variable(s.name.id, "const", shape, "real", s.name.span, value=s.value)
        self.const_values[s.name.id] = (self.evaluate(s.value, shape) if ty is not UNKNOWN and self.finite(s.value)
                                        else None)

    def literal_fits(self, got: tuple[Extent, ...], want: tuple[Extent, ...]) -> bool:
        """A literal [a, b] has an integer extent; it fits a dim whose default is that size."""
        if len(got) != len(want):
            return False
        return all(g == w or (isinstance(g, int) and isinstance(w, str) and self.dims[w].default in (None, g))
                   for g, w in zip(got, want))

    def check_var(self, s: ast.VarDecl) -> None:
        known = self.shape_of(s.shape)
        shape = known or ()
        support, sdim = "real", None
        if s.support is not None:
            sname = s.support.name.id
            if sname not in SUPPORT_ANNOTATIONS:
                self.rep.error(f"unknown support `{sname}`", s.support.name.span,
                               did_you_mean(sname, SUPPORT_ANNOTATIONS) or
                               "supports: " + ", ".join(SUPPORT_ANNOTATIONS))
            elif SUPPORT_ANNOTATIONS[sname] and s.support.arg is None:
                self.rep.error(f"support `{sname}` needs a dim", s.support.span, f"write `{sname}(K)`")
            elif not SUPPORT_ANNOTATIONS[sname] and s.support.arg is not None:
                self.rep.error(f"support `{sname}` takes no argument", s.support.arg.span, f"write `: {sname}`")
            elif s.kind == "latent" and sname not in ENERGY_SUPPORTS:
                self.rep.error(f"a latent without a prior cannot be `{sname}`", s.support.name.span,
                               "`latent` declares a binary or real latent that only `factor` statements weigh; "
                               f"give `{s.name.id}` a prior instead (`{s.name.id} ~ …`)")
            elif s.kind == "param" and sname not in PARAM_SUPPORTS:
                self.rep.error(f"a param cannot be `{sname}`: params are continuous point estimates",
                               s.support.name.span, "params may be " + ", ".join(sorted(PARAM_SUPPORTS)))
            else:
                support = sname
                if s.support.arg is not None:
                    if s.support.arg.id in self.dims:
                        sdim = s.support.arg.id
                    else:
                        self.unknown_dim(s.support.arg.id, s.support.arg.span)
            if known is None:
                pass                          # (its shape was reported: say nothing of what it would fit)
            elif support == "simplex" and not shape:
                self.rep.error(f"`{s.name.id}` is a scalar; a simplex needs an axis", s.support.span,
                               f"give it a shape, e.g. `{s.name.id}[K]`")
            elif support == "unit_columns" and len(shape) != 2:
                self.rep.error(f"`unit_columns` needs a matrix; `{s.name.id}` is {show_shape(shape)}",
                               s.support.span, f"declare it as `{s.name.id}[D, K]`")
        missing = s.missing is not None
        if missing and s.kind != "data":
            self.rep.error(f"only data may be `missing`; `{s.name.id}` is a {s.kind}", s.missing,
                           f"declare `data {s.name.id}` to read it with missing entries, or drop `missing`")
            missing = False
        if missing and support in ("simplex", "unit_columns"):
            self.rep.error(f"a `{support}` row is read whole: its entries cannot be missing", s.missing,
                           "impute the rows first, or drop `missing`")
            missing = False
        if missing:
            self.missing[s.name.id] = s.missing
        self.vars[s.name.id] = Variable(s.name.id, s.kind, shape, support, s.name.span, sdim, missing=missing)
        if known is None:
            self.poisoned.add(s.name.id)      # (its shape is unknown: its uses would report nonsense)
        if s.kind == "latent":
            self.priorless[s.name.id] = s
            for e, ext in zip(s.shape, shape):
                if isinstance(ext, int):
                    self.rep.error(f"an axis of `{s.name.id}` is a literal size", e.span,
                                   f"a prior-less latent's axes are dims: declare one, `dim K = {ext}`, and "
                                   f"write `latent {s.name.id}[K]`")
                    self.poisoned.add(s.name.id)

    # ------------------------------------------------------------- constants
    def sizes(self) -> dict[str, int | None]:
        return {d.name: d.default for d in self.dims.values()}

    def evaluate(self, e: ast.Expr, shape: tuple[Extent, ...]) -> np.ndarray | None:
        """The compact value of a constant expression (a scalar stays a scalar whatever the shape: nothing is
        allocated at dim size), or None when it needs what only data gives or does not fit the shape."""
        sizes = self.sizes()
        try:
            val = np.asarray(consts.evaluate(e, sizes, self.const_values, consts.CHECK_ENTRIES), dtype=float)
        except consts.NotConstant:
            return None
        full = tuple(sizes[d] if isinstance(d, str) else d for d in shape)
        if None not in full:
            try:
                np.broadcast_shapes(val.shape, full)
            except ValueError:
                return None
        return val

    def full_value(self, v: np.ndarray, shape: tuple[Extent, ...]) -> np.ndarray:
        """A compact value broadcast to ``shape`` (a view: no copy) while that is small; else as it is."""
        sizes = self.sizes()
        full = tuple(sizes[d] if isinstance(d, str) else d for d in shape)
        if None in full or v.shape == full or math.prod(full) > consts.CHECK_ENTRIES:
            return v
        try:
            return np.broadcast_to(v, full)
        except ValueError:
            return v

    def finite(self, e: ast.Expr) -> bool:
        """Report the sub-expression of ``e`` whose constant value is not a finite real number, if any."""
        problem = consts.first_non_finite(e, self.sizes(), self.const_values)
        if problem is not None:
            self.rep.error(problem.message, problem.node.span, problem.hint)
        return problem is None

    def _eval(self, e: ast.Expr):
        return consts.evaluate(e, self.sizes(), self.const_values, consts.CHECK_ENTRIES)

    # -------------------------------------------------------------- typing
    def infer(self, e: ast.Expr, scope: dict[str, str], const: bool = False) -> Ty:
        """The type of an expression; ``scope`` maps loop/sum variables to their dims."""
        match e:
            case ast.Num(is_int=is_int):
                return Ty(discrete=is_int)
            case ast.Name(id=n, span=sp):
                if n in scope:
                    return Ty(discrete=True, range=scope[n])
                if n in self.dims:
                    return Ty(discrete=True)
                if n in self.poisoned:
                    return UNKNOWN
                v = self.lookup(n, sp, const)
                return self.var_ty(v) if v is not None else UNKNOWN
            case ast.Index():
                return self.infer_index(e, scope, const)
            case ast.BinOp(op=op, left=l, right=r):
                a, b = self.infer(l, scope, const), self.infer(r, scope, const)
                if UNKNOWN in (a, b):
                    return UNKNOWN
                if a.shape and b.shape and a.shape != b.shape:
                    self.rep.error(f"`{op}` of {show_shape(a.shape)} and {show_shape(b.shape)}", e.span,
                                   "elementwise operations need equal shapes or a scalar; use dot() to contract")
                    return UNKNOWN
                discrete = a.discrete and b.discrete and op in "+-*"
                return Ty(a.shape or b.shape, discrete)
            case ast.Neg(operand=o):
                t = self.infer(o, scope, const)
                return Ty(t.shape, t.discrete) if t is not UNKNOWN else UNKNOWN
            case ast.Call():
                return self.infer_call(e, scope, const)
            case ast.PlateSum(var=v, dim=d, body=body):
                if v.id in scope or v.id in self.decl_span:
                    self.rep.error(f"`{v.id}` is already in use", v.span, "give the summation index a fresh name")
                    return UNKNOWN
                if d.id not in self.dims:
                    self.unknown_dim(d.id, d.span)
                    return UNKNOWN
                t = self.infer(body, {**scope, v.id: d.id}, const)
                return Ty(t.shape) if t is not UNKNOWN else UNKNOWN
            case ast.Vector(items=items):
                tys = [self.infer(i, scope, const) for i in items]
                if UNKNOWN in tys:
                    return UNKNOWN
                if len({t.shape for t in tys}) != 1:
                    self.rep.error("items of a vector literal have different shapes", e.span,
                                   "write every row with the same length")
                    return UNKNOWN
                return Ty((len(items),) + tys[0].shape)
        raise AssertionError(e)  # pragma: no cover

    def lookup(self, n: str, span: Span, const: bool):
        if n in self.vars:
            v = self.vars[n]
            if const and v.kind != "const":
                self.rep.error(f"a constant cannot depend on {v.kind} `{n}`", span,
                               "constants are fixed numbers known before data is read")
                return None
            return v
        if n in self.decl_span:  # declared later (constants are read in order) or a dim used oddly
            self.rep.error(f"`{n}` is used before its declaration", span, "declare constants before using them")
            return None
        hint = did_you_mean(n, list(self.vars) + list(self.dims))
        if not hint:
            hint = (f"declare it (`data {n}`, `param {n}` or `const {n} = …`) or give it a prior (`{n} ~ …`)"
                    if not const else f"declare it before this line: `const {n} = …`")
        self.rep.error(f"undefined name `{n}`", span, hint)
        return None

    def var_ty(self, v: Variable) -> Ty:
        discrete = v.support in ("binary", "count", "index")
        rng = v.support_dim if v.support == "index" else None
        return Ty(v.shape, discrete, rng)

    def infer_index(self, e: ast.Index, scope: dict[str, str], const: bool) -> Ty:
        if e.base.id in self.poisoned:
            return UNKNOWN
        v = self.lookup(e.base.id, e.base.span, const) if e.base.id not in scope else None
        if e.base.id in scope or e.base.id in self.dims:
            self.rep.error(f"`{e.base.id}` is {'a loop variable' if e.base.id in scope else 'a dim'} "
                           "and cannot be indexed", e.base.span, None)
            return UNKNOWN
        if v is None:
            for i in e.indices:
                self.infer(i, scope, const)
            return UNKNOWN
        base = self.var_ty(v)
        if len(e.indices) > len(v.shape):
            self.rep.error(f"`{v.name}` has {len(v.shape)} {'axis' if len(v.shape) == 1 else 'axes'} "
                           f"({show_shape(v.shape)}) but {len(e.indices)} indices are given", e.span,
                           f"`{v.name}` is declared with shape {show_shape(v.shape)}")
            return UNKNOWN
        ok = True
        for axis, (ix, ext) in enumerate(zip(e.indices, v.shape)):
            t = self.infer(ix, scope, const)
            if t is UNKNOWN:
                ok = False
                continue
            if t.shape:
                self.rep.error(f"index {axis} of `{v.name}` is {show_shape(t.shape)}, not a scalar", _span(ix),
                               "index with one loop variable or one discrete value per axis")
                ok = False
            elif not t.discrete:
                self.rep.error(f"`{v.name}` is indexed by a continuous quantity", _span(ix),
                               "indices are loop variables, whole numbers, or discrete (index/count/"
                               "Categorical) variables")
                ok = False
            elif t.range is not None and t.range != ext and not self.same_size(t.range, ext):
                self.rep.error(f"index ranges over {t.range} but axis {axis} of `{v.name}` has size {ext}",
                               _span(ix), f"`{v.name}` is declared with shape {show_shape(v.shape)}")
                ok = False
            elif t.range is None and not self.check_free_index(v, axis, ix, ext, scope):
                ok = False
        if not ok:
            return UNKNOWN
        rest = v.shape[len(e.indices):]
        return Ty(rest, base.discrete, base.range if not rest else None)

    def check_free_index(self, v: Variable, axis: int, ix: ast.Expr, ext: Extent, scope: dict[str, str]) -> bool:
        """An index with no range of its own (not a loop variable, not an index(K) value) must be a
        constant inside the axis: anything else could read outside the array (the kernels do not check)."""
        where = f"axis {axis} of `{v.name}`"
        off = offset(ix, scope)
        if off is not None:
            return self.check_offset(v, axis, ix, ext, scope, *off)
        if isinstance(ix, ast.Name) and ix.id in self.dims:
            self.rep.error(f"`{ix.id}` is a size, one past the last index of {where}", ix.span,
                           f"indices run from 0 to {ext} - 1")
            return False
        random = [n for n in walk(ix) if isinstance(n, ast.Name) and (n.id in scope or (
            n.id in self.vars and self.vars[n.id].kind != "const"))]
        if not random:
            try:
                val = float(np.asarray(self._eval(ix)))
            except (consts.NotConstant, TypeError, ValueError):
                return True          # a size only the data give: cannot be checked here
            size = ext if isinstance(ext, int) else self.dims[ext].default
            if size is not None and not 0 <= val < size:
                self.rep.error(f"index {val:g} is out of range for {where} (size {ext}"
                               + (f" = {size})" if size != ext else ")"), _span(ix), "indices start at 0")
                return False
            return True
        ref = self._ref(ix, scope)
        if ref is None:
            self.rep.error(f"`{_text(self.rep, ix)}` cannot index {where}: arithmetic on an index may leave "
                           f"0..{ext} - 1", _span(ix),
                           "index with a loop variable, a whole number, or an index(K) variable")
        elif ref.kind == "data":
            self.rep.error(f"`{ref.name}` ({ref.support}) cannot index {where}: its values are not known to "
                           f"lie in 0..{ext} - 1", _span(ix),
                           f"declare it `data {_declared(ref)} : index({ext})`: its values are then checked when read")
        else:
            article = "an" if ref.support[0] in "aeiou" else "a"
            self.rep.error(f"`{ref.name}`, {article} {ref.support} {ref.kind}, cannot index {where}",
                           _span(ix), "a latent index is drawn from a Categorical: `z[n] ~ Categorical(p)`")
        return False

    def check_offset(self, v: Variable, axis: int, ix: ast.Expr, ext: Extent, scope: dict[str, str],
                     var: str, step: int) -> bool:
        """``x[t-c]`` stays inside the plate: the loop over t must start at c or later (``T[c:]``);
        looking ahead (``t+1``) would read past the last element, or a later element of the target."""
        dim, start, text = scope[var], self.starts.get(var, 0), _text(self.rep, ix)
        if dim != ext and not self.same_size(dim, ext):
            self.rep.error(f"index ranges over {dim} but axis {axis} of `{v.name}` has size {ext}", _span(ix),
                           f"`{v.name}` is declared with shape {show_shape(v.shape)}")
            return False
        loop = self.loop_of.get(id(self.target), {}).get(var) if self.target is not None else None
        rides = loop.by.id if loop is not None and loop.by is not None else None
        chain = self.chain_axis.get(v.name)
        along = chain[1].by.id if chain is not None and chain[1].by is not None and chain[0] == axis else None
        if step < 0 and rides != along:
            if rides is not None:
                self.rep.error(f"`{v.name}[{text}]` in a loop riding on `{rides}`: only the ragged chain drawn there "
                               "may look back", _span(ix), f"the previous step of a sequence is read by the chain's "
                                                           f"own statement, `z[{var}] ~ Categorical(A[z[{text}]])`")
            else:
                self.rep.error(f"`{v.name}[{text}]` would read across sequences: `{v.name}` rides on `{along}`, and this loop "
                               f"over `{dim}` does not", _span(ix),
                               f"read the previous step of `{v.name}` only in its own statement, in "
                               f"`for {var} in {dim}[1:] by {along}:`")
            return False
        if step > 0:
            if self.target is not None and v.name == self.target.target.id:
                self.rep.error(f"`{text}` is a forward reference: an element of `{v.name}` cannot read a later one",
                               _span(ix), f"an element may depend only on earlier elements: `{var}-{step}`")
            else:
                self.rep.error(f"`{text}` reads past the end of axis {axis} of `{v.name}` when {var} = {dim} - "
                               f"{step}", _span(ix), f"offsets look back along a plate: `{var}-1` in a loop "
                                                     f"sliced `for {var} in {dim}[1:]:`")
            return False
        if start + step < 0:
            self.before_start(v.name, axis, ix, var, dim, start, step)
            return False
        return True

    def before_start(self, name: str, axis: int, ix: ast.Expr, var: str, dim: str, start: int, step: int) -> None:
        """``x[t-1]`` in a loop over t that starts too early to have element t-1."""
        s = "s" if -step - start > 1 else ""
        self.rep.error(f"`{_text(self.rep, ix)}` reads element {start + step} of axis {axis} of `{name}` when "
                       f"{var} = {start}", _span(ix),
                       f"slice the loop, `for {var} in {dim}[{-step}:]:`, and draw the first " +
                       (f"{-step} elements by statements of their own" if s else "element by a statement of its own")
                       if not start else
                       f"the loop `for {var} in {dim}[{start}:]` starts at {start}: start it at `{dim}[{-step}:]`"
                       f" and draw element{s} {start}{f'..{-step - 1}' if s else ''} by "
                       + ("their own statements" if s else "its own statement"))

    def reads_back(self, name: str, main, report: bool) -> bool:
        """Whether an unsliced draw of latent ``name`` reads its own earlier elements (``z[t-1]``): it has no
        first element to give z a type, so the read is reported here (once) and the draw not checked."""
        d, plates = main
        scope, loops = dict(plates), self.loop_of[id(d)]
        for n in (n for a in d.dist.args for n in walk(a.value)):
            if not (isinstance(n, ast.Index) and isinstance(n.base, ast.Name) and n.base.id == name):
                continue
            for axis, ix in enumerate(n.indices):
                off = offset(ix, scope)
                if off is not None and off[1] < 0:
                    if report:
                        var, step = off
                        self.before_start(name, axis, ix, var, scope[var], loops[var].start, step)
                    return True
        return False

    def same_size(self, a: Extent, b: Extent) -> bool:
        da = self.dims[a].default if isinstance(a, str) and a in self.dims else a
        db = self.dims[b].default if isinstance(b, str) and b in self.dims else b
        return isinstance(da, int) and da == db and (isinstance(a, int) or isinstance(b, int))

    def infer_call(self, e: ast.Call, scope: dict[str, str], const: bool) -> Ty:
        f = e.func.id
        known = FUNCTIONS | (CONST_FUNCTIONS if const else frozenset())
        if f not in known:
            if f in SIGNATURES:
                hint = f"a distribution is drawn from with `~`: `x ~ {f}(…)`, not called in an expression"
            elif f in CONST_FUNCTIONS:
                hint = f"`{f}` builds constants: `const I[D, D] = {f}(D)`"
            else:
                hint = did_you_mean(f, known) or "functions: " + ", ".join(sorted(known))
            self.rep.error(f"unknown function `{f}`", e.func.span, hint)
            for a in e.args:
                self.infer(a, scope, const)
            return UNKNOWN
        want = 2 if f == "dot" else 1
        if len(e.args) != want:
            self.rep.error(f"`{f}` takes {want} argument{'s' if want > 1 else ''}, {len(e.args)} given", e.span, None)
            return UNKNOWN
        tys = [self.infer(a, scope, const) for a in e.args]
        if UNKNOWN in tys:
            return UNKNOWN
        if f == "eye":
            a = e.args[0]
            if not (isinstance(a, ast.Name) and a.id in self.dims) and not (isinstance(a, ast.Num) and a.is_int):
                self.rep.error("`eye` takes a dim or a whole number", _span(a), "write `eye(D)`")
                return UNKNOWN
            n = a.id if isinstance(a, ast.Name) else int(a.value)
            return Ty((n, n))
        if f == "dot":
            a, b = tys
            if not a.shape or not b.shape or a.shape[-1] != b.shape[0]:
                self.rep.error(f"dot of {show_shape(a.shape)} and {show_shape(b.shape)}: "
                               "the last axis of the first must match the first axis of the second", e.span,
                               "dot(a, b) contracts a's last axis with b's first")
                return UNKNOWN
            return Ty(a.shape[:-1] + b.shape[1:])
        return Ty(tys[0].shape)

    # --------------------------------------------------------------- draws
    def draw_order(self) -> list[str]:
        """Draw targets ordered so each comes after the latents it reads (Kahn); cycles are reported."""
        targets = set(self.draws)
        deps = {}
        for name, draws in self.draws.items():     # (a chain's statements together: z[0]'s and z[t]'s)
            deps[name] = {n.id for d, _ in draws for a in d.dist.args for n in walk(a.value)
                          if isinstance(n, ast.Name) and n.id in targets and n.id != name}
        order: list[str] = []
        ready = deque(n for n in self.draws if not deps[n])
        pending = {n: set(ds) for n, ds in deps.items() if ds}
        waiting: dict[str, list[str]] = {}          # n -> the pending draws that read n
        for m, ds in pending.items():
            for n in ds:
                waiting.setdefault(n, []).append(m)
        while ready:
            n = ready.popleft()
            order.append(n)
            for m in waiting.get(n, ()):
                ds = pending[m]
                ds.discard(n)
                if not ds:
                    del pending[m]
                    ready.append(m)
        if pending:
            # Walk back along dependencies from any pending node until a name repeats: that is the cycle.
            path = [next(iter(pending))]
            at = {path[0]: 0}
            while True:
                nxt = min(d for d in pending[path[-1]] if d in pending)
                if nxt in at:
                    cycle = path[at[nxt]:] + [nxt]
                    break
                at[nxt] = len(path)
                path.append(nxt)
            d = self.draws[cycle[0]][0][0]
            self.rep.error("the model is cyclic: " + " <- ".join(cycle), d.target.span,
                           "a generative model is a directed acyclic graph; no variable may depend on itself")
            self.poisoned.update(pending)
        return order

    def check_draws(self) -> None:
        for name in self.draw_order():
            draws = self.draws[name]
            declared = self.vars.get(name)
            if declared is not None and declared.kind == "latent":
                self.rep.error(f"`{name}` is declared `latent` (no prior) and cannot also be drawn with `~`",
                               draws[0][0].target.span, f"either drop `latent {name}` and keep its prior, or drop "
                               "the `~` statement and weigh it with `factor` statements")
                continue
            if declared is not None and declared.kind in ("const", "param"):
                d = draws[0][0]
                self.rep.error(f"`{name}` is a {declared.kind} and cannot be drawn with `~`", d.target.span,
                               f"declare it as `data {name}` if it is observed, or drop the declaration "
                               f"to make it latent" if declared.kind == "param" else
                               "constants are fixed; remove the `~` statement or the const")
                continue
            if name in self.dims:
                self.rep.error(f"`{name}` is a dim and cannot be drawn", draws[0][0].target.span, None)
                continue
            errors_before = len(self.rep.diagnostics) - self.form_errors
            parts = self.partition(name, draws, declared is not None)
            if parts is None:
                self.poisoned.add(name)
                continue
            main, *firsts = parts
            if declared is None and name in self.chain_axis and not firsts:
                self.poisoned.add(name)      # (its first elements were reported: z[t-1] has no type to read)
            # A latent chain's first element says what z is (z[0] ~ Categorical(pi)) before z[t]'s
            # statement reads z[t-1]; a data chain is declared already.
            for d, plates in (firsts + [main] if declared is None else [main] + firsts):
                self.check_draw(d, plates, observed=declared is not None, first=d is not main[0])
                failed = len(self.rep.diagnostics) - self.form_errors > errors_before
                if failed:
                    break
            # a draw from what did not check (z ~ Categorical(pi) after pi's error) has no known range either
            if declared is None and (failed or any(isinstance(n, ast.Name) and n.id in self.poisoned
                                                   for a in main[0].dist.args for n in walk(a.value))):
                self.poisoned.add(name)  # its type is unreliable: say nothing more about its uses

    def partition(self, name: str, draws, observed: bool) -> list | None:
        """The statements drawing ``name``: the one over whole plates first, then its first elements.

        Several statements may draw one variable only along a sliced plate: ``for t in T[1:]`` draws
        elements 1.., and ``z[0] ~ …`` (``z[s, 0]`` under the same outer loops) the ones before.
        Every element must be drawn exactly once: gaps and overlaps are reported here.
        """
        what, verb = ("observed", "observes") if observed else ("drawn", "draws")
        subs = [[subscript(i) for i in d.indices] for d, _ in draws]
        heads = {k: a for k, (d, _) in enumerate(draws) for a, x in enumerate(subs[k])    # `for t in T[:1] by seq:`
                 if isinstance(x, str) and getattr(self.loop_of[id(d)].get(x), "stop", None) is not None}
        mains = [k for k, ss in enumerate(subs) if k not in heads and not any(isinstance(x, int) for x in ss)]
        firsts = [k for k in range(len(draws)) if k not in mains]
        if not mains:
            d = draws[firsts[0]][0]
            self.rep.error(f"`{element(name, subs[firsts[0]])}` is {what} by its own statement, but no loop "
                           f"{verb} the rest of `{name}`", d.target.span,
                           f"draw the other elements in a sliced loop: `for t in T[1:]:` … `{name}[t] ~ …`")
            return None
        first_line = draws[mains[0]][0].span.line
        for k in mains[1:]:
            self.rep.error(f"`{name}` is {what} twice (first on line {first_line})", draws[k][0].target.span,
                           "each variable has exactly one `~` statement" if not firsts else
                           "slice one loop (`for t in T[1:]:`) and draw the first elements by their own statements")
        main = draws[mains[0]]
        loops = self.loop_of[id(main[0])]
        sliced = [(a, loops[x]) for a, x in enumerate(subs[mains[0]]) if x in loops and loops[x].start_span]
        for _, lp in sliced[1:]:
            self.rep.error(f"`{name}` is sliced along two plates", lp.start_span,
                           "a chain runs along one plate: slice only that loop")
        if not sliced:
            for k in firsts:
                d = draws[k][0]
                self.rep.error(f"`{element(name, subs[k])}` is {what} twice: here and by the loop on line "
                               f"{first_line}", d.target.span,
                               "slice that loop so it leaves the first elements out: `for t in T[1:]:`")
            if not observed and self.reads_back(name, main, report=not firsts):
                return None
            return [main]
        axis, loop = sliced[0]
        self.chain_axis[name] = (axis, loop)
        self.chain_plates[name] = tuple(dict(main[1])[x] for x in subs[mains[0]])
        by_element: dict[int, tuple] = {}
        plates = dict(main[1])
        for k in firsts:
            d, pl = draws[k]
            ss, here = subs[k], dict(pl)
            if k in heads or loop.by is not None:
                head = self.loop_of[id(d)].get(ss[heads[k]]) if k in heads else None
                if head is None:
                    want = list(subs[mains[0]])
                    self.rep.error(f"`{element(name, ss)}` is one element of `{loop.dim.id}`, but the loop on line "
                                   f"{first_line} draws `{name}` along the sequences of `{loop.by.id}`", d.target.span,
                                   f"draw the first step of each sequence in `for {want[axis]} in {loop.dim.id}[:1] by "
                                   f"{loop.by.id}:` … `{element(name, want)} ~ …`")
                elif head.by is None:
                    pass                # (`T[:1]` without `by`: reported by check_ride)
                elif loop.by is None:
                    self.rep.error(f"`{element(name, ss)}` is drawn at the first step of each sequence of "
                                   f"`{head.by.id}`, but the loop on line {first_line} draws `{name}` as one chain",
                                   d.target.span, f"ride that loop on the same sequences: `for {loop.var.id} in "
                                                  f"{loop.dim.id}[1:] by {head.by.id}:`")
                elif heads[k] != axis or head.by.id != loop.by.id or head.dim.id != loop.dim.id or len(ss) != 1:
                    self.rep.error(f"`{element(name, ss)}` does not match the loop on line {first_line}, which draws "
                                   f"`{element(name, subs[mains[0]])}` along `{loop.dim.id}` by `{loop.by.id}`",
                                   d.target.span, f"a ragged chain is one variable along its plate: `for t in "
                                   f"{loop.dim.id}[:1] by {loop.by.id}:` `{name}[t] ~ …`")
                elif 0 in by_element:
                    self.rep.error(f"the first steps of `{name}` are drawn twice (first on line "
                                   f"{by_element[0][0].span.line})", d.target.span,
                                   "each element has exactly one `~` statement")
                else:
                    by_element[0] = draws[k]
                continue
            same_plates = len(ss) == len(subs[mains[0]]) and isinstance(ss[axis], int) and all(
                j == axis or (isinstance(x, str) and here.get(x) == plates.get(subs[mains[0]][j]))
                for j, x in enumerate(ss))
            if not same_plates:
                want = list(subs[mains[0]])
                want[axis] = 0
                self.rep.error(f"`{element(name, ss)}` does not match the loop on line {first_line}, which "
                               f"{verb} `{element(name, subs[mains[0]])}`", d.target.span,
                               f"a first element is drawn over the same outer plates with a number on the sliced "
                               f"axis: `{element(name, want)} ~ …`")
                continue
            c = ss[axis]
            if c >= loop.start:
                self.rep.error(f"`{element(name, ss)}` is {what} twice: here and by the loop `for {loop.var.id} in "
                               f"{loop.dim.id}[{loop.start}:]` (line {loop.span.line})", d.target.span,
                               f"that loop {verb} from element {loop.start} on; " +
                               ("draw only element 0 by its own statement" if loop.start == 1 else
                                f"draw only elements 0..{loop.start - 1} by their own statements"))
            elif c in by_element:
                self.rep.error(f"`{element(name, ss)}` is {what} twice (first on line "
                               f"{by_element[c][0].span.line})", d.target.span,
                               "each element has exactly one `~` statement")
            else:
                by_element[c] = draws[k]
        size = self.dims[loop.dim.id].default if loop.dim.id in self.dims else None
        if not observed and (size is None or loop.start < size):
            # (data need no statement for their first elements: they are conditioned on; an empty slice
            # was reported by check_loops)
            for c in range(loop.start):
                if c not in by_element and loop.by is not None:
                    self.rep.error(f"the first step of each sequence of `{loop.by.id}` is never drawn: the loop "
                                   "starts at each sequence's second step", loop.start_span,
                                   f"draw them by a statement of their own, `for {loop.var.id} in {loop.dim.id}[:1] "
                                   f"by {loop.by.id}:` … `{name}[{loop.var.id}] ~ …`")
                elif c not in by_element:
                    el = list(subs[mains[0]])
                    el[axis] = c
                    self.rep.error(f"`{element(name, el)}` is never drawn: the loop starts at {loop.start} and no "
                                   f"statement draws element {c}", loop.start_span,
                                   f"draw it by its own statement, `{element(name, el)} ~ …`"
                                   + (f", or start the loop at `{loop.dim.id}[{c}:]`" if c else ""))
        return [main] + [by_element[c] for c in sorted(by_element)]

    def check_draw(self, d: ast.Draw, plates: tuple[tuple[str, str], ...], observed: bool,
                   first: bool = False) -> None:
        sig = SIGNATURES.get(d.dist.name.id)
        scope: dict[str, str] = {}
        for var, dim in plates:
            scope[var] = dim
        loops = self.loop_of[id(d)]
        self.starts = {v: lp.start for v, lp in loops.items() if lp.start}
        self.target = d
        # Target subscripts: the enclosing loop variables, each exactly once (a first element: a number
        # on the chain's axis, checked by partition).
        idx: list[str] = []
        fixed: list[tuple[int, int]] = []
        ok = True
        head = next((i.id for i in d.indices if first and isinstance(i, ast.Name) and i.id in loops
                     and loops[i.id].stop is not None), None)
        if head is not None:       # the first step of each sequence: element 0 of each, t outside its expressions
            del scope[head]
            plates = tuple(p for p in plates if p[0] != head)
            read = next((n for a in d.dist.args for n in walk(a.value) if isinstance(n, ast.Name) and n.id == head), None)
            if read is not None:
                self.rep.error(f"the first step of a sequence cannot read `{head}`: every sequence starts alike",
                               read.span, f"give every first step one distribution, its arguments without "
                                          f"`{head}`: `{d.target.id}[{head}] ~ Categorical(pi)`")
                return
        for axis, i in enumerate(d.indices):
            if first and isinstance(i, ast.Num) and i.is_int:
                fixed.append((axis, int(i.value)))
            elif isinstance(i, ast.Name) and i.id == head:
                fixed.append((axis, 0))
            elif not isinstance(i, ast.Name) or i.id not in scope:
                self.rep.error("the left of `~` is subscripted by loop variables only", _span(i),
                               "write `x[n] ~ …` inside `for n in N:`")
                ok = False
            elif i.id in idx:
                self.rep.error(f"loop variable `{i.id}` subscripts `{d.target.id}` twice", i.span, None)
                ok = False
            else:
                idx.append(i.id)
        if ok:
            missing = [v for v, _ in plates if v not in idx]
            if missing:
                what = "observed" if observed else "drawn"
                self.rep.error(f"`{d.target.id}` is {what} once per `{missing[0]}` but not indexed by it",
                               d.target.span, f"add `{missing[0]}` to its subscripts, or move the statement "
                               f"out of the loop over `{missing[0]}`")
                ok = False
        plate_shape = tuple(scope[v] for v in idx)
        if first:                              # z[0]: z's plates are those of the loop's statement
            plate_shape = self.chain_plates[d.target.id]
        if sig is None:
            self.rep.error(f"unknown distribution `{d.dist.name.id}`", d.dist.name.span,
                           did_you_mean(d.dist.name.id, SIGNATURES) or
                           "distributions: " + ", ".join(SIGNATURES))
            for a in d.dist.args:
                self.infer(a.value, scope)
            self.placeholder(d, plate_shape, observed)
            return
        args = self.bind_args(sig, d.dist)
        event: tuple[Extent, ...] = ()
        rng: Extent | None = None
        arg_types: dict[str, Ty] = {}
        for pname, expr in (args or {}).items():
            arg_types[pname] = self.infer(expr, scope)
        if args is not None:
            event, rng = self.check_params(sig, d, args, arg_types, scope)
        support = sig.support
        shape = plate_shape + event
        if args is not None:
            self.check_stick_uses(sig, args, scope)
        if sig.name == "StickBreaking" and observed:
            self.rep.error("StickBreaking draws latent weights; observed weights have no stick-breaking density "
                           "here", d.target.span, "give observed weights a Dirichlet, or make them a `param`")
        elif sig.name == "StickBreaking":
            # the derivation sees the sticks v ∈ (0, 1)^K, whose weights π the statement names
            support = "unit_interval"
            self.sticks.add(d.target.id)
        if observed:
            self.check_observed(d, sig, shape, idx, rng)
        elif d.target.id not in self.vars:
            self.vars[d.target.id] = Variable(d.target.id, "latent", shape, support, d.target.span,
                                              rng if support == "index" else None)
        elif d.target.id in self.chain_axis:
            self.same_as_loop(d, sig.name, shape, support, rng)
        if args is not None and ok:
            parents = []
            earlier = self.earlier_reads(d, args, scope)
            for expr in args.values():
                for node in walk(expr):
                    n = node.id if isinstance(node, ast.Name) else None
                    if n and n in self.vars and n not in scope and n not in parents and n != d.target.id:
                        parents.append(n)
                    if n == d.target.id and id(node) not in earlier:
                        self.rep.error(f"`{n}` depends on itself", node.span,
                                       "a variable's distribution cannot use the variable"
                                       + (f" (an element may read earlier ones: `{n}[t-1]` in a sliced loop)"
                                          if d.indices else ""))
            ride = self.chain_axis.get(d.target.id, (0, None))[1]
            if ride is not None and ride.by is not None and not first and ride.by.id not in parents:
                parents.append(ride.by.id)       # (a ragged chain's own statement restarts where `by` changes)
            if sig.name == "StudentT":
                self.scale_mixture(d, args, tuple(idx), plates, tuple(parents), observed)
            elif sig.name in LOGISTIC_LINKS and self._logistic(args):
                self.polya_gamma(d, sig.name, args, tuple(idx), plates, tuple(parents), observed)
            elif sig.name == "Poisson" and self._superposed(args):
                self.superposition(d, args, tuple(idx), plates, tuple(parents), observed)
            else:
                if d.target.id in self.chain_axis:
                    self.chain_factors.setdefault(d.target.id, []).append(len(self.factors))
                self.factors.append(Factor(len(self.factors), d.target.id, tuple(idx), plates, sig.name,
                                           tuple(args.items()), tuple(parents), observed, d.span, tuple(fixed),
                                           tuple((v, loops[v].start) for v, _ in plates if loops[v].start)))

    def same_as_loop(self, d: ast.Draw, dist: str, shape, support: str, rng) -> None:
        """Every statement of a chain draws its elements alike: same support, shape and categories."""
        v = self.vars[d.target.id]
        line = v.span.line
        if v.support != support or (support == "index" and rng is not None and rng != v.support_dim
                                    and not self.same_size(rng, v.support_dim)):
            def word(sup, k):
                return f"index({k})" if sup == "index" and k is not None else sup
            self.rep.error(f"{dist} draws {word(support, rng)} values but `{v.name}` is {word(v.support, v.support_dim)} "
                           f"(drawn on line {line})", d.dist.span,
                           "every element of a variable has the same support: draw them all from one family")
        elif tuple(shape) != tuple(v.shape) and "?" not in shape:
            self.rep.error(f"this draws `{v.name}` as {show_shape(shape)} but line {line} as {show_shape(v.shape)}",
                           d.dist.span, "every element of a variable has the same shape")

    def earlier_reads(self, d: ast.Draw, args: dict[str, ast.Expr], scope: dict[str, str]) -> set[int]:
        """The uses of the target offset along one axis (``z[t-1]`` in ``z[t] ~ …``, ``z[0]`` in
        ``z[1] ~ …``), by node id; records the chain's lag.  Only a look-back along the chain's sliced
        axis is valid: a loop offset that is not was reported where its index was checked, a later
        literal element is reported here."""
        name = d.target.id
        axis = self.chain_axis[name][0] if name in self.chain_axis else None
        out: set[int] = set()
        for expr in args.values():
            for node in walk(expr):
                if not (isinstance(node, ast.Index) and node.base.id == name
                        and len(node.indices) == len(d.indices)):
                    continue
                steps = []
                for mine, read in zip(d.indices, node.indices):
                    at = subscript(mine)
                    if isinstance(at, str):
                        off = offset(read, scope)
                        steps.append(off[1] if off is not None and off[0] == at else None)
                    else:
                        steps.append(int(read.value) - at if isinstance(read, ast.Num) and read.is_int else None)
                moved = [j for j, st in enumerate(steps) if st != 0]
                if None in steps or len(moved) != 1:
                    continue
                j = moved[0]
                out.add(id(node.base))
                if j == axis and steps[j] < 0:
                    self.lags[name] = max(self.lags.get(name, 0), -steps[j])
                elif not isinstance(subscript(d.indices[j]), str):
                    self.rep.error(f"`{_text(self.rep, node)}` is a later element of `{name}`", node.span,
                                   "an element may depend only on earlier elements of its variable")
        return out

    # -------------------------------------------------------- energy terms
    def check_energies(self) -> None:
        """Each prior-less latent gets a flat factor (log density 0, the counting or Lebesgue measure) that
        carries its plates; each ``factor EXPR`` becomes a factor whose log density is EXPR."""
        for name, s in self.priorless.items():
            if name in self.poisoned:
                continue
            v = self.vars[name]
            used = set(self.decl_span) | set(self.dims)
            plates = []
            for dim in v.shape:
                var = next(c for c in (dim.lower(), "i", "j", "l", "m", "a", "b", "c", "e", "f", "g", "h")
                           + tuple(f"i{n}" for n in range(len(v.shape))) if c not in used)
                used.add(var)
                plates.append((var, dim))
            self.factors.append(Factor(len(self.factors), name, tuple(p for p, _ in plates), tuple(plates), FLAT,
                                       (), (), False, s.name.span))
        weighed: set[str] = set()
        for s, plates in self.energies:
            scope = dict(plates)
            loops = self.loop_of[id(s)]
            self.target, self.starts = None, {v: lp.start for v, lp in loops.items() if lp.start}
            weighed.update(n.id for n in walk(s.expr) if isinstance(n, ast.Name) and n.id not in scope)
            before = len(self.rep.diagnostics)
            t = self.infer(s.expr, scope)
            if len(self.rep.diagnostics) > before or t is UNKNOWN:
                continue
            if t.shape:
                self.rep.error(f"a factor adds a scalar to log p̃; this is {show_shape(t.shape)}", _span(s.expr),
                               f"sum it, e.g. `factor sum(j in {t.shape[0]}: …)`, or write the statement inside "
                               "loops")
                continue
            vector = next((n for n in walk(s.expr) if isinstance(n, ast.Vector)), None)
            if vector is not None:
                self.rep.error("a vector literal inside a model statement", vector.span,
                               "declare it as a constant: `const c[K] = [ … ]`, and use `c`")
                continue
            names = list(dict.fromkeys(n.id for n in walk(s.expr) if isinstance(n, ast.Name) and n.id in self.vars
                                       and n.id not in scope and self.vars[n.id].kind != "const"))
            param = next((n for n in walk(s.expr) if isinstance(n, ast.Name) and n.id in names
                          and self.vars[n.id].kind == "param"), None)
            if param is not None:
                self.rep.error(f"param `{param.id}` cannot be learned from an energy term", param.span,
                               "learning it needs the gradient of log Z, which mean field does not give: make "
                               f"`{param.id}` a const or data (a fixed value)")
                continue
            latents = [n for n in names if self.vars[n].kind == "latent"]
            if not latents:
                self.rep.error("this factor reads no latent: it adds a constant to log p̃ and changes nothing",
                               s.span, "an energy term weighs latents, e.g. `factor J[i, j] * s[i] * s[j]`")
                continue
            self.factors.append(Factor(len(self.factors), latents[0], (), plates, ENERGY, (("energy", s.expr),),
                                       tuple(n for n in names if n != latents[0]), False, s.span,
                                       slices=tuple((v, loops[v].start) for v, _ in plates if loops[v].start)))
        for name, s in self.priorless.items():
            if name not in weighed and name not in self.poisoned:
                self.rep.error(f"latent `{name}` has no prior and appears in no `factor`", s.name.span,
                               f"weigh it with an energy term, e.g. `factor b * {name}"
                               f"{'[…]' if s.shape else ''}`, or give it a prior: `{name} ~ …`")

    def fresh_latent(self, stem: str) -> str:
        """A name for a latent the checker adds (an augmentation's weight or allocation): ``stem``, with ``_``
        appended until no variable, draw or dim of the model has it."""
        name = stem
        while name in self.vars or name in self.draws or name in self.dims:
            name += "_"
        return name

    def scale_mixture(self, d: ast.Draw, args: dict[str, ast.Expr], idx: tuple[str, ...],
                      plates: tuple[tuple[str, str], ...], parents: tuple[str, ...], observed: bool) -> None:
        """StudentT(ν, μ, σ) as the Gamma scale mixture it is (PRML 2.160): a local precision weight
        w ~ Gamma(ν/2, ν/2) per element, and the value ~ Normal(μ, precision = w/σ²) (or w·τ for
        ``precision = τ``); integrating w out gives back the Student-t.  Both are ordinary factors, so
        19.56 derives q(w) (a Gamma) like any other."""
        nu = args["nu"]
        if any(isinstance(n, ast.Name) and n.id in self.vars and self.vars[n.id].kind not in ("const", "data")
               for n in walk(nu)):
            self.rep.error("`nu` of StudentT must be known (a constant or data)", _span(nu),
                           "ppvi has no conjugate q for the degrees of freedom: fix them, e.g. `StudentT(4, …)`")
            return
        weight = self.fresh_latent(f"{d.target.id}_weight")
        span = d.span
        shape = tuple(dict(plates)[i] for i in idx)
        self.vars[weight] = Variable(weight, "latent", shape, "positive", d.target.span)
        ref = _element(weight, idx, span)
        half = ast.BinOp("/", nu, ast.Num(2.0, False, span), span)
        nu_parents = tuple(p for p in parents if any(isinstance(n, ast.Name) and n.id == p for n in walk(nu)))
        self.factors.append(Factor(len(self.factors), weight, idx, plates, "Gamma",
                                   (("shape", half), ("rate", half)), nu_parents, False, span))
        if "sd" in args:
            sd = args["sd"]
            precision = ast.BinOp("/", ref, ast.BinOp("^", sd, ast.Num(2.0, True, span), span), span)
        else:
            precision = ast.BinOp("*", ref, args["precision"], span)
        self.factors.append(Factor(len(self.factors), d.target.id, idx, plates, "Normal",
                                   (("mean", args["mean"]), ("precision", precision)), parents + (weight,),
                                   observed, span))

    def _logistic(self, args: dict[str, ast.Expr]) -> bool:
        """``p = sigmoid(ψ)`` with ψ reading a latent: the case Pólya-Gamma augmentation makes conjugate
        (a ψ of data and params alone stays a plain likelihood)."""
        p = args.get("p")
        return isinstance(p, ast.Call) and p.func.id == "sigmoid" and any(
            isinstance(n, ast.Name) and n.id in self.vars and self.vars[n.id].kind == "latent"
            for n in walk(p.args[0]))

    def polya_gamma(self, d: ast.Draw, dist: str, args: dict[str, ast.Expr], idx: tuple[str, ...],
                    plates: tuple[tuple[str, str], ...], parents: tuple[str, ...], observed: bool) -> None:
        """``y ~ Bernoulli(sigmoid(ψ))`` (also Binomial(n, ·), NegativeBinomial(r, ·)) with its Pólya-Gamma
        weight (Polson, Scott & Windle 2013): a local ω ~ PG(b, 0) per element, b = 1, n or y + r, and the
        statement keeps its law with ω as an extra argument ``pg``.  Given ω its log density is quadratic in
        ψ (ppvi.derive.lower.augmented), and integrating ω out gives back the logistic likelihood, so 19.56
        derives q(ψ's latents) and q(ω) = PG(b, c) like any other q (docs/derivation.md, section 9)."""
        span = d.span
        shape = tuple(dict(plates)[i] for i in idx)
        if dist == "Bernoulli":
            b: ast.Expr = ast.Num(1.0, True, span)
        elif dist == "Binomial":
            b = args["n"]
        else:
            if not observed:
                self.rep.error("a latent NegativeBinomial count has no conjugate q", d.target.span,
                               "observe it (`data` with support count), or give the count a Poisson law")
                return
            r = args["r"]
            if any(isinstance(n, ast.Name) and n.id in self.vars and self.vars[n.id].kind in ("latent", "param")
                   for n in walk(r)):
                self.rep.error("`r` of NegativeBinomial(r, sigmoid(…)) must be known (a constant or data)",
                               _span(r), "its Pólya-Gamma weight needs the number of failures r: fix it, "
                               "e.g. `NegativeBinomial(5, sigmoid(…))`")
                return
            b = ast.BinOp("+", _element(d.target.id, idx, span), r, span)
        weight = self.fresh_latent(f"{d.target.id}_pg")
        self.vars[weight] = Variable(weight, "latent", shape, "polya_gamma", d.target.span)
        b_parents = tuple(p for p in parents if any(isinstance(n, ast.Name) and n.id == p for n in walk(b)))
        self.factors.append(Factor(len(self.factors), weight, idx, plates, "PolyaGamma", (("b", b),), b_parents,
                                   False, span))
        self.factors.append(Factor(len(self.factors), d.target.id, idx, plates, dist,
                                   tuple(args.items()) + (("pg", _element(weight, idx, span)),), parents + (weight,),
                                   observed, span))

    def _superposed(self, args: dict[str, ast.Expr]) -> bool:
        """``rate = sum(k in K: t_k)`` with t_k a product of variables and numbers, one of them a latent: the
        case the superposition augmentation makes conjugate (a rate of data and params alone stays a plain
        likelihood; any other form is left to the derivation, which names what is not conjugate)."""
        rate = args.get("rate")
        if not isinstance(rate, ast.PlateSum):
            return False
        factors, stack = [], [rate.body]
        while stack:
            e = stack.pop()
            if isinstance(e, ast.BinOp) and e.op == "*":
                stack += [e.left, e.right]
            elif isinstance(e, (ast.Name, ast.Index, ast.Num)):
                factors.append(e)
            else:
                return False
        names = [e.base.id if isinstance(e, ast.Index) else e.id for e in factors if not isinstance(e, ast.Num)]
        return any(n in self.vars and self.vars[n].kind == "latent" for n in names)

    def superposition(self, d: ast.Draw, args: dict[str, ast.Expr], idx: tuple[str, ...],
                      plates: tuple[tuple[str, str], ...], parents: tuple[str, ...], observed: bool) -> None:
        """``y ~ Poisson(sum(k in K: t_k))`` as the superposition it is (Cemgil 2009; Gopalan, Hofman & Blei
        2015, section 3): y = Σ_k c_k with c_k ~ Poisson(t_k) independent, and given y the allocation c is
        Multinomial(y, t/Σt).  The allocation is a local latent ``y_alloc`` over K per element: y draws of
        a Categorical, one q shared by them, so its q is Multinomial(y, φ); the statement keeps its law with
        the allocation as an extra argument ``alloc``.  Given c the log density is linear in log t_k and t_k
        (ppvi.derive.lower.superposed), so 19.56 derives Gamma q's of the t_k's latents and q(φ) like any
        other q (docs/derivation.md, section 9.1)."""
        rate = args["rate"]
        assert isinstance(rate, ast.PlateSum)
        if not observed:
            self.rep.error(f"a latent Poisson count whose rate is a sum over `{rate.dim.id}` has no conjugate q",
                           d.target.span, "observe it (`data` with support count): ppvi splits an observed count "
                           "among the terms of the sum (the superposition augmentation), or draw each term's "
                           "count by its own Poisson statement")
            return
        if d.target.id in self.vars and self.vars[d.target.id].missing:
            self.rep.error(f"`{d.target.id}` has missing entries, and its rate is a sum over `{rate.dim.id}`",
                           d.target.span, "the superposition augmentation splits observed counts only: leave the "
                           "missing entries out of the data (a plate over the observed ones)")
            self.poisoned.add(d.target.id)      # (reported here: not again as never drawn)
            return
        span = d.span
        shape = tuple(dict(plates)[i] for i in idx)
        alloc = self.fresh_latent(f"{d.target.id}_alloc")
        self.vars[alloc] = Variable(alloc, "latent", shape, "index", d.target.span, rate.dim.id)
        ref = _element(alloc, idx, span)
        self.factors.append(Factor(len(self.factors), alloc, idx, plates, FLAT, (), (), False, span))
        self.factors.append(Factor(len(self.factors), d.target.id, idx, plates, "Poisson",
                                   tuple(args.items()) + (("alloc", ref),), parents + (alloc,), observed, span))

    def check_stick_uses(self, sig: Signature, args: dict[str, ast.Expr], scope: dict[str, str]) -> None:
        """Stick-breaking weights enter the log joint only as a Categorical's p (log π_k is a sum of the
        sticks' log v and log(1 − v)); anywhere else they have no conjugate form."""
        for pname, expr in args.items():
            whole = sig.name == "Categorical" and pname == "p" and self._ref(expr, scope) is not None
            for n in walk(expr):
                if isinstance(n, ast.Name) and n.id in self.sticks and n.id not in scope and not whole:
                    self.rep.error(f"`{n.id}` holds stick-breaking weights: it can only be the `p` of a "
                                   "Categorical", n.span, f"`z[n] ~ Categorical({n.id})`; for weights used "
                                   f"elsewhere give `{n.id}` a Dirichlet prior")
                    return

    def placeholder(self, d: ast.Draw, shape, observed: bool) -> None:
        if not observed and d.target.id not in self.vars:
            self.vars[d.target.id] = Variable(d.target.id, "latent", shape, "real", d.target.span)

    def bind_args(self, sig: Signature, dist: ast.Distribution) -> dict[str, ast.Expr] | None:
        """Positional and keyword arguments -> {canonical name: expr}."""
        bound: dict[str, ast.Expr] = {}
        ok = True
        seen_kw = False
        for i, a in enumerate(dist.args):
            if a.keyword is None:
                if seen_kw:
                    self.rep.error("positional argument after a keyword argument", a.span,
                                   f"usage: {sig.usage()}")
                    ok = False
                    continue
                if i >= len(sig.positional):
                    self.rep.error(f"{sig.name} takes {len(sig.positional)} positional "
                                   f"argument{'s' if len(sig.positional) > 1 else ''}, {len(dist.args)} given",
                                   a.span, f"usage: {sig.usage()}")
                    ok = False
                    continue
                name = sig.positional[i]
            else:
                seen_kw = True
                name = a.keyword.id
                if sig.param(name) is None:
                    self.rep.error(f"{sig.name} has no parameter `{name}`", a.keyword.span,
                                   did_you_mean(name, [p.name for p in sig.params]) or f"usage: {sig.usage()}")
                    ok = False
                    continue
            if name in bound:
                self.rep.error(f"parameter `{name}` of {sig.name} is given twice", a.span, f"usage: {sig.usage()}")
                ok = False
                continue
            bound[name] = a.value
        if not ok:
            return None
        missing = [p for p in sig.required() if p not in bound]
        if missing:
            self.rep.error(f"{sig.name} is missing `{missing[0]}`", dist.span, f"usage: {sig.usage()}")
            return None
        if sig.one_of:
            given = [p for p in sig.one_of if p in bound]
            if len(given) != 1:
                what = "none" if not given else " and ".join(f"`{g}`" for g in given)
                self.rep.error(f"{sig.name} needs exactly one of {', '.join(sig.one_of)}; {what} given", dist.span,
                               f"usage: {sig.usage()}")
                return None
        # Canonical order: the signature's.
        return {p.name: bound[p.name] for p in sig.params if p.name in bound}

    def check_params(self, sig: Signature, d: ast.Draw, args: dict[str, ast.Expr],
                     tys: dict[str, Ty], scope: dict[str, str]) -> tuple[tuple[Extent, ...], Extent | None]:
        """Ranks and domains of the arguments; returns the event shape and, for Categorical, its range."""
        event: tuple[Extent, ...] = ()
        rng: Extent | None = None
        for pname, expr in args.items():
            p = sig.param(pname)
            t = tys[pname]
            if t is UNKNOWN:
                continue
            if len(t.shape) != p.rank:
                want = ("a scalar", "a vector", "a matrix")[p.rank]
                if p.rank == 0:
                    hint = f"index it down to a scalar, e.g. `{_text(self.rep, expr)}[k]`"
                elif not t.shape:
                    hint = f"pass a {('', 'vector', 'matrix')[p.rank]} constant, e.g. `const {pname}[{', '.join(['K', 'K'][:p.rank])}] = …`"
                else:
                    hint = f"`{pname}` of {sig.name} is {want}"
                self.rep.error(f"`{pname}` of {sig.name} must be {want}, got {show_shape(t.shape)}", _span(expr), hint)
                continue
            if p.rank == 2 and t.shape[0] != t.shape[1]:
                self.rep.error(f"`{pname}` of {sig.name} must be square, got {show_shape(t.shape)}", _span(expr), None)
                continue
            if p.rank >= 1:
                if event and event[0] != t.shape[0]:
                    self.rep.error(f"`{pname}` has size {t.shape[0]} but the event size is {event[0]}",
                                   _span(expr), "the mean and the matrix of a MvNormal share their size")
                    continue
                event = (t.shape[0],)
                if sig.name == "Categorical":
                    rng = t.shape[0]
            self.check_domain(sig, pname, p.domain, expr, t)
            self.check_structure(sig, p, expr, scope)
        if sig.event_rank == 0:
            event = ()
        elif sig.event_rank == 2:
            event = (event[0], event[0]) if event else ()
        return event, rng

    def check_structure(self, sig: Signature, p: Param, expr: ast.Expr, scope: dict[str, str]) -> None:
        """What the derivation would refuse for the form of an argument, not for conjugacy: a vector
        literal, a matrix it must name (MvNormal's precision and cov, Wishart's scale), a variable
        whose support is not the parameter's domain (a Categorical of Beta draws is not normalised).
        A `data` variable declared without a support takes the domain's; its values are checked on load."""
        before = len(self.rep.diagnostics)
        self._check_structure(sig, p, expr, scope)
        self.form_errors += len(self.rep.diagnostics) - before

    def _check_structure(self, sig: Signature, p: Param, expr: ast.Expr, scope: dict[str, str]) -> None:
        where = f"`{p.name}` of {sig.name}"
        if p.domain == "count":
            self._known_total(where, expr, scope)
            return
        if any(isinstance(n, ast.Vector) for n in walk(expr)):
            self.rep.error("a vector literal inside a model statement", _span(expr),
                           "declare it as a constant: `const c[K] = [ … ]`, and use `c`")
            return
        ref = self._ref(expr, scope)
        if (sig.name, p.name) in NAMED_MATRIX:
            if ref is None and (sig.name, p.name) == ("MvNormal", "precision"):
                ref, expr = self._scaled_matrix(sig, p, expr, scope)
            if not self._named_matrix(sig, p, expr, ref, scope):
                return
        if ref is None:
            if p.domain == "simplex" and any(isinstance(n, ast.Name) and n.id in self.vars
                                             and self.vars[n.id].kind != "const" for n in walk(expr)):
                self.rep.error(f"{where} must be a simplex; an expression is not normalised", _span(expr),
                               "pass a variable: a Dirichlet latent, a `: simplex` data or param, or a constant")
            return
        allowed = DOMAIN_SUPPORTS.get(p.domain)
        if allowed is None or ref.kind == "const" or ref.support in allowed:
            return
        if p.domain == "simplex" and ref.name in self.sticks:
            return                          # StickBreaking weights: a simplex, held as their sticks
        narrow = DOMAIN_DATA_SUPPORT[p.domain]
        if ref.kind == "data" and (ref.support == "real" or (ref.support, narrow) == ("positive", "unit_interval")):
            self.vars[ref.name] = Variable(ref.name, ref.kind, ref.shape, narrow, ref.span, ref.support_dim)
            return
        if ref.kind == "param" and p.domain != "simplex":
            return          # the M-step keeps a param where its stationarity condition puts it
        must = f"{where} must be {DOMAIN_WORDS[p.domain]}"
        if ref.kind == "latent":
            prior = next((f.dist for f in self.factors if f.target == ref.name), None)
            hint = f"give `{ref.name}` a {DOMAIN_PRIOR[p.domain]} prior"
            if (sig.name, p.name) in LOG_GAMMA_SHAPES:
                hint += (f" and `approximate {ref.name} by point` (a `{p.name}` enters through log Γ, which no q "
                         f"family absorbs), or make `{ref.name}` a const or data")
            elif p.domain == "simplex":
                hint += f", or make `{ref.name}` a `: simplex` data or param"
            elif sig.name == "Normal":
                hint += f" and write `precision = {ref.name}` (conjugate)"
            self.rep.error(f"{must}, but `{ref.name}` is {SUPPORT_WORDS[ref.support]}"
                           + (f" (its prior is {prior})" if prior else ""), _span(expr), hint)
        elif ref.kind == "param":
            self.rep.error(f"{must}, but param `{ref.name}` is {SUPPORT_WORDS[ref.support]}", _span(expr),
                           f"declare it `param {_declared(ref)} : simplex`")
        else:
            self.rep.error(f"{must}, but data `{ref.name}` is declared `{ref.support}`", _span(expr),
                           f"declare it `data {_declared(ref)} : {narrow}`" if narrow in SUPPORT_ANNOTATIONS else
                           f"drop the annotation: data used as {where} are checked to be "
                           f"{DOMAIN_WORDS[p.domain]} when read")

    def _known_total(self, where: str, expr: ast.Expr, scope: dict[str, str]) -> None:
        """A count total (Binomial's and Multinomial's n) is known: a constant expression, or a const or
        data variable alone or subscripted by loop variables, so the data can be checked against it on load
        (``ppvi.io.totals``).  A data variable declared without a support takes `count`."""
        names = [n for n in walk(expr) if isinstance(n, ast.Name) and n.id in self.vars]
        if all(self.vars[n.id].kind == "const" for n in names) and not any(
                isinstance(n, ast.Name) and n.id in scope for n in walk(expr)):
            return                                            # (its value is checked by check_domain)
        ref = self._ref(expr, scope)
        subscripts = expr.indices if isinstance(expr, ast.Index) else ()
        if ref is not None and ref.kind in ("latent", "param"):
            self.rep.error(f"{where} must be a known count, but `{ref.name}` is a {ref.kind}", _span(expr),
                           "ppvi has no q for an unknown number of trials: give the totals as data, "
                           "`data n[N] : count`")
        elif ref is None or ref.kind not in ("const", "data") or not all(
                isinstance(i, ast.Name) and i.id in scope for i in subscripts):
            self.rep.error(f"{where} must be a known count: a constant, or a const or data variable "
                           "subscripted by loop variables", _span(expr),
                           "declare the totals as data, `data n[N] : count`, and write `n[i]`")
        elif ref.kind == "data" and ref.support == "real":
            self.vars[ref.name] = Variable(ref.name, ref.kind, ref.shape, "count", ref.span, ref.support_dim)
        elif ref.kind == "data" and ref.support not in ("count", "binary"):
            self.rep.error(f"{where} must be a count, but data `{ref.name}` is declared `{ref.support}`",
                           _span(expr), f"declare it `data {_declared(ref)} : count`")

    def _scaled_matrix(self, sig: Signature, p: Param, expr: ast.Expr,
                       scope: dict[str, str]) -> tuple[Variable | None, ast.Expr]:
        """``s * M`` as a precision (PRML 10.2's coupled prior N(m0, (β0 Λ)⁻¹)): checks that s is
        positive and returns M's variable and expression; (None, expr) for anything else."""
        if not (isinstance(expr, ast.BinOp) and expr.op == "*"):
            return None, expr
        for matrix, scalar in ((expr.left, expr.right), (expr.right, expr.left)):
            ref = self._ref(matrix, scope)
            if ref is not None and len(self.infer(matrix, scope).shape) == 2 and not self.infer(scalar, scope).shape:
                self._check_structure(sig, Param(p.name, "positive", 0), scalar, scope)
                return ref, matrix
        return None, expr

    def _named_matrix(self, sig: Signature, p: Param, expr: ast.Expr, ref: Variable | None,
                      scope: dict[str, str]) -> bool:
        """Where the derivation needs one matrix it can name (its inverse and log-determinant are taken
        once, from its values), a const, data or (precision=) a latent must stand."""
        kinds = NAMED_MATRIX[(sig.name, p.name)]
        if ref is not None and ref.kind in kinds:
            return True
        what = "a " + ", ".join(kinds[:-1]) + f" or {kinds[-1]} variable"
        if (sig.name, p.name) == ("MvNormal", "precision"):
            what += ", or a positive scalar times one"
        if ref is None:
            hint = self._name_it(sig, p, expr, scope)
        elif ref.kind == "param":
            hint = f"its inverse and log-determinant are taken once: make `{ref.name}` a const or data"
        elif p.name == "cov":
            hint = "an unknown covariance is written `precision = Lambda` with `Lambda ~ Wishart(…)`"
        else:
            hint = "ppvi has no conjugate q for an unknown Wishart scale: give it a value (const or data)"
        self.rep.error(f"`{p.name}` of {sig.name} must name a matrix: {what}", _span(expr), hint)
        return False

    def _name_it(self, sig: Signature, p: Param, expr: ast.Expr, scope: dict[str, str]) -> str:
        """The hint for a matrix written as an expression. A const may hold one made of constants; a const
        cannot depend on data, so one over data becomes a data variable holding its value; one over a
        latent or param has no value before the fit."""
        dims = ", ".join(str(s) for s in self.infer(expr, scope).shape) or "D, D"
        used = {self.vars[n.id].kind: n.id for n in reversed(list(walk(expr))) if isinstance(n, ast.Name)
                and n.id not in scope and n.id in self.vars and self.vars[n.id].kind != "const"}
        text = _text(self.rep, expr)
        if not used:
            return f"declare it first, `const P[{dims}] = {text}` or `data P[{dims}]`, and pass its name"
        if set(used) == {"data"}:
            return (f"it depends on data `{used['data']}`, which a const cannot: compute `{text}` before the fit, "
                    f"pass it as `data P[{dims}]`, and write `P`")
        kind = "latent" if "latent" in used else "param"
        if "latent" in NAMED_MATRIX[(sig.name, p.name)]:
            return f"it depends on {kind} `{used[kind]}`: give the matrix a prior of its own, `P ~ Wishart(…)`, and write `P`"
        return f"it depends on {kind} `{used[kind]}`: ppvi has no conjugate q for an unknown {sig.name} {p.name}"

    def _ref(self, expr: ast.Expr, scope: dict[str, str]) -> Variable | None:
        """The variable an argument names, alone or indexed (``Lambda``, ``Lambda[z[n]]``)."""
        if isinstance(expr, (ast.Name, ast.Index)):
            name = expr.id if isinstance(expr, ast.Name) else expr.base.id
            if name not in scope and name not in self.poisoned:
                return self.vars.get(name)
        return None

    def check_domain(self, sig: Signature, pname: str, domain: str, expr: ast.Expr, t: Ty) -> None:
        """A constant argument outside its parameter's domain (a negative sd, say) is an error now."""
        if not self.finite(expr) or any(isinstance(n, ast.Name) and n.id in self.vars
                                        and self.vars[n.id].kind != "const" for n in walk(expr)):
            return
        try:
            val = self._eval(expr)
        except consts.NotConstant:
            return
        if val is None:
            return
        v = self.full_value(np.asarray(val, dtype=float), t.shape)
        span = _span(expr)
        where = f"`{pname}` of {sig.name}"
        if not np.all(np.isfinite(v)):
            self.rep.error(f"{where} is not finite", span, None)
        elif domain in ("positive", "df") and np.any(v <= 0):
            self.rep.error(f"{where} must be positive, got {_show(v)}", span,
                           "a scale, rate, shape or concentration is > 0")
        elif domain == "count" and np.any((v < 0) | (v != np.round(v))):
            self.rep.error(f"{where} must be a whole number ≥ 0, got {_show(v)}", span, "a number of trials")
        elif domain == "unit" and np.any((v < 0) | (v > 1)):
            self.rep.error(f"{where} must lie in [0, 1], got {_show(v)}", span, "a probability")
        elif domain == "simplex" and (np.any(v < 0) or self.not_normalised(v, t.shape)):
            self.rep.error(f"{where} must be non-negative and sum to 1", span, "normalise the weights")
        elif domain == "pd" and v.ndim == 2 and v.size and (not np.allclose(v, v.T) or np.linalg.eigvalsh(v).min() <= 0):
            self.rep.error(f"{where} must be symmetric positive definite", span, "e.g. `eye(D)`")

    def not_normalised(self, v: np.ndarray, shape: tuple[Extent, ...]) -> bool:
        """Σ along the last axis of the value that ``v`` stands for (compact or not) is not 1."""
        last = shape[-1] if shape else 1
        last = self.dims[last].default if isinstance(last, str) else last
        if v.ndim and v.shape[-1] == last:
            sums = v.sum(axis=-1)
        elif last is None:
            return False                   # (a scalar fills an axis whose size only the data give)
        else:
            sums = (v[..., 0] if v.ndim else v) * last
        return bool(abs(sums - 1).max() > 1e-9)

    def check_observed(self, d: ast.Draw, sig: Signature, shape: tuple[Extent, ...], idx: list[str],
                       rng: Extent | None) -> None:
        v = self.vars[d.target.id]
        if v.name in self.poisoned:
            return                            # (its declaration was reported)
        if tuple(shape) != tuple(v.shape) and "?" not in shape:
            self.rep.error(f"`{v.name}` is declared {show_shape(v.shape)} but this draws {show_shape(shape)}",
                           d.target.span, f"subscript it by the loops over {show_shape(v.shape)}"
                           + (f" ({sig.name} values have {sig.event_rank} event axes)" if sig.event_rank else ""))
        allowed = COMPATIBLE[sig.support]
        annotated = v.support
        if annotated not in allowed:
            self.rep.error(f"`{v.name}` is declared `{annotated}` but {sig.name} values are {sig.support}",
                           d.target.span, f"drop the annotation or declare `data {v.name} : {sig.support}`")
            return
        if v.missing:
            self.drawn_missing[v.name] = (sig.name, sig.support, rng if sig.support == "index" else None, d.target.span)
        # The distribution tells the support when the declaration does not, and narrows a `count`: a Bernoulli's
        # values are 0 or 1, a Categorical's the labels 0..K-1 (the data are checked against them when bound).
        narrows = annotated == "count" and (sig.support == "binary" or (sig.support == "index" and rng is not None))
        if narrows or (annotated == "real" and sig.support not in ("real", "real_vector", "pd_matrix")):
            self.vars[v.name] = Variable(v.name, v.kind, v.shape, sig.support, v.span,
                                         rng if sig.support == "index" else None, missing=v.missing)
        elif annotated == "index" and rng is not None and v.support_dim != rng and \
                not self.same_size(v.support_dim, rng):
            self.rep.error(f"`{v.name}` is declared index({v.support_dim}) but its Categorical has {rng} "
                           "categories", d.target.span, None)

    # ----------------------------------------------------------- the rest
    def check_loops(self, stmts, scope: dict[str, str]) -> None:
        for s in stmts:
            if isinstance(s, ast.Loop):
                if s.dim.id not in self.dims:
                    self.unknown_dim(s.dim.id, s.dim.span)
                    continue
                if s.var.id in scope or s.var.id in self.decl_span:
                    self.rep.error(f"loop variable `{s.var.id}` is already in use", s.var.span,
                                   "give the loop a fresh variable name")
                size = self.dims[s.dim.id].default
                if s.start_span is not None and size is not None and s.start >= size:
                    self.rep.error(f"the slice `{s.dim.id}[{s.start}:]` is empty: {s.dim.id} = {size}", s.start_span,
                                   f"a sliced plate keeps its elements from the start on: `{s.dim.id}[1:]`")
                self.check_ride(s)
                self.check_loops(s.body, {**scope, s.var.id: s.dim.id})
            elif isinstance(s, (ast.ConstDecl, ast.VarDecl, ast.DimDecl)) and scope:
                self.rep.error("declarations belong at the top level, not inside a loop", s.span,
                               "move the declaration above the `for`")
            elif isinstance(s, ast.Approximate) and scope:
                self.rep.error("`approximate` belongs at the top level", s.span, None)
            elif isinstance(s, ast.Amortise) and scope:
                self.rep.error("`amortise` belongs at the top level", s.span, "move it below the model's loops")

    def check_ride(self, s: ast.Loop) -> None:
        """``T[:1]`` and ``by`` go together, on the two loops of a ragged chain: ``T[:1] by seq`` (the first
        step of each sequence) and ``T[1:] by seq`` (every later step; ``t-1`` the previous one of its sequence)."""
        d = s.dim.id
        if s.stop is not None and s.by is None:
            self.rep.error(f"`{d}[:{s.stop}]` keeps the first step of each sequence, but the loop names no sequences",
                           s.start_span, f"ride it on the data naming each step's sequence, `for {s.var.id} in "
                           f"{d}[:1] by seq:`, or draw a single chain's first element by its own statement, `z[0] ~ …`")
        elif s.stop is not None and s.stop != 1:
            self.rep.error(f"`{d}[:{s.stop}]`: a ragged chain is first-order, one first step per sequence",
                           s.start_span, f"draw the first step of each sequence in `for {s.var.id} in {d}[:1] by "
                           f"{s.by.id}:`")
        elif s.by is not None and s.stop is None and s.start != 1:
            self.rep.error(f"`by {s.by.id}` rides a first-order chain on ragged sequences, but this loop runs over "
                           f"`{d}" + (f"[{s.start}:]`" if s.start else "`"), s.by.span,
                           f"`for {s.var.id} in {d}[1:] by {s.by.id}:` draws every step after the first of its "
                           f"sequence, `for {s.var.id} in {d}[:1] by {s.by.id}:` the first ones")

    def check_rides(self, stmts, outer: tuple[str, ...] = ()) -> None:
        """The data a loop rides on name each step's sequence: ``data seq[T] : index(S)``, T the loop's plate;
        a ragged chain is one variable along T, so the loop is not inside another."""
        for s in stmts:
            if not isinstance(s, ast.Loop):
                continue
            if s.by is not None:
                v = self.vars.get(s.by.id)
                if outer:
                    self.rep.error(f"a loop riding on `{s.by.id}` inside the loop over `{outer[-1]}`", s.by.span,
                                   f"ragged sequences are one long plate: draw `z[{s.var.id}]` along `{s.dim.id}` "
                                   f"at the top level, `{s.by.id}` naming each step's sequence")
                elif v is None or v.kind != "data" or v.support != "index" or tuple(v.shape) != (s.dim.id,):
                    what = ("an unknown name" if v is None and s.by.id not in self.decl_span else
                            f"a {v.kind}" if v is not None and v.kind != "data" else
                            "not a data index along the loop's plate" if v is not None else "not a variable")
                    self.rep.error(f"`{s.by.id}` cannot name the sequences of `{s.dim.id}`: it is {what}", s.by.span,
                                   f"declare the sequence of each step as data, `data {s.by.id}[{s.dim.id}] : "
                                   f"index(S)`, sorted so each sequence is a run of steps")
            self.check_rides(s.body, outer + (s.var.id,))

    def check_missing(self) -> None:
        """A missing entry is a latent with the factor of the entries observed: a variable never drawn (a
        covariate, a hyperparameter) has no factor to give it."""
        drawn = {f.target for f in self.factors if not f.energy}
        for name, span in self.missing.items():
            if name not in drawn and name not in self.poisoned:
                self.rep.error(f"`{name}` may have missing entries but is never drawn: nothing in the model "
                               "says what they could be", span,
                               f"give `{name}` a distribution (`{name}[n] ~ …`), or impute it before the fit "
                               "and drop `missing`")
            elif name in self.drawn_missing:
                dist, support, _, _ = self.drawn_missing[name]
                counted = support == MISSING_COUNTS and unit_of_distribution(dist).q   # (Poisson, Binomial, NB)
                if counted and dist == "NegativeBinomial":
                    self._missing_negative_binomial(name)
                elif support not in MISSING_SUPPORTS and not counted:
                    why = MISSING_SUPPORTS_NOT[support].format(dist=dist)
                    self.rep.error(f"the missing entries of `{name}` would be {dist} latents: {why}",
                                   span, MISSING_HINTS.get(support, MISSING_HINT))

    def _missing_negative_binomial(self, name: str) -> None:
        """A missing NegativeBinomial(r, p) count has a q (ppvi.families.negative_binomial) where r is known (q's
        base measure Γ(y + r)/(Γ(r) y!) is then no expectation over r) and p has no Pólya-Gamma weight (its b,
        y + r, would read the missing count inside PG's log normaliser)."""
        f = next(f for f in self.factors if f.target == name and f.dist == "NegativeBinomial")
        args = dict(f.args)
        if "pg" in args:
            self.rep.error(f"the missing entries of `{name}` would be NegativeBinomial latents under a logistic link, "
                           f"whose Pólya-Gamma weight reads them (b = `{name}` + r): no conjugate q",
                           _span(args["p"]), MISSING_NB_LOGISTIC)
        elif any(isinstance(n, ast.Name) and n.id in self.vars and self.vars[n.id].kind in ("latent", "param")
                 for n in walk(args["r"])):
            self.rep.error(f"`r` of the NegativeBinomial of `{name}`, whose entries may be missing, must be known "
                           "(a constant or data)", _span(args["r"]),
                           "a missing count's q holds log Γ(y + r), which has no expectation over an unknown r: fix "
                           "r, e.g. `NegativeBinomial(5, p)`")

    def _gaussian_block(self, name: str) -> bool:
        """``approximate NAME jointly`` on a latent that is no chain: one full Gaussian q per point over its last
        axis (docs/language.md), where its elements are real and drawn by one Normal statement."""
        v, draws = self.vars.get(name), self.draws.get(name, [])
        return (v is not None and v.kind == "latent" and v.support == "real" and len(v.shape) >= 1
                and len(draws) == 1 and draws[0][0].dist.name.id == "Normal")

    def _block(self, name: str) -> bool:
        """A name ``approximate … jointly`` takes alone: a chain or a block of Normal elements."""
        return self.lags.get(name, 0) > 0 or self._gaussian_block(name)

    def check_pair(self, a: ast.Name, b: ast.Name) -> None:
        """``approximate mu, lam jointly`` (either order): one Normal–Gamma q(μ, λ) per element, where λ is
        drawn from a Gamma and μ from a Normal of the same shape whose precision is λ at μ's own subscripts times
        what reads no latent, its mean not reading λ (docs/language.md, "Normal–Gamma pairs")."""
        hint = "write `lam[k] ~ Gamma(a0, b0)` and `mu[k] ~ Normal(m0, precision = beta0 * lam[k])`"
        draws = {n.id: self.draws.get(n.id, []) for n in (a, b)}
        for n in (a, b):
            v = self.vars.get(n.id)
            if v is None or v.kind != "latent" or len(draws[n.id]) != 1 or self.lags.get(n.id, 0) > 0:
                self.rep.error(f"`{n.id}` is not a latent drawn by one statement: `approximate {a.id}, {b.id} "
                               "jointly` pairs a Normal latent with the Gamma latent of its precision", n.span, hint)
                return
            if n.id in self.approx:
                self.rep.error(f"`{n.id}` is approximated twice", n.span, None)
                return
        dist = {n.id: draws[n.id][0][0].dist.name.id for n in (a, b)}
        mu, lam = (a, b) if dist[b.id] == "Gamma" else (b, a)
        d = draws[mu.id][0][0]
        args = {x.keyword.id: x.value for x in d.dist.args if x.keyword is not None}
        prec = args.get("precision")
        if dist[lam.id] != "Gamma" or dist[mu.id] != "Normal" or prec is None:
            self.rep.error(f"`{a.id}, {b.id}` is no Normal–Gamma pair: ppvi approximates two latents jointly "
                           "only where one is drawn from a Gamma and the other from a Normal whose `precision =` "
                           "is scaled by it", mu.span, hint)
            return
        own = tuple(i.id if isinstance(i, ast.Name) else None for i in d.indices)
        factors, stack = [], [prec]
        while stack:
            e = stack.pop()
            if isinstance(e, ast.BinOp) and e.op == "*":
                stack += [e.left, e.right]
            else:
                factors.append(e)
        reads = [[n.id for n in walk(f) if isinstance(n, ast.Name) and self.vars.get(n.id) is not None
                  and self.vars[n.id].kind == "latent"] for f in factors]
        at = [f for f, r in zip(factors, reads) if r == [lam.id] and (
            isinstance(f, ast.Name) and not own or isinstance(f, ast.Index)
            and tuple(i.id if isinstance(i, ast.Name) else "" for i in f.indices) == own)]
        others = [r for f, r in zip(factors, reads) if f not in at and r]
        mean = args.get("mean", d.dist.args[0].value if d.dist.args and d.dist.args[0].keyword is None else None)
        lam_in_mean = mean is not None and any(isinstance(n, ast.Name) and n.id == lam.id for n in walk(mean))
        if len(at) != 1 or others or lam_in_mean \
                or len(self.vars[mu.id].shape) != len(self.vars[lam.id].shape):
            self.rep.error(f"`{mu.id}`'s precision is not `{lam.id}` at `{mu.id}`'s own subscripts times a "
                           f"known scale: `{mu.id}, {lam.id}` is no Normal–Gamma pair", _span(prec), hint)
            return
        self.approx[mu.id] = self.approx[lam.id] = "pair"
        self.pairs[mu.id] = lam.id

    def check_approx(self, stmts) -> None:
        for s in stmts:
            if isinstance(s, ast.Loop):
                self.check_approx(s.body)
            if not isinstance(s, ast.Approximate):
                continue
            if s.method.id not in ("point", "jointly"):
                self.rep.error(f"unknown approximation `{s.method.id}`", s.method.span,
                               did_you_mean(s.method.id, ["point"]) or "write `approximate h by point`")
                continue
            if s.method.id == "jointly" and len(s.names) == 2 and not all(self._block(n.id) for n in s.names):
                self.check_pair(*s.names)
                continue
            for n in s.names:
                if s.method.id == "jointly" and n.id in self.vars and self.lags.get(n.id, 0) == 0 \
                        and not self._gaussian_block(n.id):
                    self.rep.error(f"`{n.id}` is neither a chain nor a block of Normal elements: `approximate … "
                                   "jointly` needs a latent whose elements read earlier ones, or real elements each "
                                   "drawn from a Normal (one Gaussian per point over the last axis)", n.span,
                                   f"draw it along a sliced plate: `for t in T[1:]:` `{n.id}[t] ~ Categorical(A[{n.id}[t-1]])`"
                                   f", or draw its elements `{n.id}[n, m] ~ Normal(…)`")
                    continue
                v = self.vars.get(n.id)
                if v is None:
                    self.rep.error(f"`{n.id}` has no prior: only latent variables can be approximated", n.span,
                                   f"give it a prior: `{n.id} ~ …`")
                elif v.kind != "latent":
                    self.rep.error(f"`{n.id}` is {v.kind}, not latent; only latent variables are approximated",
                                   n.span, "params are already point estimates" if v.kind == "param" else None)
                elif n.id in self.priorless:
                    self.rep.error(f"`{n.id}` has no prior: ppvi derives its q from the energy terms only",
                                   n.span, f"leave it to the mean field: remove `{n.id}` from the statement")
                elif n.id in self.approx:
                    self.rep.error(f"`{n.id}` is approximated twice", n.span, None)
                elif v.support in POINT_REFUSED and s.method.id == "point":
                    what, q = POINT_REFUSED[v.support]
                    self.rep.error(f"ppvi has no point (MAP) approximation for `{n.id}`, {what}", n.span,
                                   f"leave it to the mean field (its q is {q}): remove `{n.id}` from the statement"
                                   if q else "ppvi has no q at all for a count latent: observe it as data")
                else:
                    self.approx[n.id] = s.method.id

    def check_amortise(self, model: CheckedModel) -> dict[str, Amortised]:
        """Each ``amortise`` statement: a local latent (drawn inside the data plate, that plate its first
        axis), asked for once, by ``mlp`` with whole-number options in range."""
        from ppvi.graph.factor_graph import build

        stmts = [s for s in self.m.statements if isinstance(s, ast.Amortise)]
        if not stmts:
            return {}
        graph = build(model)
        out: dict[str, Amortised] = {}
        for s in stmts:
            options = self._amortise_options(s)
            n = s.name
            v = self.vars.get(n.id)
            node = graph.nodes.get(n.id)
            if v is None:
                self.rep.error(f"`{n.id}` is not declared: only a latent variable can be amortised", n.span,
                               did_you_mean(n.id, [x.name for x in self.vars.values() if x.kind == "latent"])
                               or f"draw it first: `{n.id}[n] ~ …` inside the data plate")
            elif v.kind != "latent":
                self.rep.error(f"`{n.id}` is {v.kind}, not latent; an encoder predicts the q of a local latent",
                               n.span, None)
            elif graph.data_plate is None:
                self.rep.error(f"the model has no data plate, so `{n.id}` has no data row to be inferred from", n.span,
                               "an encoder maps one data point (an element of the plate every observation is "
                               "drawn in) to its latent's q")
            elif node.scope != "local" or model.prior(n.id).plates[0][1] != graph.data_plate:
                self.rep.error(f"`{n.id}` is global: it is not drawn along the data plate `{graph.data_plate}`, "
                               "so no one data point determines it", n.span,
                               f"amortise a local latent, one drawn inside `for … in {graph.data_plate}:` "
                               "(its first axis)")
            elif n.id in out:
                self.rep.error(f"`{n.id}` is amortised twice", n.span, "keep one `amortise` statement for it")
            elif options is not None:
                out[n.id] = Amortised(n.id, s.method.id, options.get("hidden", 0), options.get("layers", 0), s.span,
                                      options.get("sleep", 0), options.get("steps", 0), options["every"])
        return out

    def _amortise_options(self, s: ast.Amortise) -> dict[str, int] | None:
        method = s.method.id
        if method not in AMORTISE_OPTIONS:
            self.rep.error(f"unknown encoder `{method}`", s.method.span,
                           did_you_mean(method, list(AMORTISE_OPTIONS)) or f"write `amortise {s.name.id} by mlp(hidden = 64)`")
            return None
        known = AMORTISE_OPTIONS[method]
        values = {k: d for k, (d, *_) in known.items()}
        seen: set[str] = set()
        ok = True
        for a in s.options:
            if a.keyword is None:
                example = "mlp(hidden = 64, layers = 1)" if method == "mlp" else "lista(steps = 3)"
                self.rep.error(f"{method}'s options are named", a.span, f"write e.g. `{example}`")
                ok = False
                continue
            key = a.keyword.id
            if key not in known:
                names = [f"`{k}`" for k in known]
                listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
                self.rep.error(f"{method} has no option `{key}`", a.keyword.span,
                               did_you_mean(key, known) or f"its option{'s are' if len(names) > 1 else ' is'} {listed}")
                ok = False
                continue
            if key in seen:
                self.rep.error(f"option `{key}` is given twice", a.span, None)
                ok = False
                continue
            seen.add(key)
            _, low, high, what = known[key]
            value = a.value
            if not (isinstance(value, ast.Num) and value.is_int and low <= value.value <= high):
                self.rep.error(f"`{key}` ({what}) must be a whole number from {low} to {high}", value.span, None)
                ok = False
                continue
            values[key] = int(value.value)
        return values if ok else None

    def run(self) -> CheckedModel:
        stmts = self.m.statements
        self.collect(stmts)
        self.check_loops(stmts, {})
        self.check_decls(stmts)
        self.check_rides(stmts)
        self.check_draws()
        self.check_energies()
        self.check_approx(stmts)
        self.check_missing()
        if not any(f for f in self.factors) and not self.rep.diagnostics:
            self.rep.error("the model draws nothing: no `~` statement", Span(1, 1),
                           "write at least one `x ~ Distribution(…)` or `factor …`")
        self.rep.raise_if_any()
        chains = {}
        for name, (axis, loop) in self.chain_axis.items():
            ids = self.chain_factors.get(name, [])
            body = next((i for i in ids if not self.factors[i].fixed), None)
            firsts = sorted((i for i in ids if self.factors[i].fixed), key=lambda i: self.factors[i].fixed)
            chains[name] = Chain(name, axis, loop.dim.id, loop.start, self.lags.get(name, 0), body, tuple(firsts),
                                 loop.by.id if loop.by is not None else None)
        missing = {name: self.drawn_missing[name][1:3] + (span,) for name, span in self.missing.items()}
        model = CheckedModel(self.m.name or _stem(self.m.path), self.m.path, self.m.text, dict(self.dims),
                             dict(self.vars), tuple(self.factors),
                             {n: a for n, a in self.approx.items() if a != "pair"}, self.m, chains=chains,
                             missing=missing, pairs=dict(self.pairs))
        amortised = self.check_amortise(model)
        self.rep.raise_if_any()
        return replace(model, amortised=amortised) if amortised else model


def _element(name: str, idx: tuple[str, ...], span: Span) -> ast.Expr:
    """``name[i, j, …]`` at the loop indices ``idx`` (``name`` alone for none), placed at ``span``."""
    return ast.Index(ast.Name(name, span), tuple(ast.Name(i, span) for i in idx), span) if idx else ast.Name(name, span)

def _span(e: ast.Expr) -> Span:
    return e.span


def _declared(v: Variable) -> str:
    """A variable as its declaration names it: ``x[N, D]``."""
    return f"{v.name}[{', '.join(map(str, v.shape))}]" if v.shape else v.name


def _show(v: np.ndarray) -> str:
    return f"{float(v):g}" if v.ndim == 0 else f"{float(v.min()):g} (smallest entry)"


def _text(rep: Reporter, e: ast.Expr) -> str:
    sp = _span(e)
    line = rep.line(sp.line) or ""
    end = sp.end_col if sp.end_line == sp.line and sp.end_col else len(line) + 1
    return line[sp.col - 1: end - 1]


def _stem(path: str) -> str:
    import os
    return os.path.splitext(os.path.basename(path))[0] or "model"


def check(module: ast.Module) -> CheckedModel:
    """Check a parsed module; raise :class:`ppvi.errors.PPVIError` listing every problem found."""
    return _Checker(module).run()
