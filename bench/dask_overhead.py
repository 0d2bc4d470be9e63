"""Dask's overhead per sweep: the Dask engine on a LocalCluster of 2 workers against the in-process engine.

    pip install "ppvi[dask]"
    python bench/dask_overhead.py                # a mixture of N = 200,000 points and LDA of 2,000 documents
    python bench/dask_overhead.py --quick        # N = 20,000 and 200 documents

Per-sweep times exclude compilation (a warm-up fit first, in this process and on the workers) and include
the ELBO.  Then the overhead of a round alone: the same fits on tiny data (compute next to nothing) with 1,
2, 4 and 8 partitions on the 2 workers, fitted as overhead = a + b·P seconds a sweep; and the bytes a sweep
sends to the workers (the global state) and gathers back (each partition's statistics, factor terms and
entropies).  docs/scale.md ("Dask") turns these figures into a scaling model for 16 and 64 workers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ppvi  # noqa: E402
from ppvi.codegen.cache import fixed_sizes, load as load_module  # noqa: E402
from ppvi.infer.cavi import fit  # noqa: E402
from ppvi.infer.chunks import Layout  # noqa: E402
from ppvi.infer.dask_engine import Dask, _shared_keys, close, connect  # noqa: E402
from ppvi.infer.program import Program  # noqa: E402
from ppvi.io.data import bind, check_dims, source_of  # noqa: E402


def gmm_data(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    centres = np.array([[-2.0, 0.0], [2.0, 1.0], [0.0, 3.0]])
    return {"x": centres[rng.integers(0, 3, n)] + rng.normal(scale=0.6, size=(n, 2))}


def lda_data(docs: int, seed: int = 0, v: int = 50, k: int = 4) -> dict:
    rng = np.random.default_rng(seed)
    phi = rng.dirichlet(np.full(v, 0.1), size=k)
    lengths = 1 + rng.poisson(49, size=docs)
    doc = np.repeat(np.arange(docs), lengths)
    theta = rng.dirichlet(np.full(k, 0.5), size=docs)
    z = np.array([rng.choice(k, p=theta[d]) for d in doc])
    word = np.array([rng.choice(v, p=phi[t]) for t in z])
    return {"doc": doc, "word": word}


def program(name: str, data: dict) -> Program:
    m = ppvi.load(str(ROOT / "models" / f"{name}.ppvi")).checked
    bound = bind(m, source_of(data, m), check_dims(m, {}, "fit", "{name}={value!r}"))
    return Program.build(m, load_module(m, fixed=fixed_sizes(m, bound.sizes))[0], bound)


def per_sweep(name: str, data: dict, sweeps: int, runner=None) -> tuple[float, float]:
    p = program(name, data)
    done = fit(p, seed=0, max_iter=sweeps, tol=0, runner=runner)
    return done.seconds / done.iterations, done.trace[-1]


def sizes(name: str, data: dict, partitions: int) -> dict:
    """Bytes a sweep sends (the global state, once per partition) and gathers (per partition)."""
    p = program(name, data)
    p.initialise(np.random.default_rng(0))
    layout = Layout.of(p)
    broadcast = sum(p.state[k].nbytes for k in _shared_keys(p, layout) if isinstance(p.state[k], np.ndarray))
    terms = 8 * len(p.plan.elbo.labels)
    reduce = sum(p.state[k].nbytes for k in layout.global_stats) + terms + 8 * len(layout.local_latents)
    return {"broadcast_bytes": broadcast, "reduce_bytes_per_partition": reduce, "partitions": partitions}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sweeps", type=int, default=10)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "dask.json"))
    a = ap.parse_args()
    n, docs = (20_000, 200) if a.quick else (200_000, 2_000)
    cases = {"gmm": gmm_data(n), "lda": lda_data(docs)}
    tiny = {"gmm": gmm_data(200, 1), "lda": lda_data(8, 1)}
    began = time.perf_counter()
    client = connect("local:2", "bench")
    start = time.perf_counter() - began
    out: dict = {"load": os.getloadavg()[0], "cluster_start_s": start, "cases": {}}
    try:
        engine = Dask(client).runner()
        for name, data in cases.items():
            per_sweep(name, data, 2)                         # (compiled, or loaded: here and on the workers)
            per_sweep(name, data, 2, engine)
            local, e1 = per_sweep(name, data, a.sweeps)
            dask, e2 = per_sweep(name, data, a.sweeps, engine)
            over = {}
            for parts in (1, 2, 4, 8):
                per_sweep(name, tiny[name], 1, Dask(client, parts).runner())
                t_local, _ = per_sweep(name, tiny[name], a.sweeps)
                t_dask, _ = per_sweep(name, tiny[name], a.sweeps, Dask(client, parts).runner())
                over[parts] = t_dask - t_local
            b, a0 = np.polyfit(list(over), list(over.values()), 1)
            out["cases"][name] = {"units": len(data["x"]) if name == "gmm" else docs, "in_process_s": local,
                                  "dask_2_workers_s": dask, "ratio": dask / local, "elbo_rel_diff": abs(e1 - e2) / abs(e1),
                                  "overhead_by_partitions_s": over, "overhead_a_s": a0, "overhead_b_s": b,
                                  **sizes(name, data, 2)}
    finally:
        close(client)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2))
    print(f"load {out['load']:.1f}; LocalCluster(2) start {start:.1f} s")
    print("| case | units | in-process s/sweep | Dask (2 workers) s/sweep | ratio | overhead a + b·P (s) | "
          "broadcast B/sweep/partition | reduce B/sweep/partition |")
    print("|---|---|---|---|---|---|---|---|")
    for name, c in out["cases"].items():
        print(f"| {name} | {c['units']} | {c['in_process_s']:.4f} | {c['dask_2_workers_s']:.4f} | {c['ratio']:.2f} | "
              f"{c['overhead_a_s']:.4f} + {c['overhead_b_s']:.4f}·P | {c['broadcast_bytes']} | "
              f"{c['reduce_bytes_per_partition']} |")


if __name__ == "__main__":
    main()
