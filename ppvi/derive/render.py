"""``ppvi derive`` output: readable Unicode, LaTeX, and JSON (docs/cli.md).

Moments print in the seed's ⟨·⟩ notation, one-hot moments as q(z[n] = k),
Kronecker deltas as Iverson brackets [a = b], and summation indices lose the
primes the derivation used to keep them apart wherever no clash results.
"""

from __future__ import annotations

import json

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.str import StrPrinter

from ppvi.derive.colouring import coupling, parity
from ppvi.derive.expectation import PLACEHOLDERS
from ppvi.derive.lower import inverse, sigmoid
from ppvi.derive.meanfield import Derivation, QFactor, gaussian_block
from ppvi.errors import shown, source_lines
from ppvi.families import family as family_of
from ppvi.families.registry import unit_of
from ppvi.language import ast
from ppvi.derive.qfamily import ParamBase, invert
from ppvi.derive.symbols import Gate, MomentBase, MomentSymbol, lgamma, lmvgamma, logdet, softplus

ETA_NAMES = {"x": "x", "x2": "x²", "logx": "log x", "log1mx": "log(1−x)", "logp": "log π", "onehot": "[z=k]",
             "xxT": "x xᵀ", "X": "X", "logdet": "log|X|", "base": "log h_b(x)/b", "lfact": "−log x!",
             "lchoose": "log C(n, x)/n", "lnb": "log h_r(x)/r"}
ETA_LATEX = {"x": "x", "x2": "x^2", "logx": r"\log x", "log1mx": r"\log(1-x)", "logp": r"\log \pi",
             "onehot": "[z=k]", "xxT": r"x x^\top", "X": "X", "logdet": r"\log|X|", "base": r"\log h_b(x)/b",
             "lfact": r"-\log x!", "lchoose": r"\log \binom{n}{x}/n",
             "lnb": r"\log h_r(x)/r"}


def _relative(family: str) -> str | None:
    """How the ELBO reads a count q's entropy (ppvi.families.base, "the q side"), or None for other families."""
    key = next((k for k in family_of(family).q_statistics or () if k in PLACEHOLDERS.values()), None)
    return None if key is None else (f"; relative to the base measure, whose ⟨{ETA_NAMES[key]}⟩ in E[log p] is "
                                     f"0 at a missing entry: the two cancel")


# ------------------------------------------------------------------ tidying
def tidy(e: sp.Expr, reserved: frozenset[str] = frozenset()) -> sp.Expr:
    """Strip the primes of summation indices where the plain name is free for use.

    ``reserved`` holds the model's own names: a summation index over dim H is not shown as
    ``h`` in a model with a variable ``h``."""
    return _tidy(e, {str(s) for s in e.free_symbols if isinstance(s, (sp.Idx, sp.Symbol))}, reserved)


def _tidy(e: sp.Expr, taken: set[str], reserved: frozenset[str]) -> sp.Expr:
    if isinstance(e, sp.Sum):
        body, limits, inner_taken = e.function, [], set(taken)
        inner_names = {str(s) for s in e.function.atoms(sp.Idx)}
        for (i, lo, hi) in e.limits:
            name = str(i.label if isinstance(i, sp.Idx) else i)
            plain = name.rstrip("′")
            candidates = [plain + "′" * n for n in range(len(name) - len(plain) + 1)]
            new = next((c for c in candidates if c not in inner_taken and c not in reserved
                        and (c == name or c not in inner_names)), name)
            j = sp.Idx(new, (lo, hi)) if isinstance(i, sp.Idx) else i
            body = body.xreplace({i: j})
            inner_taken.add(new)
            limits.append((j, lo, hi))
        return sp.Sum(_tidy(body, inner_taken, reserved), *limits)
    if not e.args or isinstance(e, (sp.Indexed, sp.Idx, sp.IndexedBase)):
        return e
    return e.func(*(_tidy(a, taken, reserved) for a in e.args))


def _reserved(d: Derivation) -> frozenset[str]:
    return frozenset(d.model.variables) | frozenset(d.model.dims)


# ----------------------------------------------------------------- printers
def offset(printer, i: sp.Expr) -> str:
    """An index as the model writes it: ``t-1`` for an earlier element (SymPy would print ``-1 + t``)."""
    if isinstance(i, sp.Add) and len(i.args) == 2:
        num, rest = sorted(i.args, key=lambda a: not a.is_Integer)
        if num.is_Integer and not rest.is_Number:
            return f"{printer._print(rest)}{'-' if num < 0 else '+'}{abs(int(num))}"
    return printer._print(i)


