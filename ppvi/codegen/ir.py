"""The kernel IR: what code generation decided, as plain frozen data, before any text is printed.

    Module      the kernels of one model, its statistics and its schedule (the plan the engine runs)
    Kernel      a name, its parameters (the arrays it reads or writes, by mangled name), flags, a body
    Loop        ``for var in [p]range(start, stop, step)`` over a body; ``parallel`` is a prange
    If          a body run when ``test`` holds
    Stmt        one statement (an assignment, an accumulation, a call), as the writer spelt it
    Bind        a loop's element index computed from its counter (``i1_n = _b0 + _b``): defines, computes nothing
    Note        provenance: which η, statistic or ELBO term the code below computes, from which model line

The passes (``ppvi.codegen.passes``) map a Module to a Module; the printer (``ppvi.codegen.printer``) only
prints one.  docs/architecture.md describes the pipeline and which decisions are passes today.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union


@dataclass(frozen=True)
class Stmt:
    """One statement, spelt as Python: an assignment (``x = …``), an accumulation (``x += …``) or a call."""

    text: str


@dataclass(frozen=True)
class Bind:
    """``var = value``: the model index a loop's counter stands for, for the rest of the loop's body."""

    var: str
    value: str


@dataclass(frozen=True)
class Note:
    """A comment for the reader of the generated code (printed escaped: it holds no text of the model's)."""

    text: str


@dataclass(frozen=True)
class Range:
    """The iteration of a loop: ``var`` over range(start, stop, step) (start 0 and step 1 when None)."""

    var: str
    stop: str
    start: str | None = None
    step: str | None = None
    parallel: bool = False          # prange: the iterations run on threads


@dataclass(frozen=True)
class Loop:
    range: Range
    body: tuple = ()
    axis: str | None = None         # what it runs over, for reading the IR: a model index's label, "repeat"


@dataclass(frozen=True)
class If:
    test: str
    body: tuple = ()


Node = Union[Stmt, Bind, Note, Loop, If]


@dataclass(frozen=True)
class Kernel:
    """A generated function.  ``params``: every array it reads or writes, sorted (how the engine calls it);
    ``role``: update, damped, local_step, point, elbo, statistics or block; ``latent``: whose update it is."""

    name: str
    params: tuple[str, ...]
    body: tuple
    role: str
    latent: str | None = None
    parallel: bool = False          # compiled with parallel=True (it has a prange loop)
    contract: bool = False          # a·b + c may be one fused multiply-add
    returns: str | None = None
    doc: str = ""                   # what it computes and from which model line (printed as a comment)


@dataclass(frozen=True)
class StatisticArray:
    """A statistic of the local step (codegen.statistics): its array, shape in dims, and the sum it holds."""

    name: str
    shape: tuple
    expr: str
    scatter: str | None = None
    mirror: tuple | None = None


@dataclass(frozen=True)
class Module:
    version: str
    kernels: tuple[Kernel, ...]
    statistics: tuple[StatisticArray, ...] = ()
    plan: dict = field(default_factory=dict)     # the schedule, as the engine reads it (PLAN)

    def kernel(self, name: str) -> Kernel:
        return next(k for k in self.kernels if k.name == name)


def walk(body: tuple):
    """Every node of a body, depth first, parents before their children."""
    for node in body:
        yield node
        if isinstance(node, (Loop, If)):
            yield from walk(node.body)
