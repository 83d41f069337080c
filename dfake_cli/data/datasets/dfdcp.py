"""DFDC Preview (DFDC-P) test set from the release's `dataset.json`.

Layout (datasets.md b): `dataset.json` maps a relative video path to its metadata, e.g.
`{"method_A/1003254/1003254_A/1255229_1003254_A_001.mp4": {"label": "fake", "set": "test"}}`; reals live in
`original_videos/<subject>/`, fakes in `method_A/` and `method_B/` (the methods). The test set is
`set == "test"` (276 real + 501 fake). The root may be the release folder itself or its parent
(`fb_dfd_release_0.1_final`); SelfBlendedImages' `videos/` level is accepted.
"""

from __future__ import annotations

import json
from pathlib import Path

from dfake_cli.data.datasets import VideoItem, register_dataset
from dfake_cli.data.datasets._layout import OUTSIDE_ROOT, child_dir, locate, manifest, skip
from dfake_cli.errors import InputError, require_dir

DATASET = "DFDC-P"
RELEASE_DIR = "fb_dfd_release_0.1_final"
_LABELS = {"real": 0, "fake": 1}


def _dataset_json(root: Path) -> Path:
    for base in (root, child_dir(root, RELEASE_DIR)):
        if base is not None and (base / "dataset.json").is_file():
            return base / "dataset.json"
    raise InputError(f"DFDC-P dataset.json not found in {root}; pass the DFDC Preview release folder ({RELEASE_DIR})")


@register_dataset("dfdcp")
def parse_dfdcp(root: str | Path, subset: str = "test", **_: object):
    """Manifest of DFDC-P videos whose `set` is `subset` ("test" by default; "all" takes every video)."""
    root = require_dir(root, "DFDC-P root", f"pass the DFDC Preview release folder ({RELEASE_DIR})")
    index_path = _dataset_json(root)
    base = index_path.parent
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {index_path}: {exc}".splitlines()[0] + "; re-download dataset.json") from exc
    if not isinstance(index, dict):
        raise InputError(f"{index_path}: expected an object mapping video paths to metadata")
    items: list[VideoItem] = []
    skipped: list[tuple[str, str]] = []
    sets: dict[str, int] = {}
    for rel, meta in index.items():
        if not isinstance(meta, dict):
            skip(skipped, rel, "bad metadata", "the dataset.json entry is not an object")
            continue
        which = str(meta.get("set", "")).lower()
        sets[which] = sets.get(which, 0) + 1
        if subset != "all" and which != subset:
            continue
        label = _LABELS.get(str(meta.get("label", "")).lower())
        if label is None:
            skip(skipped, rel, "bad label", f"label {meta.get('label')!r} is neither 'real' nor 'fake'")
            continue
        rel = rel.replace("\\", "/")
        path, refused = locate(base, rel)
        if refused is not None:
            skip(skipped, rel, OUTSIDE_ROOT, refused)
            continue
        if path is None:
            skip(skipped, rel, "not found", f"listed in dataset.json but not under {base}")
            continue
        head, _, rest = rel.partition("/")
        method = "original" if head.lower().startswith("original") else head
        if label == 1 and method == "original":
            skip(skipped, rel, "label contradicts folder", "labelled fake but stored under original_videos/")
            continue
        items.append(VideoItem(
            video_id=f"{DATASET}/{method}/{Path(rest).with_suffix('').as_posix()}", path=path, label=label,
            method=method, split="test", kind="video",
        ))
    if not items and not skipped:
        raise InputError(f"{index_path}: no video has set == {subset!r} (sets found: {sorted(sets)})")
    notes = [f"dataset.json: {len(index)} videos, sets {dict(sorted(sets.items()))}; taken: set == {subset!r}"]
    return manifest(DATASET, base, items, notes, skipped)
