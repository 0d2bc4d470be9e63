"""Checked AST expressions -> SymPy in index notation, and each factor's log density.

An expression of shape [A, B] becomes a :class:`Tensor`: a function from an
index tuple to a scalar SymPy expression, so ``dot``, partial indexing and
``sum(i in M: …)`` stay symbolic sums over plates.

Indexing by a discrete latent (``mu[z[n]]``) introduces a *gate*: the factor's
log density ℓ becomes Σ_k [z_n = k] · ℓ|_{z_n = k}, which is exact because
[z_n = k] is one-hot; its expectation is q(z_n = k) (docs/derivation.md, section 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import sympy as sp

from ppvi.derive.symbols import Symbols, logdet, lgamma, lmvgamma, softplus
from ppvi.families.binomial.symbolic import binomial_base, log_binomial_coefficient
from ppvi.families.negative_binomial.symbolic import negative_binomial_base
from ppvi.families.poisson.symbolic import poisson_base
from ppvi.families.polya_gamma.symbolic import pg_base
from ppvi.language import ast
from ppvi.language.check import FLAT, CheckedModel, Extent, Factor


class sigmoid(sp.Function):
    """σ(z) = 1/(1 + e^{−z}); kept whole so Bernoulli(sigmoid(·)) is read in logit form."""

    nargs = 1

    def _eval_rewrite_as_exp(self, z, **kwargs):
        return 1 / (1 + sp.exp(-z))

    def fdiff(self, argindex=1):
        """σ′ = σ(1 − σ): a point estimate inside a sigmoid ascends along it."""
        return self * (1 - self)


class before(sp.Function):
    """[a < b] for integer indices a, b: 1 or 0 (the sticks a weight of a stick-breaking prior breaks off)."""

    nargs = 2

    @classmethod
    def eval(cls, a, b):
        if a.is_Integer and b.is_Integer:
            return sp.S.One if a < b else sp.S.Zero
        return None


@dataclass(frozen=True)
class Tensor:
    """An expression of shape ``shape``; ``at(idx)`` is its element at ``idx``.

    ``ref`` is set when the tensor is a variable, possibly partly indexed
    (``Lambda[k]``): (base, leading indices).  ``logdet`` and matrix inverses
    need to know which matrix they are of.
    """

    shape: tuple[Extent, ...]
    at: Callable[[tuple[sp.Expr, ...]], sp.Expr]
    ref: tuple[sp.Basic, tuple[sp.Expr, ...]] | None = None

    def scalar(self) -> sp.Expr:
        return self.at(())


@dataclass
class Gates:
    """Discrete latents used as indices in one factor: (var, its indices) -> the summation index k."""

    found: dict[tuple[str, tuple[sp.Expr, ...]], sp.Idx] = field(default_factory=dict)

    def wrap(self, syms: Symbols, body: sp.Expr) -> sp.Expr:
        """Σ_k [z = k] · body for every gate (the gated factor, docs/derivation.md)."""
        for (var, idx), k in self.found.items():
            body = sp.Sum(syms.gate(var)[idx + (k,)] * body, (k, 0, k.upper))
        return body


class Lowering:
    """Lowers the expressions of one model; one instance per derivation."""

    def __init__(self, model: CheckedModel, syms: Symbols, mean_field: set[str]):
        self.model = model
        self.syms = syms
        self.mean_field = mean_field   # latents with a distributional q (gated when used as an index)

    # ------------------------------------------------------------ variables
    def variable(self, name: str) -> Tensor:
        v = self.model.variables[name]
        base = self.syms.var(name, len(v.shape))
        if not v.shape:
            return Tensor((), lambda idx: base, (base, ()))
        return Tensor(v.shape, lambda idx: base[idx] if idx else base, (base, ()))

    # ---------------------------------------------------------- expressions
    def lower(self, e: ast.Expr, scope: dict[str, sp.Idx], gates: Gates) -> Tensor:
        match e:
            case ast.Num(value=v, is_int=is_int):
                num = _number(v, is_int)
                return Tensor((), lambda idx: num)
            case ast.Name(id=n):
                if n in scope:
                    i = scope[n]
                    return Tensor((), lambda idx: i)
                if n in self.model.dims:
                    d = self.syms.dim(n)
                    return Tensor((), lambda idx: d)
                return self.variable(n)
            case ast.Index(base=b, indices=ix):
                return self.index(b.id, ix, scope, gates)
            case ast.BinOp(op=op, left=l, right=r):
                a, c = self.lower(l, scope, gates), self.lower(r, scope, gates)
                f = {"+": sp.Add, "-": lambda x, y: x - y, "*": sp.Mul, "/": lambda x, y: x / y,
                     "^": sp.Pow}[op]
                shape = a.shape or c.shape
                return Tensor(shape, lambda idx: f(a.at(idx if a.shape else ()), c.at(idx if c.shape else ())))
            case ast.Neg(operand=o):
                a = self.lower(o, scope, gates)
                return Tensor(a.shape, lambda idx: -a.at(idx))
            case ast.Call(func=f, args=args):
                parts = [self.lower(a, scope, gates) for a in args]
                if f.id == "dot":
                    return self.dot(*parts)
                fn = {"exp": sp.exp, "log": sp.log, "sigmoid": sigmoid, "softplus": softplus}[f.id]
                a = parts[0]
                return Tensor(a.shape, lambda idx: fn(a.at(idx)))
            case ast.PlateSum(var=v, dim=d, body=body):
                i = self.syms.fresh(v.id, d.id)
                inner = self.lower(body, {**scope, v.id: i}, gates)
                return Tensor(inner.shape, lambda idx: sp.Sum(inner.at(idx), (i, 0, i.upper)))
        raise AssertionError(e)  # pragma: no cover  (vector literals are refused by the checker)

    def index(self, name: str, ix: tuple[ast.Expr, ...], scope, gates: Gates) -> Tensor:
        base = self.variable(name)
        fixed: list[sp.Expr] = []
        for i in ix:
            latent = self.discrete_latent(i)
            if latent is not None:
                var, sub = latent
                idx = tuple(self.lower(s, scope, gates).scalar() for s in sub)
                key = (var, idx)
                if key not in gates.found:
                    rng = self.model.variables[var].support_dim
                    gates.found[key] = self.syms.fresh("k" if not isinstance(rng, str) else rng.lower(), rng)
                fixed.append(gates.found[key])
            else:
                fixed.append(self.lower(i, scope, gates).scalar())
        rest = base.shape[len(fixed):]
        pre = tuple(fixed)
        b = base.ref[0]
        return Tensor(rest, lambda idx: b[pre + tuple(idx)], (b, pre))

    def stick_weights(self, e: ast.Expr, scope, gates: Gates) -> Tensor | None:
        """The sticks v of ``e`` when ``e`` names the weights of a ``StickBreaking`` latent (whose q is over v)."""
        name = e.id if isinstance(e, ast.Name) else e.base.id if isinstance(e, ast.Index) else None
        prior = self.model.prior(name) if name in self.mean_field else None
        if prior is None or prior.dist != "StickBreaking":
            return None
        return self.lower(e, scope, gates)

    def discrete_latent(self, e: ast.Expr) -> tuple[str, tuple[ast.Expr, ...]] | None:
        """``z[n]`` (or a scalar ``z``) when z is a mean-field latent with finite support."""
        if isinstance(e, ast.Index) and e.base.id in self.mean_field:
            return e.base.id, e.indices
        if isinstance(e, ast.Name) and e.id in self.mean_field:
            return e.id, ()
        return None

    def dot(self, a: Tensor, b: Tensor) -> Tensor:
        j = self.syms.fresh("j", a.shape[-1])
        ra = len(a.shape) - 1
        return Tensor(a.shape[:-1] + b.shape[1:],
                      lambda idx: sp.Sum(a.at(tuple(idx[:ra]) + (j,)) * b.at((j,) + tuple(idx[ra:])), (j, 0, j.upper)))

    # -------------------------------------------------------------- factors
    def factor_log_density(self, f: Factor, opaque: frozenset[str] = frozenset()) -> tuple[sp.Expr, tuple[sp.Idx, ...]]:
        """ℓ_f at one plate index, with gates summed out; and the factor's plate indices.  The scalar arguments
        named in ``opaque`` stand as symbols of their own (to find which one makes a number overflow)."""
        scope = {var: self.syms.index(var, dim) for var, dim in f.plates}
        plates = tuple(scope[v] for v, _ in f.plates)
        gates = Gates()
        if f.dist == FLAT:             # no prior: the counting (binary) or Lebesgue (real) measure
            return sp.S.Zero, plates
        if f.energy:                   # `factor EXPR`: EXPR itself is the term of log p̃
            return gates.wrap(self.syms, self.lower(f.arg("energy"), scope, gates).scalar()), plates
        subs: list[ast.Expr] = [ast.Name(i, f.span) for i in f.target_index]
        for axis, at in f.fixed:          # a chain's first element, `x[0] ~ …`: the literal in its place
            subs.insert(axis, ast.Num(float(at), True, f.span))
        target = self.index(f.target, tuple(subs), scope, gates) if subs else self.variable(f.target)
        if f.target in self.mean_field and self.model.variables[f.target].support == "index":
            value = ("gate", f.target, tuple(self.lower(i, scope, gates).scalar() for i in subs))
        else:
            value = target
        args = {}
        for name, expr in f.args:
            if name == "alloc":           # the superposition's allocation: its gate, below
                continue
            if (f.dist, name) == ("MvNormal", "precision") and isinstance(expr, ast.BinOp):
                # `s * M`, the one expression the checker allows there: a scalar times a named matrix,
                # as in PRML 10.2's prior μ_k ~ N(m0, (β0 Λ_k)⁻¹)
                a, b = self.lower(expr.left, scope, gates), self.lower(expr.right, scope, gates)
                args[name], args["precision_scale"] = (b, a) if not a.shape else (a, b)
            elif name in opaque:
                symbol = sp.Symbol(f"_{name}", positive=True)
                args[name] = Tensor((), lambda idx: symbol)
            else:
                args[name] = self.lower(expr, scope, gates)
        if f.dist == "StickBreaking":
            body = stick_breaking_prior(target, args["alpha"], self.syms)
            return gates.wrap(self.syms, body), plates
        p = dict(f.args).get("p")
        stick = self.stick_weights(p, scope, gates) if f.dist == "Categorical" else None
        if stick is not None:
            body = categorical_of_sticks(value, stick, self.syms)
            return gates.wrap(self.syms, body), plates
        if "alloc" in dict(f.args):
            gate = self.syms.gate(_ref_name(f.arg("alloc")))
            at = tuple(self.lower(i, scope, gates).scalar() for i in subs)
            return gates.wrap(self.syms, superposed(value.scalar(), args["rate"].scalar(), gate, at)), plates
        # a missing count (data declared `: missing`, ppvi.language.missing): its base measure is the place-holder
        # statistic of its q (ppvi.families.base, "the q side"), never an expectation of log x!  (Only there: a
        # latent count of the model's own keeps its refusal, docs/derivation.md section 3.)
        v = self.model.variables[f.target]
        count = f.target in self.mean_field and v.support == "count" and v.missing
        measure = (lambda: count_measure(f.dist, value, args)) if count else \
            (lambda: counting_measure(f.dist, value, args, self.syms))
        if "pg" in args:
            body = augmented(f.dist, value.scalar(), args, measure=f.dist not in COUNTING_MEASURE)
            if f.dist in COUNTING_MEASURE:
                return gates.wrap(self.syms, body) + measure(), plates
            return gates.wrap(self.syms, body), plates
        if f.dist in COUNTING_MEASURE:
            # the counting measure (log C(n, x), log n!/Πx!) reads only data: outside the gates, since
            # Σ_k [z = k] · c = c, so no statistic sums a constant over the components
            body = log_density(f.dist, value, args, self.syms, measure=False)
            return gates.wrap(self.syms, body) + measure(), plates
        if count and f.dist == "NegativeBinomial":     # (log h_r(x), outside the gates likewise)
            x, p, r = value.scalar(), args["p"].scalar(), args["r"].scalar()
            return gates.wrap(self.syms, x * sp.log(p) + r * sp.log(1 - p)) + count_measure(f.dist, value, args), plates
        body = log_density(f.dist, value, args, self.syms)
        if count:      # (Poisson: −log x!, outside the gates as the counting measure is)
            x = value.scalar()
            return gates.wrap(self.syms, body + lgamma(x + 1)) + count_measure(f.dist, value, args), plates
        return gates.wrap(self.syms, body), plates


NOT_FINITE = (sp.zoo, sp.nan, sp.oo, sp.I)
_LOG_MAX = math.log(1.7976931348623157e308)


def _number(v: float, is_int: bool) -> sp.Expr:
    """A literal as SymPy reads it best: exact (0.1 is 1/10) while numerator and denominator are small, else a
    Float — an exact 1e-300 is 1/10³⁰⁰, whose powers and logarithms SymPy works out digit by digit."""
    if is_int:
        return sp.Integer(int(v))
    exact = sp.Rational(repr(v))
    return exact if max(abs(exact.p), exact.q) < 10**15 else sp.Float(v)


def not_finite(e: sp.Expr) -> sp.Expr | None:
    """±∞, NaN or the imaginary unit, if ``e`` holds one (``mu / 0`` lowers to zoo·mu)."""
    return next((bad for bad in NOT_FINITE if e.has(bad)), None)


def not_a_double(e: sp.Expr) -> sp.Expr | None:
    """A number in ``e`` that code could not hold as a double: :func:`not_finite`'s, or a finite one beyond
    the double range (10⁶⁰⁰ = 1/sd² for sd = 10⁻³⁰⁰) or too small to be told from 0; None if none."""
    bad = not_finite(e)
    if bad is not None:
        return bad
    for n in sorted(e.atoms(sp.Number), key=sp.default_sort_key):     # (sorted: the same one every run)
        value = float(n)
        if not math.isfinite(value) or (value == 0 and n != 0):
            return n
    # (y − 1e200)² is fine as written, and 1e400 once code expands it into Σy² − 2·1e200·Σy + N·1e400
    for p in sorted(e.atoms(sp.Pow), key=sp.default_sort_key):
        if p.exp.is_Integer and p.exp > 1:
            for n in sorted(p.base.atoms(sp.Number), key=sp.default_sort_key):
                if n != 0 and int(p.exp) * math.log(abs(float(n))) > _LOG_MAX:
                    return sp.Float(n, 3) ** p.exp
    return None


def first_not_a_double(low: "Lowering", e: ast.Expr, scope: dict[str, sp.Idx]) -> tuple[ast.Expr, str] | None:
    """The innermost sub-expression of the model's ``e`` that lowers to ∞, NaN or a complex number once its
    dims are symbols (``mu / (N - N)``), and what is wrong there; None if there is none.  Only on the way
    to an error: each node is lowered again."""
    match e:
        case ast.PlateSum(var=v, dim=d, body=body):
            inner = first_not_a_double(low, body, {**scope, v.id: low.syms.fresh(v.id, d.id)})
            if inner is not None:
                return inner
        case ast.BinOp(op=op, left=a, right=b):
            found = first_not_a_double(low, a, scope) or first_not_a_double(low, b, scope)
            if found is not None:
                return found
            if op == "/" and _lowered(low, b, scope) == 0:
                return b, "division by zero"
        case ast.Neg(operand=a):
            return first_not_a_double(low, a, scope)
        case ast.Call(args=args) | ast.Index(indices=args):
            for a in args:
                found = first_not_a_double(low, a, scope)
                if found is not None:
                    return found
    return (e, "this expression is not a finite real number") if not_finite(_lowered(low, e, scope)) else None


def _lowered(low: "Lowering", e: ast.Expr, scope: dict[str, sp.Idx]) -> sp.Expr:
    t = low.lower(e, scope, Gates())
    return t.at(tuple(sp.Symbol(f"_i{n}", integer=True) for n in range(len(t.shape))))


def stick_breaking_prior(v: Tensor, alpha: Tensor, syms: Symbols) -> sp.Expr:
    """Σ_k log Beta(v_k; 1, α_k) = Σ_k [log α_k + (α_k − 1) log(1 − v_k)] over all K sticks.  The truncation
    v_K = 1 lives in the weights (:func:`stick_log_weight`); the K-th stick, read by nothing else, keeps
    q = its prior and adds E[log p] + H = −KL(q ‖ p) = 0 to the ELBO."""
    k = syms.fresh("k", v.shape[0])
    a_k = alpha.at((k,))
    return sp.Sum(sp.log(a_k) + (a_k - 1) * sp.log(1 - v.at((k,))), (k, 0, k.upper))


def stick_log_weight(v: Tensor, k: sp.Expr, syms: Symbols) -> sp.Expr:
    """log π_k = [k < K − 1] log v_k + Σ_{j<k} log(1 − v_j): π_k = v_k Π_{j<k} (1 − v_j) with v_K = 1."""
    j = syms.fresh("j", v.shape[0])
    return before(k, j.upper) * sp.log(v.at((k,))) + sp.Sum(before(j, k) * sp.log(1 - v.at((j,))),
                                                            (j, 0, j.upper))


def categorical_of_sticks(value, v: Tensor, syms: Symbols) -> sp.Expr:
    """log Categorical(value; π) with π the weights of the sticks v (a gated latent or observed indices)."""
    if isinstance(value, tuple):   # Σ_k [z = k] log π_k
        _, var, idx = value
        k = syms.fresh("k", v.shape[0])
        return sp.Sum(syms.gate(var)[idx + (k,)] * stick_log_weight(v, k, syms), (k, 0, k.upper))
    return stick_log_weight(v, value.scalar(), syms)


COUNTING_MEASURE = ("Binomial", "Multinomial")


def counting_measure(dist: str, value, args: dict[str, Tensor], syms: Symbols) -> sp.Expr:
    """log h(x) of a count law whose total n is known: log C(n, x), or log n! − Σ_k log x_k!."""
    n = args["n"].scalar()
    if dist == "Binomial":
        from ppvi.families.binomial.symbolic import log_binomial_coefficient

        return log_binomial_coefficient(n, value.scalar())
    k = syms.fresh("k", args["p"].shape[0])
    return lgamma(n + 1) - sp.Sum(lgamma(value.at((k,)) + 1), (k, 0, k.upper))


def count_measure(dist: str, value, args: dict[str, Tensor]) -> sp.Expr:
    """log h(x) of a missing count x as its q's place-holder statistic: −log x! of a Poisson, n times
    log C(n, x)/n of a Binomial (n read off as its coefficient; ppvi.families.binomial.symbolic), r times
    log h_r(x)/r of a NegativeBinomial (likewise; ppvi.families.negative_binomial.symbolic)."""
    x = value.scalar()
    if dist == "Binomial":
        return args["n"].scalar() * binomial_base(x)
    if dist == "NegativeBinomial":
        return args["r"].scalar() * negative_binomial_base(x)
    return poisson_base(x)


def augmented(dist: str, x: sp.Expr, args: dict[str, Tensor], measure: bool = True) -> sp.Expr:
    """log p(x | ψ, ω) of a logistic-link law given its Pólya-Gamma weight ω (Polson, Scott & Windle 2013):

        log h(x) + κψ − ωψ²/2 − b log 2,   κ = x − b/2,

    b = 1 (Bernoulli), n (Binomial), x + r (NegativeBinomial; h(x) = Γ(x + r)/(Γ(r) x!)).  With
    ω ~ PG(b, 0) integrated out it is log p(x | sigmoid(ψ)); given ω it is quadratic in ψ, so a Gaussian
    (or binary) latent in an affine ψ keeps a conjugate q (docs/derivation.md, section 9).  ``measure``
    False leaves out a Binomial's log C(n, x), which the caller adds outside the gates."""
    psi, omega = args["p"].scalar().args[0], args["pg"].scalar()
    if dist == "Bernoulli":
        b, base = sp.S.One, sp.S.Zero
    elif dist == "Binomial":
        b = args["n"].scalar()
        base = log_binomial_coefficient(b, x) if measure else sp.S.Zero
    else:
        r = args["r"].scalar()
        b, base = x + r, lgamma(x + r) - lgamma(r) - lgamma(x + 1)
    return base + (x - b / 2) * psi - omega * psi ** 2 / 2 - b * sp.log(2)


