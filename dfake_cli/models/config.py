"""DiffusionFakeConfig: everything needed to rebuild a model, serialised as the checkpoint's config.json.

Kept free of torch/diffusers imports so the detector-only path and the CLI can read it cheaply.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from dfake_cli.errors import InputError
from dfake_cli.models.checkpoints import MODEL_CONFIG
from dfake_cli.runtime import DEFAULT_MARGIN, DEFAULT_SIZE

CONFIG_NAME = MODEL_CONFIG  # the checkpoint folder's config file (models/checkpoints.py names them all)
FORMAT = "dfake-diffusionfake-v1"


@dataclass
class DiffusionFakeConfig:
    """The model's architecture, SD identity, input normalisation, ablations and loss weights.

    `face_align` holds the face-alignment parameters of the cache the model was trained on (at least
    size and margin); detect/reconstruct align new faces with them so inputs match training.
    """

    backbone: str = "efficientnet_b4"
    image_size: int = DEFAULT_SIZE
    sd: str = "tiny"
    sd_identity: str = ""
    lambda_source: float = 0.7
    lambda_target: float = 1.0
    use_guide: bool = True
    use_filter: bool = True
    use_weight: bool = True
    random_sd: bool = False
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    filter_heads: int = 4
    weight_widths: tuple[int, ...] = (1024, 512, 256, 128)
    face_align: dict = field(default_factory=lambda: {"size": DEFAULT_SIZE, "margin": DEFAULT_MARGIN})
    # Activation checkpointing of guide, frozen UNet and backbone (`dfake train --low-memory`): recomputes
    # activations in backward instead of storing them. Same numerics, less memory, more time.
    gradient_checkpointing: bool = False
    # Provenance, recorded so a checkpoint and every report say what the model was built from.
    zero_context: bool = False       # ablation: condition the UNet on zeros instead of the empty prompt's CLIP encoding
    context_source: str = ""         # where the empty-prompt context came from (models/text.py CONTEXT_*)
    backbone_pretrained: bool = False  # the encoder started from local pretrained weights (else: random init)

    def __post_init__(self) -> None:
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        self.weight_widths = tuple(int(v) for v in self.weight_widths)
        if self.image_size < 32 or self.image_size % 32:
            raise InputError(f"image_size {self.image_size}: use a multiple of 32 (256 for SD-1.5)")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            raise InputError("mean/std: give three values each, std > 0")
        if self.lambda_source < 0 or self.lambda_target < 0:
            raise InputError("lambda_source/lambda_target must be >= 0")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"], d["weight_widths"] = list(self.mean), list(self.std), list(self.weight_widths)
        return {"format": FORMAT, **d}

    @classmethod
    def from_dict(cls, data: dict) -> "DiffusionFakeConfig":
        """Build from a JSON object; a value of the wrong type is one InputError naming the field."""
        if not isinstance(data, dict):
            raise InputError(f"expected a JSON object, got {type(data).__name__}")
        defaults = cls()
        out = {}
        for f in fields(cls):
            if f.name not in data:
                continue
            value, default = data[f.name], getattr(defaults, f.name)
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif isinstance(default, float):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            elif isinstance(default, str):  # sd is None for a run without the guide
                ok = isinstance(value, str) or (value is None and f.name != "backbone")
            elif isinstance(default, tuple):
                ok = isinstance(value, (list, tuple)) and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            elif isinstance(default, dict):
                ok = isinstance(value, dict)
            else:
                ok = True
            if not ok:
                raise InputError(f"field {f.name!r} is {value!r}; expected a {type(default).__name__} like {default!r}")
            out[f.name] = value
        return cls(**out)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "DiffusionFakeConfig":
        return cls.from_dict(json.loads(text))

    @classmethod
    def load(cls, folder: str | Path) -> "DiffusionFakeConfig":
        path = Path(folder) / CONFIG_NAME
        try:
            return cls.from_json(path.read_text())
        except FileNotFoundError as exc:
            raise InputError(f"{path} not found: not a dfake checkpoint folder") from exc
        except InputError as exc:
            raise InputError(f"{path}: not a valid dfake model config ({exc})") from None
        except (ValueError, TypeError, OSError) as exc:  # malformed JSON, undecodable bytes, ...
            detail = " ".join(str(exc).split())[:120]
            raise InputError(f"{path}: not a valid dfake model config ({detail})") from None
