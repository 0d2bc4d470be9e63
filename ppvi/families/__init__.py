"""The distribution families of ppvi: one folder per family (docs/architecture.md, "The family unit").

``ppvi/families/<name>/`` holds a family's SymPy side (``symbolic.py``: support, T(x), η ↔ θ, A(η), log h,
E[T], mean, entropy, log density; what derive reads), its host side (``__init__.py``: the ``Unit`` with
its standard parameter names, the name of its finish, its numeric law, initial q, natural parameters, point
mass and parameter check; what the engine and the reports read) and, for a q family, its Numba side
(``finish.py``: the finish, η of one element -> q, which generated kernels call, and ``set_q``, the same over
every element).  ``registry.UNITS`` lists them, one line each; ``registry.finish`` finds a Numba side.

The units import neither SymPy nor Numba (the warm path reads them); the SymPy side (``FAMILIES``,
``family``, ``recognise`` and the classes) is imported on first use, the Numba side by ``registry.finish``.

>>> from ppvi.families import family
>>> family("Gamma").expectations({"shape": 2, "rate": 1})["x"]
2
>>> family("Dirichlet", dim=3).statistic_keys
('logp',)
>>> unit_of("Gamma").standard
('shape', 'rate')
"""

from __future__ import annotations

import importlib
from typing import Any

from .registry import JOINT, Q_FAMILIES, UNITS, unit_of
from .unit import Unit

__all__ = [
    "FAMILIES",
    "Q_FAMILIES",
    "UNITS",
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
    "JOINT",
    "JOINT_FAMILIES",
    "Laplace",
    "MatrixFamily",
    "Multinomial",
    "MvNormal",
    "Normal",
    "NormalGamma",
    "Poisson",
    "PolyaGamma",
    "Unit",
    "Wishart",
    "family",
    "recognise",
    "unit_of",
]

_SYMBOLIC = {"FAMILIES", "JOINT_FAMILIES", "family", "recognise"}
_BASE = {"Density", "Dim", "ExponentialFamily", "IndexedVectorFamily", "MatrixFamily"}


def __getattr__(name: str) -> Any:
    """The SymPy side, imported on first use (PEP 562)."""
    if name in _SYMBOLIC:
        value = getattr(importlib.import_module(".symbolic", __name__), name)
    elif name in _BASE:
        value = getattr(importlib.import_module(".base", __name__), name)
    elif name in UNITS or name in JOINT:
        value = type(importlib.import_module(".symbolic", __name__).family(name))
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value       # (loaded once)
    return value
