"""`dfake prepare sbi ROOT`: a DiffusionFake training cache from real videos only (self-blended fakes).

The work is `dfake_cli.api.sbi.prepare_sbi`; the generator's parameters are `data.sbi.SBIConfig` (the
flags below set the ones a researcher varies; docs/training.md, "Self-blended images").
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from dfake_cli.cli.context import state
from dfake_cli.cli.options import Compression, FramesOpt, JsonOpt, MarginOpt, PrepareDeviceOpt, PrepareSdOpt, SizeOpt
from dfake_cli.cli.render import emit_json, print_prepare_summary
from dfake_cli.runtime import DEFAULT_MARGIN, DEFAULT_SIZE


class Layout(str, Enum):
    ffpp = "ffpp"
    celebdf = "celebdf"
    folder = "folder"


def _sbi_command(
    ctx: typer.Context,
    root: Annotated[Path, typer.Argument(help="An FF++ or Celeb-DF tree, or a folder of face videos/images "
                                              "(only the REAL ones are used).", show_default=False)],
    layout: Annotated[Optional[Layout], typer.Option(
        "--layout", help="How ROOT is laid out (default: detected).", show_default=False)] = None,
    compression: Annotated[Compression, typer.Option("--compression", "-c", help="FF++ video quality.")] = Compression.c23,
    variants: Annotated[int, typer.Option("--variants", help="Self-blended fakes per real face.")] = 2,
    seed: Annotated[int, typer.Option("--seed", help="Fixes every blend (with the video and frame).")] = 0,
    blend_ratios: Annotated[Optional[str], typer.Option(
        "--blend-ratios", help="Mask scales drawn from, comma-separated (default 0.25,0.5,0.75,1,1,1).",
        show_default=False)] = None,
    mask_blur: Annotated[Optional[str], typer.Option(
        "--mask-blur", help="MIN,MAX Gaussian sigma of the mask edge, px at 256 (default 1.5,6).",
        show_default=False)] = None,
    forehead: Annotated[Optional[str], typer.Option(
        "--forehead", help="MIN,MAX lift of the brows, in eye distances (mask height) (default 0,0.4).",
        show_default=False)] = None,
    downscale: Annotated[Optional[str], typer.Option(
        "--downscale", help="MIN,MAX resample factor of the quality change (default 0.25,0.5).",
        show_default=False)] = None,
    max_shift: Annotated[Optional[float], typer.Option(
        "--max-shift", help="Max shift of source and mask, fraction of the crop (default 0.03).",
        show_default=False)] = None,
    max_scale: Annotated[Optional[float], typer.Option(
        "--max-scale", help="Max relative scale change of source and mask (default 0.05).", show_default=False)] = None,
    elastic: Annotated[Optional[float], typer.Option(
        "--elastic", help="Elastic warp strength of the mask outline, px at 256 (default 50).",
        show_default=False)] = None,
    target_aug: Annotated[Optional[float], typer.Option(
        "--target-aug", help="Chance that the target copy (not the source) takes the colour/quality change "
        "[default: 0.5].", show_default=False)] = None,
    frames: FramesOpt = 32,
    size: SizeOpt = DEFAULT_SIZE,
    margin: MarginOpt = DEFAULT_MARGIN,
    sd: PrepareSdOpt = None,
    device: PrepareDeviceOpt = "cpu",
    workers: Annotated[int, typer.Option(
        "--workers", min=0, help="Videos detected in parallel (processes); 0 = one per CPU core (1 on cuda).")] = 0,
    limit: Annotated[Optional[int], typer.Option(
        "--limit", min=1, help="At most N videos per split.", show_default=False)] = None,
    name: Annotated[str, typer.Option("--name", help="Cache name: <workspace>/data/<name>.h5.")] = "sbi",
    preview: Annotated[Optional[int], typer.Option(
        "--preview", min=1, help="Only write a PNG grid of N blends (target | source | mask | blended) and stop; "
        "the detected faces are kept for the real run.", show_default=False)] = None,
    preview_out: Annotated[Optional[Path], typer.Option(
        "--preview-out", help="Where the grid goes (default <workspace>/data/<name>.preview.png).",
        show_default=False)] = None,
    json_out: JsonOpt = False,
) -> None:
    """Self-blended training cache: reals + fakes blended from each real face, with source/target pairs."""
    from dfake_cli.api.sbi import prepare_sbi
    from dfake_cli.console import console

    result = prepare_sbi(
        root, state(ctx).workspace, layout=layout.value if layout else None, compression=compression.value,
        variants=variants, seed=seed, target_aug=target_aug, blend_ratios=blend_ratios, mask_blur=mask_blur,
        max_shift=max_shift, max_scale=max_scale, elastic=elastic, forehead=forehead, downscale=downscale,
        frames=frames, size=size, margin=margin, sd=sd, device=device, workers=workers, limit=limit, name=name,
        preview=preview, preview_out=preview_out,
    )
    if json_out:
        emit_json(result.to_dict())
    elif result.preview is not None:
        console.print(f"preview: {result.preview} (target | source | mask | blended); rerun without --preview "
                      "to build the cache")
    else:
        print_prepare_summary(result, title=f"dfake prepare sbi -> {result.cache_path.name}")


def register(prepare_app: typer.Typer) -> None:
    prepare_app.command("sbi")(_sbi_command)
