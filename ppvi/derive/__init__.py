"""The mean-field derivation (seed eq. 19.56): checked model -> q families, updates, ELBO.

Stages: :mod:`.lower` (AST -> SymPy in index notation, gates for discrete
indices), :mod:`.expectation` (E_q under the mean field), :mod:`.meanfield`
(natural parameters, family recognition), :mod:`.qfamily` (standard
parameters, moments, entropies), :mod:`.render` (text, LaTeX, JSON).
"""

from ppvi.derive.meanfield import Derivation, QFactor, derive

__all__ = ["Derivation", "QFactor", "derive"]
