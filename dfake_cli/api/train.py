"""`dfake train`: resolve the run's configuration (defaults <- saved run <- TOML <- options) and train.

Also what `torchrun --nproc_per_node N -m dfake_cli train ...` runs in every process (DDP).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from dfake_cli.workspace import Workspace

if TYPE_CHECKING:
    from dfake_cli.train.trainer import TrainResult


def run_train(overrides: dict[str, Any], config_file: Optional[str | Path], workspace: Workspace) -> "TrainResult":
    """Train with `overrides` (TrainConfig field -> value; None = not given) over `config_file` (TOML).

    The config is validated (one-line InputError naming the option or TOML key) before any model loads.
    Returns the TrainResult; its `to_dict()` is the `--json` summary.
    """
    from dfake_cli.train.config import resolve_train_config
    from dfake_cli.train.trainer import train

    from dfake_cli.models.sd import sd_from_env

    config = resolve_train_config(overrides, config_file, workspace)
    config.sd = sd_from_env(config.sd)  # --sd / TOML / the resumed run's, else $DFAKE_SD
    return train(config, workspace)
