"""`dfake eval`: a trained detector on prepared test sets -> report.json, predictions.csv, roc.png.

This layer chooses what to evaluate (the workspace's caches, the checkpoint: a run means its
validation-best `best/`, so model selection never looks at a test set), refuses one-class datasets before
any model runs, and assembles the report from the engine's pieces (`dfake_cli.evaluation.evaluate`).
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from dfake_cli.errors import InputError
from dfake_cli.evaluation.evaluate import (
    alignment_of,
    average,
    dataset_level,
    dataset_summary,
    evaluate_cache,
    select_rows,
)
from dfake_cli.runtime import PRECISIONS, check_device, default_precision
from dfake_cli.workspace import Workspace, validate_name

#: Test sets with their own `dfake prepare` command (others are prepared with `prepare folder --name`).
KNOWN_TESTSETS = ("celebdf", "dfdcp", "dfd", "wdf", "diffswap")


@dataclass
class EvalOutput:
    """The report (as written to report.json), where it was written, and the per-face predictions."""

    report: dict
    out_dir: Path
    predictions: pd.DataFrame

    def to_dict(self) -> dict:
        """`dfake eval --json`: the report plus the paths of the files written."""
        return {**self.report, "out_dir": str(self.out_dir),
                "files": {name: str(self.out_dir / name) for name in ("report.json", "predictions.csv", "roc.png")}}


def resolve_datasets(workspace: Workspace, names: list[str]) -> dict[str, Path]:
    """Dataset names -> cache paths; "all" = every finished cache with test input rows."""
    from dfake_cli.data.cache import FaceCache

    if not names:
        raise InputError("no dataset to evaluate: pass --dataset NAME (repeatable) or --dataset all")
    chosen: dict[str, Path] = {}
    for name in names:
        if name == "all":
            for path in workspace.caches():
                with FaceCache(path) as cache:
                    if len(cache.input_rows("test")):
                        chosen.setdefault(path.stem, path)
            if not chosen:
                raise InputError(f"no cache with test rows in {workspace.data_dir}; run 'dfake prepare <dataset> ROOT' first")
            continue
        path = workspace.cache_path(name)
        if not path.is_file():
            how = {"ffpp": "ff++ ROOT"}.get(name, f"{name} ROOT")
            if name not in KNOWN_TESTSETS and name != "ffpp":
                how = f"folder ROOT --name {name}"
            raise InputError(f"no prepared dataset {name!r} ({path} is missing); run 'dfake prepare {how}' first")
        chosen.setdefault(name, path)
    return chosen


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checkpoint_info(directory: Path) -> dict:
    """What the report's protocol says about the checkpoint: where, which weights file, its sha256, SD."""
    import json

    from dfake_cli.models.checkpoints import DETECTOR_CONFIG, DETECTOR_WEIGHTS, MODEL_CONFIG, MODEL_WEIGHTS

    directory = Path(directory)
    weights, config_path = directory / DETECTOR_WEIGHTS, directory / DETECTOR_CONFIG
    if not (weights.is_file() and config_path.is_file()):
        weights, config_path = directory / MODEL_WEIGHTS, directory / MODEL_CONFIG
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    return {
        "checkpoint": str(directory),
        "checkpoint_name": f"{directory.parent.name}/{directory.name}",
        "weights_file": weights.name,
        "checkpoint_sha256": _sha256(weights) if weights.is_file() else None,
        "sd_identity": config.get("sd_identity") or None,
        "backbone": config.get("backbone"),
        "image_size": config.get("image_size"),
        "context_source": config.get("context_source") or None,
        "backbone_pretrained": config.get("backbone_pretrained"),
    }


def _skipped_count(workspace: Workspace, name: str, attrs: dict) -> int:
    """Videos skipped (by the parser or preparation): the cache's summary, else the skipped CSV's rows."""
    import json

    with contextlib.suppress(TypeError, ValueError, AttributeError, KeyError):
        return int(sum(json.loads(attrs["summary"])["skipped"].values()))
    path = workspace.skipped_path(name)
    if path.is_file():
        with contextlib.suppress(Exception):
            return int(len(pd.read_csv(path)))
    return 0


