"""Where a fit starts: what the model's structure says about its starting values.

A product of two latents (W·z in factor analysis) has a stationary point where
both are 0, and a mixture whose component means all start alike has one where
every component is the same; coordinate ascent started there stays there.  So
the start is read off the model, never off names:

- *component means*: a latent or param L read as the mean of a data variable's
  likelihood at a Categorical latent's value, ``x[n] ~ Normal(L[z[n]], …)``, or as a
  term added to that mean (``L[z[n]] + W[z[n]]·h[n]``, a mixture of factor analysers),
  starts at k-means++ centres of the data;
- *component probabilities*: a latent L with a Dirichlet or Beta prior read as the probabilities of a data
  variable's likelihood at a Categorical latent's value, ``x[n] ~ Multinomial(t[n], L[z[n]])``, starts centred at
  greedy k-means++ seeds of the data's rows (normalised to shares for a Dirichlet): its prior after as many
  pseudo-counts at the seed as the prior's total concentration (``Unit.centred_at``);
- *atoms*: a param W multiplied by a local latent h in the mean of a data
  variable's likelihood, ``v[n, j] ~ Normal(sum(i: W[j, i] * h[n, i]), …)``, starts at
  random data rows, scaled so that the model's expected power Σ_i E[h_i²] |W_i|²
  equals the data's (E[h²] from h's prior at the start);
- continuous latents that are local, or multiplied by another latent, start at a
  random draw from their prior (its parameters evaluated at the start), at the
  data's scale where the prior is broader than the data.

Every choice goes through the model in its canonical order (:mod:`ppvi.graph.order`), never in the
order of its statements: the random draws and the first seed found are the same however a model is
written.

:func:`evaluate` gives an expression of the language its value at every element
of its plates, with the current q's means for the latents it reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from ppvi.codegen.plan import ArrayNames
from ppvi.errors import Diagnostic
from ppvi.families.registry import unit_of_distribution
from ppvi.families.unit import Unit
from ppvi.graph.order import Order, order
from ppvi.language import ast
from ppvi.language.check import CheckedModel, walk
from ppvi.simulate import values
from ppvi.simulate.values import NotEvaluable



# ------------------------------------------------------------------------------------ structure
@dataclass(frozen=True)
class Seed:
    """``var`` starts from the rows of ``data``: k-means++ centres (``kind`` "centres"; "proportions": of the rows
    normalised, for a Dirichlet or Beta component) or atoms ("atoms").

    ``axes`` maps each axis of var to the rows' array: "unit" (a centre's or atom's number) or an int, the axis
    of one data row; ``latent`` is the Categorical latent (centres) or the multiplied local latent (atoms),
    ``latent_axis`` the axis of that latent the unit runs along (atoms)."""

    var: str
    kind: str
    data: str
    row_axis: int                 # the data's axis along the data plate
    axes: tuple[str | int, ...]
    latent: str
    latent_axis: int = -1
    points: tuple[int, ...] = ()   # axes of one data row the Categorical runs along too (z[s, t]: a chain's steps)

    def count(self, shape: tuple[int, ...]) -> int:
        """How many points the data of ``shape`` hold: its rows, times the extents of ``points``."""
        rest = shape[:self.row_axis] + shape[self.row_axis + 1:]
        return shape[self.row_axis] * math.prod(rest[a] for a in self.points)


@dataclass(frozen=True)
class Structure:
    seeds: dict[str, Seed]
    products: tuple[tuple[str, str], ...]       # (a, b): a·b in a likelihood, a latent or param, b a latent
    data_of: dict[str, tuple[str, ...]]         # latent or param -> the data whose likelihood reads it
    mixtures: tuple[str, ...]                   # local Categorical latents that index a likelihood's argument
    local: frozenset[str]                       # local latents
    order: Order                                # the canonical order of variables and factors (ppvi.graph.order)
    plate: str | None = None                    # the data plate: a local latent's start is drawn along it first


def _values(e: ast.Expr) -> set[str]:
    """Names whose values e reads (not those only used as indices)."""
    match e:
        case ast.Name(id=n):
            return {n}
        case ast.Index(base=b):
            return {b.id}
        case ast.BinOp(left=left, right=right):
            return _values(left) | _values(right)
        case ast.Neg(operand=o):
            return _values(o)
        case ast.Call(args=args):
            return set().union(*(_values(a) for a in args))
        case ast.PlateSum(body=body):
            return _values(body)
    return set()


def _products(e: ast.Expr):
    """(left names, right names) of every product in e (``*`` and ``dot``)."""
    stack = [e]
    while stack:
        node = stack.pop()
        match node:
            case ast.BinOp(op="*", left=left, right=right) | ast.Call(func=ast.Name(id="dot"), args=(left, right)):
                yield _values(left), _values(right), node
        match node:
            case ast.BinOp(left=left, right=right):
                stack += [left, right]
            case ast.Neg(operand=o):
                stack.append(o)
            case ast.Call(args=args):
                stack += list(args)
            case ast.PlateSum(body=body):
                stack.append(body)


def analyse(model: CheckedModel, values: Mapping[str, np.ndarray] | None = None) -> Structure:
    """The structural facts a start needs (a pass over the checked model's likelihoods; no SymPy).

    ``values``: the data (and given params) by name; where two variables are alike in structure, their
    values decide which comes first in the canonical order."""
    from ppvi.graph import build

    graph = build(model)
    canonical = order(model, None if values is None else lambda n: _fingerprint(values.get(n)))
    kind = {v.name: v.kind for v in model.variables.values()}
    support = {v.name: v.support for v in model.variables.values()}
    prior = {f.target: f.dist for f in model.factors if not f.observed and not f.energy}
    local = frozenset(n.name for n in graph.latents() if n.scope == "local")
    categorical = {v for v in local if _unit(prior.get(v)).labelled}
    seeds: dict[str, Seed] = {}
    products: list[tuple[str, str]] = []
    data_of: dict[str, list[str]] = {}
    mixtures: list[str] = []
    for f in sorted(model.factors, key=lambda f: canonical.factors[f.id]):     # (a first seed found wins)
        if not f.observed:
            continue
        for p in f.parents:
            data_of.setdefault(p, [])
            if f.target not in data_of[p]:
                data_of[p].append(f.target)
        n = next((var for var, dim in f.plates if dim == graph.data_plate), None)
        for name, arg in f.args:
            for node in walk(arg):
                for z in (_discrete_index(i, categorical) for i in getattr(node, "indices", ())):
                    if z is not None and z not in mixtures:
                        mixtures.append(z)
            for left, right, node in _products(arg):
                for a in sorted(left):
                    for b in sorted(right):
                        if a != b and kind.get(a) in ("latent", "param") and kind.get(b) in ("latent", "param") \
                                and "latent" in (kind[a], kind[b]):
                            pair = (a, b) if kind[b] == "latent" else (b, a)
                            if pair not in products:
                                products.append(pair)
                if name == _unit(f.dist).location and n is not None:
                    seed = _atoms(node, f, n, kind, support, local)
                    if seed is not None and seed.var not in seeds:
                        seeds[seed.var] = seed
            seed = _proportions(f, name, arg, n, kind, categorical, prior)
            if seed is not None and seed.var not in seeds:
                seeds[seed.var] = seed
            if name == _unit(f.dist).location and n is not None:
                for term in _added(arg):
                    seed = _centres(term, f, n, kind, support, categorical, prior)
                    if seed is not None and seed.var not in seeds:
                        seeds[seed.var] = seed
    return Structure(seeds, tuple(products), {k: tuple(v) for k, v in data_of.items()}, tuple(mixtures), local,
                     canonical, graph.data_plate)


def _fingerprint(a: np.ndarray | None) -> str:
    """An array's shape and a digest of its values (the same however the model names or places it)."""
    if a is None:
        return ""
    import hashlib

    a = np.asarray(a)
    return f"{a.shape}{a.dtype.str}{hashlib.sha1(a.tobytes()).hexdigest()}"


def _discrete_index(i: ast.Expr, categorical: set[str]) -> str | None:
    """The Categorical latent i reads its value from (``z[n]``), if any."""
    if isinstance(i, ast.Index) and i.base.id in categorical:
        return i.base.id
    if isinstance(i, ast.Name) and i.id in categorical:
        return i.id
    return None


def _row_axes(f, n: str) -> dict[str, int]:
    """Loop variable -> axis of one data row (the target's axes without the data plate's)."""
    rest = [v for v in f.target_index if v != n]
    return {v: k for k, v in enumerate(rest)}


def _added(e: ast.Expr) -> list[ast.Expr]:
    """The terms e adds (``a + b - c``: a and b; a subtracted term is not one)."""
    if isinstance(e, ast.BinOp) and e.op in ("+", "-"):
        return _added(e.left) + (_added(e.right) if e.op == "+" else [])
    return [e]


def _proportions(f, name: str, arg: ast.Expr, n: str | None, kind: dict, categorical: set[str],
                 prior: dict) -> Seed | None:
    """``L[…, z[n], …]`` as the probabilities of f (a Multinomial's p, a Bernoulli's), L a latent whose prior's q
    may start centred (Dirichlet, Beta): L's components start at k-means++ seeds of the data's rows, normalised
    (a seed of kind "proportions")."""
    from ppvi.language.distributions import SIGNATURES

    param = SIGNATURES[f.dist].param(name) if f.dist in SIGNATURES else None
    if n is None or param is None or param.domain not in ("simplex", "unit") or not isinstance(arg, ast.Index) \
            or kind.get(arg.base.id) != "latent" or not _unit(prior.get(arg.base.id)).centred:
        return None
    seed = _centres(arg, f, n, kind, {}, categorical, prior, accept=True)
    if seed is None or seed.points:       # (a chain's proportions: not seeded)
        return None
    return Seed(seed.var, "proportions", seed.data, seed.row_axis, seed.axes, seed.latent)


def _centres(arg: ast.Expr, f, n: str, kind: dict, support: dict, categorical: set[str],
             prior: dict, accept: bool = False) -> Seed | None:
    """``L[…, z[n], …]`` as the location of f, or a term added to it (the mean μ[z[n]] of a mixture of factor
    analysers, μ[z[n]] + W[z[n]] h[n]): L's components are the data's centres.  ``z[n, t]`` (a chain's state
    at each step of sequence n): the points are the data's elements over n and t, L's components their centres.
    ``accept``: L is known to fit."""
    if not isinstance(arg, ast.Index):
        return None
    L = arg.base.id
    if not (accept or (kind.get(L) == "param" and support[L] == "real") or
            (kind.get(L) == "latent" and _unit(prior.get(L)).located)):
        return None
    rows = _row_axes(f, n)
    axes: list[str | int] = []
    z, points = None, ()
    for i in arg.indices:
        found = _discrete_index(i, categorical)
        ids = [getattr(j, "id", None) for j in i.indices] if isinstance(i, ast.Index) else []
        if found is not None and z is None and ids[:1] == [n] and all(v in rows for v in ids[1:]):
            z, points = found, tuple(rows[v] for v in ids[1:])
            axes.append("unit")
        elif isinstance(i, ast.Name) and i.id in rows:
            axes.append(rows[i.id])
        else:
            return None
    if z is None or set(points) & set(axes):
        return None
    return Seed(L, "centres", f.target, f.target_index.index(n), tuple(axes), z, points=points)


def _atoms(node, f, n: str, kind: dict, support: dict, local: frozenset[str]) -> Seed | None:
    """``W[j, i] * h[n, i]`` with W a real param and h local: W's columns are atoms of the data."""
    if not isinstance(node, ast.BinOp):
        return None
    sides = (node.left, node.right)
    for w, h in (sides, sides[::-1]):
        if not (isinstance(w, ast.Index) and isinstance(h, ast.Index)):
            continue
        W, H = w.base.id, h.base.id
        if kind.get(W) != "param" or support[W] != "real" or H not in local:
            continue
        h_vars = [getattr(i, "id", None) for i in h.indices]
        rows = _row_axes(f, n)
        axes: list[str | int] = []
        unit = None
        for i in w.indices:
            if not isinstance(i, ast.Name):
                return None
            if i.id in rows:
                axes.append(rows[i.id])
            elif i.id in h_vars and i.id != n and unit is None:
                unit = h_vars.index(i.id)
                axes.append("unit")
            else:
                return None
        if unit is not None and n in h_vars:
            return Seed(W, "atoms", f.target, f.target_index.index(n), tuple(axes), H, unit)
    return None


# ----------------------------------------------------------------------------------- evaluation
class _Current(Mapping):
    """The variables' current values as :class:`ppvi.simulate.values.Values` reads them (one draw), each read
    only when an expression asks for it: ``value_of(name)`` raises NotEvaluable where there is none."""

    def __init__(self, value_of: Callable[[str], np.ndarray], sizes: Mapping[str, int]):
        self.value_of, self.sizes = value_of, sizes

    def __getitem__(self, name: str) -> np.ndarray:
        return np.asarray(self.value_of(name), dtype=float)[None]

    def __contains__(self, name: object) -> bool:
        return name not in self.sizes          # (a dim is never a variable: every other name is read)

    def __iter__(self):
        raise TypeError("the current values are read by name only")

    def __len__(self) -> int:
        raise TypeError("the current values are read by name only")


def evaluate(e: ast.Expr, plates: tuple[tuple[str, str], ...], sizes: Mapping[str, int],
             value_of: Callable[[str], np.ndarray]) -> np.ndarray:
    """e at every element of ``plates`` ((loop variable, dim), outermost first): an array whose leading axes
    are the plates (length 1 where e does not vary along one) and whose trailing axes are e's own.
    ``value_of(name)`` is a variable's value in its declared shape (raises NotEvaluable if it has none)."""
    return values.evaluate(e, values.Values(_Current(value_of, sizes), sizes), plates)[0]


def prior_arguments(model: CheckedModel, var: str, sizes: Mapping[str, int],
                    value_of: Callable[[str], np.ndarray],
                    only: frozenset[str] | None = None) -> tuple[str, dict[str, np.ndarray]]:
    """The distribution of var's prior and its arguments (those named in ``only``, if given), each evaluated at
    every element of var: an array of var's plate shape followed by the argument's own axes."""
    f = model.prior(var)
    if f is None:
        raise NotEvaluable(var)
    order = [f.plates.index(next(p for p in f.plates if p[0] == v)) for v in f.target_index]
    shape = tuple(sizes[f.plates[k][1]] for k in order)
    out = {}
    for name, expr in f.args:
        if only is not None and name not in only:
            continue
        a = evaluate(expr, f.plates, sizes, value_of)
        lead = len(f.plates)
        a = np.broadcast_to(a, tuple(sizes[d] for _, d in f.plates) + a.shape[lead:])
        a = np.transpose(a, order + list(range(lead, a.ndim)))
        out[name] = np.ascontiguousarray(a.reshape(shape + a.shape[lead:]))
    return f.dist, out


def prior_moments(dist: str, args: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(E[x], Var[x]) of the prior, entrywise (for MvNormal the covariance matrices)."""
    moments = _unit(dist).prior_moments(args)
    if moments is None:
        raise NotEvaluable(dist)
    return moments


def _unit(dist: str | None) -> Unit:
    return unit_of_distribution(dist)


def prior_draw(prior: tuple[np.ndarray, np.ndarray] | None, shape: tuple[int, ...], mv: bool,
               data_variance: float | None, rng: np.random.Generator, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A start for a Normal (``mv``: MvNormal) q of ``shape``: (mean, variances or covariances), the mean a
    draw from the prior (E[x], Var[x]) and the spread the prior's, both at most as broad as the data
    (``data_variance``; a covariance shrinks as a whole).  Without a usable prior: N(0, the data's variance).
    The noise is drawn along ``axis`` first (a local latent's units: a run of units' draws is a run of the
    stream, whatever axis they are on; docs/scale.md, "The start")."""
    event = shape[-1:] if mv else ()
    unit = np.eye(shape[-1]) if mv else 1.0
    fallback = np.zeros(shape), np.broadcast_to((data_variance or 1.0) * unit, shape + event)
    centre, spread = fallback if prior is None or prior[0].size != int(np.prod(shape)) else \
        (prior[0].reshape(shape), _covariances(prior[1], shape) if mv else prior[1].reshape(shape))
    width = np.trace(spread, axis1=-2, axis2=-1) / shape[-1] if mv else spread     # (a covariance's mean variance)
    if not np.all(np.isfinite(width) & (width > 0)):
        (centre, spread), width = fallback, np.full(shape[:-1] if mv else shape, data_variance or 1.0)
    if data_variance:
        shrink = np.minimum(1.0, data_variance / width)
        spread = spread * (shrink[..., None, None] if mv else shrink)
    noise = np.moveaxis(rng.standard_normal((shape[axis],) + shape[:axis] + shape[axis + 1:]), 0, axis) if axis \
        else rng.standard_normal(shape)
    draw = centre + (np.einsum("...de,...e->...d", np.linalg.cholesky(spread), noise) if mv else
                     np.sqrt(spread) * noise)
    return draw, spread


def _covariances(spread: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """An MvNormal q's prior covariances: a Gaussian block's (``approximate z jointly`` on Normal elements, the
    prior independent across its last axis) are the diagonal of its elements' variances."""
    if spread.size == int(np.prod(shape)):
        return np.asarray(spread).reshape(shape)[..., None] * np.eye(shape[-1])
    return spread.reshape(shape + shape[-1:])


def kmeanspp(x: np.ndarray, k: int, rng: np.random.Generator, trials: int = 1) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): each centre a data point, drawn with probability
    proportional to its squared distance from the nearest centre so far.  Distances as |x|² − 2 x·c + |c|²: a
    matrix-vector product per centre, no temporary as large as the data.  ``trials`` > 1: greedy k-means++ (as
    scikit-learn's), each centre the best of that many draws (the least total squared distance after it)."""
    x = np.ascontiguousarray(x, dtype=float)
    norms = np.einsum("nd,nd->n", x, x)
    picked = [int(rng.integers(len(x)))]
    d2 = np.full(len(x), np.inf)
    distance = lambda c: np.maximum(norms - 2 * (x @ c) + c @ c, 0.0)      # noqa: E731
    for _ in range(1, k):
        np.minimum(d2, distance(x[picked[-1]]), out=d2)
        cumulative = np.cumsum(d2)
        total = cumulative[-1]
        draws = [min(int(np.searchsorted(cumulative, rng.random() * total, side="right")), len(x) - 1)
                 if total > 0 else int(rng.integers(len(x))) for _ in range(trials)]
        picked.append(draws[0] if trials == 1 else min(draws, key=lambda i: np.minimum(d2, distance(x[i])).sum()))
    return np.ascontiguousarray(x[picked])


def kmeanspp_read(rows, k: int, rng: np.random.Generator) -> np.ndarray:
    """:func:`kmeanspp` of rows read a chunk at a time (``rows.chunks()``: (m, d) arrays in order, ``rows.take``,
    ``rows.count``): the same draws, so the same centres, as of the whole array.  A centre costs two passes (the
    total of the distances, then the chunk the draw falls in); the cumulative sum is carried from chunk to chunk
    one element after another, as np.cumsum adds, so every partial sum is the same number."""
    n = rows.count
    picked = [int(rng.integers(n))]
    centres = [np.asarray(rows.take([picked[0]]), dtype=float).reshape(-1)]

    def cumulative():
        carry = 0.0
        for x in rows.chunks():
            if not len(x):
                continue
            x = np.ascontiguousarray(x.reshape(len(x), -1), dtype=float)
            norms = np.einsum("nd,nd->n", x, x)
            d2 = np.full(len(x), np.inf)
            for c in centres:
                np.minimum(d2, np.maximum(norms - 2 * (x @ c) + c @ c, 0.0), out=d2)
            cum = np.cumsum(np.concatenate(([carry], d2)))[1:]
            carry = cum[-1]
            yield cum
    for _ in range(1, k):
        total = 0.0
        for cum in cumulative():
            total = cum[-1]
        if total > 0:
            u, i, offset = rng.random() * total, n, 0
            for cum in cumulative():
                j = int(np.searchsorted(cum, u, side="right"))
                if j < len(cum):
                    i = offset + j
                    break
                offset += len(cum)
        else:
            i = int(rng.integers(n))
        picked.append(min(i, n - 1))
        centres.append(np.asarray(rows.take([picked[-1]]), dtype=float).reshape(-1))
    return np.ascontiguousarray(np.stack(centres))


def _flat(rows: np.ndarray, points: tuple[int, ...]) -> np.ndarray:
    """Rows (n, row axes…) as points: the elements over n and the row axes ``points`` (a chain's steps), in
    order, each a point of the remaining axes."""
    if not points:
        return rows
    rows = np.moveaxis(rows, [1 + a for a in points], range(1, 1 + len(points)))
    return rows.reshape((-1,) + rows.shape[1 + len(points):])


@dataclass(frozen=True)
class _Points:
    """A chunked reader's rows (``count``, ``row``, ``chunks()``, ``take``) read as :func:`_flat`'s points."""

    rows: object
    points: tuple[int, ...]

    @property
    def per_row(self) -> int:
        return math.prod(self.rows.row[a] for a in self.points)

    @property
    def count(self) -> int:
        return self.rows.count * self.per_row

    @property
    def row(self) -> tuple[int, ...]:
        return tuple(e for a, e in enumerate(self.rows.row) if a not in self.points)

    def chunks(self):
        for x in self.rows.chunks():
            yield _flat(x, self.points)

    def take(self, indices) -> np.ndarray:
        k = self.per_row
        return np.stack([_flat(self.rows.take([int(i) // k]), self.points)[int(i) % k] for i in indices]) \
            if len(indices) else np.empty((0,) + self.row)


def seeded(seed: Seed, x, units: int, shape: tuple[int, ...], rng: np.random.Generator,
           power: float = 1.0, trials: int = 1) -> np.ndarray | None:
    """The start of seed.var (``shape``) from the data x: centres by k-means++, or random rows divided by
    √power (atoms).  None where the axes do not fit the declared shape."""
    if isinstance(x, np.ndarray):
        rows = _flat(np.moveaxis(np.asarray(x, dtype=float), seed.row_axis, 0), seed.points)
        count, row, take = len(rows), rows.shape[1:], lambda i: rows[i]
        centres = lambda: kmeanspp(rows.reshape(len(rows), -1), units, rng, trials)     # noqa: E731
    else:       # the whole data's rows read in chunks (a streamed fit's pilot: ppvi.infer.streamed.Rows)
        x = _Points(x, seed.points) if seed.points else x
        count, row, take = x.count, x.row, x.take
        centres = lambda: kmeanspp_read(x, units, rng)      # noqa: E731
    if seed.kind in ("centres", "proportions"):
        picked = centres().reshape((units,) + row)
    else:
        picked = take(rng.choice(count, size=units, replace=count < units)) / np.sqrt(power)
    # picked: (unit, row axes…); var's axes name which of them each is, its trailing (event) axes follow in order
    kept = [a for a in range(picked.ndim - 1 + len(seed.points)) if a not in seed.points]   # (a row's axes left)
    named = [0 if a == "unit" else 1 + kept.index(a) for a in seed.axes]
    rest = [k for k in range(picked.ndim) if k not in named]
    value = np.transpose(picked, named + rest)
    return np.ascontiguousarray(value) if value.shape == shape else None


# ------------------------------------------------------------------------- where a fit ended
def symmetric_points(program, elbos: list[float], tol: float) -> list[Diagnostic]:
    """Warnings for a fit that ended where the model's symmetry can hold coordinate ascent:

    - every entry of a factor of a product of latents (a loading W in W·z, or z) is 0: the ELBO is
      stationary there, and a start at 0 never leaves it;
    - every point in one component of a mixture while the restarts ended at different ELBOs: the
      components may have started alike and stayed alike.
    """
    out: list[Diagnostic] = []
    s = program.structure
    zero: dict[str, str] = {}
    for a, b in s.products:
        for x, other in ((a, b), (b, a)):
            if x in zero:
                continue
            try:
                value = program._value(x)
            except NotEvaluable:
                continue
            scale = math.sqrt(program._data_variance(x) or program._data_variance(other) or 1.0)
            if value.size and np.all(np.abs(value) <= 1e-10 * scale):
                zero[x] = other
    for x, other in zero.items():
        what = "param" if program.model.variables[x].kind == "param" else "the mean of latent"
        out.append(Diagnostic(
            f"every entry of {what} `{x}` is 0: the fit ended at the symmetric stationary point of the product "
            f"of `{x}` and `{other}`, where coordinate ascent stays once there", program.model.path,
            hint="try other starts (--seed, --restarts); if the data hold no signal along it, this is the answer",
            severity="warning"))
    finite = [e for e in elbos if math.isfinite(e)]
    spread = max(finite) - min(finite) if len(finite) > 1 else 0.0
    for z in s.mixtures:
        p = program.state[ArrayNames.qparam(z, "p")]
        if p.shape[-1] < 2 or p.size == 0 or spread <= max(tol, 1e-9) * max(1.0, abs(max(finite))):
            continue
        labels = np.argmax(p.reshape(-1, p.shape[-1]), axis=1)
        if np.all(labels == labels[0]):
            out.append(Diagnostic(
                f"every point is in one component of `{z}` (of {p.shape[-1]}) in the best of {len(elbos)} restarts, "
                f"which ended at ELBOs from {min(finite):.10g} to {max(finite):.10g}: the fit may sit at the "
                "symmetric stationary point where the components are alike", program.model.path,
                hint="try more --restarts, or check that the data hold more than one cluster", severity="warning"))
    return out
