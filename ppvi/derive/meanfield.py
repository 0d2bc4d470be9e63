"""The mean-field derivation (seed eq. 19.56), done symbolically with plates kept symbolic.

For every factor f, E_q[ℓ_f] is computed in the latents' moments
(:mod:`.expectation`); their sum 𝓛 is the expected log joint.  Because the
model is conjugate-exponential, 𝓛 is linear in each latent element's expected
statistics, and the coefficient that 19.56 collects for statistic s of the
element x_a is

    η_s(x_a) = ∂𝓛 / ∂⟨T_s(x_a)⟩,

exactly the natural parameter of q*(x_a) (variational message passing reads
it the same way).  Which statistics have a non-zero coefficient, together with
x's support, names the family of q (docs/derivation.md, section 3); it is never copied from
the prior.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from ppvi.derive.canonical import canonical, is_zero, without_zero_terms
from ppvi.derive.expectation import MAX_TERMS, Expectation, NonConjugate, TooLarge, collapse
from ppvi.derive import qfamily
from ppvi.derive.lower import Lowering, first_not_a_double, not_a_double, not_finite
from ppvi.derive.mstep import point_update
from ppvi.derive.newton import Newton, derive_newton, is_link, reads_own_exp
from ppvi.derive.symbols import MomentBase, MomentSymbol, Symbols
from ppvi.errors import PPVIError, Reporter
from ppvi.families import FAMILIES, Q_FAMILIES, family
from ppvi.families.normal_gamma import UNIT as NORMAL_GAMMA
from ppvi.families.symbolic import q_keys
from ppvi.graph import FactorGraph, build
from ppvi.language.check import FLAT, MISSING_COUNTS, CheckedModel
from ppvi.language.distributions import LOG_GAMMA_SHAPES

#: support -> the q families on it, each with its statistic keys, in the canonical order — docs/derivation.md,
#: section 3; from :mod:`ppvi.families`.  On {0, 1}, x² = x: the expectation engine may produce ⟨x²⟩ for a
#: binary latent; it is folded into x.  Counts have two (Poisson, Binomial): the base measure's place-holder
#: statistic of the factor that draws the count tells them apart.
def _families_by_support() -> dict[str, tuple[tuple[str, tuple[str, ...]], ...]]:
    out: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {}
    for f in map(FAMILIES.__getitem__, Q_FAMILIES):
        out[f.support] = out.get(f.support, ()) + ((f.name, q_keys(f) + (("x2",) if f.support == "binary" else ())),)
    return out


FAMILIES_BY_SUPPORT = _families_by_support()


def family_for(model: CheckedModel, var: str, support: str,
               present: set[str] = frozenset()) -> tuple[str | None, tuple[str, ...]]:
    """The q family on ``support`` whose statistics hold ``present`` (the first such), else the support's first
    (the message then names what it absorbs); (None, ()) for a support no q family has.  A count has a q only
    as a missing entry of data (docs/language.md, "Missing data"): a latent count of the model's own has none."""
    fams = FAMILIES_BY_SUPPORT.get(support, ())
    if support == MISSING_COUNTS and not model.variables[var].missing:
        fams = ()
    return next((f for f in fams if present <= set(f[1])), fams[0] if fams else (None, ()))

STAT_WORDS = {"x": "x", "x2": "x²", "logx": "log x", "log1mx": "log(1 − x)", "logp": "log πₖ",
              "onehot": "[z = k]", "xxT": "x xᵀ", "X": "X", "logdet": "log|X|",
              "base": "log PG(x | b, 0) / b", "lfact": "−log x!", "lchoose": "log C(n, x) / n",
              "lnb": "log Γ(x + r)/(Γ(r) x!) / r"}


@dataclass(frozen=True)
class QFactor:
    """q of one latent: its family and natural parameters at a generic element.

    ``index`` names the element (one Idx per plate axis); ``event`` the event
    axes of vector families (d for MvNormal's x and Dirichlet's k, (d, e) for
    matrices).  ``natural`` maps statistic keys to η as expressions of the
    neighbours' moments, the data, the params and the constants.
    """

    var: str
    family: str
    index: tuple[sp.Idx, ...]
    event: tuple[sp.Idx, ...]
    extra: sp.Idx | None
    natural: dict[str, sp.Expr]
    scope: str
    newton: Newton | None = None     # an exp link's q: ``natural`` is ∂𝓛/∂⟨T⟩, read at q's own moments
    replicas: sp.Expr | None = None  # a superposition's allocation: the count y its element stands for y draws of


