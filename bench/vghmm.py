"""The variational Gaussian HMM against hmmlearn, in one run (issue 18): seconds per iteration and linearity in T.

    python bench/vghmm.py                          # K = 10, 10^4, 10^5 and 10^6 steps in 100 sequences
    python bench/vghmm.py --sizes 10000,100000     # smaller
    python bench/vghmm.py --rest 0 --iters 3

ppvi fits models/sequences/vghmm.ppvi (Dirichlet start and rows, Normal–Gamma emissions, q(z) jointly:
forward–backward per sequence) with K = 10; its peers are hmmlearn's VariationalGaussianHMM (the same priors, a
joint q(μ, λ): docs/derivation.md §8) and GaussianHMM (EM, priors off), on the same data from the same start
(set directly: hmmlearn's k-means start is bypassed, so that its fit times the iterations alone).  Each case runs
in its own process (bench/run.py's way); ppvi's kernels are compiled, or loaded from the cache, by a warm-up fit
first, and its time per iteration includes the ELBO it evaluates every sweep.  Besides the table of seconds per
iteration and ratios, the linearity check: seconds per iteration per 10^6 steps at each size (constant if the
time is linear in T).  Results go to bench/results/vghmm.md.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from run import _quiet_seconds

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results"
MODEL = ROOT / "models" / "sequences" / "vghmm.ppvi"
PRIOR = {"a0": 1.0, "m0": 0.0, "beta0": 1.0, "nu0": 1.0, "s0": 1e-3}     # vghmm.ppvi's consts
TOOLS = ("ppvi", "hmmlearn VB", "hmmlearn EM")


def data(n: int, k: int, seqs: int, seed: int = 0) -> np.ndarray:
    """``seqs`` sequences of n / seqs steps from a sticky K-state HMM, state k emitting N(3k, 1)."""
    rng = np.random.default_rng(seed)
    T = n // seqs
    stay = 0.9
    z = np.empty((seqs, T), dtype=int)
    z[:, 0] = rng.integers(k, size=seqs)
    jumps = rng.random((seqs, T)) > stay
    other = rng.integers(k - 1, size=(seqs, T))
    for t in range(1, T):
        prev = z[:, t - 1]
        z[:, t] = np.where(jumps[:, t], (prev + 1 + other[:, t]) % k, prev)
    return 3.0 * z + rng.normal(size=(seqs, T))


def start(x: np.ndarray, k: int) -> dict:
    """One start for every tool: means at the data's quantiles, each state holding n / K points of variance 1."""
    n, seqs = x.size, x.shape[0]
    per = n / k
    dof = np.full(k, per)
    return {"pi": np.full(k, PRIOR["a0"] + seqs / k), "A": PRIOR["a0"] + per * (0.5 / k + 0.5 * np.eye(k)),
            "m": np.quantile(x, (np.arange(k) + 0.5) / k), "beta": np.full(k, per), "dof": dof, "scale": dof.copy()}


