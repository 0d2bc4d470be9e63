"""Readable and JSON views of a factor graph (``ppvi check``)."""

from __future__ import annotations

import json

from ppvi.errors import shown
from ppvi.graph.factor_graph import FactorGraph
from ppvi.language.check import show_shape

_KIND_ORDER = {"latent": 0, "data": 1, "param": 2, "const": 3}


def _shape(shape) -> str:
    return "scalar" if not shape else show_shape(shape)


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def to_text(g: FactorGraph) -> str:
    m = g.model
    out = [f"model {g.name}  ({m.path})", ""]
    if m.dims:
        out.append("dims")
        rows = [[d.name, f"= {d.default} (default)" if d.default is not None else "from data"] for d in m.dims.values()]
        out += _table(rows) + [""]
    out.append("variables")
    rows = [["name", "kind", "shape", "support", "prior", "q"]]
    order = {name: i for i, name in enumerate(g.nodes)}
    for n in sorted(g.nodes.values(), key=lambda n: (_KIND_ORDER[n.kind], order[n.name])):
        q = ""
        if n.kind == "latent":
            q = f"{n.scope}, " + {"point": "point (MAP)", "jointly": "jointly (one block)",
                                  "pair": "jointly (one Normal–Gamma pair)"}.get(n.approximation, "mean field")
        prior = n.prior or ("none (`latent`)" if n.kind == "latent" else "")
        if n.kind == "data" and n.prior:
            prior += " (observed)"
        rows.append([n.name, n.kind, _shape(n.shape), n.support, prior, q])
    out += _table(rows) + [""]
    if g.plates:
        out.append("plates")
        rows = []
        for p in g.plates.values():
            note = "  <- data plate" if p.dim == g.data_plate else ""
            rows.append([p.dim, ", ".join(p.loop_vars), "factors " + ", ".join(f"f{i}" for i in p.factors) + note])
        out += _table(rows) + [""]
    out.append("factors")
    out += _table([[f"f{f.id}", f.text, f"line {f.line}"] for f in g.factors]) + [""]
    out.append("markov blankets")
    rows = [[f"{name}:", ", ".join(b) or "(none)"] for name, b in g.blankets.items()]
    out += _table(rows) if rows else ["  (no latent variables)"]
    # (a factor's text is its statement, without its comment, but a file name may hold anything: nothing of
    # the user's reaches the terminal raw)
    return "\n".join(map(shown, out)) + "\n"


def to_dict(g: FactorGraph) -> dict:
    m = g.model
    return {
        "model": g.name,
        "path": m.path,
        "dims": {d.name: d.default for d in m.dims.values()},
        "variables": {
            n.name: {"kind": n.kind, "shape": list(n.shape), "support": n.support, "prior": n.prior,
                     "scope": n.scope, "approximation": n.approximation, "factors": list(n.factors)}
            for n in g.nodes.values()},
        "plates": {p.dim: {"loop_vars": list(p.loop_vars), "factors": list(p.factors)} for p in g.plates.values()},
        "data_plate": g.data_plate,
        "factors": [{"id": f.id, "dist": f.dist, "target": f.target, "observed": f.observed,
                     "plates": [list(p) for p in f.plates], "variables": list(f.variables), "line": f.line,
                     "text": f.text} for f in g.factors],
        "markov_blankets": {k: list(v) for k, v in g.blankets.items()},
    }


def to_json(g: FactorGraph) -> str:
    return json.dumps(to_dict(g), indent=2) + "\n"
