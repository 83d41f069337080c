"""`TrainConfig`: every training option in one serialisable dataclass.

Resolution order (later wins): the dataclass defaults (the paper's recipe, docs/decisions.md: AdamW, lr 1e-5, weight decay 0.01,
batch 32, 20 epochs, lambda_s 0.7, lambda_t 1.0), a TOML file (`--config`), then the flags actually given.
The run folder stores the resolved result as config.json so a run can be resumed and audited.
Keys in TOML are the field names below (e.g. `use_guide = false`, `batch_size = 16`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping, Optional

from dfake_cli.errors import InputError
from dfake_cli.runtime import PRECISIONS

# Fields a resumed run may not change: they shape the model, the data order or the optimiser state.
FIXED_ON_RESUME = (
    "data", "backbone", "sd", "use_guide", "use_filter", "use_weight", "random_sd", "zero_context", "weight_lr",
    "batch_size", "seed", "lambda_source", "lambda_target",
)
SELECTIONS = ("auc", "loss", "last")  # what picks best/: val frame AUC, val total loss, the latest validation
# What a run's config.json records besides the options: where the model's parts came from.
RECORDED = ("backbone_pretrained", "context_source", "sd_identity")


@dataclass
class TrainConfig:
    """All options of `dfake train`; `None` means "decide at run time" (run name, precision, device)."""

    data: str = "ffpp"                      # cache name in <workspace>/data/<data>.h5
    run: Optional[str] = None               # run folder name; default: <timestamp>-<backbone>
    backbone: str = "efficientnet_b4"       # any timm model name
    backbone_weights: Optional[str] = None  # a local .safetensors/.pth for the backbone; None = random init
    sd: Optional[str] = None                # "tiny" or a path to SD-1.5 weights; the api layer falls back to $DFAKE_SD
    random_sd: bool = False                 # ablation: SD UNet not pretrained
    zero_context: bool = False              # ablation: zeros instead of the empty prompt's CLIP encoding
    use_guide: bool = True                  # False: the plain detector baseline (--no-guide)
    use_filter: bool = True
    use_weight: bool = True
    lambda_source: float = 0.7
    lambda_target: float = 1.0
    epochs: int = 20
    steps: Optional[int] = None             # total steps of the run (overrides epochs when given)
    batch_size: int = 32
    lr: float = 1e-5
    weight_lr: Optional[float] = None       # learning rate of the weight nets W_s/W_t (None: lr)
    weight_decay: float = 0.01
    precision: Optional[str] = None         # bf16 | fp32; default bf16 on CUDA, fp32 on CPU
    device: Optional[str] = None            # cpu | cuda | cuda:N; default cuda when available
    seed: int = 3407
    resume: bool = False
    low_memory: bool = False                # activation checkpointing (guide, frozen UNet, backbone): same numerics
    # augmentation of the input face (probabilities). The paper's recipe: horizontal flip + CutOut; a flipped
    # input trains against the latents of its flipped source/target faces (stored in the cache).
    flip: float = 0.5
    cutout: float = 0.5                     # a zeroed square of a quarter of the side
    color_jitter: float = 0.0               # max relative brightness/contrast/saturation change (off: not in the paper)
    gray: float = 0.0                       # (the official code: 0.1; not in the paper)
    noise: float = 0.0                      # Gaussian pixel noise (the official code: 0.1; not in the paper)
    select: str = "auc"                     # what picks best/: auc (val frame AUC) | loss (val total loss) | last
    # bookkeeping
    log_every: int = 10                     # steps between metrics.csv rows
    save_every: int = 500                   # steps between last/ checkpoints (plus epoch ends, end of run)
    val_max_faces: Optional[int] = None     # evenly spaced subset of the val split (None: all)
    val_losses: bool = True                 # also compute the loss terms on val (costs SD passes)
    val_batch_size: Optional[int] = None    # default: batch_size
    prefetch: int = 4                       # batches prepared ahead per loader worker
    workers: Optional[int] = None           # loader worker processes (0: in the training process); default cores - 1
    compile: bool = False                   # torch.compile the training step's forward

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], origin: str = "config") -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"{origin}: unknown option {unknown[0]!r}; known options: {', '.join(sorted(known))}")
        return cls(**dict(values)).validated(origin)

    def validated(self, origin: str = "config") -> "TrainConfig":
        """Check types and ranges; raise a one-line InputError naming the option (flag spelling)."""
        for f in fields(self):
            value = getattr(self, f.name)
            setattr(self, f.name, _coerce(f, value, origin))

        def bad(key: str, why: str) -> InputError:
            return InputError(f"{origin}: {_flag(key, origin)} {why} (got {getattr(self, key)!r})")

        for key in ("epochs", "batch_size", "log_every", "save_every", "prefetch"):
            if getattr(self, key) < 1:
                raise bad(key, "must be at least 1")
        if self.workers is not None and self.workers < 0:
            raise bad("workers", "must be 0 (no worker processes) or more")
        for key in ("steps", "val_max_faces", "val_batch_size"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise bad(key, "must be at least 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise bad("lr", "must be a positive number such as 1e-5")
        if self.weight_lr is not None and not (math.isfinite(self.weight_lr) and self.weight_lr > 0):
            raise bad("weight_lr", "must be a positive number such as 1e-4")
        if self.select not in SELECTIONS:
            raise bad("select", f"must be one of {', '.join(SELECTIONS)}")
        for key in ("weight_decay", "lambda_source", "lambda_target"):
            if not (math.isfinite(getattr(self, key)) and getattr(self, key) >= 0):
                raise bad(key, "must be a number >= 0")
        for key in ("flip", "gray", "noise", "cutout", "color_jitter"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise bad(key, "must be between 0 and 1")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise bad("precision", f"must be one of {', '.join(PRECISIONS)}")
        if self.device is not None and not (self.device == "cpu" or self.device.startswith("cuda")):
            raise bad("device", "must be cpu, cuda or cuda:N")
        if self.backbone_weights is not None and self.backbone_weights.lower() == "none":
            self.backbone_weights = None
        if not self.backbone.strip():
            raise bad("backbone", "must name a timm model, e.g. efficientnet_b4")
        if self.sd is not None and not self.sd.strip():
            raise bad("sd", "must be 'tiny' or a path to Stable Diffusion 1.5 weights")
        return self

    @classmethod
    def resolve(
        cls,
        overrides: Mapping[str, Any] | None = None,
        config_file: str | Path | None = None,
        base: Mapping[str, Any] | None = None,
    ) -> "TrainConfig":
        """defaults <- `base` (a saved run config) <- TOML file <- flags given (`overrides`, None = not given)."""
        values: dict[str, Any] = dict(base or {})
        if config_file is not None:
            values.update(load_toml(config_file))
            cls.from_dict(values, origin=f"config file {config_file}")  # blame the file for its own values
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls.from_dict(values, origin="train options")

    def save(self, path: str | Path, recorded: Mapping[str, Any] | None = None) -> None:
        """Write the config (plus `recorded` facts of the run, RECORDED keys, which loading ignores)."""
        from dfake_cli.io import write_text_atomic

        extra = {k: v for k, v in (recorded or {}).items() if k in RECORDED}
        write_text_atomic(path, json.dumps({**self.to_dict(), **extra}, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        try:
            values = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read run config {path}: {exc}; the run folder is damaged") from None
        return cls.from_dict({k: v for k, v in values.items() if k not in RECORDED}, origin=str(path))


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config; accepts keys at the top level or under a [train] table."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"config file not found: {p}; pass --config with an existing .toml file")
    try:
        data = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"config file {p} is not valid TOML: {' '.join(str(exc).split())}") from None
    if isinstance(data.get("train"), dict):
        data = {**{k: v for k, v in data.items() if k != "train"}, **data["train"]}
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(f"config file {p}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")
    return data


def _flag(key: str, origin: str = "") -> str:
    """How the user spelled the option: a TOML key in a config file, a --flag on the command line."""
    if origin.startswith("config") or origin.endswith(".json"):
        return f"key {key!r}"
    return "--" + key.replace("_", "-")


def _coerce(f: dataclasses.Field, value: Any, origin: str) -> Any:
    """Accept ints for floats and nothing else surprising (TOML strings for numbers are an error)."""
    kind = str(f.type)
    if value is None:
        if "Optional" in kind:
            return None
        raise InputError(f"{origin}: {_flag(f.name, origin)} needs a value")
    want_bool = "bool" in kind
    want_int = "int" in kind and not want_bool
    want_float = "float" in kind
    if want_bool:
        if isinstance(value, bool):
            return value
        raise InputError(f"{origin}: {_flag(f.name, origin)} must be true or false (got {value!r})")
    if want_int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise InputError(f"{origin}: {_flag(f.name, origin)} must be a whole number (got {value!r})")
        return value
    if want_float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{origin}: {_flag(f.name, origin)} must be a number (got {value!r})")
        return float(value)
    if not isinstance(value, str):
        raise InputError(f"{origin}: {_flag(f.name, origin)} must be text (got {value!r})")
    return value


def resolve_train_config(overrides: Mapping[str, Any], config_file: str | Path | None, workspace) -> TrainConfig:
    """The config a `dfake train` invocation runs with.

    A fresh run: defaults <- TOML <- flags. With --resume the saved config.json of the run is the base
    (so a resumed run keeps its settings), then TOML, then flags; `--epochs` without `--steps` on resume
    extends the run by epochs instead of keeping the old step count.
    """
    toml = load_toml(config_file) if config_file is not None else {}
    given = {k: v for k, v in overrides.items() if v is not None}
    base: dict[str, Any] | None = None
    if given.get("resume", toml.get("resume", False)):
        run = given.get("run") or toml.get("run")
        if run is None:
            latest = workspace.latest_run()
            run = latest.name if latest is not None else None
        if run is not None:
            saved = workspace.run_dir(run) / "config.json"
            if saved.is_file():
                base = TrainConfig.load(saved).to_dict()
                base["run"] = run
                if "epochs" in {**toml, **given} and "steps" not in {**toml, **given}:
                    base["steps"] = None
    return TrainConfig.resolve(given, config_file, base=base)
