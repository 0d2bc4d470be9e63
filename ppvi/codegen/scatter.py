"""The pass ``scatter_rows``: an update's scatters over the data plate, summed row by row.

A latent's update reads the data plate through sums the writer materialises before the element loop
(emit.Writer._materialise): ``_a[int(v_user[r]), k] += f(r, k)`` over every rating r, a scatter into the row
its index data name.  Bayesian PMF has four such passes a sweep (⟨Q[item[r]]⟩ r[r] and ⟨Q Qᵀ⟩[item[r]] into
q(P)'s rows, the same for q(Q)), and at 10⁶ ratings they are most of the sweep.  Run row by row over the data
sorted by row once, when they are bound (ppvi.infer.program.group_index: ``c_order__<by>``, ``c_start__<by>``),
each row's sums are its own: the rows run in parallel with no partial sums, every row's sum is added in the
data's order as the serial pass adds it (the sort is stable), and the scatters by the same index data share
one pass over the ratings.

The pass leaves the update as it is and adds the rows kernel beside it (``rows_<var>``, the plan's
``LatentPlan.rows``; the index data in ``Plan.orders``): the engine takes it only on a data plate large enough
that the parallel region pays for itself (ppvi.infer.program.ROWS_FROM), so that small data (the tests, the
corpus) run the serial update and never compile the parallel one.
"""

from __future__ import annotations

import dataclasses

from ppvi.codegen.ir import (Assign, Bind, Expr, Kernel, Loop, Module, Note, Range, Ref, accumulates, reads, walk,
                             writes)
from ppvi.codegen.plan import ArrayNames, KernelSpec

ROW, AT = "_row", "_at"       # the row and its position in the sorted data (no generated name starts with them)


def scatter_rows(m: Module) -> Module:
    """Each latent's update (role ``update``) with a scatter over the data plate (:func:`scatter_of`) gets a rows
    kernel (:func:`by_rows`) after it and in its plan; every index data read so goes in ``Plan.orders``."""
    if m.plate is None or m.plan is None:
        return m
    kernels, latents, orders = [], dict(m.plan.latents), list(m.plan.orders)
    for k in m.kernels:
        kernels.append(k)
        if k.role != "update" or k.latent not in latents or latents[k.latent].rows is not None:
            continue
        body, by = by_rows(k.body, m.plate)
        if not by:
            continue
        extra = {ArrayNames.constant(what, b) for b in by for what in ("order", "start")}
        rows = Kernel(ArrayNames.kernel("rows", k.latent), tuple(sorted(set(k.params) | extra)), body, "rows",
                      k.latent, contract=k.contract, doc=f"{k.doc}, its scatters over the data row by row".lstrip(", "))
        kernels.append(rows)
        latents[k.latent] = dataclasses.replace(latents[k.latent], rows=KernelSpec(rows.name, rows.params))
        orders += [b for b in by if b not in orders]
    if kernels == list(m.kernels):
        return m
    plan = dataclasses.replace(m.plan, latents=latents, orders=tuple(orders))
    return dataclasses.replace(m, kernels=tuple(kernels), plan=plan)


def scatter_of(loop: Loop, plate: str) -> str | None:
    """The index data (a ``v_`` array) a loop over the whole data plate scatters by, or None.  The loop is
    serial, and every statement in it is a ``+=`` into a kernel temporary (``_`` name) at exactly one position
    ``int(<by>[r])``, r the loop's index, the same ``by`` for all; the rest of its body is loops (their reads
    known) and comments; nothing in it reads an array it adds to.  Then iteration r writes only row by[r] of
    each: rows are independent."""
    r = loop.range
    if r.stop != plate or r.start is not None or r.step is not None or r.parallel or reads(loop) is None:
        return None
    found, targets, read = set(), set(), set()
    for n in walk(loop.body):
        if isinstance(n, (Note, Loop)):
            if isinstance(n, Loop) and (n.range.parallel or n.range.stop == plate):
                return None
            continue
        if not (isinstance(n, Assign) and n.op == "+=" and n.target.name.startswith("_")):
            return None
        at = [i for i in n.target.index if _row_of(i, r.var) is not None]
        if len(at) != 1:
            return None
        found.add(_row_of(at[0], r.var))
        targets.add(n.target.name)
        read |= n.value.reads | n.target.reads
    return found.pop() if len(found) == 1 and not targets & read else None


