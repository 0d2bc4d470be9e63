"""Results made by hand (q written in the test, no compilation) for the simulation and evidence tests."""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from ppvi.io.results import sha256_of_arrays
from ppvi.language import loads
from ppvi.result import Provenance, Q, Result


def hand_result(text: str, q: Mapping[str, tuple[str, dict]], data: Mapping[str, np.ndarray],
                params: Mapping[str, np.ndarray] | None = None, elbo: float = math.nan, **dims: int) -> Result:
    """A Result of the model ``text`` with the q given as {name: (family, standard parameters)}, fitted (as it
    says) to ``data`` held as Python objects; sizes from the data's shapes and ``dims``."""
    model = loads(text, "hand.ppvi")
    sizes = {d.name: d.default for d in model.dims.values()} | dims
    for name, a in data.items():
        for e, n in zip(model.variables[name].shape, np.shape(a)):
            if isinstance(e, str):
                sizes[e] = n
    qs = {name: Q(family, {k: np.asarray(v, dtype=float) for k, v in p.items()},
                  tuple(map(str, model.variables[name].shape)),
                  str(model.variables[name].support_dim) if family == "Categorical" else None)
          for name, (family, p) in q.items()}
    provenance = Provenance(ppvi="0", model_path="hand.ppvi", model_text=text, model_sha256="",
                            data_path=None, data_sha256=sha256_of_arrays(data), seed=0, dims=sizes, tol=0.0,
                            max_iter=1, damping=None, restarts=1, schedule="sequential", sweep=(), created="")
    return Result(model.name, elbo, (elbo,), 1, True, qs, {k: np.asarray(v) for k, v in (params or {}).items()},
                  provenance=provenance, data={k: np.asarray(v) for k, v in data.items()})
