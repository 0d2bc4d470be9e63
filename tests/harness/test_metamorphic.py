"""Metamorphic checks: renaming every name a model chose, or reordering its independent statements, must
give the same fit bit for bit (ELBO trace, q, params), in both schedules.

Fits run the generated kernels as plain Python (harness_fit): a name that changes the fit does so in the
generated source, operation for operation, without a compilation per rewrite.  By default each case of
harness_cases.CHECKED_IN_CI meets one rewrite, chosen by its name's hash (every strategy meets several cases,
and a case keeps its rewrite as the corpus grows), and short fits; every case still fits once (the rewrites
compare with it); ``--long`` runs every rewrite of every case.

A difference a known fault explains (harness_known.rewrite_fault: a schedule or a rounding that follows the
statements' order) ends as xfail naming it; the cases CI runs that
show one carry a strict xfail (harness_known.REWRITES), so the fix flips them.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from harness_cases import CHECKED_IN_CI, Case, corpus, data_for
from harness_fit import differences, fit_text
from harness_known import FITS, REFUSED, REWRITES, rewrite_fault
from harness_rename import STRATEGIES, names, rename, reorder

CASES = [c for c in corpus() if not (c.refused or c.chains) and c.name not in REFUSED]
ORDER = list(STRATEGIES) + ["reorder_declarations", "reorder_draws"]
# sweeps of the sequential and the damped fits: (CI, --long)
SWEEPS = {False: (12, 5), True: (25, 6)}


def _variants(long: bool, every: bool = False) -> list:
    out = []
    for c in CASES:
        if not (long or every or c.name in CHECKED_IN_CI):
            continue
        chosen = ORDER if long else [ORDER[zlib.crc32(c.name.encode()) % len(ORDER)]]
        for s in chosen:
            marks = [pytest.mark.xfail(strict=True, reason=REWRITES[(c.name, s)])] if (c.name, s) in REWRITES else []
            out.append(pytest.param((c, s), id=f"{c.name}-{s}", marks=marks))
    return out


def pytest_generate_tests(metafunc):
    if "variant" in metafunc.fixturenames:
        long = metafunc.config.getoption("--long", default=False)
        metafunc.parametrize("variant", _variants(long, metafunc.config.getoption("--harness-every-case")))


def _fits(text: str, mapping: dict[str, str], data: dict, dims: dict, long: bool) -> tuple:
    data = {mapping.get(k, k): v for k, v in data.items()}
    dims = {mapping.get(k, k): v for k, v in dims.items()}
    seq, damped = SWEEPS[long]
    return (fit_text(text, data, dims, max_iter=seq), fit_text(text, data, dims, damping=0.5, max_iter=damped))


class _Originals:
    """A case's data and fits, made once per module, all with the sweeps of one mode (``long``): a rewrite's
    fits are made with the same (CI's against --long's differed in length, which --long reported as a
    difference)."""

    def __init__(self, long: bool):
        self.long = long
        self._made: dict[str, tuple] = {}

    def __call__(self, case: Case) -> tuple:
        if case.name not in self._made:
            from ppvi.language import loads

            data, dims = data_for(case, loads(case.text, "harness.ppvi"), np.random.default_rng(0))
            self._made[case.name] = (data, dims, _fits(case.text, {}, data, dims, self.long))
        return self._made[case.name]


@pytest.fixture(scope="module")
def original(harness_long):
    return _Originals(harness_long)


def _check(original: _Originals, case: Case, text: str, mapping: dict[str, str], strategy: str) -> None:
    """The rewritten model's fits against the original's, bit for bit; a difference a known fault explains
    ends as xfail naming it."""
    data, dims, fits = original(case)
    rewritten = _fits(text, mapping, data, dims, original.long)
    problems = [f"{schedule}: {p}" for schedule, a, b in zip(("sequential", "damped"), fits, rewritten)
                for p in differences(a, b, mapping)]
    if problems:
        reason = rewrite_fault(strategy, case.text, fits, rewritten)
        if reason:
            pytest.xfail(f"{reason}: {problems[0]}")
    assert not problems, "\n".join(problems) + f"\nrewritten model:\n{text}"


def _fit_cases() -> list:
    return [pytest.param(c, id=c.name, marks=[pytest.mark.xfail(strict=True, reason=FITS[c.name])]
                         if c.name in FITS else []) for c in CASES]


@pytest.mark.parametrize("case", _fit_cases())
def test_the_fit_ends_without_an_error(case, original):
    """Every case fits (the rewrites below compare with it): no internal fault, no ELBO decrease under the
    sequential schedule (cavi raises ElboDecrease), a finite ELBO in both schedules."""
    _, _, (seq, damped) = original(case)
    problems = [f"sequential: {p}" for p in seq.problems()] + [f"damped: {p}" for p in damped.problems()]
    assert not problems, "\n".join(problems)


def test_a_rewrite_gives_the_same_fit_bit_for_bit(variant, original):
    case, strategy = variant
    if strategy.startswith("reorder_"):
        text, mapping = reorder(case.text, np.random.default_rng(len(case.text)), strategy[len("reorder_"):]), {}
    else:
        mapping = STRATEGIES[strategy](names(case.text))
        text = rename(case.text, mapping)
    _check(original, case, text, mapping, strategy)


# ------------------------------------------------------------------ issue 14 item 5's reproductions (fixed)
LDA = next(c for c in CASES if c.name == "models/lda")


def test_lda_with_its_document_index_named_m(original):
    """The issue's reproduction: `for d in M` renamed `for m in M` (m sorts after k) kept its group block."""
    _check(original, LDA, rename(LDA.text, {"d": "m"}), {"d": "m"}, "")


TWO_MEANS = Case("harness:two_means", """
dim N
data x[N]
a ~ Normal(0, sd = 10)
b ~ Normal(0, sd = 10)
for n in N:
    x[n] ~ Normal(a + b, 1)
""", "harness")


def test_latents_named_mu_and_mu_damped(original):
    mapping = {"a": "mu", "b": "mu_damped"}
    _check(original, TWO_MEANS, rename(TWO_MEANS.text, mapping), mapping, "")


BSC = next(c for c in CASES if c.name == "models/binary_sparse_coding")


def test_binary_sparse_coding_renamed_in_reverse_order_bit_for_bit(original):
    """The rounding of a fit no longer follows the names: every bit of the ELBO trace stays."""
    from harness_rename import reversed_order

    mapping = reversed_order(names(BSC.text))
    _check(original, BSC, rename(BSC.text, mapping), mapping, "")


@pytest.mark.parametrize("mapping", [{"a": "_a"}, {"a": "y__y", "b": "y"}, {"a": "a__", "b": "__b"}],
                         ids=["leading", "double", "trailing"])
def test_latents_named_with_underscores_under_damping(original, mapping):
    """A name with a leading, double or trailing underscore: the damped schedule finds q's arrays by
    (latent, parameter), never by cutting a name at `__` (a KeyError before)."""
    data, dims, fits = original(TWO_MEANS)
    problems = [p for a, b in zip(fits, _fits(rename(TWO_MEANS.text, mapping), mapping, data, dims, original.long))
                for p in differences(a, b, mapping)]
    assert not problems, problems