class Whiteboard(StrPrinter):
    """One-line Unicode mathematics."""

    printmethod = "_ppvi_text"   # not _sympystr: Indexed would print itself and skip ours

    def __init__(self, nplates: dict[str, int]):
        super().__init__({"order": "none"})
        self.nplates = nplates

    def _idx(self, idx) -> str:
        return ", ".join(offset(self, i) for i in idx)

    def _var(self, var: str, idx) -> str:
        return f"{var}[{self._idx(idx)}]" if idx else var

    def moment(self, var: str, stat: str, idx) -> str:
        p = self.nplates.get(var, len(idx))
        plates, event = idx[:p], idx[p:]
        v = self._var(var, plates)
        if stat == "pair":      # a chain's pairwise statistic ξ[t, j, k]
            pre = "".join(f"{self._print(i)}, " for i in idx[:-3])
            return f"q({var}[{pre}{self._print(idx[-3])}-1] = {self._print(idx[-2])}, {var}[{pre}" \
                   f"{self._print(idx[-3])}] = {self._print(idx[-1])})"
        if stat == "entropy":
            return f"H[q({var})]"
        if stat == "cross":      # a joint Gaussian chain's lag-one covariance (derivation.md, section 8)
            pre, t = "".join(f"{self._print(i)}, " for i in plates[:-1]), self._print(plates[-1])
            return f"Cov({var}[{pre}{t}-1], {var}[{pre}{t}])" + (f"[{self._idx(event)}]" if event else "")
        if stat == "onehot":
            return f"q({self._var(var, plates)} = {self._print(event[0])})"
        if stat == "xxT":
            return f"⟨{v} {v}ᵀ⟩[{self._idx(event)}]"
        if stat == "logdet":
            return f"⟨log|{v}|⟩"
        el = self._var(var, idx)
        return {"x": f"⟨{el}⟩", "X": f"⟨{el}⟩", "x2": f"⟨{el}²⟩", "logx": f"⟨log {el}⟩",
                "logp": f"⟨log {el}⟩", "log1mx": f"⟨log(1 − {el})⟩", "base": f"⟨log h_b({el})/b⟩",
                "lfact": f"⟨−log {el}!⟩", "lchoose": f"⟨log C(n, {el})/n⟩",
                "lnb": f"⟨log h_r({el})/r⟩"}[stat]

    def _print_Indexed(self, e):
        if isinstance(e.base, MomentBase):
            return self.moment(e.base.var, e.base.stat, e.indices)
        if isinstance(e.base, Gate):
            return f"[{self._var(e.base.var, e.indices[:-1])} = {self._print(e.indices[-1])}]"
        return f"{self._print(e.base.label)}[{self._idx(e.indices)}]"

    def _print_MomentSymbol(self, e):
        return self.moment(e.var, e.stat, ())

    def _print_Idx(self, e):
        return str(e.label)

    def _print_Sum(self, e):
        # a sum that starts past 0 (a chain's transitions, t ≥ 1) says so
        idx = ",".join(self._print(i) + (f"≥{self._print(lo)}" if lo != 0 else "") for i, lo, _ in e.limits)
        body = self._print(e.function)
        if isinstance(e.function, sp.Add):
            body = f"({body})"
        return f"Σ_{idx} {body}"

    def _print_KroneckerDelta(self, e):
        return f"[{self._print(e.args[0])} = {self._print(e.args[1])}]"

    def _print_before(self, e):
        return f"[{self._print(e.args[0])} < {self._print(e.args[1])}]"

    def _print_Pow(self, e, rational=False):
        sup = {2: "²", 3: "³"}
        if e.exp.is_Integer and int(e.exp) in sup:
            return self.parenthesize(e.base, 1000) + sup[int(e.exp)]
        if e.exp == sp.S.Half:
            return f"√({self._print(e.base)})"
        if e.exp == -sp.S.Half:
            return f"1/√({self._print(e.base)})"
        if e.exp == -1:
            return f"1/{self.parenthesize(e.base, 1000)}"
        return f"{self.parenthesize(e.base, 1000)}^({self._print(e.exp)})"

    def _print_polygamma(self, e):
        return f"ψ({self._print(e.args[1])})" if e.args[0] == 0 else f"ψ⁽{e.args[0]}⁾({self._print(e.args[1])})"

    def _print_lgamma(self, e):
        return f"log Γ({self._print(e.args[0])})"

    def _print_loggamma(self, e):
        return f"log Γ({self._print(e.args[0])})"

    def _print_lmvgamma(self, e):
        return f"log Γ_{self._print(e.args[1])}({self._print(e.args[0])})"

    def _print_logdet(self, e):
        return f"log|{self._print(e.args[0])}|"

    def _print_inverse(self, e):
        return f"{self._print(e.args[0])}⁻¹[{self._print(e.args[1])}, {self._print(e.args[2])}]"

    def _print_IndexedBase(self, e):   # a whole matrix, as in W0⁻¹
        return str(e.label)

    def _print_invert(self, e):
        return f"inv_{{{self._print(e.args[1])},{self._print(e.args[2])}}}({self._print(e.args[0])})"

    def _print_sigmoid(self, e):
        return f"σ({self._print(e.args[0])})"

    def _print_ParamBase(self, e):
        return str(e.label)

    def _print_Pi(self, e):
        return "π"

    def _print_Exp1(self, e):
        return "e"


