"""`SBIConfig`: every parameter of the self-blended image generator, in one place.

Self-blended images (Shiohara & Yamasaki, CVPR 2022) turn one real face into a pseudo-fake: a copy of the
face (the *source*) is changed in colour and quality, shifted a little, and blended back into the face (the
*target*) under a soft face-shaped mask. The seam, the colour mismatch and the resampling are the generic
traces of face swapping, without any identity change. Defaults follow the published recipe where it is
stated and are otherwise chosen to look plausible at 256 px (docs/training.md, "Self-blended images").

Sizes in pixels are given for a 256 px face and scaled with the crop size, so the same config gives the
same-looking blends at 128 px.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from dfake_cli.errors import InputError


@dataclass(frozen=True)
class SBIConfig:
    """How self-blended fakes are made (one instance per cache; stored in its attrs as JSON)."""

    variants: int = 2  # self-blended fakes per real face
    seed: int = 0  # with the face's video id and frame, fixes every random choice: reruns are identical
    # -- source-target augmentation: applied to ONE copy; this is the chance it is the target's
    target_augment_prob: float = 0.5
    rgb_shift_prob: float = 0.3
    rgb_shift: float = 20.0  # max shift per colour channel, grey levels
    hsv_prob: float = 0.3
    hue_shift: float = 10.0  # max hue rotation, degrees
    saturation: float = 0.3  # max relative saturation change
    value: float = 0.2  # max relative brightness (HSV value) change
    brightness: float = 0.1  # max brightness offset, as a fraction of 255 (always applied)
    contrast: float = 0.1  # max relative contrast change (always applied)
    downscale_prob: float = 0.5  # else sharpen
    downscale: tuple = (0.25, 0.5)  # resample factor range of the downscale-upscale (lower = blurrier)
    sharpen: tuple = (0.2, 0.5)  # unsharp-mask amount range
    # -- geometry of the source and its mask
    max_shift: float = 0.03  # max translation, fraction of the crop size
    max_scale: float = 0.05  # max relative scale change
    elastic_alpha: float = 50.0  # elastic warp strength of the mask outline, px at 256
    elastic_sigma: float = 7.0  # smoothness of that warp, px at 256
    # -- the mask
    forehead: tuple = (0.0, 0.4)  # eyebrows lifted by this fraction of the eye distance (hull covers forehead)
    mask_blur: tuple = (1.5, 6.0)  # Gaussian sigma range of the two mask blurs, px at 256
    blend_ratios: tuple = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)  # mask scale, drawn uniformly from this list

    def __post_init__(self) -> None:
        for name in ("downscale", "sharpen", "forehead", "mask_blur", "blend_ratios"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))

    def validated(self) -> "SBIConfig":
        """One-line InputError naming the field and the accepted range; returns self."""
        if self.variants < 1:
            raise InputError(f"variants {self.variants}: must be >= 1")
        for name in ("target_augment_prob", "rgb_shift_prob", "hsv_prob", "downscale_prob"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise InputError(f"{name} {v}: a probability, must be in [0, 1]")
        for name in ("downscale", "sharpen", "forehead", "mask_blur"):
            lo_hi = getattr(self, name)
            if len(lo_hi) != 2 or lo_hi[0] > lo_hi[1] or lo_hi[0] < 0:
                raise InputError(f"{name} {lo_hi}: give MIN,MAX with 0 <= MIN <= MAX")
        if not 0 < self.downscale[0] <= self.downscale[1] <= 1:
            raise InputError(f"downscale {self.downscale}: factors must be in (0, 1]")
        if not self.blend_ratios or not all(0 < r <= 1 for r in self.blend_ratios):
            raise InputError(f"blend_ratios {self.blend_ratios}: give values in (0, 1], e.g. 0.5,1")
        for name in ("rgb_shift", "hue_shift", "saturation", "value", "brightness", "contrast", "max_shift",
                     "max_scale", "elastic_alpha"):
            if getattr(self, name) < 0:
                raise InputError(f"{name} {getattr(self, name)}: must be >= 0")
        if self.elastic_sigma <= 0:
            raise InputError(f"elastic_sigma {self.elastic_sigma}: must be > 0")
        return self

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))  # tuples as lists: what the cache attrs store

    @classmethod
    def from_dict(cls, data: dict) -> "SBIConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
