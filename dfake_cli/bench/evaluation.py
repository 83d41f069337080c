"""`dfake bench eval`: detector faces/s streaming from an HDF5 cache, through the real `evaluate_cache`.

The cache is the eval engineer's synthetic one (random 256 px faces written by the real cache writer, so
reading and gzip decompression cost what they cost for a prepared dataset). The detector is EfficientNet-B4
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
            setup = cls(videos=8, frames=32, batch_size=32)  # 256 faces: EN-B4 on a CPU is ~10 faces/s
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


def bench_eval(options: BenchOptions) -> list[BenchRow]:
    from dfake_cli.evaluation.evaluate import evaluate_cache
    from dfake_cli.evaluation.synthetic import synthetic_cache

    device = options.torch_device
    setup = EvalSetup.for_options(options)
    precision = options.resolved_precision()
    torch.manual_seed(options.seed)
    detector = build_detector(setup.backbone, setup.image_size, device)
    with tempfile.TemporaryDirectory(prefix="dfake-bench-eval-") as tmp:
        cache = synthetic_cache(Path(tmp) / "bench.h5", n_videos=setup.videos, frames=setup.frames,
                                size=setup.image_size, seed=options.seed)
        rates, cpu = [], []
        reset_peak_memory(device)
        for _ in range(max(1, setup.repeats)):
            cpu0 = cpu_seconds()
            result = evaluate_cache(detector, cache, batch_size=setup.batch_size, device=str(device),
                                    precision=precision, progress=False)
            cpu.append(cpu_seconds() - cpu0)
            rates.append(result.faces_per_s)
        mem, mem_label = peak_memory(device)
    measured = rates[1:] if len(rates) > 1 else rates
    metrics = {
        "faces_per_s": max(measured),
        "faces_per_s_all_passes": rates,
        "faces": result.n_faces,
        "cpu_ms_per_face": round(1000.0 * min(cpu[1:] or cpu) / max(1, result.n_faces), 2),
        "batch_size": setup.batch_size,
        "precision": precision,
        "peak_memory_bytes": mem,
        "peak_memory_kind": mem_label,
        "setup": asdict(setup),
    }
    notes = [f"evaluate_cache over a synthetic {setup.image_size}px HDF5 cache ({setup.videos} videos x "
             f"{setup.frames} faces); {setup.backbone} random weights; best of {len(measured)} pass(es) after a warm-up"]
    return [BenchRow("eval", f"{setup.backbone} {setup.image_size}px", metrics, notes)]
