"""No data lost: SIGTERM and SIGHUP keep the fit as Ctrl-C does; writes are atomic, in place for special
files, with the umask's mode; a second signal during the write waits for it; a killed writer's
temporary file is cleaned up by the next write."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import warnings

import pytest

import ppvi
from conftest import MODELS, run_cli
from ppvi.errors import PPVIError
from ppvi.files import Interrupts, write_atomic

LONG = ["--restarts", "100000", "--tol", "1e-300", "--max-iter", "100000", "--quiet"]


def _warm() -> dict:
    """The environment of a run whose kernels are in the suite's cache (tests/conftest.py): compiled here, in
    this process, if no test before did, so that the signal comes while the fit runs, not while Numba
    compiles.  (A private cache made each test compile gmm_1d cold in a process of its own.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ppvi.PPVIWarning)       # (two sweeps do not converge)
        ppvi.load(str(MODELS / "gmm_1d.ppvi")).fit(max_iter=2)
    return dict(os.environ)


def _until_handled(proc, signum: int, timeout: float = 120.0) -> None:
    """Wait until ``proc`` catches ``signum`` (its fit's handler is in: /proc/PID/status, SigCgt), however
    slowly a loaded machine starts it; a fixed sleep sent SIGTERM before that and killed the process."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        status = open(f"/proc/{proc.pid}/status").read()
        caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
        if signum != signal.SIGINT and caught >> (signum - 1) & 1 or signum == signal.SIGINT and \
                caught >> (signal.SIGTERM - 1) & 1:        # (Python catches SIGINT from its start: read SIGTERM)
            return
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGTERM, pytest.param(signal.SIGHUP, marks=pytest.mark.long),
                                    signal.SIGINT])     # (SIGHUP takes SIGTERM's path: --long)
def test_a_signal_keeps_the_fit(signum, tmp_path):
    env = _warm()
    out = tmp_path / "r.json"
    proc = subprocess.Popen([sys.executable, "-m", "ppvi", "run", str(MODELS / "gmm_1d.ppvi"), "--out", str(out),
                             *LONG], env=env, stderr=subprocess.PIPE, text=True)
    _until_handled(proc, signum)
    time.sleep(4.0)                 # (then the kernels load and the first start's sweeps run)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    assert "the current q was kept" in err and "Traceback" not in err
    result = json.loads(out.read_text())
    # (the best start so far is kept: it may have converged before a later start was stopped)
    assert result["interrupted"] is True and result["iterations"] >= 1 and result["elbo"] is not None


def test_a_second_signal_waits_for_the_write(tmp_path, default_sigint):
    """The handler is ours while a write is under way: the signal is held, and raised once the file is whole."""
    path = tmp_path / "r.json"
    interrupts = Interrupts()
    with interrupts.installed():
        with pytest.raises(KeyboardInterrupt):
            with interrupts.deferred():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)            # (the handler has run by now, and held it)
                write_atomic(str(path), b"whole")
        assert interrupts.received == signal.SIGINT
    assert path.read_bytes() == b"whole"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".r.json.{dead.pid}.ppvi-tmp"
    stale.write_bytes(b"half a fi")
    alive = tmp_path / f".r.json.{os.getppid()}.ppvi-tmp"      # (a live writer's: left alone)
    alive.write_bytes(b"being written")
    write_atomic(str(tmp_path / "r.json"), b"{}")
    assert not stale.exists() and alive.exists() and (tmp_path / "r.json").read_bytes() == b"{}"


def test_a_result_gets_the_umask_mode(tmp_path):
    old = os.umask(0o022)
    try:
        write_atomic(str(tmp_path / "a"), b"x")
        os.umask(0o077)
        write_atomic(str(tmp_path / "b"), b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o600
    write_atomic(str(tmp_path / "c"), b"x", private=True)
    assert stat.S_IMODE((tmp_path / "c").stat().st_mode) == 0o600


def test_special_files_are_written_in_place(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    write_atomic(str(fifo), b"through the pipe")
    reader.join(10)
    assert got == [b"through the pipe"] and stat.S_ISFIFO(fifo.lstat().st_mode)


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_a_character_device_is_written_in_place_and_a_full_one_is_a_user_error(tmp_path):
    null, full = tmp_path / "null", tmp_path / "full"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(full, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    write_atomic(str(null), b"gone")
    assert stat.S_ISCHR(null.lstat().st_mode)
    with pytest.raises(PPVIError, match="(?i)no space left"):
        write_atomic(str(full), b"x" * 10000)
    assert stat.S_ISCHR(full.lstat().st_mode)


def test_a_symlink_is_written_through(tmp_path):
    (tmp_path / "real.json").write_text("old")
    (tmp_path / "link.json").symlink_to("real.json")
    write_atomic(str(tmp_path / "link.json"), b"new")
    assert (tmp_path / "link.json").is_symlink() and (tmp_path / "real.json").read_text() == "new"


def test_out_is_checked_before_the_fit(tmp_path, capsys):
    for out, words in ((tmp_path / "no" / "such" / "r.json", "folder"), (tmp_path / "r.csv", "format")):
        code, _, err = run_cli(["run", MODELS / "gmm_1d.ppvi", "--out", out, "--quiet"], capsys)
        assert code == 2 and f"{out}: error:" in err and words in err, err


def test_a_user_error_exits_2_when_stderr_is_gone(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "ppvi", "check", str(tmp_path / "missing.ppvi")],
                            stderr=subprocess.PIPE)
    proc.stderr.close()
    assert proc.wait(60) == 2


DRIVER = """
import gc, os, signal, sys, threading
from ppvi.cli import main
fired = []
def swallow(phase, info):          # (Python prints what a gc callback raises, and goes on)
    if phase == "start" and not fired and callable(signal.getsignal(signal.SIGTERM)) \\
            and threading.current_thread() is threading.main_thread():      # (once the fit's handler is in)
        fired.append(1)
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):      # (the handler runs here, inside the callback)
            pass
gc.callbacks.append(swallow)
sys.exit(main(sys.argv[1:]))
"""


def test_a_signal_whose_exception_a_gc_callback_swallowed_still_stops_the_fit(tmp_path):
    """Found with `--dask local:2`: SIGTERM's handler ran inside distributed's gc callback, which printed the
    Interrupted and went on; the fit then ran to its end.  The fit now checks for a signal after each sweep."""
    env = _warm()
    out = tmp_path / "r.json"
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, "run", str(MODELS / "gmm_1d.ppvi"), "--out", str(out),
                             *LONG], env=env, stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Exception ignored" in err                 # (the swallowed first raise: the case under test)
    assert "the current q was kept" in err and json.loads(out.read_text())["interrupted"] is True
