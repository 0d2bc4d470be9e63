"""The kernel of a Categorical chain's block (docs/derivation.md, section 8): one unit of the local step.

For each sequence (the chain's outer plates) the kernel fills the block's potentials at the current moments of
its neighbours — log φ[k] (the first element's statement), log Ψ[t, j, k] (the chain's own statement, rows
t ≥ start), log ψ[t, k] (every other statement: the emissions) — written from the derived expressions like any
η, and hands them to the runtime: ``forward_backward`` (``approximate z jointly``: the exact block q(z), its
marginals r, pairwise ξ and log Z) or ``chain_mean_field`` (one sequential sweep of the product Πₜ q(zₜ)).
r is q(z)'s ``p`` (the marginals: the result's q), ξ the ``pair`` moment the rows of A count; the kernel
writes H[q(z)] summed over the sequences (``h_``) and Σ log Z (``l_``, NaN under the mean field).

A Gaussian chain approximated jointly (``write_gaussian_kernel``) is one block per sequence the same way (its
plates before t: ``x[s, t]``): the kernel fills the blocks of the joint precision Λ (Jₜ = Λₜₜ, Cₜ = Λₜ₋₁,ₜ) and the
linear term hₜ from their derived expressions and hands them to ``finish_gaussian_chain`` (Kalman filter in
information form, RTS smoother): q(x)'s MvNormal arrays (means, covariances, ⟨xₜxₜᵀ⟩; ``h_`` per element H[q(xₜ |
xₜ₊₁)], summing to the joint entropy) and the lag-one covariances Cov(xₜ₋₁, xₜ) (the ``cross`` moment, which
E[xₜ₋₁xₜᵀ] reads in the chain's own statement: its ELBO term and the updates of what that statement learns). A
chain of scalars is the block of D = 1 (``finish_normal_chain``: q's Normal arrays, means, sds, ⟨xₜ²⟩).
"""

from __future__ import annotations

import sympy as sp

from ppvi.codegen.emit import Block, Writer, add, assign, ex, name_ref
from ppvi.codegen.ir import Call, Expr, Range, Ref
from ppvi.codegen.plan import ChainPlan, KernelSpec, LatentPlan
from ppvi.derive.chain import ChainBlock, GaussianBlock


def _size(i: sp.Expr) -> str | int:
    s = sp.sympify(i)
    return s.name if isinstance(s, sp.Symbol) else int(s)


def chain_state(block: ChainBlock, names) -> tuple[dict[str, tuple], dict[str, str]]:
    """The arrays q(z) owns (mangled name -> shape in dims) and its aliases: the marginals r as a Categorical's
    ``p`` (⟨[zₜ = k]⟩ is the same array), ξ as the ``pair`` moment, the entropy and Σ log Z of all sequences."""
    outer = [_size(i.upper + 1) for i in block.outer]
    K = block.categories
    p = names.qparam(block.var, "p")
    state = {p: tuple(outer + [block.dim, K]), names.moment(block.var, "pair"): tuple(outer + [block.dim, K, K]),
             names.entropy(block.var): (1,), names.log_normaliser(block.var): (1,)}
    return state, {names.moment_name(block.var, "onehot"): p}


