"""Validation during training: frame AUC on the val split, read through the training loader.

Rows are read in fixed chunks (`RowBatches`) by the same DataLoader machinery as training (worker
processes, pinned memory, the same normalisation), scores and loss sums stay on the device until the end
(one read back per validation, not one per batch), and with latents the loss terms use a fixed noise seed
so that validations of one run compare.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dfake_cli.train.loader import RowBatches, ToDevice, batches, item_seed
from dfake_cli.train.metrics import WindowStats
from dfake_cli.train.step import LOSS_KEYS, forward_losses


def val_rows(rows: np.ndarray, limit: int | None) -> np.ndarray:
    """An evenly spaced subset of at most `limit` rows (all of them without a limit)."""
    if limit is None or len(rows) <= limit:
        return rows
    return rows[np.linspace(0, len(rows) - 1, limit).round().astype(np.int64)]


@torch.no_grad()
def validate(model, cache, rows: np.ndarray, *, batch_size: int, device: torch.device, precision: str,
             scaling: float, with_losses: bool, seed: int, workers: int | None = None) -> dict[str, Any]:
    """Frame AUC on `rows` (and, with latents, the mean loss terms), plus the W statistics."""
    from dfake_cli.evaluation.metrics import auc as auc_of

    was_training = model.training
    model.eval()
    weights = getattr(model, "sd", None) is not None and model.config.use_weight
    stats = WindowStats(device, track_w=weights)
    gen = torch.Generator(device=device)
    gen.manual_seed(item_seed(seed, 0, 0, 0x7A1))
    logits_all, labels_all, n_loss = [], [], 0
    to_device = ToDevice(device, model.config.mean, model.config.std, model.config.image_size, seed)
    data = RowBatches(cache, rows, batch_size, latents=with_losses)
    from dfake_cli.train.step import autocast_for

    try:
        for batch in batches(data, to_device, workers=workers if len(data) > 1 else 0):
            if with_losses:
                out = forward_losses(model.losses, batch, precision, scaling, gen)
                logits = out["logits"]
                stats.update({k: v * len(batch) for k, v in out.items() if k in LOSS_KEYS}
                             | {"w_s": out["w_s"], "w_t": out["w_t"]}, 0)
                n_loss += len(batch)
            else:
                with autocast_for(precision, device):
                    logits, feat = model.detector(batch.x)
                    if weights:
                        stats.update({"w_s": model.weight_s(feat), "w_t": model.weight_t(feat)}, 0)
            logits_all.append(logits.float())
            labels_all.append(batch.labels)
    finally:
        model.train(was_training)
    result: dict[str, Any] = {"faces": 0, "auc": None}
    if not logits_all:
        return result
    p = torch.sigmoid(torch.cat(logits_all)).cpu().numpy()  # the one read back of the scores
    y = torch.cat(labels_all).cpu().numpy()
    result["faces"] = int(len(p))
    result["auc"] = float(auc_of(y, p)) if len(np.unique(y)) == 2 and np.isfinite(p).all() else None
    row = stats.row()
    if with_losses:
        result.update({k: row[k] * stats.steps / n_loss for k in LOSS_KEYS})
    else:
        eps = 1e-7
        result["bce"] = float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)))
    result.update({k: v for k, v in row.items() if k.startswith("w_")})
    return result
