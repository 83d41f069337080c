"""Celeb-DF v2 test set: the videos named in `List_of_testing_videos.txt`.

Layout (datasets.md b): `Celeb-real/id<celeb>_<clip>.mp4`, `YouTube-real/<5 digits>.mp4`,
`Celeb-synthesis/id<target>_id<source>_<clip>.mp4`, and the list whose lines read `<label> <subdir>/<file>`
with **1 = real, 0 = fake** (the opposite of our labels). The official list has 518 lines (178 real,
340 fake) and no newline after the last one. Folder spelling varies between copies (`Youtube-real`),
and SelfBlendedImages' copies add a `videos/` level; both are accepted.
"""

from __future__ import annotations

import re
from pathlib import Path

from dfake_cli.data.datasets import VideoItem, register_dataset
from dfake_cli.data.datasets._layout import OUTSIDE_ROOT, locate, manifest, skip
from dfake_cli.errors import InputError, require_dir

DATASET = "Celeb-DF"
LIST_NAME = "List_of_testing_videos.txt"
OFFICIAL_LINES = 518
_SUBDIRS = {"celeb-real": "Celeb-real", "youtube-real": "YouTube-real", "celeb-synthesis": "Celeb-synthesis"}
_FAKE_NAME = re.compile(r"^id(\d+)_id(\d+)_(\d+)$")


@register_dataset("celebdf")
def parse_celebdf(root: str | Path, list_file: str | Path | None = None, **_: object):
    """Manifest of the Celeb-DF v2 test videos; `list_file` overrides `<root>/List_of_testing_videos.txt`."""
    root = require_dir(root, "Celeb-DF root", "pass the folder holding Celeb-real/, YouTube-real/, Celeb-synthesis/")
    list_path = Path(list_file) if list_file else root / LIST_NAME
    if not list_path.is_file():
        raise InputError(
            f"Celeb-DF test list not found: {list_path}; it ships with Celeb-DF v2 as {LIST_NAME} "
            f"(pass --list FILE if it lives elsewhere)"
        )
    items: list[VideoItem] = []
    skipped: list[tuple[str, str]] = []
    seen: set[str] = set()
    entries = 0
    for lineno, raw in enumerate(list_path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        entries += 1
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or parts[0] not in ("0", "1"):
            skip(skipped, f"{list_path.name}:{lineno}", "malformed line",
                 f"{line[:60]!r}: expected '<1 real|0 fake> <subdir>/<file>.mp4'")
            continue
        listed_real = parts[0] == "1"
        rel = parts[1].strip().replace("\\", "/")
        subdir = rel.split("/", 1)[0]
        method = _SUBDIRS.get(subdir.lower())
        if method is None or "/" not in rel:
            skip(skipped, rel, "unknown folder", f"line {lineno}: {subdir!r}; expected Celeb-real, YouTube-real or Celeb-synthesis")
            continue
        if listed_real != (method != "Celeb-synthesis"):
            skip(skipped, rel, "label contradicts folder", f"line {lineno}: label {parts[0]} in {subdir} (the list uses 1 = real, 0 = fake)")
            continue
        stem = Path(rel).stem
        video_id = f"{DATASET}/{method}/{stem}"
        if video_id in seen:
            skip(skipped, rel, "listed twice", f"line {lineno}", video_id)
            continue
        path, refused = locate(root, rel)
        if refused is not None:
            skip(skipped, rel, OUTSIDE_ROOT, f"line {lineno}: {refused}", video_id)
            continue
        if path is None:
            skip(skipped, rel, "not found", f"line {lineno}: listed but not under {root}", video_id)
            continue
        seen.add(video_id)
        target = source = None
        match = _FAKE_NAME.match(stem) if method == "Celeb-synthesis" else None
        if match:  # id<target>_id<source>_<clip>: the real pair is Celeb-real/id<target>_<clip>
            target = f"{DATASET}/Celeb-real/id{match[1]}_{match[3]}"
            source = f"{DATASET}/Celeb-real/id{match[2]}_{match[3]}"
        items.append(VideoItem(
            video_id=video_id, path=path, label=0 if listed_real else 1, method=method, split="test",
            kind="video", target=target, source=source,
        ))
    notes = [f"{entries} entries in {list_path.name}"]
    if entries != OFFICIAL_LINES and list_file is None:
        notes.append(f"the official Celeb-DF v2 list has {OFFICIAL_LINES} entries; this one has {entries}")
    return manifest(DATASET, root, items, notes, skipped)
