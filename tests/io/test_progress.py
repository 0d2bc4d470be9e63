"""What a fit shows while it runs: on a terminal (a pseudo-terminal here), in a log, in the API."""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import warnings

import pytest

import ppvi
from conftest import MODELS
from ppvi.io import progress


def _read_all(fd: int) -> bytes:
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:               # (EIO: the other side closed)
            break
        if not chunk:
            break
        out += chunk
    return out


def test_a_cold_run_on_a_terminal_says_it_compiles_and_ends_on_the_last_iteration(tmp_path):
    """A cold run showed a blank terminal for the ~20 s Numba compiles, its it/s counted the compilation and
    its last frame could be an earlier iteration."""
    main, side = pty.openpty()
    fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))    # (a terminal's size)
    env = {**os.environ, "PPVI_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "120"}
    proc = subprocess.Popen([sys.executable, "-m", "ppvi", "run", str(MODELS / "normal_gamma.ppvi"),
                             "--out", str(tmp_path / "r.json")], stdin=subprocess.DEVNULL, stdout=side, stderr=side,
                            env=env, close_fds=True)
    os.close(side)
    try:
        text = _read_all(main).decode("utf-8", "replace")
    finally:
        os.close(main)
    assert proc.wait(timeout=600) == 0, text
    assert "compiling kernels for normal_gamma (first run; cached afterwards)" in text
    iterations = json.loads((tmp_path / "r.json").read_text())["iterations"]
    frames = [f for f in re.split(r"[\r\n]", text) if "it/s" in f]
    assert frames and f"iteration {iterations}/1000" in frames[-1], frames[-3:]
    rate = float(re.search(r"([\d.]+)\s*it/s", frames[-1]).group(1))
    assert rate > 5            # (the first sweep took the compilation's seconds: counted, it would be < 5 it/s)
    assert text.index("compiling kernels") < text.index("iteration")
    assert "normal_gamma: iteration 1/1000, ELBO -" in text


def test_bar_last_frame_is_the_last_iteration():
    out = io.StringIO()
    bar = progress.Bar(out, interval=3600.0)          # (no frame between the first and the last)
    bar.start("m", 100, 1)
    bar.compiling()
    for it in range(1, 43):
        bar(it, -1000.0 + it, 1.0 if it > 1 else float("inf"))
    bar.close()
    frames = [f for f in re.split(r"[\r\n]", out.getvalue()) if f.strip()]
    assert frames[0].startswith("compiling kernels for m (first run; cached afterwards)")
    assert "iteration 42/100" in frames[-1] and "ELBO -958" in frames[-1]


def test_restarts_each_get_their_own_count():
    out = io.StringIO()
    bar = progress.Bar(out)
    bar.start("m", 10, 2)
    for it in (1, 2, 3, 1, 2):
        bar(it, -5.0, 0.5)
    bar.close()
    assert "m (start 2/2): iteration 2/10" in out.getvalue()


def test_plain_lines_every_period_with_the_rate_from_the_first_iteration(monkeypatch):
    clock = iter([0.0, 30.0] + [30.0 + 0.5 * i for i in range(1, 100)])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    lines = progress.Lines(out, every=10.0)
    lines.start("m", 1000, 1)                         # t = 0
    lines.compiling()
    for it in range(1, 42):                           # the first iteration at t = 30 (after the compilation)
        lines(it, -1.0, 0.0)
    lines.close()
    text = out.getvalue().splitlines()
    assert text[0] == "ppvi: compiling kernels for m (first run; cached afterwards)"
    assert text[1].startswith("ppvi: m: iteration 1/1000")
    assert text[-1] == "ppvi: m: iteration 41/1000, ELBO -1, change +0.000e+00, 2 it/s"
    assert len(text) == 2 + 2 + 1                     # every 10 s (20 iterations) and the last


def test_a_short_run_in_a_log_prints_nothing():
    out = io.StringIO()
    lines = progress.Lines(out)
    lines.start("m", 1000, 1)
    for it in range(1, 5):
        lines(it, -1.0, 0.0)
    lines.close()
    assert out.getvalue() == ""


def test_the_api_bar_and_its_argument(capsys):
    m = ppvi.load(str(MODELS / "gmm_1d.ppvi"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ppvi.PPVIWarning)
        r = m.fit(max_iter=7, progress=True)
        err = capsys.readouterr().err
        assert "gmm_1d: iteration 7/7" in err
        m.fit(max_iter=2)
        assert capsys.readouterr().err == ""            # not in a notebook: nothing by default
    with pytest.raises(ppvi.PPVIError, match="progress="):
        m.fit(progress="yes")
    assert r.iterations == 7


def test_the_bar_of_stochastic_vi_counts_steps_and_shows_the_minibatch_bound():
    """SVI's trace is each minibatch's bound before its step, no ELBO (docs/scale.md): no "ELBO", no "change"."""
    out = io.StringIO()
    bar = progress.for_fit(True, stochastic=True)
    bar.file = out
    bar.start("m", 10, 1)
    for it in (1, 2, 3):
        bar(it, -3.5 + it, 1.0 if it > 1 else float("inf"))
    bar.close()
    frames = [f for f in re.split(r"[\r\n]", out.getvalue()) if f.strip()]
    assert frames[-1].startswith("m: step 3/10, minibatch bound per unit -0.5 (before its step)"), frames[-1]
    assert "ELBO" not in out.getvalue() and "change" not in out.getvalue()
