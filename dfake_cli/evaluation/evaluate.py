"""Running the detector over prepared caches and turning its scores into a cross-dataset report.

`evaluate_cache` streams faces out of one HDF5 cache in batches while a background thread already reads
(and decompresses) the next ones, so the accelerator does not wait on the disk; it returns the per-face
predictions and the throughput in faces/s (benchmarks call it directly). `dataset_summary` and `average`
turn predictions into metrics. `dfake_cli.api.evaluate.run_eval` builds the cross-dataset report from
these pieces (choosing the workspace's caches and the checkpoint).
"""

from __future__ import annotations

import contextlib
import inspect
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from dfake_cli.errors import InputError, RunError
from dfake_cli.evaluation.stream import ChunkReader, prefetch

from dfake_cli.runtime import PRECISIONS


@dataclass
class CacheEvaluation:
    """Per-face predictions of one cache and how fast they were produced."""

    predictions: pd.DataFrame  # dataset, video_id, frame_index, label, score, method, row
    faces_per_s: float
    seconds: float
    attrs: dict = field(default_factory=dict)

    @property
    def n_faces(self) -> int:
        return len(self.predictions)


# ----------------------------------------------------------------------------------------------------
# selecting rows


def select_rows(index: pd.DataFrame, split: str = "test", frames: int | None = None) -> np.ndarray:
    """Rows to evaluate, ascending: input rows of `split`, at most `frames` evenly spaced per video.

    Reference rows (faces kept only as a fake's source/target) are never classified.
    """
    from dfake_cli.data.video import evenly_spaced

    mask = index["split"].to_numpy() == split
    if "role" in index.columns:
        mask &= index["role"].to_numpy() == "input"
    sel = index.loc[mask, ["video_id", "frame_index"]]
    if frames and frames > 0 and len(sel):
        sel = sel.sort_values(["video_id", "frame_index"], kind="mergesort")
        position = sel.groupby("video_id", sort=False).cumcount().to_numpy()
        length = sel.groupby("video_id", sort=False)["frame_index"].transform("size").to_numpy()
        keep = np.zeros(len(sel), dtype=bool)
        for n in np.unique(length):  # one evenly_spaced per distinct video length, not per video
            if n <= frames:
                keep |= length == n
            else:
                wanted = np.zeros(n, dtype=bool)
                wanted[evenly_spaced(int(n), frames)] = True
                keep |= (length == n) & wanted[np.minimum(position, n - 1)]
        sel = sel[keep]
    return np.sort(sel.index.to_numpy(dtype=np.int64))


# ----------------------------------------------------------------------------------------------------
# scoring


