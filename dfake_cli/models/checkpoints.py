"""Which checkpoint folder a `--checkpoint` argument means (shared by eval, detect and reconstruct).

A checkpoint folder holds config.json + model.safetensors (and detector.safetensors + detector.json once
exported). A run folder (runs/<run>/) holds best/ and last/ checkpoint folders; a run resolves to best/
(the validation-best) when present, else last/.
"""

from __future__ import annotations

from pathlib import Path

from dfake_cli.errors import InputError

# The files of a checkpoint folder (written by DiffusionFake.save_pretrained / export_detector, read by
# DiffusionFake.from_pretrained and Detector.from_pretrained): named here only.
MODEL_WEIGHTS = "model.safetensors"  # trainable tensors (detector.*, guide modules); the frozen SD is not saved
MODEL_CONFIG = "config.json"  # DiffusionFakeConfig
DETECTOR_WEIGHTS = "detector.safetensors"  # the detector-only export (encoder + head)
DETECTOR_CONFIG = "detector.json"
CHECKPOINT_FILES = (MODEL_WEIGHTS, DETECTOR_WEIGHTS)


def is_checkpoint_dir(path: Path) -> bool:
    return path.is_dir() and any((path / f).is_file() for f in CHECKPOINT_FILES)


def checkpoint_of_run(run_dir: Path) -> Path | None:
    """best/ if it is a checkpoint, else last/, else None."""
    from dfake_cli.io import recover_swap

    for sub in ("best", "last"):
        recover_swap(run_dir / sub)  # a save killed between its two renames (no atomic exchange here)
        if is_checkpoint_dir(run_dir / sub):
            return run_dir / sub
    return None


def resolve_checkpoint(workspace, arg: str | Path | None = None) -> Path | None:
    """The checkpoint folder for `arg` (a run name, a run dir or a checkpoint folder).

    With `arg` None: the workspace's latest run's checkpoint, or None when the workspace has no run (the caller
    decides what that means). A named thing that holds no checkpoint raises a one-line InputError.
    """
    if arg is None:
        for run in reversed(workspace.runs()):
            found = checkpoint_of_run(run)
            if found is not None:
                return found
        return None
    path = Path(arg).expanduser()
    if not path.exists() and "/" not in str(arg) and (workspace.runs_dir / str(arg)).exists():
        path = workspace.run_dir(str(arg))
    if not path.exists():
        raise InputError(f"--checkpoint {arg}: no such run in {workspace.runs_dir} and no such folder")
    if is_checkpoint_dir(path):
        return path
    found = checkpoint_of_run(path)
    if found is None:
        raise InputError(f"--checkpoint {arg}: {path} has no checkpoint (expected best/ or last/ with model.safetensors)")
    return found
