"""The kernel cache: a warm run loads machine code without Numba's compiler (nor the parser), and a miss
still compiles."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import MODELS, fitted_content

GMM_1D = MODELS / "gmm_1d.ppvi"       # its local step calls BLAS (np.dot), so it loads scipy's dgemm

# Fit in a fresh process and report what the fit pulled in and how each kernel was had; then compile new
# code that uses the NumPy functions whose environments the fit loaded without their module, and fit again.
PROBE = """
import io, json, sys, contextlib
{prelude}
from numba.core.dispatcher import Dispatcher
from numba.core.codegen import CPUCodeLibrary
from ppvi.cli import main
compiled = []                     # the libraries compiled from LLVM IR (not read as machine code)
add_ir_module = CPUCodeLibrary.add_ir_module
CPUCodeLibrary.add_ir_module = lambda self, ir: compiled.append(self.name) or add_ir_module(self, ir)
with contextlib.redirect_stdout(io.StringIO()):
    code = main(["run", sys.argv[1], "--quiet", "--out", sys.argv[2]])
kernels = [k for m in list(sys.modules.values()) if m is not None and m.__name__.startswith("ppvi_")
           for k in vars(m).values() if isinstance(k, Dispatcher)]
report = {
    "code": code,
    "hits": sum(sum(k._cache_hits.values()) for k in kernels),
    "misses": sum(sum(k._cache_misses.values()) for k in kernels),
    "registries": "numba.np.arraymath" in sys.modules,
    "arrayobj": "numba.np.arrayobj" in sys.modules,
    "compiled": list(compiled),
    "linalg": "scipy.linalg" in sys.modules,
    "blas": "scipy.linalg.cython_blas" in sys.modules,
    "lark": "lark" in sys.modules,
    "sympy": "sympy" in sys.modules,
    "fastload": "ppvi.codegen.fastload" in sys.modules and sys.modules["ppvi.codegen.fastload"] is not None,
}
from numba.core.environment import Environment
report["memoised_without_globals"] = sum(len(e.globals) == 1 for e in list(Environment._memo.values()))
import numba, numpy as np
fresh = numba.njit(lambda n: np.arange(n)[1:].copy().sum() + np.zeros((n, 2))[:, 1].sum())
report["fresh"] = int(fresh(5))
with contextlib.redirect_stdout(io.StringIO()):
    report["again"] = main(["run", sys.argv[1], "--quiet", "--out", sys.argv[2].replace(".json", ".again.json")])
print(json.dumps(report))
"""


def _probe(cache, out, prelude: str = "", **env) -> dict:
    env = {**os.environ, "PPVI_CACHE_DIR": str(cache), **env}
    proc = subprocess.run([sys.executable, "-c", PROBE.replace("{prelude}", prelude), str(GMM_1D), str(out)],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def cold(tmp_path_factory):
    """A cache filled by one cold run, and that run's result."""
    cache = tmp_path_factory.mktemp("cache")
    out = cache.parent / "cold.json"
    report = _probe(cache, out)
    assert report["code"] == 0 and report["misses"] > 0 and report["registries"]
    assert "nrt" in report["compiled"] and list(cache.glob("nrt_*.pickle"))
    return cache, fitted_content(out)


def test_a_warm_run_loads_every_kernel_from_the_cache_without_the_compiler(cold, tmp_path):
    cache, first = cold
    report = _probe(cache, tmp_path / "warm.json")
    assert report["code"] == 0
    assert report["hits"] > 0 and report["misses"] == 0
    assert not report["registries"], "the warm run loaded Numba's lowering registries"
    assert report["blas"] and not report["linalg"], "dgemm was found through the whole of scipy.linalg"
    assert not report["lark"], "the warm run parsed the model again"
    assert not report["sympy"], "the warm run imported SymPy (the cached module and its PLAN need none)"
    assert report["compiled"] == [], "the warm run compiled from LLVM IR (Numba's runtime, or a kernel)"
    assert not report["arrayobj"], "numba.np.arrayobj was imported for the globals of its environments"
    assert report["memoised_without_globals"] == 0
    assert fitted_content(tmp_path / "warm.json") == first
    # code compiled afterwards in the same process (NumPy functions whose environments the fit had without
    # their module, and linked against the runtime read as machine code) works, and so does a second fit
    assert report["fresh"] == 10 and report["again"] == 0
    assert fitted_content(tmp_path / "warm.again.json") == first


def test_with_PPVI_FAST_LOAD_0_kernels_load_by_numbas_own_path(cold, tmp_path):
    """The switch: the fast-load machinery is not imported at all; Numba's cache still serves every kernel
    (its registries load first, as Numba does), and the result is the same."""
    cache, first = cold
    report = _probe(cache, tmp_path / "plain.json", PPVI_FAST_LOAD="0")
    assert report["code"] == 0 and report["hits"] > 0 and report["misses"] == 0
    assert not report["fastload"] and report["registries"]
    assert fitted_content(tmp_path / "plain.json") == first


@pytest.mark.parametrize("broken", [
    "sys.modules['ppvi.codegen.fastload'] = None",                    # Numba's internals moved: no import
    "import ppvi.codegen.fastload as f; f.install = lambda module: 1 / 0",   # ... or they fail when used
])
def test_a_fast_load_that_fails_falls_back_to_numbas_own_path(cold, tmp_path, broken):
    cache, first = cold
    report = _probe(cache, tmp_path / "fallback.json", prelude=broken)
    assert report["code"] == 0 and report["hits"] > 0 and report["misses"] == 0 and report["registries"]
    assert fitted_content(tmp_path / "fallback.json") == first


