"""The kernel IR as readable text: ``ppvi derive MODEL --dump kernels|statistics|schedule|sums [--after PASS]``."""

from __future__ import annotations

import sympy as sp

from ppvi.codegen.ir import If, Kernel, Loop, Module, PlateSum
from ppvi.codegen.printer import body_lines, comment, range_header

PAD = "  "


def dump(m: Module, what: str) -> str:
    """``what``: kernels, statistics, schedule, sums or rewrites."""
    return {"kernels": kernels, "statistics": statistics, "schedule": schedule, "sums": sums,
            "rewrites": rewrites}[what](m)


def kernels(m: Module) -> str:
    return "\n".join(_kernel(k) for k in m.kernels)


def _kernel(k: Kernel) -> str:
    flags = [f for f, on in (("parallel", k.parallel), ("contract", k.contract)) if on]
    head = f"kernel {k.name}  [{k.role}{' of ' + k.latent if k.latent else ''}{''.join(', ' + f for f in flags)}]"
    lines = [head] + ([f"{PAD}{comment(k.doc)}"] if k.doc else []) + [f"{PAD}params {', '.join(k.params) or '-'}"]
    lines += body_lines(k.body, 1, PAD, _head)
    if k.returns:
        lines.append(f"{PAD}return {k.returns}")
    return "\n".join(lines) + "\n"


def _head(node: Loop | If) -> str:
    """A loop with what it runs over; no colons."""
    if isinstance(node, Loop):
        return range_header(node.range)[:-1] + (f"  # over {node.axis}" if node.axis else "")
    return f"if {node.test.text}"


def statistics(m: Module) -> str:
    """Every statistic of the local step: its array, shape and the sum it holds."""
    if not m.statistics:
        return "no statistics (nothing sums over the data plate)\n"
    out = []
    for s in m.statistics:
        notes = ([f"scattered by {s.scatter}"] if s.scatter else []) + \
            ([f"symmetric in axes {s.mirror[0]}, {s.mirror[1]}"] if s.mirror else [])
        shape = ", ".join(str(x) for x in s.shape)
        out.append(f"{s.name}[{shape}] = {s.expr}" + (f"  ({'; '.join(notes)})" if notes else ""))
    return "\n".join(out) + "\n"


def schedule(m: Module) -> str:
    """What the engine runs, in order: each latent's and param's update, the local step, the ELBO."""
    p = m.plan
    out = []
    for var, info in p.latents.items():
        extras = [f"{k} {spec.name}" for k, spec in (("damped", info.damped), ("local_step", info.local_step))
                  if spec is not None]
        if info.colour is not None:
            extras.append(f"colour {info.colour.name} (two colours: " + (
                f"where the graph of {', '.join(info.pattern)} is bipartite)" if info.pattern else
                "the parity of the indices' sum)"))
        out.append(f"q({var}): {info.family}, {info.scope}"
                   f"{', sequential' if info.sequential else ''}{', feeds the statistics' if info.feeds else ''}"
                   f" -> {info.update.name}" + "".join(f"; {e}" for e in extras))
    for var, info in p.points.items():
        extra = f"; local_step {info.local_step.name}" if info.local_step else ""
        out.append(f"{info.kind} {var}: {info.method}{', sequential' if info.sequential else ''}"
                   f"{', feeds the statistics' if info.feeds else ''} -> {info.update.name}{extra}")
    if p.stats:
        out.append(f"statistics: {', '.join(p.stats.arrays)} -> {p.stats.kernel.name}")
    if p.block:
        b = p.block
        out.append(f"group block ({b.name}) over {b.groups} by {b.by}, rows {', '.join(b.rows)} "
                   f"-> {b.kernel.name}")
    # what the passes have still to choose from (before linear_eta, group_block, factored_softmax and fuse)
    out += [f"candidate group block ({b.name}) over {b.groups} by {b.by} -> {b.kernel.name}" for b in m.blocks]
    out += [f"candidate local step: q({s.latent})'s update with its share of the statistics" for s in m.shares]
    out += [f"candidate factored softmax of the group block of q({f.latent}) -> {f.kernel.name}" for f in m.factored]
    out += [f"candidate two colours of q({c.var}) by "
            f"{'the graph of ' + ', '.join(c.pattern) if c.pattern else 'parity'} -> {c.kernel.name}"
            for c in m.colourings]
    out += [f"candidate η of q({c.latent}) in {c.kernel} summed for each element, not as features × weights "
            f"({', '.join(c.weights)})" for c in m.linear]
    elbo = p.elbo
    out.append(f"elbo: {len(elbo.labels)} terms -> {elbo.kernel.name}")
    if elbo.fast:
        out.append(f"elbo after q({elbo.fast_after})'s update -> {elbo.fast.name}")
    if p.exact_em:
        out.append("exact EM: the ELBO after the local step is the log-likelihood")
    return "\n".join(out) + "\n"


def sums(m: Module) -> str:
    """Every sum over the data plate the sum stage shaped, then its parts after each sum rule (codegen.rewrite):
    what each rule made of it, the statistics and loops the kernels were then written from; then where the
    writer computes each sum, inside which loops (the stage's ir.SumPlace)."""
    return _shapes(m) + _places(m)


def _places(m: Module) -> str:
    """Each sum the stage placed, the indices of the loops it is written in, and how and where it is computed."""
    out = ["where each sum is computed (the sum stage):"] if m.places else []
    for (s, ctx, _), place in m.places:
        loops = ", ".join(str(i) for i in ctx if i is not None)
        how = f"{place.how} at level {place.at}" if place.how in ("loop", "shaped") else place.how
        out.append(f"{PAD}{sp.sstr(s)}  in [{loops}]: {how}")
    return "\n".join(out) + "\n" if out else ""


def _shapes(m: Module) -> str:
    if not m.sums:
        return "no sums over the data plate\n"
    out = []
    for whole, stages in m.sums:
        out.append(_sum(whole))
        before = (whole,)
        for name, parts in stages:
            if parts != before:
                out.append(f"{PAD}after {name}: " + " * ".join(_sum(p) for p in parts))
            before = parts
        if before == (whole,):
            out.append(f"{PAD}(no sum rule changes it)")
    return "\n".join(out) + "\n"


def _sum(s: PlateSum) -> str:
    """Σ over the limits of the factors; a part with ``outer`` limits as Σ_outer [Σ_inner …]."""
    def over(limits) -> str:
        return "sum_{" + ", ".join(f"{i}={sp.sstr(lo)}..{sp.sstr(hi)}" for i, lo, hi in limits) + "}"
    body = " * ".join(sp.sstr(f) for f in s.factors) or "1"
    inner = f"{over(s.limits)} {body}" if s.limits else body
    return f"{over(s.outer)} [{inner}]" if s.outer else f"({inner})"


def rewrites(m: Module) -> str:
    """Every expression the writer was given that a rule of codegen.rewrite.REWRITES changed, then the expression
    after each rule that changed it; the count of those no rule changed (the sum rules' stages: ``sums``)."""
    out, kept = [], 0
    for e, stages in m.rewrites:
        before, lines = e, []
        for name, after in stages:
            if after != before:
                lines.append(f"{PAD}after {name}: {sp.sstr(after)}")
            before = after
        if lines:
            out += [sp.sstr(e)] + lines
        else:
            kept += 1
    out.append(f"({kept} expression{'' if kept == 1 else 's'} no rule changes)")
    return "\n".join(out) + "\n"
