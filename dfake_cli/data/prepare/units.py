"""Planning: which videos to prepare, and the units of work (one shard each) they become.

Test caches: one unit per selected video. Training caches (FF++ pairing) also need the frame count of
every original a fake names (scanned once, kept in `parts/counts.json`), so that a fake's frames and the
source frames it pairs with are known before any unit runs; originals come first, each one unit that
yields its own faces and the extra frames other fakes use as sources.

Units run in groups (`group_units`): an original followed by the fakes whose target it is, so that one
worker decodes the original once and lends its frames to those fakes' target warps (worker.py). Groups
only order the work: every unit still writes its own shard, and the cache is assembled in `units` order.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from dfake_cli.data.datasets import Manifest, VideoItem
from dfake_cli.errors import InputError
from dfake_cli.io import atomic_path


@dataclass
class Unit:
    """One shard's worth of work. `indices` None: let the unit choose evenly spaced frames itself."""

    item: VideoItem
    is_input: bool
    indices: Optional[list[int]] = None
    source_indices: list[int] = field(default_factory=list)  # extra frames needed as source faces
    target_path: Optional[Path] = None  # fakes (training): original T, warped with the fake's matrices
    target_method: str = "youtube"  # the method column of those target rows (T's own)
    source_count: int = 0  # fakes (training): frames of original S (to clamp the paired frame)
    shard: Optional[Path] = None

    def key(self, content: str) -> str:
        spec = {
            "content": content, "item": self.item.to_dict(), "input": self.is_input, "indices": self.indices,
            "source_indices": self.source_indices, "target": str(self.target_path), "sc": self.source_count,
        }
        return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:24]


def select_items(items: list[VideoItem], limit: Optional[int]) -> list[VideoItem]:
    """At most `limit` videos per (method, split), in manifest order (reals count as one method)."""
    if limit is None:
        return list(items)
    if limit < 1:
        raise InputError(f"--limit {limit}: must be >= 1")
    taken: Counter = Counter()
    out = []
    for item in items:
        key = (item.method, item.split)
        if taken[key] < limit:
            taken[key] += 1
            out.append(item)
    return out


def _count_frames(paths: list[Path], counts: dict[str, int | str], tick: Callable[[], None]) -> None:
    from dfake_cli.data.video import VideoReadError, frame_count

    for p in paths:
        key = str(p)
        if key not in counts:
            try:
                counts[key] = frame_count(p)
            except VideoReadError as exc:
                counts[key] = str(exc) or "unreadable"
        tick()


def _read_counts(path: Path) -> dict[str, int | str]:
    """Frame counts of an earlier run; a damaged counts.json is only a cache of them: rescan."""
    try:
        counts = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    if not isinstance(counts, dict):
        return {}
    return {str(k): v for k, v in counts.items() if isinstance(v, (int, str)) and not isinstance(v, bool)}


def plan_units(
    manifest: Manifest, selected: list[VideoItem], frames: int, training: bool, parts: Path,
    skipped: list[tuple[str, str, str, str]], progress_cb: Callable[[], None] | None = None,
) -> tuple[list[Unit], dict]:
    """Units to run, originals first. Training caches need frame counts (scanned once, kept in parts/)."""
    from dfake_cli.data.video import evenly_spaced

    if not training:
        return [Unit(item, True) for item in selected], {}

    by_id = manifest.by_id()
    counts_path = parts / "counts.json"
    counts = _read_counts(counts_path)
    needed: dict[str, Path] = {}
    for item in selected:
        if item.kind != "video":
            raise InputError(f"{item.video_id}: training caches need videos, got kind {item.kind!r}")
        needed[str(item.path)] = item.path
        if item.label == 1:
            for ref in (item.target, item.source):
                if ref in by_id:
                    needed[str(by_id[ref].path)] = by_id[ref].path
    t0 = time.perf_counter()
    _count_frames(list(needed.values()), counts, progress_cb or (lambda: None))
    with atomic_path(counts_path) as tmp:
        tmp.write_text(json.dumps(counts))
    scan = time.perf_counter() - t0

    def bad(item: VideoItem) -> Optional[str]:
        c = counts.get(str(item.path))
        if isinstance(c, int) and c > 0:
            return None
        return "video has no frames" if c == 0 else str(c)

    originals: dict[str, Unit] = {}
    fakes: list[Unit] = []
    for item in selected:
        problem = bad(item)
        if problem is not None:
            reason = "no frames" if "no frames" in problem else "unreadable video"
            skipped.append((item.video_id, str(item.path), reason, problem))
            continue
        own = evenly_spaced(int(counts[str(item.path)]), frames).tolist()
        if item.label == 0:
            unit = originals.setdefault(item.video_id, Unit(item, True))
            unit.is_input = True
            unit.indices = own
            continue
        target, source = by_id.get(item.target or ""), by_id.get(item.source or "")
        if target is None or source is None:
            missing = item.target if target is None else item.source
            skipped.append((item.video_id, str(item.path), "original missing", f"{missing} is not in the tree"))
            continue
        broken = [o for o in (target, source) if bad(o) is not None]
        if broken:
            skipped.append((item.video_id, str(item.path), "original unreadable",
                            f"{broken[0].path}: {bad(broken[0])}"))
            continue
        f_count, t_count = int(counts[str(item.path)]), int(counts[str(target.path)])
        if f_count > t_count:  # its frames past the target's end have no pixel-aligned target face
            skipped.append((item.video_id, str(item.path), "longer than its target",
                            f"{f_count} frames, target {target.video_id} has {t_count}"))
            continue
        s_count = int(counts[str(source.path)])
        src_unit = originals.setdefault(source.video_id, Unit(source, False, indices=[]))
        src_unit.source_indices = sorted(set(src_unit.source_indices) | {min(i, s_count - 1) for i in own})
        fakes.append(Unit(item, True, indices=own, target_path=target.path, target_method=target.method,
                          source_count=s_count))
    for unit in originals.values():
        if not unit.is_input:
            unit.indices = []
    units = list(originals.values()) + fakes
    return units, {"scan": scan}


def group_units(units: list[Unit]) -> list[list[Unit]]:
    """Each original followed by the fakes it is the target of (run by one worker, in that order); a fake
    whose target is no unit here runs alone. Test caches: one unit per group."""
    groups = [[u] for u in units if u.target_path is None]
    lead: dict[str, list[Unit]] = {}
    for g in groups:
        lead.setdefault(g[0].item.video_id, g)
    alone: list[list[Unit]] = []
    for u in units:
        if u.target_path is not None:
            group = lead.get(u.item.target or "")
            if group is None:
                alone.append([u])
            else:
                group.append(u)
    return groups + alone
