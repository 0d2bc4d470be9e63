"""The harness's checks can fail: each one, handed a module or derivation with one fault planted, names it.

Kernels run as plain Python here (no compilation); a planted fault is a wrapper that runs the kernel and then
nudges one array it writes, or a derivation with one expression changed.
"""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest
import sympy as sp

import harness_checks as checks
from harness_cases import ROOT, Case, example_cases
from harness_fit import Outcome, differences
from harness_rename import STRATEGIES, names, rename, reorder
from harness_state import build, copy_state

EXAMPLES = {c.name: c for c in example_cases()}


class _Plain:
    """A kernel as plain Python on both sides: called, and as ``py_func`` (nothing compiles)."""

    def __init__(self, fn):
        self.py_func = fn

    def __call__(self, *values):
        return self.py_func(*values)


class _Nudged(_Plain):
    """A kernel that runs, then adds ``by`` to entry 0 of the argument ``target``: as ``py_func`` (what checks
    2–4 run in plain Python) and, unless ``compiled_only``, when called (check 1's compiled side)."""

    def __init__(self, fn, args: list[str], target: str, by: float, compiled_only: bool):
        def nudged(*values):
            out = fn(*values)
            values[args.index(target)].reshape(-1)[0] += by
            return out

        super().__init__(fn if compiled_only else nudged)
        self.nudged = nudged

    def __call__(self, *values):
        return self.nudged(*values)


def _plain(module) -> types.SimpleNamespace:
    from harness_state import kernels

    out = types.SimpleNamespace(**vars(module))
    for name, k in kernels(module).items():
        setattr(out, name, _Plain(k.py_func))
    return out


@pytest.fixture(scope="module")
def mixture():
    s = build(EXAMPLES["models/gmm_1d"], python=True)
    return dataclasses.replace(s, module=_plain(s.module))


def _planted(s, kernel: str, target: str, by: float, compiled_only: bool = False):
    """The subject with ``kernel`` nudged (a copy: the module fixture stays intact)."""
    module = types.SimpleNamespace(**vars(s.module))
    info = next(i for _, _, i in s.kernel_infos() if i.name == kernel)
    setattr(module, kernel, _Nudged(getattr(s.module, kernel).py_func, info.args, target, by, compiled_only))
    return dataclasses.replace(s, module=module, base=copy_state(s.base))


def test_the_unplanted_module_passes(mixture):
    assert checks.structure(mixture) == []
    assert checks.updates_equal_derivation(mixture) == []
    assert checks.local_step_statistics(mixture) == []
    assert checks.elbo_equals_reference(mixture) == []


def test_check_1_sees_a_compiled_kernel_off_by_1e_10(mixture):
    s = _planted(mixture, "update_mu", "q_mu__mean", 1e-10, compiled_only=True)
    found = checks.compiled_equals_python(s)
    assert len(found) == 1 and "update_mu" in found[0] and "q_mu__mean" in found[0]


def test_check_2_sees_an_update_that_is_not_the_derived_one(mixture):
    s = _planted(mixture, "update_tau", "q_tau__rate", 1e-6)
    found = checks.updates_equal_derivation(s)
    assert any("update_tau" in p and "η[x]" in p for p in found)
    assert any("moment `m_tau__x`" in p for p in found)       # (the moments no longer follow q either)


def test_check_2_sees_a_derivation_that_is_not_the_update(mixture):
    d = mixture.derivation
    q = d.q["pi"]
    changed = dataclasses.replace(q, natural={"logp": q.natural["logp"] + sp.Rational(1, 10 ** 7)})
    s = dataclasses.replace(mixture, derivation=dataclasses.replace(d, q={**d.q, "pi": changed}))
    found = checks.updates_equal_derivation(s)
    assert found and all("pi" in p for p in found)


def test_check_2_sees_a_damped_step_of_the_wrong_length(mixture):
    info = mixture.plan.latents["mu"].damped
    start = copy_state(mixture.base)
    start["c__damping"][0] = 0.3
    assert checks.update_against_derivation(mixture, "damped", "mu", info, start)[0] == []
    s = _planted(mixture, info.name, "e_mu__x", 1e-7)
    found = checks.update_against_derivation(s, "damped", "mu", info, start)[0]
    assert any("stored `e_mu__x`" in p for p in found)


def test_check_3_sees_statistics_the_local_step_left_stale(mixture):
    s = _planted(mixture, "local_step_z", "t_0", 1e-9)
    found = checks.local_step_statistics(s)
    assert len(found) == 1 and "t_0" in found[0]


