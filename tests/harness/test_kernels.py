"""Checks 1–4 of the harness (issue 14, build 1) over the models of the corpus, at a random valid state.

See harness_checks for what each check compares.  CI checks the cases of harness_cases.CHECKED_IN_CI (every
corpus model still derives, generates and fits in CI: test_metamorphic); ``--long`` every case.  A
case that fails today for a known fault carries an xfail(strict=True) naming it, so CI stays green and the
fix flips it.
"""

from __future__ import annotations

import pytest

import harness_checks as checks
from harness_cases import CHECKED_IN_CI, COMPILED_IN_CI, corpus
from harness_known import GAPS, KERNELS, REFUSED as REFUSED_TODAY
from ppvi.errors import PPVIError

CASES = corpus()
REFUSED = [c for c in CASES if c.refused]
CHAINS = [c for c in CASES if c.chains]
CHECKS = {"test_one_kernel_per_plan_entry_and_linear_statistics": "structure",
          "test_compiled_kernels_equal_plain_python": "compiled",
          "test_updates_equal_the_derived_natural_parameters": "derivation",
          "test_a_local_step_leaves_the_statistics_of_a_fresh_pass": "statistics",
          "test_compiled_elbo_equals_the_reference_elbo": "elbo"}


def cases(check: str, long: bool, every: bool = False) -> list:
    """The cases of a check: CHECKED_IN_CI, or every case (``--long``, ``--harness-every-case``)."""
    out = []
    for c in CASES:
        if c.refused or c.chains or not (long or every or c.name in CHECKED_IN_CI):
            continue
        marks = []
        if c.name in REFUSED_TODAY:
            marks.append(pytest.mark.xfail(strict=True, reason=REFUSED_TODAY[c.name], raises=PPVIError))
        elif (c.name, check) in KERNELS:
            marks.append(pytest.mark.xfail(strict=True, reason=KERNELS[(c.name, check)], raises=AssertionError))
        elif (c.name, check) in GAPS:
            marks.append(pytest.mark.xfail(strict=True, reason=GAPS[(c.name, check)]))
        out.append(pytest.param(c, id=c.name, marks=marks))
    return out


def pytest_generate_tests(metafunc):
    if metafunc.function.__name__ in CHECKS:
        long = metafunc.config.getoption("--long", default=False)
        every = metafunc.config.getoption("--harness-every-case", default=False)
        metafunc.parametrize("case", cases(CHECKS[metafunc.function.__name__], long, every))


def _report(problems: list[str]) -> None:
    assert not problems, "\n".join(problems[:20]) + (f"\n… and {len(problems) - 20} more" if len(problems) > 20
                                                     else "")


@pytest.fixture
def subject(request, built, harness_long):
    """The case built: its kernels compiled (COMPILED_IN_CI; every case with --long) or run as plain
    Python."""
    case = request.getfixturevalue("case")
    s = built(case)
    s.python = not (harness_long or case.name in COMPILED_IN_CI)
    return s


def test_one_kernel_per_plan_entry_and_linear_statistics(case, subject):
    _report(checks.structure(subject))


def test_compiled_kernels_equal_plain_python(case, subject):
    if subject.python:
        pytest.skip("compiled in CI: " + ", ".join(COMPILED_IN_CI) + " (every case with --long)")
    _report(checks.compiled_equals_python(subject))


def test_updates_equal_the_derived_natural_parameters(case, subject):
    _report(checks.updates_equal_derivation(subject))


def test_a_local_step_leaves_the_statistics_of_a_fresh_pass(case, subject):
    _report(checks.local_step_statistics(subject))


def test_compiled_elbo_equals_the_reference_elbo(case, subject):
    _report(checks.elbo_equals_reference(subject))


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in REFUSED])
def test_non_conjugate_models_are_refused_as_a_users_mistake(case):
    """derive refuses them with a located PPVIError (never an internal error)."""
    from ppvi.derive import derive
    from ppvi.language import loads

    with pytest.raises(PPVIError) as err:
        derive(loads(case.text, f"{case.name}.ppvi"))
    assert f"{case.name}.ppvi:" in str(err.value) and ": error: " in str(err.value)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CHAINS])
def test_chains_not_handled_yet_are_refused_as_a_users_mistake(case):
    """A chain outside the blocks ppvi derives (ppvi.derive.chain.refusal, gaussian_refusal: a second-order
    one, a chain of scalars approximated jointly): compiling it is a located PPVIError."""
    from ppvi.codegen.cache import load
    from ppvi.language import loads

    with pytest.raises(PPVIError) as err:
        load(loads(case.text, f"{case.name}.ppvi"))
    assert f"{case.name}.ppvi:" in str(err.value) and ": error: " in str(err.value)