@dataclass
class Derivation:
    model: CheckedModel
    graph: FactorGraph
    syms: Symbols
    q: dict[str, QFactor]
    expected: dict[int, sp.Expr]               # factor id -> Σ_plates E_q[ℓ_f]
    point: list[str] = field(default_factory=list)   # MAP latents (Dirac q)
    points: dict = field(default_factory=dict)       # params and MAP latents -> mstep.PointUpdate

    def standard(self, var: str) -> dict[str, sp.Expr]:
        """The update of q(var)'s standard parameters, in the neighbours' moments."""
        return qfamily.standard(self.q[var])

    def elbo_terms(self) -> list[tuple[str, sp.Expr]]:
        """19.7 as labelled terms: E_q[log p] of every factor, then H[q] of every mean-field latent.

        Binary latents have ⟨x²⟩ = ⟨x⟩; the expected terms say so here.
        """
        binary = {}
        for v, q in self.q.items():
            if q.family == "Bernoulli":
                binary[self.syms.moment(v, "x2", len(q.index))] = self.syms.moment(v, "x", len(q.index))
        out = []
        for f in self.model.factors:
            e = self.expected[f.id].replace(lambda x: x in binary or (isinstance(x, sp.Indexed) and x.base in binary),
                                            lambda x: binary[x] if x in binary else binary[x.base][x.indices])
            line = self.model.statement(f)
            what = "E[energy]" if f.energy else "E[log p] (none: the flat measure)" if f.dist == FLAT else "E[log p]"
            if f.dist == FLAT and f.target in self.q and self.q[f.target].replicas is not None:
                out.append((f"E[log p] of the allocation `{f.target}` (none: its law is the statement's)", e))
                continue
            out.append((f"E[log p] of `{f.target} ~ PG(b, 0)` (the weight of `{line}`)" if f.dist == "PolyaGamma"
                        else f"{what} of `{line}`", e))
        for v, q in self.q.items():
            h = qfamily.entropy(q, qfamily.param_elements(q))
            if v in self.model.pairs:       # H[q(μ | λ)] averaged over q(λ): q(μ)'s sd is (β⟨λ⟩)^-½ (a pair's)
                lam = [self.syms.moment(self.model.pairs[v], s, len(q.index)) for s in ("x", "logx")]
                h = family(NORMAL_GAMMA.name).pair_entropy(h, *(m[q.index] if q.index else m for m in lam))
            if q.replicas is not None:       # y draws sharing one q: H[Multinomial(y, φ)] relative to its y!/Πc!
                h = q.replicas * h
            for i in reversed(q.index):
                h = sp.Sum(h, (i, 0, i.upper))
            out.append((f"H[q({v})] relative to PG(b, 0) (its prior's ⟨log h_b⟩ cancels: their sum is −KL)"
                        if q.family == "PolyaGamma" else
                        f"H[q({v})] × {sp.sstr(q.replicas)} (Multinomial({sp.sstr(q.replicas)}, p) relative to its "
                        "coefficient, which the counts' own Π c! cancel)" if q.replicas is not None
                        else f"H[q({v})] (of its pair: H[q({v} | {self.model.pairs[v]})] averaged over "
                        f"q({self.model.pairs[v]}))" if v in self.model.pairs else f"H[q({v})]", h))
        return out


def _err(model: CheckedModel) -> Reporter:
    return Reporter(model.path, model.text)


def gaussian_block(model: CheckedModel, var: str) -> bool:
    """``approximate var jointly`` on real elements that form no chain: 19.56 for each point's row var[…, :] as
    one variable, so q is an MvNormal over the last axis with every axis before it a plate (docs/derivation.md,
    section 8).  The expectation then reads E[var[P, m] var[P, m']] as ⟨x xᵀ⟩[P, m, m'], the update gives the
    row's full precision (the prior's diagonal plus every cross term), and all that follows is an MvNormal q's."""
    return (model.approximations.get(var) == "jointly" and var not in model.chains
            and model.variables[var].support == "real")


def _support(model: CheckedModel, node) -> str:
    """The support q is derived on: a Gaussian block's real rows are vectors."""
    return "real_vector" if gaussian_block(model, node.name) else node.support


