"""Pictures of a result (``Result.plot``, ``ppvi plot``): the ELBO trace, marginals of q, and a mixture's data.

Panels, in order:

- the objective after each sweep;
- for a mixture of 2-D data (a data variable x[N, 2] and a Categorical latent
  on its plate), the points coloured by their most probable label and, for
  every component that is not empty, the ellipse of 2 sds of its Gaussian: the
  covariance E[Λ_k]⁻¹ and mean of the model's Wishart and MvNormal latents over
  the components where it has them, else the responsibility-weighted mean and
  covariance of the points;
- the marginal density of every entry of the chosen latents (default: the
  global ones but Categoricals, at most four), from scipy.stats per family;
  a param or a point as a vertical line.

Matplotlib is an optional dependency (``pip install "ppvi[plot]"``).
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np

from ppvi.errors import Diagnostic, PPVIError, PPVIWarning
from ppvi.families.registry import unit_of
from ppvi.io.draws import chosen
from ppvi.io.labels import shown_label
from ppvi.io.summary import ROWS, empty_components
from ppvi.result import Q, Result

MARGINALS = 4          # latents shown by default
CURVES = 12            # entries drawn per latent
ELLIPSE_SD = 2.0


def pyplot():
    from ppvi.io.export import optional

    return optional("matplotlib.pyplot", "matplotlib", "plot", "plot")


def marginal(q: Q, index: tuple[int, ...]):
    """q's marginal of the entry at ``index`` as a frozen scipy.stats law (None where there is none: a
    Wishart's off-diagonal entries, labels, points)."""
    return unit_of(q.family).marginal({k: np.asarray(v) for k, v in q.params.items()}, index)


def _default_variables(r: Result) -> list[str]:
    labels = {n for n, q in r.q.items() if unit_of(q.family).labelled}
    local = {a for n in labels for a in r.q[n].axes[:1]}
    names = [n for n, q in r.q.items() if n not in labels and not (q.axes and q.axes[0] in local)]
    return names[:MARGINALS]


def _mixture(r: Result, data: dict | None):
    """(points, labels, weights r_nk, the Categorical's name) for a mixture of 2-D data, or None."""
    if not data:
        return None
    for name, q in r.q.items():
        if not unit_of(q.family).labelled or len(q.axes) != 1:
            continue
        for x in data.values():
            x = np.asarray(x, dtype=float)
            if x.ndim == 2 and x.shape == (q.shape[0], 2):
                resp = np.asarray(q.params["p"])
                return x, resp.argmax(-1), resp, name
    return None


