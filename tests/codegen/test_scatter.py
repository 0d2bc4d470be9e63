"""Products of globals read at data-valued indices are scatters over the data plate (issue 14, item 4).

Bayesian PMF in long format reads ⟨P[user[t], k]⟩ ⟨Q[item[t], k]⟩: the expected square of the rating's mean
became a statistic over [items, users, items, users] (512 MB at 100 × 80, MemoryError at 2,000 × 2,000).  Such
a sum is one pass over the ratings into an array over one plate: O(ratings · K²) work, O(users · K²) memory.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ppvi.codegen.cache import fixed_sizes
from ppvi.codegen.ir import Assign, Bind, Expr, Loop, Module, Range, Ref, walk
from ppvi.codegen.module import generate, lower
from ppvi.codegen.passes import run_passes
from ppvi.codegen.plan import ArrayNames
from ppvi.codegen.scatter import by_rows, scatter_of
from ppvi.derive import derive
from ppvi.infer import program as program_module
from ppvi.language import load, loads
from programs import PMF, plain, pmf_data, program

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TAU = 2.0
LOG2PI = np.log(2 * np.pi)


def test_no_array_of_the_generated_code_spans_two_plate_sized_axes():
    src = generate(derive(loads(PMF, "<pmf>")), {"K": 3})
    plan_stats = re.search(r"arrays=(\{[^}]*\})", src).group(1)      # (the statistics' shapes in PLAN)
    for shape in re.findall(r"\(([^)]*)\)", plan_stats):
        assert sum(d in shape for d in ("'R'", "'U'", "'I'")) <= 1, plan_stats
    for shape in re.findall(r"np\.zeros\(\((.*?)\)\)", src):
        assert sum(d in shape for d in ("n_R", "n_U", "n_I")) <= 1, shape


def _reference(data: dict, p_mean, p_var, q_mean, q_var, sweeps: int, users: int, items: int):
    """Mean-field CAVI for PMF with q fully factorised over elements (the standard updates: Lim & Teh 2007,
    per element), in ppvi's order: P[u, 0], P[u, 1], … for every u, then Q likewise; each element from the
    newest values of the others:
        λ = 1 + τ Σ_{t: user[t] = u} ⟨Q[item[t], k]²⟩,
        m = τ Σ_{t: user[t] = u} ⟨Q[item[t], k]⟩ (r[t] − Σ_{k′ ≠ k} m[u, k′] ⟨Q[item[t], k′]⟩) / λ.
    Returns the means, variances and the ELBO (19.7) after each sweep."""
    user, item, r = data["user"], data["item"], data["r"]
    pm, pv, qm, qv = (a.copy() for a in (p_mean, p_var, q_mean, q_var))
    out = []
    for _ in range(sweeps):
        for (am, av, bm, bv, own, other, size) in ((pm, pv, qm, qv, user, item, users),
                                                  (qm, qv, pm, pv, item, user, items)):
            for k in range(am.shape[1]):
                rest = (am[own] * bm[other]).sum(1) - am[own, k] * bm[other, k]
                prec = 1 + TAU * np.bincount(own, bm[other, k] ** 2 + bv[other, k], minlength=size)
                am[:, k] = TAU * np.bincount(own, bm[other, k] * (r - rest), minlength=size) / prec
                av[:, k] = 1 / prec
        mean = (pm[user] * qm[item]).sum(1)
        square = (r - mean) ** 2 + ((pm[user] ** 2 + pv[user]) * (qm[item] ** 2 + qv[item])
                                    - pm[user] ** 2 * qm[item] ** 2).sum(1)
        elbo = (-0.5 * ((pm ** 2 + pv).sum() + (qm ** 2 + qv).sum()) - 0.5 * (pm.size + qm.size) * LOG2PI
                + 0.5 * len(r) * (np.log(TAU) - LOG2PI) - 0.5 * TAU * square.sum()
                + 0.5 * np.log(2 * np.pi * np.e * pv).sum() + 0.5 * np.log(2 * np.pi * np.e * qv).sum())
        out.append((pm.copy(), qm.copy(), pv.copy(), qv.copy(), elbo))
    return out


def test_pmf_follows_the_mean_field_updates_written_in_numpy():
    data = pmf_data()
    p = program("pmf")
    rng = np.random.default_rng(7)
    for v in ("P", "Q"):                  # (all-zero means are a fixed point of any bilinear model)
        p.state[f"q_{v}__mean"][...] = rng.normal(size=p.state[f"q_{v}__mean"].shape)
        p.state[f"q_{v}__sd"][...] = rng.uniform(0.5, 1.5, size=p.state[f"q_{v}__sd"].shape)
        p.state[f"m_{v}__x2"][...] = p.state[f"q_{v}__mean"] ** 2 + p.state[f"q_{v}__sd"] ** 2
    ref = _reference(data, p.state["q_P__mean"], p.state["q_P__sd"] ** 2, p.state["q_Q__mean"],
                     p.state["q_Q__sd"] ** 2, 8, p.sizes["U"], p.sizes["I"])
    assert p.schedule() == ["P", "Q"]
    elbos = []
    for _ in range(8):
        for var in p.schedule():
            p.update(var)
        elbos.append(p.elbo())
    pm, qm, pv, qv, _ = ref[-1]
    assert p.state["q_P__mean"] == pytest.approx(pm, rel=1e-9, abs=1e-12)
    assert p.state["q_Q__mean"] == pytest.approx(qm, rel=1e-9, abs=1e-12)
    assert p.state["q_P__sd"] ** 2 == pytest.approx(pv, rel=1e-9)
    assert p.state["q_Q__sd"] ** 2 == pytest.approx(qv, rel=1e-9)
    assert elbos == pytest.approx([r[4] for r in ref], rel=1e-10)
    assert np.all(np.diff(elbos) > 0)


LARGE = """
import json, resource, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from ppvi.api import Model
from ppvi.language import loads
from programs import PMF, pmf_data

