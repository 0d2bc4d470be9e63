"""The summary of a result: a table of every q, as text (fitted to a width), HTML and a pandas DataFrame.

Every scalar entry of a latent gets its mean, sd and central credible interval
(the marginal quantiles of :mod:`ppvi.io.posterior`); a param or a point q its
value.  A Categorical latent is summarised by its components instead: the size
Σₙ q(zₙ = k) and the number of elements whose most probable label is k (its
"mean" Σ k p_k means nothing for labels).  A component with size below ½ and no
label is *empty*; the entries of other variables on that component are
collapsed into one line (marked ``empty`` in the frame).  A MvNormal's rows are
followed by the correlations of q's covariance, a Wishart's by the sds and
correlations of the covariance E[Λ]⁻¹ it implies.  Large variables are
summarised: a Dirichlet with a long last axis by its top entries per row (an
LDA topic's top words), anything else by the range of its means and sds.

The decisions are made on data (:class:`Block` rows) before any text is laid
out; text, HTML and frames are three renderings of them.
"""

from __future__ import annotations

import dataclasses

import html
import math
import mmap
import shutil
from dataclasses import dataclass, field
from functools import cached_property
from typing import Mapping

import numpy as np

from ppvi.families.registry import unit_of
from ppvi.families.unit import Unit
from ppvi.io import posterior
from ppvi.io.labels import shown_label
from ppvi.io.results import ELBO_LOG_Z
from ppvi.result import Q, Result

ROWS = 30            # a variable with more entries (after collapsing empty components) is summarised
GROUPS = 12          # at most this many rows of top entries (topics)
TOP = 5              # entries shown per row of a long Dirichlet
PAIRS = 6            # correlations shown per matrix
EMPTY = 0.5          # a component with Σₙ q(zₙ = k) below this and no MAP label is empty
ROUNDOFF = 1e-12     # |x| below this times the entry's scale shows as 0
NUMBER = 10          # characters of a number column
BLOCK_ROWS = 1 << 14  # rows of a memory-mapped local q read at a time


# ----------------------------------------------------------------- data
@dataclass(frozen=True)
class Row:
    """One line of a block: an entry with numbers, or text."""

    label: str
    numbers: tuple[float | None, ...] | None = None      # mean, sd, lo, hi (None: not applicable)
    text: str = ""


@dataclass(frozen=True)
class Block:
    """A variable: its header and rows."""

    name: str
    header: str
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class Components:
    """A Categorical latent's components: size Σ q(z = k), MAP label counts, which are empty."""

    name: str
    dim: str
    elements: int
    sizes: np.ndarray
    counts: np.ndarray
    empty: np.ndarray          # bool per component
    labels: tuple[str, ...] = ()       # the dim's labels (index data given as labels: ppvi.io.labels)


def _mapping(a: np.ndarray) -> mmap.mmap | None:
    """The memory map ``a`` is a view of (a streamed fit's local q are views of mapped .npy files), if any."""
    while isinstance(a, np.ndarray):
        a = a.base
    return a if isinstance(a, mmap.mmap) else None


def _row_blocks(a: np.ndarray, rows: int = BLOCK_ROWS):
    """``a``'s rows: whole when in memory; a block at a time when memory-mapped (docs/scale.md, "The local
    q"), each block's pages released after it: a mapped file's pages once touched count in the process's
    resident memory until it exits, and a streamed fit's local q may be far larger than memory."""
    mapped = _mapping(a)
    if mapped is None or not hasattr(mmap, "MADV_DONTNEED"):
        yield a
        return
    for i in range(0, a.shape[0], rows):
        yield np.array(a[i:i + rows])
        mapped.madvise(mmap.MADV_DONTNEED)