def _components(r: Result, z: str, x: np.ndarray, resp: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(k, mean, covariance) of each component that is not empty."""
    k_dim = r.q[z].categories
    gone = empty_components(r).get(k_dim, set())
    means = covs = None
    for q in r.q.values():
        unit = unit_of(q.family)
        if q.axes[:1] == (k_dim,) and unit.located and unit.event == 1 and q.shape[1:] == (2,):
            means = np.asarray(unit.mean(dict(q.params)))
        if q.axes[:1] == (k_dim,) and unit.symmetric and q.shape[1:] == (2, 2):
            covs = np.linalg.inv(unit.mean(dict(q.params)))        # (a precision's E[Λ]⁻¹)
    out = []
    for k in range(resp.shape[1]):
        if k in gone:
            continue
        w = resp[:, k]
        total = w.sum()
        if not total > 0:
            continue
        m = means[k] if means is not None else w @ x / total
        d = x - m
        c = covs[k] if covs is not None else (d * w[:, None]).T @ d / total
        out.append((k, m, c))
    return out


def _ellipse(ax, mean: np.ndarray, cov: np.ndarray, colour) -> None:
    from matplotlib.patches import Ellipse

    w, v = np.linalg.eigh(cov)
    angle = math.degrees(math.atan2(v[1, 1], v[0, 1]))
    ax.add_patch(Ellipse(mean, 2 * ELLIPSE_SD * math.sqrt(max(w[1], 0)), 2 * ELLIPSE_SD * math.sqrt(max(w[0], 0)),
                         angle=angle, fill=False, edgecolor=colour, linewidth=2))
    ax.plot(*mean, marker="x", color=colour, markersize=10, mew=2)


def _trace(ax, r: Result) -> None:
    what = {"log_joint": "log joint", "log_likelihood": "log-likelihood"}.get(r.objective, "ELBO")
    ax.plot(np.arange(1, len(r.elbo_trace) + 1), r.elbo_trace, marker="." if len(r.elbo_trace) < 50 else None)
    ax.set_xlabel("iteration")
    ax.set_ylabel(what)
    status = "converged" if r.converged else "not converged"
    ax.set_title(f"{r.model}: {what} {r.elbo:.6g} ({status})")


def _marginals(ax, r: Result, name: str, gone: dict[str, set[int]]) -> None:
    q = r.q.get(name)
    value = None if q is not None else np.asarray(r.params[name])
    shape = q.shape if q is not None else value.shape
    axes = q.axes if q is not None else r.axes.get(name, ())
    indices = [i for i in np.ndindex(shape)
               if not any(i[a] in gone.get(d, ()) for a, d in enumerate(axes[: len(i)]))]
    unit = None if q is None else unit_of(q.family)
    if unit is not None and unit.symmetric:
        indices = [i for i in indices if i[-1] == i[-2]]
    for i in indices[:CURVES]:
        label = f"{name}[{', '.join(shown_label(r.labels, d, k) for d, k in zip(axes, i))}]" if i else name
        law = marginal(q, i) if q is not None and q.family != "point" else None
        if law is None:
            x0 = float(value[i]) if value is not None else float(np.asarray(q.params["value"])[i])
            ax.axvline(x0, label=label, color=f"C{indices.index(i) % 10}")
            continue
        lo, hi = law.ppf(0.0005), law.ppf(0.9995)
        if unit.discrete:
            ax.bar([0, 1], law.pmf([0, 1]), alpha=0.5, label=label)
            continue
        grid = np.linspace(lo, hi, 400)
        ax.plot(grid, law.pdf(grid), label=label)
    more = f" (first {CURVES} of {len(indices)})" if len(indices) > CURVES else ""
    ax.set_title(f"q({name}): {q.family if q is not None else 'param'}{more}")
    if len(indices) <= ROWS:
        ax.legend(fontsize="small")


def plot(r: Result, var_names=None, data: object = None, path: str | None = None):
    """The figure (a matplotlib Figure); ``path`` saves it (the extension chooses the format)."""
    plt = pyplot()
    names = _default_variables(r) if var_names is None else (
        [var_names] if isinstance(var_names, str) else list(var_names))
    for n in names:
        if n not in r.params:
            chosen(r, [n], "plot")
    from ppvi.io.results import observed

    arrays, where = observed(r, data)
    mixture = _mixture(r, arrays)
    if arrays is None and any(unit_of(q.family).labelled for q in r.q.values()):
        warnings.warn(PPVIWarning(Diagnostic(f"the data are not drawn: {where}", "plot", severity="note",
                                             hint="pass the data: plot(data=...), or --data PATH")), stacklevel=3)
    panels = 1 + (mixture is not None) + len(names)
    cols = 2 if panels > 1 else 1
    rows = math.ceil(panels / cols)
    fig, grid = plt.subplots(rows, cols, figsize=(6 * cols, 4.2 * rows), squeeze=False)
    axes = list(grid.ravel())
    _trace(axes[0], r)
    at = 1
    if mixture is not None:
        x, labels, resp, z = mixture
        ax = axes[at]
        at += 1
        ax.scatter(x[:, 0], x[:, 1], c=[f"C{k % 10}" for k in labels], s=8, alpha=0.6)
        for k, m, c in _components(r, z, x, resp):
            _ellipse(ax, m, c, f"C{k % 10}")
        ax.set_title(f"data coloured by the MAP label of {z}; ellipses: {ELLIPSE_SD:g} sd")
    gone = empty_components(r)
    for n in names:
        _marginals(axes[at], r, n, gone)
        at += 1
    for ax in axes[at:]:
        ax.set_visible(False)
    fig.tight_layout()
    if path is not None:
        save(fig, path)
    return fig


FIGURES = (".png", ".pdf", ".svg")


def check_figure(path: str) -> str:
    """Before drawing: ``path`` names a picture format and can be written; its extension."""
    from ppvi.files import check_writable

    ext = os.path.splitext(path)[1].lower()
    if ext not in FIGURES:
        raise PPVIError(Diagnostic(f"unknown picture format `{ext or '(none)'}`", path,
                                   hint="the extension chooses it: " + ", ".join(FIGURES)))
    check_writable(path, FIGURES)
    return ext


def save(fig, path: str) -> None:
    """Save atomically (the figure rendered in memory, then :func:`ppvi.files.write_atomic`)."""
    import io

    from ppvi.files import write_atomic

    ext = check_figure(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=ext[1:], dpi=110)
    write_atomic(path, buf.getvalue())