def superposed(y: sp.Expr, rate: sp.Sum, gate: sp.IndexedBase, at: tuple[sp.Expr, ...]) -> sp.Expr:
    """log p(y, c | t) of ``y ~ Poisson(Σ_k t_k)`` given its allocation c = y·[z = k] (the superposition: y is
    the sum of independent c_k ~ Poisson(t_k); Cemgil 2009, Gopalan, Hofman & Blei 2015):

        y Σ_k [z = k] log t_k − Σ_k t_k − log y!,

    the allocation's y draws z sharing one q, so E[c_k] = y φ_k.  Each t_k is a product of positive
    factors: its log is a sum of their logs, linear in a Gamma's log x (and t_k in its x).  With
    c integrated out (Σ over the multinomial) it is log Poisson(y | Σ_k t_k) exactly: the multinomial
    coefficient y!/Π c_k! of the allocation's law and the Π c_k! of the c_k's Poisson laws cancel, so q(z)'s
    entropy, taken y times, completes the bound (docs/derivation.md, section 9.1)."""
    body, (k, lo, hi) = rate.function, rate.limits[0]
    term = sp.expand_log(sp.log(body), force=True)
    return y * sp.Sum(gate[at + (k,)] * term, (k, lo, hi)) - sp.Sum(body, (k, lo, hi)) - lgamma(y + 1)


