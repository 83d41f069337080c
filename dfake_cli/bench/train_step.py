"""`dfake bench train-step`: our DiffusionFake training step vs an official-like one, same process, same inputs.

Weights are random (the cost of a step does not depend on them): the SD-1.5 UNet/VAE come from the packaged
configs (`build_sd15_random`) and the backbone is EfficientNet-B4 with pretrained=False, at 256 px with
4x32x32 latents. `--quick` swaps in the tiny SD and a tiny timm backbone at 64 px so the part runs in
seconds on a CPU; those figures only show that the harness works.

Our step is the trainer's step: latents sampled from precomputed VAE moments, the cached empty-prompt
embedding, both branches in one 2B batch, frozen SD with requires_grad False, bf16 autocast (on CUDA by
default), AdamW. The official-like step is in official.py. Both run on one model instance (one set of
weights, one optimizer), so the two figures differ only in how the step is executed.
"""

from __future__ import annotations

import gc
from pathlib import Path
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch

from dfake_cli.bench.common import (
    BenchOptions,
    BenchRow,
    count_flops,
    matmul_peak,
    mfu,
    peak_memory,
    peak_reserved,
    reset_peak_memory,
    time_steps,
)
from dfake_cli.runtime import DEFAULT_MARGIN


@dataclass
class TrainStepSetup:
    """The sizes of one train-step benchmark; `quick()` and `full()` are the two presets."""

    sd: str = "sd15"  # "sd15" (random SD-1.5 sizes) | "tiny"
    backbone: str = "efficientnet_b4"
    image_size: int = 256
    batch_size: int = 32
    weight_widths: tuple[int, ...] = (1024, 512, 256, 128)
    steps: int = 5
    warmup: int = 2

    @classmethod
    def quick(cls) -> "TrainStepSetup":
        return cls(sd="tiny", backbone="test_efficientnet", image_size=64, batch_size=2,
                   weight_widths=(64, 32, 16, 8), steps=2, warmup=1)

    @classmethod
    def for_options(cls, options: BenchOptions) -> "TrainStepSetup":
        setup = cls.quick() if options.quick else cls()
        if not options.quick and options.torch_device.type == "cpu":
            setup.batch_size, setup.steps, setup.warmup = 1, 1, 1  # SD-1.5 scale on a CPU: seconds per image
        if options.batch_size is not None:
            setup.batch_size = options.batch_size
        if options.steps is not None:
            setup.steps = options.steps
        if options.warmup is not None:
            setup.warmup = options.warmup
        return setup


def build_model(setup: TrainStepSetup, device: torch.device, seed: int = 0, gradient_checkpointing: bool = False):
    """(DiffusionFake, StableDiffusion) with random weights at the setup's sizes, on `device`, fp32.

    `gradient_checkpointing` is the model option behind `--low-memory` (guide, UNet and backbone).
    """
    from dfake_cli.models.diffusionfake import DiffusionFake, DiffusionFakeConfig
    from dfake_cli.models.sd import build_sd15_random, load_stable_diffusion

    torch.manual_seed(seed)
    sd = build_sd15_random() if setup.sd == "sd15" else load_stable_diffusion(setup.sd)
    config = DiffusionFakeConfig(backbone=setup.backbone, image_size=setup.image_size, sd=setup.sd,
                                 weight_widths=setup.weight_widths, gradient_checkpointing=gradient_checkpointing,
                                 face_align={"size": setup.image_size, "margin": DEFAULT_MARGIN})
    model = DiffusionFake(config, sd).to(device)
    model.train()
    return model, sd


@dataclass
class StepInputs:
    """One batch as both steps need it: images for the official step, VAE moments for ours."""

    x: torch.Tensor
    labels: torch.Tensor
    source_images: torch.Tensor
    target_images: torch.Tensor
    mean_s: torch.Tensor
    logvar_s: torch.Tensor
    mean_t: torch.Tensor
    logvar_t: torch.Tensor
    score_s: torch.Tensor
    score_t: torch.Tensor


