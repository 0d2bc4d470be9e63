"""``ppvi`` command line (docs/cli.md).

Exit status: 0 success, 2 a user's mistake (model, data, flags), 1 an internal
fault (one line; the traceback only with ``--debug``).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import dataclasses
import gc
import os
import sys
import traceback
import warnings
from typing import NoReturn, Sequence

from ppvi import __version__
from ppvi.errors import Diagnostic, PPVIError, PPVIWarning, did_you_mean

EXIT_OK, EXIT_FAULT, EXIT_USER = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports flag mistakes as ppvi diagnostics instead of exiting itself."""

    def error(self, message: str):  # type: ignore[override]
        raise PPVIError(Diagnostic(message, path=self.prog, hint=f"see `{self.prog} --help`"))


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ppvi", description="Compile generative models to mean-field variational inference.")
    p.add_argument("--version", action="version", version=f"ppvi {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal faults")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    c = sub.add_parser("check", help="parse and check a model; print its factor graph")
    c.add_argument("model", metavar="MODEL", help="a .ppvi file")
    c.add_argument("--format", choices=["text", "json"], default="text", help="output format (default text)")
    c.add_argument("--dump", choices=["ast", "graph"], default="graph",
                   help="which stage to print: the parsed AST or the factor graph (default)")
    c.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    d = sub.add_parser("derive", help="derive and print the mean-field updates and the ELBO")
    d.add_argument("model", metavar="MODEL", help="a .ppvi file")
    d.add_argument("--format", choices=["text", "latex", "json"], default="text", help="output format (default text)")
    d.add_argument("--dump", choices=["ast", "graph", "derivation", "kernels", "statistics", "schedule", "sums",
                                           "rewrites"],
                   default="derivation", help="stop after a stage and print it: ast, graph, the derivation "
                   "(default), or the kernel IR's kernels, statistics, schedule, sums over the data plate, or "
                   "the symbolic rewrites (each expression after each rule)")
    d.add_argument("--after", metavar="PASS", default=None,
                   help="with --dump kernels|statistics|schedule: the IR after this pass (lower: before any)")
    d.add_argument("--code", action="store_true", help="print the generated kernel source instead")
    d.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    r = sub.add_parser("run", help="fit the model to data by coordinate ascent on the ELBO")
    r.add_argument("model", metavar="MODEL", help="a .ppvi file")
    r.add_argument("--data", metavar="PATH", help="data file (.npz, .json, .csv); default: beside the model")
    r.add_argument("--dim", metavar="NAME=INT", action="append", default=[], help="set a dim's size")
    r.add_argument("--out", metavar="PATH", help="write the result (.json or .npz)")
    r.add_argument("--seed", type=_seed, default=0, help="random seed, a whole number ≥ 0 (default 0)")
    r.add_argument("--max-iter", type=_positive_int, default=1000, help="most sweeps (default 1000)")
    r.add_argument("--tol", type=_nonnegative_float, default=1e-8,
                   help="stop when the ELBO changes by less than this, relative (default 1e-8; 0: run to --max-iter)")
    r.add_argument("--damping", type=_unit_float, default=None, help="parallel schedule with this step (0, 1]")
    r.add_argument("--restarts", type=_positive_int, default=1, help="random restarts; the best ELBO wins")
    r.add_argument("--init", metavar="PATH", help="start from an earlier result (.json or .npz of `--out`)")
    r.add_argument("--given", metavar="PATH", help="predict: hold the global q and params of this result fixed "
                                                   "and fit only the local q of --data")
    r.add_argument("--memoized", action="store_true",
                   help="memoized VI: the data in chunks, each chunk's statistics kept (docs/scale.md)")
    r.add_argument("--chunks", type=_positive_int, default=None, help="with --memoized: how many chunks (default 8)")
    r.add_argument("--svi", action="store_true", help="stochastic VI on minibatches (docs/scale.md)")
    r.add_argument("--batch", type=_positive_int, default=None,
                   help="with --svi: units (documents, or points) per minibatch")
    r.add_argument("--kappa", type=_kappa, default=None, help="with --svi: rho_t = (tau + t)^-kappa, kappa in "
                                                               "[0, 1] (default 0.7)")
    r.add_argument("--tau", type=_nonnegative_float, default=None, help="with --svi: tau >= 0 (default 1)")
    r.add_argument("--passes", type=_positive_int, default=None, help="with --svi: passes over the data (default 10)")
    r.add_argument("--chunk-size", type=_positive_int, default=None,
                   help="read the data this many units at a time, never whole (a directory of .npy, an uncompressed "
                        ".npz, .parquet, .zarr; those but .npz are always read so); the local q go to OUT.local/ "
                        "(docs/scale.md)")
    r.add_argument("--dask", metavar="ADDRESS|local:N", default=None,
                   help="run the local steps on a Dask cluster: a scheduler's address (tcp://HOST:PORT), or local:N "
                        "for N worker processes on this machine (docs/scale.md)")
    r.add_argument("--quiet", action="store_true", help="no progress line and no summary")
    r.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    e = sub.add_parser("export", help="write a result's draws and q as ArviZ InferenceData (netCDF)")
    e.add_argument("result", metavar="RESULT", help="a result file (.json or .npz) written by `ppvi run --out`")
    e.add_argument("--draws", type=_positive_int, default=1000, help="draws from q (default 1000)")
    e.add_argument("--seed", type=_seed, default=0, help="random seed of the draws (default 0)")
    e.add_argument("--data", metavar="PATH", help="the data, for observed_data (default: the file the result names)")
    e.add_argument("--out", metavar="PATH", required=True, help="the netCDF file to write (.nc)")
    e.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    g = sub.add_parser("plot", help="draw a result: the ELBO trace, marginals of q, a mixture's data")
    g.add_argument("result", metavar="RESULT", help="a result file (.json or .npz) written by `ppvi run --out`")
    g.add_argument("--out", metavar="PATH", required=True, help="the picture to write (.png, .pdf or .svg)")
    g.add_argument("--var", metavar="NAME", action="append", default=None,
                   help="a latent or param whose marginals to draw (repeatable; default: the global latents)")
    g.add_argument("--data", metavar="PATH",
                   help="the data, for a mixture's points (default: the file the result names)")
    g.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    _simulation_parsers(sub)
    return p