def status(field):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":")) / 1024

m = Model(loads(PMF, "<pmf>"))
m.fit(pmf_data(), max_iter=2)                                    # compile (or load) the kernels first
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as fh:                   # the peak (VmHWM) from here
    fh.write("5")
data = pmf_data(users=2000, items=2000, ratings=3000, seed=1)
r = m.fit(data, max_iter=20, tol=0.0)
print(json.dumps({"peak_mb": status("VmHWM") - before, "elbo": r.elbo, "iterations": r.fit.iterations}))
"""


def test_pmf_at_2000_by_2000_with_3000_ratings_runs_in_small_memory():
    """Before: MemoryError (a statistic over [2000, 2000, 2000, 2000] floats, 116 TiB)."""
    proc = subprocess.run([sys.executable, "-c", LARGE, str(HERE)], capture_output=True, text=True, timeout=900,
                          env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["iterations"] >= 1 and np.isfinite(got["elbo"])
    # q: 2 × 2000 × 3 elements × 4 arrays; the scatter arrays 2000 × 3 × 3: well under a megabyte each
    assert got["peak_mb"] < 40, got


# ------------------------------------------------------------ the pass scatter_rows (codegen.scatter)
def _e(text: str, *reads: str) -> Expr:
    return Expr(text, frozenset(reads))


def _scatter(target: str = "_a", by: str = "v_user", value: Expr | None = None, op: str = "+=", var: str = "i0_r"):
    """for i0_r in range(n_R): for i1_k in range(3): target[int(by[i0_r]), i1_k] += value"""
    value = value if value is not None else _e(f"q_Q__mean[int(v_item[{var}]), i1_k]", "q_Q__mean", "v_item", var,
                                               "i1_k")
    ref = Ref(target, (_e(f"int({by}[{var}])", by, var), _e("i1_k", "i1_k")))
    inner = Loop(Range("i1_k", "3", reads=frozenset()), (Assign(ref, value, op),), "k")
    return Loop(Range(var, "n_R", reads=frozenset({"n_R"})), (inner,), "r")


def test_a_loop_over_the_data_that_only_adds_into_rows_of_index_data_scatters_by_them():
    assert scatter_of(_scatter(), "n_R") == "v_user"
    assert scatter_of(_scatter(by="v_item"), "n_R") == "v_item"


@pytest.mark.parametrize("loop, why", [
    (_scatter(value=_e("_a[0, i1_k]", "_a", "i1_k")), "it reads the array it adds to"),
    (_scatter(op="="), "an assignment, not a sum"),
    (_scatter(by="t_0"), "the row is not index data"),
    (Loop(Range("i0_r", "n_R", reads=frozenset({"n_R"})), (_scatter().body[0], _scatter(by="v_item").body[0])),
     "two index data"),
    (Loop(Range("i0_r", "n_R", reads=frozenset({"n_R"})), (Bind("i1_u", "int(v_user[i0_r])"), _scatter().body[0])),
     "an index binding that does not say what it reads"),
    (dataclasses.replace(_scatter(), range=Range("i0_r", "n_R", parallel=True, reads=frozenset({"n_R"}))),
     "already parallel"),
    (dataclasses.replace(_scatter(), range=Range("i0_r", "n_U", reads=frozenset({"n_U"}))), "not the data plate"),
])
def test_what_is_no_scatter_by_rows(loop, why):
    assert scatter_of(loop, "n_R") is None, why


def test_scatters_by_the_same_index_data_share_one_parallel_loop_over_the_rows():
    zeros = Assign(Ref("_b"), _e("np.zeros((n_U, 3,))", "n_U"))
    body, by = by_rows((Assign(Ref("_a"), _e("np.zeros((n_U, 3,))", "n_U")), _scatter(), zeros,
                        _scatter("_b", var="i2_r"), _scatter("_c", by="v_item")), "n_R")
    assert by == ("user", "item")
    assert [type(n).__name__ for n in body] == ["Assign", "Assign", "Loop", "Loop"]
    assert body[1] == zeros                      # (moved before the loop it no longer follows)
    for loop, data in zip(body[2:], ("user", "item")):
        assert loop.range.parallel and loop.range.var == "_row" and loop.axis == "rows"
        assert loop.range.stop == f"c_start__{data}.shape[0] - 1"
        (at,) = loop.body
        binds = [n for n in at.body if isinstance(n, Bind)]
        assert all(b.value == f"c_order__{data}[_at]" for b in binds)
        targets = [n.target for n in walk(at.body) if isinstance(n, Assign)]
        assert targets and all(t.index[0] == Expr("_row", frozenset({"_row"})) for t in targets)
    assert len([n for n in body[2].body[0].body if isinstance(n, Bind)]) == 2      # (i0_r and i2_r)
    # an assignment the scatter reads stays after it, and so the next scatter starts a loop of its own
    reads_a = Assign(Ref("_d"), _e("_a[0, 0]", "_a"))
    body, _ = by_rows((_scatter(), reads_a, _scatter("_b", var="i2_r")), "n_R")
    assert [type(n).__name__ for n in body] == ["Loop", "Assign", "Loop"]


@functools.lru_cache(maxsize=None)
def _passed(name: str) -> Module:
    """A model's IR after every pass (PMF inline, the rest from models/ or the corpus)."""
    if name == "pmf":
        return run_passes(lower(derive(loads(PMF, "<pmf>")), {"K": 3}))
    path = ROOT / "models" / f"{name}.ppvi"
    model = load(str(path if path.exists() else ROOT / "tests" / "corpus" / "models" / f"{name}.ppvi"))
    return run_passes(lower(derive(model), fixed_sizes(model)))


