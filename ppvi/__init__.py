"""ppvi: a compiler from generative models to mean-field variational inference.

Pipeline (each stage a subpackage, plain data between them)::

    text --language--> checked AST --graph--> factor graph --derive--> updates --codegen--> kernels --infer--> q
"""

from ppvi.errors import PPVIError, PPVIWarning

__version__ = "0.1.0"
__all__ = ["Memoized", "PPVIError", "PPVIWarning", "Result", "SVI", "load", "load_result"]


def load(path: str):
    """Parse and check a model: ``ppvi.load("models/gmm.ppvi").fit()``."""
    from ppvi.api import load as _load

    return _load(path)


def load_result(path: str):
    """A result file (``.json`` or ``.npz``, from ``result.save`` or ``ppvi run --out``) as a
    :class:`ppvi.result.Result` equal to the one saved."""
    from ppvi.result import load_result as _load_result

    return _load_result(path)


def __getattr__(name: str):
    if name == "Result":           # (imported on first use: ``import ppvi`` stays light)
        from ppvi.result import Result

        return Result
    if name in ("SVI", "Memoized"):  # the settings of ``fit(algorithm=…)``: ppvi.infer.svi, ppvi.infer.memoized
        from ppvi import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