def make_scorer(detector: Any, device: str = "cpu", precision: str = "fp32") -> Callable[[np.ndarray], np.ndarray]:
    """A function uint8 (N, H, W, 3) -> float probabilities of "fake" (N,).

    Accepts, in this order: anything with `predict_proba(uint8 NHWC)` (the Detector, a test double); a
    torch module with `preprocess(uint8 NHWC) -> float NCHW` whose forward returns logits (or a tuple
    starting with them); a plain callable returning probabilities. A torch module is moved to `device`
    and put in eval mode; bf16 runs under autocast (CUDA or CPU).
    """
    import torch

    if precision not in PRECISIONS:
        raise InputError(f"--precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    fn = getattr(detector, "predict_proba", None)
    if fn is None and isinstance(detector, torch.nn.Module):
        if not callable(getattr(detector, "preprocess", None)):
            raise InputError("a torch module needs predict_proba(images) or preprocess(images) to be evaluated")
        module = detector

        def fn(faces: np.ndarray) -> torch.Tensor:
            x = module.preprocess(faces).to(device, non_blocking=True)
            out = module(x)
            logits = out[0] if isinstance(out, (tuple, list)) else out
            return torch.sigmoid(logits.float()).reshape(-1)
    elif fn is None:
        if not callable(detector):
            raise InputError("the detector must have predict_proba(images) or be callable")
        fn = detector
    if isinstance(detector, torch.nn.Module):
        detector.to(device).eval()
    # a loaded Detector knows its device; autocast must match where the forward pass runs
    dev_type = torch.device(getattr(detector, "device", None) or device).type
    try:  # the Detector sub-batches by default: hand it the whole (already batched) array
        whole_batch = "batch_size" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        whole_batch = False

    def score(faces: np.ndarray) -> np.ndarray:
        autocast = (torch.autocast(dev_type, dtype=torch.bfloat16) if precision == "bf16"
                    else contextlib.nullcontext())
        with torch.inference_mode(), autocast:
            out = fn(faces, batch_size=max(1, len(faces))) if whole_batch else fn(faces)
        if isinstance(out, torch.Tensor):
            out = out.detach().float().cpu().numpy()
        out = np.asarray(out, dtype=np.float64).reshape(-1)
        if out.shape[0] != faces.shape[0]:
            raise RunError(f"the detector returned {out.shape[0]} scores for {faces.shape[0]} faces")
        return out

    return score


# ----------------------------------------------------------------------------------------------------
# streaming


def _batches(rows: np.ndarray, batch_size: int) -> list[np.ndarray]:
    return [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]


def evaluate_cache(
    detector: Any,
    cache_path: str | Path,
    batch_size: int = 64,
    device: str = "cpu",
    precision: str = "fp32",
    frames: int | None = None,
    split: str = "test",
    progress: bool = True,
    description: str | None = None,
    fast: bool = True,
) -> CacheEvaluation:
    """Score every input face of `split` in the cache (at most `frames` per video); report faces/s.

    faces/s is end to end (reading, decompression, transfer and the forward pass), measured over the
    streaming loop only (not the opening of the cache). A dfake `Detector` runs on the training loader's
    fast path (`_stream_detector`); anything else (and `fast=False`, the benchmark's baseline) goes
    through `make_scorer` batch by batch.
    """
    from dfake_cli.console import progress as progress_bar
    from dfake_cli.data.cache import FaceCache

    if batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {batch_size}")
    cache_path = Path(cache_path)
    score = make_scorer(detector, device, precision)
    with FaceCache(cache_path) as cache:
        index = cache.index
        attrs = dict(cache.attrs)
        rows = select_rows(index, split, frames)
        scores = np.empty(len(rows), dtype=np.float64)
        name = description or str(attrs.get("dataset", cache_path.stem))
        bar = progress_bar("faces") if progress else None
        start = time.perf_counter()
        done = 0
        if fast and _is_detector(detector):
            with bar if bar is not None else contextlib.nullcontext():
                task = bar.add_task(f"eval {name}", total=len(rows), rate="", info="") if bar is not None else None
                scores[:] = _stream_detector(detector, cache, rows, batch_size, precision, bar, task, start)
        else:
            with bar if bar is not None else contextlib.nullcontext(), ChunkReader(cache_path) as reader:
                task = bar.add_task(f"eval {name}", total=len(rows), rate="", info="") if bar is not None else None
                for rows_b, faces in prefetch(reader.read, _batches(rows, batch_size)):
                    scores[done:done + len(rows_b)] = score(faces)
                    done += len(rows_b)
                    if bar is not None:
                        rate = done / max(time.perf_counter() - start, 1e-9)
                        bar.update(task, advance=len(rows_b), rate=f"{rate:,.0f} faces/s")
        seconds = time.perf_counter() - start
    picked = index.iloc[rows] if len(rows) else index.iloc[:0]
    predictions = pd.DataFrame({
        "dataset": cache_path.stem,
        "video_id": picked["video_id"].to_numpy(),
        "frame_index": picked["frame_index"].to_numpy(dtype=np.int64),
        "label": picked["label"].to_numpy(dtype=np.int64),
        "score": scores,
        "method": picked["method"].to_numpy(),
        "row": rows,
    })
    return CacheEvaluation(predictions, len(rows) / seconds if seconds > 0 and len(rows) else 0.0, seconds, attrs)


def _is_detector(detector: Any) -> bool:
    from dfake_cli.models.detector import Detector

    return isinstance(detector, Detector)


def _stream_detector(detector, cache, rows: np.ndarray, batch_size: int, precision: str, bar, task,
                     start: float) -> np.ndarray:
    """Probabilities of `rows` through the training loader's design: DataLoader workers read chunks ahead
    (pinned memory and non-blocking copies on CUDA, prefetched on a side stream), the detector runs
    channels_last (and under bf16 autocast when asked; cuDNN autotuning on CUDA), and the logits stay on
    the device until one read back at the end."""
    import torch

    from dfake_cli.train.loader import RowBatches, ToDevice, batches

    device = detector.device
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    detector.net.to(memory_format=torch.channels_last)
    to_device = ToDevice(device, detector.mean, detector.std, detector.image_size)
    data = RowBatches(cache, rows, batch_size)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16"
                else contextlib.nullcontext())
    logits, done = [], 0
    with torch.inference_mode(), autocast:
        # On a CPU the network needs every core and reading is ~1% of its cost: worker processes would only
        # compete with it (measured in docs/benchmarks.md), so the CPU reads in the main process.
        workers = 0 if device.type != "cuda" or len(data) <= 1 else None
        for batch in batches(data, to_device, workers=workers):
            logits.append(detector.net(batch.x)[0].float())
            done += len(batch)
            if bar is not None:
                rate = done / max(time.perf_counter() - start, 1e-9)
                bar.update(task, advance=len(batch), rate=f"{rate:,.0f} faces/s")
    if not logits:
        return np.zeros(0, dtype=np.float64)
    return torch.sigmoid(torch.cat(logits)).double().cpu().numpy()