@pytest.mark.parametrize("name, rows, orders, chunked", [
    ("pmf", {"P": "user", "Q": "item"}, ("user", "item"), True),
    ("mixture_of_unigrams", {"phi": "word", "z": "doc"}, ("word", "doc"), True),
    ("gmm_1d", {}, (), False),              # (its sums over the data are statistics, by no index data)
    ("multilevel_regression", {}, (), True),   # (its scatters by county are the statistics', not an update's)
])
def test_which_updates_get_a_rows_kernel_and_which_elbo_sums_in_chunks(name, rows, orders, chunked):
    m = _passed(name)
    elbo = m.plan.elbo
    assert (elbo.large is not None) == chunked
    if chunked:
        k = m.kernel(elbo.large.name)
        assert k.parallel and elbo.plate == ArrayNames.size_of(m.plate)
        assert not any(isinstance(n, Loop) and n.range.stop == m.plate for n in walk(k.body))
        assert all(n.axis == "chunk" for n in walk(k.body) if isinstance(n, Loop) and n.range.parallel)
    assert {v: info.rows.name for v, info in m.plan.latents.items() if info.rows} == {v: f"rows_{v}" for v in rows}
    assert set(m.plan.orders) == set(orders)
    for v, data in rows.items():
        k = m.kernel(f"rows_{v}")
        assert k.role == "rows" and k.latent == v and k.parallel
        assert set(k.params) == set(m.kernel(f"update_{v}").params) | {f"c_order__{data}", f"c_start__{data}"}
        loops = [n for n in walk(k.body) if isinstance(n, Loop) and n.range.parallel]
        assert loops and all(n.axis == "rows" for n in loops)
        # no loop over the data plate is left in it: every one became a loop over the rows
        assert not any(isinstance(n, Loop) and n.range.stop == m.plate for n in walk(k.body))
    assert not any(k.role == "rows" for k in m.kernels if k.latent not in rows)


