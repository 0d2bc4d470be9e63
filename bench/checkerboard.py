"""Two-colour updates of an Ising denoising grid (issue 18, Speed): time per sweep of q(s) element by element
(Gauss–Seidel) and two colours at a time (the checkerboard, each colour under prange), on 1 and --threads
threads, against NumPy checkerboards written here, in one run, as ratios.

    python bench/checkerboard.py                          # 256 × 256 on the grid, 48 × 48 from a matrix
    python bench/checkerboard.py --side 512 --dense-side 32 --sweeps 50

Two ways to write the grid, each timed:

* models/ising_grid.ppvi, on the grid (`s[i - 1, j]`): O(1) work per pixel, colours (i + j) mod 2 fixed when
  the kernels are written; against a NumPy checkerboard that sums each pixel's neighbours by slicing the
  H × W image (--side, 256 by default).
* models/ising.ppvi, one latent s[N] with the adjacency as data A[N, N]: η reads Σ_j A[i, j]⟨s_j⟩, so a sweep
  is O(N²) and A holds N² doubles (256 × 256 would be 34 GB): --dense-side, 48 by default.  The colours come
  from A's graph (breadth-first search, once per fit); against NumPy's J[c] @ σ for the rows of colour c
  (BLAS on one thread), the same η from the same A.

All start from the same q and run the same sweeps; each ppvi sweep equals its NumPy reference to 1e-12
(checked).  Prints each time per sweep, the ratios and the load average (os.getloadavg) before and after.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

MODELS = Path(__file__).resolve().parents[1] / "models"
COUPLING, FIELD = 0.5, 1.0      # models/ising.ppvi's consts: J = coupling · A, h = field · y


def image(side: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A clean ±1 image of discs and its noisy copy (a tenth of the pixels flipped)."""
    r, c = np.mgrid[0:side, 0:side]
    clean = -np.ones((side, side))
    for _ in range(6):
        y0, x0, rad = rng.uniform(0, side, 2).tolist() + [rng.uniform(side / 10, side / 4)]
        clean[(r - y0) ** 2 + (c - x0) ** 2 < rad ** 2] = 1.0
    noisy = np.where(rng.random((side, side)) < 0.1, -clean, clean)
    return clean, noisy


def adjacency(side: int) -> np.ndarray:
    n = side * side
    A = np.zeros((n, n))
    i = np.arange(n).reshape(side, side)
    for a, b in ((i[:, :-1], i[:, 1:]), (i[:-1, :], i[1:, :])):
        A[a.ravel(), b.ravel()] = A[b.ravel(), a.ravel()] = 1.0
    return A


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def dense_sweep(J: np.ndarray, h: np.ndarray, p: np.ndarray, colours: list[np.ndarray]) -> None:
    """One checkerboard sweep from the dense J: η_i = 2h_i + 2 Σ_j J_ij (2p_j − 1), one colour at a time."""
    for c in colours:
        p[c] = sigmoid(2 * h[c] + 2 * J[c] @ (2 * p - 1))


def stencil_sweep(h: np.ndarray, p: np.ndarray, board: list[np.ndarray]) -> None:
    """The same sweep on the H × W image: each pixel's neighbours by slicing (O(N))."""
    for mask in board:
        s = 2 * p - 1
        near = np.zeros_like(s)
        near[1:, :] += s[:-1, :]
        near[:-1, :] += s[1:, :]
        near[:, 1:] += s[:, :-1]
        near[:, :-1] += s[:, 1:]
        p[mask] = sigmoid(2 * h[mask] + 2 * COUPLING * near[mask])


def per_sweep(step, sweeps: int) -> float:
    began = time.perf_counter()
    for _ in range(sweeps):
        step()
    return (time.perf_counter() - began) / sweeps


def program(name: str, data: dict, seed: int):
    """The model's program on ``data``, its kernels compiled (or loaded from the cache), at its start."""
    import ppvi
    from ppvi.codegen.cache import fixed_sizes, load as load_module
    from ppvi.infer.program import Program
    from ppvi.io.data import bind, check_dims, source_of

    m = ppvi.load(str(MODELS / f"{name}.ppvi")).checked
    bound = bind(m, source_of(data, m), check_dims(m, {}, "fit", "{name}={value!r}"))
    prog = Program.build(m, load_module(m, fixed=fixed_sizes(m, bound.sizes))[0], bound)
    prog.initialise(np.random.default_rng(seed))
    assert "s" in prog.coloured, prog.notes
    return prog


