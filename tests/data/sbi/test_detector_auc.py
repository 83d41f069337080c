"""Measured, not tuned: a detector trained ONLY on self-blended fakes of the FF++ miniature's real training
videos scores the miniature's test fakes (four methods it never saw) above chance.

Short CPU settings (small faces, few frames, resnet18 from scratch without the guide); the full comparison
with the guide, beside the FF++-trained model and on Celeb-DF, is `make demo-sbi` (docs/training.md).
Seeded end to end (blends, sampler, model init, augmentation), so the figure is the same on every run.
"""

from __future__ import annotations

from pathlib import Path

from dfake_cli.data.datasets import Manifest, get_parser
from dfake_cli.data.prepare import prepare_manifest
from dfake_cli.data.sbi.engine import prepare_sbi
from dfake_cli.data.sbi.sources import real_manifest
from dfake_cli.evaluation.evaluate import evaluate_cache
from dfake_cli.evaluation.metrics import frame_metrics
from dfake_cli.models.detector import Detector
from dfake_cli.train.config import TrainConfig
from dfake_cli.train.trainer import train
from dfake_cli.workspace import Workspace

FFPP = Path(__file__).resolve().parents[3] / "sample_data" / "FaceForensics++"
FRAMES, SIZE, STEPS, BATCH = 4, 128, 30, 16


def test_sbi_only_detector_scores_ffpp_test_fakes_above_chance(tmp_path):
    ws = Workspace(tmp_path / "ws").ensure()
    reals = real_manifest(FFPP)
    train_reals = Manifest(reals.dataset, reals.root, [i for i in reals.items if i.split == "train"])
    sbi = prepare_sbi(train_reals, ws.cache_path("sbi"), frames=FRAMES, size=SIZE, workers=1, progress=False)
    assert sbi.fakes == 2 * sbi.real_faces > 0
    full = get_parser("ffpp")(FFPP)
    test = Manifest(full.dataset, full.root, [i for i in full.items if i.split == "test"])
    assert {i.method for i in test.items if i.label == 1} == {"Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"}
    prepare_manifest(test, ws.cache_path("ffpp-test"), frames=FRAMES, size=SIZE, workers=1, progress=False)

    config = TrainConfig(data="sbi", run="sbi", backbone="resnet18", steps=STEPS, batch_size=BATCH, lr=1e-3,
                         use_guide=False, seed=0, log_every=STEPS, save_every=STEPS, prefetch=2).validated()
    result = train(config, ws)
    predictions = evaluate_cache(Detector.from_pretrained(result.last_dir), ws.cache_path("ffpp-test"),
                                 progress=False).predictions
    auc = frame_metrics(predictions.label.to_numpy(), predictions.score.to_numpy())["auc"]
    assert auc > 0.6, f"frame AUC {auc:.3f} on the FF++ miniature's test split"
