"""`dfake prepare`: raw dataset trees -> one HDF5 face cache per dataset in <workspace>/data/.

`dfake prepare ff++ ROOT` builds the training cache; the test-set commands (celebdf, dfdcp, ...) are
added to the same sub-app by `prepare_testsets.register(prepare_app)`. The work is `dfake_cli.api.prepare`.
"""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from dfake_cli.cli import prepare_sbi, prepare_testsets
from dfake_cli.cli.context import state
from dfake_cli.cli.options import Compression, FramesOpt, JsonOpt, MarginOpt, PrepareDeviceOpt, PrepareSdOpt, SizeOpt
from dfake_cli.cli.render import emit_json, print_prepare_summary
from dfake_cli.runtime import DEFAULT_MARGIN, DEFAULT_SIZE

prepare_app = typer.Typer(
    name="prepare",
    help="Extract aligned faces from a dataset tree into <workspace>/data/<name>.h5 (resumable).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _ffpp_command(
    ctx: typer.Context,
    root: Annotated[str, typer.Argument(help="The FaceForensics++ folder (with train/val/test.json).")],
    compression: Annotated[Compression, typer.Option("--compression", "-c", help="FF++ video quality.")] = Compression.c23,
    methods: Annotated[Optional[str], typer.Option(
        "--methods", help="Comma-separated methods, e.g. Deepfakes,FaceSwap. Default: the four classic "
        "methods (the paper's training set); FaceShifter only when named.", show_default=False)] = None,
    frames: FramesOpt = 32,
    size: SizeOpt = DEFAULT_SIZE,
    margin: MarginOpt = DEFAULT_MARGIN,
    sd: PrepareSdOpt = None,
    device: PrepareDeviceOpt = "cpu",
    workers: Annotated[int, typer.Option(
        "--workers", min=0, help="Videos processed in parallel (processes); 0 = one per CPU core. On cuda: decode "
        "processes feeding the GPU (0 or 1: one per core but one). "
        "Under torchrun: per rank.")] = 0,
    limit: Annotated[Optional[int], typer.Option(
        "--limit", help="At most N videos per method and split.", show_default=False)] = None,
    name: Annotated[str, typer.Option("--name", help="Cache name: <workspace>/data/<name>.h5.")] = "ffpp",
    json_out: JsonOpt = False,
    stage: Annotated[str, typer.Option(
        "--stage", hidden=True, help="auto | video | batched (decode processes feeding one model process; "
        "auto: batched on cuda). The same cache either way.")] = "auto",
) -> None:
    """FaceForensics++ training cache: faces, source/target pairs, SD-VAE latents and weight targets."""
    from dfake_cli.api.prepare import prepare_ffpp

    # Ctrl-C: finished videos are kept; cli.main prints the one-line resume hint.
    result = prepare_ffpp(
        root, state(ctx).workspace, compression=compression.value, methods=methods, frames=frames, size=size,
        margin=margin, sd=sd, device=device, workers=workers, limit=limit, name=name, stage=stage,
    )
    if os.environ.get("RANK", "0") != "0":  # under torchrun rank 0 reports, once
        return
    if json_out:
        emit_json(result.to_dict())
    else:
        print_prepare_summary(result, title=f"dfake prepare ff++ -> {result.cache_path.name}")


prepare_app.command("ff++")(_ffpp_command)
prepare_app.command("ffpp", hidden=True)(_ffpp_command)
prepare_testsets.register(prepare_app)
prepare_sbi.register(prepare_app)


def register(app: typer.Typer) -> None:
    app.add_typer(prepare_app, name="prepare")
