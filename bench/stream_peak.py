"""Peak memory of a fit of data read chunk by chunk (docs/scale.md, "Data beyond memory").

    PYTHONPATH=. python bench/stream_peak.py POINTS DIR MODEL SWEEPS CHUNK

writes DIR/x.npy (POINTS 2-D points from three Gaussian clusters) a block at a time unless it exists, warms
MODEL's kernels on 500 points, then fits DIR in chunks of CHUNK units for SWEEPS sweeps and prints the
process's peak resident memory (ru_maxrss) before and after.
"""

import os
import resource
import sys
import time

import numpy as np

import ppvi


def write(path: str, n: int, block: int = 1 << 20) -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [4.0, 4.0], [-4.0, 4.0]])
    with open(path + ".part", "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": (n, 2)})
        for a in range(0, n, block):
            m = min(block, n - a)
            fh.write((centres[rng.integers(3, size=m)] + rng.normal(size=(m, 2))).tobytes())
    os.replace(path + ".part", path)


def main(points: str, directory: str, model: str, sweeps: str, chunk: str) -> None:
    n = int(float(points))
    os.makedirs(directory, exist_ok=True)
    if not os.path.exists(os.path.join(directory, "x.npy")):
        write(os.path.join(directory, "x.npy"), n)
    m = ppvi.load(model)
    m.fit({"x": np.random.default_rng(0).normal(size=(500, 2))}, max_iter=2, tol=0, progress=False)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    began = time.perf_counter()
    r = m.fit(directory, max_iter=int(sweeps), tol=0, progress=False, chunk_size=int(chunk))
    seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"points {n:,}  data {16 * n / 2**20:,.0f} MiB  chunk {int(chunk):,}  sweeps {r.iterations}  "
          f"seconds {seconds:.1f}  elbo {r.elbo:.6g}  peak RSS {peak / 1024:,.0f} MiB (before the fit "
          f"{before / 1024:,.0f} MiB)  load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main(*sys.argv[1:6])
