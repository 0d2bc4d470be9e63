"""The Python API: ``ppvi.load(path).fit(data)``.

>>> import ppvi
>>> result = ppvi.load("models/gmm_1d.ppvi").fit()        # data beside the model
>>> result.elbo, result.q["mu"]["mean"]                   # doctest: +SKIP
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from typing import Callable, Mapping

from ppvi.errors import Diagnostic, PPVIError, PPVIWarning, did_you_mean
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

    def fit(self, data: object = None, *, dims: Mapping[str, int] | None = None, seed: int = 0,
            max_iter: int = 1000, tol: float = 1e-8, restarts: int = 1,
            on_iteration: Callable[[int, float, float], None] | None = None,
            damping: float | None = None, init: object = None, **dim_sizes: int) -> Result:
        """Fit by coordinate ascent.

        ``data``: None (the file beside the model), a path (str or os.PathLike; .npz, .json or .csv), a dict
        of arrays (or pandas Series and DataFrames), a pandas DataFrame (its columns by name, or the whole
        frame for a model with one 2-D data variable), or an ndarray (a model with one data variable).
        Dims by keyword, ``fit(x, K=3)``, or ``dims={"K": 3}``.  ``damping`` α in (0, 1] switches to the
        parallel schedule: within each latent every element is updated from the previous moments and
        moves a step α in natural parameters (19.4.1).  ``tol`` ≥ 0 is relative to the ELBO (0: run ``max_iter``
        sweeps).  ``init``: start from an earlier result (a Result, a result file's path, or its dict layout).

        A mistake in any argument or in the data raises :class:`ppvi.PPVIError`; notes on how the data
        were read (a dropped index column), and a fit that ends at a symmetric stationary point, are
        :class:`ppvi.errors.PPVIWarning` warnings (the latter also in ``Result.warnings``).
        """
        from ppvi.codegen.cache import fixed_sizes, load as load_module
        from ppvi.infer.cavi import fit
        from ppvi.infer.program import Program
        from ppvi.io.data import bind, check_dims, source_of

        m = self.checked
        _check_options(seed=seed, max_iter=max_iter, tol=tol, restarts=restarts, damping=damping,
                       on_iteration=on_iteration)
        sizes = check_dims(m, _dims(m, dims, dim_sizes), "fit", "{name}={value!r}")
        source = source_of(data, m)
        for note in source.notes:
            warnings.warn(PPVIWarning(note), stacklevel=2)
        bound = bind(m, source, sizes)
        start = None
        if init is not None:
            from ppvi.infer.warm import Start

            start = Start.of(init)
        module, _ = load_module(m, fixed=fixed_sizes(m, bound.sizes))
        program = Program.build(m, module, bound)
        result = Result(fit(program, seed=int(seed), max_iter=int(max_iter), tol=float(tol), restarts=int(restarts),
                            on_iteration=on_iteration, damping=None if damping is None else float(damping),
                            start=start))
        for d in result.fit.warnings:
            warnings.warn(PPVIWarning(d), stacklevel=2)
        return result


_OPTIONS = ("data", "dims", "seed", "max_iter", "tol", "restarts", "on_iteration", "damping", "init")


def _dims(model: CheckedModel, dims: object, keywords: Mapping[str, object]) -> dict[str, object]:
    """``dims=`` and dim keywords together; a keyword that is neither an option nor a dim, or a dim given
    both ways, is a mistake."""
    if dims is None:
        dims = {}
    if not isinstance(dims, Mapping):
        raise _argument(f"dims={dims!r}: dims is a dict of dim names to sizes", 'e.g. dims={"K": 3}, or fit(data, K=3)')
    for name in keywords:
        if name not in model.dims:
            known = ", ".join((*_OPTIONS, *model.dims))
            raise _argument(f"fit() has no option or dim `{name}`",
                            did_you_mean(name, (*_OPTIONS, *model.dims)) or f"options and dims: {known}")
    both = sorted(set(dims) & set(keywords))
    if both:
        raise _argument(f"dim `{both[0]}` is given twice, by keyword and in dims=")
    return {**dims, **keywords}


def _argument(message: str, hint: str | None = None) -> PPVIError:
    return PPVIError(Diagnostic(message, "fit", hint=hint))


def _whole(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_options(*, seed: object, max_iter: object, tol: object, restarts: object, damping: object,
                   on_iteration: object) -> None:
    """The checks of the command line's flags, for the API's arguments (bool is not a number here)."""
    rules = [
        ("seed", seed, _whole(seed) and seed >= 0, "a whole number ≥ 0"),
        ("max_iter", max_iter, _whole(max_iter) and max_iter >= 1, "a whole number ≥ 1"),
        ("tol", tol, _real(tol) and 0 <= tol < math.inf, "a number ≥ 0 (0: run to max_iter)"),
        ("restarts", restarts, _whole(restarts) and restarts >= 1, "a whole number ≥ 1"),
        ("damping", damping, damping is None or (_real(damping) and 0 < damping <= 1), "None or a number in (0, 1]"),
        ("on_iteration", on_iteration, on_iteration is None or callable(on_iteration),
         "None or a function f(iteration, elbo, change)"),
    ]
    for name, value, ok, rule in rules:
        if not ok:
            raise _argument(f"{name}={value!r}: {name} is {rule}")


def load(path: str) -> Model:
    """Parse and check a model file; ``.fit(data)`` fits it."""
    return Model.load(path)