def _components(name: str, q: Q, labels: Mapping[str, tuple[str, ...]] | None = None) -> Components:
    p = np.asarray(q.params["p"])
    k = p.shape[-1]
    flat = p.reshape(-1, k)
    sizes = np.zeros(k)
    counts = np.zeros(k, dtype=np.int64)
    for block in _row_blocks(flat):
        sizes += block.sum(0)
        counts += np.bincount(block.argmax(-1), minlength=k) if block.shape[0] else 0
    sizes = np.where(sizes < ROUNDOFF * max(flat.shape[0], 1), 0.0, sizes)     # (round-off shows as 0)
    empty = (sizes < EMPTY) & (counts == 0) if flat.shape[0] > 1 else np.zeros(k, dtype=bool)
    return Components(name, q.categories or "", flat.shape[0], sizes, counts, empty,
                      tuple((labels or {}).get(q.categories or "", ())))


def _unit(kind: str) -> Unit:
    """The unit of a q family or of ``point``; a param's is the point's (a value, no law)."""
    return unit_of("point" if kind == "param" else kind)


def empty_components(result: Result) -> dict[str, set[int]]:
    """For each dim a Categorical's values index: the components empty under every such Categorical."""
    out: dict[str, set[int]] = {}
    for name, q in result.q.items():
        if unit_of(q.family).labelled:
            c = _components(name, q)
            here = set(np.flatnonzero(c.empty).tolist())
            out[c.dim] = out[c.dim] & here if c.dim in out else here
    return out


@dataclass(frozen=True)
class Entries:
    """Every scalar entry of one variable: mean, sd, quantiles (lo, hi), and which are on empty components."""

    name: str
    kind: str                  # a q family, "param"
    axes: tuple[str, ...]
    mean: np.ndarray
    sd: np.ndarray | None
    lo: np.ndarray | None
    hi: np.ndarray | None
    empty: np.ndarray          # bool, the value's shape
    labels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)    # dim -> labels, shown for codes


def _entries(name: str, kind: str, axes: tuple[str, ...], params: dict | None, value: np.ndarray | None,
             empties: dict[str, set[int]], p: float, quantiles: bool,
             labels: Mapping[str, tuple[str, ...]] | None = None) -> Entries:
    if kind == "point":
        mean, sd, lo, hi = np.asarray(params["value"], dtype=float), None, None, None
    elif params is not None:
        mean = np.asarray(posterior.mean(kind, params), dtype=float)
        var = posterior.variance(kind, params)
        sd = None if var is None else np.sqrt(var)
        lo = hi = None
        if quantiles:       # (None where the family has no quantile function: the columns stay blank)
            lo, hi = (posterior.quantile(kind, params, x) for x in ((1 - p) / 2, (1 + p) / 2))
            lo, hi = (None, None) if lo is None else (np.asarray(lo, dtype=float), np.asarray(hi, dtype=float))
    else:
        mean, sd, lo, hi = np.asarray(value, dtype=float), None, None, None
    empty = np.zeros(mean.shape, dtype=bool)
    for axis, dim in enumerate(axes[: mean.ndim]):
        gone = sorted(empties.get(dim, ()))
        if gone:
            index = [slice(None)] * mean.ndim
            index[axis] = gone
            empty[tuple(index)] = True
    return Entries(name, kind, axes, mean, sd, lo, hi, empty, dict(labels or {}))


def _clean(x: np.ndarray | None, scale: np.ndarray) -> np.ndarray | None:
    """Round-off shows as 0: |x| below ROUNDOFF times the entry's scale."""
    if x is None:
        return None
    return np.where(np.abs(x) < ROUNDOFF * scale, 0.0, x)


def _scale(e: Entries) -> np.ndarray:
    finite = np.abs(e.mean[np.isfinite(e.mean) & ~e.empty])
    scale = np.maximum(np.abs(e.mean), finite.max() if finite.size else 0.0)
    return np.maximum(scale, e.sd) if e.sd is not None else scale


def _index(i: tuple[int, ...], e: Entries | None = None) -> str:
    """``[2, 0]``; an axis whose dim has labels shows the label (``a[alice]``)."""
    if e is None:
        return "[" + ", ".join(map(str, i)) + "]" if i else ""
    return "[" + ", ".join(shown_label(e.labels, dim, k) for dim, k in zip(e.axes, i)) + "]" if i else ""