def test_a_damaged_runtime_file_is_compiled_again(cold, tmp_path):
    cache, first = cold
    (runtime,) = cache.glob("nrt_*.pickle")
    runtime.write_bytes(b"not a pickle")
    report = _probe(cache, tmp_path / "warm.json")
    assert report["code"] == 0 and report["compiled"] == ["nrt"] and report["misses"] == 0
    assert fitted_content(tmp_path / "warm.json") == first
    assert runtime.read_bytes() != b"not a pickle"          # (written again, whole)


def test_a_kernel_missing_from_numbas_cache_is_compiled_again(cold, tmp_path):
    """The generated module is on disk but one kernel's machine code is not: that kernel compiles (the
    registries load), the others still load, and the result is the same."""
    cache, first = cold
    index = [p for p in (cache / "__pycache__").iterdir() if ".local_step_z-" in p.name]
    assert index
    for p in index:
        p.unlink()
    report = _probe(cache, tmp_path / "again.json")
    assert report["code"] == 0 and report["misses"] == 1 and report["hits"] > 0 and report["registries"]
    assert fitted_content(tmp_path / "again.json") == first


def test_blas_loaded_alone_leaves_scipy_linalg_whole():
    """After the extension is loaded by itself, scipy.linalg imports as usual and its BLAS works."""
    script = """
import numpy as np
from ppvi.codegen.fastload import blas_alone
blas_alone()
import scipy.linalg
from scipy.linalg import cython_blas, blas
a = np.arange(6.0).reshape(2, 3)
assert np.allclose(blas.dgemm(1.0, a, a.T), a @ a.T)
assert np.allclose(scipy.linalg.solve(np.eye(2) * 2, np.ones(2)), 0.5)
assert hasattr(cython_blas, "__pyx_capi__") and "dgemm" in cython_blas.__pyx_capi__
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_the_runtime_is_kept_per_ir(cold, tmp_path):
    """Numba's NRT debug setting changes the runtime's IR: its machine code is kept apart, not read in place
    of the ordinary one (which would print NRT's trace in every later process)."""
    cache, _ = cold
    before = set(cache.glob("nrt_*.pickle"))
    script = ("from numba.core.registry import cpu_target; from ppvi.codegen.fastload import initialize_runtime; "
              "initialize_runtime(cpu_target.target_context)")
    env = {**os.environ, "PPVI_CACHE_DIR": str(cache), "NUMBA_DEBUG_NRT": "1"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(before) == 1 and len(set(cache.glob("nrt_*.pickle")) - before) == 1


# A cold run in a copy of ppvi, then runs of the same model after that copy's source has changed.
KEYED = """
import json, sys
from ppvi.codegen.cache import key, load
from ppvi.language import loads
text = sys.argv[1]
module, warm = load(loads(text, "<m>"))
print(json.dumps({"key": key(text), "file": module.__file__, "warm": warm, "stale": getattr(module, "STALE", False)}))
"""


def test_a_changed_ppvi_never_loads_kernels_an_older_one_generated(tmp_path):
    """The key holds a digest of ppvi's source (cachefiles.ppvi_fingerprint), the grammar included: one changed
    line anywhere gives a new key, and the module the older ppvi wrote is never imported (issue 14, item 7)."""
    import importlib.util
    import shutil

    import ppvi

    copy = tmp_path / "copy"
    shutil.copytree(os.path.dirname(ppvi.__file__), copy / "ppvi", ignore=shutil.ignore_patterns("__pycache__"))
    grammar = importlib.util.find_spec("ppvi.grammar").submodule_search_locations[0]
    shutil.copytree(grammar, copy / "ppvi" / "grammar", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(copy), "PPVI_CACHE_DIR": str(tmp_path / "cache")}
    text = (MODELS / "beta_bernoulli.ppvi").read_text()

    def run() -> dict:
        proc = subprocess.run([sys.executable, "-c", KEYED, text], capture_output=True, text=True, env=env,
                              cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        assert got["file"].startswith(str(tmp_path / "cache"))
        return got

    first, again = run(), run()
    assert not first["warm"] and again["warm"] and again["key"] == first["key"] and again["file"] == first["file"]
    from ppvi.codegen.cache import _unsealed, sealed

    with open(first["file"], "rb") as fh:       # a mark, sealed again: whoever imports this older module shows it
        marked = sealed(_unsealed(fh.read()) + "STALE = True\n")
    with open(first["file"], "w") as fh:
        fh.write(marked)
    assert run()["stale"]
    seen = {first["key"]}
    for changed in (copy / "ppvi" / "codegen" / "runtime.py", copy / "ppvi" / "derive" / "render.py",
                    copy / "ppvi" / "grammar" / "ppvi.lark"):
        with open(changed, "a") as fh:
            fh.write("\n// one more line\n" if changed.suffix == ".lark" else "\n# one more line\n")
        now = run()
        assert now["key"] not in seen and not now["warm"] and not now["stale"], changed.name
        seen.add(now["key"])


def test_the_fingerprint_holds_a_grammar_kept_outside_the_package(tmp_path, monkeypatch):
    """A development install finds ppvi.grammar at the top of the source tree (grammar/), outside the package:
    its text is part of the digest all the same."""
    import importlib.machinery
    import importlib.util

    from ppvi import cachefiles

    (tmp_path / "ppvi.lark").write_text("start: NAME\n")
    spec = importlib.machinery.ModuleSpec("ppvi.grammar", None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path)]
    find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: spec if name == "ppvi.grammar" else find(name, *a))
    digests = []
    for text in ("start: NAME\n", "start: NAME NAME\n"):
        (tmp_path / "ppvi.lark").write_text(text)
        cachefiles.ppvi_fingerprint.cache_clear()
        digests.append(cachefiles.ppvi_fingerprint())
    cachefiles.ppvi_fingerprint.cache_clear()
    assert digests[0] != digests[1]
