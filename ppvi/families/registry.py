"""The registry of families: one line per family (docs/architecture.md, "Adding a family").

The order is the families' canonical order: ``recognise`` breaks a tie between q families by it, and the
q result schema lists them in it.  Importing this imports the units only (NumPy; no SymPy, no Numba); a
family's Numba side (its folder's ``finish.py``) is found here too, by :func:`finish`, and imported then."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType, ModuleType

from . import (bernoulli, beta, binomial, categorical, dirichlet, exponential, gamma, laplace, multinomial, mvnormal,
               negative_binomial, normal, normal_gamma, poisson, polya_gamma, wishart)
from .point import POINT
from .unit import Unit

__all__ = ["FINISHED", "JOINT", "Q_FAMILIES", "UNITS", "finish", "unit_of", "unit_of_distribution"]

UNITS: Mapping[str, Unit] = MappingProxyType({u.name: u for u in (
    normal.UNIT,
    mvnormal.UNIT,
    gamma.UNIT,
    beta.UNIT,
    bernoulli.UNIT,
    categorical.UNIT,
    dirichlet.UNIT,
    wishart.UNIT,
    poisson.UNIT,
    exponential.UNIT,
    laplace.UNIT,
    binomial.UNIT,
    negative_binomial.UNIT,
    multinomial.UNIT,
    polya_gamma.UNIT,
)})
"""Read-only map from the distribution name of the language to its family's unit."""

Q_FAMILIES: tuple[str, ...] = tuple(name for name, u in UNITS.items() if u.q)
"""The families a mean-field factor q can take (the q result schema, docs/cli.md)."""

JOINT: Mapping[str, Unit] = MappingProxyType({u.name: u for u in (
    normal_gamma.UNIT,
)})
"""The q of a group of latents approximated jointly (``approximate mu, lam jointly``): no distribution of the
language and never recognised by derive (the group's step is the engine's), one line each as above."""


def unit_of(family: str) -> Unit:
    """The unit of a q's ``family`` as a result file names it: a family of the language, ``point``, or a pair's
    ``NormalGamma``."""
    return POINT if family == POINT.name else JOINT.get(family) or UNITS[family]


FINISHED: tuple[str, ...] = tuple(u.name for u in (*UNITS.values(), *JOINT.values()) if u.finish is not None)
"""The families with a Numba finish (every q family, and a joint q's), in the order above."""


def finish(family: str) -> ModuleType:
    """The Numba side of ``family``: its folder's ``finish.py``, which defines the finish its unit names
    (``Unit.finish``), lists in ``__all__`` the Numba functions generated code calls (ppvi.codegen.runtime
    re-exports them) and, for a q family, ``set_q`` (its finish over every element: a warm start).  Imports
    Numba.  A KeyError for a family with no finish."""
    unit = unit_of(family)
    if unit.finish is None:
        raise KeyError(family)
    return importlib.import_module(".finish", type(unit).__module__)


class _Rewritten(Unit):
    """A distribution of the language that is no family of its own (the checker rewrites StudentT and
    StickBreaking into families): no location, no moments, no labels."""

    name = ""
    standard = ()
    q = False


_REWRITTEN = _Rewritten()


def unit_of_distribution(dist: str | None) -> Unit:
    """The unit of a distribution of the language as a factor names it (a plain unit with the defaults for
    one that is no family: ``_Rewritten``; and for None, no factor)."""
    return UNITS.get(dist, _REWRITTEN) if dist is not None else _REWRITTEN
