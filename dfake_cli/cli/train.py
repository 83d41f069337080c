"""`dfake train`: train DiffusionFake (or the --no-guide baseline) on a prepared cache.

Flags override a --config TOML, which overrides the defaults (spec part 0). Also runs under
`torchrun --nproc_per_node N -m dfake_cli train ...` (DistributedDataParallel, one process per device);
there, name the run with `--run-name` (torchrun's argparse mistakes `--run` for its `--run-path`).
"""

from __future__ import annotations

from typing import Optional

import typer


def run_train(overrides: dict, config_file: Optional[str], workspace):
    """Resolve the config and train; what the command and the tests call. Returns a TrainResult."""
    from dfake_cli.train.config import resolve_train_config
    from dfake_cli.train.trainer import train

    config = resolve_train_config(overrides, config_file, workspace)
    return train(config, workspace)


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        ctx: typer.Context,
        data: Optional[str] = typer.Option(None, "--data", help="Prepared cache name in <workspace>/data (default ffpp)."),
        run: Optional[str] = typer.Option(
            None, "--run", "--run-name",
            help="Run name (default: <timestamp>-<backbone>). Under torchrun write --run-name: torchrun's own "
            "parser takes --run for an abbreviation of its --run-path."),
        backbone: Optional[str] = typer.Option(None, "--backbone", help="timm backbone (default efficientnet_b4)."),
        sd: Optional[str] = typer.Option(None, "--sd", help="'tiny' or a path to SD-1.5 weights; must match prepare."),
        epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs (default 20; an epoch is balanced real/fake)."),
        steps: Optional[int] = typer.Option(None, "--steps", help="Total steps of the run (overrides --epochs)."),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Batch size per process (default 32)."),
        lr: Optional[float] = typer.Option(None, "--lr", help="AdamW learning rate (default 1e-5)."),
        weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="AdamW weight decay (default 0.01)."),
        lambda_source: Optional[float] = typer.Option(None, "--lambda-source", help="Source loss weight (default 0.7)."),
        lambda_target: Optional[float] = typer.Option(None, "--lambda-target", help="Target loss weight (default 1.0)."),
        no_guide: bool = typer.Option(False, "--no-guide", help="Ablation: the plain detector baseline."),
        no_filter: bool = typer.Option(False, "--no-filter", help="Ablation: no feature filter."),
        no_weight: bool = typer.Option(False, "--no-weight", help="Ablation: no weight module."),
        random_sd: bool = typer.Option(False, "--random-sd", help="Ablation: SD UNet not pretrained."),
        backbone_weights: Optional[str] = typer.Option(None, "--backbone-weights", help="Local backbone weights, or 'none'."),
        precision: Optional[str] = typer.Option(None, "--precision", help="bf16 or fp32 (default bf16 on CUDA, fp32 on CPU)."),
        device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda or cuda:N (default: cuda if available)."),
        seed: Optional[int] = typer.Option(None, "--seed", help="Seed of data order, augmentation and noise (default 3407)."),
        resume: bool = typer.Option(False, "--resume", help="Continue --run (default: the latest run) from last/."),
        low_memory: bool = typer.Option(
            False, "--low-memory", help="Activation checkpointing: less memory (batch 32 within 24 GB), same numerics."),
        val_max_faces: Optional[int] = typer.Option(None, "--val-max-faces", help="Validate on at most N faces."),
        val_losses: Optional[bool] = typer.Option(
            None, "--val-losses/--no-val-losses",
            help="Also compute the loss terms on val (SD passes; default on). AUC is always computed."),
        log_every: Optional[int] = typer.Option(None, "--log-every", help="Steps between metrics.csv rows (default 10)."),
        save_every: Optional[int] = typer.Option(None, "--save-every", help="Steps between last/ saves (default 500)."),
        config: Optional[str] = typer.Option(None, "--config", help="TOML file with defaults (keys = option names)."),
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Train on a prepared cache; best/ = best validation frame AUC, last/ = for --resume."""
        import json
        import os

        from dfake_cli.cli.main import state
        from dfake_cli.train.trainer import summarise

        overrides = {
            "data": data, "run": run, "backbone": backbone, "sd": sd, "epochs": epochs, "steps": steps,
            "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "lambda_source": lambda_source,
            "lambda_target": lambda_target, "use_guide": False if no_guide else None,
            "use_filter": False if no_filter else None, "use_weight": False if no_weight else None,
            "random_sd": True if random_sd else None, "backbone_weights": backbone_weights,
            "precision": precision, "device": device, "seed": seed, "resume": True if resume else None,
            "low_memory": True if low_memory else None,
            "val_max_faces": val_max_faces, "val_losses": val_losses, "log_every": log_every,
            "save_every": save_every,
        }
        result = run_train(overrides, config, state(ctx).workspace)
        if json_out and os.environ.get("RANK", "0") == "0":  # under torchrun, one summary
            typer.echo(json.dumps(summarise(result), indent=2))
