"""Passes over the kernel IR (codegen.ir), listed once, in the order they run.

Each pass maps a Module to a Module and reads nothing but the IR.  The order, and why:

    dead_loops  a loop whose body only binds indices (and comments) is removed: the blocked local step leaves
                one where each point's η is a column of the block's matrix product.  Before ``parallel``,
                which reads the loops that remain.
    parallel    a kernel with a prange loop is compiled with parallel=True: last, so that a pass which adds
                or removes a parallel loop is reflected in the flag.

Most of code generation's decisions are still taken while the IR is lowered (codegen.module writes the
kernels): docs/architecture.md lists them and the ones that are passes.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from ppvi.codegen.ir import Bind, If, Kernel, Loop, Module, Note, walk


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


def parallel(m: Module) -> Module:
    """parallel=True exactly on the kernels that have a prange loop (Numba ignores prange otherwise)."""
    def flag(k: Kernel) -> Kernel:
        return dataclasses.replace(k, parallel=any(isinstance(n, Loop) and n.range.parallel for n in walk(k.body)))
    return dataclasses.replace(m, kernels=tuple(flag(k) for k in m.kernels))


PASSES: tuple[tuple[str, Callable[[Module], Module]], ...] = (
    ("dead_loops", dead_loops),
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