def _whole_number(text: str, least: int) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < least:
        raise argparse.ArgumentTypeError(f"{v} is not ≥ {least}")
    return v


def _positive_int(text: str) -> int:
    return _whole_number(text, 1)


def _seed(text: str) -> int:
    return _whole_number(text, 0)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _positive_float(text: str) -> float:
    v = _number(text)
    if not 0 < v < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return v


def _nonnegative_float(text: str) -> float:
    v = _number(text)
    if not 0 <= v < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a number ≥ 0")
    return abs(v)          # (-0.0 is 0)


def _kappa(text: str) -> float:
    v = _nonnegative_float(text)
    if v > 1:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1]")
    return v


def _unit_float(text: str) -> float:
    v = _positive_float(text)
    if v > 1:
        raise argparse.ArgumentTypeError(f"{text} is not in (0, 1]")
    return v


def _dims(items: list[str], model) -> dict[str, int]:
    """``--dim NAME=INT`` flags, each checked against the model's dims and the range of a size."""
    from ppvi.io.data import check_dims

    out = {}
    for item in items:
        name, eq, value = item.partition("=")
        try:
            if not eq:
                raise ValueError
            out[name.strip()] = int(value)
        except ValueError:
            raise PPVIError(Diagnostic(f"--dim {item}: expected NAME=INT", "ppvi", hint="e.g. --dim K=5")) from None
    return check_dims(model, out, "ppvi", "--dim {name}={value}")


def _cmd_check(args) -> int:
    from ppvi.graph import build
    from ppvi.graph.render import to_json, to_text
    from ppvi.language import check, parse_file

    module = parse_file(args.model)
    if args.dump == "ast":
        from ppvi.language.dump import ast_to_text
        sys.stdout.write(ast_to_text(module))
        return EXIT_OK
    graph = build(check(module))
    sys.stdout.write(to_json(graph) if args.format == "json" else to_text(graph))  # latex: the graph has none
    return EXIT_OK