def _ranges(values: list[int]) -> str:
    """[2, 3, 4, 6] -> "2–4, 6"."""
    out, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            out.append(str(start) if start == v else f"{start}–{v}")
            start = None
    return ", ".join(out)


# ----------------------------------------------------------------- blocks
def _kind_label(e: Entries) -> str:
    return {"param": "param", "point": "point (MAP)"}.get(e.kind, e.kind)


def _header(e: Entries) -> str:
    dims = " × ".join(f"{a}={n}" for a, n in zip(e.axes, e.mean.shape))
    return f"{e.name}  {_kind_label(e)}" + (f"  [{dims}]" if dims else "")


def _shown(e: Entries) -> list[tuple[int, ...]]:
    """The entries listed one per row: not on an empty component; a Wishart's upper triangle (symmetric)."""
    shown = [i for i in np.ndindex(e.mean.shape) if not e.empty[i]]
    return [i for i in shown if i[-2] <= i[-1]] if _unit(e.kind).symmetric else shown


def _block(e: Entries, q: Q | None) -> Block:
    shown = _shown(e)
    scale = _scale(e)
    mean, lo, hi = _clean(e.mean, scale), _clean(e.lo, scale), _clean(e.hi, scale)
    rows: list[Row] = []
    if len(shown) > ROWS:
        rows += _large(e, mean)
    elif not e.mean.shape:
        return Block(e.name, _header(e), (Row("", _numbers(mean, e.sd, lo, hi, ())),))
    else:
        rows += [Row("  " + _index(i, e), _numbers(mean, e.sd, lo, hi, i)) for i in shown]
        if q is not None and (_unit(q.family).symmetric or _unit(q.family).covariance(dict(q.params)) is not None):
            rows += _correlations(e, q)
    if e.empty.any():
        rows.append(Row("  " + _empty_label(e), text="empty components"))
    return Block(e.name, _header(e), tuple(rows))


def _imputed(name: str, q: Q, p: float) -> Block:
    """The missing entries of a data variable (``data x : missing``): q of each; the observed ones are data."""
    count = int(q.missing.sum())
    e = _entries(name, q.family, q.axes, dict(q.params), None, {}, p, count <= ROWS)
    with np.errstate(invalid="ignore", divide="ignore"):     # (a point mass's interval, never shown)
        e = dataclasses.replace(e, empty=~q.missing)
    block = _block(e, q)
    rows = tuple(r for r in block.rows if r.text != "empty components")
    header = f"{_header(e)}  imputed: {count:,} missing of {q.missing.size:,} entries"
    return Block(block.name, header, rows)


def _numbers(mean, sd, lo, hi, i) -> tuple[float | None, ...]:
    def at(a):
        return None if a is None else float(a[i])
    return at(mean), at(sd), at(lo), at(hi)


def _empty_label(e: Entries) -> str:
    parts = []
    for axis in range(e.mean.ndim):
        along = np.flatnonzero(e.empty.all(axis=tuple(a for a in range(e.mean.ndim) if a != axis)))
        parts.append(_ranges(along.tolist()) if 0 < along.size < e.mean.shape[axis] else ":")
    return "[" + ", ".join(parts) + "]"


def _large(e: Entries, mean: np.ndarray) -> list[Row]:
    """A variable too large to list: top entries per row of a long Dirichlet (LDA's topics), or ranges."""
    groups = [i for i in np.ndindex(e.mean.shape[:-1]) if not e.empty[i].all()]
    if _unit(e.kind).proportions and e.mean.shape[-1] > ROWS and len(groups) <= GROUPS:
        rows = []
        last = e.axes[-1] if e.axes else "k"
        for g in groups:
            top = np.argsort(-mean[g], kind="stable")[:TOP]
            rows.append(Row("  " + _index(g, e), text=f"top {last}: " + ", ".join(
                f"{k} ({_number(mean[g][k])})" for k in top)))
        return rows
    keep = ~e.empty
    m = mean[keep]
    text = (f"{m.size:,} entries: mean from {_number(m.min())} to {_number(m.max())} "
            f"(median {_number(np.median(m))})")
    if e.sd is not None:
        s = e.sd[keep]
        text += f"; sd from {_number(s.min())} to {_number(s.max())}"
    return [Row("  ", text=text)]


