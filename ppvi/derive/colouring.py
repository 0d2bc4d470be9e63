"""Which latents may be updated two colours at a time (docs/derivation.md, section 7, "Schedule").

A latent with one plate axis whose elements read each other only through a data matrix — η of element
i holds ⟨x_j⟩ (j ≠ i) only in terms Σ_j c · D[i, j] · ⟨x_j⟩ or Σ_j c · D[j, i] · ⟨x_j⟩ — is coupled along the
graph of D's nonzero entries: elements i and j with D[i, j] = D[j, i] = 0 never read each other.  Where that
graph is bipartite (known only once the data are read: the engine colours it, ppvi.infer.colouring), the
elements of one colour can be updated at once from the other colour's moments, and the sweep "colour 0,
then colour 1" is still exact coordinate ascent.  This module reads the pattern off η; code generation
writes the colour kernel for it and the pass ``codegen.passes.two_colour`` decides whether the plan keeps it.
A grid written with offsets (``s[i - 1, j]``) needs no data: its colours are (i + j) mod 2 (``parity``).
"""

from __future__ import annotations

import sympy as sp

from ppvi.derive.meanfield import Derivation
from ppvi.derive.symbols import MomentBase, MomentSymbol
from ppvi.families.registry import unit_of


def coupling(d: Derivation, var: str) -> tuple[str, ...] | None:
    """The data matrices whose nonzero entries couple q(var)'s elements (sorted), or None when var's elements
    read each other in any other way (an offset, a scalar moment, a square, a sum not weighed by data), when
    they do not read each other at all, or when var is not a mean-field q of one plate axis with a scalar
    finish (no event axes: no scratch arrays per element)."""
    q = _element_wise(d, var)
    if q is None or len(q.index) != 1:
        return None
    bases = _bases(d, var)
    data = frozenset(n for n, v in d.model.variables.items() if v.kind == "data" and len(v.shape) == 2)
    found: set[str] = set()
    for eta in q.natural.values():
        if not _scan(eta, q.index[0], bases, data, found):
            return None
    return tuple(sorted(found)) or None


def parity(d: Derivation, var: str) -> bool:
    """Whether q(var)'s elements read each other only at offsets of odd length (an element [i, j] reads
    [i ± 1, j] or [i, j ± 1], a grid written with `s[i - 1, j]`): then elements whose indices have an even sum
    never read each other, nor do those with an odd sum, whatever the data — the colouring (Σ indices) mod 2
    is known when the kernels are written.  A chain drawn along a plate (``z[t] ~ …(z[t-1])``) keeps its
    own schedule (docs/derivation.md, section 8)."""
    q = _element_wise(d, var)
    if q is None:
        return False
    bases = _bases(d, var)
    found: list[int] = []
    return all(_odd(eta, q.index, bases, {}, found) for eta in q.natural.values()) and any(found)


def _element_wise(d: Derivation, var: str):
    """q(var) where its elements have a scalar finish of their own (a mean-field q over plate axes, no event
    axes, no Newton step, no replicas, not a pair's nor a chain's), else None."""
    q = d.q.get(var)
    if q is None or unit_of(q.family).event or not q.index or q.event or q.newton is not None \
            or q.replicas is not None or var in d.model.pairs or var in d.model.chains:
        return None
    return q


def _bases(d: Derivation, var: str) -> frozenset:
    """The moment symbols of var (what reads of its elements are made of)."""
    return frozenset(m for (v, _), m in d.syms.moments.items() if v == var)


def _odd(e: sp.Basic, index: tuple, bases: frozenset, at: dict, found: list[int]) -> bool:
    """Every read of var's moments in ``e`` is of the element itself or at an offset of odd length, its summed
    indices pinned by the deltas around it (``at``: summed index -> its value); ``found`` collects the lengths."""
    if _own(e, bases):
        if not isinstance(e, sp.Indexed) or len(e.indices) != len(index):
            return False
        steps = [sp.expand(sp.sympify(x).xreplace(at) - i) for x, i in zip(e.indices, index)]
        if not all(st.is_Integer for st in steps):
            return False
        found.append(sum(abs(int(st)) for st in steps))
        return found[-1] % 2 == 1 or found[-1] == 0
    if isinstance(e, sp.Sum):
        summed = [lim[0] for lim in e.limits]
        for term in sp.Add.make_args(sp.expand(e.function)):
            pinned = dict(at)
            for f in sp.Mul.make_args(term):
                if isinstance(f, sp.KroneckerDelta):
                    for j in summed:
                        solved = sp.solve(f.args[0] - f.args[1], j)
                        if len(solved) == 1 and j not in pinned:
                            pinned[j] = solved[0]
                            break
            if not all(_odd(f, index, bases, pinned, found) for f in sp.Mul.make_args(term)):
                return False
        return True
    return all(_odd(a, index, bases, at, found) for a in e.args)


def _own(e: sp.Basic, bases: frozenset) -> bool:
    return (isinstance(e, sp.Indexed) and e.base in bases) or (isinstance(e, MomentSymbol) and e in bases)


def _scan(e: sp.Basic, i: sp.Idx, bases: frozenset, data: frozenset, found: set[str]) -> bool:
    """Every read of var's moments in ``e`` is of element i itself or weighed by a data matrix over (i, j)
    (``found`` collects the matrices' names)."""
    if _own(e, bases):
        return isinstance(e, sp.Indexed) and not isinstance(e, MomentSymbol) and tuple(e.indices) == (i,)
    if isinstance(e, sp.Sum):
        summed = {lim[0] for lim in e.limits}
        for term in sp.Add.make_args(sp.expand(e.function)):
            factors = sp.Mul.make_args(term)
            for f in factors:
                if _own(f, bases) and not (isinstance(f, sp.Indexed) and tuple(f.indices) == (i,)):
                    j = f.indices[0] if isinstance(f, sp.Indexed) and len(f.indices) == 1 else None
                    weights = [str(g.base.label) for g in factors if isinstance(g, sp.Indexed)
                               and not isinstance(g.base, MomentBase) and str(g.base.label) in data
                               and j in summed and tuple(g.indices) in ((i, j), (j, i))]
                    if not weights:
                        return False
                    found.add(weights[0])
                elif not _scan(f, i, bases, data, found):
                    return False
        return True
    return all(_scan(a, i, bases, data, found) for a in e.args)
