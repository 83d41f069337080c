"""What a run records: metrics.csv / samples.csv, TensorBoard, and the on-device accumulators behind them.

`WindowStats` keeps the loss terms and the W statistics of the current --log-every window *on the device*
(a few tiny tensor ops per step) and is read back once per window, so the hot loop never waits for the GPU.
It also remembers the first step whose loss was not finite, so the NaN check can run at the same points
and still name the exact step.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import torch

from dfake_cli.io import atomic_path
from dfake_cli.train.step import LOSS_KEYS

W_KEYS = ("w_s_mean", "w_s_min", "w_s_max", "w_t_mean", "w_t_min", "w_t_max")
METRIC_COLUMNS = ("step", "epoch", "phase", *LOSS_KEYS, *W_KEYS, "auc", "lr", "images_per_s", "seconds")
SATURATED_LOW, SATURATED_HIGH = 0.01, 0.99

logger = logging.getLogger(__name__)


class WindowStats:
    """Sums of the loss terms, W_s/W_t sum/min/max and the first non-finite step, all on the device."""

    def __init__(self, device: torch.device, track_w: bool):
        self.device, self.track_w = device, track_w
        self.reset()

    def reset(self) -> None:
        d = self.device
        self.steps = 0
        self.loss = torch.zeros(len(LOSS_KEYS), device=d, dtype=torch.float64)
        self.w_sum = torch.zeros(2, device=d, dtype=torch.float64)
        self.w_min = torch.full((2,), float("inf"), device=d)
        self.w_max = torch.full((2,), float("-inf"), device=d)
        self.w_n = 0
        self.bad_step = torch.full((), -1, device=d, dtype=torch.int64)
        self.bad_terms = torch.zeros(len(LOSS_KEYS), device=d, dtype=torch.float64)

    def update(self, out: dict[str, torch.Tensor], step: int) -> None:
        """Add one step's outputs (no host synchronisation)."""
        terms = torch.stack([out[k].float() if k in out else torch.zeros((), device=self.device)
                             for k in LOSS_KEYS]).double()
        self.loss += terms
        first_bad = (self.bad_step < 0) & ~torch.isfinite(terms[0])
        self.bad_step = torch.where(first_bad, torch.full_like(self.bad_step, step), self.bad_step)
        self.bad_terms = torch.where(first_bad, terms, self.bad_terms)
        self.steps += 1
        if self.track_w:
            w = torch.stack([out["w_s"].float().reshape(-1), out["w_t"].float().reshape(-1)])
            self.w_sum += w.sum(dim=1).double()
            self.w_min = torch.minimum(self.w_min, w.min(dim=1).values)
            self.w_max = torch.maximum(self.w_max, w.max(dim=1).values)
            self.w_n += int(w.shape[1])

    def first_bad(self) -> tuple[int, dict[str, float]] | None:
        """(step, loss terms) of the first non-finite loss of the window, or None. Synchronises."""
        step = int(self.bad_step)
        if step < 0:
            return None
        return step, dict(zip(LOSS_KEYS, self.bad_terms.tolist()))

    def row(self) -> dict[str, float]:
        """Window means of the loss terms and the W columns (empty without weight nets). Synchronises."""
        out = {k: v / max(1, self.steps) for k, v in zip(LOSS_KEYS, self.loss.tolist())}
        if self.track_w and self.w_n:
            sums, mins, maxs = self.w_sum.tolist(), self.w_min.tolist(), self.w_max.tolist()
            for i, key in enumerate(("s", "t")):
                out.update({f"w_{key}_mean": sums[i] / self.w_n, f"w_{key}_min": mins[i], f"w_{key}_max": maxs[i]})
        return out


def saturated(row: dict[str, Any]) -> list[str]:
    """Which W ("W_s", "W_t") stayed below 0.01 or above 0.99 for every sample of a window row."""
    return [f"W_{k}" for k in ("s", "t") if f"w_{k}_max" in row
            and (row[f"w_{k}_max"] < SATURATED_LOW or row[f"w_{k}_min"] > SATURATED_HIGH)]


def warn_saturated(name: str, row: dict[str, Any], step: int, log_every: int) -> None:
    """One warning line per W per run: a W pinned at 0 or 1 for a whole logging window."""
    key = name[-1].lower()
    low, high = row[f"w_{key}_min"], row[f"w_{key}_max"]
    logger.warning("%s stayed saturated (between %.3g and %.3g) for the %d steps up to step %d: its sigmoid gets "
                   "almost no gradient (docs/training.md: Weight modules; try --weight-lr)", name, low, high,
                   log_every, step)


class CsvLog:
    """An append-only CSV with a fixed header; rows beyond a resumed step are dropped on open."""

    def __init__(self, path: Path, columns: tuple[str, ...], keep_until: int | None):
        self.path, self.columns = path, columns
        if keep_until is not None and path.is_file():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= keep_until]
            with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
                w.writeheader()
                w.writerows(rows)
        elif keep_until is None or not path.is_file():
            with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
                csv.DictWriter(f, fieldnames=columns).writeheader()
        self._f = open(path, "a", newline="")
        self._w = csv.DictWriter(self._f, fieldnames=columns, extrasaction="ignore")

    def write(self, row: dict[str, Any]) -> None:
        self._w.writerow({k: _fmt(row.get(k)) for k in self.columns})
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def _fmt(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard not installed: metrics.csv is the record
        return None
    return SummaryWriter(log_dir=str(run_dir))


class RunLogs:
    """metrics.csv, samples.csv and TensorBoard of the main process (None-safe on the other ranks)."""

    def __init__(self, run_dir: Path, resumed_at: int | None, enabled: bool):
        self.metrics = self.samples = self.tb = None
        if enabled:
            self.metrics = CsvLog(run_dir / "metrics.csv", METRIC_COLUMNS, resumed_at)
            self.samples = CsvLog(run_dir / "samples.csv", ("step", "epoch", "rows"), resumed_at)
            self.tb = tensorboard(run_dir)

    def sample(self, step: int, epoch: int, rows) -> None:
        if self.samples is not None:
            self.samples.write({"step": step, "epoch": epoch, "rows": " ".join(str(int(r)) for r in rows)})

    def metric(self, row: dict[str, Any], prefix: str, step: int) -> None:
        if self.metrics is None:
            return
        self.metrics.write(row)
        if self.tb is not None:
            for k, v in row.items():
                if isinstance(v, float) and k not in ("step", "epoch", "seconds"):
                    self.tb.add_scalar(f"{prefix}/{k}", v, step)

    def close(self) -> None:
        for log in (self.metrics, self.samples):
            if log is not None:
                log.close()
        if self.tb is not None:
            self.tb.close()