class _Spy:
    """The module's kernels (plain Python, or compiled), counting each call by name."""

    def __init__(self, module, compiled: bool):
        self.PLAN, self.calls, self._module = module.PLAN, collections.Counter(), module
        self._plain = plain(module)
        self._compiled = compiled

    def __getattr__(self, name):
        self.calls[name] += 1
        return getattr(self._module if self._compiled else self._plain, name)


@pytest.mark.parametrize("large", [True, False])
def test_the_rows_kernels_follow_the_mean_field_updates_written_in_numpy(large, monkeypatch, harness_long):
    """On a large data plate (here ROWS_FROM lowered to every plate) the engine runs the rows kernels in the
    updates' place, over the data it sorted when they were bound; the fit is the NumPy reference's.  Plain
    Python by default (the parallel kernels compile in seconds each), compiled with --long."""
    monkeypatch.setattr(program_module, "ROWS_FROM", 0 if large else program_module.ROWS_FROM)
    data = pmf_data()
    p = program("pmf")
    p.module = spy = _Spy(p.module, compiled=harness_long)
    order, start = p.state["c_order__user"], p.state["c_start__user"]
    assert np.array_equal(data["user"][order], np.sort(data["user"], kind="stable"))
    assert np.array_equal(np.diff(start), np.bincount(data["user"], minlength=p.sizes["U"]))
    rng = np.random.default_rng(7)
    for v in ("P", "Q"):
        p.state[f"q_{v}__mean"][...] = rng.normal(size=p.state[f"q_{v}__mean"].shape)
        p.state[f"q_{v}__sd"][...] = rng.uniform(0.5, 1.5, size=p.state[f"q_{v}__sd"].shape)
        p.state[f"m_{v}__x2"][...] = p.state[f"q_{v}__mean"] ** 2 + p.state[f"q_{v}__sd"] ** 2
    ref = _reference(data, p.state["q_P__mean"], p.state["q_P__sd"] ** 2, p.state["q_Q__mean"],
                     p.state["q_Q__sd"] ** 2, 3, p.sizes["U"], p.sizes["I"])
    for _ in range(3):
        for var in p.schedule():
            p.update(var)
    pm, qm, pv, qv, elbo = ref[-1]
    assert p.state["q_P__mean"] == pytest.approx(pm, rel=1e-9, abs=1e-12)
    assert p.state["q_Q__mean"] == pytest.approx(qm, rel=1e-9, abs=1e-12)
    assert p.state["q_P__sd"] ** 2 == pytest.approx(pv, rel=1e-9)
    assert p.state["q_Q__sd"] ** 2 == pytest.approx(qv, rel=1e-9)
    assert p.elbo() == pytest.approx(elbo, rel=1e-10)           # (its sums over the ratings in chunks if large)
    ran = {n for n in spy.calls if n.startswith(("rows_", "update_", "expected_log_joint"))}
    assert ran == ({"rows_P", "rows_Q", "expected_log_joint_large"} if large else
                   {"update_P", "update_Q", "expected_log_joint"})
    # a program over data it did not sort itself (a chunk's: ppvi.infer.chunks cuts the data, not their order)
    spy.calls.clear()
    dataclasses.replace(p, sorted_from={}).update("P")
    assert "update_P" in spy.calls and "rows_P" not in spy.calls


