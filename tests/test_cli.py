"""The command line: exit statuses, flag errors, stage dumps."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import MODELS, run_cli


def test_flag_errors_exit_2_without_traceback(capsys):
    code, _, err = run_cli(["check", MODELS / "gmm.ppvi", "--format", "yaml"], capsys)
    assert code == 2 and "error:" in err and "Traceback" not in err and "hint:" in err
    code, _, err = run_cli(["frobnicate"], capsys)
    assert code == 2 and "invalid choice" in err
    code, _, err = run_cli(["check"], capsys)
    assert code == 2 and "MODEL" in err


def test_no_command_prints_help(capsys):
    code, _, err = run_cli([], capsys)
    assert code == 2 and "check" in err


def test_dump_ast(capsys):
    code, out, _ = run_cli(["check", MODELS / "seed_gaussian.ppvi", "--dump", "ast"], capsys)
    assert code == 0 and out.startswith("Module") and "Draw target=h" in out


def test_console_script_runs_as_a_process():
    proc = subprocess.run([sys.executable, "-m", "ppvi", "check", str(MODELS / "gmm_1d.ppvi")],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "data plate" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "ppvi", "check", str(MODELS / "nope.ppvi")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "cannot read model" in proc.stderr


def test_internal_fault_is_one_line_exit_1(capsys, monkeypatch):
    import ppvi.graph

    def boom(model):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(ppvi.graph, "build", boom)
    code, _, err = run_cli(["check", MODELS / "gmm.ppvi"], capsys)
    assert code == 1 and err.count("\n") == 1 and "internal error" in err and "kaboom" in err


def test_running_out_of_memory_is_a_user_error_naming_the_input(capsys, monkeypatch):
    """Sizes that pass the estimate (io.data refuses what the variables alone cannot hold) may still exhaust
    memory in the fit's working arrays: that is the input's size, not a fault of ours."""
    import ppvi.graph

    def exhausted(model):
        raise MemoryError("Unable to allocate 3.2 TiB for an array with shape (10000000, 50000)")

    monkeypatch.setattr(ppvi.graph, "build", exhausted)
    code, _, err = run_cli(["check", MODELS / "gmm.ppvi"], capsys)
    assert code == 2 and "internal error" not in err and "Traceback" not in err
    assert err.startswith(f"{MODELS / 'gmm.ppvi'}: error: out of memory") and "3.2 TiB" in err and "hint:" in err


def test_the_process_ends_with_all_its_output(capsys):
    """``entry`` leaves without the interpreter's tear-down: what main printed must reach a pipe whole, with
    main's exit status; exit handlers still run; a reader that goes away early gets no traceback; under a
    profiler the process ends as usual, so the profile is printed."""
    args = ["check", str(MODELS / "gmm_1d.ppvi")]
    code, expected, _ = run_cli(args, capsys)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}     # (stdout buffered, as on a pipe)
    proc = subprocess.run([sys.executable, "-m", "ppvi", *args], capture_output=True, text=True, env=env)
    assert code == proc.returncode == 0 and proc.stdout == expected and len(expected) > 500
    goodbye = ("import atexit, sys; atexit.register(lambda: print('goodbye', file=sys.stderr)); "
               f"sys.argv = ['ppvi', 'check', {args[1]!r}]; from ppvi.cli import entry; entry()")
    proc = subprocess.run([sys.executable, "-c", goodbye], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and proc.stdout == expected and proc.stderr == "goodbye\n"
    gone, pipe = os.pipe()
    os.close(gone)                      # (the reader left before the first byte)
    try:
        proc = subprocess.run([sys.executable, "-m", "ppvi", *args], stdout=pipe, stderr=subprocess.PIPE, env=env)
    finally:
        os.close(pipe)
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr and b"Exception" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "cProfile", "-m", "ppvi", *args], capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 0 and proc.stdout.startswith(expected) and "function calls" in proc.stdout


def test_the_collector_is_resumed_only_where_entry_paused_it(tmp_path):
    """A run started by ``entry`` collects again once Numba is imported, over new objects only (the imports
    frozen); main() called in someone's own process leaves their collector as it was, on or off."""
    import gc

    from ppvi.cli import main

    args = ["run", str(MODELS / "gmm_1d.ppvi"), "--quiet", "--max-iter", "2", "--out", str(tmp_path / "r.json")]
    frozen = gc.get_freeze_count()
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            assert main(args) == 0
            assert gc.isenabled() == enabled and gc.get_freeze_count() == frozen
        gc.disable()
        assert main(args, collector_paused=True) == 0
        assert gc.isenabled() and gc.get_freeze_count() > frozen
    finally:
        gc.unfreeze()
        gc.enable()
