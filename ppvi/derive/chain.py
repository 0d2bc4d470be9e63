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
entropy term makes E[log p] + H[q(z)] over the chain equal log Z (docs/derivation.md, section 7).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import sympy as sp

from ppvi.derive.canonical import canonical
from ppvi.derive.expectation import Expectation
from ppvi.derive.lower import Gates, Lowering
from ppvi.derive.meanfield import Derivation, _err, _expected, _q_factor, partial
from ppvi.derive.numeric import Env, evaluate
from ppvi.derive.symbols import MomentSymbol, Symbols
from ppvi.graph.factor_graph import build
from ppvi.language import ast
from ppvi.language.check import CheckedModel
from ppvi.language.sequences import Chain

PREVIOUS = "_previous"          # z[t-1] in the chain's own statement: the block's j (not a user name: `_` + word)


@dataclass(frozen=True)
class ChainBlock:
    """The potentials of one Categorical chain, as expressions in its neighbours' moments.

    ``log_init`` is in ``k``; ``log_trans`` in ``j``, ``k`` (and ``t`` when the transition varies along
    the chain); ``log_node`` in ``t``, ``k``.  ``jointly`` selects the structured q.
    """

    var: str
    dim: str
    categories: str | int
    t: sp.Idx
    j: sp.Idx
    k: sp.Idx
    log_init: sp.Expr
    log_trans: sp.Expr
    log_node: sp.Expr
    jointly: bool
    chain: Chain


@dataclass
class ChainDerivation(Derivation):
    """A derivation whose Categorical chains are blocks (``blocks``) rather than mean-field q's."""

    blocks: dict[str, ChainBlock] = field(default_factory=dict)

    def elbo_terms(self) -> list[tuple[str, sp.Expr]]:
        """19.7 as in :meth:`Derivation.elbo_terms`; a chain's entropy H[q(z)] is the block's own number
        (−Σ r log r under the mean field; log Z − E_q[log potentials] for the structured q)."""
        return super().elbo_terms() + [(f"H[q({b.var})]", MomentSymbol(b.var, "entropy"))
                                       for b in self.blocks.values()]


def refusal(model: CheckedModel, chain: Chain) -> str | None:
    """Why ``chain`` is outside what the block handles (None when it is handled)."""
    v = model.variables[chain.name]
    body = model.factors[chain.body]
    if v.kind != "latent":
        return "an observed chain (its elements are data)"
    if v.support != "index":
        return f"a chain of {v.support} values (only Categorical chains are derived so far)"
    if chain.lag != 1 or len(chain.firsts) != 1 or chain.start != 1:
        return "a chain that looks back more than one step"
    if len(v.shape) != 1:
        return "several sequences in one chain variable (write them in long format, one plate)"
    if body.dist != "Categorical" or model.factors[chain.firsts[0]].dist != "Categorical":
        return "a chain whose elements are not each drawn from a Categorical"
    return None


def derive_chains(model: CheckedModel) -> ChainDerivation:
    """19.56 for a model with Categorical chains: each chain a block, every other latent as usual."""
    from ppvi.derive.meanfield import info_of   # (the shared set-up of derive())
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
    mean_field = {n.name for n in latents if n.approximation == "mean_field"} | set(model.chains)
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
    if model.of_kind("param") or len(mean_field) != len(latents):
        raise rep.fail("ppvi cannot yet learn params or point estimates next to a chain", model.factors[0].span,
                       "give them priors (mean field) or fix them as data or constants")
    return ChainDerivation(model, graph, syms, q, expected, [], {}, blocks)