class Blackboard(LatexPrinter):
    """LaTeX with the same conventions."""

    printmethod = "_ppvi_latex"

    def __init__(self, nplates: dict[str, int]):
        super().__init__({"order": "none"})
        self.nplates = nplates

    def _sub(self, idx) -> str:
        return "_{" + ",".join(offset(self, i) for i in idx) + "}" if idx else ""

    def _name(self, var: str) -> str:
        return r"\mathrm{" + var.replace("_", r"\_") + "}"

    def moment(self, var, stat, idx):
        p = self.nplates.get(var, len(idx))
        plates, event = idx[:p], idx[p:]
        v = self._name(var) + self._sub(plates)
        if stat == "pair":
            pre = "".join(f"{self._print(i)}," for i in idx[:-3])
            return rf"q({self._name(var)}_{{{pre}{self._print(idx[-3])}-1}} = {self._print(idx[-2])}, " \
                   rf"{self._name(var)}_{{{pre}{self._print(idx[-3])}}} = {self._print(idx[-1])})"
        if stat == "entropy":
            return rf"H[q({self._name(var)})]"
        if stat == "cross":
            pre, t, x = "".join(f"{self._print(i)}," for i in plates[:-1]), self._print(plates[-1]), self._name(var)
            return rf"\mathrm{{Cov}}({x}_{{{pre}{t}-1}}, {x}_{{{pre}{t}}})" + self._sub(event)
        if stat == "onehot":
            return rf"q({v} = {self._print(event[0])})"
        if stat == "xxT":
            return rf"\langle {v} {v}^\top \rangle{self._sub(event)}"
        if stat == "logdet":
            return rf"\langle \log|{v}| \rangle"
        el = self._name(var) + self._sub(idx)
        return {"x": rf"\langle {el} \rangle", "X": rf"\langle {el} \rangle", "x2": rf"\langle {el}^2 \rangle",
                "logx": rf"\langle \log {el} \rangle", "logp": rf"\langle \log {el} \rangle",
                "log1mx": rf"\langle \log(1 - {el}) \rangle", "base": rf"\langle \log h_b({el})/b \rangle",
                "lfact": rf"\langle -\log {el}! \rangle", "lchoose": rf"\langle \log \binom{{n}}{{{el}}}/n \rangle",
                "lnb": rf"\langle \log h_r({el})/r \rangle"}[stat]

    def _print_Indexed(self, e):
        if isinstance(e.base, MomentBase):
            return self.moment(e.base.var, e.base.stat, e.indices)
        if isinstance(e.base, Gate):
            return rf"[{self._name(e.base.var)}{self._sub(e.indices[:-1])} = {self._print(e.indices[-1])}]"
        return self._name(str(e.base.label)) + self._sub(e.indices)

    def _print_MomentSymbol(self, e):
        return self.moment(e.var, e.stat, ())

    def _print_Idx(self, e):
        return str(e.label).replace("′", "'")

    def _print_Symbol(self, e, style="plain"):
        return self._name(e.name) if len(e.name) > 1 else e.name

    def _print_Sum(self, e):
        idx = ",".join(self._print(i) + (rf"\geq {self._print(lo)}" if lo != 0 else "") for i, lo, _ in e.limits)
        body = self._print(e.function)
        if isinstance(e.function, sp.Add):
            body = rf"\left({body}\right)"
        return rf"\sum_{{{idx}}} {body}"

    def _print_before(self, e, exp=None):
        return rf"[{self._print(e.args[0])} < {self._print(e.args[1])}]"

    def _print_KroneckerDelta(self, e, exp=None):
        return rf"[{self._print(e.args[0])} = {self._print(e.args[1])}]"

    def _print_lgamma(self, e, exp=None):
        return rf"\log\Gamma\left({self._print(e.args[0])}\right)"

    def _print_lmvgamma(self, e, exp=None):
        return rf"\log\Gamma_{{{self._print(e.args[1])}}}\left({self._print(e.args[0])}\right)"

    def _print_logdet(self, e, exp=None):
        return rf"\log\left|{self._print(e.args[0])}\right|"

    def _print_inverse(self, e, exp=None):
        return rf"\left({self._print(e.args[0])}^{{-1}}\right)_{{{self._print(e.args[1])},{self._print(e.args[2])}}}"

    def _print_IndexedBase(self, e, exp=None):   # a whole matrix, as in W_0^{-1}
        return self._name(str(e.label))

    def _print_invert(self, e, exp=None):
        return rf"\left[\left({self._print(e.args[0])}\right)^{{-1}}\right]_{{{self._print(e.args[1])},{self._print(e.args[2])}}}"

    def _print_softplus(self, e, exp=None):
        return rf"\operatorname{{softplus}}\left({self._print(e.args[0])}\right)"

    def _print_sigmoid(self, e, exp=None):
        return rf"\sigma\left({self._print(e.args[0])}\right)"

    def _print_ParamBase(self, e):
        return r"\mathrm{" + str(e.label) + "}"

    def _print_Pi(self, e):
        return r"\pi"

    def _print_Exp1(self, e):
        return "e"


