"""`dfake`: entry point, global options and one-line error reporting.

Subcommands live in sibling modules, each exposing `register(app)`; heavy imports (torch, diffusers)
happen inside the command bodies so that `dfake --help` stays fast.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Optional

import typer

try:  # typer >= 0.16 vendors its own click; its exceptions are not click's
    from typer._click import exceptions as _cx
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as _cx

from dfake_cli import __version__
from dfake_cli.errors import DfakeError
from dfake_cli.workspace import Workspace

# Each module here defines `register(app: typer.Typer) -> None`.
COMMAND_MODULES = ["info", "prepare", "eval", "bench", "detect", "reconstruct", "train"]

app = typer.Typer(
    name="dfake",
    help="DiffusionFake deepfake detection: prepare datasets, train, evaluate across datasets, reconstruct.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


class State:
    """Global options, passed to subcommands through click's context object."""

    def __init__(self, workspace: Optional[str], verbose: bool):
        self._workspace_arg = workspace
        self.verbose = verbose

    @property
    def workspace(self) -> Workspace:
        return Workspace.resolve(self._workspace_arg)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dfake {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    ctx: typer.Context,
    workspace: Optional[str] = typer.Option(
        None, "--workspace", "-w", help="Workspace folder (caches in data/, runs in runs/). "
        "Default: $DFAKE_WORKSPACE, else ./dfake-workspace.", show_default=False,
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks on errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    ctx.obj = State(workspace, verbose)


def state(ctx: typer.Context) -> State:
    """The global State from any subcommand's context."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, State) else State(None, False)


for _name in COMMAND_MODULES:
    importlib.import_module(f"dfake_cli.cli.{_name}").register(app)


_INTERRUPTED = "dfake: interrupted (work written so far is kept; run the same command again to resume)"


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
    except typer.Exit as exc:
        code = exc.exit_code
        if isinstance(exc.__cause__, KeyboardInterrupt):  # typer turns Ctrl-C into Exit(130)
            typer.echo(_INTERRUPTED, err=True)
    except typer.Abort:
        typer.echo("dfake: aborted", err=True)
        code = 130
    except _cx.NoArgsIsHelpError as exc:
        typer.echo(exc.format_message())
        code = 0
    except _cx.UsageError as exc:
        hint = f" (see 'dfake {exc.ctx.command_path.split(' ', 1)[1]} --help')" if exc.ctx and " " in exc.ctx.command_path else " (see 'dfake --help')"
        typer.echo(f"dfake: error: {_one_line(exc.format_message())}{hint}", err=True)
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