def ppvi_sweeps(prog, sweeps: int, threads: int, times: dict, label: str) -> np.ndarray:
    """Gauss–Seidel, then two colours on 1 and ``threads`` threads, each from the same start; q after the last."""
    import numba

    info, start = prog.plan.latents["s"], prog.state["q_s__p"].copy()

    def run(spec):
        kernel, arrays = getattr(prog.module, spec.name), [prog.state[a] for a in spec.args]
        return lambda: kernel(*arrays)

    gauss_seidel, colour = run(info.update), run(info.colour)
    gauss_seidel(), colour()            # (compiled, or loaded from the cache, before the clock)
    prog.state["q_s__p"][:] = start
    times[f"{label}: ppvi Gauss-Seidel"] = per_sweep(gauss_seidel, sweeps)
    for t in sorted({1, threads}):
        numba.set_num_threads(t)
        prog.state["q_s__p"][:] = start
        times[f"{label}: ppvi two colours, {t} thread{'s' if t > 1 else ''}"] = per_sweep(colour, sweeps)
    got = prog.state["q_s__p"].copy()
    prog.state["q_s__p"][:] = start
    return start, got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--side", type=int, default=256)
    ap.add_argument("--dense-side", type=int, default=48)
    ap.add_argument("--sweeps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits

    from ppvi.codegen.plan import ArrayNames

    load = os.getloadavg()
    times: dict[str, float] = {}
    rows = []

    # on the grid: colours by parity, against the NumPy stencil
    side = args.side
    clean, noisy = image(side, np.random.default_rng(args.seed))
    prog = program("ising_grid", {"y": noisy}, args.seed)
    start, got = ppvi_sweeps(prog, args.sweeps, args.threads, times, "grid")
    odd = np.indices((side, side)).sum(axis=0) % 2
    q = start.copy()
    times["grid: NumPy stencil checkerboard"] = per_sweep(
        lambda: stencil_sweep(FIELD * noisy, q, [odd == 0, odd == 1]), args.sweeps)
    assert np.abs(got - q).max() < 1e-12, "the grid's sweeps differ"
    wrong = np.mean(np.where(got > 0.5, 1.0, -1.0) != clean)
    rows.append(f"grid {side} x {side} (N = {side * side}): pixels wrong after {args.sweeps} sweeps {wrong:.3%} "
                f"(noisy: {np.mean(noisy != clean):.3%})")

    # from the adjacency matrix: colours from A's graph, against NumPy's dense J[c] @ σ
    side = args.dense_side
    _, noisy = image(side, np.random.default_rng(args.seed))
    A, y = adjacency(side), noisy.ravel()
    prog = program("ising", {"A": A, "y": y}, args.seed)
    start, got = ppvi_sweeps(prog, args.sweeps, args.threads, times, "matrix")
    elements = prog.state[ArrayNames.constant("colour", "s")]
    cut = int(prog.state[ArrayNames.constant("colours", "s")][1])
    J, h, p = COUPLING * A, FIELD * y, start.copy()
    with threadpool_limits(1, user_api="blas"):
        times["matrix: NumPy dense checkerboard"] = per_sweep(
            lambda: dense_sweep(J, h, p, [elements[:cut], elements[cut:]]), args.sweeps)
    assert np.abs(got - p).max() < 1e-12, "the matrix's sweeps differ"
    rows.append(f"matrix {side} x {side} (N = {side * side}, A dense)")

    print(f"{args.sweeps} sweeps each; load average {load[0]:.2f} before, {os.getloadavg()[0]:.2f} after")
    for label, row in zip(("grid", "matrix"), rows):
        print(row)
        base = times[f"{label}: ppvi two colours, {args.threads} thread{'s' if args.threads > 1 else ''}"]
        for name, t in times.items():
            if name.startswith(label):
                print(f"  {name[len(label) + 2:]:30s} {t * 1e3:10.3f} ms/sweep   {t / base:8.3f} x ppvi's two "
                      f"colours on {args.threads} threads")


if __name__ == "__main__":
    main()