def _cmd_derive(args) -> int:
    ir = args.dump in ("kernels", "statistics", "schedule", "sums", "rewrites")
    if args.after is not None and not ir:
        raise PPVIError(Diagnostic("--after needs --dump kernels, statistics or schedule", "ppvi derive",
                                   hint=f"e.g. ppvi derive MODEL --dump kernels --after {args.after}"))
    if ir:
        return _dump_ir(args)
    if args.dump != "derivation":
        return _cmd_check(args)
    from ppvi.derive import derive
    from ppvi.derive.render import to_json, to_latex, to_text
    from ppvi.language import load
    from ppvi.language.missing import imputing

    d = derive(imputing(load(args.model)))      # (a `: missing` variable's q shown: some entry is missing)
    if args.code:
        from ppvi.codegen.cache import fixed_sizes
        from ppvi.codegen.module import generate

        sys.stdout.write(generate(d, fixed_sizes(d.model)))
        return EXIT_OK
    sys.stdout.write({"text": to_text, "latex": to_latex, "json": to_json}[args.format](d))
    return EXIT_OK


def _dump_ir(args) -> int:
    """The kernel IR after a pass (codegen.passes), as text (codegen.dump)."""
    from ppvi.codegen.passes import NAMES, run_passes

    if args.after is not None and args.after not in NAMES:
        raise PPVIError(Diagnostic(f"--after {args.after}: no such pass", "ppvi derive",
                                   hint=did_you_mean(args.after, NAMES) or f"the passes: {', '.join(NAMES)}"))
    from ppvi.codegen.cache import fixed_sizes
    from ppvi.codegen.dump import dump
    from ppvi.codegen.module import lower
    from ppvi.derive import derive
    from ppvi.language import load
    from ppvi.language.missing import imputing

    d = derive(imputing(load(args.model)))
    sys.stdout.write(dump(run_passes(lower(d, fixed_sizes(d.model)), args.after), args.dump))
    return EXIT_OK


def _cmd_run(args) -> int:
    from ppvi.api import Model
    from ppvi.files import Interrupts, check_writable

    if args.out:
        check_writable(args.out, (".json", ".npz"))      # (before the fit: a mistake here must not cost it)
    if args.given:
        _check_given(args)
    algorithm = _algorithm(args)
    clash = [f for f, on in (("--damping", args.damping is not None), ("--given", args.given)) if on]
    if args.dask is not None and clash:
        raise PPVIError(Diagnostic(f"--dask with {clash[0]}", "ppvi run",
                                   hint="the Dask engine runs the sequential schedule: drop --damping" if clash[0] ==
                                   "--damping" else "a prediction runs in this process: drop --dask"))
    if args.dask is not None:
        import logging

        # (an interrupted gather leaves Dask's waiting tasks unretrieved: asyncio would print each at exit)
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    model = Model.load(args.model)       # (a mistake in the model is reported before Numba is imported)
    dims = _dims(args.dim, model.checked)
    from ppvi.codegen.cache import fast_load

    fast = fast_load()
    if fast is not None:
        fast.blas_alone()      # (this process runs no code of the user's that could miss scipy.linalg.cython_blas)
    if args.collector_paused:
        _resume_collector()
    from ppvi.io.progress import Bar, Lines

    progress = False if args.quiet else (Bar if sys.stderr.isatty() else Lines)(sys.stderr, stochastic=args.svi)
    # SIGTERM and SIGHUP stop a fit as Ctrl-C does, keeping the current q; a signal during the write of the
    # result waits until the file is whole.
    interrupts = Interrupts()
    with interrupts.installed():
        with _warnings_shown():
            if args.given:
                result = model.predict(args.given, args.data, dims=dims, seed=args.seed, max_iter=args.max_iter,
                                       tol=args.tol, progress=progress)
            else:
                result = model.fit(args.data, dims=dims, seed=args.seed, max_iter=args.max_iter, tol=args.tol,
                                   restarts=args.restarts, damping=args.damping, progress=progress,
                                   init=args.init, algorithm=algorithm,
                                   engine=None if args.dask is None else "dask", client=args.dask,
                                   on_iteration=interrupts.check, **_streaming(args, model))
        with interrupts.deferred():
            if args.out:
                _saved(result).save(args.out)
            if not args.quiet:
                sys.stdout.write(result.summary())
    if result.interrupted:
        print("ppvi: interrupted; the current q was kept" + (f" in {args.out}" if args.out else ""), file=sys.stderr)
        return 128 + (interrupts.received or 2)
    return EXIT_OK


