"""Checked model -> factor graph: variables, plates, factors, Markov blankets.

A latent is *local* when its draw sits inside the data plate (one q per
example, e.g. ``z[n]``) and *global* otherwise (docs/derivation.md): the split the
generated map/reduce kernels follow.
"""

from __future__ import annotations

from dataclasses import dataclass

from ppvi.language.check import FLAT, CheckedModel, Extent


@dataclass(frozen=True)
class Node:
    name: str
    kind: str                     # latent | data | param | const
    shape: tuple[Extent, ...]
    support: str
    prior: str | None             # the distribution it is drawn from (latent, observed data)
    scope: str | None             # latents: "local" | "global"
    approximation: str | None     # latents: "mean_field" | "point" | "jointly" (a chain's structured block) | "pair"
    factors: tuple[int, ...]      # factors it appears in


@dataclass(frozen=True)
class FactorNode:
    id: int
    dist: str
    target: str
    plates: tuple[tuple[str, str], ...]
    variables: tuple[str, ...]    # target first, then the parents
    observed: bool
    line: int
    text: str                     # the statement as written


@dataclass(frozen=True)
class Plate:
    dim: str
    default: int | None
    loop_vars: tuple[str, ...]
    factors: tuple[int, ...]


@dataclass(frozen=True)
class FactorGraph:
    model: CheckedModel
    nodes: dict[str, Node]
    factors: tuple[FactorNode, ...]
    plates: dict[str, Plate]
    data_plate: str | None
    blankets: dict[str, tuple[str, ...]]   # latent -> its Markov blanket (no constants)

    @property
    def name(self) -> str:
        return self.model.name

    def latents(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind == "latent"]


def _data_plate(model: CheckedModel) -> str | None:
    """The outermost plate shared by every observed factor, if there is one."""
    outer = {f.plates[0][1] if f.plates else None for f in model.factors if f.observed or f.partial}
    return outer.pop() if len(outer) == 1 else None


def build(model: CheckedModel) -> FactorGraph:
    """The factor graph of a checked model (one pass over the factors for each table: linear in its size)."""
    factors = tuple(
        FactorNode(f.id, f.dist, f.target, f.plates, (f.target,) + f.parents, f.observed, f.span.line,
                   model.statement(f))
        for f in model.factors)
    data_plate = _data_plate(model)
    uses: dict[str, list[int]] = {}
    for f in factors:
        for name in dict.fromkeys(f.variables):
            uses.setdefault(name, []).append(f.id)
    nodes: dict[str, Node] = {}
    for v in model.variables.values():
        prior = model.prior(v.name)
        scope = approx = None
        if v.kind == "latent":
            local = data_plate is not None and prior is not None and any(d == data_plate for _, d in prior.plates)
            scope = "local" if local else "global"
            approx = {"point": "point", "jointly": "jointly"}.get(model.approximations.get(v.name), "mean_field")
            if v.name in model.pairs or v.name in model.pairs.values():
                approx = "pair"         # (approximate mu, lam jointly: one Normal–Gamma q)
        nodes[v.name] = Node(v.name, v.kind, v.shape, v.support, prior.dist if prior and prior.dist != FLAT else None,
                             scope, approx,
                             tuple(uses.get(v.name, ())))
    loop_vars: dict[str, dict[str, None]] = {}
    in_plate: dict[str, list[int]] = {}
    for f in model.factors:
        for var, dim in f.plates:
            loop_vars.setdefault(dim, {})[var] = None
            in_plate.setdefault(dim, []).append(f.id)
    plates = {dim: Plate(dim, model.dims[dim].default, tuple(vs), tuple(in_plate[dim])) for dim, vs in loop_vars.items()}
    blankets = {}
    for n in nodes.values():
        if n.kind != "latent":
            continue
        seen: dict[str, None] = {}
        for fid in n.factors:
            for other in factors[fid].variables:
                if other != n.name and nodes[other].kind != "const":
                    seen[other] = None
        blankets[n.name] = tuple(seen)
    return FactorGraph(model, nodes, factors, plates, data_plate, blankets)
