"""Checks 1–4 of the harness (issue 14, build 1) over every model of the corpus, at a random valid state.

See harness_checks for what each check compares.  A case that fails today for a known fault carries an
xfail(strict=True) naming it, so CI stays green and the fix flips it.
"""

from __future__ import annotations

import pytest

import harness_checks as checks
from harness_cases import WHOLE_IN_CI, corpus
from harness_known import KERNELS, REFUSED as REFUSED_TODAY
from ppvi.errors import PPVIError

CASES = corpus()
MODELS = [c for c in CASES if not c.refused]
REFUSED = [c for c in CASES if c.refused]


def cases(check: str) -> list:
    out = []
    for c in MODELS:
        marks = []
        if c.name in REFUSED_TODAY:
            marks.append(pytest.mark.xfail(strict=True, reason=REFUSED_TODAY[c.name], raises=PPVIError))
        elif (c.name, check) in KERNELS:
            marks.append(pytest.mark.xfail(strict=True, reason=KERNELS[(c.name, check)], raises=AssertionError))
        elif c.known:
            # (a corpus case's own known failure: not necessarily one these checks see)
            marks.append(pytest.mark.xfail(strict=False, reason=c.known))
        out.append(pytest.param(c, id=c.name, marks=marks))
    return out


def _report(problems: list[str]) -> None:
    assert not problems, "\n".join(problems[:20]) + (f"\n… and {len(problems) - 20} more" if len(problems) > 20
                                                     else "")


@pytest.fixture
def subject(request, built, harness_long):
    """The case built, compiled whole or only in the kernels a fit runs (harness_cases.WHOLE_IN_CI)."""
    case = request.getfixturevalue("case")
    s = built(case)
    whole = harness_long or case.name.startswith(WHOLE_IN_CI)
    s.compiled = None if whole else checks.fit_kernels(s)
    return s


@pytest.mark.parametrize("case", cases("structure"))
def test_one_kernel_per_plan_entry_and_linear_statistics(case, subject):
    _report(checks.structure(subject))


@pytest.mark.parametrize("case", cases("compiled"))
def test_compiled_kernels_equal_plain_python(case, subject):
    _report(checks.compiled_equals_python(subject, subject.compiled))


@pytest.mark.parametrize("case", cases("derivation"))
def test_updates_equal_the_derived_natural_parameters(case, subject):
    _report(checks.updates_equal_derivation(subject))


@pytest.mark.parametrize("case", cases("statistics"))
def test_a_local_step_leaves_the_statistics_of_a_fresh_pass(case, subject):
    _report(checks.local_step_statistics(subject))


@pytest.mark.parametrize("case", cases("elbo"))
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