def _check_block(model: CheckedModel, graph: FactorGraph, rep: Reporter, var: str) -> None:
    """A Gaussian block is one MvNormal per point over the last axis: refused along the data plate (one
    Gaussian over every point, its covariance N × N)."""
    prior = model.prior(var)
    last = dict(prior.plates)[prior.target_index[-1]]
    if last == graph.data_plate:
        raise rep.fail(f"ppvi cannot derive the joint q of `{var}` along the data plate `{last}` yet: it would be one "
                       f"Gaussian over every point", prior.span,
                       f"`approximate {var} jointly` gives one Gaussian per point over `{var}`'s last axis: draw "
                       f"the data plate first (`{var}[n, m]`), or leave `{var}` to the mean field")


def info_of(model: CheckedModel, syms: Symbols, latents) -> dict[str, tuple[str, int]]:
    """Each latent's support and number of plate axes (what the expectation needs); declares its symbols."""
    info = {}
    for n in latents:
        syms.var(n.name, len(n.shape))
        if n.support == "index":
            syms.gate(n.name)
        prior = model.prior(n.name)
        plates = len(prior.target_index) if prior else 0
        info[n.name] = (_support(model, n), plates - 1 if gaussian_block(model, n.name) else plates)
    return info


def derive(model: CheckedModel) -> Derivation:
    """Apply 19.56 to every mean-field latent of a checked model."""
    if any(model.variables[c].kind == "latent" and model.variables[c].support == "index" for c in model.chains):
        from ppvi.derive.chain import derive_chains     # (chain imports this module)
        return derive_chains(model)
    graph = build(model)
    syms = Symbols()
    latents = graph.latents()
    # (jointly: read off q; a pair: each of its two by 19.56, the engine takes the pair's step from both)
    mean_field = {n.name for n in latents if n.approximation in ("mean_field", "jointly", "pair")}
    info = info_of(model, syms, latents)
    low = Lowering(model, syms, mean_field)
    expect = Expectation(syms, {k: v for k, v in info.items() if k in mean_field}, joint_chains(model))
    rep = _err(model)

    expected: dict[int, sp.Expr] = {}
    # (sequences in long format: the chain's statements, sums over the steps, restart where `by` changes)
    ragged = {i: c for c in model.chains.values() if c.by is not None for i in (c.body, *c.firsts)}
    for f in model.factors:
        if f.id in ragged:
            from ppvi.derive.chain import ragged_log_density
            f, ell, plates = ragged_log_density(low, model, ragged[f.id], f)
        else:
            ell, plates = low.factor_log_density(f)
        if not_finite(ell) is not None:
            raise _not_finite(rep, low, f)
        expected[f.id] = _expected(syms, expect, rep, model, f, ell, plates)
        bad = not_a_double(ell) or not_a_double(expected[f.id])
        if bad is not None:
            raise _overflow(rep, model, low, expect, f, bad)

    total = sp.Add(*expected.values())
    q: dict[str, QFactor] = {}
    for n in latents:
        if n.name not in mean_field:
            continue
        if gaussian_block(model, n.name):
            _check_block(model, graph, rep, n.name)
        q[n.name] = _q_factor(model, graph, syms, rep, n, total, expected)
    point = [n.name for n in latents if n.name not in mean_field]
    points = {v: point_update(model, syms, expected, v, "point", partial, low) for v in point}
    points.update({v.name: point_update(model, syms, expected, v.name, "param", partial, low)
                   for v in model.of_kind("param")})
    d = Derivation(model, graph, syms, q, expected, point, points)
    check_pairs(d)
    if model.chains:
        from ppvi.derive.chain import gaussian_blocks
        d = gaussian_blocks(d)
    if any(qf.newton is not None and qf.newton.blocked for qf in q.values()):
        from ppvi.derive.newton import join_blocks
        d = join_blocks(d)
    return d


def joint_chains(model: CheckedModel) -> frozenset[str]:
    """The Gaussian chains approximated jointly that the block handles (their lag-one covariances are moments)."""
    from ppvi.derive.chain import gaussian_refusal

    return frozenset(n for n, c in model.chains.items() if model.approximations.get(n) == "jointly"
                     and model.variables[n].kind == "latent" and gaussian_refusal(model, c) is None)


