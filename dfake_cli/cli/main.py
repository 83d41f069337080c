"""`dfake`: entry point, global options and one-line error reporting.

Subcommands live in sibling modules, each exposing `register(app)`; they are thin shims over
`dfake_cli.api` and import it (and torch, diffusers) inside the command bodies so that `dfake --help`
stays fast. The global options reach them through `cli.context.state(ctx)`.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated, Optional

import typer

try:  # typer >= 0.16 vendors its own click; its exceptions are not click's
    from typer._click import exceptions as _cx
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as _cx

from dfake_cli import __version__
from dfake_cli.cli.context import State
from dfake_cli.errors import DfakeError

# Each module here defines `register(app: typer.Typer) -> None`; `--help` lists them in this (workflow) order.
COMMAND_MODULES = ["prepare", "train", "eval", "detect", "reconstruct", "bench", "info"]


class _WorkflowOrder(typer.core.TyperGroup):
    """Commands in the order a user runs them, not alphabetically."""

    def list_commands(self, ctx):  # noqa: D102 - click's hook
        order = {name: i for i, name in enumerate(COMMAND_MODULES)}
        return sorted(self.commands, key=lambda name: order.get(name, len(order)))


app = typer.Typer(
    name="dfake",
    cls=_WorkflowOrder,
    help="DiffusionFake deepfake detection: prepare datasets, train, evaluate across datasets, reconstruct.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dfake {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    ctx: typer.Context,
    workspace: Annotated[Optional[str], typer.Option(
        "--workspace", "-w", envvar="DFAKE_WORKSPACE", show_envvar=True,
        help="Workspace folder (caches in data/, runs in runs/). Default: ./dfake-workspace.", show_default=False,
    )] = None,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", envvar="DFAKE_VERBOSE", show_envvar=True,
        help="Debug logs, and a traceback with every error.")] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Warnings and errors only: no progress bars, no progress notes.")] = False,
    no_progress: Annotated[bool, typer.Option(
        "--no-progress", envvar="DFAKE_NO_PROGRESS", show_envvar=True,
        help="No progress bars (logs stay); for logs of batch jobs.")] = False,
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """Results go to stdout (tables, or one JSON document with --json); progress and logs to stderr."""
    from dfake_cli.console import set_progress
    from dfake_cli.runtime import setup_logging

    ctx.obj = State(workspace, verbose, quiet)
    set_progress(not (quiet or no_progress))
    setup_logging(-1 if quiet else 1 if verbose else 0)


for _name in COMMAND_MODULES:
    importlib.import_module(f"dfake_cli.cli.{_name}").register(app)


_INTERRUPTED = "dfake: interrupted (work written so far is kept; run the same command again to resume)"


def _by_ctrl_c(exc: BaseException) -> bool:
    """Whether `exc` was raised because of a KeyboardInterrupt (anywhere down its cause/context chain)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def main(argv: Optional[list[str]] = None) -> None:
    """Run the CLI; every error becomes one line on stderr with exit code 2 (input) or 1 (failure)."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in args or "-v" in args or os.environ.get("DFAKE_VERBOSE") == "1"
    command = typer.main.get_command(app)
    try:
        rc = command.main(args=args, prog_name="dfake", standalone_mode=False)
        code = rc if isinstance(rc, int) else 0
        if code == 130:  # typer catches Ctrl-C itself and *returns* Exit(130)'s code: no exception reaches us
            typer.echo(_INTERRUPTED, err=True)
    except typer.Exit as exc:
        code = exc.exit_code
        if _by_ctrl_c(exc) or code == 130:  # some typer/click paths turn Ctrl-C into Exit(130)
            typer.echo(_INTERRUPTED, err=True)
            code = 130
    except typer.Abort as exc:  # click turns a KeyboardInterrupt into Abort
        typer.echo(_INTERRUPTED if _by_ctrl_c(exc) else "dfake: aborted", err=True)
        code = 130
    except _cx.NoArgsIsHelpError as exc:
        typer.echo(exc.format_message())
        code = 0
    except _cx.UsageError as exc:
        hint = f" (see 'dfake {exc.ctx.command_path.split(' ', 1)[1]} --help')" if exc.ctx and " " in exc.ctx.command_path else " (see 'dfake --help')"
        message = _one_line(exc.format_message()).replace("Value error, ", "")  # typer's validation prefix
        typer.echo(f"dfake: error: {message}{hint}", err=True)
        code = 2
    except _cx.ClickException as exc:
        typer.echo(f"dfake: error: {_one_line(exc.format_message())}", err=True)
        code = exc.exit_code
    except DfakeError as exc:
        if verbose:
            import traceback

            traceback.print_exc()
        typer.echo(f"dfake: error: {_one_line(str(exc))}", err=True)
        code = exc.exit_code
    except KeyboardInterrupt:
        typer.echo(_INTERRUPTED, err=True)
        code = 130
    except Exception as exc:  # an unexpected failure: still one line unless --verbose
        if verbose:
            raise
        typer.echo(f"dfake: error: {type(exc).__name__}: {_one_line(str(exc))} (rerun with --verbose for the traceback)", err=True)
        code = 1
    sys.exit(code)
