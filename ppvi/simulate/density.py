"""log p(x | θ) of each distribution of the language, elementwise, in log space.

Each family's unit has its law (``ppvi.families.unit.Unit.log_p``): it takes the value ``x`` and the
parameters as arrays that broadcast against each other (a vector-valued law's event on the last axis, a
matrix's on the last two) and returns the log density of every element, its event axes summed.
Γ is never evaluated: ``gammaln``, ``betaln``; ``xlogy`` makes 0 · log 0 = 0 (a
Poisson count 0 at rate 0, a Beta's edge with a = 1); a Bernoulli whose p is
``sigmoid(ψ)`` is given ψ, so log p = −softplus(−ψ) stays finite at any ψ.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ppvi.families.registry import UNITS


def log_density(dist: str, x: np.ndarray, args: Mapping[str, np.ndarray]) -> np.ndarray:
    """log p(x) of ``dist`` with its canonical arguments (``sd``, ``precision`` or ``variance`` by name): the
    family's (``Unit.log_p``)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return UNITS[dist].log_p(x, dict(args))
