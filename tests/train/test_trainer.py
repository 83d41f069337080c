"""The trainer end to end on a tiny cache: what a step updates, exact resume, NaN handling, one-line errors."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from safetensors.torch import load_file

from dfake_cli.errors import InputError, RunError
from dfake_cli.train import trainer
from dfake_cli.train.trainer import train

from helpers.traincache import SIZE, make_cache, tiny_config


def _samples(run_dir):
    with open(run_dir / "samples.csv", newline="") as f:
        return [(int(r["step"]), r["rows"]) for r in csv.DictReader(f)]


def test_steps_update_every_trainable_tensor_and_nothing_frozen(workspace):
    # Two steps, no weight decay: at step 1 the zero-initialised convs block every gradient upstream of
    # them (guide, filters, upsamplers), so only a second step can show that gradients reach everything.
    config = tiny_config(steps=2, weight_decay=0.0, val_losses=False)
    torch.manual_seed(trainer._seed_of(config.seed, 0xB01D))  # the trainer's own initialisation
    initial = trainer._build_model(config, SIZE, {"size": SIZE}, torch.device("cpu"), None)
    before = {k: v.clone() for k, v in initial.state_dict().items()}

    result = train(config, workspace)
    model = result.model
    assert result.step == 2
    trainable = {id(p) for p in model.trainable_parameters()}
    names = dict(model.named_parameters())
    assert trainable and all(p.requires_grad for p in model.trainable_parameters())
    unchanged = [n for n, p in names.items() if id(p) in trainable and torch.equal(p.detach(), before[n])]
    # The tiny SD's empty-prompt context comes from its (seeded) CLIP text encoder, as SD-1.5's does: with it
    # every trainable tensor moves, the guide's cross-attention included (a zero context would leave its
    # q/k/v weights without gradient).
    assert float(model.text_embedding.abs().max()) > 0.1
    assert unchanged == []
    frozen = [n for n, p in names.items() if id(p) not in trainable]
    assert any(n.startswith("frozen.unet") for n in frozen) and any(n.startswith("frozen.vae") for n in frozen)
    assert all(not names[n].requires_grad and torch.equal(names[n].detach(), before[n]) for n in frozen)
    for part in ("guide", "upsample_s", "filter_t", "weight_s", "detector"):
        assert any(n.startswith(part) for n in names if id(names[n]) in trainable), part


def test_resume_equals_uninterrupted(workspace):
    # 4 steps straight vs 2 steps + --resume to 4 (the epoch has 6 steps: resume lands mid-epoch)
    straight = train(tiny_config(run="straight", steps=4, val_losses=False), workspace)
    first = train(tiny_config(run="pieces", steps=2, val_losses=False), workspace)
    assert first.step == 2
    with pytest.raises(InputError, match="backbone"):  # a resumed run keeps its architecture
        train(tiny_config(run="pieces", steps=4, resume=True, backbone="resnet18"), workspace)
    resumed = train(tiny_config(run="pieces", steps=4, resume=True, val_losses=False), workspace)
    assert straight.step == resumed.step == 4
    a = load_file(str(straight.last_dir / "model.safetensors"))
    b = load_file(str(resumed.last_dir / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _samples(straight.run_dir) == _samples(resumed.run_dir)
    assert [s for s, _ in _samples(resumed.run_dir)] == [1, 2, 3, 4]
    for r in (straight, resumed):
        with open(r.run_dir / "metrics.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert [int(m["step"]) for m in rows if m["phase"] == "train"] == [1, 2, 3, 4]
        assert rows[-1]["phase"] == "val" and rows[-1]["step"] == "4" and float(rows[-1]["auc"]) >= 0
    for r in (straight, resumed):
        state = json.loads((r.last_dir / "trainer_state.json").read_text())
        assert state["step"] == 4 and state["epoch"] == 0 and state["position"] == 4
    # the optimiser moments travel through safetensors (no pickle anywhere in last/)
    opt = load_file(str(resumed.last_dir / "trainer_state.safetensors"))
    assert any(k.endswith(".exp_avg_sq") for k in opt) and "rng.torch" in opt
    assert not list(resumed.last_dir.glob("*.pt")) and not list(resumed.last_dir.glob("*.pkl"))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(workspace, monkeypatch):
    from dfake_cli.models.diffusionfake import DiffusionFake

    real_losses = DiffusionFake.losses
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        out = real_losses(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:
            out["total"] = out["total"] * float("nan")
        return out

    monkeypatch.setattr(DiffusionFake, "losses", poisoned)
    config = tiny_config(run="nan", steps=3, save_every=2, val_losses=False)
    last = workspace.run_dir("nan") / "last"
    with pytest.raises(RunError) as err:
        train(config, workspace)
    message = str(err.value)
    assert "nan at step 3" in message and str(last) in message and "--lr" in message
    assert json.loads((last / "trainer_state.json").read_text())["step"] == 2  # the step-2 save, untouched


@pytest.mark.parametrize("identity", ["sd15-abc", "tiny-v2-seed0"])  # another SD; the tiny SD before its text encoder
def test_sd_mismatch_is_one_clear_error(tmp_path, identity):
    from dfake_cli.workspace import Workspace

    ws = Workspace(tmp_path / "ws").ensure()
    make_cache(ws.cache_path("other"), videos={"train": 2, "val": 1}, frames=2, sd_identity=identity)
    with pytest.raises(InputError, match=f"prepared with Stable Diffusion '{identity}'") as err:
        train(tiny_config(data="other"), ws)
    assert "\n" not in str(err.value)


def test_missing_cache_and_existing_run(workspace):
    with pytest.raises(InputError, match="cache not found"):
        train(tiny_config(data="nope"), workspace)
    train(tiny_config(run="dup", steps=1, use_guide=False), workspace)
    with pytest.raises(InputError, match="already exists"):
        train(tiny_config(run="dup", steps=1, use_guide=False), workspace)


def test_without_a_val_split_best_follows_the_latest_model(tmp_path):
    from dfake_cli.workspace import Workspace

    ws = Workspace(tmp_path / "ws").ensure()
    make_cache(ws.cache_path("noval"), videos={"train": 2}, frames=2)
    result = train(tiny_config(data="noval", run="nv", steps=2, batch_size=2, use_guide=False), ws)
    # 4 real + 4 fake faces at batch 2: 4 steps per epoch, so the only validation is the final step's
    assert result.best_auc is None and result.best_step == 2 and result.val == {"faces": 0, "auc": None}
    assert (result.best_dir / "model.safetensors").is_file()


def test_low_memory_trains_the_same_model(workspace):
    # --low-memory only recomputes activations in backward: the weights after two steps must match.
    plain = train(tiny_config(run="plain", steps=2, val_losses=False), workspace)
    low = train(tiny_config(run="lowmem", steps=2, val_losses=False, low_memory=True), workspace)
    assert low.model.guide.is_gradient_checkpointing and not plain.model.guide.is_gradient_checkpointing
    a = load_file(str(plain.last_dir / "model.safetensors"))
    b = load_file(str(low.last_dir / "model.safetensors"))
    worst = max((float((a[k].double() - b[k].double()).abs().max()), k) for k in a)
    assert a.keys() == b.keys() and worst[0] < 1e-6, worst


def _metrics(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_metrics_log_w_statistics_at_every_logged_step_and_validation(workspace):
    result = train(tiny_config(run="w", steps=3, log_every=1), workspace)
    rows = _metrics(result.run_dir)
    assert [r["phase"] for r in rows] == ["train", "train", "train", "val"]
    for r in rows:
        for branch in ("s", "t"):
            lo, mean, hi = (float(r[f"w_{branch}_{k}"]) for k in ("min", "mean", "max"))
            assert 0.0 <= lo <= mean <= hi <= 1.0, r
    assert float(rows[0]["w_s_min"]) < float(rows[0]["w_s_max"])  # per-sample values, not one constant


def test_no_weight_ablation_leaves_w_columns_empty(workspace):
    rows = _metrics(train(tiny_config(run="nw", steps=1, use_weight=False), workspace).run_dir)
    assert all(r["w_s_mean"] == "" and r["w_t_max"] == "" for r in rows)


def test_a_saturated_w_warns_once(workspace, monkeypatch, caplog):
    from dfake_cli.models.diffusionfake import DiffusionFake

    real_losses = DiffusionFake.losses

    def pinned(self, *args, **kwargs):  # W_t pinned at 0 as a saturated sigmoid would be
        out = real_losses(self, *args, **kwargs)
        out["w_t"] = torch.full_like(out["w_t"], 1e-4)
        return out

    monkeypatch.setattr(DiffusionFake, "losses", pinned)
    with caplog.at_level("WARNING", logger="dfake_cli"):
        train(tiny_config(run="sat", steps=4, log_every=2, val_losses=False), workspace)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert sum("W_t stayed saturated" in m for m in warned) == 1
    assert not any("W_s stayed saturated" in m for m in warned)


def test_selection_scores_rank_as_documented():
    from dfake_cli.train.trainer import _selection_score

    assert _selection_score({"auc": 0.9}, "auc") == 0.9 and _selection_score({"auc": None}, "auc") is None
    assert _selection_score({"total": 0.2}, "loss") > _selection_score({"total": 0.3}, "loss")
    assert _selection_score({"bce": 0.2}, "loss") == -0.2  # --no-guide: the loss is the BCE
    assert _selection_score({}, "last") == 0.0  # every validation ties, and ties go to the later one


def test_select_last_keeps_the_latest_validation_and_weight_lr_gets_its_own_group(workspace):
    result = train(tiny_config(run="sel", steps=12, select="last", use_guide=False), workspace)  # 6 steps/epoch
    assert result.best_step == 12
    state = json.loads((result.last_dir / "trainer_state.json").read_text())
    assert state["select"] == "last" and state["best_step"] == 12
    with pytest.raises(InputError, match="select'? must be one of auc, loss, last"):
        tiny_config(select="best")
    guided = train(tiny_config(run="wlr", steps=1, weight_lr=0.05, val_losses=False), workspace)
    groups = json.loads((guided.last_dir / "trainer_state.json").read_text())["optimizer"]["param_groups"]
    n_weight = sum(p.numel() > 0 for net in (guided.model.weight_s, guided.model.weight_t) for p in net.parameters())
    assert [g["lr"] for g in groups] == [1e-3, 0.05] and len(groups[1]["params"]) == n_weight
