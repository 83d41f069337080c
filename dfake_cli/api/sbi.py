"""`prepare_sbi`: the api of `dfake prepare sbi` (self-blended training pairs from a dataset's real videos)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from dfake_cli.errors import InputError
from dfake_cli.runtime import DEFAULT_MARGIN, DEFAULT_SIZE

if TYPE_CHECKING:
    from dfake_cli.data.sbi.engine import SBIPrepareResult


def _floats(value: str | Sequence[float] | None, flag: str, count: int | None = None) -> tuple | None:
    """'0.5,1' -> (0.5, 1.0); one-line InputError naming the flag otherwise."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            out = tuple(float(v) for v in value.split(",") if v.strip())
        except ValueError:
            raise InputError(f"{flag} {value!r}: give numbers separated by commas, e.g. 0.5,1") from None
    else:
        out = tuple(float(v) for v in value)
    if count is not None and len(out) != count:
        raise InputError(f"{flag} {value!r}: give {count} numbers separated by a comma (MIN,MAX)")
    return out


FLAGS = {  # SBIConfig field -> the flag that sets it (errors name the flag)
    "variants": "--variants", "seed": "--seed", "target_augment_prob": "--target-aug", "blend_ratios":
    "--blend-ratios", "mask_blur": "--mask-blur", "max_shift": "--max-shift", "max_scale": "--max-scale",
    "elastic_alpha": "--elastic", "forehead": "--forehead", "downscale": "--downscale",
}


def sbi_config(variants: int = 2, seed: int = 0, target_aug: float | None = None, blend_ratios=None,
               mask_blur=None, max_shift: float | None = None, max_scale: float | None = None,
               elastic: float | None = None, forehead=None, downscale=None):
    """An SBIConfig from the command's options (None = the dataclass default), validated with flag names."""
    from dfake_cli.data.sbi import SBIConfig

    given = {
        "variants": variants, "seed": seed, "target_augment_prob": target_aug,
        "blend_ratios": _floats(blend_ratios, "--blend-ratios"), "mask_blur": _floats(mask_blur, "--mask-blur", 2),
        "max_shift": max_shift, "max_scale": max_scale, "elastic_alpha": elastic,
        "forehead": _floats(forehead, "--forehead", 2), "downscale": _floats(downscale, "--downscale", 2),
    }
    cfg = SBIConfig(**{k: v for k, v in given.items() if v is not None})
    try:
        return cfg.validated()
    except InputError as exc:
        field = str(exc).split(" ", 1)[0]
        raise InputError(str(exc).replace(field, FLAGS.get(field, field), 1)) from None


def prepare_sbi(
    root: str | Path, workspace, *, layout: Optional[str] = None, compression: str = "c23", variants: int = 2,
    seed: int = 0, target_aug: float | None = None, blend_ratios=None, mask_blur=None, max_shift: float | None = None,
    max_scale: float | None = None, elastic: float | None = None, forehead=None, downscale=None, frames: int = 32,
    size: int = DEFAULT_SIZE, margin: float = DEFAULT_MARGIN, sd: Optional[str] = None, device: str = "cpu",
    workers: int = 0, limit: Optional[int] = None, name: str = "sbi", preview: Optional[int] = None,
    preview_out: str | Path | None = None, progress: bool = True,
) -> "SBIPrepareResult":
    """Build `<workspace>/data/<name>.h5` from ROOT's real videos: reals + `variants` self-blended fakes per
    face, FF++'s training-cache schema. With `preview` N: only write the check grid and return.

    `sd` None falls back to $DFAKE_SD; a cache (not a preview) needs one of them, as `prepare ff++` does."""
    from dfake_cli.data.sbi.engine import prepare_sbi as engine
    from dfake_cli.data.sbi.sources import real_manifest
    from dfake_cli.models.sd import TINY_SPEC, require_sd, sd_from_env
    from dfake_cli.workspace import validate_name

    name = validate_name(name, "--name")
    if preview is not None and preview < 1:
        raise InputError(f"--preview {preview}: must be >= 1 (the number of faces in the grid)")
    cfg = sbi_config(variants, seed, target_aug, blend_ratios, mask_blur, max_shift, max_scale, elastic, forehead,
                     downscale)
    # the preview grid is pixels only: no latents, so any SD (the tiny one) serves
    sd = (sd_from_env(sd) or TINY_SPEC) if preview is not None else require_sd(sd, "the SBI cache's latents")
    manifest = real_manifest(root, layout, compression)
    workspace.ensure()
    return engine(
        manifest, workspace.cache_path(name), sbi=cfg, frames=frames, size=size, margin=margin, device=device,
        workers=workers, limit=limit, sd=sd, skipped_csv=workspace.skipped_path(name), progress=progress,
        preview=preview, preview_path=preview_out,
    )