def _row_of(index: Expr, var: str) -> str | None:
    """``by`` where the index position is ``int(by[var])`` (as emit.Writer.index_value spells a data value)."""
    by = sorted(index.reads - {var})
    if len(by) == 1 and index.reads == {by[0], var} and index.text == f"int({by[0]}[{var}])" and \
            ArrayNames.variable_of(by[0]) is not None:
        return by[0]
    return None


def by_rows(body: tuple, plate: str) -> tuple[tuple, tuple[str, ...]]:
    """(the body with each run of scatters by the same index data as one parallel loop over its rows, the index
    data's names as the program binds them).  A run: scatter loops (:func:`scatter_of`) with only assignments
    between them that the scatters neither read nor write, nor read what the scatters write (the next
    scatter's ``np.zeros``): those move before the run."""
    out, run, by_all = [], [], []
    for n in body:
        by = scatter_of(n, plate) if isinstance(n, Loop) else None
        if by is not None and (not run or by == run[0][0]):
            run.append((by, n))
            continue
        if run and isinstance(n, (Assign, Note)) and _independent(n, [loop for _, loop in run]):
            out.append(n)
            continue
        if run:
            out.append(_rows_loop(run))
            by_all.append(run[0][0])
        run = [(by, n)] if by is not None else []
        if by is None:
            out.append(n)
    if run:
        out.append(_rows_loop(run))
        by_all.append(run[0][0])
    return tuple(out), tuple(dict.fromkeys(ArrayNames.variable_of(b) for b in by_all))


def _independent(n, loops: list[Loop]) -> bool:
    """Whether node n may run before the loops: it writes a temporary they neither read nor write, and reads
    nothing they write."""
    if isinstance(n, Note):
        return True
    w, r = writes(n), reads(n)
    if n.op != "=" or w is None or r is None or not all(x.startswith("_") for x in w):
        return False
    theirs_r = frozenset().union(*(reads(loop) for loop in loops))
    theirs_w = frozenset().union(*(writes(loop) for loop in loops))
    return not (w & (theirs_r | theirs_w)) and not (r & theirs_w)


def _rows_loop(run: list[tuple[str, Loop]]) -> Loop:
    """One loop over the rows (in parallel) of the run's scatters, each row over its data in order."""
    by = run[0][0]
    data = ArrayNames.variable_of(by)
    order, start = ArrayNames.constant("order", data), ArrayNames.constant("start", data)
    inner, bound = [], set()
    for _, loop in run:
        var = loop.range.var
        if var not in bound:
            inner.append(Bind(var, f"{order}[{AT}]", frozenset({order, AT})))
            bound.add(var)
        inner += [_at_row(n, by, var) for n in loop.body]
    at = Loop(Range(AT, f"{start}[{ROW} + 1]", f"{start}[{ROW}]", reads=frozenset({start, ROW})), tuple(inner),
              run[0][1].axis)
    rows = Range(ROW, f"{start}.shape[0] - 1", parallel=True, reads=frozenset({start}))
    return Loop(rows, (at,), "rows")


def _at_row(n, by: str, var: str):
    """The node with every scatter's position ``int(by[var])`` read as the row ``_row``."""
    if isinstance(n, Loop):
        return dataclasses.replace(n, body=tuple(_at_row(c, by, var) for c in n.body))
    if isinstance(n, Assign):
        index = tuple(Expr(ROW, frozenset({ROW})) if _row_of(i, var) == by else i for i in n.target.index)
        return dataclasses.replace(n, target=Ref(n.target.name, index))
    return n


# ---------------------------------------------------------------- the ELBO's sums over the data, in chunks
ELBO_CHUNKS = 64
"""The chunks of a large ELBO's sums over the data plate (:func:`chunk_elbo`): fixed, so that the sum does not
depend on the number of threads; a chunk's partial sum of a K × K array is 100 floats at K = 10."""


