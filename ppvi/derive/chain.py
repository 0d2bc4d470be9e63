"""A Categorical chain under 19.56: its block of potentials and its neighbours' updates.

For ``z[0] ~ Categorical(p0)`` and ``z[t] ~ Categorical(P(z[t-1]))`` (t = 1 … T−1), the expected
log joint, every latent but z averaged out, is

    Σ_k r₀ₖ log φₖ  +  Σ_{t≥1} Σ_{j,k} ξₜⱼₖ log Ψₜⱼₖ  +  Σ_t Σ_k rₜₖ log ψₜₖ  + (terms free of z)

with log φₖ = E[log p0ₖ], log Ψₜⱼₖ = E[log P(j)ₖ] (the chain's own statements, z's previous
value set to j) and log ψₜₖ the coefficient of [zₜ = k] in every other statement (the emissions),
all derived here from p̃ exactly as for any latent.  rₜₖ = q(zₜ = k) and ξₜⱼₖ = q(zₜ₋₁ = j, zₜ = k)
are z's statistics: its neighbours' updates read them (the rows of A count Σₜ ξₜⱼₖ).

q(z) is then either the mean field (each q(zₜ) from its Markov blanket, ξ = rₜ₋₁ rₜ), or with
``approximate z jointly`` the exact structured block q(z) ∝ φ(z₀) Πₜ Ψ(zₜ₋₁, zₜ) ψ(zₜ): 19.56 applied
to z as one variable, computed by forward–backward (``ppvi.codegen.runtime.forward_backward``); its
entropy term makes E[log p] + H[q(z)] over the chain equal log Z (docs/derivation.md, section 8).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import sympy as sp

from ppvi.derive.canonical import canonical
from ppvi.derive.expectation import Expectation, NonConjugate, collapse
from ppvi.derive.lower import Gates, Lowering, before
from ppvi.derive.meanfield import (Derivation, _err, _expected, _non_conjugate, _q_factor, check_pairs, info_of,
                                  partial)
from ppvi.derive.mstep import point_update
from ppvi.derive.numeric import Env, evaluate
from ppvi.derive.symbols import MomentSymbol, Symbols
from ppvi.graph.factor_graph import build
from ppvi.language import ast
from ppvi.language.check import CheckedModel, walk
from ppvi.language.sequences import Chain

PREVIOUS = "_previous"          # z[t-1] in the chain's own statement: the block's j (not a user name: `_` + word)


@dataclass(frozen=True)
class ChainBlock:
    """The potentials of one Categorical chain, as expressions in its neighbours' moments.

    ``outer`` indexes the sequences (the plates before the chain's axis: ``z[s, t]`` has ``(s,)``); each
    sequence is a block of its own.  ``log_init`` is in ``outer``, ``k``; ``log_trans`` in ``j``, ``k``
    (and ``outer``, ``t`` where it varies); ``log_node`` in ``outer``, ``t``, ``k``.  ``jointly``
    selects the structured q.
    """

    var: str
    dim: str
    categories: str | int
    outer: tuple[sp.Idx, ...]
    t: sp.Idx
    j: sp.Idx
    k: sp.Idx
    log_init: sp.Expr
    log_trans: sp.Expr
    log_node: sp.Expr
    jointly: bool
    chain: Chain


@dataclass(frozen=True)
class GaussianBlock:
    """A Gaussian chain approximated jointly.  Its mean-field q (``q``, derived as for any MvNormal
    latent) has η[x](t) = hₜ − Σ_{s≠t} Λₜₛ⟨xₛ⟩ and η[x xᵀ](t) = −½Λₜₜ: 19.56 reads the joint Gaussian's
    precision Λ (block tridiagonal along the chain) and linear term h off it, and the structured
    q(x) = N(Λ⁻¹h, Λ⁻¹) is that Gaussian (Kalman filter and RTS smoother).

    The kernels read the blocks as expressions in q's indices (the sequence's plates s, then t; d, e =
    ``q.event[0]``, ``q.extra``), one block per sequence (Λ block diagonal over s):
    ``diagonal`` Jₜ[d, e] = Λₜₜ = −η[x xᵀ] − η[x xᵀ]ᵀ, ``linear`` hₜ[d] = η[x] at ⟨x⟩ = 0 and ``coupling``
    Cₜ[d, e] = Λₜ₋₁,ₜ[d, e] = −∂η[x](s, t)[e]/∂⟨x[s, t−1, d]⟩ (t ≥ 1).  A chain of scalars (a Normal q, ``scalar``)
    is the same block with D = 1: Jₜ = −2η[x²], hₜ and Cₜ in t alone.  (The reference evaluator reads the same
    numbers off η by its linearity instead: gaussian_potentials.)"""

    var: str
    dim: str
    q: object          # meanfield.QFactor
    chain: Chain
    diagonal: sp.Expr
    linear: sp.Expr
    coupling: sp.Expr

    @property
    def scalar(self) -> bool:
        """A chain of scalars (q Normal along t), a block of D = 1."""
        return self.q.family == "Normal"


@dataclass
class ChainDerivation(Derivation):
    """A derivation whose chains are blocks: Categorical ones (``blocks``) in place of mean-field q's,
    Gaussian ones approximated jointly (``gaussian``) read off their mean-field q."""

    blocks: dict[str, ChainBlock] = field(default_factory=dict)
    gaussian: dict[str, GaussianBlock] = field(default_factory=dict)

    def elbo_terms(self) -> list[tuple[str, sp.Expr]]:
        """19.7 as in :meth:`Derivation.elbo_terms`; a chain's entropy H[q(z)] is the block's own number
        (−Σ r log r under the mean field; log Z − E_q[log potentials] for the structured q).  A Gaussian
        block's E[log p] terms read its marginal moments and, in the chain's own statement, its lag-one
        covariances (E[xₜ₋₁xₜᵀ], derive.expectation); its entropy is the joint one, ½ log|2πe Λ⁻¹|."""
        own = {f"H[q({v})]" for v in self.gaussian}
        out = [(label, e) for label, e in super().elbo_terms() if label not in own]
        for v in self.gaussian:
            out.append((f"H[q({v})] (joint)", MomentSymbol(v, "entropy")))
        return out + [(f"H[q({b.var})]", MomentSymbol(b.var, "entropy")) for b in self.blocks.values()]


def gaussian_blocks(d: Derivation) -> Derivation:
    """``d`` with its jointly approximated Gaussian chains as blocks (``d`` itself when it has none)."""
    rep = _err(d.model)
    found = {}
    for name, chain in d.model.chains.items():
        v = d.model.variables[name]
        if d.model.approximations.get(name) != "jointly" or v.kind != "latent":
            continue
        if gaussian_refusal(d.model, chain) is not None or d.q[name].family not in ("MvNormal", "Normal"):
            raise rep.fail(f"ppvi cannot derive the joint q of `{name}` yet: a first-order chain of vectors or "
                           "scalars along its last plate axis is derived", d.model.factors[chain.body].span,
                           "a chain along the last plate axis: `x[s, 0] ~ Normal(…)`, `for t in T[1:]:` `x[s, t] ~ "
                           "Normal(x[s, t-1], precision = tau)` (or of vectors, `MvNormal(dot(F, x[s, t-1]), …)`); "
                           "sequences of different lengths in long format, `for t in T[1:] by seq:`")
        _marginal_neighbours(d.model, rep, chain)
        found[name] = _gaussian_block(d, chain)
    if not found:
        return d
    return ChainDerivation(d.model, d.graph, d.syms, d.q, d.expected, d.point, d.points, {}, found)


def gaussian_refusal(model: CheckedModel, chain: Chain) -> str | None:
    """Why a latent chain approximated jointly that is not Categorical is outside the Gaussian block (None when
    it is handled: a first-order chain of vectors or scalars along its last plate axis, the plates before it
    each a sequence of its own: ``x[s, t]``)."""
    v = model.variables[chain.name]
    if v.support not in ("real_vector", "real"):
        return f"a chain of {v.support} values"
    plates = len(v.shape) - (1 if v.support == "real_vector" else 0)
    if chain.by is not None and plates != 1:
        return "a ragged chain of more than one axis"
    if chain.lag != 1 or chain.start != 1 or chain.axis != plates - 1:
        return "a chain that is not first-order along its last plate axis"
    return None


def _marginal_neighbours(model: CheckedModel, rep, chain: Chain) -> None:
    """Refuse what the block would get wrong in silence: every statement but the chain's own must read one
    element of the chain (its neighbours' updates and the ELBO then read only ⟨xₜ⟩ and ⟨xₜxₜᵀ⟩).  The chain's
    own statement reads E[xₜ₋₁xₜᵀ] with the lag-one covariance (derive.expectation), so what it learns (F, Q,
    a precision) is updated from the joint q."""
    name = chain.name
    for f in model.factors:
        if f.id == chain.body:
            continue
        seen, summed = set(), False
        for _, e in f.args:
            for n in walk(e):
                if isinstance(n, ast.PlateSum):     # (a sum over the chain's elements reads them all)
                    summed = summed or any(isinstance(m, ast.Index) and m.base.id == name for m in walk(n.body))
                elif isinstance(n, ast.Index) and n.base.id == name:
                    seen.add(_shape_key(n.indices))
        if f.target == name:
            seen.add(("target",))
        if summed or len(seen) > 1:
            raise rep.fail(f"ppvi cannot derive the joint q of `{name}` with a statement that reads more than one "
                           f"of its elements yet", f.span,
                           f"the chain's own statement links `{name}[t-1]` and `{name}[t]`; every other statement "
                           f"reads one element `{name}[t]`")


def _shape_key(e) -> object:
    """An expression without its source positions (two subscripts are the same if their keys are equal)."""
    if isinstance(e, tuple):
        return tuple(_shape_key(x) for x in e)
    if hasattr(e, "__dataclass_fields__"):
        return (type(e).__name__,) + tuple(_shape_key(getattr(e, k)) for k in e.__dataclass_fields__ if k != "span")
    return e


def _gaussian_block(d: Derivation, chain: Chain) -> GaussianBlock:
    """The blocks of Λ and h as expressions (GaussianBlock), read off the mean-field η of the chain's q."""
    q = d.q[chain.name]
    mean = d.syms.moments[(chain.name, "x")]
    *outer, t = q.index             # (the plates before the chain's axis: each a sequence of its own)
    if q.family == "Normal":        # (a chain of scalars: the block of D = 1)
        eta_x = q.natural["x"]
        linear = canonical(collapse(eta_x.replace(lambda n: isinstance(n, sp.Indexed) and n.base == mean,
                                                  lambda n: sp.S.Zero)))
        return GaussianBlock(chain.name, chain.dim, q, chain, canonical(-2 * q.natural["x2"]), linear,
                             canonical(-partial(eta_x, mean, (*outer, t - 1))))
    (a,), b = q.event, q.extra
    eta_x, eta_xx = q.natural["x"], q.natural["xxT"]
    diagonal = canonical(-eta_xx - eta_xx.xreplace({a: b, b: a}))
    linear = canonical(collapse(eta_x.replace(lambda n: isinstance(n, sp.Indexed) and n.base == mean,
                                              lambda n: sp.S.Zero)))
    coupling = canonical(-partial(eta_x.xreplace({a: b}), mean, (*outer, t - 1, a)))
    return GaussianBlock(chain.name, chain.dim, q, chain, diagonal, linear, coupling)


def refusal(model: CheckedModel, chain: Chain) -> str | None:
    """Why ``chain`` is outside what the block handles (None when it is handled)."""
    v = model.variables[chain.name]
    body = model.factors[chain.body]
    if v.kind != "latent":      # (derived by meanfield.derive when no latent chain is in the model)
        return "an observed chain next to a latent one"
    if v.support != "index":
        return f"a chain of {v.support} values next to a Categorical chain"
    if chain.lag != 1 or len(chain.firsts) != 1 or chain.start != 1:
        return "a chain that looks back more than one step"
    if chain.by is not None and len(v.shape) != 1:
        return "a ragged chain of more than one axis"
    if chain.axis != len(v.shape) - 1:
        return "a chain along an axis other than the last (write `z[s, t]` with the chain's plate last)"
    if body.dist != "Categorical" or model.factors[chain.firsts[0]].dist != "Categorical":
        return "a chain whose elements are not each drawn from a Categorical"
    return None


def derive_chains(model: CheckedModel) -> ChainDerivation:
    """19.56 for a model with Categorical chains: each chain a block, every other latent as usual."""
    rep = _err(model)
    for chain in model.chains.values():
        why = refusal(model, chain)
        if why is not None:
            raise rep.fail(f"ppvi cannot derive {why} yet", model.factors[chain.body].span,
                           "a first-order Categorical chain is derived: `z[0] ~ Categorical(p)`, "
                           "`for t in T[1:]:` `z[t] ~ Categorical(A[z[t-1]])`")
    graph = build(model)
    syms = Symbols()
    latents = graph.latents()
    mean_field = {n.name for n in latents if n.approximation in ("mean_field", "pair")} | set(model.chains)
    info = info_of(model, syms, latents)
    low = Lowering(model, syms, mean_field)
    expect = Expectation(syms, {k: v for k, v in info.items() if k in mean_field})
    own = {i for c in model.chains.values() for i in (c.body, *c.firsts)}
    expected: dict[int, sp.Expr] = {}
    for f in model.factors:
        if f.id not in own:
            ell, plates = low.factor_log_density(f)
            expected[f.id] = _expected(syms, expect, rep, model, f, ell, plates)
    blocks = {}
    rest = sp.Add(*expected.values())
    for name, chain in model.chains.items():
        block, first_term, body_term = _block(model, syms, low, expect, rep, chain, rest)
        blocks[name] = block
        expected[chain.firsts[0]] = first_term
        expected[chain.body] = body_term
    expected = dict(sorted(expected.items()))
    total = sp.Add(*expected.values())
    q = {n.name: _q_factor(model, graph, syms, rep, n, total, expected)
         for n in latents if n.name in mean_field and n.name not in model.chains}
    if len(mean_field) != len(latents):
        raise rep.fail("ppvi cannot yet learn point estimates next to a chain", model.factors[0].span,
                       "give them priors (mean field) or fix them as data or constants")
    # params (EM beside the chain: Baum–Welch when every other unknown is a param) maximise the same expected
    # log joint, in which the chain's statements are read through its statistics r and ξ
    points = {v.name: point_update(model, syms, expected, v.name, "param", partial, low) for v in model.of_kind("param")}
    d = ChainDerivation(model, graph, syms, q, expected, [], points, blocks)
    check_pairs(d)
    return d


def _block(model, syms, low, expect, rep, chain: Chain, rest: sp.Expr):
    """The chain's potentials, and E[log p] of its two statements in its statistics r and ξ."""
    z = model.variables[chain.name]
    K = z.support_dim
    first, body = model.factors[chain.firsts[0]], model.factors[chain.body]
    # (named plainly for `ppvi derive`: every plate of the expressions below is summed over fresh indices)
    t, j, k = syms.index("t", chain.dim), syms.index("j", K), syms.index("k", K)
    outer_vars = [v for v in body.target_index if v != body.target_index[chain.axis]]
    plates = dict(body.plates)
    outer = tuple(syms.index(v, plates[v]) for v in outer_vars)
    r = syms.moment(chain.name, "onehot", 2 + len(outer))
    xi = syms.moment(chain.name, "pair", 3 + len(outer))

    def expected_log_p(f, scope) -> sp.Expr:
        gates = Gates()
        p = low.lower(_previous(f.arg("p"), chain.name), scope, gates)
        if gates.found:
            raise rep.fail("ppvi cannot derive a chain whose probabilities are chosen by another latent yet",
                           f.span, "index the probabilities by the chain's previous element only")
        try:
            return canonical(expect.expect(sp.log(p.at((k,)))))
        except NonConjugate as nc:      # (log of a latent's expression with no moment under q)
            raise _non_conjugate(rep, model, f, nc) from None

    # the first element's statement names the outer loops its own way: by position, they are the body's
    first_outer = dict(zip(first.target_index, outer))
    log_init = expected_log_p(first, first_outer)
    log_trans = expected_log_p(body, {**dict(zip(outer_vars, outer)), body.target_index[chain.axis]: t, PREVIOUS: j})
    own = log_trans
    if chain.by is not None:
        starts, continues, _ = sequence_steps(low, body, chain.by, t)
        log_trans = canonical(starts * log_init + continues * own)
        own = canonical(continues * own)
    log_node = canonical(partial(rest, r, (*outer, t, k)))
    k0, j1, k1, t1 = syms.fresh("k", K), syms.fresh("j", K), syms.fresh("k", K), syms.fresh("t", chain.dim)
    fresh = {i: syms.fresh(v, plates[v]) for v, i in zip(outer_vars, outer)}
    o = tuple(fresh[i] for i in outer)
    head = 0 if chain.by is None else t1
    first_term = sp.Sum(r[(*o, head, k0)] * log_init.xreplace({k: k0, **fresh}), (k0, 0, k0.upper))
    if chain.by is not None:
        # every sequence's first step read where it is, Σ_t [t starts a sequence] Σ_k r[t, k] ℓ(k) (t = 0 starts
        # the first): the restarts of the chain's own statement are here, not in ξ (Σ_j ξ[t, j, k] = r[t, k]),
        # so the term is a sum over the steps and a chunk of whole sequences' share is its own (its row 0 is
        # a first step; docs/scale.md, "Chains")
        first_term = sp.Sum(sequence_steps(low, body, chain.by, t1)[2] * first_term, (t1, 0, t1.upper))
    body_term = sp.Sum(sp.Sum(sp.Sum(xi[(*o, t1, j1, k1)] * own.xreplace({t: t1, j: j1, k: k1, **fresh}),
                                     (k1, 0, k1.upper)), (j1, 0, j1.upper)), (t1, chain.start, t1.upper))
    for i in reversed(o):
        first_term, body_term = sp.Sum(first_term, (i, 0, i.upper)), sp.Sum(body_term, (i, 0, i.upper))
    block = ChainBlock(chain.name, chain.dim, K, outer, t, j, k, log_init, log_trans, log_node,
                       model.approximations.get(chain.name) == "jointly", chain)
    return block, first_term, body_term


def sequence_steps(low, body, by: str, t: sp.Idx) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """Indicators at step t of a ragged chain riding on the data ``by`` (numbered 0, 1, … in runs): t starts a
    sequence (t ≥ 1), ``[by[t−1] < by[t]]``; t continues one, ``[by[t] < by[t−1] + 1]``; t is a first step
    (t ≥ 0; t = 0 starts the first sequence).  Each is one indicator of the step's own data, so a sum weighed by
    it is a sum over the steps: never one weighed by the sequences' numbers, which a chunk of whole sequences
    numbers its own way (ppvi.infer.chunks), nor a difference of two sums that a chunk's boundary falls into."""
    now, last = _numbers(low, body, by, t)
    # (a first step: by[t−1] read only where t ≥ 1, so t = 0 never depends on what a read before the data gives)
    return before(last, now), before(now, last + 1), before(last * before(0, t) - before(t, 1), now)


def _numbers(low, body, by: str, t: sp.Idx) -> tuple[sp.Expr, sp.Expr]:
    """``by[t]`` and ``by[t−1]``, the sequence numbers of step t and the step before it."""
    span, var = body.span, body.target_index[0]
    step = ast.Name(var, span)
    return tuple(low.lower(ast.Index(ast.Name(by, span), (i,), span), {var: t}, Gates()).scalar()
                 for i in (step, ast.BinOp("-", step, ast.Num(1.0, True, span), span)))


def ragged_log_density(low, model: CheckedModel, chain: Chain, f) -> tuple[object, sp.Expr, tuple]:
    """A ragged chain's statement ``f`` (its own or its first element's) as a sum over the steps t of its plate,
    each step's ℓ weighed by one indicator of its own data (:func:`sequence_steps`): the chain's own ℓ where t
    continues a sequence; the first element's ℓ, lowered at step t as if drawn there, where t is a first step
    (t = 0 included).  -> (the statement as summed: the first element's over the chain's whole plate; ℓ at t;
    its plate indices).  A chain of data that draws no first steps (each sequence conditioned on its first) has
    its own statement only.

    Every statistic of the two is then a sum over the steps, never one weighed by the sequences' numbers nor a
    read of the data's first step, so a chunk of whole sequences' share is its own (ppvi.infer.chunks,
    docs/scale.md "Chains").  At a restart the chain's own ℓ, which reads xₜ₋₁, weighs 0: each sequence a
    block of its own (docs/derivation.md, section 8)."""
    body = model.factors[chain.body]
    if f.id != chain.body:
        f = replace(f, target_index=body.target_index, plates=body.plates, fixed=(), slices=())
    ell, plates = low.factor_log_density(f)
    _, continues, first = sequence_steps(low, body, chain.by, plates[0])
    return f, (continues if f.id == chain.body else first) * ell, plates


def _previous(e: ast.Expr, name: str) -> ast.Expr:
    """``e`` with the chain's previous element ``name[t-1]`` replaced by the block's index j."""
    match e:
        case ast.Index(base=b, indices=ix) if b.id == name:
            return ast.Name(PREVIOUS, e.span)
        case ast.Index(base=b, indices=ix):
            return replace(e, indices=tuple(_previous(i, name) for i in ix))
        case ast.BinOp(left=l, right=r):
            return replace(e, left=_previous(l, name), right=_previous(r, name))
        case ast.Neg(operand=o):
            return replace(e, operand=_previous(o, name))
        case ast.Call(args=a):
            return replace(e, args=tuple(_previous(x, name) for x in a))
        case ast.PlateSum(body=b):
            return replace(e, body=_previous(b, name))
        case ast.Vector(items=i):
            return replace(e, items=tuple(_previous(x, name) for x in i))
    return e


# ------------------------------------------------------------ numbers (reference speed)
def potentials(block: ChainBlock, env: Env, at: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One sequence's log φ [K], log Ψ [T, K, K] (rows t ≥ start used) and log ψ [T, K] at the current
    moments; ``at`` binds the outer indices."""
    T, K = env.dims[block.dim], _size(block.categories, env)
    init = np.array([evaluate(block.log_init, env, {**at, block.k: k}) for k in range(K)])
    varying = block.t in block.log_trans.free_symbols
    trans = np.empty((T, K, K))
    for t in range(block.chain.start, T) if varying else [block.chain.start]:
        for j in range(K):
            for k in range(K):
                trans[t, j, k] = evaluate(block.log_trans, env, {**at, block.t: t, block.j: j, block.k: k})
    if not varying:
        trans[:] = trans[block.chain.start]
    node = np.array([[evaluate(block.log_node, env, {**at, block.t: t, block.k: k}) for k in range(K)]
                     for t in range(T)])
    return init, trans, node


def _size(e: str | int, env: Env) -> int:
    return e if isinstance(e, int) else int(env.dims[e])


def update_block(block: ChainBlock, env: Env) -> float:
    """19.56 for the chain at the current moments of its neighbours, one sequence at a time (each a unit
    of its own): the structured q by forward–backward, or one mean-field sweep over its elements.  Sets
    z's statistics r (``onehot``), ξ (``pair``) and its entropy in ``env``; returns Σ log Z over the
    sequences (NaN under the mean field)."""
    from ppvi.codegen.runtime import chain_mean_field, forward_backward

    T, K = env.dims[block.dim], _size(block.categories, env)
    outer = tuple(int(env.dims[str(i.upper + 1)]) if not (i.upper + 1).is_Integer else int(i.upper + 1)
                  for i in block.outer)
    r = np.array(env.moments.get((block.var, "onehot"), np.full(outer + (T, K), 1.0 / K)), dtype=float)
    xi = np.zeros(outer + (T, K, K))
    log_z, entropy = 0.0, 0.0
    for seq in np.ndindex(*outer):
        init, trans, node = potentials(block, env, dict(zip(block.outer, seq)))
        if block.jointly:
            lz, h = forward_backward(init, trans, node, r[seq], xi[seq])
        else:
            lz, h = float("nan"), chain_mean_field(init, trans, node, r[seq], xi[seq])
        log_z, entropy = log_z + lz, entropy + h
    env.moments[(block.var, "onehot")] = r
    env.moments[(block.var, "pair")] = xi
    env.moments[(block.var, "entropy")] = np.asarray(entropy)
    return float(log_z)


def gaussian_potentials(block: GaussianBlock, env: Env, at: dict | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One sequence's Jₜ = Λₜₜ [T, D, D], Cₜ = Λₜ₋₁,ₜ [T, D, D] (C₀ = 0) and hₜ [T, D] read off the mean-field η
    by its linearity in the neighbours' means: h is η[x] at ⟨x⟩ = 0, column e of Cₜ is hₜ₋₁ − η[x](t−1) with
    ⟨xₜ⟩ the e-th unit vector; ``at`` binds the plates before the chain's axis (the sequence).  (Reference
    speed: every number is one evaluation of a derived η.)"""
    q, T = block.q, int(env.dims[block.dim])
    *outer, t = q.index
    seq = tuple((at or {})[i] for i in outer)
    d, e = (q.event[0], q.extra) if not block.scalar else (None, None)   # η[x] in (t, d), η[x xᵀ] in (t, d, e)
    D = _event_size(q, env) if not block.scalar else 1
    eta_x, eta_xx = q.natural["x"], q.natural["x2" if block.scalar else "xxT"]
    saved = env.moments.get((block.var, "x"))

    def moments(m: np.ndarray) -> np.ndarray:     # (this sequence's means m, every other sequence's 0)
        full = np.zeros(tuple(_plate_sizes(block, env)) + (T, D))
        full[seq] = m
        return full[..., 0] if block.scalar else full

    def bind(s: int, a=None, b=None) -> dict:
        out = {**(at or {}), t: s}
        if d is not None:
            out.update({d: a} if b is None else {d: a, e: b})
        return out
    zero = np.zeros((T, D))
    env.moments[(block.var, "x")] = moments(zero)
    J = np.array([[[-2 * evaluate(eta_xx, env, bind(s, a, b)) for b in range(D)] for a in range(D)]
                  for s in range(T)])
    J = (J + np.swapaxes(J, 1, 2)) / 2

    def eta_at(s: int) -> np.ndarray:
        return np.array([evaluate(eta_x, env, bind(s, a)) for a in range(D)])
    h = np.array([eta_at(s) for s in range(T)])
    C = np.zeros((T, D, D))
    for s in range(1, T):
        for b in range(D):
            unit = zero.copy()
            unit[s, b] = 1.0
            env.moments[(block.var, "x")] = moments(unit)
            C[s, :, b] = h[s - 1] - eta_at(s - 1)
    if saved is None:
        del env.moments[(block.var, "x")]
    else:
        env.moments[(block.var, "x")] = saved
    return J, C, h


def _plate_sizes(block: GaussianBlock, env: Env) -> list[int]:
    """The sizes of the plates before the chain's axis (its sequences)."""
    return [_upper(i, env) for i in block.q.index[:-1]]


def _upper(i: sp.Idx, env: Env) -> int:
    upper = i.upper + 1
    return int(upper) if upper.is_Integer else int(env.dims[str(upper)])


def _event_size(q, env: Env) -> int:
    upper = q.event[0].upper + 1
    return int(upper) if upper.is_Integer else int(env.dims[str(upper)])


def update_gaussian_block(block: GaussianBlock, env: Env) -> float:
    """19.56 for the Gaussian chain, one sequence at a time (the plates before its axis; each a block of its
    own): q(x) = N(Λ⁻¹h, Λ⁻¹) by the Kalman filter and RTS smoother.  Sets ⟨xₜ⟩, ⟨xₜxₜᵀ⟩, Cov(xₜ₋₁, xₜ)
    (``cross``) and the joint entropy in ``env``; returns log|Λ| summed over the sequences."""
    from ppvi.codegen.runtime import gaussian_chain

    outer, T = _plate_sizes(block, env), int(env.dims[block.dim])
    D = 1 if block.scalar else _event_size(block.q, env)
    mean, cov, cross = np.empty((*outer, T, D)), np.empty((*outer, T, D, D)), np.zeros((*outer, T, D, D))
    logdet = 0.0
    for seq in np.ndindex(*outer):
        J, C, h = gaussian_potentials(block, env, dict(zip(block.q.index[:-1], seq)))
        logdet += gaussian_chain(J, C, h, mean[seq], cov[seq], cross[seq], np.empty(T))
    if block.scalar:
        env.moments[(block.var, "x")] = mean[..., 0]
        env.moments[(block.var, "x2")] = cov[..., 0, 0] + mean[..., 0] ** 2
        env.moments[(block.var, "cross")] = cross[..., 0, 0]
        env.arrays[f"mean({block.var})"], env.arrays[f"sd({block.var})"] = mean[..., 0], np.sqrt(cov[..., 0, 0])
    else:
        env.moments[(block.var, "x")] = mean
        env.moments[(block.var, "xxT")] = cov + mean[..., :, None] * mean[..., None, :]
        env.moments[(block.var, "cross")] = cross      # Cov(xₜ₋₁, xₜ): q's joint beyond its marginals
    n = int(np.prod(outer)) * T * D
    env.moments[(block.var, "entropy")] = np.asarray(0.5 * n * (1 + math.log(2 * math.pi)) - 0.5 * logdet)
    return float(logdet)