def _streaming(args, model) -> dict:
    """``fit``'s chunk_size and local_dir for data read in chunks: the local q beside the result, in OUT.local/."""
    from ppvi.io.chunked import chunked_kind

    path = args.data
    if path is None:
        from ppvi.io.data import default_data_path
        path = default_data_path(model.checked.path)
    streamed = args.chunk_size is not None or (path is not None and chunked_kind(path) not in (None, "npz"))
    if not streamed or not args.out:
        return {"chunk_size": args.chunk_size}
    return {"chunk_size": args.chunk_size, "local_dir": os.path.splitext(args.out)[0] + ".local"}


def _saved(result):
    """The result as written: the local q of a fit of data read in chunks are in their .npy files, not in it."""
    algorithm = (result.provenance.algorithm or {}) if result.provenance is not None else {}
    if "local_dir" not in algorithm:
        return result
    local = str(algorithm.get("local_q", "")).split(",")
    kept = {name: q for name, q in result.q.items() if name not in local}
    return dataclasses.replace(result, q=kept)


def _algorithm(args):
    """--memoized [--chunks C] or --svi --batch B [--kappa K --tau T --passes P]: the settings of ``fit``'s
    ``algorithm``; a flag of one without it, or with another schedule, is a mistake."""
    from ppvi.infer.memoized import Memoized
    from ppvi.infer.svi import SVI

    def fail(message: str, hint: str) -> PPVIError:
        return PPVIError(Diagnostic(message, "ppvi run", hint=hint))

    svi_flags = [f for f, v in (("--batch", args.batch), ("--kappa", args.kappa), ("--tau", args.tau),
                                ("--passes", args.passes)) if v is not None]
    if args.memoized and args.svi:
        raise fail("--memoized and --svi together: a fit is one or the other", "drop one of them")
    if args.chunks is not None and not args.memoized:
        raise fail("--chunks without --memoized", "add --memoized (memoized VI over that many chunks)")
    if svi_flags and not args.svi:
        raise fail(f"{svi_flags[0]} without --svi", "add --svi (stochastic VI)")
    chosen = "--memoized" if args.memoized else "--svi" if args.svi else None
    if chosen is None:
        return None
    clash = [f for f, on in (("--damping", args.damping is not None), ("--given", args.given)) if on]
    if clash:
        raise fail(f"{chosen} with {clash[0]}", f"drop {clash[0]}: {chosen} takes its own steps" if clash[0] ==
                   "--damping" else "a prediction fits only the local q; fit with --memoized or --svi, then predict")
    if args.memoized:
        return Memoized(8 if args.chunks is None else args.chunks)
    if args.batch is None:
        raise fail("--svi needs --batch B, the units (documents, or points) per minibatch", "e.g. --svi --batch 64")
    return SVI(args.batch, kappa=0.7 if args.kappa is None else args.kappa, tau=1.0 if args.tau is None else args.tau,
               passes=10 if args.passes is None else args.passes)


def _check_given(args) -> None:
    """--given fits the local q from one start with the fit's schedule: flags of a whole fit are mistakes."""
    clash = [flag for flag, on in (("--init", args.init), ("--restarts", args.restarts != 1),
                                   ("--damping", args.damping is not None)) if on]
    if clash:
        raise PPVIError(Diagnostic(f"--given with {clash[0]}: a prediction holds the given result's globals and "
                                   "fits only the local q, from one start", args.given,
                                   hint=f"drop {clash[0]}; --init continues a whole fit, --given predicts"))


def _cmd_export(args) -> int:
    from ppvi.io.export import arviz, check_netcdf, write_netcdf
    from ppvi.result import load_result

    check_netcdf(args.out)
    result = load_result(args.result)
    arviz()                          # (missing: said before the draws are made)
    with _warnings_shown():
        write_netcdf(args.out, result, draws=args.draws, seed=args.seed, data=args.data)
    return EXIT_OK


