"""A slow, obviously-correct numeric reading of derived expressions.

It walks the SymPy tree with explicit loops for every ``Sum``.  The tests use it
to compare derivations with hand-written formulas at random points, and the
code generator's kernels are checked against it; it is never on a hot path.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import sympy as sp
from scipy import special

from ppvi.derive.lower import before, inverse, sigmoid
from ppvi.derive.qfamily import invert
from ppvi.derive.symbols import Gate, MomentBase, MomentSymbol, centred, lgamma, lmvgamma, logdet, shift, softplus


class Env:
    """Values for one evaluation.

    ``arrays`` maps variable names (data, params, consts, MAP latents) to arrays
    or numbers; ``moments`` maps (var, stat) to arrays; ``dims`` maps dim names
    to sizes.
    """

    def __init__(self, arrays: Mapping[str, Any], moments: Mapping[tuple[str, str], Any], dims: Mapping[str, int]):
        self.arrays = {k: np.asarray(v, dtype=float) for k, v in arrays.items()}
        self.moments = {k: np.asarray(v, dtype=float) for k, v in moments.items()}
        self.dims = dict(dims)


def evaluate(expr: sp.Expr, env: Env, bound: Mapping[sp.Basic, int] | None = None) -> float:
    """The value of ``expr`` with free indices set by ``bound``."""
    return float(_ev(sp.sympify(expr), env, dict(bound or {})))


def _index(x: sp.Expr, env: Env, b) -> int:
    v = _ev(x, env, b)
    r = int(round(float(v)))
    return r


def _array(base: sp.Basic, env: Env) -> np.ndarray:
    if isinstance(base, MomentBase):
        return env.moments[(base.var, base.stat)]
    if isinstance(base, Gate):
        return env.moments[(base.var, "onehot")]
    return env.arrays[str(base.label)]


def _ev(e: sp.Basic, env: Env, b: dict):
    if e in b:
        return b[e]
    if isinstance(e, sp.Idx):
        return b[e]
    if e.is_Number:
        return float(e)
    if e is sp.pi:
        return math.pi
    if e is sp.E:
        return math.e
    if isinstance(e, MomentSymbol):
        return float(env.moments[(e.var, e.stat)])
    if isinstance(e, sp.Symbol):
        if e.name in env.dims:
            return env.dims[e.name]
        return float(env.arrays[e.name])
    if isinstance(e, sp.Indexed):
        arr = _array(e.base, env)
        return arr[tuple(_index(i, env, b) for i in e.indices)]
    if isinstance(e, sp.Add):
        return sum(_ev(a, env, b) for a in e.args)
    if isinstance(e, sp.Mul):
        out = 1.0
        for a in e.args:
            out = out * _ev(a, env, b)
        return out
    if isinstance(e, sp.Pow):
        return _ev(e.base, env, b) ** _ev(e.exp, env, b)
    if isinstance(e, sp.Sum):
        return _sum(e.function, list(e.limits), env, b)
    if isinstance(e, sp.KroneckerDelta):
        return 1.0 if _index(e.args[0], env, b) == _index(e.args[1], env, b) else 0.0
    if isinstance(e, before):
        return 1.0 if _index(e.args[0], env, b) < _index(e.args[1], env, b) else 0.0
    if isinstance(e, inverse):
        m, d, f = e.args
        return np.linalg.inv(_matrix(m, env, b))[_index(d, env, b), _index(f, env, b)]
    if isinstance(e, invert):
        body, d, f = e.args
        size = int(_ev(d.upper, env, b)) + 1
        saved = (b.get(d), b.get(f))
        mat = np.empty((size, size))
        for r in range(size):
            for c in range(size):
                b[d], b[f] = r, c
                mat[r, c] = _ev(body, env, b)
        b[d], b[f] = saved
        return np.linalg.inv(mat)[saved[0], saved[1]]
    if isinstance(e, logdet):
        return np.linalg.slogdet(_matrix(e.args[0], env, b))[1]
    if isinstance(e, centred):
        return _ev(e.args[0], env, b) - _ev(e.args[1], env, b)
    if isinstance(e, shift):
        x = env.arrays[str(e.args[0])]
        return float(x[np.isfinite(x)].mean()) if np.isfinite(x).any() else 0.0
    if isinstance(e, lmvgamma):
        return special.multigammaln(_ev(e.args[0], env, b), int(_ev(e.args[1], env, b)))
    if isinstance(e, sp.log) and isinstance(e.args[0], sp.cosh):
        # log cosh t = log(e^t + e^{−t}) − log 2: a Pólya-Gamma q's entropy at large c, where cosh overflows
        t = _ev(e.args[0].args[0], env, b)
        return np.logaddexp(t, -t) - math.log(2.0)
    fn = {sp.log: np.log, sp.exp: np.exp, sp.cosh: np.cosh, sp.tanh: np.tanh, sp.sinh: np.sinh, lgamma: special.gammaln, sp.loggamma: special.gammaln,
          softplus: lambda z: np.logaddexp(0.0, z), sigmoid: special.expit, sp.sqrt: np.sqrt,
          sp.Abs: abs, sp.sign: np.sign}.get(type(e))
    if fn is not None:
        return fn(_ev(e.args[0], env, b))
    if isinstance(e, sp.polygamma):
        return special.polygamma(int(_ev(e.args[0], env, b)), _ev(e.args[1], env, b))
    if isinstance(e, sp.digamma):
        return special.digamma(_ev(e.args[0], env, b))
    raise NotImplementedError(f"cannot evaluate {type(e).__name__}: {e}")


def _matrix(m: sp.Basic, env: Env, b) -> np.ndarray:
    if isinstance(m, sp.Indexed):
        return _array(m.base, env)[tuple(_index(i, env, b) for i in m.indices)]
    if isinstance(m, sp.IndexedBase):
        return _array(m, env)
    return env.arrays[str(m)]


def _sum(body: sp.Expr, limits: list, env: Env, b: dict):
    (i, lo, hi), rest = limits[0], limits[1:]
    total = 0.0
    for v in range(int(_ev(lo, env, b)), int(_ev(hi, env, b)) + 1):
        b[i] = v
        total += _sum(body, rest, env, b) if rest else _ev(body, env, b)
    b.pop(i, None)
    return total