def run_eval(
    workspace: Workspace,
    datasets: list[str],
    checkpoint: str | Path | None = None,
    out: str | Path | None = None,
    frames: int | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    precision: str | None = None,
    detector: Any = None,
    progress: bool = True,
) -> EvalOutput:
    """Evaluate the detector on each dataset's test rows; write report.json, predictions.csv, roc.png.

    `checkpoint`: a run name, run folder or checkpoint folder (a run means its validation-best `best/`);
    default: the workspace's latest run. `detector`: an already-loaded scorer (tests, benchmarks); then
    `checkpoint` only documents the protocol.
    """
    from dfake_cli import __version__
    from dfake_cli.data.cache import FaceCache
    from dfake_cli.evaluation import report as R
    from dfake_cli.evaluation.metrics import roc
    from dfake_cli.models.checkpoints import resolve_checkpoint

    if frames is not None and frames < 1:
        raise InputError(f"--frames must be >= 1, got {frames}")
    if batch_size is not None and batch_size < 1:
        raise InputError(f"--batch-size {batch_size}: use at least 1")
    if out is not None and Path(out).exists() and not (Path(out).is_dir() and not any(Path(out).iterdir())):
        raise InputError(f"--out {out} already exists; pass a new (or empty) folder: reports are never overwritten")
    device = check_device(device)
    precision = default_precision(device, precision)
    if batch_size is None:  # a batch that fills a GPU (256), 64 on a CPU
        from dfake_cli.evaluation.evaluate import default_batch_size

        batch_size = default_batch_size(device)
    if precision not in PRECISIONS:
        raise InputError(f"--precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    caches = resolve_datasets(workspace, list(datasets))

    # Refuse one-class datasets before any model runs (cheap: the index only).
    for name, path in caches.items():
        with FaceCache(path) as cache:
            labels = cache.index["label"].to_numpy()[select_rows(cache.index, "test", frames)]
        if labels.size == 0:
            raise InputError(f"dataset {name!r} ({path}) has no test faces to evaluate; prepare it again")
        if labels.min() == labels.max():
            only = "fake" if labels[0] == 1 else "real"
            raise InputError(
                f"dataset {name!r} has only {only} faces ({labels.size}); AUC/EER need real and fake ones, "
                f"check the dataset's labels or folders and prepare it again"
            )

    ckpt_dir = None
    if checkpoint is not None or detector is None:
        ckpt_dir = resolve_checkpoint(workspace, checkpoint)
        if ckpt_dir is None:
            raise InputError(
                f"no trained run in {workspace.runs_dir}; train one with 'dfake train' or pass --checkpoint DIR"
            )
    info = checkpoint_info(ckpt_dir) if ckpt_dir is not None else {"checkpoint": None, "checkpoint_name": "detector"}
    if detector is None:
        from dfake_cli.models.detector import Detector

        detector = Detector.from_pretrained(ckpt_dir, device=device)

    out_dir = Path(out) if out else workspace.reports_dir / datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    summaries: dict[str, dict] = {}
    all_predictions, curves, in_domain = [], {}, set()
    protocol_frames = frames
    for name, path in caches.items():
        result = evaluate_cache(detector, path, batch_size=batch_size, device=device, precision=precision,
                                frames=frames, progress=progress, description=name)
        pred = result.predictions
        pred["dataset"] = validate_name(name, "dataset")
        attrs = result.attrs
        with FaceCache(path) as cache:
            level = dataset_level(cache.index.iloc[pred["row"].to_numpy()], attrs)
            if cache.has_latents:
                in_domain.add(name)
        summary = {"display_name": str(attrs.get("dataset", name)), "cache": str(path), "split": "test"}
        summary.update(dataset_summary(pred, level))
        summary["counts"]["skipped"] = _skipped_count(workspace, name, attrs)
        summary["faces_per_s"] = result.faces_per_s
        summary["seconds"] = result.seconds
        summary["alignment"] = alignment_of(attrs)
        summary["frames_per_video"] = frames or attrs.get("frames_per_video")
        summaries[name] = summary
        if protocol_frames is None:
            protocol_frames = attrs.get("frames_per_video")
        fpr, tpr, _ = roc(pred["label"].to_numpy(), pred["score"].to_numpy())
        curves[summary["display_name"]] = (fpr, tpr, summary["frame"]["auc"])
        all_predictions.append(pred)

    notes = []
    crops = {name: (s["alignment"].get("size"), s["alignment"].get("margin")) for name, s in summaries.items()}
    if len(set(crops.values())) > 1:
        notes.append("datasets were cropped differently (size, margin): "
                     + ", ".join(f"{n} {c}" for n, c in crops.items()) + "; prepare them with the same --size/--margin")
    report = {
        "dfake_version": __version__,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "protocol": {
            **info,
            "frames_per_video": protocol_frames,
            "frames_option": frames,
            "alignment": next((s["alignment"] for s in summaries.values() if s["alignment"]), {}),
            "threshold": 0.5,
            "precision": precision,
            "device": device,
            "batch_size": batch_size,
            "split": "test",
            "video_score": "mean of frame probabilities per unique video id (dataset/method/name)",
            "eer": "exact crossing of FPR and FNR on the piecewise-linear ROC (docs/evaluation.md)",
            "model_selection": "validation-best checkpoint (best/) of the run unless --checkpoint names another; "
                               "no test set is used for selection",
        },
        "datasets": summaries,
        "average": average(summaries, in_domain),
        "notes": notes,
    }
    predictions = pd.concat(all_predictions, ignore_index=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    R.write_predictions(out_dir / "predictions.csv", predictions)
    R.write_roc(out_dir / "roc.png", curves, title=f"ROC, frame level ({info.get('checkpoint_name')})")
    R.write_json(out_dir / "report.json", report)
    return EvalOutput(report, out_dir, predictions)