def _ref_name(e: ast.Expr) -> str:
    return e.base.id if isinstance(e, ast.Index) else e.id


def log_density(dist: str, value, args: dict[str, Tensor], syms: Symbols, measure: bool = True) -> sp.Expr:
    """log p(value | args) in index notation, with every normalising constant (19.7 needs them); without
    the counting measure of :data:`COUNTING_MEASURE` laws when ``measure`` is False."""
    from ppvi.families import family

    if dist in COUNTING_MEASURE:
        base = counting_measure(dist, value, args, syms) if measure else sp.S.Zero
        p = args["p"]
        if dist == "Binomial":
            x, q = value.scalar(), p.scalar()
            return base + x * sp.log(q) + (args["n"].scalar() - x) * sp.log(1 - q)
        k = syms.fresh("k", p.shape[0])
        return base + sp.Sum(value.at((k,)) * sp.log(p.at((k,))), (k, 0, k.upper))
    if dist == "PolyaGamma":   # b·(log h_b(ω))/b: the place-holder statistic that hands b to q(ω)
        return args["b"].scalar() * pg_base(value.scalar())
    if dist == "NegativeBinomial":
        x, p, r = value.scalar(), args["p"].scalar(), args["r"].scalar()
        return lgamma(x + r) - lgamma(r) - lgamma(x + 1) + x * sp.log(p) + r * sp.log(1 - p)
    if dist in ("Normal", "Gamma", "Beta", "Poisson", "Exponential", "Laplace"):
        return family(dist).log_density(value.scalar(), {k: t.scalar() for k, t in args.items()})
    if dist == "Bernoulli":
        x, p = value.scalar(), args["p"].scalar()
        if isinstance(p, sigmoid):   # logit form: x·e − softplus(e) = x log σ(e) + (1 − x) log σ(−e)
            return x * p.args[0] - softplus(p.args[0])
        return x * sp.log(p) + (1 - x) * sp.log(1 - p)
    if dist == "Categorical":
        p = args["p"]
        if isinstance(value, tuple):   # a latent: Σ_k [z = k] log p_k
            _, var, idx = value
            k = syms.fresh("k", p.shape[0])
            return sp.Sum(syms.gate(var)[idx + (k,)] * sp.log(p.at((k,))), (k, 0, k.upper))
        return sp.log(p.at((value.scalar(),)))
    if dist == "Dirichlet":
        alpha = args["alpha"]
        k = syms.fresh("k", alpha.shape[0])
        k2 = syms.fresh("k", alpha.shape[0])
        a_k = alpha.at((k,))
        return (lgamma(sp.Sum(alpha.at((k2,)), (k2, 0, k2.upper)))
                + sp.Sum(-lgamma(a_k) + (a_k - 1) * sp.log(value.at((k,))), (k, 0, k.upper)))
    if dist == "MvNormal":
        mean = args["mean"]
        size = syms.dim(mean.shape[0])
        d, e = syms.fresh("d", mean.shape[0]), syms.fresh("d", mean.shape[0])
        prec, logdet_prec = _precision(args, size)
        quad = sp.Sum(sp.Sum((value.at((d,)) - mean.at((d,))) * prec(d, e) * (value.at((e,)) - mean.at((e,))),
                             (e, 0, e.upper)), (d, 0, d.upper))
        return logdet_prec / 2 - size * sp.log(2 * sp.pi) / 2 - quad / 2
    if dist == "Wishart":
        df, scale = args["df"].scalar(), args["scale"]
        size = syms.dim(scale.shape[0])
        inv = _inverse(scale)
        d, e = syms.fresh("d", scale.shape[0]), syms.fresh("d", scale.shape[0])
        trace = sp.Sum(sp.Sum(inv(e, d) * value.at((d, e)), (e, 0, e.upper)), (d, 0, d.upper))
        return ((df - size - 1) / 2 * logdet(_ref_expr(value)) - trace / 2 - df * size * sp.log(2) / 2
                - df / 2 * logdet(_ref_expr(scale)) - lmvgamma(df / 2, size))
    raise AssertionError(dist)  # pragma: no cover


def _ref_expr(t: Tensor) -> sp.Expr:
    base, pre = t.ref
    return base[pre] if pre else base


class inverse(sp.Function):
    """Element [d, e] of the inverse of a const or data matrix, computed once from its values: inverse(M, d, e)."""

    nargs = 3


def _inverse(t: Tensor):
    m = _ref_expr(t)
    return lambda d, e: inverse(m, d, e)


def _precision(args: dict[str, Tensor], size: sp.Expr):
    """(Λ[d, e] as a function, log|Λ|) for MvNormal's precision= or cov= argument.

    The checker lets only a named matrix M stand there (a const, data, or for precision= a
    Wishart latent), or for precision= a scalar s times one: log|s M| = D log s + log|M|."""
    if "precision" in args:
        p = args["precision"]
        if "precision_scale" in args:
            c = args["precision_scale"].scalar()
            return (lambda d, e: c * p.at((d, e))), size * sp.log(c) + logdet(_ref_expr(p))
        return (lambda d, e: p.at((d, e))), logdet(_ref_expr(p))
    c = args["cov"]
    return _inverse(c), -logdet(_ref_expr(c))
