"""FF++ pairing at assembly: which shard rows are kept, where they land, their source/target rows; weight scores.

A fake's input row is paired with its target (a row of the same shard, `link`) and with the source
original's own face at `source_frame` (found across shards by (video_id, frame)). Fake frames whose source
has no face there are dropped with their target; source-only rows nobody pairs with are not stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dfake_cli.data.cache.reader import _read_rows
from dfake_cli.data.cache.schema import ROLE_INPUT, ROLE_SOURCE
from dfake_cli.data.cache.shards import read_shard


@dataclass
class AssembleStats:
    rows: int = 0
    inputs: int = 0
    dropped_frames: int = 0  # fake frames without a source face
    skipped: list[tuple[str, str, str, str]] = field(default_factory=list)  # video_id, path, reason, detail


@dataclass
class _Plan:
    """Which shard rows go where in the final file (computed from the small arrays only)."""

    keep: list[np.ndarray]  # per shard: bool mask of rows kept
    offsets: list[int]  # per shard: first final row
    source_row: list[np.ndarray]  # per shard: final source row of each kept row
    target_row: list[np.ndarray]
    n: int


def plan_rows(shards: list[Path], metas: list[dict], training: bool, stats: AssembleStats) -> _Plan:
    light = [read_shard(p, with_faces=False)[0] if m["status"] == "ok" else None for p, m in zip(shards, metas)]
    # Own-detection crops of originals, addressable as (video_id, frame): the source faces.
    lookup: dict[tuple[str, int], tuple[int, int]] = {}
    for s, (rows, meta) in enumerate(zip(light, metas)):
        if rows is None or meta.get("label") != 0:
            continue
        for r in range(len(rows)):
            if rows.role[r] in (ROLE_INPUT, ROLE_SOURCE) and rows.video_id[r] == meta["video_id"]:
                lookup.setdefault((rows.video_id[r], int(rows.frame_index[r])), (s, r))

    keep: list[np.ndarray] = []
    src_ref: list[np.ndarray] = []  # (shard, row) of the source, or (-1, -1)
    used_sources: set[tuple[int, int]] = set()
    for s, (rows, meta) in enumerate(zip(light, metas)):
        if rows is None:
            keep.append(np.zeros(0, bool))
            src_ref.append(np.zeros((0, 2), np.int64))
            continue
        n = len(rows)
        k = np.ones(n, bool)
        ref = np.full((n, 2), -1, np.int64)
        if training and meta.get("label") == 1 and meta.get("source_id"):
            for r in range(n):
                if rows.role[r] != ROLE_INPUT:
                    continue
                hit = lookup.get((meta["source_id"], int(rows.source_frame[r])))
                if hit is None:
                    k[r] = False
                    k[int(rows.link[r])] = False
                else:
                    ref[r] = hit
                    used_sources.add(hit)
            dropped = int(sum(1 for r in range(n) if rows.role[r] == ROLE_INPUT and not k[r]))
            stats.dropped_frames += dropped
            if not any(k[r] for r in range(n) if rows.role[r] == ROLE_INPUT):
                k[:] = False
                stats.skipped.append(
                    (meta["video_id"], meta.get("path", ""), "no source face",
                     f"no face of source {meta['source_id']} at the paired frames")
                )
        if rows.source_link is not None:  # sources inside the shard: kept, they are paired
            used_sources.update((s, int(r)) for r in rows.source_link if r >= 0)
        keep.append(k)
        src_ref.append(ref)
    # Source-only rows nobody pairs with are not worth storing.
    for s, (rows, meta) in enumerate(zip(light, metas)):
        if rows is None:
            continue
        for r in range(len(rows)):
            if rows.role[r] == ROLE_SOURCE and (s, r) not in used_sources:
                keep[s][r] = False

    offsets, final_index, n_total = [], [], 0
    for k in keep:
        offsets.append(n_total)
        fi = np.full(len(k), -1, np.int64)
        fi[k] = n_total + np.arange(int(k.sum()))
        final_index.append(fi)
        n_total += int(k.sum())

    source_row, target_row = [], []
    for s, (rows, meta) in enumerate(zip(light, metas)):
        k = keep[s]
        if rows is None or not k.any():
            source_row.append(np.zeros(0, np.int64))
            target_row.append(np.zeros(0, np.int64))
            continue
        fi = final_index[s]
        sr = np.full(len(k), -1, np.int64)
        tr = np.full(len(k), -1, np.int64)
        if training:
            for r in np.flatnonzero(k):
                if rows.role[r] != ROLE_INPUT:
                    continue
                if meta.get("label") == 1 and meta.get("source_id"):
                    ss, rr = src_ref[s][r]
                    sr[r] = final_index[ss][rr]
                    tr[r] = fi[int(rows.link[r])]
                elif rows.source_link is not None and rows.source_link[r] >= 0:
                    sr[r] = fi[int(rows.source_link[r])]
                    tr[r] = fi[int(rows.link[r])]
                else:
                    sr[r] = tr[r] = fi[r]
        source_row.append(sr[k])
        target_row.append(tr[k])
    return _Plan(keep, offsets, source_row, target_row, n_total)


def _cosine_rows(mean, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x = _read_rows(mean, a).reshape(len(a), -1).astype(np.float64)
    y = _read_rows(mean, b).reshape(len(b), -1).astype(np.float64)
    num = (x * y).sum(1)
    den = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)
    return np.where(den > 0, num / np.maximum(den, 1e-12), 1.0)


def write_scores(h, n: int, block: int = 512) -> None:
    """score = (cos(mean_input, mean_branch) + 1) / 2 on VAE latent means; 1 for reals; nan for references.

    The official code compares one posterior sample per image; the means make the targets deterministic.
    """
    idx = h["index"]
    src = idx["source_row"][()]
    tgt = idx["target_row"][()]
    role = idx["role"].asstr()[()] if n else np.zeros(0, dtype=object)
    score_s = np.full(n, np.nan, np.float32)
    score_t = np.full(n, np.nan, np.float32)
    is_input = np.array([r == ROLE_INPUT for r in role], dtype=bool)
    own = is_input & (src == np.arange(n)) & (tgt == np.arange(n))
    score_s[own] = 1.0
    score_t[own] = 1.0
    todo = np.flatnonzero(is_input & ~own & (src >= 0) & (tgt >= 0))
    if len(todo) and "latents" in h:
        mean = h["latents"]["mean"]
        for i in range(0, len(todo), block):
            rows = todo[i : i + block]
            score_s[rows] = ((_cosine_rows(mean, rows, src[rows]) + 1.0) / 2.0).astype(np.float32)
            score_t[rows] = ((_cosine_rows(mean, rows, tgt[rows]) + 1.0) / 2.0).astype(np.float32)
    idx.create_dataset("score_s", data=score_s)
    idx.create_dataset("score_t", data=score_t)