def check_pairs(d: Derivation) -> None:
    """``approximate mu, lam jointly``: the pair's q is Normal–Gamma only where the expected log joint reads μ's
    statistics through λμ² and λμ alone (docs/derivation.md, "A Normal–Gamma pair"): η of q(μ) is ⟨λ⟩ times the
    pair's, so it vanishes where ⟨λ⟩ does.  Refused at the statement that reads μ without λ."""
    for mu, lam in d.model.pairs.items():
        base = d.syms.moment(lam, "x", len(d.q[lam].index))
        zero = {a: sp.S.Zero for e in d.q[mu].natural.values() for a in e.atoms(sp.Indexed) if a.base == base}
        zero[base] = sp.S.Zero
        if all(is_zero(canonical(e.xreplace(zero))) for e in d.q[mu].natural.values()):
            continue
        culprit = next((f for f in d.model.factors if mu in _reads(f) and lam not in _reads(f)), d.model.prior(mu))
        raise _err(d.model).fail(
            f"`{mu}` is read here without `{lam}`: q(`{mu}`, `{lam}`) is Normal–Gamma only where every statement "
            f"reads `{mu}` as a mean whose precision is `{lam}` (the same element)", culprit.span,
            f"leave `{mu}` and `{lam}` to the mean field: remove `approximate {mu}, {lam} jointly`")


def _reads(f) -> set[str]:
    from ppvi.language import ast
    from ppvi.language.check import walk

    return {n.id for _, e in f.args for n in walk(e) if isinstance(n, ast.Name)}


def _expected(syms: Symbols, expect: Expectation, rep: Reporter, model: CheckedModel, f, ell: sp.Expr,
              plates: tuple[sp.Idx, ...]) -> sp.Expr:
    """Σ_plates E_q[ℓ_f] in canonical form."""
    try:
        if not is_link(f):
            _no_exp(expect, ell)
        e = expect.expect(ell)
    except NonConjugate as nc:
        raise _non_conjugate(rep, model, f, nc) from None
    except TooLarge:
        raise rep.fail(f"this statement's log density expands to more than {MAX_TERMS:,} terms", f.span,
                       "ppvi multiplies out sums of latents (the square in a Normal's density included): draw "
                       "many scalars as one vector latent and write `sum(…)` or `dot(…)`, which stay symbolic, "
                       "or multiply fewer sums") from None
    # Plates get fresh indices so that generic element indices never clash with them.
    fresh = {i: syms.fresh(str(i.label), _size(i)) for i in plates}
    e = e.xreplace(fresh)
    starts = dict(f.slices)          # a sliced plate, `for t in T[1:]`, sums from its start
    for i, (var, _) in reversed(list(zip(plates, f.plates))):
        e = sp.Sum(e, (fresh[i], starts.get(var, 0), fresh[i].upper))
    return canonical(collapse(e))


def _no_exp(expect: Expectation, ell: sp.Expr) -> None:
    """E[e^ψ] is closed form anywhere, but only an exp link's rate gives a concave Newton problem (its −c·e^ψ,
    c ≥ 0): an exponential of a latent elsewhere is refused (NonConjugate)."""
    for node in sp.preorder_traversal(ell):
        if isinstance(node, sp.exp):
            found = expect.random(node)
            if found:
                raise NonConjugate(next(v for v in expect.latents if v in found), node,
                                   "appears inside exp outside an exp link")


def _not_finite(rep: Reporter, low: Lowering, f) -> PPVIError:
    """An argument that is ∞, NaN or complex once its dims are symbols (``mu / (N - N)``): the checker's values
    need the dims' sizes; the same rule, at the innermost sub-expression that breaks it."""
    scope = {var: low.syms.index(var, dim) for var, dim in f.plates}
    found = next((n for n in (first_not_a_double(low, e, scope) for _, e in f.args) if n is not None), None)
    node, message = found if found is not None else (f, "this statement's log density is not a finite real number")
    return rep.fail(message, node.span, "a divisor must not be 0, a logarithm needs a positive argument, and a "
                    "negative number has no fractional power")


def _overflow(rep: Reporter, model: CheckedModel, low: Lowering, expect: Expectation, f, bad: sp.Expr) -> PPVIError:
    """A number of the expected log density that no double holds (10⁶⁰⁰ = 1/sd² for sd = 10⁻³⁰⁰): reported at
    the argument that makes it, found by deriving the statement again with that argument a symbol."""
    shown = _number(bad)
    hint = ("rescale the model (and its data) so that its numbers, and their squares, stay well inside double "
            "precision (about 1e-308 to 1.8e308)")
    for name, expr in f.args:
        try:
            ell, plates = low.factor_log_density(f, frozenset({name}))
            clean = not (not_a_double(ell) or not_a_double(_expected(low.syms, expect, rep, model, f, ell, plates)))
        except PPVIError:
            clean = False
        if clean:
            return rep.fail(f"`{name}` of {f.dist} here puts the number {shown} into the statement's log density, "
                            "outside double precision", expr.span, hint)
    return rep.fail(f"this statement's log density holds the number {shown}, outside double precision", f.span, hint)


