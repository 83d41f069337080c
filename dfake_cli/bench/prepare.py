"""`dfake bench prepare`: end-to-end frames/s of the real preparation engine on generated 640x480 H.264 videos.

The videos (videos.py) are written to a temporary folder first (not timed), then `prepare_manifest` runs
over them exactly as `dfake prepare` does: decode evenly spaced frames, MTCNN detection + tracking,
5-point alignment, (VAE encoding of every face for a training cache), shard writing and assembly into
the HDF5 cache. frames/s = decoded input frames / wall time of the whole call; the split comes from the
engine's own per-stage timers (seconds summed over videos, reported per frame).

Rows: a test cache (faces only) and a training cache (faces + VAE latent moments). All videos are real
faces, so a training cache pairs each face with itself (as for FF++ reals) and every face is encoded.
The VAE is the tiny one (the only one that exists without local weights); a separate row times the
SD-1.5-sized VAE encoder (random weights) on 256 px faces so its cost per frame can be added.
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
    videos: int = 8
    video_frames: int = 160  # frames per generated video (~6 s at 25 fps)
    frames: int = 32  # evenly spaced frames prepared per video (the default of `dfake prepare`)
    workers: tuple[int, ...] = (1, 2)
    training: bool = True  # also time a training cache (VAE encoding)
    vae_sd15: bool = True  # time the SD-1.5-sized VAE encoder separately
    vae_batch: int = 16

    @classmethod
    def for_options(cls, options: BenchOptions) -> "PrepareSetup":
        if options.quick:
            return cls(videos=2, video_frames=40, frames=16, workers=(1,), training=True, vae_sd15=False)
        return cls()


def bench_manifest(paths: list[Path], root: Path):
    """A manifest of the generated videos as real test faces (one item per video)."""
    from dfake_cli.data.datasets import Manifest, VideoItem

    items = [VideoItem(f"bench/real/{p.stem}", p, 0, "real", "test") for p in paths]
    return Manifest("bench", root, items)


def _row(result, variant: str, setup: PrepareSetup, workers: int, device: str, notes: list[str],
         cpu_s: float) -> BenchRow:
    frames = max(1, result.frames)
    split = {k: 1000.0 * float(result.timings.get(k, 0.0)) / frames for k in SPLIT_STAGES}
    accounted = sum(split.values())
    if workers == 1:  # with several workers the stage times overlap and do not add up to the wall time
        split["other"] = max(0.0, 1000.0 * result.elapsed / frames - accounted)
    metrics = {
        "frames_per_s": result.frames / result.elapsed if result.elapsed > 0 else 0.0,
        "frames": result.frames,
        "faces": result.faces,
        "videos": result.videos,
        "workers": workers,
        "seconds": result.elapsed,
        "cpu_ms_per_frame": round(1000.0 * cpu_s / frames, 2),
        "split_ms_per_frame": {k: round(v, 2) for k, v in split.items()},
        "setup": asdict(setup),
        "device": device,
    }
    return BenchRow("prepare", variant, metrics, notes)


def vae_encode_row(device: torch.device, batch: int, steps: int = 3) -> BenchRow:
    """faces/s of the SD-1.5-sized VAE encoder (random weights) at 256 px: the `encode` stage with real SD."""
    from diffusers import AutoencoderKL

    from dfake_cli.models.sd import CONFIG_ROOT, encode_latent_moments

    vae = AutoencoderKL.from_config(AutoencoderKL.load_config(str(CONFIG_ROOT / "sd15" / "vae")))
    vae = vae.to(device).eval().requires_grad_(False)  # the VAE alone: the UNet is not needed here
    x = torch.rand(batch, 3, 256, 256, device=device) * 2 - 1
    timing = time_steps(lambda: encode_latent_moments(vae, x), device, steps=steps, warmup=1)
    del vae
    return BenchRow("prepare", "SD-1.5 VAE encode (256 px, fp32)", {
        "faces_per_s": batch / timing.median, "batch_size": batch, "ms_per_face": 1000 * timing.median / batch,
    }, ["the per-face cost the encode stage adds to a training cache with real SD-1.5 weights"])


def bench_prepare(options: BenchOptions) -> list[BenchRow]:
    from dfake_cli.bench.videos import make_videos
    from dfake_cli.data.prepare import prepare_manifest

    device = options.torch_device
    dev = "cuda" if device.type == "cuda" else "cpu"
    setup = PrepareSetup.for_options(options)
    rows: list[BenchRow] = []
    with tempfile.TemporaryDirectory(prefix="dfake-bench-prepare-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        paths = make_videos(root / "videos", setup.videos, setup.video_frames, seed=options.seed)
        gen_s = time.perf_counter() - t0
        manifest = bench_manifest(paths, root / "videos")
        note = (f"{setup.videos} generated 640x480 H.264 videos of {setup.video_frames} frames, "
                f"{setup.frames} evenly spaced frames each (generation {gen_s:.1f} s, not timed)")
        runs = [(False, w) for w in setup.workers]
        if setup.training:
            runs.append((True, setup.workers[0]))
        for i, (training, workers) in enumerate(runs):
            cache = root / f"cache{i}.h5"
            cpu0 = cpu_seconds()
            result = prepare_manifest(manifest, cache, frames=setup.frames, device=dev, workers=workers,
                                      training=training, sd="tiny" if training else None, progress=False)
            if result.faces == 0:
                from dfake_cli.errors import RunError

                raise RunError("prepare bench: no face was found in the generated videos (MTCNN failed)")
            kind = "training cache, faces + tiny-VAE latents" if training else "test cache, faces only"
            rows.append(_row(result, f"{kind}, {workers} worker(s)", setup, workers, dev, [note, CPU_NOTE],
                             cpu_seconds() - cpu0))
    if setup.vae_sd15:
        rows.append(vae_encode_row(device, setup.vae_batch if device.type == "cuda" else 4))
    return rows