def _potentials(mw, w: Writer, block: ChainBlock, body: Block, levels: list[Block], arrays: tuple) -> None:
    """The loops that fill a sequence's log potentials into ``arrays`` (log φ of the first element, log Ψ of the
    transitions, log ψ of every element's other statements), appended to ``body``."""
    names, (li, lt, ln) = mw.names, arrays
    t, j, k = (names.index(i) for i in (block.t, block.j, block.k))
    varying = block.t in block.log_trans.free_symbols     # (else one K × K matrix: see write_chain_kernel)
    body.post.append(mw._note("log phi (the first element's potential)", block.var))
    ks = w._loops([(block.k, 0, block.k.upper)])
    ks[-1].post.append(assign(name_ref(li, k), w.expr(block.log_init, levels + ks)))
    body.post.append(ks[0])

    body.post.append(mw._note("log Psi (the transition potentials, t >= start)", block.var))
    steps = (block.t, block.chain.start, block.t.upper)
    if varying:
        loops = w._loops([steps, (block.j, 0, block.j.upper), (block.k, 0, block.k.upper)])
        loops[-1].post.append(assign(name_ref(lt, t, j, k), w.expr(block.log_trans, levels + loops)))
    else:
        loops = w._loops([(block.j, 0, block.j.upper), (block.k, 0, block.k.upper)])
        loops[-1].post.append(assign(name_ref(lt, "0", j, k), w.expr(block.log_trans, levels + loops)))
    body.post.append(loops[0])

    body.post.append(mw._note("log psi (every other statement: the emissions)", block.var))
    nodes = w._loops([(block.t, 0, block.t.upper), (block.k, 0, block.k.upper)])
    nodes[-1].post.append(assign(name_ref(ln, t, k), w.expr(block.log_node, levels + nodes)))
    body.post.append(nodes[0])


def write_chain_kernel(mw, block: ChainBlock) -> None:
    """The update of the chain ``block`` as one kernel of ``mw`` (a codegen.module.ModuleWriter), and its plan."""
    names = mw.names
    names.begin()
    w = Writer(names, mw.dims)
    fn = Block()
    K = w.int_value(sp.sympify(block.k.upper) + 1)
    T = w.int_value(sp.sympify(block.t.upper) + 1)
    li, lt, ln, lz, h = "_li", "_lt", "_ln", "_lz", "_hq"
    varying = block.t in block.log_trans.free_symbols
    fn.pre += [assign(Ref(li), Expr(f"np.empty({K})", frozenset({K}))),
               # (a stationary chain's Ψ is one K × K matrix: the runtime reads row 0 at every step)
               assign(Ref(lt), Expr(f"np.empty(({T if varying else 1}, {K}, {K}))", frozenset({T, K}))),
               assign(Ref(ln), Expr(f"np.empty(({T}, {K}))", frozenset({T, K}))),
               assign(Ref(lz), Expr("0.0")), assign(Ref(h), Expr("0.0"))]
    seqs = w._loops([(i, 0, i.upper) for i in block.outer])
    if seqs:
        fn.post.append(seqs[0])
    body = seqs[-1] if seqs else fn
    levels = [fn] + seqs
    at = [names.index(i) for i in block.outer]
    _potentials(mw, w, block, body, levels, (li, lt, ln))
    r = name_ref(names.qparam(block.var, "p"), *at) if at else Ref(names.qparam(block.var, "p"))
    pair = names.moment(block.var, "pair")
    xi = name_ref(pair, *at) if at else Ref(pair)
    pots = tuple(Expr(a, frozenset({a})) for a in (li, lt, ln))
    if block.jointly:
        body.post += [Call("forward_backward", pots + (r, xi), (Ref("_z1"), Ref("_h1"))),
                      add(lz, "_z1", "_z1"), add(h, "_h1", "_h1")]
    else:
        body.post += [Call("chain_mean_field", pots + (r, xi), (Ref("_h1"),)), add(h, "_h1", "_h1")]
    fn.post += [assign(name_ref(names.entropy(block.var), "0"), ex(h, h)),
                assign(name_ref(names.log_normaliser(block.var), "0"),
                       ex(lz, lz) if block.jointly else Expr("math.nan"))]
    name = names.kernel("update", block.var)
    mw._function(name, fn, returns=None, role="chain", latent=block.var)
    state, aliases = chain_state(block, names)
    spec = KernelSpec(name, tuple(mw._args(name)))
    mw.latents[block.var] = LatentPlan(
        "Categorical", spec, state, aliases, "local", tuple(_size(i.upper + 1) for i in block.outer) + (block.dim,),
        block.categories, True, damped=spec,    # (the block is exact: never damped)
        chain=ChainPlan(pair, block.jointly, block.chain.start))


