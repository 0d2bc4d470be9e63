"""The Dask engine from the command line and from a script, with the LocalCluster ppvi starts itself
(``--dask local:N``, ``fit(client="local:N")``).  tests/infer/test_dask.py checks the engine against the
in-process one on a cluster it shares; here each case starts and closes a cluster of its own, as a user's run
does.  The mixture (``models/gmm.ppvi`` on its data) is compiled by other tests already; its workers load the
kernels from the suite's cache."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

import ppvi  # noqa: E402
from ppvi.cli import main  # noqa: E402
from ppvi.errors import PPVIError  # noqa: E402
from ppvi.infer.dask_engine import connect  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
GMM = str(ROOT / "models" / "gmm.ppvi")
RTOL = 1e-12


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    """``ppvi run`` of the mixture in this process: the result every cluster's run must equal."""
    out = tmp_path_factory.mktemp("local") / "r.json"
    assert main(["run", GMM, "--max-iter", "4", "--tol", "0", "--seed", "3", "--quiet", "--out", str(out)]) == 0
    return ppvi.load_result(str(out))


@pytest.fixture
def threaded(request, monkeypatch):
    """CI's cluster: the LocalCluster ppvi asks for (N single-threaded worker processes, checked here), started with
    its workers as threads of this process (a worker process costs about 10 CPU-s: it starts, imports ppvi and
    loads the kernels); with --long the real one.  Worker processes running a fit: test_dask.py's shared cluster,
    started by the same `connect("local:2", ...)`."""
    if request.config.getoption("--long"):
        return None
    asked = []
    real = distributed.LocalCluster

    def cluster(**kwargs):
        asked.append(kwargs)
        return real(**{**kwargs, "processes": False, "protocol": "tcp://"})

    monkeypatch.setattr(distributed, "LocalCluster", cluster)
    return asked


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.long)])
def test_ppvi_run_dask_local_n_is_the_in_process_run(in_process, tmp_path, workers, threaded):
    """`ppvi run … --dask local:N` end to end: the cluster started and closed by the run, the result file's ELBO
    trace and every q the in-process run's to 1e-12, and the engine recorded.  N = 1 is the issue's cluster of
    one worker, its workers threads in CI (``threaded``); 2 workers with --long (2 partitions on 2 workers:
    test_dask.py, on its shared cluster; LDA on 1 and 4 workers: its `test_clusters_of_1_and_4_workers`, with
    --long)."""
    out = tmp_path / "r.json"
    code = main(["run", GMM, "--max-iter", "4", "--tol", "0", "--seed", "3", "--quiet", "--dask", f"local:{workers}",
                 "--out", str(out)])
    assert code == 0
    r = ppvi.load_result(str(out))
    engine = json.loads(out.read_text())["provenance"]["engine"]
    assert engine["name"] == "dask" and engine["workers"] == workers and engine["scheduler"].startswith("tcp://")
    assert threaded is None or [(a["n_workers"], a["processes"], a["threads_per_worker"]) for a in threaded] == [
        (workers, True, 1)]
    assert in_process.provenance.engine is None
    np.testing.assert_allclose(r.elbo_trace, in_process.elbo_trace, rtol=RTOL, atol=0)
    assert len(r.elbo_trace) == 4
    for var, q in in_process.q.items():
        for name, value in q.params.items():
            scale = max(1.0, float(np.max(np.abs(value))))
            np.testing.assert_allclose(r.q[var][name], value, rtol=0, atol=RTOL * scale, err_msg=f"q({var}) {name}")


def test_a_local_cluster_that_fails_to_start_is_reported_with_the_guard(monkeypatch):
    """distributed's failure (a chain of RuntimeErrors ending in "Nanny failed to start.") becomes a PPVIError
    naming the cause and the `if __name__ == "__main__":` guard.  (Before: the raw traceback.)"""
    def failing(*args, **kwargs):
        try:
            raise RuntimeError("Nanny failed to start worker process")
        except RuntimeError as e:
            raise RuntimeError("Nanny failed to start.") from e

    monkeypatch.setattr(distributed, "LocalCluster", failing)
    with pytest.raises(PPVIError) as e:
        connect("local:2", "script.py")
    text = e.value.format()
    assert text.startswith("script.py: error: the Dask LocalCluster of `local:2` did not start: Nanny failed to start "
                           "worker process")
    assert 'if __name__ == "__main__":' in text


SCRIPT = """
import ppvi

r = ppvi.load({model!r}).fit(max_iter=2, engine="dask", client="local:1")      # (its data: models/gmm.csv)
print("fitted", r.elbo)
"""


@pytest.mark.long
@pytest.mark.parametrize("guarded", [False, True])
def test_a_script_without_the_main_guard(tmp_path, guarded):
    """A script that fits with ``client="local:N"`` at its top level: Dask's workers start by running the script
    again (multiprocessing's spawn), where it would start a cluster of its own.  ppvi stops that rerun quietly
    and the script's own fit ends in the PPVIError with the guard as hint, not in distributed's traceback.
    With the guard the same script fits.  (A subprocess and a cluster each: about 3 CPU-s and 12 s.)"""
    body = SCRIPT.format(model=GMM)
    if guarded:
        body = "if __name__ == '__main__':\n" + "".join(f"    {line}\n" for line in body.strip().splitlines())
    script = tmp_path / "fit.py"
    script.write_text(body)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    if guarded:
        assert done.returncode == 0 and "fitted" in done.stdout, done.stderr
        return
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-2:]
    assert last[0].startswith(f"ppvi.errors.PPVIError: {GMM}: error: the Dask LocalCluster of `local:1` did not "
                              "start"), done.stderr
    assert 'if __name__ == "__main__":' in last[1]
    assert "Nanny failed to start." not in done.stderr and "bootstrapping phase" not in done.stderr, done.stderr