def _number(n: sp.Expr) -> str:
    """A number for a message: 1.00e+600, not 600 digits."""
    return str(n) if n in (sp.zoo, sp.nan, sp.oo, sp.I) else str(sp.Float(n, 3))


def _size(i: sp.Idx):
    s = i.upper + 1
    return str(s) if isinstance(s, sp.Symbol) else int(s)


def _stats_of(var: str, e: sp.Expr) -> set[str]:
    out = set()
    for node in sp.preorder_traversal(e):
        base = node.base if isinstance(node, sp.Indexed) else node
        if isinstance(base, (MomentBase, MomentSymbol)) and base.var == var:
            out.add(base.stat)
    return out


_SPARE = ("d", "e", "l", "m", "j", "r", "s", "u")


def _generic_index(model: CheckedModel, syms: Symbols, var: str) -> tuple[tuple[sp.Idx, ...], tuple[sp.Idx, ...], sp.Idx | None]:
    """Names for a generic element of ``var``: its plate loop variables, its event axes, and
    the extra axis its moments need (k of the one-hot [z = k], e of xxᵀ).  None carries a
    prime: primes are reserved for summation indices (see ``canonical``)."""
    v = model.variables[var]
    prior = model.prior(var)
    plates = dict(prior.plates)
    block = gaussian_block(model, var)
    index = tuple(syms.index(i, plates[i]) for i in prior.target_index[:-1 if block else None])
    used = set(prior.target_index)

    def name_for(dim) -> sp.Idx:
        first = dim.lower() if isinstance(dim, str) and len(dim) == 1 else None
        if v.support == "simplex" and "k" not in used:
            first = "k"
        name = next(n for n in ((first,) if first else ()) + _SPARE if n and n not in used)
        used.add(name)
        return syms.index(name, dim)

    event = tuple(name_for(dim) for dim in v.shape[len(index):]) if not block else \
        (syms.index(prior.target_index[-1], plates[prior.target_index[-1]]),)
    if prior.dist == "StickBreaking":      # q is a product of Betas, one per stick: K is an element axis
        index, event = index + event, ()
    extra = None
    if v.support == "index":
        extra = name_for(v.support_dim)
    elif v.support == "real_vector" or block:
        extra = name_for(v.shape[-1])
    return index, event, extra


def _q_factor(model, graph, syms, rep, node, total, expected) -> QFactor:
    var = node.name
    support = _support(model, node)
    present = _stats_of(var, total) - {"cross"}     # (a joint chain's lag-one covariance: its block's, not q's)
    family, keys = family_for(model, var, support, present)
    prior = model.prior(var)
    index, event, extra = _generic_index(model, syms, var)
    if family is not None:     # a statistic whose coefficient cancels identically is not there
        present = {s for s in present if s in keys or (extra is None and s in ("onehot", "xxT")) or not is_zero(
            partial(total, syms.moment(var, s, _rank(s, index, event)), _moment_index(s, index, event, extra)))}
    if family is None or not present <= set(keys):
        extra = sorted(present - set(keys)) if family else sorted(present)
        culprit = next((f for f in model.factors if _stats_of(var, expected[f.id]) & set(extra)), prior)
        got = ", ".join(STAT_WORDS[s] for s in sorted(present))
        why = (f"no family of q on {support} support has the statistics {{{got}}}" if family
               else f"ppvi has no q family for a {support} latent")
        raise rep.fail(f"no conjugate q for `{var}`: {why}", culprit.span,
                       _missing_count_hint(var) if support == MISSING_COUNTS and model.variables[var].missing else
                       f"approximate `{var}` by point, or use a conjugate prior for it")
    natural = {}
    for s in keys:
        m = syms.moment(var, s, _rank(s, index, event))
        natural[s] = without_zero_terms(canonical(partial(total, m, _moment_index(s, index, event, extra))))
    replicas = _replicas(model, syms, var, index)
    if replicas is not None:    # y draws of one Categorical: 𝓛 holds y·⟨[z = k]⟩, and each draw's η is 1/y of it
        eta = canonical(sp.expand(natural["onehot"] / replicas))
        if eta.has(replicas.base if index else replicas):    # pragma: no cover  (lower.superposed's form)
            raise AssertionError(f"the allocation's η reads its count: {eta}")
        natural = {"onehot": eta}
    if family == "Bernoulli":   # x² = x on {0, 1}: one statistic
        natural = {"x": canonical(natural["x"] + natural["x2"])}
    elif family == "Normal" and prior.dist == FLAT:
        _check_quadratic(rep, model, var, natural["x2"], expected, own_square=(
            syms.moment(var, "x2", _rank("x2", index, event)), _moment_index("x2", index, event, extra)))
    elif family == "Normal" and is_zero(natural["x2"]):
        raise rep.fail(f"q(`{var}`) would be improper: the expected log joint has no x² term", prior.span,
                       "give it a proper prior")
    # A latent's own moments must not appear in its natural parameters (19.56 holds the rest fixed).
    # Under the mean-field expectation they cancel identically (the diagonal of a sum over the
    # latent's elements); the normal form is what shows it, whatever the indices are called.
    own = {t: (syms.moment(var, t, _rank(t, index, event)), _moment_index(t, index, event, extra)) for t in keys}
    newton = None
    for eta in natural.values():
        if any(not is_zero(partial(eta, m, at)) for m, at in own.values()):
            newton = newton or _newton(rep, model, var, family, own, total, expected, natural)
        bad = not_a_double(eta)     # (each factor's numbers are doubles; their sum, collected here, may not be)
        if bad is not None:
            raise rep.fail(f"the update of q(`{var}`) holds the number {_number(bad)}, outside double precision",
                           prior.span, "rescale the model (and its data) so that its numbers, and their sums, "
                           "stay well inside double precision (about 1e-308 to 1.8e308)")
    return QFactor(var, family, index, event, extra, natural, node.scope, newton, replicas)


