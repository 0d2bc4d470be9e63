"""The SymPy side of every family: the classes derive reads, by the name of the language.

Each exponential family gives its support, sufficient statistics T(x),
natural ↔ standard parameters, log-normaliser A(η), base measure log h(x),
expected statistics E[T] = ∇A(η), mean, entropy and log density, split as in
BayesPy (see ``base.ExponentialFamily``).  The derivation engine applies seed
eq. 19.56, collects the coefficients of the statistic keys, and looks up the
family they name.  Laplace is a ``Density`` only (not an exponential family
in its location).  Each class lives in its family's folder (``<name>/symbolic.py``)
next to its unit, and is found through the registry (``registry.UNITS``).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from .base import Density, Dim
from .registry import JOINT, Q_FAMILIES, UNITS
from .unit import Unit

__all__ = ["FAMILIES", "JOINT_FAMILIES", "family", "q_keys", "recognise"]


def _load(unit: Unit) -> type[Density]:
    """The SymPy class of a unit: the one called by its name in its folder's ``symbolic.py``."""
    return getattr(importlib.import_module(".symbolic", type(unit).__module__), unit.name)


FAMILIES: Mapping[str, Density] = MappingProxyType({name: _load(u)() for name, u in UNITS.items()})
"""Read-only map from the distribution name of the language to its family
(vector families unsized: the size is inferred from explicit arguments, or
bound with ``family(name, dim)``)."""

JOINT_FAMILIES: Mapping[str, Density] = MappingProxyType({name: _load(u)() for name, u in JOINT.items()})
"""The SymPy side of the joint q's (``registry.JOINT``): no distribution of the language, ``recognise`` never
returns one; ``family(name)`` finds them."""


def recognise(support: str, statistics: Iterable[str]) -> Density | None:
    """The q family on ``support`` whose statistics include the given keys
    (docs/derivation.md, section 3: e.g. {"x", "x2"} on "real" → Normal), the one with the
    fewest statistics if several do; None if none does.  Whether the collected
    coefficients are valid natural parameters is ``valid_natural``'s question."""
    wanted = set(statistics)
    candidates = [fam for fam in map(FAMILIES.__getitem__, Q_FAMILIES)
                  if fam.support == support and wanted <= set(q_keys(fam))]
    return min(candidates, key=lambda fam: len(q_keys(fam)), default=None)


def q_keys(fam: Density) -> tuple[str, ...]:
    """The statistic keys of a q of family ``fam`` (a place-holder of its base measure included)."""
    return fam.q_statistics or fam.statistic_keys      # type: ignore[attr-defined]


def family(name: str, dim: Dim | None = None) -> Density:
    """The family called ``name`` in the language, with event size ``dim``
    (an int or Symbol; only for Categorical, Dirichlet, MvNormal, Wishart), or a joint q's (``NormalGamma``)."""
    try:
        found = FAMILIES[name] if name in FAMILIES else JOINT_FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown distribution {name!r}; known: {', '.join(FAMILIES)}") from None
    return found if dim is None else found.with_dim(dim)
