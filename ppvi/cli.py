"""``ppvi`` command line (DESIGN.md §3).

Exit status: 0 success, 2 a user's mistake (model, data, flags), 1 an internal
fault (one line; the traceback only with ``--debug``).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import Sequence

from ppvi import __version__
from ppvi.errors import Diagnostic, PPVIError

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
    d.add_argument("--dump", choices=["ast", "graph", "derivation"], default="derivation",
                   help="stop after a stage and print it: ast, graph, or the derivation (default)")
    d.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    return p


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
    if args.dump != "derivation":
        return _cmd_check(args)
    from ppvi.derive import derive
    from ppvi.derive.render import to_json, to_latex, to_text
    from ppvi.language import load

    d = derive(load(args.model))
    sys.stdout.write({"text": to_text, "latex": to_latex, "json": to_json}[args.format](d))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = _parser().parse_args(argv)
        if args.command is None:
            _parser().print_help(sys.stderr)
            return EXIT_USER
        return {"check": _cmd_check, "derive": _cmd_derive}[args.command](args)
    except PPVIError as e:
        print(e.format(), file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print("ppvi: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as e:  # an internal fault: ours to fix, not the user's
        if debug:
            traceback.print_exc()
        else:
            print(f"ppvi: internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback)",
                  file=sys.stderr)
        return EXIT_FAULT


if __name__ == "__main__":
    sys.exit(main())
