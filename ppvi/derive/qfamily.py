"""The q side of each family in index notation: η -> standard parameters -> moments, entropy.

Scalar families take their formulas from :mod:`ppvi.families`; the vector
families (Categorical, Dirichlet, MvNormal, Wishart) are written here per
element, with sums over symbolic event sizes, so plates stay symbolic.
Matrix inverses are written ``invert(A, d, e)``: element (d, e) of the inverse
of the matrix whose (d, e) element is A.
"""

from __future__ import annotations

import re

import sympy as sp

from ppvi.derive.symbols import digamma, lgamma, lmvgamma, logdet
from ppvi.families import family as family_of
from ppvi.families.registry import UNITS

# q result schema names (docs/cli.md), in order: the units'.
STANDARD = {name: u.standard for name, u in UNITS.items() if u.q}
# the families whose parameters are one number per element (their formulas are the SymPy side's as they are)
SCALAR = {name for name, u in UNITS.items() if u.q and u.event == 0 and not u.labelled}


class invert(sp.Function):
    """invert(A, d, e): element (d, e) of the inverse of the matrix whose (d, e) element is A."""

    nargs = 3


class ParamBase(sp.IndexedBase):
    """A standard parameter of q(var), as an array over var's plates (and event axes)."""

    def __new__(cls, var, param: str | None = None, **kwargs):
        if param is None:  # rebuilt by SymPy from its label: param(var)
            param, var = re.fullmatch(r"(\w+)\((\w+)\)", str(var)).groups()
        obj = super().__new__(cls, sp.Symbol(f"{param}({var})"))
        obj._ppvi_var, obj._ppvi_param = var, param
        return obj

    @property
    def var(self) -> str:
        return self._ppvi_var

    @property
    def param(self) -> str:
        return self._ppvi_param


def _el(base: sp.IndexedBase, idx: tuple) -> sp.Expr:
    return base[idx] if idx else sp.Symbol(str(base.label), real=True)


def param_elements(q) -> dict[str, sp.Expr]:
    """Each standard parameter of q at its generic element (what entropy and moments read)."""
    ix, ev, ex = q.index, q.event, q.extra
    out = {}
    for p in STANDARD[q.family]:
        base = ParamBase(q.var, p)
        if q.family in SCALAR:
            out[p] = _el(base, ix)
        elif q.family == "Categorical":
            out[p] = base[ix + (ex,)]
        elif q.family == "Dirichlet" or (q.family == "MvNormal" and p == "mean"):
            out[p] = base[ix + ev]
        elif q.family == "MvNormal":
            out[p] = base[ix + ev + (ex,)]
        elif p == "df":
            out[p] = _el(base, ix)
        else:
            out[p] = base[ix + ev]
    return out


def _sum(body, i: sp.Idx, name: str = "l") -> sp.Expr:
    j = sp.Idx(name + "′", (0, i.upper))
    return sp.Sum(body.xreplace({i: j}), (j, 0, i.upper))


def standard(q) -> dict[str, sp.Expr]:
    """Standard parameters of q as functions of its natural parameters (the update)."""
    eta = q.natural
    if q.family in SCALAR:
        return dict(family_of(q.family).standard_from_natural(eta))
    if q.family == "Categorical":
        k = q.extra
        return {"p": sp.exp(eta["onehot"] - sp.log(_sum(sp.exp(eta["onehot"]), k)))}
    if q.family == "Dirichlet":
        return {"alpha": eta["logp"] + 1}
    d, e = q.event[0], q.extra
    if q.family == "MvNormal":
        f = sp.Idx("e′", (0, e.upper))
        cov_df = invert(-2 * eta["xxT"].xreplace({e: f}), d, f)
        return {"mean": sp.Sum(cov_df * eta["x"].xreplace({d: f}), (f, 0, e.upper)),
                "cov": invert(-2 * eta["xxT"], d, e)}
    d, e = q.event
    size = d.upper + 1
    return {"df": 2 * eta["logdet"] + size + 1, "scale": invert(-2 * eta["X"], d, e)}


def moments(q, params: dict[str, sp.Expr]) -> dict[str, sp.Expr]:
    """E[T(x)] for every statistic neighbours read, from q's standard parameters at its element."""
    if q.family in SCALAR:
        out = dict(family_of(q.family).q_moments(params))
        if q.family == "Bernoulli":
            out["x2"] = out["x"]
        return out
    if q.family == "Categorical":
        return {"onehot": params["p"]}
    if q.family == "Dirichlet":
        (k,) = q.event
        alpha = params["alpha"]
        total = _sum(alpha, k)
        return {"logp": digamma(alpha) - digamma(total), "x": alpha / total}
    if q.family == "MvNormal":
        d, e = q.event[0], q.extra
        mean = params["mean"]
        return {"x": mean, "xxT": params["cov"] + mean * mean.xreplace({d: e})}
    d, e = q.event
    size = d.upper + 1
    df, scale = params["df"], params["scale"]
    i = sp.Symbol("i", integer=True)
    return {"X": df * scale,
            "logdet": sp.Sum(digamma((df + 1 - i) / 2), (i, 1, size)) + size * sp.log(2)
            + logdet(scale.base[q.index] if q.index else scale.base)}


def entropy(q, params: dict[str, sp.Expr]) -> sp.Expr:
    """H[q] of one plate element (19.48), with every constant."""
    if q.family in SCALAR:
        return family_of(q.family).q_entropy(params)
    if q.family == "Categorical":
        p = params["p"]
        return -_sum(p * sp.log(p), q.extra)
    if q.family == "Dirichlet":
        (k,) = q.event
        a = params["alpha"]
        a0 = _sum(a, k)
        size = k.upper + 1
        return (_sum(lgamma(a), k) - lgamma(a0) + (a0 - size) * digamma(a0)
                - _sum((a - 1) * digamma(a), k))
    size = q.event[0].upper + 1
    if q.family == "MvNormal":
        cov = params["cov"].base
        return size / 2 * (1 + sp.log(2 * sp.pi)) + logdet(cov[q.index] if q.index else cov) / 2
    df, scale = params["df"], params["scale"].base
    ld = logdet(scale[q.index] if q.index else scale)
    elogdet = moments(q, params)["logdet"]
    # PRML B.82: H = −log B(W, ν) − (ν − D − 1)/2 E[log|Λ|] + νD/2, −log B = (ν/2) log|W| + (νD/2) log 2 + log Γ_D(ν/2)
    return df / 2 * ld + df * size / 2 * sp.log(2) + lmvgamma(df / 2, size) - (df - size - 1) / 2 * elogdet \
        + df * size / 2
