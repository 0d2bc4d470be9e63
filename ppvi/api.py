"""The Python API: ``ppvi.load(path).fit(data)``.

>>> import ppvi
>>> result = ppvi.load("models/gmm_1d.ppvi").fit()        # data beside the model
>>> result.elbo, result.q["mu"]["mean"]                   # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from ppvi.errors import Diagnostic, PPVIError, PPVIWarning
from ppvi.language import CheckedModel
from ppvi.language import load_cached as load_model


@dataclass
class Result:
    fit: "Fit"  # noqa: F821

    @property
    def elbo(self) -> float:
        return self.fit.elbo

    @property
    def elbo_trace(self) -> list[float]:
        return self.fit.trace

    @property
    def converged(self) -> bool:
        return self.fit.converged

    @property
    def warnings(self) -> list[str]:
        """What the fit warns about (a symmetric stationary point), each as ``FILE: warning: …``."""
        return [d.format() for d in self.fit.warnings]

    @property
    def q(self) -> dict:
        from ppvi.io.results import q_summary

        return q_summary(self.fit)

    @property
    def params(self) -> dict:
        from ppvi.io.results import params_of

        return params_of(self.fit)

    def to_dict(self) -> dict:
        from ppvi.io.results import result_dict

        return result_dict(self.fit)

    def to_json(self) -> str:
        import json

        from ppvi.io.results import _jsonable

        return json.dumps(_jsonable(self.to_dict()))

    def save(self, path: str) -> None:
        from ppvi.io.results import write

        write(path, self.fit)

    def summary(self) -> str:
        from ppvi.io.results import summary_table

        return summary_table(self.fit)


@dataclass
class Model:
    checked: CheckedModel

    @classmethod
    def load(cls, path: str) -> "Model":
        return cls(load_model(path))

    def fit(self, data: str | Mapping[str, np.ndarray] | None = None, *, dims: Mapping[str, int] | None = None,
            seed: int = 0, max_iter: int = 1000, tol: float = 1e-8, restarts: int = 1,
            on_iteration: Callable[[int, float, float], None] | None = None,
            damping: float | None = None, init: object = None) -> Result:
        """Fit by coordinate ascent; ``data`` is a path, a dict of arrays, or None for the file beside the model.

        ``damping`` α in (0, 1] switches to the parallel schedule: within each latent every element is
        updated from the previous moments and moves a step α in natural parameters (19.4.1).
        ``init``: start from an earlier result (a Result, a result file's path, or its dict layout).
        ``tol`` = 0 runs ``max_iter`` sweeps.  A fit that ends at a symmetric stationary point warns
        (``Result.warnings``, and a :class:`ppvi.errors.PPVIWarning`).
        """
        from ppvi.codegen.cache import fixed_sizes, load as load_module
        from ppvi.infer.cavi import fit
        from ppvi.infer.program import Program
        from ppvi.io.data import bind, default_data_path, read

        m = self.checked
        if data is None or isinstance(data, str):
            path = data or default_data_path(m.path)
            if path is None:
                raise PPVIError(Diagnostic("no data file beside the model", m.path,
                                           hint="pass --data PATH (.npz, .json or .csv)"))
            raw = read(path, m)
        else:
            path, raw = "<data>", {k: np.asarray(v) for k, v in data.items()}
        bound = bind(m, raw, path, dims)
        start = None
        if init is not None:
            from ppvi.infer.warm import Start

            start = Start.of(init)
        module, _ = load_module(m, fixed=fixed_sizes(m, bound.sizes))
        program = Program.build(m, module, bound)
        result = Result(fit(program, seed=seed, max_iter=max_iter, tol=tol, restarts=restarts,
                            on_iteration=on_iteration, damping=damping, start=start))
        for d in result.fit.warnings:
            warnings.warn(d.format(), PPVIWarning, stacklevel=2)
        return result


def load(path: str) -> Model:
    """Parse and check a model file; ``.fit(data)`` fits it."""
    return Model.load(path)
