"""The map/reduce split (ppvi.codegen.statistics): statistics are exact rewrites, filled identically by
the fused local step and by the stand-alone pass, and the global step never reads the data itself."""

from __future__ import annotations

import dataclasses

import functools
import itertools
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import ppvi
from ppvi.codegen.cache import fixed_sizes
from ppvi.codegen.module import ModuleWriter
from ppvi.codegen.rewrite import Scope, statistics
from ppvi.derive.meanfield import derive
from ppvi.derive.numeric import Env, evaluate

MODELS = Path(__file__).resolve().parents[2] / "models"
# (Last to first: tests/codegen/test_differential.py and tests/infer/test_run_cli.py fit the same models first to
# last, and a model two xdist workers meet at once is compiled twice; run the other way, they meet once.)
ALL = sorted((p.stem for p in MODELS.glob("*.ppvi")), reverse=True)


@functools.lru_cache(maxsize=None)
def _fitted(stem: str, iters: int = 3, rows: int = 40):
    """The program after a few sweeps on the first ``rows`` rows of the bundled data (the reference
    evaluator below is slow)."""
    from ppvi.graph.factor_graph import build
    from ppvi.io.data import default_data_path, read

    m = ppvi.load(str(MODELS / f"{stem}.ppvi"))
    plate = build(m.checked).data_plate
    data = read(default_data_path(m.checked.path), m.checked)
    small = {k: v[:rows] if m.checked.variables[k].shape[:1] == (plate,) and m.checked.variables[k].kind == "data"
             else v for k, v in data.items()}
    return m.fit(small, max_iter=iters, tol=0.0).fit.program


def _env(p) -> Env:
    """The program's current state, as the reference evaluator's environment."""
    arrays, moments = {}, {}
    for k, v in p.state.items():
        if k.startswith("v_"):
            arrays[k[2:]] = v if v.shape != (1,) else float(v[0])
        elif k.startswith("m_"):
            var, stat = k[2:].split("__", 1)
            moments[(var, stat)] = v if v.shape != (1,) else float(v[0])
        elif k.startswith("q_"):        # (q's sd: a located mean's spread, codegen.centre)
            var, param = k[2:].split("__", 1)
            arrays[f"{param}({var})"] = v if v.shape != (1,) else float(v[0])
    return Env(arrays, moments, p.sizes)


@functools.lru_cache(maxsize=None)
def _writer(stem: str) -> ModuleWriter:
    model = _fitted(stem).model
    mw = ModuleWriter(derive(model), fixed_sizes(model))       # (as the program's module: K a literal)
    mw.source()
    return mw


@pytest.mark.parametrize("stem", ["gmm_1d", "lda", "dirichlet_categorical", "normal_gamma"] + [
    pytest.param(s, marks=pytest.mark.long) for s in ("gmm", "em_gmm", "binary_sparse_coding", "linreg")])
def test_separating_the_statistics_is_exact(stem):
    """Σ_n f(n, globals) rewritten as Σ_F c(F) Σ_n s(n, F) has the same value (ELBO terms and η)."""
    p = _fitted(stem)
    mw = _writer(stem)
    env = _env(p)
    exprs = [e for label, e in mw.d.elbo_terms() if label.startswith("E[")]
    for q in mw.d.q.values():
        if q.scope == "global" and not q.index and not q.event and q.extra is None:
            exprs += list(q.natural.values())
    for e in exprs:
        a, b = evaluate(e, env), evaluate(statistics(e, Scope(stats=mw.stats)), env)
        assert b == pytest.approx(a, rel=1e-10, abs=1e-9)


