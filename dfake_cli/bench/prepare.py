"""`dfake bench prepare`: frames/s of the real preparation engine over a generated FF++-like tree.

The tree (videos.py; written first, not timed) holds 640x480 H.264 originals, each a real portrait moving
on a canvas, and as many fakes: fake i is original i's motion with the face tinted (pixel-aligned with
it, as FF++ fakes are with their targets), its source being original i+1. `prepare_manifest` then runs
over it exactly as `dfake prepare` does: decode evenly spaced frames, MTCNN detection + tracking, 5-point
alignment, shard writing, assembly; a training cache also decodes each fake's target original, warps it,
and VAE-encodes every face (and its flip). On CUDA both rows run the batched stage (CPU decode processes
feeding one GPU process, data/prepare/stage.py; the training row then covers all 24 + 24 videos); without
a GPU its row says "not measured yet", never an estimate.

Reported per variant: frames/s end to end (decoded input frames / wall time of the whole call), the
steady-state rate (the same frames over the time after every worker had started and loaded its models),
start-up (worker start + model loading) and assembly seconds apart, CPU time per frame, and the
engine's own per-stage split (seconds summed over workers, reported per frame).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from dfake_cli.bench.common import BenchOptions, BenchRow, cpu_seconds, time_steps

CPU_NOTE = ("cpu_ms_per_frame: CPU time (all threads and worker processes) per frame; on a loaded machine "
            "wall time per frame exceeds it by the time spent waiting for a core")
SPLIT_STAGES = ("decode", "detect", "align", "encode", "write", "assemble")


@dataclass
class PrepareSetup:
    videos: int = 24  # originals; as many fakes again (48 videos in all)
    video_frames: int = 64  # frames per generated video
    frames: int = 32  # evenly spaced frames prepared per video (the default of `dfake prepare`)
    workers: tuple[int, ...] = (0,)  # 0: the engine's default (one process per core; on cuda the batched stage)
    training: bool = True  # also time a training cache (target warps + VAE encoding)
    training_videos: int = 4  # originals of the training-cache row on the CPU (the tiny VAE is slow there)
    vae_sd15: bool = True  # time the SD-1.5-sized VAE encoder separately
    vae_batch: int = 16

    @classmethod
    def for_options(cls, options: BenchOptions) -> "PrepareSetup":
        if options.quick:
            return cls(videos=2, video_frames=24, frames=8, workers=(1,), training=True, training_videos=1,
                       vae_sd15=False)
        return cls()


def bench_manifest(originals: list[Path], fakes: list[Path], root: Path):
    """An FF++-like manifest: originals (youtube) and fakes T_S with target T = i, source S = i + 1."""
    from dfake_cli.data.datasets import Manifest, VideoItem

    n = len(originals)
    items = [VideoItem(f"bench/youtube/{i:03d}", p, 0, "youtube", "train") for i, p in enumerate(originals)]
    for i, p in enumerate(fakes):
        s = (i + 1) % n
        items.append(VideoItem(f"bench/Deepfakes/{i:03d}_{s:03d}", p, 1, "Deepfakes", "train",
                               target=f"bench/youtube/{i:03d}", source=f"bench/youtube/{s:03d}"))
    return Manifest("bench", root, items)


def _row(result, variant: str, setup: PrepareSetup, workers: int, device: str, notes: list[str],
         cpu_s: float) -> BenchRow:
    frames = max(1, result.frames)
    split = {k: 1000.0 * float(result.timings.get(k, 0.0)) / frames for k in SPLIT_STAGES}
    startup = float(result.timings.get("startup", 0.0))
    assemble = float(result.timings.get("assemble", 0.0))
    steady_s = max(1e-9, result.elapsed - startup - assemble - float(result.timings.get("scan", 0.0)))
    metrics = {
        "frames_per_s": result.frames / result.elapsed if result.elapsed > 0 else 0.0,
        "steady_frames_per_s": result.frames / steady_s,
        "startup_s": round(startup, 2),
        "assemble_s": round(assemble, 2),
        "frames": result.frames,
        "faces": result.faces,
        "rows": result.rows,
        "videos": result.videos,
        "workers": workers,
        "stage": result.stage,
        "seconds": result.elapsed,
        "cpu_ms_per_frame": round(1000.0 * cpu_s / frames, 2),
        "split_ms_per_frame": {k: round(v, 2) for k, v in split.items()},
        "setup": asdict(setup),
        "device": device,
    }
    return BenchRow("prepare", variant, metrics, notes)


def vae_encode_row(device: torch.device, batch: int, steps: int = 3) -> BenchRow:
    """faces/s of the SD-1.5-sized VAE encoder (random weights) at 256 px, as the engine runs it."""
    from diffusers import AutoencoderKL

    from dfake_cli.data.prepare.encoder import VaeEncoder
    from dfake_cli.models.sd import CONFIG_ROOT

    vae = AutoencoderKL.from_config(AutoencoderKL.load_config(str(CONFIG_ROOT / "sd15" / "vae")))
    encoder = VaeEncoder(vae.requires_grad_(False), device=str(device))  # random weights: same cost
    faces = torch.randint(0, 256, (batch, 256, 256, 3), dtype=torch.uint8).numpy()
    timing = time_steps(lambda: encoder.moments(faces), device, steps=steps, warmup=1)
    label = f"SD-1.5 VAE encoder (256 px, {encoder.dtype_name}, batch {batch})"
    return BenchRow("prepare", label, {
        "faces_per_s": batch / timing.median, "batch_size": batch, "ms_per_face": 1000 * timing.median / batch,
    }, ["the per-face cost the encode stage adds to a training cache with real SD-1.5 weights (x2: flips)"])


def make_tree(root: Path, originals: int, video_frames: int, seed: int) -> tuple[list[Path], list[Path]]:
    from dfake_cli.bench.videos import make_videos

    real = make_videos(root / "youtube", originals, video_frames, seed=seed)
    fake = make_videos(root / "Deepfakes", originals, video_frames, seed=seed, tint=True)
    return real, fake


def bench_prepare(options: BenchOptions) -> list[BenchRow]:
    from dfake_cli.data.prepare import prepare_manifest
    from dfake_cli.errors import RunError

    device = options.torch_device
    dev = "cuda" if device.type == "cuda" else "cpu"
    setup = PrepareSetup.for_options(options)
    rows: list[BenchRow] = []
    with tempfile.TemporaryDirectory(prefix="dfake-bench-prepare-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        real, fake = make_tree(root / "videos", setup.videos, setup.video_frames, options.seed)
        gen_s = time.perf_counter() - t0
        runs = [(False, w, setup.videos) for w in setup.workers]
        if setup.training:
            runs.append((True, setup.workers[0], setup.videos if dev == "cuda" else setup.training_videos))
        for i, (training, workers, n) in enumerate(runs):
            manifest = bench_manifest(real[:n], fake[:n], root / "videos")
            note = (f"{2 * n} generated 640x480 H.264 videos ({n} originals + {n} fakes) of "
                    f"{setup.video_frames} frames, {setup.frames} evenly spaced frames each "
                    f"(generation {gen_s:.1f} s, not timed)")
            cpu0 = cpu_seconds()
            result = prepare_manifest(manifest, root / f"cache{i}.h5", frames=setup.frames, device=dev,
                                      workers=workers, training=training, sd="tiny" if training else None,
                                      progress=False)
            if result.faces == 0:
                raise RunError("prepare bench: no face was found in the generated videos (MTCNN failed)")
            kind = "training cache, faces + tiny-VAE latents" if training else "test cache, faces only"
            used = result.workers or workers
            who = (f"batched stage, {used} decode process(es) + 1 model process" if result.stage == "batched"
                   else f"{used} worker(s)")
            rows.append(_row(result, f"{kind}, {who}", setup, used, dev, [note, CPU_NOTE], cpu_seconds() - cpu0))
    if dev != "cuda":
        rows.append(BenchRow("prepare", "training cache, batched GPU stage", {"status": "not measured yet"},
                             ["the batched GPU stage runs on CUDA only (`dfake bench prepare --device cuda`)"]))
    if setup.vae_sd15:
        rows.append(vae_encode_row(device, setup.vae_batch if device.type == "cuda" else 4))
    return rows
