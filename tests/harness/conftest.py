"""The harness's shared fixtures: each case built once per run, and the run's length.

``pytest --long`` (registered in tests/conftest.py) runs every rewrite of every case and more random
models, with Hypothesis's shrinking; by default the rewrites rotate over the cases and Hypothesis is
derandomised with few examples, so CI stays bounded and reproducible.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def harness_long(request) -> bool:
    return bool(request.config.getoption("--long", default=False))


class Built:
    """Subjects by case name, built on first use (a failure to build is kept and raised again)."""

    def __init__(self):
        self._made: dict[str, object] = {}

    def __call__(self, case):
        from harness_state import build

        if case.name not in self._made:
            try:
                self._made[case.name] = build(case)
            except Exception as e:      # (raised again for every check of the case)
                self._made[case.name] = e
        made = self._made[case.name]
        if isinstance(made, Exception):
            raise made
        return made


@pytest.fixture(scope="session")
def built() -> Built:
    return Built()