def _correlations(e: Entries, q: Q) -> list[Row]:
    """MvNormal: correlations of q's covariance; Wishart: sds and correlations of E[Λ]⁻¹."""
    unit = _unit(q.family)
    if unit.symmetric:
        cov, what = np.linalg.inv(unit.mean(dict(q.params))), "E[Λ]⁻¹"
    else:
        cov, what = unit.covariance(dict(q.params)), "corr"
    rows = []
    for g in np.ndindex(cov.shape[:-2]):
        if e.empty[g].all():
            continue
        c = cov[g]
        sd = np.sqrt(np.diagonal(c))
        corr = c / np.outer(sd, sd)
        d = len(sd)
        pairs = sorted(((i, j) for i in range(d) for j in range(i + 1, d)), key=lambda ij: -abs(corr[ij]))[:PAIRS]
        text = ", ".join(f"({i},{j}) {_number(corr[i, j])}" for i, j in sorted(pairs))
        if not unit.symmetric:
            if pairs:
                rows.append(Row("  " + _index(g, e), text=f"corr {text}"))
        else:
            rows.append(Row("  " + _index(g, e), text=f"{what}: sd {', '.join(_number(s) for s in sd)}"
                            + (f"; corr {text}" if pairs else "")))
    return rows


def _number(x: float | None) -> str:
    if x is None:
        return ""
    return f"{x:.4g}"


# ----------------------------------------------------------------- the summary
def _headline(r: Result) -> str:
    status = "converged" if r.converged else ("interrupted" if r.interrupted else "not converged")
    what = {"log_joint": "log joint at the MAP point", "log_likelihood": "log-likelihood (EM)",
            ELBO_LOG_Z: "ELBO (a lower bound on log Z, not on log p(v))"}.get(r.objective, "ELBO")
    restart = f", best of restarts: #{r.restart}" if r.restart else ""
    line = f"{what} {r.elbo:.10g} after {r.iterations} iterations ({status}, {r.seconds:.3g} s{restart})"
    if not r.predicted:
        return line
    path = r.provenance.given.get("path")
    source = f"given {path}" if path else "(the global q of a result held fixed)"
    held = " (its global q held fixed)" if path else ""
    return f"prediction {source}{held}: {line}"


