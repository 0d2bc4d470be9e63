"""The compiled Newton update of a Normal q inside an exp link (docs/derivation.md, section 10)."""

from __future__ import annotations

from ppvi.errors import Reporter


def refuse_newton(d) -> None:
    """Kernels for a Newton q are not written yet: a positioned error, never a wrong update."""
    for q in d.q.values():
        if q.newton is not None:
            f = d.model.factors[q.newton.links[0]]
            raise Reporter(d.model.path, d.model.text).fail(
                f"kernel generation does not handle exp links yet: q(`{q.var}`) is updated by Newton steps",
                f.span, "`ppvi derive` shows the derivation; the reference evaluator (ppvi.derive.newton) fits it")