@pytest.mark.parametrize("stem", ALL)
def test_the_local_step_and_the_statistics_pass_agree_with_the_reference(stem):
    p = _fitted(stem)
    stats = p.plan.stats
    if stats is None:
        pytest.skip("no sums over the data plate")
    after_sweep = {k: p.state[k].copy() for k in stats.arrays}
    getattr(p.module, stats.kernel.name)(*(p.state[a] for a in stats.kernel.args))
    for k in stats.arrays:
        # (the same sums; a blocked local step adds up a block's points by a matrix product, in another order)
        np.testing.assert_allclose(p.state[k], after_sweep[k], rtol=1e-12, atol=1e-12)
    env = _env(p)
    mw = _writer(stem)
    rng = np.random.default_rng(0)
    for s in mw.stats.found.values():
        arr = p.state[s.name]
        for flat in rng.choice(arr.size, size=min(arr.size, 5), replace=False):
            at = np.unravel_index(flat, arr.shape)
            bound = dict(zip(s.axes, (int(i) for i in at)))
            assert arr[at] == pytest.approx(evaluate(s.expr, env, bound), rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("stem", ALL)
def test_the_global_step_reads_statistics_not_data(stem):
    """Only the local updates (and the statistics) pass over the data plate: every other kernel of every
    example model reads sums of it from ``t_`` arrays — except where the sum holds the expectation of a
    global latent updated earlier in the same sweep, which no statistic kept from before can hold."""
    from ppvi.graph.factor_graph import build

    p = _fitted(stem)
    plan = p.plan
    plate = build(p.model).data_plate
    big = [v.name for v in p.model.variables.values() if v.kind == "data" and v.shape[:1] == (plate,)]
    kernels = [info.update for v, info in plan.latents.items() if info.scope == "global"]
    kernels += [info.update for info in plan.points.values() if info.kind == "param"]
    kernels.append(plan.elbo.kernel)
    for info in kernels:
        read = {a[2:] for a in info.args if a.startswith("v_")}
        assert read & set(big) == READS_THE_DATA.get((stem, info.name), set()), (info.name, read & set(big))


# (model, kernel) -> the data it reads over the data plate, and why no statistic stands for it
READS_THE_DATA = {
    # an exp link (docs/derivation.md, section 10): Σ_n exp(E[ψ_n] + Var[ψ_n]/2) reads every coefficient's q,
    # which moves within the sweep (and within each Newton step), so the updates and the ELBO pass over x (b's update
    # is w's block step, which moves b with w: update_b is none)
    ("poisson_regression", "update_w"): {"x"},
    ("poisson_regression", "expected_log_joint"): {"x"},
    # Σ_r [user_r = u] rating_r E[Q_item_r]: a sum over the ratings of another global latent's mean, which
    # moves within the sweep; the ELBO's E[(rating_r − P_u·Q_i)²] likewise
    ("bpmf", "update_P"): {"user", "item", "rating"},
    ("bpmf", "update_Q"): {"user", "item", "rating"},
    ("bpmf", "expected_log_joint"): {"user", "item", "rating"},
    # Σ_n E[(y_n − a_c − b_c x_n)²] at c = county_n: the data-only parts per county (Σ x_n, Σ x_n², Σ y_n x_n
    # over a county's rows) could be statistics scattered by county once; today the update passes over the rows
    ("multilevel_regression", "update_tau_y"): {"county", "x"},
    ("multilevel_regression", "expected_log_joint"): {"county", "x"},
}


def test_the_mixture_statistics_are_the_textbook_sums():
    """PRML (10.51)–(10.53): N_k = Σ_n r_nk, Σ_n r_nk x_n, Σ_n r_nk x_n x_nᵀ, from the fitted q(z)."""
    p = _fitted("gmm", iters=5, rows=300)
    r, x = p.state["q_z__p"], p.state["v_x"]
    want = [r.sum(0), np.einsum("nk,nd->dk", r, x), np.einsum("nk,nd,ne->dek", r, x, x)]
    got = [p.state[k] for k in p.plan.stats.arrays]
    for w in want:      # (in any order of the axes: that is the code generator's choice)
        assert any(g.shape == v.shape and np.allclose(g, v, rtol=1e-12, atol=1e-9)
                   for g in got for v in (np.transpose(w, axes) for axes in itertools.permutations(range(w.ndim))))
    assert len(got) == 3          # (the ELBO's Σ_{n,k} r_nk is Σ_k N_k, not a sum of its own)
    assert p.plan.latents["z"].local_step is not None     # q(z) and the sums in one pass


@pytest.mark.parametrize("stem", ALL)
def test_a_statistic_sums_over_the_data_plate_and_no_fixed_dim(stem):
    """Σ_{n,b} f(n, b), b over a dim the model fixes (K, the atoms), is kept as Σ_b of the statistic Σ_n f(n, b):
    its partial sums are independent adds over b, not a chain of them per point, and the same array often
    serves other kernels.  Over a dim the data give (D, V) the sum stays whole (no array over V or D²)."""
    p = _fitted(stem)
    if p.plan.stats is None:
        pytest.skip("no sums over the data plate")
    given = {n for n, d in p.model.dims.items() if d.default is not None}
    for s in _writer(stem).stats.found.values():
        fixed = [i for i, lo, hi in s.expr.limits
                 if str(i) != "_n" and {str(x) for x in (sp.sympify(hi) - lo + 1).free_symbols} <= given]
        assert not fixed, (s.name, s.expr)


def test_map_codes_and_their_statistics_in_one_pass(monkeypatch):
    """Dictionary learning (sparse_coding.ppvi: MAP codes h by feature-sign search; W, b, β learned): the codes'
    local step also fills the statistics the M-step reads, and the fit is the one that the codes' own update
    followed by the stand-alone statistics pass gives."""
    m = ppvi.load(str(MODELS / "sparse_coding.ppvi"))
    fused = m.fit(max_iter=15, tol=0.0)
    plan = fused.fit.program.plan
    assert plan.points["h"].local_step is not None
    calls = []
    stats = plan.stats.kernel.name
    module = fused.fit.program.module
    monkeypatch.setattr(module, stats, lambda *a, f=getattr(module, stats): calls.append(1) or f(*a))
    again = m.fit(max_iter=15, tol=0.0)
    assert len(calls) == 1              # (once, at the start: every sweep's statistics come with the codes)
    damped = m.fit(max_iter=15, tol=0.0, damping=0.5)
    assert len(calls) == 2              # (the codes' step is not damped: the same fused step)
    monkeypatch.setattr(module, "PLAN", dataclasses.replace(
        plan, points={**plan.points, "h": dataclasses.replace(plan.points["h"], local_step=None)}))
    apart = m.fit(max_iter=15, tol=0.0)
    apart_damped = m.fit(max_iter=15, tol=0.0, damping=0.5)
    assert len(calls) > 30
    np.testing.assert_allclose(again.fit.trace, fused.fit.trace, rtol=0, atol=0)
    np.testing.assert_allclose(apart.fit.trace, fused.fit.trace, rtol=1e-12)
    np.testing.assert_allclose(apart_damped.fit.trace, damped.fit.trace, rtol=1e-12)
    np.testing.assert_allclose(apart.params["W"], fused.params["W"], rtol=1e-9, atol=1e-12)