def _cmd_plot(args) -> int:
    from ppvi.io.export import optional
    from ppvi.io.plot import check_figure, pyplot
    from ppvi.result import load_result

    check_figure(args.out)
    result = load_result(args.result)
    optional("matplotlib", "matplotlib", "plot", "plot").use("Agg")      # (a file, not a window: no display)
    with _warnings_shown():
        fig = result.plot(var_names=args.var, data=args.data, path=args.out)
    pyplot().close(fig)
    return EXIT_OK


# ----------------------------------------------------------------- simulation and evidence (ppvi.simulate)
def _simulation_parsers(sub) -> None:
    s = sub.add_parser("sample", help="draw every latent and observed variable: from the prior, or (--given) "
                                      "the latents from a fit's q and the data from the model")
    s.add_argument("model", metavar="MODEL", help="a .ppvi file")
    s.add_argument("--given", metavar="RESULT", help="a result file of MODEL: posterior predictive draws")
    s.add_argument("--data", metavar="PATH", help="covariates, params and sizes (default: none; with --given, "
                                                  "the fit's data)")
    s.add_argument("--dim", metavar="NAME=INT", action="append", default=[], help="set a dim's size")
    s.add_argument("--draws", metavar="N", type=_positive_int, required=True, help="how many draws")
    s.add_argument("--seed", type=_seed, default=0, help="random seed, a whole number ≥ 0 (default 0)")
    s.add_argument("--out", metavar="PATH", required=True, help="the draws (.npz), each with a leading draws axis")
    s.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    e = sub.add_parser("evidence", help="log p(data) by importance sampling with a fit's q (prints JSON)")
    e.add_argument("model", metavar="MODEL", help="a .ppvi file")
    e.add_argument("--given", metavar="RESULT", required=True, help="a result file of MODEL")
    e.add_argument("--data", metavar="PATH", help="the fit's data (default: the file the result names)")
    e.add_argument("--samples", metavar="S", type=_positive_int, required=True, help="draws from q")
    e.add_argument("--per-datum", action="store_true", help="one sampler per data point (models whose latents "
                                                           "are all local)")
    e.add_argument("--seed", type=_seed, default=0, help="random seed, a whole number ≥ 0 (default 0)")
    e.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)


def _given(args, model):
    """The result of --given, checked to be a fit of MODEL."""
    from ppvi.result import load_result

    result = load_result(args.given)
    p = result.provenance
    if p is None or p.model_text != model.checked.text:
        raise PPVIError(Diagnostic(f"{args.given} is not a fit of this model (its model text differs)", args.model,
                                   hint=f"pass the model that was fitted, or fit this one: ppvi run {args.model} "
                                        "--out r.json"))
    return result


def _cmd_sample(args) -> int:
    import io

    import numpy as np

    from ppvi.api import Model
    from ppvi.files import check_writable, write_atomic
    from ppvi.simulate.ancestral import sample_predictive, sample_prior

    check_writable(args.out, (".npz",))
    model = Model.load(args.model)
    dims = _dims(args.dim, model.checked)
    if args.given is not None and dims:
        raise PPVIError(Diagnostic("--dim with --given: the sizes are the fit's", "ppvi",
                                   hint="drop --dim (new sizes need a prediction: ppvi run --given)"))
    with _warnings_shown():
        if args.given is None:
            draws = sample_prior(model.checked, args.draws, data=args.data, seed=args.seed, dims=dims, where="ppvi")
        else:
            draws = sample_predictive(_given(args, model), args.draws, seed=args.seed, data=args.data,
                                      where="ppvi")
    buf = io.BytesIO()
    np.savez(buf, **draws)
    write_atomic(args.out, buf.getvalue())
    return EXIT_OK


