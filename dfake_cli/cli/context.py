"""The global options (`--workspace`, `--verbose`, ...) as every subcommand sees them.

`cli/main.py` stores a `State` in click's context object; command modules read it with `state(ctx)`.
This lives apart from main.py so that command modules never import the entry point back.
"""

from __future__ import annotations

from typing import Optional

import typer

from dfake_cli.workspace import Workspace


class State:
    """Global options, passed to subcommands through click's context object."""

    def __init__(self, workspace: Optional[str] = None, verbose: bool = False, quiet: bool = False):
        self._workspace_arg = workspace
        self.verbose = verbose
        self.quiet = quiet

    @property
    def workspace(self) -> Workspace:
        return Workspace.resolve(self._workspace_arg)


def state(ctx: typer.Context) -> State:
    """The global State from any subcommand's context (a default one when run without the main app)."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, State) else State()