def gaussian_state(block: GaussianBlock, names) -> tuple[dict[str, list], str]:
    """The array a Gaussian chain's block owns beside its MvNormal q's: Cov(xₜ₋₁, xₜ).
    -> (mangled name -> shape, its name)."""
    q = block.q
    steps = tuple(_size(i.upper + 1) for i in q.index)      # (the sequences' plates, then the chain's axis)
    cross = names.moment(block.var, "cross")
    if block.scalar:
        return {cross: steps}, cross
    D = _size(q.event[0].upper + 1)
    return {cross: steps + (D, D)}, cross


def write_gaussian_kernel(mw, block: GaussianBlock) -> None:
    """The update of the Gaussian chain ``block`` as one kernel of ``mw`` (a codegen.module.ModuleWriter), and
    its plan: the q of an MvNormal latent over the chain's axis, updated whole."""
    from ppvi.codegen.module import aliases, state_arrays

    names, q = mw.names, block.q
    names.begin()
    w = Writer(names, mw.dims)
    fn = Block()
    *outer, t = q.index
    T = w.int_value(t.upper + 1)
    ti = names.index(t)
    if block.scalar:        # (a chain of scalars: blocks of D = 1, its event axes the literal 0)
        D, di, ei, event, extra = 1, "0", "0", [], []
    else:
        (d,), e = q.event, q.extra
        D, di, ei = w.int_value(d.upper + 1), names.index(d), names.index(e)
        event, extra = [(d, 0, d.upper)], [(e, 0, e.upper)]
    J, C, h = "_jb", "_cb", "_hb"
    sizes = frozenset({T, D})
    fn.pre += [assign(Ref(J), Expr(f"np.empty(({T}, {D}, {D}))", sizes)),
               assign(Ref(C), Expr(f"np.zeros(({T}, {D}, {D}))", sizes)),     # (C₀ is never read: no x₋₁)
               assign(Ref(h), Expr(f"np.empty(({T}, {D}))", sizes))]
    seqs = w._loops([(i, 0, i.upper) for i in outer])     # (each sequence, the plates before t, a block)
    if seqs:
        fn.post.append(seqs[0])
    body = seqs[-1] if seqs else fn
    levels = [fn] + seqs
    for what, expr, target, limits in (
            ("J[t] = Lambda[t, t] (the diagonal blocks)", block.diagonal, (J, ti, di, ei),
             [(t, 0, t.upper)] + event + extra),
            ("C[t] = Lambda[t-1, t] (the blocks above the diagonal, t >= 1)", block.coupling, (C, ti, di, ei),
             [(t, 1, t.upper)] + event + extra),
            ("h[t] (the linear term)", block.linear, (h, ti, di), [(t, 0, t.upper)] + event)):
        body.post.append(mw._note(what, block.var))
        loops = w._loops(limits)
        loops[-1].post.append(assign(name_ref(*target), w.expr(expr, levels + loops)))
        body.post.append(loops[0])
    state = state_arrays(q, names)
    extra, cross = gaussian_state(block, names)
    second = ("sd", "x2") if block.scalar else ("cov", "xxT")
    arrays = (names.qparam(block.var, "mean"), names.qparam(block.var, second[0]), names.moment(block.var, second[1]),
              cross, names.entropy(block.var))
    at = [names.index(i) for i in outer]
    body.post.append(Call("finish_normal_chain" if block.scalar else "finish_gaussian_chain",
                          tuple(Expr(a, frozenset({a})) for a in (J, C, h))
                          + tuple(name_ref(a, *at) if at else Ref(a) for a in arrays), ()))
    name = names.kernel("update", block.var)
    mw._function(name, fn, returns=None, role="chain", latent=block.var)
    spec = KernelSpec(name, tuple(mw._args(name)))
    mw.latents[block.var] = LatentPlan(
        q.family, spec, {**state, **extra}, aliases(q, names), q.scope,
        tuple(_size(i.upper + 1) for i in q.index[:-1]) + (block.dim,),
        None if block.scalar else _size(q.event[0].upper + 1), True,
        damped=spec,    # (the block is exact: never damped)
        chain=ChainPlan(cross, True, block.chain.start))
