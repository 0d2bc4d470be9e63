"""A derivation does not depend on how loop and summation variables are spelled (issue 14, item 5).

Every loop and `sum` variable of a model is renamed, once to names that sort
before every other index and once to names that sort after them.  The
derived natural parameters, expected log joint and point updates must be the
same expressions once the generic element indices are mapped onto each other:
summation indices are named by position (``canonical``), so nothing else may
differ.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sympy as sp

from conftest import MODELS
from ppvi.derive.meanfield import derive
from ppvi.language import loads

LITERATURE = Path(__file__).parent / "literature"
# the examples both ways; the literature models one way each, alternately (they take longer to derive)
CASES = ([(p, prefix) for p in sorted(MODELS.glob("*.ppvi")) for prefix in ("a_", "zz_")]
         + [(p, ("a_", "zz_")[i % 2]) for i, p in enumerate(sorted(LITERATURE.glob("*.ppvi")))])


def _loop_names(text: str) -> list[str]:
    return list(dict.fromkeys(re.findall(r"\bfor\s+(\w+)\s+in\b", text) + re.findall(r"\bsum\(\s*(\w+)\s+in\b", text)))


def _renamed(text: str, prefix: str) -> str:
    code = "\n".join(line.split("#")[0] for line in text.splitlines())
    for i, name in enumerate(_loop_names(code)):
        code = re.sub(rf"\b{name}\b", f"{prefix}{i}", code)
    return code


def _generic(q) -> tuple:
    return q.index + q.event + ((q.extra,) if q.extra is not None else ())


@pytest.mark.parametrize("path, prefix", CASES, ids=[f"{p.stem}-{x}" for p, x in CASES])
def test_derivation_is_the_same_under_renamed_indices(path, prefix):
    text = path.read_text()
    plain = "\n".join(line.split("#")[0] for line in text.splitlines())
    first, second = derive(loads(plain, path.name)), derive(loads(_renamed(text, prefix), path.name))
    assert list(first.q) == list(second.q)
    for var, q1 in first.q.items():
        q2 = second.q[var]
        assert q1.family == q2.family
        back = dict(zip(_generic(q2), _generic(q1)))
        for stat, eta in q1.natural.items():
            assert q2.natural[stat].xreplace(back) == eta, (var, stat)
    for fid, e in first.expected.items():
        assert second.expected[fid] == e, fid
    for var, p1 in first.points.items():
        p2 = second.points[var]
        assert p1.method == p2.method
        assert p2.value.xreplace(dict(zip(p2.index, p1.index))) == p1.value, var
