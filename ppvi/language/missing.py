"""Missing data (issue 17): the entries of a ``data x : missing`` variable that the data leave empty.

A checked model keeps such a variable as data.  Once the data are read and some entries are missing,
:func:`imputing` turns it into a latent with the same factor: its q is derived by 19.56 like any other
(Normal under a Normal factor, Bernoulli, Categorical, Gamma, Beta) and the fit clamps q to a point mass at the data
on the observed entries (⟨x⟩ = x, ⟨x²⟩ = x², H = 0 there: ``ppvi.infer.program``), so every factor that
reads x reads its moments.  The mask is data: the kernels are the same for every pattern of missing
entries.  Data with no missing entry fit the model as declared, the plain data variable.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable

from ppvi.language.check import CheckedModel


def imputing(model: CheckedModel, missing: Iterable[str] | None = None) -> CheckedModel:
    """``model`` with every data variable declared ``: missing`` as a latent whose factor is only partly observed;
    ``missing``: the variables whose data miss an entry — none, and the model stays as declared.  One set of
    kernels serves every pattern of missing entries (a variable with none has a mask of False).  Their
    ``Variable.missing`` stays True: :func:`imputed` lists them."""
    if missing is not None and not list(missing):
        return model
    names = sorted(model.missing)
    if not names:
        return model
    variables = dict(model.variables)
    for name in names:
        support, support_dim, _ = model.missing[name]
        variables[name] = replace(variables[name], kind="latent", support=support, support_dim=support_dim)
    factors = tuple(replace(f, observed=False, partial=True) if f.target in names and f.observed else f
                    for f in model.factors)
    out = replace(model, variables=variables, factors=factors)
    out.__dict__.pop("_priors", None)         # (a cached property of the model it was copied from)
    return out


def imputed(model: CheckedModel) -> list[str]:
    """The variables whose missing entries are latents, in declaration order."""
    return [v.name for v in model.variables.values() if v.missing and v.kind == "latent"]


def cache_text(model: CheckedModel) -> str:
    """What the kernel cache keys a model by: its text, and whether missing entries are latents (the kernels
    differ from the complete data's)."""
    return model.text + "\0missing" if imputed(model) else model.text
