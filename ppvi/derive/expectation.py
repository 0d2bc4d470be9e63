"""E_q[ℓ] under the mean field, in the moments ⟨T(x)⟩ of the latents (docs/derivation.md, section 2).

An expression is flattened into terms Σ_{indices} c · Π atoms, where an *atom*
is a statistic of one element of a latent: x, log x, log(1 − x), log|X|, or
the one-hot [z = k].  Distinct latents are independent under q, so a term's
expectation is the product over latents of the expectation of that latent's
atoms.  Two atoms of the same latent may be the same element or not, which
only the summation indices decide; Kronecker deltas say so:

    E[x_I x_J] = ⟨x_I⟩⟨x_J⟩ + δ_IJ (⟨x_I²⟩ − ⟨x_I⟩²)             (scalar elements)
    E[x_Pd x_Qe] = ⟨x_Pd⟩⟨x_Qe⟩ + δ_PQ (⟨xxᵀ⟩_Pde − ⟨x_Pd⟩⟨x_Pe⟩)   (vector x, plates P, Q)
    E[[z_P = k][z_Q = l]] = ⟨z_Pk⟩⟨z_Ql⟩ + δ_PQ (δ_kl ⟨z_Pk⟩ − ⟨z_Pk⟩⟨z_Pl⟩)

A Gaussian chain approximated jointly (one q over its elements along t, docs/derivation.md, section 8) keeps
its neighbours in time correlated: E[x_s x_tᵀ] adds Cov(x_{t−1}, x_t) (its ``cross`` moment, the RTS
smoother's lag-one covariance) where s = t − 1, and its transpose where t = s − 1.

An exponential of ψ affine in real latents (a sum of terms each linear in one element of a Normal or
MvNormal latent, times data, params and constants) is Gaussian under the mean field, so

    E[e^ψ] = exp(E[ψ] + Var[ψ]/2),    Var[ψ] = Σ_{s,t} c_s c_t (E[x_s x_t] − E[x_s] E[x_t])

is closed form too (docs/derivation.md, section 10), though not linear in the moments.  Anything else a
latent appears in (softplus, 1/x, x³, x·log x, exp of a discrete latent, …) has no moment under a
conjugate q: :class:`NonConjugate` names it.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from ppvi.derive.symbols import Gate, Symbols, logdet
from ppvi.families.binomial.symbolic import binomial_base
from ppvi.families.negative_binomial.symbolic import negative_binomial_base
from ppvi.families.poisson.symbolic import poisson_base
from ppvi.families.polya_gamma.symbolic import pg_base


MAX_TERMS = 20_000
REAL = ("real", "real_vector")   # supports of latents whose q is Normal or MvNormal      # terms of one statement's expanded log density; more is a model to restructure


# the base measures carried as place-holder statistics (ppvi.families.base, "the q side") -> their keys
PLACEHOLDERS = {pg_base: "base", poisson_base: "lfact", binomial_base: "lchoose", negative_binomial_base: "lnb"}


class TooLarge(Exception):
    """Expanding a statement's log density would give more than :data:`MAX_TERMS` terms."""


class NonConjugate(Exception):
    """A latent appears in a form no exponential-family q can absorb."""

    def __init__(self, var: str, form: sp.Expr, why: str):
        super().__init__(f"{var}: {why}: {form}")
        self.var, self.form, self.why = var, form, why


@dataclass(frozen=True)
class Atom:
    var: str
    stat: str
    indices: tuple[sp.Expr, ...]
    expr: sp.Expr


@dataclass(frozen=True)
class Term:
    """Σ_limits coeff · Π atoms; ``inside`` names the latents an expectation already taken in ``coeff`` read
    (E[e^ψ]): a term multiplying one of their atoms again has no such product form."""

    limits: tuple[tuple[sp.Idx, sp.Expr, sp.Expr], ...]
    coeff: sp.Expr
    atoms: tuple[Atom, ...]
    inside: frozenset[str] = frozenset()