def _replicas(model: CheckedModel, syms: Symbols, var: str, index: tuple[sp.Idx, ...]) -> sp.Expr | None:
    """The count a superposition's allocation splits (ppvi.language.check.superposition), at its generic element:
    the number of draws of the Categorical that its one q stands for."""
    count = model.allocations.get(var)
    if count is None:
        return None
    base = syms.var(count, len(model.variables[count].shape))
    return base[index] if index else base


def _missing_count_hint(var: str) -> str:
    return (f"a missing count's q is its own law's (Poisson or Binomial), which takes `{var}` only as ⟨{var}⟩: "
            f"read `{var}` elsewhere only linearly (not squared, not as a count's total), or impute its missing "
            "entries before the fit")


def _newton(rep: Reporter, model: CheckedModel, var: str, family: str, own: dict, total: sp.Expr,
            expected: dict, natural: dict) -> Newton:
    """q(var) Normal updated by Newton steps (docs/derivation.md, section 10), where its natural parameters read
    its own moments only through the exponential of an exp link; else the model is refused."""
    bases = {m for m, _ in own.values()}
    links = tuple(f.id for f in model.factors if reads_own_exp(expected[f.id], bases))
    if not links:
        raise _self_dependent(rep, model, var, own, expected)
    if family != "Normal":
        f = model.factors[links[0]]
        if gaussian_block(model, var):
            raise rep.fail(f"`{var}` is inside the exp of this link, and `approximate {var} jointly` makes its q an "
                           "MvNormal per point", dict(f.args)["rate"].span,
                           f"ppvi updates a Normal q inside an exp link by Newton steps: drop `approximate {var} "
                           "jointly` (the mean field updates each element)")
        raise rep.fail(f"`{var}` is inside the exp of this link, and its q is {family}", dict(f.args)["rate"].span,
                       f"ppvi updates a Normal q inside an exp link by Newton steps: draw `{var}`'s coordinates as "
                       f"scalars (`for j in D: {var}[j] ~ Normal(…)`), or `approximate {var} by point`")
    return derive_newton(total, expected, natural, own, partial, links)


def _check_quadratic(rep: Reporter, model: CheckedModel, var: str, eta2: sp.Expr, expected: dict,
                     own_square: tuple[sp.Basic, tuple]) -> None:
    """A real latent without a prior has a Normal q only where the energy's coefficient of x², η₂, is < 0 in
    expectation (q's precision is −2η₂).  Refused where η₂ is 0 or a non-negative number; where it reads
    data, the values decide when they are read."""
    decl = model.variables[var].span
    if is_zero(eta2):
        raise rep.fail(f"q(`{var}`) would be improper: no energy term has `{var}`² in it", decl,
                       f"a real latent without a prior needs a quadratic energy with a negative coefficient of its "
                       f"square, e.g. `factor -{var}[i] ^ 2 / 2 + b[i] * {var}[i]`; or give it a prior")
    if eta2.is_nonnegative or (eta2.is_number and float(eta2) >= 0):
        culprit = next((f for f in model.factors if f.energy and not is_zero(partial(expected[f.id], *own_square))),
                       None)
        raise rep.fail(f"q(`{var}`) would be improper: the coefficient of `{var}`² in the energy is "
                       f"{sp.sstr(eta2)}, not negative", culprit.span if culprit else decl,
                       "exp(energy) must fall off in every direction: the quadratic form must be negative definite "
                       f"(e.g. `factor -{var}[i] ^ 2 / 2`)")


