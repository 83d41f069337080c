"""The bench harness: FLOP counting, timing, the results file, and `dfake bench --quick` end to end at the
smallest sizes (figures are not asserted: they depend on the machine)."""

import json
import math

import pytest
import torch

from dfake_cli.bench import common
from dfake_cli.bench.common import BenchOptions, BenchRow
from dfake_cli.errors import InputError


def test_count_flops_of_a_matmul_forward_and_backward():
    a = torch.randn(8, 16, requires_grad=True)
    b = torch.randn(16, 4, requires_grad=True)

    def step():
        (a @ b).sum().backward()

    # forward 2*8*16*4; backward: grad_a (8x4 @ 4x16) and grad_b (16x8 @ 8x4), each as much again
    assert common.count_flops(step) == 3 * 2 * 8 * 16 * 4


def test_time_steps_runs_warmup_then_measured_steps_and_mfu():
    calls = []
    timing = common.time_steps(lambda: calls.append(1), torch.device("cpu"), steps=3, warmup=2)
    assert len(calls) == 5 and len(timing.times) == 3 and timing.median >= 0
    assert common.mfu(2e9, 0.5, 8e9) == pytest.approx(0.5)
    assert math.isnan(common.mfu(1.0, 0.0, 1.0))
    peak = common.matmul_peak(torch.device("cpu"), size=64, repeats=1)
    assert peak["flops_per_s"] > 0 and "bfloat16" in peak["label"]


def test_results_file_is_appended_with_provenance(tmp_path):
    out = tmp_path / "r.jsonl"
    env = common.environment(torch.device("cpu"), argv=["dfake", "bench"])
    common.append_jsonl(out, [BenchRow("eval", "a", {"faces_per_s": 1.5})], env)
    common.append_jsonl(out, [BenchRow("eval", "b", {"faces_per_s": 2.5}), BenchRow("eval", "c", {})], env)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["variant"] for r in lines] == ["a", "b", "c"]
    for key in ("device", "torch", "diffusers", "timm", "git_commit", "date", "argv"):
        assert key in lines[0]
    assert lines[0]["metrics"]["faces_per_s"] == 1.5 and lines[0]["argv"] == ["dfake", "bench"]


def test_bad_options_are_input_errors():
    with pytest.raises(InputError, match="--precision"):
        BenchOptions(precision="fp16")
    with pytest.raises(InputError, match="--batch-size"):
        BenchOptions(batch_size=0)
    assert BenchOptions(quick=True).torch_device.type == "cpu"


@pytest.fixture
def smallest(monkeypatch):
    """Shrink every quick preset further: one of everything, so the smoke run takes seconds."""
    from dfake_cli.bench import evaluation, loader, prepare, train, train_step

    monkeypatch.setattr(train_step.TrainStepSetup, "quick", classmethod(lambda cls: cls(
        sd="tiny", backbone="test_efficientnet", image_size=32, batch_size=2, weight_widths=(8, 8, 8, 8),
        steps=1, warmup=1)))
    monkeypatch.setattr(prepare.PrepareSetup, "for_options", classmethod(lambda cls, o: cls(
        videos=1, video_frames=6, frames=3, workers=(1,), training=False, vae_sd15=False)))
    monkeypatch.setattr(evaluation.EvalSetup, "for_options", classmethod(lambda cls, o: cls(
        backbone="test_efficientnet", image_size=32, videos=2, frames=4, batch_size=4, repeats=2)))
    monkeypatch.setattr(loader.LoaderSetup, "for_options", classmethod(lambda cls, o: cls(
        size=32, batch_size=4, videos=2, frames=4, steps=2, workers=1)))
    monkeypatch.setattr(train.TrainSetup, "for_options", classmethod(lambda cls, o: cls(
        image_size=64, batch_size=2, window=1, videos=3, frames=2, workers=0)))
    monkeypatch.setattr(common, "matmul_peak", lambda device, **kw: {"flops_per_s": 1e9, "label": "test"})
    monkeypatch.setattr(train_step, "matmul_peak", common.matmul_peak)


def test_dfake_bench_quick_all_parts(smallest, tmp_path, capsys):
    from dfake_cli.cli.main import main

    out = tmp_path / "bench.jsonl"
    with pytest.raises(SystemExit) as exc:
        main(["bench", "all", "--quick", "--out", str(out), "--json"])
    assert exc.value.code == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)  # --json: one document on stdout, the tables on stderr
    assert [r["part"] for r in result["rows"]][:1] == ["train-step"] and result["out"] == str(out)
    printed = captured.err
    assert "train-step" in printed and "prepare" in printed and "eval" in printed
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    by = {(r["part"], r["variant"].split(" ")[0]): r for r in rows}
    ours, official = by[("train-step", "ours")]["metrics"], by[("train-step", "official-like")]["metrics"]
    ratio = by[("train-step", "ratio")]["metrics"]
    for m in (ours, official):
        assert m["ms_per_step"] > 0 and m["flops_per_image"] > 0 and m["peak_memory_bytes"] > 0
        assert m["images_per_s"] == pytest.approx(2 / (m["ms_per_step"] / 1000))
    assert ratio["speedup"] == pytest.approx(ours["images_per_s"] / official["images_per_s"])
    # the reference step also encodes source and target with the VAE and runs the text encoder
    assert official["flops_per_image"] > ours["flops_per_image"]
    prep = [r for r in rows if r["part"] == "prepare"]
    assert prep and prep[0]["metrics"]["frames"] == 6 and prep[0]["metrics"]["frames_per_s"] > 0  # a real + a fake
    assert prep[0]["metrics"]["startup_s"] > 0 and prep[0]["metrics"]["steady_frames_per_s"] > 0
    assert set(prep[0]["metrics"]["split_ms_per_frame"]) >= {"decode", "detect", "align", "encode", "write"}
    ev = [r for r in rows if r["part"] == "eval"][0]["metrics"]
    assert ev["faces"] == 8 and ev["faces_per_s"] > 0
    loads = {r["variant"].split(" (")[0].split(",")[0]: r["metrics"] for r in rows if r["part"] == "loader"}
    assert loads["old reader"]["images"] == loads["loader"]["images"] == 8  # 2 timed steps of 4, both readers
    assert loads["ratio loader/old reader"]["speedup"] > 0
    trains = [r["metrics"] for r in rows if r["part"] == "train"]
    assert len(trains) == 3 and trains[0]["images_per_s"] > 0 and trains[1]["ms_per_step"] > 0
    assert trains[2]["speedup"] == pytest.approx(trains[0]["images_per_s"] / trains[1]["images_per_s"])
    assert all(r["quick"] is True and r["device_type"] == "cpu" for r in rows)