def chunk_elbo(m: Module) -> Module:
    """The full ELBO kernel (role ``elbo``, no latent) gets a variant beside it (``ElboPlan.large``) with each of
    its sums over the data plate (:func:`reduction`) run in ELBO_CHUNKS fixed chunks on threads, each chunk into
    its own partial sums, then added in chunk order.  Bayesian PMF's ⟨P Pᵀ⟩[user[r]] : ⟨Q Qᵀ⟩[item[r]] over 10⁶
    ratings is a third of its sweep.  The engine takes it, as a rows kernel, on a large plate only."""
    full = next((k for k in m.kernels if k.role == "elbo" and k.latent is None), None)
    if full is None or m.plate is None or m.plan is None or ArrayNames.size_of(m.plate) is None:
        return m
    body, changed = [], False
    for n in full.body:
        loop = _chunked(n, m.plate) if isinstance(n, Loop) and reduction(n, m.plate) else None
        body += [n] if loop is None else list(loop)
        changed = changed or loop is not None
    if not changed:
        return m
    large = dataclasses.replace(full, name=f"{full.name}_large", body=tuple(body),
                                doc=f"{full.doc}, its sums over the data in chunks".lstrip(", "))
    at = m.kernels.index(full)
    elbo = dataclasses.replace(m.plan.elbo, large=KernelSpec(large.name, large.params),
                               plate=ArrayNames.size_of(m.plate))
    return dataclasses.replace(m, kernels=m.kernels[:at + 1] + (large,) + m.kernels[at + 1:],
                               plan=dataclasses.replace(m.plan, elbo=elbo))


def reduction(loop: Loop, plate: str) -> bool:
    """A serial loop over the whole data plate whose iterations share nothing but sums: every statement says
    what it reads and writes, everything it writes is a kernel temporary, and what it carries from one
    iteration to the next (ir.accumulates) is only ever added to (``+=``), never read otherwise; what it
    assigns afresh in an iteration is that iteration's own."""
    r = loop.range
    if r.stop != plate or r.start is not None or r.step is not None or r.parallel or reads(loop) is None \
            or writes(loop) is None or not all(w.startswith("_") for w in writes(loop)):
        return False
    carried = accumulates(loop)
    if not carried:
        return False
    for n in walk(loop.body):
        if isinstance(n, Loop) and n.range.parallel:
            return False
        if isinstance(n, Assign) and n.target.name in carried and n.op != "+=":
            return False
        if isinstance(n, Assign):
            used = n.value.reads | n.target.reads
        elif isinstance(n, Loop):
            used = n.range.reads
        else:
            used = reads(n) or frozenset()
        if used & carried:
            return False
    shapes = {}
    for n in walk(loop.body):          # (a carried name is a scalar or an array everywhere)
        if isinstance(n, Assign) and n.target.name in carried:
            if shapes.setdefault(n.target.name, bool(n.target.index)) != bool(n.target.index):
                return False
    return True


def _chunked(loop: Loop, plate: str) -> tuple:
    """The reduction loop as chunks on threads into partial sums ``_p<name>[_ch, …]``, then their sum."""
    carried = sorted(accumulates(loop))
    arrays = {n.target.name for n in walk(loop.body) if isinstance(n, Assign) and n.target.name in carried
              and n.target.index}
    partial = {c: f"_p{c}" for c in carried}
    head = [Assign(Ref(partial[c]), Expr(f"np.zeros((_C,) + {c}.shape)" if c in arrays else "np.zeros(_C)",
                                         frozenset({c}) if c in arrays else frozenset())) for c in carried]
    head.insert(0, Assign(Ref("_C"), Expr(f"max(1, min({ELBO_CHUNKS}, {plate}))", frozenset({plate}))))

    def private(n):
        if isinstance(n, Loop):
            return dataclasses.replace(n, body=tuple(map(private, n.body)))
        if isinstance(n, Assign) and n.target.name in partial:
            index = (Expr("_ch", frozenset({"_ch"})),) + n.target.index
            return dataclasses.replace(n, target=Ref(partial[n.target.name], index))
        return n
    part = Range(loop.range.var, f"(_ch + 1) * {plate} // _C", f"_ch * {plate} // _C",
                 reads=frozenset({"_ch", plate, "_C"}), part=(plate, "_C"))
    chunks = Loop(Range("_ch", "_C", parallel=True, reads=frozenset({"_C"})),
                  (Loop(part, tuple(map(private, loop.body)), loop.axis),), "chunk")
    # (an array's sum into its elements, `_a[:] +=`: Numba's parfors fail on a second `_a += …` in a kernel, and
    # on `_a[...]`)
    total = Loop(Range("_c", "_C", reads=frozenset({"_C"})),
                 tuple(Assign(Ref(c, (Expr(":"),) if c in arrays else ()),
                              Expr(f"{partial[c]}[_c]", frozenset({partial[c], "_c"})), "+=") for c in carried))
    return tuple(head) + (chunks, total)