def case(tool: str, n: int, k: int, seqs: int, iters: int) -> dict:
    x = data(n, k, seqs)
    s = start(x, k)
    lengths = [x.shape[1]] * seqs
    if tool == "ppvi":
        import ppvi

        shape, rate = s["dof"] / 2, s["scale"] / 2
        init = {"q": {"pi": {"family": "Dirichlet", "alpha": s["pi"]}, "A": {"family": "Dirichlet", "alpha": s["A"]},
                      "lam": {"family": "Gamma", "shape": shape, "rate": rate},
                      "mu": {"family": "Normal", "mean": s["m"], "sd": np.sqrt(rate / shape / s["beta"])}}}
        m = ppvi.load(str(MODEL))
        m.fit({"x": x[:2, :200]}, max_iter=2, dims={"K": k})               # compile or load the kernels
        r = m.fit({"x": x}, max_iter=iters, tol=1e-300, dims={"K": k}, init=init)
        return {"per_iter": r.fit.seconds / r.fit.iterations, "objective": r.elbo}
    if tool == "hmmlearn VB":
        from hmmlearn.vhmm import VariationalGaussianHMM

        g = VariationalGaussianHMM(k, covariance_type="diag", init_params="", params="stmc", n_iter=iters,
                                   tol=-np.inf, startprob_prior=PRIOR["a0"], transmat_prior=PRIOR["a0"],
                                   means_prior=np.full((k, 1), PRIOR["m0"]), beta_prior=np.full(k, PRIOR["beta0"]),
                                   dof_prior=np.full(k, PRIOR["nu0"]), scale_prior=np.full((k, 1), PRIOR["s0"]))
        g.n_features = 1
        g._init = lambda X, lengths: None              # (its k-means start, bypassed: the start is set below)
        g.startprob_prior_, g.transmat_prior_ = np.full(k, PRIOR["a0"]), np.full((k, k), PRIOR["a0"])
        g.means_prior_, g.beta_prior_ = np.full((k, 1), PRIOR["m0"]), np.full(k, PRIOR["beta0"])
        g.dof_prior_, g.scale_prior_ = np.full(k, PRIOR["nu0"]), np.full((k, 1), PRIOR["s0"])
        g.startprob_posterior_, g.transmat_posterior_ = s["pi"], s["A"]
        g.means_posterior_, g.beta_posterior_ = s["m"][:, None], s["beta"]
        g.dof_posterior_, g.scale_posterior_ = s["dof"], s["scale"][:, None]
        g.covars_ = (s["scale"] / s["dof"])[:, None]
        el = _quiet_seconds(lambda: g.fit(x.reshape(-1, 1), lengths))
        # (hmmlearn's bound leaves out −½ log 2π per point: added, on ppvi's scale)
        return {"per_iter": el / iters, "objective": float(g.monitor_.history[-1]) - 0.5 * math.log(2 * math.pi) * n}
    if tool == "hmmlearn EM":
        from hmmlearn.hmm import GaussianHMM

        g = GaussianHMM(k, covariance_type="diag", init_params="", params="stmc", n_iter=iters, tol=-np.inf,
                        covars_prior=0.0, means_weight=0.0, covars_weight=1.0)
        g.startprob_, g.transmat_ = s["pi"] / s["pi"].sum(), s["A"] / s["A"].sum(1, keepdims=True)
        g.means_, g.covars_ = s["m"][:, None], (s["scale"] / s["dof"])[:, None]
        el = _quiet_seconds(lambda: g.fit(x.reshape(-1, 1), lengths))
        return {"per_iter": el / iters, "objective": float(g.monitor_.history[-1])}
    raise KeyError(tool)


def _run(rest: float, *args) -> dict | None:
    time.sleep(rest)
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(list(args))], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"  {args}: failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child")
    ap.add_argument("--sizes", default="10000,100000,1000000", help="total steps T, comma-separated")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--sequences", type=int, default=100)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--rest", type=float, default=15.0, help="seconds of idle before each case")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(case(*json.loads(args.child))))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    runs = {(n, tool): _run(args.rest, tool, n, args.k, args.sequences, args.iters) for n in sizes for tool in TOOLS}
    lines = [f"Variational Gaussian HMM, K = {args.k}, {args.sequences} sequences, {args.iters} iterations "
             "(seconds per iteration; speed-up = the peer's time over ppvi's)", "",
             "| T (steps) | ppvi s/iter | hmmlearn VB s/iter | speed-up | hmmlearn EM s/iter | speed-up | "
             "ppvi ELBO | hmmlearn VB bound |", "|" + "---|" * 8]
    for n in sizes:
        a, b, c = (runs[n, t] for t in TOOLS)
        cell = lambda r: f"{r['per_iter']:.4g}" if r else "failed"                            # noqa: E731
        ratio = lambda r: f"{r['per_iter'] / a['per_iter']:.2f}×" if r and a else ""           # noqa: E731
        obj = lambda r: f"{r['objective']:.8g}" if r else ""                                   # noqa: E731
        lines.append(f"| {n:,} | {cell(a)} | {cell(b)} | {ratio(b)} | {cell(c)} | {ratio(c)} | {obj(a)} | {obj(b)} |")
    lines += ["", "Linearity: seconds per iteration per 10^6 steps", "", "| T (steps) | " + " | ".join(TOOLS) + " |",
              "|" + "---|" * (len(TOOLS) + 1)]
    for n in sizes:
        lines.append(f"| {n:,} | " + " | ".join(f"{runs[n, t]['per_iter'] * 1e6 / n:.4g}" if runs[n, t] else "failed"
                                                for t in TOOLS) + " |")
    table = "\n".join(lines)
    print(table)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "vghmm.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
