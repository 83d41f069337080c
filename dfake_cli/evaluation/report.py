"""Writing an evaluation: report.json, predictions.csv, roc.png, and the Table-1-shaped screen table.

The report is plain data (built by `dfake_cli.api.evaluate.run_eval`); this module only renders it, so a report.json
read back later renders the same table.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from dfake_cli.io import atomic_path

PREDICTION_COLUMNS = ["dataset", "video_id", "frame_index", "label", "score"]

# The paper's Table 1 column order; datasets not listed here follow in the order they were evaluated.
TABLE1_ORDER = ["celebdf", "wdf", "dfdcp", "dfd", "diffswap"]


def write_json(path: Path, report: dict) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2, sort_keys=False, default=_jsonable) + "\n")
    return path


def _jsonable(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_predictions(path: Path, predictions: pd.DataFrame) -> Path:
    """One row per evaluated face: dataset, video_id, frame_index, label (1 = fake), score."""
    with atomic_path(path, suffix=".csv") as tmp:
        predictions[PREDICTION_COLUMNS].to_csv(tmp, index=False, float_format="%.6f")
    return path


def write_roc(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray, float]], title: str) -> Path:
    """All datasets' frame-level ROC curves on one plot; `curves[name] = (fpr, tpr, auc)`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5.0), dpi=120)
    for name, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, lw=1.6, label=f"{name} (AUC {100 * auc:.2f})")
    ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate (real called fake)",
           ylabel="true positive rate (fake called fake)", title=title)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def table_order(names: list[str]) -> list[str]:
    known = [n for n in TABLE1_ORDER if n in names]
    return known + [n for n in names if n not in known]


def _cell(metrics: dict | None) -> str:
    if not metrics:
        return "-"
    return f"{100 * metrics['auc']:.2f} / {100 * metrics['eer']:.2f}"


def table1(report: dict):
    """A rich Table shaped like the paper's Table 1: AUC / EER (%) per dataset, and their average."""
    from rich.table import Table

    datasets = report["datasets"]
    names = table_order(list(datasets))
    avg = report.get("average", {})
    ckpt = report["protocol"].get("checkpoint_name") or "detector"
    table = Table(title="Cross-dataset evaluation, AUC / EER (%)", caption=_caption(report))
    table.add_column("Checkpoint / level")
    for name in names:
        table.add_column(datasets[name].get("display_name", name), justify="center")
    table.add_column("Avg", justify="center", style="bold")
    for level in ("frame", "video"):
        row = [f"{ckpt} ({level})"] + [_cell(datasets[n].get(level)) for n in names]
        row.append(_cell(avg.get(level)))
        table.add_row(*row)
    return table


def _caption(report: dict) -> str:
    avg = report.get("average", {})
    used = avg.get("datasets") or []
    proto = report["protocol"]
    frames = proto.get("frames_per_video")
    parts = [f"Avg over {', '.join(used) if used else 'no dataset'}"]
    excluded = avg.get("excluded") or []
    if excluded:
        parts.append(f"(in-domain {', '.join(excluded)} not averaged)")
    parts.append(f"frames/video: {frames if frames else 'all cached'}")
    parts.append("video = mean of frame probabilities per video id; image-level sets show '-'")
    return "; ".join(parts)