def _self_dependent(rep: Reporter, model: CheckedModel, var: str, own: dict, expected: dict) -> PPVIError:
    """The factor whose expectation ppvi could not make linear in ``var``'s statistics."""
    def depends(e: sp.Expr) -> bool:
        return any(not is_zero(partial(partial(e, m1, a1), m2, a2)) for m1, a1 in own.values()
                   for m2, a2 in own.values())

    f = next((f for f in model.factors if depends(expected[f.id])), model.prior(var))
    line = model.statement(f)
    words = ", ".join(STAT_WORDS[t] for t in own)
    return rep.fail(f"no conjugate q for `{var}`: in `{line}` ppvi could not make the expected log joint "
                    f"linear in `{var}`'s statistics {{{words}}}", f.span,
                    f"a conjugate model is linear in them once the other latents are averaged out; if this one "
                    f"is, the limit is ppvi's algebra (please report it); `approximate {var} by point` (MAP) "
                    f"does not need it")


def partial(expr: sp.Expr, moment: sp.Basic, at: tuple[sp.Expr, ...]) -> sp.Expr:
    """∂expr/∂moment[at] for a generic element ``at`` (moment[J] contributes δ(J, at)).

    A small differentiator of our own: the expected log joint is a polynomial
    in the moments (sums, products, integer powers), which keeps SymPy's
    general machinery, and its habit of differentiating through indices,
    out of the hot path of a derivation.
    """
    return collapse(_d(expr, moment, tuple(at)))


def _d(e: sp.Expr, m: sp.Basic, at: tuple) -> sp.Expr:
    if not e.has(m):
        return sp.S.Zero
    if e == m:
        return sp.S.One
    if isinstance(e, sp.Indexed) and e.base == m:
        return sp.Mul(*(sp.KroneckerDelta(i, a) for i, a in zip(e.indices, at)))
    if isinstance(e, sp.Add):
        return sp.Add(*(_d(a, m, at) for a in e.args))
    if isinstance(e, sp.Mul):
        args = e.args
        return sp.Add(*(sp.Mul(*args[:i], _d(a, m, at), *args[i + 1:]) for i, a in enumerate(args) if a.has(m)))
    if isinstance(e, sp.Sum):
        return sp.Sum(_d(e.function, m, at), *e.limits)
    if isinstance(e, sp.Pow) and not e.exp.has(m):
        return e.exp * e.base ** (e.exp - 1) * _d(e.base, m, at)
    if isinstance(e, sp.Function):
        return sp.Add(*(e.fdiff(n + 1) * _d(a, m, at) for n, a in enumerate(e.args) if a.has(m)))
    raise NotImplementedError(f"cannot differentiate {e} in {m}")  # pragma: no cover


def _rank(stat: str, index, event) -> int:
    extra = 1 if stat == "xxT" else 0
    if stat == "logdet":
        return len(index)
    if stat == "onehot":
        return len(index) + 1
    return len(index) + len(event) + extra


def _moment_index(stat, index, event, extra):
    if stat == "logdet":
        return index
    if stat in ("onehot", "xxT"):
        return index + event + (extra,)
    return index + event


