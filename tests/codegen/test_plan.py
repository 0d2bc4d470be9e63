"""The typed interface between codegen and the engine (codegen.plan): the PLAN of every generated module, and
the one place array names are spelt (issue 16, item 3)."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from ppvi.codegen.emit import FIXED, CodegenError, literal
from ppvi.codegen.plan import PLAN_TYPES, ArrayNames, KernelSpec, LatentPlan, Plan

GOLDEN = Path(__file__).parent / "golden"


def _plan_of(source: str) -> tuple[str, Plan, dict[str, list[str]]]:
    """The text of a generated module's PLAN, the Plan it evaluates to with nothing in scope but the plan's
    classes, and the parameters of every function the module defines."""
    tree = ast.parse(source)
    [node] = [n for n in tree.body if isinstance(n, ast.Assign) and [t.id for t in n.targets] == ["PLAN"]]
    text = ast.get_source_segment(source, node.value)
    plan = eval(text, {"__builtins__": {}}, {t.__name__: t for t in PLAN_TYPES})   # (our own golden text)
    defs = {f.name: [a.arg for a in f.args.args] for f in tree.body if isinstance(f, ast.FunctionDef)}
    return text, plan, defs


def _specs(plan: Plan) -> list[KernelSpec]:
    out = [plan.elbo.kernel] + ([plan.elbo.fast] if plan.elbo.fast else [])
    for info in [*plan.latents.values(), *plan.points.values()]:
        out += [s for s in (info.update, getattr(info, "damped", None), info.local_step) if s is not None]
    out += [plan.stats.kernel] if plan.stats else []
    out += [plan.block.kernel] if plan.block else []
    return out


@pytest.mark.parametrize("golden", sorted(GOLDEN.glob("*.py.txt")), ids=lambda p: p.name[:-7])
def test_the_plan_of_every_generated_module_round_trips_and_names_its_kernels(golden):
    """Printed, evaluated and printed again, PLAN is the same text (the module constructs it from literals
    only); each kernel it calls is defined with exactly the arguments it passes; every array it names is a
    mangled one (a kind prefix: nothing the model wrote is a bare name of the module)."""
    text, plan, defs = _plan_of(golden.read_text())
    assert isinstance(plan, Plan) and literal(plan) == text
    assert dataclasses.replace(plan) == plan
    for spec in _specs(plan):
        assert defs.get(spec.name) == list(spec.args), spec.name
    arrays = {a for s in _specs(plan) for a in s.args} | {a for i in plan.latents.values() for a in i.state} | \
        set(plan.derived) | set(plan.missing.values()) | set(plan.stats.arrays if plan.stats else ())
    assert all(a[:2] in ("v_", "n_", "q_", "m_", "h_", "l_", "e_", "o_", "g_", "t_", "c_") for a in arrays)
    for var, info in plan.latents.items():
        assert all(isinstance(s, tuple) for s in info.state.values()) and set(info.aliases.values()) <= set(info.state)


def test_a_plan_prints_as_a_call_of_its_classes_with_escaped_strings():
    """A string a user wrote (a name, a factor's label) is escaped; only the plan's classes are called."""
    hostile = 'x"]; import os; os.system("echo")  # \u2028\n'
    plan = Plan({hostile: LatentPlan("Normal", KernelSpec("update_x", ("q_x__mean",)), {"q_x__mean": ("N",)}, {},
                                     "local", ("N",), None, False)}, {},
                dataclasses.replace(_elbo(), labels=(hostile,)))
    text = literal(plan)
    assert text.isascii() and "\n" not in text and eval(text, {"__builtins__": {}}, _scope()) == plan
    calls = {n.func.id for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Call)}
    assert calls <= {t.__name__ for t in PLAN_TYPES} and calls <= set(FIXED)


def test_only_the_plans_own_dataclasses_are_printed():
    @dataclasses.dataclass(frozen=True)
    class KernelSpec:          # (the same name, not the class)
        name: str
    with pytest.raises(CodegenError):
        literal(KernelSpec("x"))


def _elbo():
    from ppvi.codegen.plan import ElboPlan
    return ElboPlan(KernelSpec("expected_log_joint", ()), ())


def _scope() -> dict:
    return {t.__name__: t for t in PLAN_TYPES}


def test_array_names_are_read_back_as_they_are_spelt():
    """Names spelt by ArrayNames read back to what they were made of, whatever the user's name holds."""
    for name in ("x", "x__y", "_a", "v_x", "n_"):
        assert ArrayNames.variable_of(ArrayNames.variable(name)) == name
        assert ArrayNames.size_of(ArrayNames.size(name)) == name
        assert ArrayNames.snapshot_of(ArrayNames.snapshot(ArrayNames.moment(name, "x2"))) == ArrayNames.moment(name, "x2")
        assert ArrayNames.variable_of(ArrayNames.size(name)) is None and ArrayNames.size_of(ArrayNames.variable(name)) is None
        assert ArrayNames.is_statistic(ArrayNames.statistic(3)) and not ArrayNames.is_statistic(ArrayNames.variable(name))
        assert ArrayNames.natural_of_qparam(ArrayNames.qparam(name, "mean")) == ArrayNames.natural(name, "mean")
        assert ArrayNames.owned(name, "q", "p") == ArrayNames.qparam(name, "p")
        assert ArrayNames.owned(name, "h") == ArrayNames.entropy(name)
        assert ArrayNames.is_swept(ArrayNames.gradient(name)) and not ArrayNames.is_local_state(ArrayNames.gradient(name))
        assert ArrayNames.is_input(ArrayNames.variable(name)) and ArrayNames.is_input(ArrayNames.constant("inv", name))


def test_the_plan_imports_without_sympy_or_numba():
    """A warm run imports the cached module and its PLAN: the plan's module pulls in neither the compiler's
    algebra nor Numba."""
    code = "import sys, ppvi.codegen.plan; print('sympy' in sys.modules, 'numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
