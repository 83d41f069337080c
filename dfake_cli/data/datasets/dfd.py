"""DeepFakeDetection (DFD), shipped inside FaceForensics++, used whole as a cross-dataset test.

Layout (datasets.md b): reals `original_sequences/actors/<comp>/videos/<actor>__<scene>.mp4`, fakes
`manipulated_sequences/DeepFakeDetection/<comp>/videos/<target>_<source>__<scene>__<id>.mp4` whose original
is `<target>__<scene>`. Many DFD frames show two people; the mask videos
(`manipulated_sequences/DeepFakeDetection/masks/videos/<fake>.mp4`) mark the manipulated face, so each fake
carries its mask path and preparation picks the face the mask covers (DeepfakeBench #144).
"""

from __future__ import annotations

import re
from pathlib import Path

from dfake_cli.data.datasets import VideoItem, register_dataset
from dfake_cli.data.datasets._layout import child_dir, manifest, media_kind, skip
from dfake_cli.errors import InputError, require_dir

DATASET = "DFD"
METHOD = "DeepFakeDetection"
REAL_METHOD = "actors"
COMPRESSIONS = ("raw", "c23", "c40")
_FAKE = re.compile(r"^(\d+)_(\d+)__(.+)__([A-Za-z0-9]+)$")
_REAL = re.compile(r"^(\d+)__(.+)$")


def _videos(folder: Path | None) -> list[Path]:
    if folder is None:
        return []
    videos = child_dir(folder, "videos") or folder
    return sorted(p for p in videos.iterdir() if p.is_file() and media_kind(p) == "video")


@register_dataset("dfd")
def parse_dfd(root: str | Path, compression: str = "c23", **_: object):
    """Manifest of every DFD video (363 real, ~3068 fake) at `compression` (raw | c23 | c40)."""
    root = require_dir(root, "DFD root", "pass the FaceForensics++ folder holding original_sequences/ and manipulated_sequences/")
    if compression not in COMPRESSIONS:
        raise InputError(f"--compression {compression!r}: use one of {', '.join(COMPRESSIONS)}")
    actors = child_dir(root / "original_sequences", REAL_METHOD)
    fakes_dir = child_dir(root / "manipulated_sequences", METHOD)
    if actors is None or fakes_dir is None:
        raise InputError(
            f"DFD not found in {root}: expected original_sequences/actors/ and manipulated_sequences/DeepFakeDetection/ "
            f"(download FaceForensics++ with -d DeepFakeDetection and -d DeepFakeDetection_original)"
        )
    real_comp, fake_comp = child_dir(actors, compression), child_dir(fakes_dir, compression)
    if real_comp is None or fake_comp is None:
        have = sorted(p.name for p in fakes_dir.iterdir() if p.is_dir() and p.name in COMPRESSIONS)
        raise InputError(f"DFD has no {compression}/ videos in {root} (found: {', '.join(have) or 'none'}); pass --compression")
    mask_dir = fakes_dir / "masks" / "videos"
    items: list[VideoItem] = []
    skipped: list[tuple[str, str]] = []
    reals: set[str] = set()
    for path in _videos(real_comp):
        if not _REAL.match(path.stem):
            skip(skipped, path, "unexpected name", "expected <actor>__<scene>.mp4")
            continue
        reals.add(path.stem)
        items.append(VideoItem(video_id=f"{DATASET}/{REAL_METHOD}/{path.stem}", path=path, label=0,
                               method=REAL_METHOD, split="test", kind="video"))
    no_mask = no_original = 0
    for path in _videos(fake_comp):
        m = _FAKE.match(path.stem)
        if not m:
            skip(skipped, path, "unexpected name", "expected <target>_<source>__<scene>__<id>.mp4")
            continue
        target, source = f"{m[1]}__{m[3]}", f"{m[2]}__{m[3]}"
        no_original += target not in reals
        mask = next((p for p in (mask_dir / path.name, mask_dir / f"{path.stem}.mp4") if p.is_file()), None)
        no_mask += mask is None
        items.append(VideoItem(
            video_id=f"{DATASET}/{METHOD}/{path.stem}", path=path, label=1, method=METHOD, split="test",
            kind="video", target=f"{DATASET}/{REAL_METHOD}/{target}" if target in reals else None,
            source=f"{DATASET}/{REAL_METHOD}/{source}" if source in reals else None, mask_path=mask,
        ))
    notes = [f"compression {compression}: {len(reals)} real, {len(items) - len(reals)} fake videos"]
    if no_mask:
        notes.append(f"{no_mask} fakes have no mask video (the largest face is used for them)")
    if no_original:
        notes.append(f"{no_original} fakes have no original <target>__<scene> video in actors/{compression}")
    return manifest(DATASET, root, items, notes, skipped)
