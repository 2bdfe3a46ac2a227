"""The `lnc` command line: every command of Lance's Rust `lnc`, and more.

One argparse parser with one subcommand per task; each command group lives in its own module
and is a thin layer over the library: `admin` (topics, retention, cluster status, ping; over
`LanceClient`), `data` (fetch, consume, ingest, produce; over `LanceClient`, `Connection`,
`StandaloneConsumer` and `Producer`), `offline` (data directories and segment files; over
`server.storage`), `bench` (throughput and latency against any server), `demo` and `serve`
(`lnc_client.server.cli`). Each subcommand sets `handler`, a function of the parsed arguments
returning an exit status, or a coroutine that `main` runs.

Errors: `main` prints one line, `Error: <what went wrong>` (the Rust CLI's form), on stderr and
returns 1; a usage error prints one line and returns 2; Ctrl-C returns 130. No traceback, even
for an unexpected error, unless `$LNC_DEBUG` is set.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import ssl
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Final, NoReturn, cast

from lnc_client import __version__
from lnc_client.cli.admin import add_admin_parsers
from lnc_client.cli.bench import add_bench_parser
from lnc_client.cli.common import CliError
from lnc_client.cli.data import add_data_parsers
from lnc_client.cli.demo import add_demo_parser, run_demo
from lnc_client.cli.offline import add_offline_parsers
from lnc_client.errors import LanceError
from lnc_client.server.cli import add_serve_parser, run_serve

__all__ = ["build_parser", "main"]

ENV_DEBUG: Final = "LNC_DEBUG"
"""Set to show the traceback of an unexpected error (a bug) instead of one line."""

Handler = Callable[[argparse.Namespace], int | Coroutine[object, object, int]]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (and exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Return the `lnc` argument parser with every subcommand."""
    parser = _Parser(
        prog="lnc",
        description="Lance Wire Protocol command line: topics, data, offline tools, "
        "benchmarks and an embedded server. Accepts every command of Lance's own `lnc`.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"lnc-client {__version__}")
    subparsers = cast(
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(dest="command", required=True, metavar="COMMAND"),
    )
    add_admin_parsers(subparsers)
    add_data_parsers(subparsers)
    add_offline_parsers(subparsers)
    add_bench_parser(subparsers)
    add_serve_parser(subparsers).set_defaults(handler=run_serve)
    add_demo_parser(subparsers)
    subparsers.choices["demo"].set_defaults(handler=run_demo)
    return parser


def _run(handler: Handler, args: argparse.Namespace) -> int:
    outcome = handler(args)
    if isinstance(outcome, int):
        return outcome
    return asyncio.run(outcome)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `lnc` with `argv` (default: the process arguments) and return the exit status."""
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="replace")
    args = build_parser().parse_args(list(argv) if argv is not None else sys.argv[1:])
    try:
        return _run(args.handler, args)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`lnc consume ... | head`): quietly
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (CliError, LanceError, OSError, ValueError, ssl.SSLError, TimeoutError) as error:
        sys.stdout.flush()
        print(f"Error: {_one_line(error)}", file=sys.stderr)
        return 1
    except Exception as error:  # a bug: still one line, unless LNC_DEBUG asks for the traceback
        if os.environ.get(ENV_DEBUG):
            raise
        sys.stdout.flush()
        print(
            f"Error: unexpected {type(error).__name__}: {_one_line(error)} "
            f"(set {ENV_DEBUG}=1 for a traceback)",
            file=sys.stderr,
        )
        return 1


def _one_line(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if isinstance(error, OSError) and error.strerror and error.filename:
        text = f"{error.strerror}: {error.filename}"
    return " ".join(text.split())