def _non_conjugate(rep: Reporter, model: CheckedModel, f, nc: NonConjugate) -> PPVIError:
    """Name the factor, the form the latent entered in, and what would work instead."""
    from ppvi.language import ast
    from ppvi.language.check import walk

    v = nc.var
    line = model.statement(f)
    arg_name, arg = next(((n, e) for n, e in f.args
                          if any(isinstance(x, ast.Name) and x.id == v for x in walk(e))), (None, None))
    span = arg.span if arg is not None else f.span
    support = model.variables[v].support
    family, keys = family_for(model, v, support)
    can = (f"a {family} q of `{v}` absorbs only {{{', '.join(STAT_WORDS[k] for k in keys)}}}" if family
           else f"ppvi has no q family for a {support} latent")
    form = sp.sstr(nc.form)
    if support == MISSING_COUNTS and model.variables[v].missing:
        hint = _missing_count_hint(v)
    elif f.energy:
        hint = ("an energy term must be multilinear in binary latents (`J[i, j] * s[i] * s[j]`, `b[i] * s[i]`) and at "
                "most quadratic in real ones (`-x[i] ^ 2 / 2 + b[i] * x[i]`): 19.56 then gives a Bernoulli or a "
                "Normal q")
    elif family is None:          # not even a point: `approximate … by point` refuses it too
        hint = f"ppvi has no q at all for a {support} latent: observe it as data (`data {v}[…] : {support}`)"
    elif "pg" in dict(f.args) and v != f.target:      # a logistic link the checker augmented (ppvi.language.check.polya_gamma)
        arg_name, arg = "p", dict(f.args)["p"]
        span = arg.span
        hint = (f"a Pólya-Gamma weight makes `sigmoid(ψ)` conjugate when ψ is affine in the latents (a sum of "
                f"terms each linear in one Gaussian or binary latent, times data, params or constants); here it "
                f"is not in `{v}`: make it so, or `approximate {v} by point` (MAP)")
    elif (f.dist, arg_name) in LOG_GAMMA_SHAPES:
        hint = (f"a latent `{arg_name}` of {f.dist} enters through log Γ, which no q family absorbs: "
                f"`approximate {v} by point` (MAP), or make `{v}` a const or data")
    elif is_link(f) and v != f.target:       # Poisson(exp(ψ)) … with ψ not affine in Gaussian latents
        arg_name, arg = "rate", dict(f.args)["rate"]
        span = arg.span
        kind = model.variables[v].support
        if kind in ("binary", "index"):
            hint = (f"E[e^ψ] is used with ψ Gaussian under q, and `{v}` is discrete: index by it instead "
                    f"(`exp(c[{v}[n]] + …)` with `{v}[n] ~ Categorical(…)`: ppvi sums over its values outside the "
                    f"exp), give it a Normal prior, or `approximate {v} by point`")
        elif kind != "real":
            hint = (f"E[e^ψ] is used with ψ Gaussian under q, and `{v}` has a {family} q: give `{v}` a Normal prior "
                    f"(a positive rate is `exp` of one), or `approximate {v} by point`")
        else:
            hint = (f"an exp link is closed form when ψ is affine in Gaussian latents (a sum of terms each linear in "
                    f"one Normal latent, times data, params or constants); here it is not in `{v}`: make it so, or "
                    f"`approximate {v} by point` (MAP)")
    elif nc.why.endswith("outside an exp link"):
        hint = (f"an exponential of a latent is closed form as the rate of a Poisson, Exponential or Gamma: "
                f"`y ~ Poisson(exp(ψ))` with ψ affine in Gaussian latents (q stays Normal, updated by Newton "
                f"steps); elsewhere `approximate {v} by point`")
    elif f.dist == "Normal" and arg_name in ("sd", "variance"):
        hint = (f"write `precision = {v}` instead (a Gamma prior on a precision is conjugate), "
                f"or `approximate {v} by point`")
    elif isinstance(nc.form, sp.exp) or "exp(" in form:
        hint = (f"give the rate itself a Gamma prior (`r ~ Gamma(a, b)` and use `r`), "
                f"or `approximate {v} by point`")
    elif "softplus" in form or "sigmoid" in form:
        hint = ("a sigmoid of a latent is conjugate only as the probability of a Bernoulli, Binomial or "
                "NegativeBinomial, `y ~ Bernoulli(sigmoid(ψ))` with ψ affine in the latents (ppvi adds a "
                f"Pólya-Gamma weight); elsewhere `approximate {v} by point` (MAP), or use a Beta prior on the "
                "probability itself")
    elif isinstance(nc.form, sp.Mul) and len(set(sp.Mul.make_args(nc.form))) > 1:
        # different elements of one latent multiplied: where they can coincide the moment is a higher one
        hint = (f"a product of two elements of `{v}` is not conjugate where they can be the same element; "
                f"draw the two factors from separate latents (as matrix factorisation does with P[user] and "
                f"Q[item]), or `approximate {v} by point`")
    else:
        hint = (f"`approximate {v} by point`, or reparameterise so `{v}` enters only through "
                f"{', '.join(STAT_WORDS[k] for k in keys) or 'its sufficient statistics'}")
    return rep.fail(f"`{line}` is not conjugate for `{v}`: `{v}` enters as {form}, and {can}", span, hint)