# ------------------------------------------------------------ the rows kernels and the chunked ELBO, 1 vs 2 threads
THREADS = """
import collections, hashlib, json, sys
import numpy as np
from ppvi.api import Model
from ppvi.infer import program as program_module

ran = collections.Counter()
call = program_module.Program._call
def spy(self, spec, reads=None):
    ran[spec.name] += 1
    return call(self, spec, reads)
program_module.Program._call = spy

rng = np.random.default_rng(3)
R, U, I = program_module.ROWS_FROM + 1000, 300, 200
truth_p, truth_q = rng.normal(size=(U, 3)), rng.normal(size=(I, 3))
user, item = rng.integers(0, U, R), rng.integers(0, I, R)
rating = (truth_p[user] * truth_q[item]).sum(1) + rng.normal(scale=0.7, size=R)
r = Model.load(sys.argv[1]).fit({"user": user, "item": item, "rating": rating}, U=U, I=I, seed=1, max_iter=4,
                                 tol=0.0)
h = hashlib.sha256(np.asarray(r.elbo_trace, dtype=float).tobytes())
for name in sorted(r.q):
    for key in sorted(k for k in r.q[name] if k != "family"):
        h.update(f"{name}.{key}".encode())
        h.update(np.ascontiguousarray(r.q[name][key], dtype=float).tobytes())
print(json.dumps({"digest": h.hexdigest(), "trace": list(r.elbo_trace), "ran": sorted(ran)}))
"""


def _bpmf_fit(threads: str) -> dict:
    env = {**os.environ, "NUMBA_NUM_THREADS": threads}      # (the same ppvi and kernel cache as this run)
    proc = subprocess.run([sys.executable, "-c", THREADS, str(ROOT / "models" / "bpmf.ppvi")], capture_output=True,
                          text=True, env=env, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.long     # (two compiled fits over 2¹⁷ ratings: minutes)
def test_the_rows_kernels_and_the_chunked_elbo_give_the_same_fit_on_one_and_two_threads():
    """Bayesian PMF over more than ROWS_FROM ratings, compiled: the parallel rows kernels (pass scatter_rows) run
    in the local updates' place and the ELBO sums in chunks; q and the ELBO trace are the same bit for bit
    under NUMBA_NUM_THREADS=1 and 2 (each row is one thread's; chunks are fixed and reduced in order)."""
    one, two = _bpmf_fit("1"), _bpmf_fit("2")
    for got in (one, two):
        assert {"rows_P", "rows_Q", "expected_log_joint_large"} <= set(got["ran"]), got["ran"]
        assert not {"update_P", "update_Q", "expected_log_joint"} & set(got["ran"]), got["ran"]
    assert one["trace"] == two["trace"]
    assert one["digest"] == two["digest"]
