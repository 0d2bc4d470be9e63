"""What checking a model costs: time linear in its size, no memory for the values of its constants."""

from __future__ import annotations

import time

import pytest

from ppvi.graph import build
from ppvi.graph.render import to_json, to_text
from ppvi.language import check
from ppvi.language.parser import parse


def _chain(n: int) -> str:
    """n draws, each reading the one before: the shape where the checker's passes were quadratic."""
    return "x0 ~ Normal(0, 1)\n" + "".join(f"x{i} ~ Normal(x{i - 1}, 1)\n" for i in range(1, n))


def _cpu_seconds(module) -> float:
    """The checker, the factor graph and both of its renderings (best of two: the machine is shared)."""
    best = float("inf")
    for _ in range(2):
        start = time.process_time()
        graph = build(check(module))
        to_text(graph), to_json(graph)
        best = min(best, time.process_time() - start)
    return best


def test_check_time_grows_linearly_with_the_number_of_draws():
    """10⁴ chained draws took 25 s: the draw order (Kahn's algorithm rescanning every pending draw), each
    variable's factors, its prior and the render's sort were each a scan of the whole model per variable."""
    small, large = parse(_chain(1000)), parse(_chain(4000))
    ratio = _cpu_seconds(large) / _cpu_seconds(small)
    assert ratio < 8, f"4× the draws cost {ratio:.1f}× the time (linear: about 4×, quadratic: 16×)"


def test_a_long_cycle_is_reported_in_linear_time():
    n = 3000
    text = f"x0 ~ Normal(x{n - 1}, 1)\n" + "".join(f"x{i} ~ Normal(x{i - 1}, 1)\n" for i in range(1, n))
    from ppvi.errors import PPVIError

    start = time.process_time()
    with pytest.raises(PPVIError, match="the model is cyclic: x0 <- x2999 <- x2998"):
        check(parse(text))
    assert time.process_time() - start < 10
