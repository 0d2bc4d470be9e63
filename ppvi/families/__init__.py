"""The distribution families of ppvi, as SymPy expressions.

Each exponential family gives its support, sufficient statistics T(x),
natural ↔ standard parameters, log-normaliser A(η), base measure log h(x),
expected statistics E[T] = ∇A(η), mean, entropy and log density, split as in
BayesPy (see ``base.ExponentialFamily``).  The derivation engine applies seed
eq. 19.56, collects the coefficients of the statistic keys, and looks up the
family they name.  Laplace is a ``Density`` only (not an exponential family
in its location).

>>> family("Gamma").expectations({"shape": 2, "rate": 1})["x"]
2
>>> family("Dirichlet", dim=3).statistic_keys
('logp',)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from .base import Density, Dim, ExponentialFamily, IndexedVectorFamily, MatrixFamily
from .bernoulli import Bernoulli
from .beta import Beta
from .binomial import Binomial
from .categorical import Categorical
from .dirichlet import Dirichlet
from .exponential import Exponential
from .gamma import Gamma
from .laplace import Laplace
from .multinomial import Multinomial
from .mvnormal import MvNormal
from .normal import Normal
from .polya_gamma import PolyaGamma
from .poisson import Poisson
from .wishart import Wishart

__all__ = [
    "FAMILIES",
    "Q_FAMILIES",
    "Bernoulli",
    "Beta",
    "Binomial",
    "Categorical",
    "Density",
    "Dim",
    "Dirichlet",
    "Exponential",
    "ExponentialFamily",
    "Gamma",
    "IndexedVectorFamily",
    "Laplace",
    "MatrixFamily",
    "Multinomial",
    "MvNormal",
    "Normal",
    "Poisson",
    "PolyaGamma",
    "Wishart",
    "family",
    "recognise",
]

FAMILIES: Mapping[str, Density] = MappingProxyType(
    {
        cls.name: cls()
        for cls in (
            Normal,
            MvNormal,
            Gamma,
            Beta,
            Bernoulli,
            Categorical,
            Dirichlet,
            Wishart,
            Poisson,
            Exponential,
            Laplace,
            Binomial,
            Multinomial,
            PolyaGamma,
        )
    }
)
"""Read-only map from the distribution name of the language to its family
(vector families unsized: the size is inferred from explicit arguments, or
bound with ``family(name, dim)``)."""


Q_FAMILIES: tuple[str, ...] = (
    "Normal",
    "MvNormal",
    "Gamma",
    "Beta",
    "Bernoulli",
    "Categorical",
    "Dirichlet",
    "Wishart",
    "PolyaGamma",
)
"""The families a mean-field factor q can take (the q result schema, docs/cli.md)."""


def recognise(support: str, statistics: Iterable[str]) -> ExponentialFamily | None:
    """The q family on ``support`` whose statistics include the given keys
    (docs/derivation.md, section 3: e.g. {"x", "x2"} on "real" → Normal), the one with the
    fewest statistics if several do; None if none does.  Whether the collected
    coefficients are valid natural parameters is ``valid_natural``'s question."""
    wanted = set(statistics)
    candidates = [
        fam
        for fam in map(FAMILIES.__getitem__, Q_FAMILIES)
        if isinstance(fam, ExponentialFamily) and fam.support == support and wanted <= set(fam.statistic_keys)
    ]
    return min(candidates, key=lambda fam: len(fam.statistic_keys), default=None)


def family(name: str, dim: Dim | None = None) -> Density:
    """The family called ``name`` in the language, with event size ``dim``
    (an int or Symbol; only for Categorical, Dirichlet, MvNormal, Wishart)."""
    try:
        found = FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown distribution {name!r}; known: {', '.join(FAMILIES)}") from None
    return found if dim is None else found.with_dim(dim)
