"""Trainer state on disk without pickle: tensors in safetensors, everything else in JSON.

run/last/ = the model (its own save_pretrained) + trainer_state.safetensors (optimizer moments, RNG
states) + trainer_state.json (step, epoch, position, optimizer hyper-parameters, python/numpy RNG
scalars, best-so-far). Both folders are replaced atomically, so an interrupted save leaves the
previous checkpoint whole.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from dfake_cli.errors import InputError
from dfake_cli.io import atomic_path

STATE_TENSORS = "trainer_state.safetensors"
STATE_JSON = "trainer_state.json"
STATE_FORMAT = "dfake-trainer-state-v1"


def optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state_dict into tensors (`optim.<param>.<key>`) and JSON-able scalars."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entry in sd["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_flat(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if not name.startswith("optim."):
            continue
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = value
    for pid, entry in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(entry)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def rng_to_flat() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """torch (CPU and CUDA), numpy and python RNG states."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["rng.numpy.keys"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, internal, gauss_next = random.getstate()
    meta = {
        "numpy": {"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
    }
    return tensors, meta


def rng_from_flat(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    if cuda and torch.cuda.is_available():
        for i, key in enumerate(cuda[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(tensors[key], i)
    n = meta["numpy"]
    keys = tensors["rng.numpy.keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = meta["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


def save_checkpoint(model, dest: Path, optimizer: torch.optim.Optimizer | None = None,
                    state: dict[str, Any] | None = None) -> Path:
    """Write the model (and, with `optimizer`/`state`, the trainer state) to `dest` atomically."""
    with atomic_path(dest) as tmp:
        tmp.mkdir(parents=True)
        model.save_pretrained(tmp)
        if optimizer is not None:
            opt_t, opt_meta = optimizer_to_flat(optimizer)
            rng_t, rng_meta = rng_to_flat()
            save_file({**opt_t, **rng_t}, str(tmp / STATE_TENSORS))
            payload = {
                "format": STATE_FORMAT, **(state or {}), "optimizer": opt_meta, "rng": rng_meta,
                "scaler": None,  # no fp16 is offered (bf16 needs no loss scaling)
            }
            (tmp / STATE_JSON).write_text(json.dumps(payload, indent=2) + "\n")
    return dest


def read_state(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The trainer state of a last/ folder; a one-line InputError if it is missing or damaged."""
    tpath, jpath = folder / STATE_TENSORS, folder / STATE_JSON
    if not (tpath.is_file() and jpath.is_file()):
        raise InputError(f"{folder} has no trainer state ({STATE_JSON}); it cannot be resumed, start a new --run")
    try:
        meta = json.loads(jpath.read_text())
        tensors = load_file(str(tpath))
    except Exception as exc:  # a damaged file: name it
        raise InputError(f"cannot read the trainer state in {folder}: {' '.join(str(exc).split())}") from None
    if meta.get("format") != STATE_FORMAT:
        raise InputError(f"{jpath}: unknown trainer state format {meta.get('format')!r}")
    return tensors, meta
