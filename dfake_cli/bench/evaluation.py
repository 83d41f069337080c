"""`dfake bench eval`: detector faces/s streaming from an HDF5 cache, through the real `evaluate_cache`.

The cache holds real-looking portrait crops (bench/portraits.py) written by the real cache writer, so
reading costs what it costs for a prepared dataset (random noise would not). The detector is EfficientNet-B4
+ linear head with random weights (cost does not depend on them). faces/s is `evaluate_cache`'s own figure:
end to end over the streaming loop (read, decompress, preprocess, forward).
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from dfake_cli.bench.common import BenchOptions, BenchRow, cpu_seconds, peak_memory, reset_peak_memory
from dfake_cli.runtime import DEFAULT_MARGIN


@dataclass
class EvalSetup:
    backbone: str = "efficientnet_b4"
    image_size: int = 256
    videos: int = 64
    frames: int = 32
    batch_size: int = 128
    repeats: int = 2  # the first pass warms up (allocator, cuDNN); the best later pass is reported

    @classmethod
    def for_options(cls, options: BenchOptions) -> "EvalSetup":
        if options.quick:
            setup = cls(backbone="test_efficientnet", image_size=64, videos=4, frames=16, batch_size=32, repeats=2)
        elif options.torch_device.type == "cpu":
            setup = cls(videos=4, frames=16, batch_size=32)  # 64 faces: EN-B4 on a CPU is ~2-10 faces/s
        else:
            setup = cls()
        if options.steps is not None:
            setup.repeats = options.steps + 1
        return setup


def build_detector(backbone: str, image_size: int, device: torch.device):
    """An untrained Detector (random weights) with the packaged defaults (mean/std 0.5)."""
    from dfake_cli.models.backbone import DetectorNet
    from dfake_cli.models.detector import Detector

    net = DetectorNet(backbone, image_size)
    config = {"backbone": backbone, "image_size": image_size, "mean": [0.5] * 3, "std": [0.5] * 3,
              "face_align": {"size": image_size, "margin": DEFAULT_MARGIN}}
    return Detector(net, config, device=device)


def portrait_test_cache(path: Path, videos: int, frames: int, size: int, seed: int = 0) -> Path:
    """A test cache of real-looking portrait crops (half labelled fake), through the real cache writer."""
    from dfake_cli.bench.portraits import portrait_crops
    from dfake_cli.evaluation.synthetic import SyntheticVideo, write_cache

    return write_cache(path, [
        SyntheticVideo(f"bench/{'fake' if i % 2 else 'real'}/{i:04d}", i % 2, "fake" if i % 2 else "real",
                       portrait_crops(frames, size, seed + i, identity=i))
        for i in range(videos)
    ], "bench")


def bench_eval(options: BenchOptions) -> list[BenchRow]:
    """Today's path (make_scorer batch by batch: fp32, NCHW, one prefetch thread) against the loader path
    with channels_last, in fp32 and under bf16 autocast, each with a fresh detector of the same weights."""
    from dfake_cli.evaluation.evaluate import evaluate_cache

    device = options.torch_device
    setup = EvalSetup.for_options(options)
    precision = options.resolved_precision()
    variants = [("previous path (fp32, NCHW, thread prefetch)", False, "fp32"),
                ("loader + channels_last (fp32)", True, "fp32"),
                ("loader + channels_last + bf16", True, "bf16")]
    if precision == "bf16" and device.type == "cuda":
        variants = variants[:1] + variants[2:]  # on a GPU the fp32 fast path is not a candidate default
    rows = []
    with tempfile.TemporaryDirectory(prefix="dfake-bench-eval-") as tmp:
        cache = portrait_test_cache(Path(tmp) / "bench.h5", setup.videos, setup.frames, setup.image_size, options.seed)
        for name, fast, prec in variants:
            torch.manual_seed(options.seed)
            detector = build_detector(setup.backbone, setup.image_size, device)
            rates, cpu = [], []
            reset_peak_memory(device)
            for _ in range(max(1, setup.repeats)):
                cpu0 = cpu_seconds()
                result = evaluate_cache(detector, cache, batch_size=setup.batch_size, device=str(device),
                                        precision=prec, progress=False, fast=fast)
                cpu.append(cpu_seconds() - cpu0)
                rates.append(result.faces_per_s)
            mem, mem_label = peak_memory(device)
            measured = rates[1:] if len(rates) > 1 else rates
            rows.append(BenchRow("eval", name, {
                "faces_per_s": max(measured), "faces_per_s_all_passes": rates, "faces": result.n_faces,
                "cpu_ms_per_face": round(1000.0 * min(cpu[1:] or cpu) / max(1, result.n_faces), 2),
                "batch_size": setup.batch_size, "precision": prec, "peak_memory_bytes": mem,
                "peak_memory_kind": mem_label, "setup": asdict(setup),
            }, []))
    rows[0].notes.append(f"evaluate_cache over {setup.videos} x {setup.frames} portrait crops of {setup.image_size} px; "
                         f"{setup.backbone}, random weights; best of {len(measured)} pass(es) after a warm-up")
    rows.append(BenchRow("eval", "ratio fastest / previous path", {
        "speedup": max(r.metrics["faces_per_s"] for r in rows[1:]) / rows[0].metrics["faces_per_s"]}, []))
    return rows
