"""The corpus itself: every model listed once, with its data beside it, checking, binding its data
and deriving."""

from __future__ import annotations

import pytest

from corpus.registry import CORPUS, CORPUS_MODELS, EXAMPLES, REFERENCED_ELSEWHERE, Case

KINDS = {"gaussian", "conjugate", "regression", "mixture", "topic", "sparse", "factor", "hierarchical", "energy",
         "sequence"}


def test_the_corpus_lists_every_model_once():
    names = [c.name for c in CORPUS]
    assert len(names) == len(set(names)) >= 30
    listed = {c.model_path for c in CORPUS}
    assert set(CORPUS_MODELS.glob("*.ppvi")) <= listed
    assert set(EXAMPLES.glob("*.ppvi")) <= listed
    for c in CORPUS:
        assert c.model_path.exists() and c.data_path.exists(), c.name
        assert c.model_path.stem == c.data_path.stem == c.name
        assert c.data_path.suffix in (".npz", ".csv", ".json")
        assert c.data_path.stat().st_size < 200_000, c.name
        assert c.kind in KINDS, c.name
        assert c.notes, c.name
        assert c.model_path.read_text().lstrip().startswith("#"), f"{c.name}: a header naming the source"
        assert c.known_failure is None or c.known_failure.startswith("issue 14"), c.name


def test_only_one_data_file_per_model():
    """ppvi picks the first of .npz, .csv, .json beside the model: there must be only the one listed."""
    for c in CORPUS:
        others = [c.model_path.with_suffix(s) for s in (".npz", ".csv", ".json") if s != c.data_path.suffix]
        assert not any(p.exists() for p in others), c.name


def test_the_examples_referenced_elsewhere_are_the_original_ones():
    assert REFERENCED_ELSEWHERE == {"seed_gaussian", "beta_bernoulli", "gamma_poisson", "dirichlet_categorical",
                                    "normal_gamma", "linreg", "gmm_1d", "gmm", "em_gmm", "bernoulli_mixture", "lda",
                                    "binary_sparse_coding", "sparse_coding"}


def _id(c: Case) -> str:
    return c.name


@pytest.mark.parametrize("c", CORPUS, ids=_id)
def test_checks_and_binds_its_data(c: Case):
    from ppvi.io.data import bind, read_file
    from ppvi.language import load

    m = load(str(c.model_path))
    bound = bind(m, read_file(str(c.data_path), m), c.dims)
    assert all(v is not None and v >= 1 for v in bound.sizes.values())


def _derive_params():
    for c in CORPUS:
        if c.name not in REFERENCED_ELSEWHERE:         # (those are derived in tests/derive and tests/infer)
            yield pytest.param(c, id=c.name)


@pytest.mark.parametrize("c", list(_derive_params()))
def test_derives(c: Case):
    from ppvi.derive import derive
    from ppvi.language import load

    derivation = derive(load(str(c.model_path)))
    assert derivation is not None


def test_the_readme_tour_names_every_example():
    """Every models/**/*.ppvi has its line in the README's tour (issue 18: the sequence examples are in it), read
    off the folder, so an example added on another branch is asked for too."""
    readme = (EXAMPLES.parent / "README.md").read_text()
    missing = [str(p.relative_to(EXAMPLES.parent)) for p in sorted(EXAMPLES.rglob("*.ppvi"))
               if f"`{p.relative_to(EXAMPLES.parent).as_posix()}` — " not in readme]
    assert not missing, f"not in the README's tour: {missing}"
