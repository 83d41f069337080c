"""TrainConfig: spec defaults, TOML < flags, one-line errors naming the option, JSON round trip."""

from __future__ import annotations

import pytest

from dfake_cli.errors import InputError
from dfake_cli.train.config import TrainConfig, resolve_train_config
from dfake_cli.workspace import Workspace


def test_defaults_follow_spec_part_0():
    c = TrainConfig().validated()
    assert (c.lr, c.weight_decay, c.batch_size, c.epochs) == (1e-5, 0.01, 32, 20)
    assert (c.lambda_source, c.lambda_target) == (0.7, 1.0)
    assert c.backbone == "efficientnet_b4" and c.sd is None and c.use_guide and c.steps is None  # --sd / $DFAKE_SD
    # the paper's augmentation (flip + CutOut) and model selection (val frame AUC)
    assert (c.flip, c.cutout, c.color_jitter, c.gray, c.noise, c.select) == (0.5, 0.5, 0.0, 0.0, 0.0, "auc")


def test_recorded_facts_are_saved_and_ignored_on_load(tmp_path):
    c = TrainConfig(sd="tiny").validated()
    c.save(tmp_path / "config.json", recorded={"backbone_pretrained": False, "context_source": "x", "other": 1})
    import json

    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["backbone_pretrained"] is False and saved["context_source"] == "x" and "other" not in saved
    assert TrainConfig.load(tmp_path / "config.json") == c


def test_toml_gives_defaults_and_flags_override(tmp_path):
    f = tmp_path / "train.toml"
    f.write_text('backbone = "resnet18"\nlr = 3e-4\nbatch_size = 8\n[train]\nuse_guide = false\nepochs = 2\n')
    c = TrainConfig.resolve({"lr": 1e-3, "epochs": None}, f)
    assert (c.backbone, c.lr, c.batch_size, c.use_guide, c.epochs) == ("resnet18", 1e-3, 8, False, 2)
    assert isinstance(c.lr, float)


def test_round_trip_through_json(tmp_path):
    c = TrainConfig(backbone="resnet34", steps=7, use_filter=False, backbone_weights="none").validated()
    assert c.backbone_weights is None
    c.save(tmp_path / "config.json")
    assert TrainConfig.load(tmp_path / "config.json") == c
    assert c.to_dict()["steps"] == 7


@pytest.mark.parametrize(
    "values, needle",
    [
        ({"lr": -1.0}, "--lr"),
        ({"batch_size": 0}, "--batch-size"),
        ({"precision": "fp16"}, "--precision"),
        ({"flip": 2.0}, "--flip"),
        ({"steps": 2.5}, "--steps"),
        ({"epochs": "3"}, "--epochs"),
        ({"bogus": 1}, "'bogus'"),
    ],
)
def test_bad_values_are_one_line_input_errors(values, needle):
    with pytest.raises(InputError) as err:
        TrainConfig.resolve(values)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_toml_errors_name_the_file_and_key(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text('lr = "fast"\n')
    with pytest.raises(InputError, match=r"bad\.toml.*key 'lr'"):
        TrainConfig.resolve({}, f)
    f.write_text("lr = = 1\n")
    with pytest.raises(InputError, match="not valid TOML"):
        TrainConfig.resolve({}, f)
    f.write_text("learning_rate = 1e-3\n")
    with pytest.raises(InputError, match="unknown key 'learning_rate'"):
        TrainConfig.resolve({}, f)
    with pytest.raises(InputError, match="config file not found"):
        TrainConfig.resolve({}, tmp_path / "missing.toml")


def test_resume_starts_from_the_saved_config(tmp_path):
    ws = Workspace(tmp_path / "ws").ensure()
    saved = TrainConfig(run="r1", backbone="resnet18", lr=3e-4, steps=3).validated()
    ws.run_dir("r1").mkdir(parents=True)
    saved.save(ws.run_dir("r1") / "config.json")
    c = resolve_train_config({"resume": True, "steps": 6}, None, ws)  # no --run: the latest run
    assert (c.run, c.backbone, c.lr, c.steps, c.resume) == ("r1", "resnet18", 3e-4, 6, True)
    c = resolve_train_config({"resume": True, "run": "r1", "epochs": 4}, None, ws)
    assert c.steps is None and c.epochs == 4  # --epochs alone extends by epochs
    fresh = resolve_train_config({"run": "r2"}, None, ws)
    assert fresh.backbone == "efficientnet_b4"
