"""The CLI frame: help, version, info, one-line errors with the right exit codes."""

import json
import subprocess
import sys

import pytest

from helpers.clitools import run


def test_version(capsys):
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.strip().startswith("dfake 0.")


def test_help_lists_commands(capsys):
    code, out, _ = run(["--help"], capsys)
    assert code == 0 and "info" in out


def test_unknown_command_is_one_line_exit_2(capsys):
    code, out, err = run(["no-such-command"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "no-such-command" in lines[0] and "Traceback" not in err


def test_unknown_option_is_one_line_exit_2(capsys):
    code, _, err = run(["info", "--bogus"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--bogus" in err


def test_workspace_that_is_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    code, _, err = run(["--workspace", str(f), "info"], capsys)
    assert code == 2 and str(f) in err and len(err.strip().splitlines()) == 1


def test_info_json_lists_workspace(tmp_path, capsys, monkeypatch):
    ws = tmp_path / "ws"
    (ws / "data").mkdir(parents=True)
    (ws / "data" / "ffpp.h5").write_bytes(b"")
    (ws / "runs" / "r1").mkdir(parents=True)
    monkeypatch.setenv("DFAKE_WORKSPACE", str(ws))
    code, out, _ = run(["info", "--json"], capsys)
    data = json.loads(out)
    assert code == 0
    assert data["caches"] == ["ffpp.h5"] and data["runs"] == ["r1"]
    assert data["torch"] and data["diffusers"] and data["timm"]


def test_console_script_installed():
    res = subprocess.run([sys.executable, "-m", "dfake_cli", "--version"], capture_output=True, text=True)
    assert res.returncode == 0 and "dfake" in res.stdout


def test_help_lists_commands_in_workflow_order_with_env_vars(capsys):
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    order = ["prepare", "train", "eval", "detect", "reconstruct", "bench", "info"]
    positions = [out.index(f" {name} ") for name in order]
    assert positions == sorted(positions)
    for var in ("DFAKE_WORKSPACE", "DFAKE_VERBOSE", "DFAKE_NO_PROGRESS"):
        assert var in out
    assert "--install-completion" in out


def test_choices_are_checked_before_any_work(capsys):
    code, _, err = run(["train", "--precision", "fp64"], capsys)
    assert code == 2 and "'fp64' is not one of 'bf16', 'fp32'" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(["bench", "nope"], capsys)
    assert code == 2 and "'nope' is not one of" in err and "train-step" in err


def test_ctrl_c_prints_the_resume_line(tmp_path, capsys, monkeypatch):
    """Click turns a KeyboardInterrupt into Abort; the user still gets the one line and exit code 130."""
    import dfake_cli.api.info as api_info

    def interrupted(workspace, **options):
        raise KeyboardInterrupt

    monkeypatch.setattr(api_info, "collect_info", interrupted)
    code, out, err = run(["--workspace", str(tmp_path / "ws"), "info"], capsys)
    assert code == 130 and out == ""
    assert err.strip().splitlines()[-1].startswith("dfake: interrupted") and "resume" in err


def test_quiet_and_no_progress_turn_progress_bars_off(capsys, monkeypatch):
    from dfake_cli import console

    monkeypatch.delenv("DFAKE_NO_PROGRESS", raising=False)
    for flags, shown in (([], True), (["-q"], False), (["--no-progress"], False), ([], True)):
        run([*flags, "info", "--bogus"], capsys)  # the global options apply before the command fails
        assert console.progress_enabled() is shown
    monkeypatch.setenv("DFAKE_NO_PROGRESS", "1")
    run(["info", "--bogus"], capsys)
    assert console.progress_enabled() is False
