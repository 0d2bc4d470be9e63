"""Nothing a user wrote, and nothing another user planted, is ever executed (SECURITY.md).

Each test plants a payload that would create a marker file, runs ppvi as a
separate process (as an attacker's victim would), and checks the marker is
absent.
"""

from __future__ import annotations

import os
import pickle
import stat
import subprocess
import sys
from pathlib import Path

import pytest

MODEL = "dim N\ndata x[N]\nmu ~ Normal(0, 10)\nfor n in N:\n    x[n] ~ Normal(mu, 1)\n"


def _ppvi(args, cwd, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ppvi", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=600)


def test_a_model_file_name_is_never_run(tmp_path):
    """The file name used to be formatted into the generated module's docstring: `m\"\"\";payload;\"\"\".ppvi`
    ran its payload, and so did every later run of the same model text from the cache."""
    payload = "__import__('pathlib').Path('PWNED').touch()"
    name = f'm""";{payload};""".ppvi'
    (tmp_path / name).write_text(MODEL)
    (tmp_path / 'm""";{};""".csv'.format(payload)).write_text("x\n1.0\n2.0\n")
    cache = tmp_path / "cache"
    proc = _ppvi(["run", name, "--quiet"], tmp_path, PPVI_CACHE_DIR=str(cache))
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "plain.ppvi").write_text(MODEL)
    (tmp_path / "plain.csv").write_text("x\n1.0\n2.0\n")
    proc = _ppvi(["run", "plain.ppvi", "--quiet"], tmp_path, PPVI_CACHE_DIR=str(cache))
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "PWNED").exists()
    for src in cache.glob("*.py"):
        assert payload not in src.read_text()


def test_the_generated_source_names_no_path(tmp_path):
    """`ppvi derive --code` prints the same module from any file name, so nothing of the name can reach it."""
    (tmp_path / "a.ppvi").write_text(MODEL)
    (tmp_path / "b'\"\\x.ppvi").write_text(MODEL)
    one = _ppvi(["derive", "a.ppvi", "--code"], tmp_path)
    two = _ppvi(["derive", "b'\"\\x.ppvi", "--code"], tmp_path)
    assert one.returncode == two.returncode == 0
    assert one.stdout == two.stdout


class _Payload:
    def __reduce__(self):
        return (exec, ("__import__('pathlib').Path('PWNED').touch()",))


def test_a_parser_cache_planted_in_the_shared_temp_folder_is_not_loaded(tmp_path):
    """Lark's cache=True kept the parser tables as a pickle with a predictable name in the shared temporary
    folder: whoever planted it first ran code as the next user to parse a model."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    (tmp_path / "m.ppvi").write_text(MODEL)
    env = {"TMPDIR": str(tmp), "PPVI_CACHE_DIR": str(tmp_path / "cache")}
    assert _ppvi(["check", "m.ppvi"], tmp_path, **env).returncode == 0
    planted = list(tmp.glob(".lark_cache*"))
    assert planted == [], "ppvi keeps nothing in the shared temporary folder"
    # Whatever name an older ppvi used, a file there is never read: plant one under every name Lark might use.
    for f in planted or [tmp / ".lark_cache_planted.tmp"]:
        f.write_bytes(b"0" * 64 + b"\n" + pickle.dumps(_Payload()))
    assert _ppvi(["check", "m.ppvi"], tmp_path, **env).returncode == 0
    assert not (tmp_path / "PWNED").exists()


def test_the_cache_folder_is_private(tmp_path):
    cache = tmp_path / "cache"
    (tmp_path / "m.ppvi").write_text(MODEL)
    assert _ppvi(["check", "m.ppvi"], tmp_path, PPVI_CACHE_DIR=str(cache)).returncode == 0
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700


def test_a_cache_folder_others_may_write_is_made_private(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o777)
    (tmp_path / "m.ppvi").write_text(MODEL)
    assert _ppvi(["check", "m.ppvi"], tmp_path, PPVI_CACHE_DIR=str(cache)).returncode == 0
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a folder to another user")
def test_a_cache_folder_of_another_user_is_refused(tmp_path):
    """Another user's folder may hold their modules and pickles: nothing in it is read, and a run says why."""
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    bait = cache / "model_planted.pickle"
    bait.write_bytes(pickle.dumps(_Payload()))
    os.chown(cache, 65534, 65534)
    (tmp_path / "m.ppvi").write_text(MODEL)
    (tmp_path / "m.csv").write_text("x\n1.0\n2.0\n")
    proc = _ppvi(["run", "m.ppvi", "--quiet"], tmp_path, PPVI_CACHE_DIR=str(cache))
    assert proc.returncode == 2, proc.stderr
    assert f"{cache}: error:" in proc.stderr and "another user" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "PWNED").exists()


def test_a_cache_path_that_is_a_file_is_a_user_error(tmp_path):
    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    (tmp_path / "m.ppvi").write_text(MODEL)
    (tmp_path / "m.csv").write_text("x\n1.0\n2.0\n")
    proc = _ppvi(["run", "m.ppvi", "--quiet"], tmp_path, PPVI_CACHE_DIR=str(cache))
    assert proc.returncode == 2 and f"{cache}: error:" in proc.stderr, proc.stderr
    assert "PPVI_CACHE_DIR" in proc.stderr
