"""The `lnc` command line: one argparse parser, one subcommand per task.

Each subcommand is a thin layer over the library: `serve` runs the embedded server
(`lnc_client.server.cli`), `demo` runs the end-to-end demonstration (`lnc_client.cli.demo`).
`main` parses the arguments, dispatches to the subcommand's `run` function and returns its exit
status.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lnc_client import __version__
from lnc_client.cli.demo import add_demo_parser, run_demo
from lnc_client.server.cli import add_serve_parser, run_serve

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Return the `lnc` argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="lnc", description="Lance Wire Protocol client, tools and embedded server."
    )
    parser.add_argument("--version", action="version", version=f"lnc-client {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_serve_parser(subparsers)
    add_demo_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `lnc` with `argv` (default: the process arguments) and return the exit status."""
    args = build_parser().parse_args(list(argv) if argv is not None else sys.argv[1:])
    if args.command == "serve":
        return run_serve(args)
    return run_demo(args)
