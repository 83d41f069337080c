"""The CLI frame: help, version, info, one-line errors with the right exit codes."""

import json
import subprocess
import sys

import pytest

from clitools import run  # tests/ is on sys.path (rootdir conftest)


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
