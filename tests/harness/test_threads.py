"""The thread count changes nothing: compiled fits, bit for bit, under NUMBA_NUM_THREADS=1 and 2 (each in its
own process; the kernels come from this run's cache).  CI fits the cases it compiles (COMPILED_IN_CI);
``--long`` every corpus model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness_cases import COMPILED_IN_CI, corpus
from harness_known import REFUSED

SCRIPT = Path(__file__).with_name("harness_threads.py")
NAMES = [c.name for c in corpus() if not (c.refused or c.chains) and c.name not in REFUSED]


def _digests(threads: str, names: list[str]) -> dict:
    env = {**os.environ, "NUMBA_NUM_THREADS": threads}      # (the same ppvi and kernel cache as this run)
    proc = subprocess.run([sys.executable, str(SCRIPT), *names], capture_output=True, text=True, env=env,
                          timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_one_and_two_threads_give_the_same_fits_bit_for_bit(harness_long, harness_selected):
    """Sequential and damped fits of each case (of this run's selection: --harness-cases, --harness-shard)."""
    names = [n for n in NAMES if (harness_long or n in COMPILED_IN_CI) and harness_selected(n)]
    if not names:
        pytest.skip("no compiled case selected")
    one, two = _digests("1", names), _digests("2", names)
    differ = [n for n in names if one[n] != two[n]]
    assert not differ, f"fits that depend on the thread count: {differ}"
