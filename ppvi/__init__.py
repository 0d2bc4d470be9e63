"""ppvi: a compiler from generative models to mean-field variational inference.

Pipeline (each stage a subpackage, plain data between them)::

    text --language--> checked AST --graph--> factor graph --derive--> updates --codegen--> kernels --infer--> q
"""

from ppvi.errors import PPVIError, PPVIWarning

__version__ = "0.1.0"
__all__ = ["PPVIError", "PPVIWarning", "load"]


def load(path: str):
    """Parse and check a model: ``ppvi.load("models/gmm.ppvi").fit()``."""
    from ppvi.api import load as _load

    return _load(path)
