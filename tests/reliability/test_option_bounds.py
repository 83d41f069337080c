"""Finding 3 (and the option parts of 12): option values are checked before any work.

`--margin inf` used to exit 0 with a cache of flat-colour faces (and test caches copied that margin);
`--margin nan` and `--size 100000` failed with tracebacks after work had started; `--device tpu`,
`eval --out EXISTING` and `bench --out DIR` failed late or with a raw exception. Each is now one line,
exit 2, naming the option, before anything is parsed, extracted, loaded or written.
"""

import h5py
import numpy as np
import pytest

from helpers.clitools import run

BAD_ALIGNMENT = [
    (["--margin", "inf"], "--margin inf"), (["--margin", "nan"], "--margin nan"), (["--margin", "0"], "--margin 0"),
    (["--margin", "-1"], "--margin -1"), (["--margin", "1e9"], "--margin 1000000000"),
    (["--size", "100000"], "--size 100000"), (["--size", "8"], "--size 8"), (["--size", "100"], "--size 100"),
    (["--size", "-64"], "--size -64"), (["--frames", "0"], "--frames"), (["--frames", "-3"], "--frames"),
    (["--workers", "100000"], "--workers"), (["--device", "tpu"], "--device"),
]


def _one_line(code, err, expected):
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and expected in lines[0], err


@pytest.mark.parametrize("extra,expected", BAD_ALIGNMENT, ids=[" ".join(e) for e, _ in BAD_ALIGNMENT])
def test_prepare_testset_refuses_bad_values_before_any_work(tmp_path, wdf_root, capsys, extra, expected):
    ws = tmp_path / "ws"
    code, out, err = run(["--workspace", ws, "prepare", "wdf", wdf_root, *extra], capsys)
    _one_line(code, err, expected)
    data = ws / "data"
    assert not data.exists() or sorted(p.name for p in data.iterdir()) == []  # nothing extracted or written


@pytest.mark.parametrize("extra,expected", BAD_ALIGNMENT[:8], ids=[" ".join(e) for e, _ in BAD_ALIGNMENT[:8]])
def test_prepare_ffpp_refuses_bad_values_before_parsing(tmp_path, capsys, monkeypatch, extra, expected):
    import dfake_cli.data.datasets as datasets

    monkeypatch.setattr(datasets, "get_parser", lambda name: pytest.fail("the tree was parsed"))
    code, out, err = run(["--workspace", tmp_path / "ws", "prepare", "ff++", tmp_path / "nowhere", "--sd", "tiny", *extra],
                         capsys)
    _one_line(code, err, expected)


def test_test_caches_do_not_copy_a_bad_margin(tmp_path, wdf_root, capsys):
    from helpers.traincache import make_cache

    ws = tmp_path / "ws"
    path = make_cache(ws / "data" / "ffpp.h5", videos={"train": 1, "val": 1}, frames=1)
    with h5py.File(path, "r+") as h:  # an old cache prepared with --margin inf
        h.attrs["margin"] = float("inf")
    code, out, err = run(["--workspace", ws, "prepare", "wdf", wdf_root], capsys)
    _one_line(code, err, "--margin inf")
    assert "ffpp.h5" in err and not (ws / "data" / "wdf.extract").exists()
    code, out, err = run(["--workspace", ws, "prepare", "wdf", wdf_root, "--margin", "1.3", "--size", "16",
                          "--workers", "1"], capsys)
    assert code == 0, err


@pytest.mark.parametrize("command", [
    ["detect", "x.png"], ["eval", "--dataset", "x"], ["reconstruct", "x.png"], ["train"],
    ["bench", "eval", "--quick"], ["prepare", "folder", "."],
])
def test_device_tpu_is_one_line(tmp_path, capsys, command):
    code, out, err = run(["--workspace", tmp_path / "ws", *command, "--device", "tpu"], capsys)
    _one_line(code, err, "--device")
    assert "tpu" in err


@pytest.mark.parametrize("existing", ["file", "report"])
def test_eval_out_existing_is_refused_before_the_work(tmp_path, capsys, existing):
    out = tmp_path / "rep"
    if existing == "file":
        out.write_text("x")
    else:
        out.mkdir()
        (out / "report.json").write_text("{}")
    code, _, err = run(["--workspace", tmp_path / "ws", "eval", "--dataset", "celebdf", "--out", out], capsys)
    _one_line(code, err, f"--out {out}")  # named before the (missing) cache or checkpoint


def test_bench_out_dir_is_refused_before_the_work(tmp_path, capsys, monkeypatch):
    import dfake_cli.bench as bench

    monkeypatch.setattr(bench, "run_part", lambda *a, **k: pytest.fail("measured before checking --out"))
    code, _, err = run(["bench", "eval", "--quick", "--out", tmp_path], capsys)
    _one_line(code, err, f"--out {tmp_path}")
