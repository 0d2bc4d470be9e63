"""Passes over the kernel IR (codegen.ir), listed once, in the order they run.

Each pass maps a Module to a Module and reads nothing but the IR.  The order, and why:

    dead_loops  a loop whose body only binds indices (and comments) is removed: the blocked local step leaves
                one where each point's η is a column of the block's matrix product.  Before ``parallel``,
                which reads the loops that remain.
    hoist       a statement (or a whole loop) that reads nothing its loop changes is moved before the loop, out
                of as many loops as allow it: factor analysis' q(z) precision, the same for every point, is
                then factorised once per sweep.  After ``dead_loops`` (a loop it would empty is gone first,
                nothing to read), before ``parallel``.
    parallel    a kernel with a prange loop is compiled with parallel=True: last, so that a pass which adds
                or removes a parallel loop is reflected in the flag.

Most of code generation's decisions are still taken while the IR is lowered (codegen.module writes the
kernels): docs/architecture.md lists them and the ones that are passes.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from ppvi.codegen.ir import Bind, If, Kernel, Loop, Module, Note, accumulates, reads, walk, writes


def dead_loops(m: Module) -> Module:
    """Remove every loop that computes nothing: a body of index bindings and notes only (innermost first, so a
    loop left empty by the removal goes too).  A conditional stays: its test may be a call that acts."""
    def body(nodes: tuple) -> tuple:
        out = []
        for n in nodes:
            if isinstance(n, (Loop, If)):
                n = dataclasses.replace(n, body=body(n.body))
                if isinstance(n, Loop) and all(isinstance(c, (Bind, Note)) for c in n.body):
                    continue
            out.append(n)
        return tuple(out)
    return dataclasses.replace(m, kernels=tuple(dataclasses.replace(k, body=body(k.body)) for k in m.kernels))


def hoist(m: Module) -> Module:
    """Loop-invariant code motion, innermost loops first, so what leaves one loop may leave the next (see
    :func:`invariant` for what may move)."""
    def body(nodes: tuple) -> tuple:
        out = []
        for n in nodes:
            if isinstance(n, If):
                n = dataclasses.replace(n, body=body(n.body))
            elif isinstance(n, Loop):
                n = dataclasses.replace(n, body=body(n.body))
                moved, kept = invariant(n)
                out += moved
                n = dataclasses.replace(n, body=kept)
            out.append(n)
        return tuple(out)
    return dataclasses.replace(m, kernels=tuple(dataclasses.replace(k, body=body(k.body)) for k in m.kernels))


def invariant(loop: Loop) -> tuple[tuple, tuple]:
    """(the nodes of the loop's body that may run once before it, in order; the rest).  Only in a loop whose
    every statement says what it reads and writes (codegen.ir: no text, no index binding).  A node moves when

        it writes only temporaries (``_`` names: the kernel's own scratch, no array of the engine's), none
            that the loop's bounds read;
        it reads nothing that the nodes that stay, or the nodes after it, write — nor the loop's index;
        nothing that stays writes what it writes, and nothing that stays and comes before it reads it;
        what it adds to (``+=``) was assigned by a node before it that moves too (else the sum is carried
            from one iteration to the next).

    Then every iteration computes the same values there, so computing them once is the same program.  (A loop
    of no iterations now computes them anyway: generated temporaries are read only where they are made.)
    A comment moves with the node after it."""
    body = loop.body
    info = [(n, reads(n), writes(n)) for n in body]
    if loop.range.reads is None or any(r is None or w is None for _, r, w in info):
        return (), body
    code = [i for i, (n, _, _) in enumerate(info) if not isinstance(n, Note)]
    movable = {i for i in code if all(x.startswith("_") for x in info[i][2])
               and not info[i][2] & loop.range.reads and loop.range.var not in info[i][1]}
    changed = True
    while changed:
        changed = False
        kept = [i for i in code if i not in movable]
        kept_writes = frozenset({loop.range.var}).union(*(info[i][2] for i in kept))
        for i in sorted(movable):
            _, r, w = info[i]
            later = frozenset().union(*(info[j][2] for j in code if j > i))
            before = frozenset().union(*(info[j][2] for j in movable if j < i))
            if r & (kept_writes | later) or w & kept_writes or \
                    any(info[j][1] & w for j in kept if j < i) or not accumulates(body[i]) <= before:
                movable.discard(i)
                changed = True
    moves = set(movable)
    for i in range(len(body) - 1, -1, -1):      # a comment goes with the code it describes
        if isinstance(body[i], Note) and i + 1 < len(body) and (i + 1) in moves:
            moves.add(i)
    return tuple(body[i] for i in sorted(moves)), tuple(n for i, n in enumerate(body) if i not in moves)


def parallel(m: Module) -> Module:
    """parallel=True exactly on the kernels that have a prange loop (Numba ignores prange otherwise)."""
    def flag(k: Kernel) -> Kernel:
        return dataclasses.replace(k, parallel=any(isinstance(n, Loop) and n.range.parallel for n in walk(k.body)))
    return dataclasses.replace(m, kernels=tuple(flag(k) for k in m.kernels))


PASSES: tuple[tuple[str, Callable[[Module], Module]], ...] = (
    ("dead_loops", dead_loops),
    ("hoist", hoist),
    ("parallel", parallel),
)
NAMES = ("lower",) + tuple(name for name, _ in PASSES)


def run_passes(m: Module, until: str | None = None) -> Module:
    """The passes in order, up to and including ``until`` ("lower": none of them; None: all)."""
    if until == "lower":
        return m
    for name, fn in PASSES:
        m = fn(m)
        if name == until:
            break
    return m
