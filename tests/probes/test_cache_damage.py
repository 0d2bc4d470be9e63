"""One damaged cache entry costs one regeneration, never the model: every kind of file the cache holds,
truncated, emptied or overwritten, is detected before it is trusted and written again."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from conftest import fitted_content

# A model of three small kernels: every kind of file the cache holds, at a third of gmm_1d's compile time (each
# case below compiles it again at least once)
MODEL = "dim N\ndata x[N]\nmu ~ Normal(0, 10)\nfor n in N:\n    x[n] ~ Normal(mu, 1)\n"


def _model(folder):
    """MODEL and its data in ``folder``; the model's path."""
    (folder / "m.csv").write_text("x\n1.0\n2.5\n-0.5\n")
    path = folder / "m.ppvi"
    path.write_text(MODEL)
    return path


def _run(cache, out):
    proc = subprocess.run([sys.executable, "-m", "ppvi", "run", str(cache.parent / "m.ppvi"), "--quiet", "--out",
                           str(out)],
                          env={**os.environ, "PPVI_CACHE_DIR": str(cache)}, capture_output=True, text=True,
                          timeout=900)
    return proc


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    folder = tmp_path_factory.mktemp("damage")
    _model(folder)
    cache = folder / "cache"
    out = folder / "first.json"
    assert _run(cache, out).returncode == 0
    return cache, fitted_content(out)


def _files(cache, kind):
    pattern = {"module": "ppvi_*.py", "index": "__pycache__/*.nbi", "data": "__pycache__/*.nbc",
               "runtime": "nrt_*.pickle", "checked model": "model_*.pickle", "parser": "parser_*.lark"}[kind]
    return sorted(cache.glob(pattern))


def _snapshot(cache):
    return {p: p.read_bytes() for p in cache.rglob("*") if p.is_file()}


def _damages() -> list:
    """Every kind of file under every damage; CI meets each kind once and each damage at least once (two
    ``ppvi run`` processes a case), ``--long`` all fifteen."""
    kinds = ["module", "index", "data", "runtime", "checked model"]
    damages = ["truncated", "empty", "garbage"]
    return [pytest.param(kind, damage, id=f"{damage}-{kind}",
                         marks=[] if damages.index(damage) == i % 3 else [pytest.mark.long])
            for i, kind in enumerate(kinds) for damage in damages]


@pytest.mark.parametrize("kind, damage", _damages())
def test_damage_costs_one_regeneration(warm, kind, damage, tmp_path):
    cache, first = warm
    saved = _snapshot(cache)
    try:
        files = _files(cache, kind)
        assert files, f"no {kind} file in the cache"
        for f in files:
            raw = f.read_bytes()
            f.write_bytes({"truncated": raw[: len(raw) // 2], "empty": b"", "garbage": b"\x80\x04garbage" * 7}[damage])
        for attempt in range(2):       # the first run repairs, the second finds the cache whole
            proc = _run(cache, tmp_path / f"r{attempt}.json")
            assert proc.returncode == 0, proc.stderr
            assert fitted_content(tmp_path / f"r{attempt}.json") == first
        assert all(f.read_bytes() for f in _files(cache, kind))
    finally:
        for p in list(cache.rglob("*")):
            if p.is_file() and p not in saved:
                p.unlink()
        for p, raw in saved.items():
            p.write_bytes(raw)


def test_a_module_with_a_valid_but_foreign_body_is_not_run(warm, tmp_path):
    """A module edited behind ppvi's back (valid Python) is regenerated, not imported."""
    cache, first = warm
    (module,) = _files(cache, "module")
    raw = module.read_bytes()
    try:
        module.write_bytes(raw.replace(b"import math", b"import math\nraise SystemExit(7)", 1))
        proc = _run(cache, tmp_path / "r.json")
        assert proc.returncode == 0, proc.stderr
        assert fitted_content(tmp_path / "r.json") == first
    finally:
        module.write_bytes(raw)


def test_fits_in_several_threads_at_once(tmp_path, monkeypatch):
    """The generated module is published only once it is whole: threads fitting the same (cold) model saw a
    half-loaded module."""
    monkeypatch.setenv("PPVI_CACHE_DIR", str(tmp_path / "cache"))
    import ppvi

    model = ppvi.load(str(_model(tmp_path)))       # (a model text no other test of this process has loaded)
    results, errors = [], []

    def work():
        try:
            results.append(model.fit(max_iter=30).elbo)
        except BaseException as e:       # noqa: BLE001 — reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4 and len(set(results)) == 1