# ------------------------------------------------------------------- layout
def _nplates(d: Derivation) -> dict[str, int]:
    return {v: len(q.index) for v, q in d.q.items()} | {v: 1 + len(b.outer) for v, b in getattr(d, "blocks", {}).items()}


def _pair_text(q, lam: str) -> list[str]:
    """The joint step of ``approximate mu, lam jointly`` (docs/derivation.md, "A Normal–Gamma pair")."""
    mu, el = _element(q), f"{lam}[{', '.join(map(str, q.index))}]" if q.index else lam
    return [f"q({mu}, {el}) = NormalGamma(m, β, a, b)    [approximate {q.var}, {lam} jointly: 19.56 for the pair "
            f"as one variable, statistics {{λμ², λμ, λ, log λ}}; one step, both η above read at the same moments]",
            f"  β = −2 η_{q.var}[x²] / ⟨{lam}⟩,  m = η_{q.var}[x] / (−2 η_{q.var}[x²]),  a = η_{lam}[log x] + 1/2",
            f"  b = −η_{lam}[x] − β((⟨{q.var}⟩ − m)² + sd({q.var})²)/2",
            f"  then ⟨{q.var}⟩ = m, sd({q.var}) = (β⟨{lam}⟩)^-½ (⟨{lam}⟩⟨{q.var}²⟩ = E[λμ²]), q({lam}) = Gamma(a, b)", ""]


def _block_text(b, show) -> list[str]:
    """A Categorical chain's q (docs/derivation.md, section 8): its potentials and how q is computed."""
    pre = "".join(f"{i}, " for i in b.outer)
    z, t, j, k = b.var, b.t, b.j, b.k

    def el(x) -> str:                      # an element of the chain: z[s, t]
        return f"{z}[{pre}{x}]"
    seqs = (f", one block per {', '.join(map(str, b.outer))}" if b.outer else
            f", restarting at each sequence of {b.chain.by}" if b.chain.by else "")
    pots = [f"  log φ[{pre}{k}] = {show(b.log_init)}", f"  log Ψ[{j}, {k}] = {show(b.log_trans)}",
            f"  log ψ[{pre}{t}, {k}] = {show(b.log_node)}"]
    if b.jointly:
        return [f"q({z}) = Categorical chain, one structured block    [approximate {z} jointly, {t} in {b.dim}{seqs}]",
                f"  q({z}) ∝ φ({el(0)}) · Π_{t}≥{b.chain.start} Ψ({el(f'{t}-1')}, {el(t)}) · Π_{t} ψ({el(t)})   "
                f"(19.56 for {z} as one variable)", *pots,
                f"  forward–backward in log space → q({el(t)} = {k}), q({el(f'{t}-1')} = {j}, {el(t)} = {k}), log Z",
                f"  H[q({z})] = log Z − E_q[log φ + Σ log Ψ + Σ log ψ]", ""]
    return [f"q({el(t)}) = Categorical    [mean field along the chain {z}, for {t} in {b.dim}{seqs}]", *pots,
            f"  η[[{el(t)}={k}]] = log ψ[{pre}{t}, {k}] + Σ_{j} q({el(f'{t}-1')} = {j})·log Ψ[{j}, {k}] + "
            f"Σ_{j} q({el(f'{t}+1')} = {j})·log Ψ[{k}, {j}]   (log φ[{pre}{k}] in place of the first sum at {t} = 0)",
            f"  q({el(f'{t}-1')} = {j}, {el(t)} = {k}) = q({el(f'{t}-1')} = {j})·q({el(t)} = {k});  "
            f"H[q({z})] = −Σ q log q", ""]


def _element(q: QFactor) -> str:
    return f"{q.var}[{', '.join(str(i) for i in q.index)}]" if q.index else q.var


def _plates(q: QFactor) -> str:
    return ", ".join(f"{i} in {i.upper + 1}" for i in q.index)


def _standard_in_eta(q: QFactor) -> dict[str, str]:
    """Standard parameters written in terms of η (what one writes on a whiteboard): the unit's."""
    return dict(unit_of(q.family).in_eta)


