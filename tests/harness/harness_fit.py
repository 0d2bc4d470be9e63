"""Fits for the metamorphic checks: a model text and data in, everything a user sees of the fit out.

``python=True`` runs every generated kernel as plain Python (``py_func``, no compilation): a fit that
depends on a name, or on statement order, does so in the generated source, which plain Python runs
operation for operation (and check 1 ties it to the compiled kernels).  ``python=False`` is the compiled
fit a user gets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Outcome:
    """A fit's ELBO trace, q and params (keyed by the model's names), or the error it ended in."""

    trace: tuple[float, ...] = ()
    q: dict | None = None
    params: dict | None = None
    error: str | None = None          # the type of the error the fit ended in (compared across rewrites)
    detail: str = ""

    def problems(self) -> list[str]:
        """What is wrong with this fit on its own: an error, or an ELBO that drops or is not finite (the
        sequential schedule never lowers it; 19.4.1's damped steps may)."""
        if self.error:
            return [f"the fit ended in {self.error}: {self.detail}"]
        t = np.asarray(self.trace)
        if not np.all(np.isfinite(t)):
            return [f"the ELBO is not finite: {t.tolist()}"]
        return []


def fit_text(text: str, data: dict, dims: dict | None = None, *, python: bool = True,
             damping: float | None = None, seed: int = 0, max_iter: int = 25, path: str = "harness.ppvi") -> Outcome:
    """Fit ``text`` to ``data`` (tol 0: every iteration runs unless the ELBO stops moving exactly)."""
    try:
        r = fit_result(text, data, dims, python=python, damping=damping, seed=seed, max_iter=max_iter, path=path)
    except _FitFailed as e:      # (an internal fault is an outcome too: the renamed model must meet the same)
        return Outcome(error=type(e.__cause__).__name__, detail=str(e.__cause__))
    return Outcome(tuple(r.elbo_trace), {var: dict(q) for var, q in r.q.items()}, dict(r.params))


class _FitFailed(Exception):
    """The fit itself raised (its cause): not the model's derivation or code generation."""


def fit_result(text: str, data: dict, dims: dict | None = None, *, python: bool = True,
               damping: float | None = None, seed: int = 0, max_iter: int = 25, path: str = "harness.ppvi"):
    """The ``ppvi.Result`` of fitting ``text`` to ``data`` as ``fit_text`` does (kernels as plain Python unless
    ``python`` is False); a fault of the fit itself is raised as ``_FitFailed`` from it."""
    from ppvi.codegen.cache import fixed_sizes, load
    from ppvi.infer.cavi import fit
    from ppvi.infer.program import Program
    from ppvi.io.data import observed_arrays
    from ppvi.io.results import from_fit
    from ppvi.language import loads
    from ppvi.language.missing import imputing

    from harness_state import bind, python_module

    checked = loads(text, path)
    bound = bind(checked, data, dims)
    model = imputing(checked, bound.missing)      # (data with missing entries: those entries are latents)
    module, _ = load(model, fixed=fixed_sizes(model, bound.sizes))
    program = Program.build(model, python_module(module) if python else module, bound)
    try:
        with np.errstate(all="ignore"):
            f = fit(program, seed=seed, max_iter=max_iter, tol=0.0, damping=damping)
    except Exception as e:
        raise _FitFailed() from e
    return from_fit(f, data=observed_arrays(checked, bound))


# The latents the checker's augmentations add, named from the variable they serve (ppvi/language/check.py,
# `fresh_latent`): a logistic link's Pólya-Gamma weight `y_pg`, a StudentT's `y_weight`, a Poisson sum's
# allocation `y_alloc` (the superposition).
AUGMENTED = ("_pg", "_weight", "_alloc")


def _mapped(name: str, mapping: dict[str, str]) -> str:
    """``name`` in the renamed model: a latent an augmentation added follows the variable it is named from."""
    for suffix in AUGMENTED:
        if name not in mapping and name.endswith(suffix) and name[:-len(suffix)] in mapping:
            return mapping[name[:-len(suffix)]] + suffix
    return mapping.get(name, name)


def differences(a: Outcome, b: Outcome, mapping: dict[str, str]) -> list[str]:
    """Where fit b (of the renamed model) is not fit a bit for bit; ``mapping`` takes a's names to b's."""
    if a.error or b.error:
        return [] if a.error == b.error else [f"the original fit ended in {a.error or 'no error'}, the rewritten one "
                                              f"in {b.error or 'no error'}: {b.detail or a.detail}"]
    out = []
    if a.trace != b.trace:
        n = next((i for i, (x, y) in enumerate(zip(a.trace, b.trace)) if x != y), min(len(a.trace), len(b.trace)))
        out.append(f"ELBO traces differ from iteration {n + 1}: "
                   f"{a.trace[n] if n < len(a.trace) else '(ended)'!r} against "
                   f"{b.trace[n] if n < len(b.trace) else '(ended)'!r} ({len(a.trace)} and {len(b.trace)} iterations)")
    for kind, x, y in (("q", a.q, b.q), ("param", a.params, b.params)):
        for name, value in x.items():
            other = y.get(_mapped(name, mapping))
            if other is None:
                out.append(f"{kind} `{name}` missing after the rewrite")
                continue
            for key in value if isinstance(value, dict) else [None]:
                u = value[key] if key is not None else value
                v = other.get(key) if key is not None else other
                if isinstance(u, str) or isinstance(v, str):
                    same = u == v
                else:
                    same = np.array_equal(np.asarray(u), np.asarray(v), equal_nan=True)
                if not same:
                    diff = np.max(np.abs(np.asarray(u, float) - np.asarray(v, float))) if not isinstance(u, str) \
                        else None
                    out.append(f"{kind} `{name}`{'.' + key if key else ''} differs (largest difference {diff!r})")
    return out


def rounding_only(a: Outcome, b: Outcome, mapping: dict[str, str], rtol: float = 1e-9) -> bool:
    """Whether two fits differ by rounding alone: the same error, the ELBO traces over their common iterations
    and every q and param within ``rtol``.  A fit run to an exactly unchanged ELBO may then stop some
    iterations sooner, short of where the other ends: q and params are then compared within √rtol."""
    if a.error or b.error:
        return a.error == b.error
    n = min(len(a.trace), len(b.trace))
    if not np.allclose(a.trace[:n], b.trace[:n], rtol=rtol, atol=0):
        return False
    if len(a.trace) != len(b.trace):
        rtol = rtol ** 0.5
    for x, y in ((a.q, b.q), (a.params, b.params)):
        for name, value in x.items():
            other = y.get(_mapped(name, mapping))
            for key in value if isinstance(value, dict) else [None]:
                u = value[key] if key is not None else value
                v = other.get(key) if key is not None else other
                if isinstance(u, str):
                    if u != v:
                        return False
                elif not np.allclose(np.asarray(u, float), np.asarray(v, float), rtol=rtol, atol=rtol):
                    return False
    return True