def _block(model, syms, low, expect, rep, chain: Chain, rest: sp.Expr):
    """The chain's potentials, and E[log p] of its two statements in its statistics r and ξ."""
    z = model.variables[chain.name]
    K = z.support_dim
    first, body = model.factors[chain.firsts[0]], model.factors[chain.body]
    # (named plainly for `ppvi derive`: every plate of the expressions below is summed over fresh indices)
    t, j, k = syms.index("t", chain.dim), syms.index("j", K), syms.index("k", K)
    r = syms.moment(chain.name, "onehot", 2)
    xi = syms.moment(chain.name, "pair", 3)

    def expected_log_p(f, scope) -> sp.Expr:
        gates = Gates()
        p = low.lower(_previous(f.arg("p"), chain.name), scope, gates)
        if gates.found:
            raise rep.fail("ppvi cannot derive a chain whose probabilities are chosen by another latent yet",
                           f.span, "index the probabilities by the chain's previous element only")
        try:
            return canonical(expect.expect(sp.log(p.at((k,)))))
        except Exception as e:          # a non-conjugate form: say which statement
            raise rep.fail(f"no conjugate block for `{chain.name}`: {e}", f.span, None) from None

    log_init = expected_log_p(first, {})
    tvar = next(v for v, _ in body.plates if v == body.target_index[0])
    log_trans = expected_log_p(body, {tvar: t, PREVIOUS: j})
    log_node = canonical(partial(rest, r, (t, k)))
    k0, j1, k1, t1 = syms.fresh("k", K), syms.fresh("j", K), syms.fresh("k", K), syms.fresh("t", chain.dim)
    first_term = sp.Sum(r[0, k0] * log_init.xreplace({k: k0}), (k0, 0, k0.upper))
    body_term = sp.Sum(sp.Sum(sp.Sum(xi[t1, j1, k1] * log_trans.xreplace({t: t1, j: j1, k: k1}),
                                     (k1, 0, k1.upper)), (j1, 0, j1.upper)), (t1, chain.start, t1.upper))
    block = ChainBlock(chain.name, chain.dim, K, t, j, k, log_init, log_trans, log_node,
                       model.approximations.get(chain.name) == "jointly", chain)
    return block, first_term, body_term


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
def potentials(block: ChainBlock, env: Env) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log φ [K], log Ψ [T, K, K] (row t ≥ 1 used) and log ψ [T, K] at the current moments."""
    T, K = env.dims[block.dim], _size(block.categories, env)
    init = np.array([evaluate(block.log_init, env, {block.k: k}) for k in range(K)])
    varying = block.t in block.log_trans.free_symbols
    trans = np.empty((T, K, K))
    for t in range(block.chain.start, T) if varying else [block.chain.start]:
        for j in range(K):
            for k in range(K):
                trans[t, j, k] = evaluate(block.log_trans, env, {block.t: t, block.j: j, block.k: k})
    if not varying:
        trans[:] = trans[block.chain.start]
    node = np.array([[evaluate(block.log_node, env, {block.t: t, block.k: k}) for k in range(K)]
                     for t in range(T)])
    return init, trans, node


def _size(e: str | int, env: Env) -> int:
    return e if isinstance(e, int) else int(env.dims[e])


def update_block(block: ChainBlock, env: Env) -> float:
    """19.56 for the chain at the current moments of its neighbours: the structured q(z) by
    forward–backward, or one mean-field sweep over its elements.  Sets z's statistics r (``onehot``),
    ξ (``pair``) and its entropy in ``env``; returns log Z of the block (NaN under the mean field)."""
    from ppvi.codegen.runtime import chain_mean_field, forward_backward

    init, trans, node = potentials(block, env)
    T, K = node.shape
    r = np.array(env.moments.get((block.var, "onehot"), np.full((T, K), 1.0 / K)), dtype=float)
    xi = np.zeros((T, K, K))
    if block.jointly:
        log_z, entropy = forward_backward(init, trans, node, r, xi)
    else:
        log_z, entropy = float("nan"), chain_mean_field(init, trans, node, r, xi)
    env.moments[(block.var, "onehot")] = r
    env.moments[(block.var, "pair")] = xi
    env.moments[(block.var, "entropy")] = np.asarray(entropy)
    return float(log_z)