_POINT_TEXT = {
    "closed_form": "closed form: ∂L/∂{el} = 0 solved exactly",
    "newton": "L is quadratic in {el}: the exact maximiser with the other entries fixed",
    "simplex": "on the simplex: Lagrange multiplier, {el} = c / Σ c with c =",
    "unit_columns": "unit-norm columns: each column becomes u/‖u‖, u =",
    "soft_threshold": "Laplace prior: exact coordinate step of L1-regularised least squares (19.16), "
                      "{el} ← center + soft(m − center, weight/curvature), m =",
    "gradient": "no closed form: gradient steps with a line search on the ELBO (generalised EM); ∂L/∂{el} =",
    "feature_sign": "Laplace prior: each example's ½ hᵀAh − cᵀh + λ‖h‖₁ (19.16) solved exactly by feature-sign "
                    "search (Lee et al. 2007); c =",
}


def to_text(d: Derivation) -> str:
    pr = Whiteboard(_nplates(d))
    names = _reserved(d)
    show = lambda e: pr.doprint(tidy(e, names)).replace("*", "·")  # noqa: E731
    energy = d.model.unnormalised
    out = [f"model {d.model.name}  ({d.model.path})", "",
           *augmentation(d), *exp_links(d),
           "mean-field updates  q*(x) ∝ exp E_q(rest)[log p̃(v, h)]   (19.56; p̃ = exp of the draws' log densities "
           "and the `factor` energy terms, normalised by an unknown Z)" if energy else
           "mean-field updates  q*(x) ∝ exp E_q(rest)[log p(v, h)]   (19.56)", ""]
    for v, q in d.q.items():
        node = d.graph.nodes[v]
        where = f"{q.scope}" + (f", for {_plates(q)}" if q.index else "")
        ev = f"  (event axes {', '.join(str(i) for i in q.event)})" if q.event else ""
        if q.newton is not None:
            out += _newton_text(q, node, where, show)
            continue
        out.append(f"q({_element(q)}) = {q.family}    [{where}]{ev}")
        if gaussian_block(d.model, v):
            out.append(f"  one Gaussian block{' per point' if q.index else ''}    [approximate {v} jointly: 19.56 "
                       f"for {_element(q)} as one variable, its cross terms ⟨{v} {v}ᵀ⟩ in every update]")
        if d.model.variables[v].missing:
            out.append(f"  the missing entries of data `{v}` (the factor of the observed ones; where `{v}` is "
                       f"observed q is a point mass at the datum: ⟨x⟩ = x, H = 0)")
            if q.family == "MvNormal":
                out.append("  a row with missing entries: q of its missing block m given the observed entries o, "
                           "cov = (−2 η[x xᵀ]_mm)⁻¹, mean = cov · (η[x]_m + 2 η[x xᵀ]_mo x_o)")
        if q.replicas is not None:
            out.append(f"  {show(q.replicas)} draws of it, one q: q(c) = Multinomial({show(q.replicas)}, p), "
                       f"E[c[{q.extra}]] = {show(q.replicas)}·p[{q.extra}]; η of one draw (the count's "
                       "coefficient divided out)")
        out.append(f"  prior {'none (the allocation of a count)' if q.replicas is not None else node.prior or 'none (`latent`)'}; statistics {{{', '.join(ETA_NAMES[s] for s in q.natural)}}} on "
                   f"{node.support} support")
        for s, eta in q.natural.items():
            out.append(f"  η[{ETA_NAMES[s]}] = {show(eta)}")
        for p, text in _standard_in_eta(q).items():
            out.append(f"  {p} = {text}")
        pattern = coupling(d, v)
        if pattern is not None:
            graph = " and ".join(f"`{a}`" for a in pattern)
            out.append(f"  schedule: two colours (a checkerboard on a grid): where the graph of {graph}'s nonzero "
                       f"entries is bipartite, every element of colour 0 at once, then of colour 1; else element "
                       f"by element (Gauss–Seidel)")
        elif parity(d, v):
            out.append(f"  schedule: two colours, ({' + '.join(str(i) for i in q.index)}) mod 2 (a checkerboard on a "
                       f"grid): every element of colour 0 at once, then of colour 1")
        out.append("")
    for mu, lam in d.model.pairs.items():
        out.extend(_pair_text(d.q[mu], lam))
    for b in getattr(d, "blocks", {}).values():
        out.extend(_block_text(b, show))
    for b in getattr(d, "gaussian", {}).values():
        *outer, t = b.q.index           # (the plates before the chain's axis: one block per sequence)
        pre, x = "".join(f"{i}, " for i in outer), b.var
        seqs = f", one block per {', '.join(map(str, outer))}" if outer else ""
        de, d_ = ("", "") if b.scalar else (f"[{b.q.event[0]}, {b.q.extra}]", f", {b.q.event[0]}")
        square, kind = (f"⟨{x}[{pre}{t}]²⟩", "Normal") if b.scalar else (f"⟨{x}[{pre}{t}] {x}[{pre}{t}]ᵀ⟩", "MvNormal")
        out += [f"q({x}) = {kind} chain, one structured block    [approximate {x} jointly, {t} in {b.dim}{seqs}]",
                f"  q({x}) = N(Λ⁻¹h, Λ⁻¹): the η of q({x}[{pre}{t}]) above read as "
                f"hₜ − Σ_u≠{t} Λ[{t}, u]·⟨{x}[{pre}u]⟩ "
                f"and −½ Λ[{t}, {t}] (Λ {'' if b.scalar else 'block '}tridiagonal along {t})",
                f"  Λ[{t}, {t}]{de} = {show(b.diagonal)}",
                f"  Λ[{t}-1, {t}]{de} = {show(b.coupling)}    ({t} ≥ 1)",
                f"  h[{t}{d_}] = {show(b.linear)}",
                f"  Kalman filter (information form) and RTS smoother → ⟨{x}[{pre}{t}]⟩, {square}, "
                f"Cov({x}[{pre}{t}-1], {x}[{pre}{t}]), log|Λ|",
                f"  H[q({b.var})] = ½ log|2πe Λ⁻¹|", ""]
    for v, pu in d.points.items():
        el = f"{v}[{', '.join(str(i) for i in pu.index)}]" if pu.index else v
        what = ("point q (MAP, 19.11–19.13): maximise log p(h, v); no entropy term" if pu.kind == "point"
                else "param: M-step (19.2), maximise the ELBO with q fixed")
        out.append(f"{el}    [{what}]")
        out.append(f"  {_POINT_TEXT[pu.method].format(el=el)}")
        out.append(f"  {el} ← {show(pu.value) if pu.method != 'simplex' else 'c / Σ c'}" if pu.method not in
                   ("soft_threshold", "gradient", "simplex", "unit_columns", "feature_sign")
                   else f"  value: {show(pu.value)}")
        for k, e in pu.extra.items():
            if k == "gram":
                out.append(f"  A[{pu.index[-1]}, {pu.extra['gram_index']}]: {show(e)}")
            elif k != "gram_index":
                out.append(f"  {k}: {show(e)}")
        out.append("")
    out.append("lower bound on log Z  L = Σ E_q[log p̃] + Σ H[q] ≤ log Z   (19.7 with p̃: not a bound on log p(v))"
               if energy else "evidence lower bound  L = Σ E_q[log p] + Σ H[q]   (19.7)")
    missing = {f"H[q({v})]": " (the sum over the missing entries only"
               + (", D the size of a row's missing block" if d.q[v].family == "MvNormal" else "")
               + ": 0 at a point mass" + (_relative(d.q[v].family) or "") + ")"
               for v, var in d.model.variables.items() if var.missing and v in d.q}
    for label, e in d.elbo_terms():
        out.append(f"  {label}{missing.get(label, '')}:")
        out.append(f"      {show(e)}")
    return _escaped(out)


