"""Shared test options.

``pytest --update-golden`` rewrites the golden files (expected error messages,
``ppvi derive`` output) from the current behaviour; review the diff by eye.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

# Numba's `omp` threading layer (GNU libgomp) keeps its threads spinning after each parallel loop unless told to
# sleep: a sweep of many short parallel kernels then burns several times its work in CPU (gmm, 300 sweeps: 3.9 CPU-s
# spinning, 0.18 CPU-s passive), taken from the other xdist worker on CI's 2 cores.  How threads wait changes no
# result (tests/harness/test_threads.py: 1 and 2 threads bit for bit).  Set before any kernel runs (libgomp reads
# it when Numba loads it); subprocesses inherit it; a value the caller set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"

# The seed's 2-D Gaussian example (19.57) with one observation v.
SEED_19_57 = """
dim H = 2
const w[H] = [1.0, -0.5]
data v
for i in H:
    h[i] ~ Normal(0, 1)
v ~ Normal(sum(i in H: w[i] * h[i]), 1)
"""


@pytest.fixture(scope="session", autouse=True)
def kernel_cache(tmp_path_factory):
    """One fresh kernel cache for the whole run: the first fit of a model compiles, later ones reuse it.

    Under pytest-xdist the workers share it (the run's common temporary folder): a model one worker has
    compiled, the other loads.  The cache is written atomically and sealed, so sharing it also tests that."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        path = tmp_path_factory.getbasetemp().parent / "ppvi-cache"
        path.mkdir(mode=0o700, exist_ok=True)
    else:
        path = tmp_path_factory.mktemp("ppvi-cache")
    old = os.environ.get("PPVI_CACHE_DIR")
    os.environ["PPVI_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("PPVI_CACHE_DIR", None)
    else:
        os.environ["PPVI_CACHE_DIR"] = old


@pytest.fixture
def default_sigint():
    """SIGINT at Python's own handler for the test (restored after): a test of how our handlers are restored
    starts from a known one, whatever the run inherited (a shell's background job starts with SIGINT ignored)."""
    import signal

    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", help="rewrite golden files from current output")
    parser.addoption("--long", action="store_true",
                     help="also the slow variants CI leaves out: tests marked `long`, every hostile-name set "
                          "(tests/probes), the whole differential harness (tests/harness: every rewrite, every "
                          "kernel compiled, more random models)")
    parser.addoption("--harness-cases", default="", metavar="GLOBS",
                     help="tests/harness: only the corpus cases whose names match one of these comma-separated "
                          "globs (fnmatch: 'models/*,inline:test_names:*'): a long run in pieces")
    parser.addoption("--harness-shard", default="", metavar="K/N",
                     help="tests/harness: only the corpus cases of piece K of N (0 <= K < N, by a hash of the case's "
                          "name: a case keeps its piece as the corpus grows)")
    parser.addoption("--harness-every-case", action="store_true",
                     help="tests/harness without --long: CI's checks (structure and checks 2-4 with kernels as plain "
                          "Python, one rewrite a case) on every case, not only on CHECKED_IN_CI")
    parser.addoption("--fuzz-long", action="store", type=int, nargs="?", const=2000, default=0, metavar="N",
                     help="the model fuzz with N cases of each kind (default 2000) instead of the CI's few "
                          "(tests/probes/test_fuzz_models.py)")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``long`` run only with ``--long`` (each compiles models no other test needs); the harness's
    cases outside ``--harness-cases`` / ``--harness-shard`` are deselected."""
    selected = harness_selection(config)
    if selected is not None:
        kept, dropped = [], []
        for item in items:
            params = getattr(getattr(item, "callspec", None), "params", {})
            case = params.get("case", (params.get("variant") or (None,))[0])
            (dropped if hasattr(case, "name") and not selected(case.name) else kept).append(item)
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    if config.getoption("--long"):
        return
    skip = pytest.mark.skip(reason="slow: run with --long")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)


def harness_selection(config):
    """Whether a harness case (by name) is in ``--harness-cases`` and ``--harness-shard``; None: every case."""
    import fnmatch
    import zlib

    globs = [g for g in config.getoption("--harness-cases", default="").split(",") if g]
    shard = config.getoption("--harness-shard", default="")
    if not globs and not shard:
        return None
    k, n = (int(x) for x in shard.split("/")) if shard else (0, 1)

    def selected(name: str) -> bool:
        return (not globs or any(fnmatch.fnmatchcase(name, g) for g in globs)) and zlib.crc32(name.encode()) % n == k
    return selected


@pytest.fixture
def update_golden(request) -> bool:
    return request.config.getoption("--update-golden")


def assert_golden(path, text: str, update: bool) -> None:
    """``text`` is the golden file ``path``'s; with ``--update-golden`` (or no file yet) it is written there, to be
    reviewed in the diff."""
    if update or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text()


def run_cli(argv, capsys) -> tuple[int, str, str]:
    """Run ``ppvi ARGV`` in-process; return (exit status, stdout, stderr)."""
    from ppvi.cli import main

    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@contextlib.contextmanager
def plain_kernels():
    """Fits started inside it run their generated kernels as plain Python (tests/harness/harness_state.py's
    ``python_module``; the runtime's helpers stay compiled): an inline model's derivation checked on small data
    without compiling it (10–20 CPU-s a model).  Compiled and interpreted kernels agree: test_differential.py."""
    import sys

    import numpy as np

    import ppvi.codegen.cache as cache

    harness = str(ROOT / "tests" / "harness")
    if harness not in sys.path:
        sys.path.insert(0, harness)
    from harness_state import python_module

    load = cache.load
    with pytest.MonkeyPatch.context() as mp, np.errstate(all="ignore"):
        mp.setattr(cache, "load", lambda *a, **k: (lambda m, warm: (python_module(m), warm))(*load(*a, **k)))
        yield


@pytest.fixture(scope="module")
def plain_fits():
    """Every fit of a module under :func:`plain_kernels` (``pytestmark = pytest.mark.usefixtures("plain_fits")``)."""
    with plain_kernels():
        yield


def fitted_content(path) -> dict:
    """A result file's content without what is each run's own (its time, its creation stamp): what two runs of
    the same fit must write alike."""
    import json

    d = json.loads(Path(path).read_text())
    d.pop("seconds", None)
    d.get("provenance", {}).pop("created", None)
    return d


# ---------------------------------------------------------------- the differential harness's (tests/harness)
# (Here, not in a tests/harness/conftest.py: test modules import this file as `conftest`, and with a second
# conftest.py under pytest-xdist either could be the module of that name.)
@pytest.fixture(scope="session")
def harness_long(request) -> bool:
    return bool(request.config.getoption("--long", default=False))


class Built:
    """Subjects by case name, built on first use (a failure to build is kept and raised again)."""

    def __init__(self):
        self._made: dict[str, object] = {}

    def __call__(self, case):
        from harness_state import build

        if case.name not in self._made:
            try:
                self._made[case.name] = build(case)
            except Exception as e:      # (raised again for every check of the case)
                self._made[case.name] = e
        made = self._made[case.name]
        if isinstance(made, Exception):
            raise made
        return made


@pytest.fixture(scope="session")
def harness_selected(request):
    """The harness cases of this run (--harness-cases, --harness-shard): name -> whether selected."""
    return harness_selection(request.config) or (lambda name: True)


@pytest.fixture(scope="session")
def built() -> Built:
    return Built()
