"""log Γ and ψ as calls that SymPy never evaluates.

SymPy evaluates its special functions of numbers exactly: ``loggamma(1000)``
becomes the logarithm of a 2,565-digit factorial (a float of it overflows),
``loggamma(10**7)`` never finishes, and ``digamma(1000)`` is a harmonic number
with a numerator of 400 digits.  A log-normaliser never needs Γ itself: these
stay calls whatever their argument, code generation turns them into
``math.lgamma`` and ψ, and ``evalf`` (``sp.N``) evaluates them with mpmath,
which works in log space.

>>> lgamma(sp.Integer(10)**7)
lgamma(10000000)
>>> float(sp.N(lgamma(sp.Integer(1000)), 20))  # doctest: +ELLIPSIS
5905.22...
"""

from __future__ import annotations

import mpmath
import sympy as sp

__all__ = ["digamma", "lgamma", "polygamma"]


class polygamma(sp.polygamma):
    """ψ⁽ⁿ⁾(z) kept as a call (SymPy's own evaluates ψ(1000) as a harmonic number).  The same name and
    base class as SymPy's, so every printer, the reference evaluator and the code generator read it as
    they read ``sp.polygamma``."""

    @classmethod
    def eval(cls, n, z):
        return None

    def _eval_evalf(self, prec):
        n, z = self.args
        return _mp(lambda x: mpmath.polygamma(int(n), x), z, prec) if n.is_Integer and n >= 0 else None


def digamma(z) -> sp.Expr:
    """ψ(z) = d/dz log Γ(z), unevaluated."""
    return polygamma(0, sp.sympify(z))


class lgamma(sp.Function):
    """log Γ(x), kept whole: never evaluated to a number (except log Γ(1) = log Γ(2) = 0), never rewritten."""

    nargs = 1

    @classmethod
    def eval(cls, x):
        if x in (sp.S.One, sp.Integer(2)):
            return sp.S.Zero
        return None

    def fdiff(self, argindex=1):
        return digamma(self.args[0])

    def _eval_evalf(self, prec):
        return _mp(mpmath.loggamma, self.args[0], prec)


def _mp(f, x: sp.Expr, prec: int) -> sp.Float | None:
    """f(x) by mpmath at ``prec`` bits for a positive number x; None (stay a call) otherwise."""
    if not x.is_number:
        return None
    x = x.evalf(prec)
    if not (x.is_Float and x > 0):
        return None
    with mpmath.workprec(prec):
        value = f(x._to_mpmath(prec))
    return sp.Float._new(value._mpf_, prec) if isinstance(value, mpmath.mpf) else None