def augmentation(d: Derivation) -> list[str]:
    """The step before 19.56 for every logistic link: the Pólya-Gamma weight the checker added, and why the
    augmented log joint is conjugate (docs/derivation.md, section 8)."""
    m = d.model
    out = []
    for f in m.factors:
        pg = dict(f.args).get("pg")
        if "alloc" in dict(f.args):
            out += _superposition(d, f)
        if pg is None:
            continue
        weight = pg.base.id if isinstance(pg, ast.Index) else pg.id
        el = f"{weight}[{', '.join(f.target_index)}]" if f.target_index else weight
        y = f"{f.target}[{', '.join(f.target_index)}]" if f.target_index else f.target
        args = dict(f.args)
        b = "1" if f.dist == "Bernoulli" else _text(m.text, args["n"].span) if f.dist == "Binomial" else \
            f"{y} + {_text(m.text, args['r'].span)}"
        out += [f"augment `{m.statement(f)}` (Pólya-Gamma; Polson, Scott & Windle "
                "2013):",
                f"  {el} ~ PG(b, 0) with b = {b}, and with ψ the argument of sigmoid, κ = {y} − b/2:",
                "  p(y | ψ) = h(y) 2^(−b) e^(κψ) E_PG(b,0)[e^(−ωψ²/2)]  ⇒  log p(y | ψ, ω) = log h(y) + κψ − ωψ²/2 − b log 2",
                f"  quadratic in ψ: 19.56 applies unchanged; q({el}) = PG(b, c) with c² = E[ψ²]", ""]
    return out


