"""Detection metrics: AUC, EER, AP and accuracy, at frame level and at video level.

Conventions (also in docs/evaluation.md):
- label 1 = fake, 0 = real; a score is the probability of "fake".
- Accuracy counts score >= threshold (0.5) as fake; `acc_real` / `acc_fake` are computed from the labels
  (not from the order of the rows, which DeepfakeBench's per-class accuracy silently relied on).
- EER is the exact point where FPR and FNR cross on the ROC curve. The ROC is piecewise linear between its
  vertices (one vertex per distinct score; ties give a diagonal segment), so the crossing is found by linear
  interpolation on the segment where FPR - FNR changes sign: no grid, no root finder, no tolerance.
- Video level: the score of a video is the mean of its frame probabilities, grouped by the unique video id
  (`dataset/method/name`), never by a bare file name (DeepfakeBench merged the four FF++ `000_003` fakes).
- A set with one class only has no ROC: it is refused with an InputError instead of returning NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dfake_cli.errors import InputError

THRESHOLD = 0.5


def _validate(labels, scores, what: str = "predictions") -> tuple[np.ndarray, np.ndarray]:
    """Arrays of equal length, binary labels, finite scores, and both classes present."""
    y = np.asarray(labels).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        raise InputError(f"{what}: {y.size} labels but {s.size} scores; they must pair up one to one")
    if y.size == 0:
        raise InputError(f"{what}: no samples to evaluate; prepare the dataset with at least one real and one fake")
    if not np.isin(y, (0, 1)).all():
        raise InputError(f"{what}: labels must be 0 (real) or 1 (fake), found {sorted(set(np.unique(y).tolist()))}")
    if not np.isfinite(s).all():
        raise InputError(f"{what}: {int((~np.isfinite(s)).sum())} scores are NaN or infinite; check the checkpoint")
    y = y.astype(np.int64)
    n_fake = int(y.sum())
    if n_fake == 0 or n_fake == y.size:
        only = "fake" if n_fake else "real"
        raise InputError(
            f"{what}: only {only} samples ({y.size}); AUC and EER need both real and fake samples, "
            f"check the dataset's labels or evaluate it together with the other class"
        )
    return y, s


def roc(labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every vertex of the ROC curve: (fpr, tpr, thresholds), from (0, 0) to (1, 1).

    One vertex per distinct score (no vertex is dropped, so interpolation between vertices is exact).
    """
    y, s = _validate(labels, scores)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    # the last index of each run of equal scores: a threshold step takes the whole tie group at once
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]
    tps = np.cumsum(y_sorted)[last]
    fps = (last + 1) - tps
    tpr = np.r_[0.0, tps / y.sum()]
    fpr = np.r_[0.0, fps / (y.size - y.sum())]
    thresholds = np.r_[np.inf, s_sorted[last]]
    return fpr, tpr, thresholds


def auc(labels, scores) -> float:
    """Area under the ROC curve (trapezoids over the exact vertices: ties count one half)."""
    fpr, tpr, _ = roc(labels, scores)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def eer(labels, scores) -> float:
    """Equal error rate: the FPR (= FNR) where the two cross on the piecewise-linear ROC curve.

    d = FPR - FNR = FPR + TPR - 1 never decreases along the curve, goes from -1 at (0, 0) to +1 at (1, 1),
    so it crosses zero exactly once (or touches it at a vertex); interpolate on that segment.
    """
    fpr, tpr, _ = roc(labels, scores)
    d = fpr + tpr - 1.0
    i = int(np.argmax(d >= 0.0))  # first vertex at or past the crossing (exists: d[-1] = 1)
    if d[i] == 0.0:
        return float(fpr[i])
    t = -d[i - 1] / (d[i] - d[i - 1])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def average_precision(labels, scores) -> float:
    """AP as the step-wise sum of precision over recall increments (sklearn's definition)."""
    from sklearn.metrics import average_precision_score

    y, s = _validate(labels, scores)
    return float(average_precision_score(y, s))


def frame_metrics(labels, scores, threshold: float = THRESHOLD) -> dict:
    """AUC, EER, AP, accuracy (score >= threshold is fake), per-class accuracy and counts."""
    y, s = _validate(labels, scores)
    pred = s >= threshold
    real, fake = y == 0, y == 1
    return {
        "auc": auc(y, s),
        "eer": eer(y, s),
        "ap": average_precision(y, s),
        "acc": float((pred == fake).mean()),
        "acc_real": float((~pred[real]).mean()),
        "acc_fake": float(pred[fake].mean()),
        "n": int(y.size),
        "n_real": int(real.sum()),
        "n_fake": int(fake.sum()),
    }


def video_scores(predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per unique video id: mean frame score, label and frame count.

    `predictions` needs columns video_id, label, score. A video whose frames disagree on the label is
    a broken cache, refused rather than averaged.
    """
    missing = {"video_id", "label", "score"} - set(predictions.columns)
    if missing:
        raise InputError(f"predictions lack columns {sorted(missing)}; expected video_id, label, score")
    grouped = predictions.groupby("video_id", sort=True)
    out = grouped.agg(score=("score", "mean"), label=("label", "first"), n_frames=("score", "size"))
    mixed = grouped["label"].nunique() > 1
    if mixed.any():
        raise InputError(
            f"{int(mixed.sum())} videos have frames with both labels (e.g. {mixed[mixed].index[0]!r}); "
            f"the cache index is inconsistent, prepare the dataset again"
        )
    return out.reset_index()


def video_metrics(predictions: pd.DataFrame, threshold: float = THRESHOLD) -> dict:
    """Frame metrics computed on per-video mean scores (`n` counts videos)."""
    videos = video_scores(predictions)
    return frame_metrics(videos["label"].to_numpy(), videos["score"].to_numpy(), threshold)