def _cmd_evidence(args) -> int:
    from ppvi.api import Model
    from ppvi.io.results import json_value
    from ppvi.simulate.evidence import evidence

    result = _given(args, Model.load(args.model))
    with _warnings_shown():
        e = evidence(result, args.samples, per_datum=args.per_datum, seed=args.seed, data=args.data,
                     where=args.model)
    out = e.to_dict()
    per = out.pop("per_datum", None)
    lines = [f'  "{k}": {json_value(v)}' for k, v in out.items()]
    if per is not None:
        lines.append('  "per_datum": {' + ", ".join(f'"{k}": {json_value(v)}' for k, v in per.items()) + "}")
    sys.stdout.write("{\n" + ",\n".join(lines) + "\n}\n")
    return EXIT_OK


@contextlib.contextmanager
def _warnings_shown():
    """ppvi's warnings and notes as diagnostics on stderr (each time, not once per place)."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", PPVIWarning)
        warnings.showwarning = _show_warning
        yield


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings during a run: ppvi's as their diagnostic (``FILE: note: …``), others as Python shows them."""
    if isinstance(message, PPVIWarning):
        print(message.diagnostic.format(), file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def main(argv: Sequence[str] | None = None, *, collector_paused: bool = False) -> int:
    """Run the command; ``collector_paused``: the caller disabled the garbage collector for start-up, and
    a ``run`` resumes it once Numba is imported (see :func:`entry`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    args = None
    try:
        args = _parser().parse_args(argv)
        args.collector_paused = collector_paused
        if args.command is None:
            _parser().print_help(sys.stderr)
            return EXIT_USER
        return {"check": _cmd_check, "derive": _cmd_derive, "run": _cmd_run, "export": _cmd_export,
                "plot": _cmd_plot, "sample": _cmd_sample, "evidence": _cmd_evidence}[args.command](args)
    except PPVIError as e:
        _report(e.format())
        return EXIT_USER
    except KeyboardInterrupt as e:
        _report("ppvi: interrupted")
        return 128 + getattr(e, "signum", 2)
    except BrokenPipeError:
        return EXIT_OK
    except MemoryError as e:  # the input's sizes, past what io.data's estimate (the variables alone) could see
        _report(_out_of_memory(getattr(args, "model", None) or getattr(args, "result", None) or "ppvi", e).format())
        return EXIT_USER
    except Exception as e:  # an internal fault: ours to fix, not the user's
        if debug:
            traceback.print_exc()
        else:
            first = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
            _report(f"ppvi: internal error: {type(e).__name__}: {first} (rerun with --debug for the traceback)")
        return EXIT_FAULT


def _out_of_memory(path: str, e: MemoryError) -> PPVIError:
    detail = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
    return PPVIError(Diagnostic("out of memory" + (f": {detail}" if detail else ""), str(path),
                                hint="smaller sizes (--dim, a smaller --data file), or a machine with more memory; "
                                     "`ppvi check` lists each variable's shape"))


def _report(text: str) -> None:
    """A message on stderr; a reader that has gone away changes nothing (the exit status still tells)."""
    try:
        print(text, file=sys.stderr, flush=True)
    except (BrokenPipeError, OSError, ValueError):
        pass


def _resume_collector() -> None:
    """Collect garbage again, now that Numba is imported, over only what is made from here on.

    :func:`entry` pauses the collector: importing NumPy, Numba and ppvi makes about 90,000 long-lived
    containers and next to no garbage, yet each growth of the heap by a quarter sets off a full
    collection over all of them (0.05–0.1 s of a warm run).  Frozen, they are never scanned again."""
    gc.freeze()
    gc.enable()


def entry() -> NoReturn:
    """The ``ppvi`` command: :func:`main`, then end the process without the interpreter's tear-down.

    Finalising a process that has loaded Numba (its modules, LLVM, the thread pool) takes about
    0.2 s, longer than a warm run's fit.  By the time main returns, everything ppvi writes is
    complete (result files are written atomically and closed); the exit handlers still run and
    stdout and stderr are flushed, and then there is nothing left for the tear-down to do.  Under a
    profiler or tracer (cProfile, coverage), which report at the tear-down, the process exits as usual.
    """
    gc.disable()
    code = main(collector_paused=True)
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):      # (a reader that went away; a stream already closed)
            pass
        except OSError as e:
            print(f"ppvi: cannot write the output: {e}", file=sys.__stderr__)
            code = code or EXIT_FAULT
    os._exit(code)


if __name__ == "__main__":
    entry()