def _superposition(d: Derivation, f) -> list[str]:
    """The allocation the checker added to ``y ~ Poisson(sum(k in K: t_k))`` (docs/derivation.md, section 9.1)."""
    m = d.model
    alloc = f.arg("alloc")
    z = alloc.base.id if isinstance(alloc, ast.Index) else alloc.id
    at = f"[{', '.join(f.target_index)}]" if f.target_index else ""
    rate = f.arg("rate")
    k, dim = rate.var.id, rate.dim.id
    t = _text(m.text, rate.body.span)
    return [f"augment `{m.statement(f)}` (superposition; Cemgil 2009, Gopalan, "
            "Hofman & Blei 2015):",
            f"  {f.target}{at} = Σ_{k} c[{k}] with c[{k}] ~ Poisson(t[{k}]) independent, t[{k}] = {t}, {k} in {dim};",
            f"  given {f.target}{at} the allocation c is Multinomial({f.target}{at}, t/Σt): {f.target}{at} draws of "
            f"{z}{at} over {dim}, one q shared by them",
            f"  log p(y, c | t) = Σ_{k} (c[{k}] log t[{k}] − t[{k}] − log c[{k}]!),  E[c[{k}]] = {f.target}{at}·q({z}{at} = {k})",
            f"  linear in log t and t: 19.56 applies unchanged; q(c) = Multinomial({f.target}{at}, p), whose"
            " entropy relative to its coefficient y!/Π c! (the Π c! cancel) is y·H[q]", ""]


def exp_links(d: Derivation) -> list[str]:
    """The step before 19.56 for every exp link: E[e^ψ] in closed form (docs/derivation.md, section 10)."""
    from ppvi.derive.newton import is_link

    m = d.model
    links = {i for q in d.q.values() if q.newton is not None for i in q.newton.links}
    out = []
    for f in m.factors:
        if f.id not in links or not is_link(f):
            continue
        c = {"Poisson": "", "Exponential": "y·", "Gamma": "y·"}[f.dist]
        k = f"({_text(m.text, dict(f.args)['shape'].span)})·" if f.dist == "Gamma" else \
            {"Poisson": "y·", "Exponential": ""}[f.dist]
        out += [f"exp link `{m.statement(f)}`:",
                f"  log p(y | ψ) = {k}ψ − {c}e^ψ + log h(y), ψ = {_text(m.text, dict(f.args)['rate'].args[0].span)}",
                "  ψ is affine in Gaussian latents, so Gaussian under q: E[e^ψ] = exp(E[ψ] + Var[ψ]/2), exact and "
                "closed form,", "  but not linear in the latents' moments: their q is Normal by choice, updated by "
                "Newton on the exact ELBO", ""]
    return out


def _newton_text(q: QFactor, node, where: str, show) -> list[str]:
    """A Normal q updated by Newton steps: the gradient of 𝓛 it ascends and the fixed point it reaches."""
    el = _element(q)
    out = [f"q({el}) = Normal    [{where}; exp link: Newton on the exact ELBO]",
           f"  prior {node.prior or 'none (`latent`)'}; 𝓛 is not linear in ⟨{el}⟩, ⟨{el}²⟩ (19.56 names no family): "
           "q kept Normal, N(m, v)"]
    for s, g in q.natural.items():
        out.append(f"  ∂𝓛/∂⟨{ETA_NAMES[s].replace('x', el)}⟩ = {show(g)}")
    out += ["  (m, v) ← Newton steps on f(m, v) = 𝓛(⟨x⟩ = m, ⟨x²⟩ = m² + v) + ½ log v (concave), each with a "
            "backtracking line search on the exact f: every update is monotone"]
    nt = q.newton
    if nt.joint is not None:
        out.append(f"  its elements share an exponent with {', '.join(f'q({k})' for k in nt.joint.members)}: one joint "
                   "Newton step in the (m, v) of all of them, the cross terms of 𝓛 included")
    elif nt.joined is not None:
        out.append(f"  it enters q({nt.joined})'s shared exponent: its (m, v) move in that q's joint Newton step")
    out += ["  at the fixed point η = ∂𝓛/∂⟨T⟩:  mean = η[x] / (−2 η[x²]),  sd = 1/√(−2 η[x²])", ""]
    return out


def _text(text: str, span) -> str:
    """The source text at ``span`` (one line), else a placeholder."""
    if span.end_line in (None, span.line) and span.end_col is not None:
        return source_lines(text)[span.line - 1][span.col - 1:span.end_col - 1]
    return "…"


def _escaped(lines: list[str]) -> str:
    """The lines for a terminal: the labels quote model statements and the header the file name, so nothing of
    the user's reaches it raw (control sequences, bidirectional overrides, line separators)."""
    return "\n".join(map(shown, lines)) + "\n"