def test_check_4_sees_an_elbo_term_and_an_entropy_off(mixture):
    d = mixture.derivation
    terms = d.elbo_terms()

    class Off(type(d)):
        def elbo_terms(self):
            return [(label, e + (sp.Rational(1, 10 ** 6) if n in (0, len(terms) - 1) else 0))
                    for n, (label, e) in enumerate(terms)]

    off = dataclasses.replace(mixture, derivation=Off(**{f.name: getattr(d, f.name) for f in dataclasses.fields(d)}))
    found = checks.elbo_equals_reference(off)
    assert any(p.startswith("ELBO term") for p in found)
    assert any(p.startswith("H[q(") for p in found)


def test_the_structure_check_sees_a_kernel_defined_twice_and_a_dense_statistic(mixture):
    twice = mixture.source + "\n\n@njit\ndef update_mu(a):\n    pass\n"
    found = checks.structure(dataclasses.replace(mixture, source=twice))
    assert any("defines `update_mu` 2 times" in p for p in found)
    plan = mixture.plan
    dense_stats = dataclasses.replace(plan.stats, arrays={**plan.stats.arrays, "t_9": ("N", "N")})
    plan = dataclasses.replace(plan, stats=dense_stats)
    dense = dataclasses.replace(mixture, module=types.SimpleNamespace(**{**vars(mixture.module), "PLAN": plan}))
    assert any("`t_9`" in p for p in checks.dense_statistics(dense))


def test_a_fit_differing_in_one_bit_is_a_difference():
    q = {"mu": {"family": "Normal", "mean": np.array([1.0, 2.0])}}
    a = Outcome((1.0, 2.0), q, {})
    b = Outcome((1.0, 2.0), {"nu": {"family": "Normal", "mean": np.array([1.0, np.nextafter(2.0, 3.0)])}}, {})
    assert differences(a, a, {}) == []
    assert differences(a, b, {"mu": "nu"}) and differences(a, Outcome((1.0, np.nextafter(2.0, 3.0)), q, {}), {})


def test_a_fit_differing_in_one_bit_is_a_difference_and_an_allocation_follows_its_count():
    """A latent an augmentation adds is named from its source (`y_alloc` for the count y a Poisson sum splits,
    ppvi/language/check.py): a rename of y renames it, and the fits are compared through that."""
    q = {"y_alloc": {"family": "Multinomial", "p": np.array([0.25, 0.75])}}
    a = Outcome((1.0,), q, {})
    assert differences(a, Outcome((1.0,), {"zzy_alloc": q["y_alloc"]}, {}), {"y": "zzy"}) == []


def test_a_rounding_after_a_reorder_is_known_only_where_variables_are_exchangeable():
    """ORDER_ROUNDING (no structural tie-break exists between exchangeable variables: docs/architecture.md)
    explains a last-bit difference after a reorder of PMF, whose users and items are exchangeable; the same
    difference after reordering a mixture, or after a rename, is a fault."""
    from harness_cases import PMF_LONG
    from harness_known import ORDER_ROUNDING, exchangeable, rewrite_fault

    gmm = EXAMPLES["models/gmm_1d"].text
    fit = Outcome((1.0, 2.0), {"mu": {"family": "Normal", "mean": np.array([1.0])}}, {})
    off = Outcome((1.0, np.nextafter(2.0, 3.0)), fit.q, {})
    assert exchangeable(PMF_LONG) and not exchangeable(gmm)
    assert rewrite_fault("reorder_declarations", PMF_LONG, (fit, fit), (off, fit)) == ORDER_ROUNDING
    assert rewrite_fault("reorder_declarations", gmm, (fit, fit), (off, fit)) is None
    assert rewrite_fault("after", PMF_LONG, (fit, fit), (off, fit)) is None


SEQUENCES = ("hmm", "baum_welch", "ragged_hmm", "vghmm", "lds", "lds_noise")


def test_the_sequence_examples_are_cases_and_compiled():
    """models/sequences/*.ppvi are examples as models/*.ppvi are (discovery looked at the top folder alone),
    each with its bundled data, and each chain one that compiles."""
    cases = {f"models/sequences/{s}" for s in SEQUENCES}
    assert cases <= set(EXAMPLES), sorted(cases - set(EXAMPLES))
    assert all(EXAMPLES[c].data and not EXAMPLES[c].chains for c in cases)


@pytest.mark.parametrize("stem", ["lda", "sparse_coding", "gmm", "sequences/ragged_hmm", "sequences/vghmm"])
def test_every_rewrite_checks_and_renames_every_name(stem):
    """(ragged_hmm: the data after `by` in `for t in T[1:] by seq:` is renamed too; it was kept, as the method
    after `by` in `approximate h by point` is, and the renamed model did not check.)"""
    from ppvi.language import loads

    text = EXAMPLES[f"models/{stem}"].text if "/" not in stem else (ROOT / "models" / f"{stem}.ppvi").read_text()
    model = loads(text)
    chosen = set(model.variables) | set(model.dims)
    assert chosen <= set(names(text))
    for strategy in STRATEGIES.values():
        mapping = strategy(names(text))
        renamed = loads(rename(text, mapping))
        assert set(renamed.variables) == {mapping[v] for v in model.variables}
        assert rename(rename(text, mapping), {v: k for k, v in mapping.items()}) == text
    for what in ("declarations", "draws"):
        shuffled = reorder(text, np.random.default_rng(0), what)
        assert set(loads(shuffled).variables) == set(model.variables)
        assert sorted(shuffled.splitlines()) == sorted(text.splitlines())


