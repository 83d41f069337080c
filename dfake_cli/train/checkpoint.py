"""Trainer state on disk without pickle: tensors in safetensors, everything else in JSON.

run/last/ = the model (its own save_pretrained) + trainer_state.safetensors (optimizer moments, RNG
states) + trainer_state.json (step, epoch, position, optimizer hyper-parameters, python/numpy RNG
scalars, best-so-far). Both folders are replaced atomically, so an interrupted save leaves the
previous checkpoint whole.
"""

from __future__ import annotations

import copy
import json
import random
import threading
from dataclasses import dataclass
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


def optimizer_to_flat(optimizer: torch.optim.Optimizer, to_host=None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state_dict into tensors (`optim.<param>.<key>`) and JSON-able scalars.

    `to_host(tensor)` copies a tensor off the device (default: a blocking `.cpu()`)."""
    to_host = to_host or (lambda t: t.detach().cpu().contiguous())
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entry in sd["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{key}"] = to_host(value)
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


@dataclass
class Snapshot:
    """Everything a checkpoint folder holds, copied off the live model at one step (host memory)."""

    model: Any                                   # for its config and save_pretrained(tensors=...)
    tensors: dict[str, torch.Tensor]             # the model's trainable_state_dict, copied
    optimizer: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None
    rng: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None
    state: dict[str, Any] | None = None
    ready: Any = None                            # a CUDA event the copies complete at (None: complete)

    def wait(self) -> None:
        if self.ready is not None:
            self.ready.synchronize()


def _host_copy(t: torch.Tensor) -> torch.Tensor:
    """A host copy that later training steps cannot change: pinned + non-blocking from a GPU, a clone on CPU."""
    t = t.detach().contiguous()
    if t.device.type == "cuda":
        out = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
        return out.copy_(t, non_blocking=True)
    return t.clone()


def snapshot(model, optimizer: torch.optim.Optimizer | None = None, state: dict[str, Any] | None = None) -> Snapshot:
    """Copy the state to save now; writing it (`write_snapshot`) may then happen in another thread while
    training continues. On CUDA the copies are queued on the current stream and `ready` marks their end."""
    tensors = {k: _host_copy(v) for k, v in model.trainable_state_dict().items()}
    opt = None
    if optimizer is not None:
        opt_t, opt_meta = optimizer_to_flat(optimizer, _host_copy)
        opt = (opt_t, copy.deepcopy(opt_meta))
    ready = None
    if any(v.is_pinned() for v in tensors.values()) or (opt and any(v.is_pinned() for v in opt[0].values())):
        ready = torch.cuda.Event()
        ready.record()
    return Snapshot(model, tensors, opt, rng_to_flat() if optimizer is not None else None,
                    copy.deepcopy(state) if state is not None else None, ready)


def write_snapshot(snap: Snapshot, dest: Path) -> Path:
    """Write a snapshot to `dest` atomically (the previous folder stays whole until the rename)."""
    snap.wait()
    with atomic_path(dest) as tmp:
        tmp.mkdir(parents=True)
        snap.model.save_pretrained(tmp, tensors=snap.tensors)
        if snap.optimizer is not None:
            opt_t, opt_meta = snap.optimizer
            rng_t, rng_meta = snap.rng
            save_file({**opt_t, **rng_t}, str(tmp / STATE_TENSORS))
            payload = {
                "format": STATE_FORMAT, **(snap.state or {}), "optimizer": opt_meta, "rng": rng_meta,
                "scaler": None,  # no fp16 is offered (bf16 needs no loss scaling)
            }
            (tmp / STATE_JSON).write_text(json.dumps(payload, indent=2) + "\n")
    return dest


def save_checkpoint(model, dest: Path, optimizer: torch.optim.Optimizer | None = None,
                    state: dict[str, Any] | None = None) -> Path:
    """Write the model (and, with `optimizer`/`state`, the trainer state) to `dest` atomically, now."""
    return write_snapshot(snapshot(model, optimizer, state), dest)


class BackgroundWriter:
    """Writes snapshots to disk in one background thread, so a multi-GB save does not stall training.

    One write at a time: `submit` first waits for the previous write (bounding host memory to one
    snapshot) and re-raises its error, if any; `wait()` does the same at the end of training or before
    anything that must see the files (a failing run waits, so its last good checkpoint is complete).
    """

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, snap: Snapshot, dest: Path) -> None:
        self.wait()

        def work() -> None:
            try:
                write_snapshot(snap, dest)
            except BaseException as exc:  # raised in the training thread by wait()
                self._error = exc

        self._thread = threading.Thread(target=work, name="dfake-checkpoint", daemon=False)
        self._thread.start()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            err, self._error = self._error, None
            raise err


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