def to_latex(d: Derivation) -> str:
    pr = Blackboard(_nplates(d))
    names = _reserved(d)
    show = lambda e: pr.doprint(tidy(e, names))  # noqa: E731
    out = [f"% ppvi derive {d.model.path}: mean-field updates (19.56) and ELBO (19.7)",
           r"\begin{align*}"]
    rows = []
    for v, q in d.q.items():
        el = Blackboard(_nplates(d))._name(q.var) + (("_{" + ",".join(str(i) for i in q.index) + "}")
                                                       if q.index else "")
        newton = q.newton is not None     # ∂𝓛/∂⟨T⟩, ascended by Newton steps (docs/derivation.md, section 10)
        rows.append(rf"&q({el}) = \mathrm{{{q.family}}}" + (r"\ (\text{Newton on the exact ELBO})" if newton else ""))
        for s, eta in q.natural.items():
            lhs = rf"\partial\mathcal{{L}}/\partial\langle {ETA_LATEX[s]} \rangle" if newton else rf"\eta_{{{ETA_LATEX[s]}}}"
            rows.append(rf"{lhs} &= {show(eta)}")
    for b in getattr(d, "blocks", {}).values():
        rows.append(rf"&q(\mathrm{{{b.var}}})\ (\text{{{'structured block' if b.jointly else 'mean field'}}})")
        rows += [rf"\log {name} &= {show(e)}" for name, e in
                 ((r"\phi_{" + str(b.k) + "}", b.log_init), (r"\Psi_{" + f"{b.j},{b.k}" + "}", b.log_trans),
                  (r"\psi_{" + f"{b.t},{b.k}" + "}", b.log_node))]
    for v, pu in d.points.items():
        el = Blackboard(_nplates(d))._name(v) + (("_{" + ",".join(str(i) for i in pu.index) + "}") if pu.index else "")
        kind = r"\text{MAP}" if pu.kind == "point" else r"\text{M-step}"
        rows.append(rf"&{el}\ ({kind},\ \text{{{pu.method.replace('_', ' ')}}}):\quad {show(pu.value)}")
    rows.append(r"&\text{lower bound on } \log Z:\ \mathcal{L} = \textstyle\sum \mathbb{E}_q[\log \tilde p] + \sum H[q]"
                if d.model.unnormalised else
                r"&\text{evidence lower bound } \mathcal{L} = \textstyle\sum \mathbb{E}_q[\log p] + \sum H[q]")
    for label, e in d.elbo_terms():
        term = show(e)
        rows.append(rf"&\quad {term if term.startswith('-') else '+ ' + term}")
    # one row a line: each line passes through the terminal escape on its own (a newline inside one would
    # come out as a literal \x0a)
    out += [row + (r" \\" if i < len(rows) - 1 else "") for i, row in enumerate(rows)]
    out.append(r"\end{align*}")
    return _escaped(out)


def to_dict(d: Derivation) -> dict:
    q = {}
    for v, qf in d.q.items():
        q[v] = {"family": qf.family, "index": [str(i) for i in qf.index], "event": [str(i) for i in qf.event],
                "parameters": {p: sp.sstr(e) for p, e in d.standard(v).items()},
                "natural": {s: sp.sstr(e) for s, e in qf.natural.items()}, "scope": qf.scope}
        if gaussian_block(d.model, v):
            q[v]["structured"] = True      # (one block per point: approximate v jointly)
        if v in d.model.pairs:         # (approximate v, lam jointly: one Normal–Gamma step with lam)
            q[v]["pair"] = {"with": d.model.pairs[v], "family": "NormalGamma"}
        if qf.newton is not None:   # `natural` holds ∂𝓛/∂⟨T⟩, which reads q's own moments: the fixed point
            q[v]["update"] = "newton"
    params = {}
    for v, pu in d.points.items():
        entry = {"method": pu.method, "update": sp.sstr(pu.value),
                 **{k: sp.sstr(e) for k, e in pu.extra.items() if k != "gram_index"}}
        if pu.kind == "point":
            q[v] = {"family": "point", "parameters": {"value": sp.sstr(pu.value)}, **entry}
        else:
            params[v] = entry
    for v, b in getattr(d, "blocks", {}).items():
        q[v] = {"family": "Categorical chain", "structured": b.jointly, "index": [str(b.t)],
                "potentials": {"log_init": sp.sstr(b.log_init), "log_trans": sp.sstr(b.log_trans),
                               "log_node": sp.sstr(b.log_node)}, "scope": "chain"}
    return {"model": shown(d.model.name), "q": q, "params": params, "elbo": [sp.sstr(e) for _, e in d.elbo_terms()],
            "elbo_labels": [shown(label) for label, _ in d.elbo_terms()], "bound": bound_on(d.model)}


def bound_on(model) -> str:
    """What the ELBO bounds: log p(v), or log Z where `factor` energy terms leave p̃ unnormalised."""
    return "log Z" if model.unnormalised else "log p(v)"


def to_json(d: Derivation) -> str:
    return json.dumps(to_dict(d), indent=2, ensure_ascii=False) + "\n"