class Expectation:
    """The mean-field expectation operator for one model.

    ``latents`` maps each mean-field latent to (support, number of plate axes); ``chains`` names the Gaussian
    chains approximated jointly along their last plate axis (their lag-one covariances are q's ``cross`` moment).
    """

    def __init__(self, syms: Symbols, latents: dict[str, tuple[str, int]], chains: frozenset[str] = frozenset()):
        self.syms = syms
        self.latents = latents
        self.chains = chains
        self.bases = {syms.bases[n]: n for n in latents if n in syms.bases}
        self.gates = {g: g.var for g in syms.gates.values()}

    # --------------------------------------------------------- atoms
    def _element(self, e: sp.Expr) -> tuple[str, tuple[sp.Expr, ...]] | None:
        if isinstance(e, sp.Indexed) and e.base in self.bases:
            return self.bases[e.base], tuple(e.indices)
        if e in self.bases:
            return self.bases[e], ()
        return None

    def atom(self, e: sp.Expr) -> Atom | None:
        el = self._element(e)
        if el is not None:
            var, idx = el
            stat = "X" if self.latents[var][0] == "pd_matrix" else "x"
            return Atom(var, stat, idx, e)
        if isinstance(e, sp.Indexed) and isinstance(e.base, Gate):
            return Atom(e.base.var, "onehot", tuple(e.indices), e)
        if isinstance(e, sp.log):
            arg = e.args[0]
            el = self._element(arg)
            if el is not None:
                var, idx = el
                return Atom(var, "logp" if self.latents[var][0] == "simplex" else "logx", idx, e)
            el = self._element(1 - arg)
            if el is not None:
                return Atom(el[0], "log1mx", el[1], e)
        if isinstance(e, tuple(PLACEHOLDERS)):      # a base measure's place-holder statistic
            el = self._element(e.args[0])
            if el is not None:
                return Atom(el[0], PLACEHOLDERS[type(e)], el[1], e)
        if isinstance(e, logdet):
            el = self._element(e.args[0])
            if el is not None:
                return Atom(el[0], "logdet", el[1], e)
        return None

    def random(self, e: sp.Expr) -> set[str]:
        """The latents an expression depends on."""
        found = set()
        for node in sp.preorder_traversal(e):
            if node in self.bases:
                found.add(self.bases[node])
            elif isinstance(node, Gate):
                found.add(node.var)
        return found

    # ------------------------------------------------------ flattening
    def flatten(self, e: sp.Expr) -> list[Term]:
        a = self.atom(e)
        if a is not None:
            return [Term((), sp.S.One, (a,))]
        if not self.random(e):
            return [Term((), e, ())]
        if isinstance(e, sp.Add):
            return [t for arg in e.args for t in self.flatten(arg)]
        if isinstance(e, sp.Mul):
            return self._product([self.flatten(arg) for arg in e.args])
        if isinstance(e, sp.Pow) and e.exp.is_Integer and e.exp > 2:
            # a cube or higher of a latent's statistic has no moment under a conjugate q (and (a + b)^30
            # expands to 2^30 terms before that shows)
            raise NonConjugate(next(v for v in self.latents if v in self.random(e)), e,
                               "appears to a power above 2")
        if isinstance(e, sp.Pow) and e.exp.is_Integer and e.exp > 0:
            return self._product([self.flatten(e.base) for _ in range(int(e.exp))])
        if isinstance(e, sp.Sum):
            body, limits = e.function, []
            for (i, lo, hi) in e.limits:
                j = self.syms.fresh(str(i.label if isinstance(i, sp.Idx) else i).rstrip("′"), _dim_of(i))
                body = body.xreplace({i: j})
                limits.append((j, lo, hi))
            return [Term(tuple(limits) + t.limits, t.coeff, t.atoms) for t in self.flatten(body)]
        if isinstance(e, sp.log):
            expanded = sp.expand_log(e, force=True)
            if expanded != e:
                return self.flatten(expanded)
        if isinstance(e, sp.exp):
            return [Term((), self.expect_exp(e), (), frozenset(self.random(e)))]
        found = self.random(e)
        var = next(v for v in self.latents if v in found)     # the model's order, not the names'
        raise NonConjugate(var, e, "appears inside a function that has no closed-form expectation")

    @staticmethod
    def _product(parts: list[list[Term]]) -> list[Term]:
        out = [Term((), sp.S.One, ())]
        for terms in parts:
            if len(out) * len(terms) > MAX_TERMS:
                raise TooLarge(len(out) * len(terms))
            for a in out:
                for b in terms:
                    both = (a.inside & (b.inside | {t.var for t in b.atoms})) | (b.inside & {t.var for t in a.atoms})
                    if both:
                        var = sorted(both)[0]
                        raise NonConjugate(var, sp.Mul(a.coeff, b.coeff), "multiplies an exponential of itself")
            out = [Term(a.limits + b.limits, a.coeff * b.coeff, a.atoms + b.atoms, a.inside | b.inside)
                   for a in out for b in terms]
        return out

    def expect_exp(self, e: sp.exp) -> sp.Expr:
        """E_q[e^ψ] = exp(E[ψ] + Var[ψ]/2) for ψ affine in real (Normal, MvNormal) latents, with Var[ψ] the sum
        over pairs of ψ's terms of the covariance of their atoms (a Kronecker delta where they may be the same
        element).  Anything else inside exp is refused (:class:`NonConjugate`, with why)."""
        psi = e.args[0]
        terms = self.flatten(psi)
        for t in terms:
            bad = next((a for a in t.atoms if a.stat != "x" or self.latents[a.var][0] not in REAL), None)
            if t.inside or len(t.atoms) > 1 or bad is not None:
                var = sorted(t.inside)[0] if t.inside else (bad or t.atoms[0]).var
                why = ("is discrete inside exp" if bad is not None and bad.stat == "onehot"
                       else "is not affine inside exp" if bad is None else f"is {self.latents[var][0]} inside exp")
                raise NonConjugate(var, e, why)
        mean = sp.Add(*(_wrap(t.coeff * (self.expect_atoms(t.atoms) if t.atoms else 1), t.limits) for t in terms))
        var_terms = []
        random = [t for t in terms if t.atoms]
        for s in random:
            for t in random:
                if s.atoms[0].var != t.atoms[0].var:
                    continue
                t2 = self._refreshed(t)
                a, b = s.atoms[0], t2.atoms[0]
                cov = self.expect_atoms((a, b)) - self.expect_atoms((a,)) * self.expect_atoms((b,))
                var_terms.append(_wrap(s.coeff * t2.coeff * cov, s.limits + t2.limits))
        return sp.exp(collapse(mean) + collapse(sp.expand(sp.Add(*var_terms))) / 2)

    def _refreshed(self, t: Term) -> Term:
        """``t`` with fresh summation indices (a term paired with itself in Var[ψ] needs two)."""
        new = {i: self.syms.fresh(str(i.label).rstrip("′"), _dim_of(i)) for i, _, _ in t.limits}
        atoms = tuple(Atom(a.var, a.stat, tuple(x.xreplace(new) for x in a.indices), a.expr.xreplace(new))
                      for a in t.atoms)
        return Term(tuple((new[i], lo, hi) for i, lo, hi in t.limits), t.coeff.xreplace(new), atoms, t.inside)

    # ----------------------------------------------------- expectation
    def moment(self, var: str, stat: str, idx: tuple[sp.Expr, ...]) -> sp.Expr:
        m = self.syms.moment(var, stat, len(idx))
        return m[idx] if idx else m

    def expect_atoms(self, atoms: tuple[Atom, ...]) -> sp.Expr:
        """E of a product of atoms of one latent."""
        if len(atoms) == 1:
            a = atoms[0]
            return self.moment(a.var, a.stat, a.indices)
        if len(atoms) == 2:
            a, b = atoms
            var = a.var
            support, nplates = self.latents[var]
            if a.stat == b.stat == "x":
                ma, mb = self.moment(var, "x", a.indices), self.moment(var, "x", b.indices)
                pa, pb = a.indices[:nplates], b.indices[:nplates]
                same = _delta(pa, pb)
                d, e = a.indices[nplates:], b.indices[nplates:]
                if len(a.indices) == nplates:   # scalar elements
                    cov = self.moment(var, "x2", a.indices) - ma ** 2
                else:                            # vector elements: second-moment matrix
                    cov = self.moment(var, "xxT", pa + d + e) - ma * self.moment(var, "x", pa + e)
                return ma * mb + same * cov + (self._lag_one(var, pa, pb, d, e) if var in self.chains else 0)
            if a.stat == b.stat == "onehot":
                ma, mb = self.moment(var, "onehot", a.indices), self.moment(var, "onehot", b.indices)
                pa, pb = a.indices[:-1], b.indices[:-1]
                k, l = a.indices[-1], b.indices[-1]
                return ma * mb + _delta(pa, pb) * (sp.KroneckerDelta(k, l) * ma
                                                  - ma * self.moment(var, "onehot", pa + (l,)))
        forms = sp.Mul(*(a.expr for a in atoms))
        raise NonConjugate(atoms[0].var, forms, "appears in a product of statistics with no closed-form moment")

    def _lag_one(self, var: str, pa: tuple, pb: tuple, d: tuple, e: tuple) -> sp.Expr:
        """Cov(x_a, x_b) of a joint chain's neighbours: ``cross``[t] = Cov(x_{t−1}, x_t) (0 at t = 0) where
        a = b − 1 along the chain's axis (the last plate axis; the plates before it are sequences of their own,
        so a and b share them), its transpose where b = a − 1."""
        *oa, s = pa
        *ob, t = pb
        same = _delta(tuple(oa), tuple(ob))
        return same * (sp.KroneckerDelta(s + 1, t) * self.moment(var, "cross", (*ob, t) + d + e)
                       + sp.KroneckerDelta(t + 1, s) * self.moment(var, "cross", (*oa, s) + e + d))

    def expect(self, e: sp.Expr) -> sp.Expr:
        """E_q[e], with each latent's statistics replaced by its moments."""
        out = []
        for t in self.flatten(e):
            by_var: dict[str, list[Atom]] = {}
            for a in t.atoms:
                by_var.setdefault(a.var, []).append(a)
            value = t.coeff * sp.Mul(*(self.expect_atoms(tuple(v)) for v in by_var.values()))
            out.append(_wrap(value, t.limits))
        return collapse(sp.Add(*out))


