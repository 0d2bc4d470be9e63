"""Products of globals read at data-valued indices are scatters over the data plate (issue 14, item 4).

Bayesian PMF in long format reads ⟨P[user[t], k]⟩ ⟨Q[item[t], k]⟩: the expected square of the rating's mean
became a statistic over [items, users, items, users] (512 MB at 100 × 80, MemoryError at 2,000 × 2,000).  Such
a sum is one pass over the ratings into an array over one plate: O(ratings · K²) work, O(users · K²) memory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ppvi.codegen.module import generate
from ppvi.derive import derive
from ppvi.language import loads
from programs import PMF, pmf_data, program

HERE = Path(__file__).resolve().parent
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
