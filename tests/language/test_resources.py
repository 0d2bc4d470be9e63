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


# A 7-line model whose constant has 2³¹ − 1 entries: `ppvi check` asked for 16 GiB (issue 21, item 11).
HUGE = ("dim N\ndim K = 2147483647\nconst a[K] = 1.0\nconst p[K] = 1 / K\ndata y[N] : index(K)\n"
        "pi ~ Dirichlet(a)\nfor n in N:\n    y[n] ~ Categorical(pi)\n")


def _limited(args, cwd, gib: int):
    """``python -m ppvi ARGS`` with its address space limited to ``gib`` GiB: an allocation at dim size fails
    there instead of taking the machine's memory."""
    import os
    import resource
    import subprocess
    import sys

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (gib << 30, gib << 30))

    return subprocess.run([sys.executable, "-m", "ppvi", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          preexec_fn=limit, timeout=600, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})


def test_check_allocates_nothing_at_dim_size(tmp_path):
    """The checker reads a constant's value (a negative sd is an error before any data), never K copies of it."""
    (tmp_path / "m.ppvi").write_text(HUGE)
    proc = _limited(["check", "m.ppvi"], tmp_path, 2)
    assert proc.returncode == 0, proc.stderr
    assert "K  = 2147483647 (default)" in proc.stdout


def test_check_still_reads_a_compact_constant():
    """A scalar filling a huge shape is still checked: its entries sum to K·p along a simplex's axis."""
    from ppvi.errors import PPVIError

    bad = HUGE.replace("2147483647", "1000000").replace("pi ~ Dirichlet(a)", "pi ~ Dirichlet(a - 2)")
    with pytest.raises(PPVIError, match="`alpha` of Dirichlet must be positive, got -1"):
        check(parse(bad))
    uniform = "dim N\ndim K = 1000000\nconst p[K] = 1 / K\ndata y[N] : index(K)\nfor n in N:\n    y[n] ~ Categorical(p)\n"
    check(parse(uniform))
    with pytest.raises(PPVIError, match="`p` of Categorical must be non-negative and sum to 1"):
        check(parse(uniform.replace("1 / K", "2 / K")))


def test_a_constant_too_large_to_allocate_is_a_user_error_at_run_time(tmp_path):
    (tmp_path / "m.ppvi").write_text(HUGE)
    (tmp_path / "m.csv").write_text("y\n1\n0\n2\n")
    proc = _limited(["run", "m.ppvi", "--quiet"], tmp_path, 6)
    assert proc.returncode == 2, proc.stderr
    # the sizes' memory estimate (ppvi/io/data.py) refuses first where the machine has less than the ~48 GiB
    # the model would need; elsewhere the constant's bound does
    assert proc.stderr.startswith(("m.ppvi:3:7: error: this constant would have 2,147,483,647 entries",
                                   "m.csv: error: these sizes need at least")), proc.stderr


def test_fill_refuses_a_constant_over_its_bound_before_allocating():
    """The run-time bound itself, whatever the machine's memory: 2³⁰ + 1 entries is refused at the name."""
    from ppvi.errors import PPVIError, Reporter, Span
    from ppvi.language import ast, consts

    text = "dim K\nconst a[K] = 1.0\n"
    one = ast.Num(1.0, False, Span(2, 14, 2, 17))
    with pytest.raises(PPVIError, match=r"m.ppvi:2:7: error: this constant would have 1,073,741,825 entries"):
        consts.fill(one, (2**30 + 1,), {"K": 2**30 + 1}, {}, rep=Reporter("m.ppvi", text), span=Span(2, 7, 2, 8))
    assert consts.fill(one, (3,), {"K": 3}, {}, rep=Reporter("m.ppvi", text), span=Span(2, 7, 2, 8)).tolist() == [1.0] * 3


def test_a_constant_vector_that_does_not_fit_its_dims_is_a_user_error_at_run_time():
    """`const m0[D] = [1.0, -2.0]` with D = 3 from the data: an internal NotConstant before (found by the harness
    on tests/simulate/test_sampling.py's covariates model); now the constant's name, its length and the dims."""
    from ppvi.errors import PPVIError, Reporter, Span
    from ppvi.language import ast, consts

    text = "dim D\nconst m0[D] = [1.0, -2.0]\n"
    two = ast.Vector((ast.Num(1.0, False, Span(2, 16, 2, 19)), ast.Num(-2.0, False, Span(2, 21, 2, 25))),
                     Span(2, 15, 2, 26))
    with pytest.raises(PPVIError, match=r"m.ppvi:2:15: error: this value has shape \[2\], but the constant is "
                                        r"declared \[3\] \(with the sizes of this run\)"):
        consts.fill(two, (3,), {"D": 3}, {}, rep=Reporter("m.ppvi", text), span=Span(2, 7, 2, 9))