def _dim_of(i: sp.Basic):
    if isinstance(i, sp.Idx) and i.upper is not None:
        size = i.upper + 1
        return str(size) if isinstance(size, sp.Symbol) else int(size) if size.is_Integer else size
    raise AssertionError(f"summation index without a range: {i}")


def _delta(p: tuple[sp.Expr, ...], q: tuple[sp.Expr, ...]) -> sp.Expr:
    return sp.Mul(*(sp.KroneckerDelta(a, b) for a, b in zip(p, q)))


def _wrap(body: sp.Expr, limits) -> sp.Expr:
    for lim in reversed(limits):
        body = sp.Sum(body, lim)
    return body


# ----------------------------------------------------------------- algebra
def collapse(e: sp.Expr) -> sp.Expr:
    """Sums simplified: Σ_i δ(i, a) f(i) = f(a); Σ_i c = (range)·c; sums of sums split.

    SymPy's own ``Sum.doit`` introduces ``Piecewise`` range conditions that
    hold here by construction (every index ranges over its own dim), so the
    Kronecker deltas are resolved by substitution instead.
    """
    if isinstance(e, sp.Sum):
        body = collapse(e.function)
        for (i, lo, hi) in e.limits:
            body = _collapse_one(body, i, lo, hi)
        return body
    if not e.args or isinstance(e, (sp.Indexed, sp.Idx, sp.IndexedBase)):
        return e
    if isinstance(e, (sp.Add, sp.Mul, sp.Pow)) or isinstance(e, sp.Function) or isinstance(e, sp.KroneckerDelta):
        return e.func(*(collapse(a) for a in e.args))
    return e


def _collapse_one(body: sp.Expr, i, lo, hi) -> sp.Expr:
    out = []
    for term in sp.Add.make_args(sp.expand(body, deep=False, log=False, power_base=False, power_exp=False)):
        factors = sp.Mul.make_args(term)
        delta = next((f for f in factors if isinstance(f, sp.KroneckerDelta) and i in f.args), None)
        if delta is not None:
            other = delta.args[1] if delta.args[0] == i else delta.args[0]
            if i not in other.free_symbols:
                rest = sp.Mul(*(f for f in factors if f is not delta))
                kept = collapse(rest.xreplace({i: other}))
                if lo != 0:                 # a sliced plate's sum (t ≥ 1): only where `other` is inside it
                    from ppvi.derive.lower import before
                    kept = kept * before(lo - 1, other)
                out.append(kept)
                continue
        if i not in term.free_symbols:
            out.append(term * (hi - lo + 1))
            continue
        coeff, dep = term.as_independent(i, as_Add=False)
        out.append(coeff * sp.Sum(dep, (i, lo, hi)))
    return sp.Add(*out)
