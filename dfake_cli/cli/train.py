"""`dfake train`: train DiffusionFake (or the --no-guide baseline) on a prepared cache.

Options override a --config TOML, which overrides the defaults (docs/training.md). Also runs under
`torchrun --nproc_per_node N -m dfake_cli train ...` (DistributedDataParallel, one process per device);
there, name the run with `--run-name` (torchrun's argparse mistakes `--run` for its `--run-path`).
"""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from dfake_cli.cli.context import state
from dfake_cli.cli.options import SD_ENVVAR, DeviceOpt, JsonOpt, PrecisionOpt, choice_value
from dfake_cli.cli.render import emit_json

Opt = typer.Option


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        ctx: typer.Context,
        data: Annotated[Optional[str], Opt(
            "--data", help="Prepared cache name in <workspace>/data (default ffpp); several, comma-separated "
            "(ffpp,sbi), train on their mixture, balanced per cache.")] = None,
        run: Annotated[Optional[str], Opt(
            "--run", "--run-name",
            help="Run name (default: <timestamp>-<backbone>). Under torchrun write --run-name: torchrun's own "
            "parser takes --run for an abbreviation of its --run-path.")] = None,
        backbone: Annotated[Optional[str], Opt("--backbone", help="timm backbone (default efficientnet_b4).")] = None,
        sd: Annotated[Optional[str], Opt(
            "--sd", envvar=SD_ENVVAR, show_envvar=True, help="SD-1.5 file or diffusers folder ('tiny': the demo "
            "SD); must match prepare. Required for a guided run.")] = None,
        epochs: Annotated[Optional[int], Opt("--epochs", help="Epochs (default 20; an epoch is balanced real/fake).")] = None,
        steps: Annotated[Optional[int], Opt("--steps", help="Total steps of the run (overrides --epochs).")] = None,
        batch_size: Annotated[Optional[int], Opt("--batch-size", help="Batch size per process (default 32).")] = None,
        lr: Annotated[Optional[float], Opt("--lr", help="AdamW learning rate (default 1e-5).")] = None,
        weight_decay: Annotated[Optional[float], Opt("--weight-decay", help="AdamW weight decay (default 0.01).")] = None,
        lambda_source: Annotated[Optional[float], Opt("--lambda-source", help="Source loss weight (default 0.7).")] = None,
        lambda_target: Annotated[Optional[float], Opt("--lambda-target", help="Target loss weight (default 1.0).")] = None,
        no_guide: Annotated[bool, Opt("--no-guide", help="Ablation: the plain detector baseline.")] = False,
        no_filter: Annotated[bool, Opt("--no-filter", help="Ablation: no feature filter.")] = False,
        no_weight: Annotated[bool, Opt("--no-weight", help="Ablation: no weight module.")] = False,
        random_sd: Annotated[bool, Opt("--random-sd", help="Ablation: SD UNet not pretrained.")] = False,
        zero_context: Annotated[bool, Opt(
            "--zero-context", help="Ablation: condition SD on zeros instead of the empty prompt's CLIP encoding.")] = False,
        weight_lr: Annotated[Optional[float], Opt(
            "--weight-lr", help="Learning rate of the weight nets W_s/W_t (default: --lr).")] = None,
        select: Annotated[Optional[str], Opt(
            "--select", help="What picks best/: auc (val frame AUC, default) | loss (val loss) | last.")] = None,
        flip: Annotated[Optional[float], Opt("--flip", help="Horizontal flip probability (default 0.5).")] = None,
        cutout: Annotated[Optional[float], Opt("--cutout", help="CutOut probability (default 0.5).")] = None,
        color_jitter: Annotated[Optional[float], Opt(
            "--color-jitter", help="Max relative brightness/contrast/saturation change (default 0: off).")] = None,
        gray: Annotated[Optional[float], Opt("--gray", help="Grayscale probability (default 0).")] = None,
        noise: Annotated[Optional[float], Opt("--noise", help="Gaussian pixel-noise probability (default 0).")] = None,
        backbone_weights: Annotated[Optional[str], Opt(
            "--backbone-weights", help="Local backbone weights, or 'none'.")] = None,
        precision: PrecisionOpt = None,
        device: DeviceOpt = None,
        seed: Annotated[Optional[int], Opt(
            "--seed", help="Seed of data order, augmentation and noise (default 3407).")] = None,
        resume: Annotated[bool, Opt("--resume", help="Continue --run (default: the latest run) from last/.")] = False,
        low_memory: Annotated[bool, Opt(
            "--low-memory", help="Activation checkpointing: less memory (batch 32 within 24 GB), same numerics.")] = False,
        compile_: Annotated[bool, Opt("--compile", help="torch.compile the training step's forward.")] = False,
        workers: Annotated[Optional[int], Opt(
            "--workers", help="Loader worker processes (0: none; default: CPU cores - 1).")] = None,
        val_max_faces: Annotated[Optional[int], Opt("--val-max-faces", help="Validate on at most N faces.")] = None,
        val_losses: Annotated[Optional[bool], Opt(
            "--val-losses/--no-val-losses",
            help="Also compute the loss terms on val (SD passes; default on). AUC is always computed.")] = None,
        log_every: Annotated[Optional[int], Opt("--log-every", help="Steps between metrics.csv rows (default 10).")] = None,
        save_every: Annotated[Optional[int], Opt("--save-every", help="Steps between last/ saves (default 500).")] = None,
        config: Annotated[Optional[str], Opt("--config", help="TOML file with defaults (keys = option names).")] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Train on a prepared cache; best/ = best validation frame AUC, last/ = for --resume."""
        from dfake_cli.api.train import run_train

        overrides = {
            "data": data, "run": run, "backbone": backbone, "sd": sd, "epochs": epochs, "steps": steps,
            "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "lambda_source": lambda_source,
            "lambda_target": lambda_target, "use_guide": False if no_guide else None,
            "use_filter": False if no_filter else None, "use_weight": False if no_weight else None,
            "random_sd": True if random_sd else None, "backbone_weights": backbone_weights,
            "zero_context": True if zero_context else None, "weight_lr": weight_lr, "select": select,
            "flip": flip, "cutout": cutout, "color_jitter": color_jitter, "gray": gray, "noise": noise,
            "precision": choice_value(precision), "device": device, "seed": seed, "resume": True if resume else None,
            "low_memory": True if low_memory else None, "compile": True if compile_ else None, "workers": workers,
            "val_max_faces": val_max_faces, "val_losses": val_losses, "log_every": log_every,
            "save_every": save_every,
        }
        result = run_train(overrides, config, state(ctx).workspace)
        if json_out and os.environ.get("RANK", "0") == "0":  # under torchrun, one summary
            emit_json(result.to_dict())