def make_inputs(model, batch_size: int, device: torch.device, seed: int = 0) -> StepInputs:
    """Random faces in [-1, 1] and their VAE moments, encoded once (as prepare stores them in the cache)."""
    from dfake_cli.models.sd import encode_latent_moments

    g = torch.Generator().manual_seed(seed)
    s = model.config.image_size
    images = torch.rand(3 * batch_size, 3, s, s, generator=g) * 2 - 1  # input, source, target
    images = images.to(device)
    x = (images[:batch_size] + 1) / 2
    mean = torch.tensor(model.config.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(model.config.std, device=device).view(1, 3, 1, 1)
    x = (x - mean) / std
    src, tgt = images[batch_size:2 * batch_size], images[2 * batch_size:]
    moments = [encode_latent_moments(model.sd.vae, part) for part in (src, tgt)]
    labels = (torch.arange(batch_size) % 2).to(device)
    scores = torch.rand(2, batch_size, generator=g).to(device)
    return StepInputs(x, labels, src, tgt, moments[0][0], moments[0][1], moments[1][0], moments[1][1],
                      scores[0], scores[1])


def our_losses(model, inputs: StepInputs, precision: str, generator=None) -> dict:
    """Our step's forward, exactly as the trainer runs it (train.step.forward_losses): latents sampled from
    the stored moments on the device, cached text embedding, one 2B batch, optional bf16 autocast."""
    from dfake_cli.train.step import forward_losses

    return forward_losses(model.losses, inputs, precision, model.sd.scaling_factor, generator)


def make_our_step(model, optimizer, inputs: StepInputs, precision: str, compiled: bool = False,
                  seed: int = 0) -> Callable[[], Any]:
    """The trainer's own step function (train.step.TrainStep) on fixed inputs: no replica."""
    from dfake_cli.train.step import LossModule, TrainStep

    step_fn = TrainStep(LossModule(model), optimizer, precision, model.sd.scaling_factor, compile=compiled)
    gen = torch.Generator(device=inputs.x.device).manual_seed(seed)

    def step():
        return step_fn(inputs, gen)["total"]

    return step


def make_official_step(model, optimizer, text_encoder, inputs: StepInputs, seed: int = 0) -> Callable[[], Any]:
    from dfake_cli.bench.official import OfficialInputs, official_losses

    off_inputs = OfficialInputs(inputs.x, inputs.labels, inputs.source_images, inputs.target_images,
                                inputs.score_s, inputs.score_t)
    gen = torch.Generator(device=inputs.x.device).manual_seed(seed)
    unet_params = list(model.sd.unet.parameters())

    def step():
        out = official_losses(model, text_encoder, off_inputs, gen)
        optimizer.zero_grad(set_to_none=True)
        for p in unet_params:  # the reference code accumulates these too; they never reach the optimizer
            p.grad = None
        out["total"].backward()
        optimizer.step()
        return out["total"].detach()

    return step


def _cpu_memory_shortfall(setup: TrainStepSetup) -> str | None:
    """Why SD-1.5 scale cannot run in this machine's free RAM, or None when it can.

    Need: fp32 weights of everything (~1.67 G parameters), gradients + two AdamW moments of the ~0.73 G
    trainable ones, the official step's UNet-decoder gradients (~0.51 G) and ~1.5 GB of activations per image.
    """
    from dfake_cli.models.diffusionfake import sd15_parameter_count

    counts = sd15_parameter_count(setup.backbone, setup.image_size)
    total = sum(counts[k] for k in ("detector", "guide", "upsamplers", "filters", "weight_nets", "frozen_unet",
                                    "frozen_vae"))
    need = 4 * (total + 3 * counts["trainable"] + 0.6 * counts["frozen_unet"]) + 1.5e9 * setup.batch_size
    try:
        text = Path("/proc/meminfo").read_text()
        avail = int(next(l for l in text.splitlines() if l.startswith("MemAvailable")).split()[1]) * 1024
    except (OSError, StopIteration, ValueError):
        return None
    if avail >= need:
        return None
    return f"needs about {need / 2**30:.0f} GiB of RAM, {avail / 2**30:.1f} GiB available"


def _flops_only_rows(setup: TrainStepSetup, reason: str) -> list[BenchRow]:
    """What can still be measured without the memory: both steps' FLOPs, counted on the meta device."""
    flops = count_flops_on_meta(setup)
    b = setup.batch_size
    common = {"batch_size": b, "setup": asdict(setup), "flops_counted_on": "meta device (shapes only)"}
    note = f"timing not measured on this CPU: SD-1.5 scale {reason}"
    return [
        BenchRow("train-step", "ours (FLOPs only)", {"flops_per_step": flops["ours"],
                                                     "flops_per_image": flops["ours"] / b, **common}, [note]),
        BenchRow("train-step", "official-like (FLOPs only)", {"flops_per_step": flops["official"],
                                                              "flops_per_image": flops["official"] / b, **common}, [note]),
        BenchRow("train-step", "FLOP ratio official-like/ours", {"flop_ratio": flops["official"] / flops["ours"],
                                                                  "batch_size": b}, []),
    ]


@contextmanager
def cuda_backend_flags(matmul_tf32: bool, cudnn_tf32: bool, benchmark: bool):
    """Set the CUDA math flags for one measurement and restore them after.

    Ours runs as the trainer configures CUDA (TF32 for the fp32 parts, cuDNN autotuning); the official-like
    step runs with torch's defaults (TF32 off for matmuls, on for cuDNN convolutions; no autotuning), as the
    reference code under PyTorch Lightning does.
    """
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    torch.backends.cuda.matmul.allow_tf32 = matmul_tf32
    torch.backends.cudnn.allow_tf32 = cudnn_tf32
    torch.backends.cudnn.benchmark = benchmark
    try:
        yield
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.benchmark) = old


