"""The thread count changes nothing: every corpus model's compiled fit, bit for bit, under
NUMBA_NUM_THREADS=1 and 2 (each in its own process; the kernels come from this run's cache)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from harness_cases import WHOLE_IN_CI, corpus
from harness_known import REFUSED

SCRIPT = Path(__file__).with_name("harness_threads.py")
NAMES = [c.name for c in corpus() if not c.refused and c.name not in REFUSED]


def _digests(threads: str, damped: list[str]) -> dict:
    env = {**os.environ, "NUMBA_NUM_THREADS": threads}      # (the same ppvi and kernel cache as this run)
    proc = subprocess.run([sys.executable, str(SCRIPT), "--damped", ",".join(damped), *NAMES], capture_output=True,
                          text=True, env=env, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_one_and_two_threads_give_the_same_fits_bit_for_bit(harness_long):
    """Sequential fits of every case; damped fits too of the cases test_kernels compiles whole (all with
    --harness-long)."""
    damped = [n for n in NAMES if harness_long or n.startswith(WHOLE_IN_CI)]
    one, two = _digests("1", damped), _digests("2", damped)
    differ = [n for n in NAMES if one[n] != two[n]]
    assert not differ, f"fits that depend on the thread count: {differ}"
