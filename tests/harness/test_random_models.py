"""Random conjugate models (harness_models) through the whole harness: each must derive (conjugate by
construction: a refusal is a false one), generate, pass the structure checks and checks 2–4, and fit with
an ELBO that never decreases; with ``--long`` a few per group are also compiled, for check 1 and a
compiled fit.

A problem that is a known fault (harness_known.FAULTS, by the text of the problem; none today) is
recorded and the example ends there; any other fails the test at once.  A group
whose examples found known faults ends as xfail naming them; a group expected to find one that no longer
does fails, so the entry in harness_known goes with the fix (a strict xfail's flip).

CI runs few examples, derandomised and without shrinking (reproducible, bounded); ``--long`` runs
many more with Hypothesis's own randomness and shrinking.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, note, settings

import harness_checks as checks
from harness_cases import Case
from harness_checks import FalseRefusal, HarnessFailure
from harness_fit import fit_text
from harness_known import RANDOM_COMPILED, RANDOM_PYTHON, known_fault
from harness_models import GROUPS, models
from harness_state import build
from ppvi.errors import PPVIError

# examples per group: (CI, --long)
EXAMPLES = (10, 100)
COMPILED = (1, 10)
# groups compiled in CI: none (a compilation costs 30–60 s cold; check 1 runs in CI on test_kernels's
# COMPILED_IN_CI)
COMPILED_IN_CI: tuple[str, ...] = ()


def _settings(long: bool, counts: tuple[int, int]) -> settings:
    return settings(max_examples=counts[long], derandomize=not long, deadline=None, database=None,
                    phases=[Phase.explicit, Phase.generate] + ([Phase.shrink] if long else []),
                    suppress_health_check=list(HealthCheck), report_multiple_bugs=False)


class Found:
    """The known faults a group's examples met: reason -> the models that showed it."""

    def __init__(self):
        self.hits: dict[str, list[str]] = {}

    def triage(self, problems: list[str], spec, kind: type[AssertionError]) -> bool:
        """Record the known faults among ``problems``; raise ``kind`` for the others.  True if any was known."""
        unknown = [p for p in problems if known_fault(p) is None]
        if unknown:
            raise kind("\n".join(unknown[:20]) + f"\n{spec!r}")
        for p in problems:
            self.hits.setdefault(known_fault(p).reason, []).append(spec.text)
        return bool(problems)

    def conclude(self, expected: set[str], long: bool) -> None:
        gone = expected - set(self.hits)
        if gone and not long:
            pytest.fail(f"no example finds {sorted(gone)} any more: remove it from harness_known")
        if self.hits:
            pytest.xfail("known faults: " + "; ".join(f"{r} ({len(m)} models, e.g.\n{m[0]})"
                                                       for r, m in self.hits.items()))


def _subject(spec, python: bool, found: Found):
    note(repr(spec))
    try:
        return build(Case("random", spec.text, "hypothesis"), python=python)
    except PPVIError as e:
        found.triage([str(e)], spec, FalseRefusal)
        return None


def _fit(s, python: bool) -> list[str]:
    """Ten sweeps from the program's own start: no error (a lower ELBO is one, ElboDecrease), a finite ELBO."""
    return fit_text(s.case.text, s.data, s.dims, python=python, max_iter=10, path="random.ppvi").problems()


def _run(group: str, long: bool, counts: tuple[int, int], python: bool, expected: set[str]) -> None:
    """Every generated model of the group through the checks (plain Python: structure and checks 2–4;
    compiled: structure and check 1), then a fit; known faults recorded, others raised."""
    found = Found()

    @_settings(long, counts)
    @given(models(group))
    def run(spec):
        s = _subject(spec, python, found)
        if s is None:
            return
        if python:
            problems = checks.structure(s) + checks.updates_equal_derivation(s) + \
                checks.local_step_statistics(s) + checks.elbo_equals_reference(s)
        else:
            problems = checks.structure(s) + checks.compiled_equals_python(s)
        if not found.triage(problems, spec, HarnessFailure):
            found.triage(_fit(s, python), spec, HarnessFailure)

    run()
    found.conclude(expected, long)


@pytest.mark.parametrize("group", GROUPS)
def test_random_conjugate_models_derive_check_and_fit(group, harness_long):
    _run(group, harness_long, EXAMPLES, True, RANDOM_PYTHON.get(group, set()))


@pytest.mark.parametrize("group", GROUPS)
def test_random_conjugate_models_compiled(group, harness_long):
    if group not in COMPILED_IN_CI and not harness_long:
        pytest.skip("compiled with --long")
    _run(group, harness_long, COMPILED, False, RANDOM_COMPILED.get(group, set()))
