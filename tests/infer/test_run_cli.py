"""`ppvi run` end to end: every example, result files, determinism, interruption."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import ppvi
from conftest import MODELS, fitted_content, run_cli

ALL = sorted(MODELS.glob("*.ppvi"))


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_every_example_runs(path, capsys, tmp_path):
    out_file = tmp_path / "r.json"
    code, out, err = run_cli(["run", path, "--out", out_file, "--max-iter", "50"], capsys)
    assert code == 0, err
    assert out.split()[0] in ("ELBO", "log-likelihood", "log")
    head = out.split("\n\n")[0].splitlines()                  # (the headline may wrap on a narrow terminal)
    assert any(line.startswith("sweep: ") for line in head)   # the order of the updates in a sweep
    r = json.loads(out_file.read_text())
    assert set(r) >= {"model", "elbo", "elbo_trace", "iterations", "converged", "q", "params"}
    assert np.isfinite(r["elbo"]) and len(r["elbo_trace"]) == r["iterations"]
    for name, q in r["q"].items():
        assert "family" in q and "mean" in q
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".ppvi-")], "a temporary file was left behind"


def test_npz_result(tmp_path, capsys):
    out_file = tmp_path / "r.npz"
    code, _, err = run_cli(["run", MODELS / "gmm_1d.ppvi", "--out", out_file, "--quiet"], capsys)
    assert code == 0, err
    with np.load(out_file) as f:
        assert {"elbo", "q/mu/mean", "q/mu/sd", "q/z/p", "q/pi/alpha", "converged"} <= set(f.files)
        assert f["q/z/p"].shape == (272, 3)


def test_api_and_json(tmp_path):
    r = ppvi.load(str(MODELS / "gmm_1d.ppvi")).fit(seed=1)
    d = json.loads(r.to_json())
    assert d["q"]["mu"]["family"] == "Normal" and len(d["q"]["mu"]["mean"]) == 3
    assert r.converged and r.elbo == d["elbo"]


def test_restarts_keep_the_best(tmp_path):
    one = ppvi.load(str(MODELS / "gmm_1d.ppvi")).fit(seed=5, restarts=1)
    many = ppvi.load(str(MODELS / "gmm_1d.ppvi")).fit(seed=5, restarts=4)
    assert many.elbo >= one.elbo - 1e-9


def test_interrupt_keeps_the_current_q(tmp_path):
    calls = []

    def stop(it, elbo, change):
        calls.append(it)
        if it == 3:
            raise KeyboardInterrupt

    r = ppvi.load(str(MODELS / "gmm_1d.ppvi")).fit(on_iteration=stop)
    assert r.fit.interrupted and not r.converged and r.fit.iterations == 3
    out = tmp_path / "r.json"
    r.save(str(out))
    assert json.loads(out.read_text())["converged"] is False


def _run_process(args, env_extra):
    env = {**os.environ, **env_extra}
    proc = subprocess.run([sys.executable, "-m", "ppvi", "run", *map(str, args)], capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_identical_for_one_and_two_threads(tmp_path):
    """In the suite's cache (tests/conftest.py), warm as a rule; a cold run against a warm one is
    tests/codegen/test_cache.py's (a private cache here compiled gmm_1d cold once more)."""
    results = []
    for threads in ("1", "2", "2"):
        out = tmp_path / f"r{len(results)}.json"
        _run_process([MODELS / "gmm_1d.ppvi", "--out", out, "--quiet"], {"NUMBA_NUM_THREADS": threads})
        results.append(fitted_content(out))
    assert results[0] == results[1] == results[2]


@pytest.mark.parametrize("kept", [True, False], ids=["replayed", "checked-sweep"])
def test_an_elbo_decrease_is_reported_as_an_internal_fault_naming_the_update(monkeypatch, capsys, kept):
    """A broken update (here: one that moves q(mu) away from its optimum) must not pass silently, whether
    the sweep's start was kept and is replayed, or (big q) the next sweep is checked update by update."""
    from ppvi.infer import cavi
    from ppvi.infer.cavi import ElboDecrease
    from ppvi.infer.program import Program

    if not kept:
        monkeypatch.setattr(cavi, "SNAPSHOT_BYTES", 0)

    real = Program.update

    def broken(self, var, damping=None):
        real(self, var, damping)
        if var == "mu":     # a valid q, but not the optimum: shift the means, keep ⟨mu²⟩ consistent
            self.state["q_mu__mean"] += 0.5
            self.state["m_mu__x2"][...] = self.state["q_mu__mean"] ** 2 + self.state["q_mu__sd"] ** 2

    monkeypatch.setattr(Program, "update", broken)
    with pytest.raises(ElboDecrease, match=r"q\(mu\)"):
        ppvi.load(str(MODELS / "gmm_1d.ppvi")).fit(max_iter=50)
    code, _, err = run_cli(["run", MODELS / "gmm_1d.ppvi", "--quiet"], capsys)
    assert code == 1 and "internal error" in err and "q(mu)" in err and err.count("\n") == 1


def test_a_non_finite_elbo_is_reported_as_an_internal_fault_naming_the_update(monkeypatch, capsys):
    """Kernels divide as NumPy does (0/0 is NaN, not ZeroDivisionError); a NaN that reaches the ELBO is
    traced to the update that made it."""
    from ppvi.infer.program import Program

    real = Program.update

    def broken(self, var, damping=None):
        real(self, var, damping)
        if var == "tau":
            self.state["q_tau__rate"][0] = np.nan
            self.state["m_tau__x"][0] = np.nan

    monkeypatch.setattr(Program, "update", broken)
    code, _, err = run_cli(["run", MODELS / "gmm_1d.ppvi", "--quiet"], capsys)
    assert code == 1 and err.count("\n") == 1
    assert "internal error" in err and "nan at iteration 1 after the update of q(tau)" in err


def test_blas_runs_on_one_thread_during_a_fit_and_as_before_after_it():
    """Kernels call BLAS inside their parallel chunks: its own threads would oversubscribe the cores."""
    from threadpoolctl import threadpool_info

    def blas_threads():
        return {lib["filepath"]: lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    before, during = blas_threads(), []
    ppvi.load(str(MODELS / "gmm_1d.ppvi")).fit(max_iter=3,
                                               on_iteration=lambda *a: during.extend(blas_threads().values()))
    assert during and set(during) == {1}
    after = blas_threads()
    assert {path: after[path] for path in before} == before


def test_an_interrupt_in_a_later_restart_is_reported():
    """Ctrl-C during the third start: the fit is interrupted (not all starts ran), and keeps the best q so far.

    (On a fast machine the first start had converged before the signal came, and `ppvi run` exited 0.)"""
    starts = []

    def on_iteration(it, elbo, change):
        if it == 1:
            starts.append(elbo)
        if len(starts) == 3:
            raise KeyboardInterrupt

    result = ppvi.load(str(MODELS / "gmm_1d.ppvi")).fit(restarts=5, max_iter=30, on_iteration=on_iteration)
    assert result.fit.interrupted and result.fit.restart in (0, 1)
    assert result.elbo == max(result.fit.elbo, *result.fit.trace)
