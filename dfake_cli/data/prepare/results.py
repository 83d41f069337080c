"""What a preparation reports: `PrepareResult`, the options a finished cache is compared on, the skip list."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from dfake_cli.data.datasets import Manifest, VideoItem
from dfake_cli.data.faces import FaceAlignConfig
from dfake_cli.io import atomic_path, printable


@dataclass
class PrepareResult:
    """What a preparation did; the CLI prints it, benchmarks read `timings` (seconds per stage)."""

    cache_path: Path
    skipped_csv: Optional[Path]
    videos: int = 0  # input videos selected
    prepared: int = 0  # input videos with rows in the cache
    frames: int = 0  # frames decoded from input videos
    faces: int = 0  # input rows (faces to classify) in the cache
    rows: int = 0  # all rows, references included
    no_face_frames: int = 0  # decoded input frames where the tracked face was missing
    dropped_frames: int = 0  # fake frames dropped because their source original had no face there
    skipped: dict = field(default_factory=dict)  # reason -> videos
    elapsed: float = 0.0
    timings: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    already_prepared: bool = False
    workers: int = 0  # worker processes of this rank (1: in-process)
    processed_units: int = 0  # units computed in this run (0 when everything was resumed)
    stage: str = ""  # "video" or "batched" (engine.run_units)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.elapsed if self.elapsed > 0 else 0.0

    def to_dict(self) -> dict:
        """JSON-able summary (`dfake prepare --json`): paths as strings, the rate rounded."""
        from dataclasses import asdict

        out = asdict(self)
        out["cache_path"] = str(self.cache_path)
        out["skipped_csv"] = str(self.skipped_csv) if self.skipped_csv else None
        out["frames_per_second"] = round(self.frames_per_second, 2)
        return out


def cache_options(manifest: Manifest, selected: list[VideoItem], frames: int, config: FaceAlignConfig, training: bool,
             sd_id: str, limit: Optional[int]) -> dict:
    ids = hashlib.sha1("\n".join(sorted(i.video_id for i in selected)).encode()).hexdigest()[:16]
    options = {
        "dataset": manifest.dataset, "frames": frames, "size": config.size, "margin": config.margin,
        "training": training, "sd_identity": sd_id, "limit": -1 if limit is None else int(limit),
        "align": config.to_dict(), "videos_sha": ids, "videos": len(selected),
    }
    return json.loads(json.dumps(options))  # as stored (tuples become lists), so comparisons are exact


def option_diff(old: dict, new: dict) -> list[str]:
    out = []
    for key in new:
        if key in ("videos",):
            continue
        if old.get(key) != new[key]:
            if key == "videos_sha":
                out.append(f"videos {old.get('videos')} -> {new['videos']} (a different selection)")
            elif key == "align":
                out.append("alignment settings differ")
            else:
                out.append(f"{key} {old.get(key)} -> {new[key]}")
    return out


def write_skipped_csv(path: Path, rows: list[tuple[str, str, str, str]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["video_id", "path", "reason", "detail"])
    for r in rows:  # file names that are not UTF-8 are written escaped (printable), never a crash
        w.writerow([printable(v) for v in list(r) + [""] * (4 - len(r))])
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())


def result_from_attrs(cache_path: Path, skipped_csv: Optional[Path], attrs: dict, elapsed: float) -> PrepareResult:
    summary = json.loads(attrs.get("summary", "{}"))
    return PrepareResult(
        cache_path=cache_path, skipped_csv=skipped_csv, videos=summary.get("videos", 0),
        prepared=summary.get("prepared", 0), frames=summary.get("frames", 0), faces=summary.get("faces", 0),
        rows=summary.get("rows", 0), no_face_frames=summary.get("no_face_frames", 0),
        skipped=summary.get("skipped", {}), dropped_frames=summary.get("dropped_frames", 0), elapsed=elapsed, timings={},
        notes=json.loads(attrs.get("notes", "[]")), already_prepared=True,
    )