def test_a_reorder_splits_lines_at_newlines_alone():
    """A form feed and a U+2028 inside a comment end no line (the grammar's lines end at "\\n"): the reorder
    keeps each comment with its statement, and the model still checks with the same variables."""
    from ppvi.language import loads

    text = EXAMPLES["models/gmm_1d"].text.replace("    mu[k] ~ Normal(m0, sd = 10)",
                                                  "    mu[k] ~ Normal(m0, sd = 10)   # one\u2028tau ~ x\x0cz[n]")
    for what in ("declarations", "draws"):
        shuffled = reorder(text, np.random.default_rng(0), what)
        assert set(loads(shuffled).variables) == set(loads(text).variables)
        assert sorted(shuffled.removesuffix("\n").split("\n")) == sorted(text.removesuffix("\n").split("\n"))


def test_a_case_refused_by_derive_raises_its_ppvi_error():
    from ppvi.errors import PPVIError

    with pytest.raises(PPVIError):
        build(Case("refused", "x ~ Normal(0, sd = s)\ns ~ Gamma(1, 1)\n", "here"), python=True)


def test_the_corpus_registry_is_picked_up_when_it_exists(tmp_path, monkeypatch):
    """tests/corpus/registry.py's CORPUS (name, model_path, data_path, dims, kind, notes, known_failure)."""
    import harness_cases

    model = tmp_path / "m.ppvi"
    model.write_text(EXAMPLES["models/normal_gamma"].text.replace("const m0 = 0.0", "const m0 = 1.0"))
    registry = tmp_path / "registry.py"
    registry.write_text(
        "from __future__ import annotations\n"       # (as the real one: dataclasses then look the module up)
        "from dataclasses import dataclass\n"
        "@dataclass(frozen=True)\n"
        "class Case:\n"
        "    name: str\n    model_path: str\n    data_path: str | None = None\n    dims: dict | None = None\n"
        "    kind: str = ''\n    notes: str = ''\n    known_failure: str | None = None\n"
        f"CORPUS = [Case('ng', {str(model)!r}, {str(harness_cases.MODELS / 'normal_gamma.csv')!r}, None,"
        " known_failure='a reason')]\n")
    monkeypatch.setattr(harness_cases, "REGISTRY", registry)
    (case,) = harness_cases.registry_cases()
    assert (case.name, case.known, case.dims) == ("corpus:ng", "a reason", {})
    assert case.data == {"path": str(harness_cases.MODELS / "normal_gamma.csv")}
    assert "corpus:ng" in {c.name for c in harness_cases.corpus()}


def test_every_known_entry_names_a_case_of_the_corpus():
    """The known faults and gaps are keyed by case name, and an inline model unnamed in its test file is named
    by its line (`inline:test_missing_rows:line137`): an entry whose case moved would silently stop applying —
    CI checks only a few cases, and `--long` then fails on a gap already known (it did, line136 → line137)."""
    import harness_known as known
    from harness_cases import corpus

    names = {c.name for c in corpus()}
    keys = {case for case, _ in {**known.KERNELS, **known.GAPS}} | set(known.REFUSED) | set(known.FITS)
    assert keys <= names, sorted(keys - names)


def test_a_block_step_is_checked_at_every_elements_new_moments(built):
    """A block Newton step (poisson_regression's q(w): its elements share the exponent b + Σ_j x[n, j] w[j]) moves
    every element jointly: its q is the derived η with every element at its new moments.  Read element by element
    (element j at the new moments of the elements before it, the old ones of the rest: a sequential step's
    reading) the same update differs from η: the check had failed poisson_regression's update so (η off by 50 %)."""
    s = dataclasses.replace(built(EXAMPLES["models/poisson_regression"]), python=True)     # (test_kernels' subject)
    info = s.plan.latents["w"].update
    assert checks.joint_step(s, "update", "w") and not checks.joint_step(s, "damped", "w")
    assert checks.update_against_derivation(s, "update", "w", info, s.base)[0] == []
    after = copy_state(s.base)
    s.call(info, after)
    q = s.derivation.q["w"]
    before_ref, after_ref = checks.Reference(s, s.base), checks.Reference(s, after)
    got = checks.natural(q.family, checks.read_q(after, "w", q.family, len(q.index)))
    for joint in (True, False):
        eta, _ = checks.reference_eta(s, "w", before_ref, after_ref, joint=joint)
        off = [checks.mismatch(got[k], eta[k], checks.RTOL_NEWTON) for k in eta]
        assert any(off) != joint, off