def _set_flops(metrics: dict, flops: int, batch: int, peak: dict) -> None:
    metrics.update(flops_per_step=flops, flops_per_image=flops / batch,
                   mfu=mfu(flops, metrics["ms_per_step"] / 1000, peak["flops_per_s"]), flops_counted_on="meta device")


def _measure(name: str, step: Callable[[], Any], setup: TrainStepSetup, device: torch.device,
             peak: dict, count: bool = True) -> dict[str, Any]:
    """FLOPs from the first (warm-up) call under FlopCounterMode, then the timed steps and peak memory."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    reset_peak_memory(device)
    flops = count_flops(step) if count else None
    timing = time_steps(step, device, steps=setup.steps, warmup=max(0, setup.warmup - (1 if count else 0)))
    mem, mem_label = peak_memory(device)
    reserved = peak_reserved(device)
    sec = timing.median
    metrics: dict[str, Any] = {
        "ms_per_step": 1000 * sec,
        "images_per_s": setup.batch_size / sec,
        "peak_memory_bytes": mem,
        "peak_memory_kind": mem_label,
        "peak_reserved_bytes": reserved,  # CUDA allocator reserve; "n/a" on the CPU
        "batch_size": setup.batch_size,
        "steps_timed": len(timing.times),
    }
    if flops is not None:
        metrics["flops_per_step"] = flops
        metrics["flops_per_image"] = flops / setup.batch_size
        metrics["mfu"] = mfu(flops, sec, peak["flops_per_s"])
    return metrics


def count_flops_on_meta(setup: TrainStepSetup, precision: str = "fp32") -> dict[str, int]:
    """FLOPs per step of both steps at the setup's sizes, counted by FlopCounterMode on the meta device.

    Meta tensors carry shapes only: the count is exact (the same ops run) but costs no memory and no
    arithmetic, so SD-1.5 scale at batch 32 is counted in seconds on any machine. Autocast does not exist on
    meta; bf16 autocast changes dtypes, not the op count, so the fp32 graph is counted.
    """
    from dfake_cli.bench.official import OfficialInputs, official_losses, official_mode, text_encoder_for
    from dfake_cli.models.diffusionfake import DiffusionFake, DiffusionFakeConfig
    from dfake_cli.models.sd import build_sd15_random, load_stable_diffusion

    meta = torch.device("meta")
    sd = build_sd15_random(device="meta") if setup.sd == "sd15" else load_stable_diffusion(setup.sd).to(meta)
    with meta:
        model = DiffusionFake(DiffusionFakeConfig(backbone=setup.backbone, image_size=setup.image_size,
                                                  sd=setup.sd, weight_widths=setup.weight_widths), sd)
        text_encoder, _ = text_encoder_for(sd.unet)
    model.to(meta).train()
    text_encoder.to(meta)
    b, s = setup.batch_size, setup.image_size
    images = torch.empty(b, 3, s, s, device=meta)
    moments = [torch.empty(b, 4, s // 8, s // 8, device=meta) for _ in range(4)]
    labels, scores = torch.zeros(b, device=meta), torch.zeros(b, device=meta)
    inputs = StepInputs(images, labels, images, images, *moments, scores, scores)

    def ours():
        our_losses(model, inputs, "fp32")["total"].backward()

    def official():
        off = OfficialInputs(images, labels, images, images, scores, scores)
        official_losses(model, text_encoder, off)["total"].backward()

    out = {"ours": count_flops(ours)}
    for p in model.parameters():
        p.grad = None
    with official_mode(model):
        out["official"] = count_flops(official)
    return out


def bench_train_step(options: BenchOptions) -> list[BenchRow]:
    """Rows: ours, official-like, and their ratio (images/s of ours over official-like)."""
    from dfake_cli.bench.official import official_mode, text_encoder_for

    device = options.torch_device
    setup = TrainStepSetup.for_options(options)
    precision = options.resolved_precision()
    if device.type == "cpu" and setup.sd == "sd15":
        short = _cpu_memory_shortfall(setup)
        if short is not None:
            return _flops_only_rows(setup, short)
    peak = matmul_peak(device)
    model, _ = build_model(setup, device, options.seed, gradient_checkpointing=options.low_memory)
    params = model.count_parameters()
    from dfake_cli.train.step import make_optimizer, prepare_model

    inputs = make_inputs(model, setup.batch_size, device, options.seed)  # VAE moments, before the VAE leaves
    prepare_model(model, precision, device)  # the trainer's placement: bf16 UNet under bf16, VAE off the GPU
    optimizer = make_optimizer(model.trainable_parameters(), 1e-5, 0.01, device)
    text_encoder, text_note = text_encoder_for(model.sd.unet)
    text_encoder = text_encoder.to(device).requires_grad_(False).eval()
    common = {"setup": asdict(setup), "matmul_peak_flops_per_s": peak["flops_per_s"], "matmul_peak": peak["label"],
              "trainable_params": params["trainable"]}

    ours_notes = []
    if options.low_memory:
        ours_notes.append("--low-memory: activation checkpointing of guide, frozen UNet and backbone")
    step = make_our_step(model, optimizer, inputs, precision, compiled=options.compile, seed=options.seed)
    # FLOPs: counted on the real first step on CUDA (it doubles as a warm-up step). On the CPU the counter
    # does not see SDPA (torch registers no FLOP formula for the CPU flash-attention kernel), and it never
    # sees inside compiled graphs: there both steps are counted on the meta device instead (same ops).
    on_meta = device.type != "cuda" or options.compile
    meta_flops = count_flops_on_meta(setup) if on_meta else None
    with cuda_backend_flags(matmul_tf32=True, cudnn_tf32=True, benchmark=True):
        ours = _measure("ours", step, setup, device, peak, count=not on_meta)
    if meta_flops is not None:
        _set_flops(ours, meta_flops["ours"], setup.batch_size, peak)
    del step
    optimizer.zero_grad(set_to_none=True)

    with official_mode(model):
        off_step = make_official_step(model, optimizer, text_encoder, inputs, seed=options.seed)
        with cuda_backend_flags(matmul_tf32=False, cudnn_tf32=True, benchmark=False):
            official = _measure("official-like", off_step, setup, device, peak, count=meta_flops is None)
        if meta_flops is not None:
            _set_flops(official, meta_flops["official"], setup.batch_size, peak)
        del off_step
    optimizer.zero_grad(set_to_none=True)

    variant = f"ours ({precision}{', compiled' if options.compile else ''}{', low-memory' if options.low_memory else ''})"
    rows = [
        BenchRow("train-step", variant, {**ours, "precision": precision, **common}, ours_notes),
        BenchRow("train-step", "official-like (fp32)", {**official, "precision": "fp32", **common}, [text_note]),
        BenchRow("train-step", "ratio ours/official-like", {
            "speedup": ours["images_per_s"] / official["images_per_s"],
            "memory_ratio": ours["peak_memory_bytes"] / max(1, official["peak_memory_bytes"]),
            "batch_size": setup.batch_size,
        }, ["images/s of ours over official-like" + ("; CPU memory is the process RSS peak, which never "
                                                      "goes down, so the two peaks are not separable" if device.type == "cpu" else "")]),
    ]
    return rows