def default_batch_size(device: str | None) -> int:
    """A batch that fills a GPU with EfficientNet-B4 at 256 px in bf16 (256), 64 on a CPU."""
    return 256 if device is not None and str(device).startswith("cuda") else 64


# ----------------------------------------------------------------------------------------------------
# summarising


def dataset_summary(predictions: pd.DataFrame, level: str = "video") -> dict:
    """Frame-level (and, for video datasets, video-level) metrics, counts and the per-method breakdown.

    Per method: all reals of the dataset against that method's fakes (the FF++ per-manipulation
    protocol); only for datasets with two or more fake methods.
    """
    from dfake_cli.evaluation.metrics import frame_metrics, video_metrics

    labels, scores = predictions["label"].to_numpy(), predictions["score"].to_numpy()
    summary: dict[str, Any] = {
        "level": level,
        "frame": frame_metrics(labels, scores),
        "video": video_metrics(predictions) if level == "video" else None,
    }
    per_video = predictions.groupby("video_id")["label"].first()
    summary["counts"] = {
        "videos": int(per_video.size), "real_videos": int((per_video == 0).sum()),
        "fake_videos": int((per_video == 1).sum()), "frames": int(len(predictions)),
    }
    fake_methods = sorted(predictions.loc[predictions["label"] == 1, "method"].astype(str).unique())
    if len(fake_methods) >= 2:
        methods = {}
        reals = predictions["label"] == 0
        for method in fake_methods:
            sub = predictions[reals | (predictions["method"].astype(str) == method)]
            methods[method] = {
                "frame": frame_metrics(sub["label"].to_numpy(), sub["score"].to_numpy()),
                "video": video_metrics(sub) if level == "video" else None,
                "fake_videos": int(sub.loc[sub["label"] == 1, "video_id"].nunique()),
            }
        summary["methods"] = methods
    return summary


def average(summaries: dict[str, dict], exclude: set[str]) -> dict:
    """Mean AUC / EER over datasets (Table 1's Avg column), frame level and, where present, video level."""
    used = [n for n in summaries if n not in exclude] or list(summaries)
    out: dict[str, Any] = {"datasets": used, "excluded": [n for n in summaries if n not in used]}
    for level in ("frame", "video"):
        ms = [summaries[n][level] for n in used if summaries[n].get(level)]
        out[level] = ({"auc": float(np.mean([m["auc"] for m in ms])), "eer": float(np.mean([m["eer"] for m in ms])),
                       "n_datasets": len(ms)} if ms else None)
    return out


# ----------------------------------------------------------------------------------------------------
# describing a cache

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
ALIGNMENT_ATTRS = ("size", "margin", "frames_per_video")


def dataset_level(index: pd.DataFrame, attrs: dict) -> str:
    """"image" when every item of the cache is a single image (folder / DiffSwap), else "video".

    Image-level sets have no video to average over, so they get frame(image)-level metrics only. The
    cache may say so itself (attr `level` or `kinds`); otherwise an image item is recognised by its id,
    which keeps the image's file extension (`<dataset>/<method>/<file>.png`, see datasets/folder.py).
    """
    for key in ("level", "kinds", "kind"):
        value = attrs.get(key)
        if value is not None:
            kinds = json_list(value)
            return "image" if kinds and set(kinds) == {"image"} else "video"
    ids = index["video_id"].astype(str).str.lower()
    return "image" if len(ids) and ids.str.endswith(IMAGE_SUFFIXES).all() else "video"


def json_list(value) -> list[str]:
    import json

    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v) for v in value]
    text = str(value)
    if text.startswith("["):
        try:
            return [str(v) for v in json.loads(text)]
        except ValueError:
            pass
    return [text]


def alignment_of(attrs: dict) -> dict:
    """How the cache's faces were cropped (size, margin, the full alignment config when recorded)."""
    import json

    out = {k: attrs[k] for k in ALIGNMENT_ATTRS if k in attrs}
    if "align" in attrs:
        try:
            out["align"] = json.loads(attrs["align"]) if isinstance(attrs["align"], str) else attrs["align"]
        except ValueError:
            out["align"] = str(attrs["align"])
    return out