class Summary(str):
    """The text table (this str), with the same content as a DataFrame (:meth:`to_frame`) and as HTML.

    ``components`` holds each Categorical latent's sizes and MAP counts (:meth:`components_frame`)."""

    result: Result
    p: float
    blocks: tuple[Block, ...]
    components: tuple[Components, ...]

    def __new__(cls, result: Result, p: float, width: int):
        empties = empty_components(result)
        comps = tuple(_components(n, q, result.labels) for n, q in result.q.items() if _unit(q.family).labelled)
        blocks = []
        for name, q in result.q.items():
            if _unit(q.family).labelled:
                continue
            if q.missing is not None:
                blocks.append(_imputed(name, q, p))
                continue
            e = _entries(name, q.family, q.axes, dict(q.params), None, empties, p, False, result.labels)
            if len(_shown(e)) <= ROWS:        # (quantiles only for what is listed: a large local q has many)
                e = _entries(name, q.family, q.axes, dict(q.params), None, empties, p, True, result.labels)
            blocks.append(_block(e, q))
        for name, value in result.params.items():
            blocks.append(_block(_entries(name, "param", result.axes.get(name, ()), None, value, empties, p, False,
                                          result.labels), None))
        self = super().__new__(cls, _text(result, p, tuple(blocks), comps, width))
        self.result, self.p, self.blocks, self.components = result, p, tuple(blocks), comps
        return self

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return _html(self)

    @cached_property
    def frame(self):
        return self.to_frame()

    def to_frame(self):
        """Every scalar entry of every latent (not Categorical ones: see :meth:`components_frame`) and param:
        variable, q, mean, sd, the interval's two ends, and a note (``empty`` on an empty component)."""
        import pandas as pd

        lo, hi = _bounds(self.p)
        empties = empty_components(self.result)
        records = []
        variables = [(n, q.family, q.axes, dict(q.params), None) for n, q in self.result.q.items()
                     if not _unit(q.family).labelled]
        variables += [(n, "param", self.result.axes.get(n, ()), None, v) for n, v in self.result.params.items()]
        for name, kind, axes, params, value in variables:
            e = _entries(name, kind, axes, params, value, empties, self.p, True, self.result.labels)
            scale = _scale(e)
            cols = [_clean(e.mean, scale), e.sd, _clean(e.lo, scale), _clean(e.hi, scale)]
            for i in np.ndindex(e.mean.shape):
                records.append((name + _index(i, e), name, _kind_label(e),
                                *(math.nan if c is None else float(c[i]) for c in cols),
                                "empty" if e.empty[i] else ""))
        frame = pd.DataFrame.from_records(records, columns=["entry", "variable", "q", "mean", "sd", lo, hi, "note"])
        return frame.set_index("entry")

    def components_frame(self):
        """Each Categorical latent's components: size Σ q(z = k), MAP label count, empty (and ``label``, the
        component's label, where the dim has labels)."""
        import pandas as pd

        labelled = any(c.labels for c in self.components)
        records = [(c.name, k, float(c.sizes[k]), int(c.counts[k]), bool(c.empty[k]))
                   + ((c.labels[k] if k < len(c.labels) else None,) if labelled else ())
                   for c in self.components for k in range(len(c.sizes))]
        return pd.DataFrame.from_records(records, columns=["variable", "component", "size", "map_count", "empty"]
                                         + (["label"] if labelled else []))


def _bounds(p: float) -> tuple[str, str]:
    return f"{100 * (1 - p) / 2:.3g}%", f"{100 * (1 + p) / 2:.3g}%"


def summarise(result: Result, p: float = 0.9, width: int | None = None) -> Summary:
    if not (isinstance(p, (int, float)) and not isinstance(p, bool) and 0 < p < 1):
        from ppvi.errors import Diagnostic, PPVIError

        raise PPVIError(Diagnostic(f"p={p!r}: the interval's probability is a number in (0, 1)", "summary"))
    if width is None:
        width = shutil.get_terminal_size((100, 24)).columns
    return Summary(result, float(p), max(int(width), 40))


# ----------------------------------------------------------------- text
def _fit(text: str, width: int, indent: str = "") -> list[str]:
    """``text`` broken at spaces into lines of at most ``width`` characters (words longer than a line cut)."""
    import textwrap

    return textwrap.wrap(text, width, subsequent_indent=indent, break_long_words=True, break_on_hyphens=False) \
        or [""]


def _text(r: Result, p: float, blocks: tuple[Block, ...], comps: tuple[Components, ...], width: int) -> str:
    lines = _fit(_headline(r), width, "  ")
    if r.provenance is not None and r.provenance.sweep:
        lines += _fit("sweep: " + "; ".join(r.provenance.sweep), width, "  ")
    for c in comps:
        lines.append("")
        lines += _components_text(c, width)
    if blocks:
        lo, hi = _bounds(p)
        labels = [row.label for b in blocks for row in b.rows if row.numbers is not None]
        label_width = max([len(x) for x in labels] + [2])
        # narrow: mean and sd beside the label, the interval on a line of its own
        narrow = label_width + 4 * (NUMBER + 1) > width
        label_width = min(label_width, width - (2 if narrow else 4) * (NUMBER + 1))
        shown = ("mean", "sd") if narrow else ("mean", "sd", lo, hi)
        columns = "".join(f" {h:>{NUMBER}}" for h in shown)
        lines += ["", " " * label_width + columns]
        for b in blocks:
            lines += _fit(b.header, width, "    ")
            for row in b.rows:
                if row.numbers is None:
                    text = f"{row.label}  {row.text}" if row.label.strip() else f"    {row.text}"
                    lines += _fit(text, width, "      ")
                else:
                    label = row.label if len(row.label) <= label_width else row.label[: label_width - 1] + "…"
                    lines.append(label.ljust(label_width) + "".join(
                        f" {_number(x):>{NUMBER}}" for x in row.numbers[: len(shown)]).rstrip())
                    if narrow and row.numbers[2] is not None:
                        lines.append(f"{'':{label_width}} {lo}–{hi}: {_number(row.numbers[2])} … "
                                     f"{_number(row.numbers[3])}")
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _component(c: Components, k: int) -> str:
    """Component k as its label where the dim has labels."""
    return shown_label({c.dim: c.labels}, c.dim, k)


