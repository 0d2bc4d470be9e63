"""The registry and the static description of each family (DESIGN §2–3)."""

from __future__ import annotations

import dataclasses

import pytest
import sympy as sp

from ppvi.families import FAMILIES, Q_FAMILIES, Density, ExponentialFamily, family, recognise

CONTRACT = {
    # name: (support, event rank, standard parameters, statistic keys, moments the engine needs)
    "Normal": ("real", 0, ("mean", "sd"), {"x", "x2"}, {"x", "x2"}),
    "MvNormal": ("real_vector", 1, ("mean", "cov"), {"x", "xxT"}, {"x", "xxT"}),
    "Gamma": ("positive", 0, ("shape", "rate"), {"logx", "x"}, {"x", "logx"}),
    "Beta": ("unit_interval", 0, ("a", "b"), {"logx", "log1mx"}, {"logx", "log1mx", "x"}),
    "Bernoulli": ("binary", 0, ("p",), {"x"}, {"x"}),
    "Categorical": ("index", 0, ("p",), {"onehot"}, {"onehot"}),
    "Dirichlet": ("simplex", 1, ("alpha",), {"logp"}, {"logp", "x"}),
    "Wishart": ("pd_matrix", 2, ("df", "scale"), {"logdet", "X"}, {"X", "logdet"}),
    "Poisson": ("count", 0, ("rate",), {"x"}, {"x"}),
    "Exponential": ("positive", 0, ("rate",), {"x"}, {"x"}),
    "Laplace": ("real", 0, ("loc", "scale"), None, None),
    "Binomial": ("count", 0, ("n", "p"), None, None),
    "Multinomial": ("count", 1, ("n", "p"), None, None),
    "NegativeBinomial": ("count", 0, ("r", "p"), None, None),
    "PolyaGamma": ("polya_gamma", 0, ("b", "c"), {"x", "base"}, {"x", "base"}),
}


def test_registry_holds_exactly_the_language_distributions() -> None:
    assert set(FAMILIES) == set(CONTRACT)
    for name, fam in FAMILIES.items():
        assert fam.name == name
        assert family(name) is fam


@pytest.mark.parametrize("name", CONTRACT)
def test_family_description(name: str) -> None:
    support, rank, params, statistics, needed = CONTRACT[name]
    fam = family(name)
    assert (fam.support, fam.event_rank, fam.params) == (support, rank, params)
    if statistics is None:
        assert not fam.exponential and not isinstance(fam, ExponentialFamily)
        return
    assert fam.exponential and isinstance(fam, ExponentialFamily)
    assert set(fam.statistic_keys) == statistics
    assert needed <= set(fam.moment_keys) and statistics <= set(fam.moment_keys)


def test_registry_is_read_only_and_families_frozen() -> None:
    with pytest.raises(TypeError):
        FAMILIES["Normal"] = None  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        family("Dirichlet").dim = 3  # type: ignore[misc]


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="Normal"):
        family("Cauchy")


def test_sizes() -> None:
    assert family("Dirichlet", 3).dim == 3
    assert family("Dirichlet").dim is None
    size = sp.Symbol("K")
    assert family("Categorical", size).k == sp.Idx("k", size)
    with pytest.raises(ValueError, match="no size"):
        family("Normal", 3)
    with pytest.raises(ValueError, match="positive"):
        family("MvNormal", 0)
    with pytest.raises(TypeError):
        family("Wishart", 2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="length"):
        family("Dirichlet", 3).entropy({"alpha": [1, 2]})
    with pytest.raises(ValueError, match="dim"):
        family("Categorical").statistics(1)


def test_sizes_are_inferred_from_explicit_arguments() -> None:
    assert family("Dirichlet").expectations({"alpha": [1, 1, 2]})["x"] == sp.Matrix(
        [sp.Rational(1, 4)] * 2 + [sp.Rational(1, 2)]
    )
    assert family("MvNormal").entropy({"mean": [0, 0], "cov": [[1, 0], [0, 1]]}) == 1 + sp.log(2 * sp.pi)


def test_families_are_densities() -> None:
    assert all(isinstance(fam, Density) for fam in FAMILIES.values())


@pytest.mark.parametrize(
    ("support", "statistics", "expected"),
    [
        ("real", {"x", "x2"}, "Normal"),
        ("real", {"x"}, "Normal"),
        ("real_vector", {"x", "xxT"}, "MvNormal"),
        ("positive", {"logx", "x"}, "Gamma"),
        ("positive", {"x"}, "Gamma"),
        ("unit_interval", {"logx", "log1mx"}, "Beta"),
        ("binary", {"x"}, "Bernoulli"),
        ("index", {"onehot"}, "Categorical"),
        ("simplex", {"logp"}, "Dirichlet"),
        ("pd_matrix", {"logdet", "X"}, "Wishart"),
        ("real", {"x", "logx"}, None),
        ("count", {"x"}, "Poisson"),            # (a missing count's q: the first in the canonical order)
        ("count", {"x", "lfact"}, "Poisson"),
        ("count", {"x", "lchoose"}, "Binomial"),
        ("count", {"x", "lnb"}, "NegativeBinomial"),
        ("count", {"x", "x2"}, None),
        ("polya_gamma", {"x", "base"}, "PolyaGamma"),
    ],
)
def test_recognise_names_the_q_family_of_collected_statistics(
    support: str, statistics: set, expected: str | None
) -> None:
    found = recognise(support, statistics)
    assert (found.name if found else None) == expected


def test_q_families_are_exponential_families() -> None:
    # (Binomial and NegativeBinomial, Densities as likelihoods, are ones as a q: their q sides, ppvi.families.
    # binomial.symbolic, negative_binomial.symbolic)
    assert all(family(name).exponential or family(name).q_statistics for name in Q_FAMILIES)
    assert set(FAMILIES) - set(Q_FAMILIES) == {"Exponential", "Laplace", "Multinomial"}
