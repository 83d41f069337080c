"""Running the `dfake` CLI in-process from tests: exit code, stdout and stderr, as a user would see them."""

import pytest

from dfake_cli.cli.main import main


def run(args, capsys):
    """`dfake ARGS` -> (exit code, stdout, stderr); `main` always ends with SystemExit."""
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err