def _components_text(c: Components, width: int) -> list[str]:
    lines = _fit(f"{c.name}  Categorical over {c.dim} = {len(c.sizes)} ({c.elements:,} elements)", width, "    ")
    order = [k for k in range(len(c.sizes)) if not c.empty[k]]
    if len(order) > GROUPS * 2:
        order = sorted(order, key=lambda k: -c.sizes[k])[: GROUPS * 2]
    head = f"{'k':>8} {'size':>{NUMBER}} {'MAP labels':>{NUMBER + 1}}"
    lines.append(head)
    lines += [f"{_component(c, k):>8} {c.sizes[k]:>{NUMBER}.4g} {int(c.counts[k]):>{NUMBER + 1}}"
              for k in sorted(order)]
    rest = len(c.sizes) - c.empty.sum() - len(order)
    if rest:
        largest = np.sort(c.sizes[~c.empty])[rest - 1]        # (of those not shown: the smallest ones)
        lines.append(f"{'…':>8} {rest} more components, each of size ≤ {_number(largest)}")
    if c.empty.any():
        lines += _fit(f"{_ranges(np.flatnonzero(c.empty).tolist()):>8} empty (size < {EMPTY:g}, no MAP label)",
                      width, " " * 9)
    return lines


# ----------------------------------------------------------------- HTML
def _html(s: Summary) -> str:
    r = s.result
    e = html.escape
    out = [f"<div class='ppvi-result'><p><b>{e(r.model)}</b>: {e(_headline(r))}</p>"]
    if r.provenance is not None and r.provenance.sweep:
        out.append(f"<p>sweep: {e('; '.join(r.provenance.sweep))}</p>")
    out += [f"<p style='color:#a50'>{e(w)}</p>" for w in r.warnings]
    for c in s.components:
        out.append(f"<p><b>{e(c.name)}</b> Categorical over {e(c.dim)} = {len(c.sizes)}, {c.elements:,} elements</p>"
                   "<table><tr><th>k</th><th>size</th><th>MAP labels</th></tr>")
        out += [f"<tr><td>{e(_component(c, k))}</td><td>{c.sizes[k]:.4g}</td><td>{int(c.counts[k])}</td></tr>"
                for k in range(len(c.sizes)) if not c.empty[k]]
        if c.empty.any():
            out.append(f"<tr><td colspan=3>{e(_ranges(np.flatnonzero(c.empty).tolist()))}: empty</td></tr>")
        out.append("</table>")
    if s.blocks:
        lo, hi = _bounds(s.p)
        out.append("<table><tr><th></th>" + "".join(f"<th>{e(h)}</th>" for h in ("mean", "sd", lo, hi)) + "</tr>")
        for b in s.blocks:
            out.append(f"<tr><th colspan=5 style='text-align:left'>{e(b.header)}</th></tr>")
            for row in b.rows:
                if row.numbers is None:
                    out.append(f"<tr><td>{e(row.label.strip())}</td><td colspan=4 style='text-align:left'>"
                               f"{e(row.text)}</td></tr>")
                else:
                    out.append(f"<tr><td>{e(row.label.strip())}</td>" +
                               "".join(f"<td>{_number(x)}</td>" for x in row.numbers) + "</tr>")
        out.append("</table>")
    out.append("</div>")
    return "".join(out)
