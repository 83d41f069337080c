"""Where self-blended fakes come from: the REAL videos (or photos) of a supported layout, with splits.

- `ffpp`: FF++ originals (`original_sequences/youtube/<c>/videos`), split by the official JSONs; the
  manipulated folders may be absent (SBI needs none of them).
- `celebdf`: `Celeb-real/` and `YouTube-real/`. Reals named in `List_of_testing_videos.txt` are test, and so
  is every other clip of a celebrity who appears there; the remaining celebrities are split into train and
  val by identity. YouTube clips are one identity each.
- `folder`: videos or images under ROOT. With `train/ val/ test/` sub-folders those are the splits;
  otherwise the first folder level names the identity (a loose file is its own) and identities go to
  train/val/test by a stable hash (80/10/10).

Every clip of one identity lands in one split: a detector never validates or tests on a person it trained on.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

from dfake_cli.data.datasets import SPLITS, Manifest, VideoItem, get_parser
from dfake_cli.data.datasets._layout import child_dir, media_kind
from dfake_cli.errors import InputError, require_dir

LAYOUTS = ("ffpp", "celebdf", "folder")
_CELEB = re.compile(r"^id(\d+)_\d+$")


def detect_layout(root: Path) -> str:
    """ffpp when ROOT holds original_sequences/, celebdf when it holds Celeb-real/ or YouTube-real/, else folder."""
    for cand in (root, root / "FaceForensics++"):
        if (cand / "original_sequences").is_dir():
            return "ffpp"
    if child_dir(root, "Celeb-real", "YouTube-real") is not None:
        return "celebdf"
    return "folder"


def hashed_split(identity: str) -> str:
    """A stable 80/10/10 train/val/test assignment of one identity (the same on every machine)."""
    bucket = zlib.crc32(identity.encode()) % 10
    return "test" if bucket == 0 else "val" if bucket == 1 else "train"


def real_manifest(root: str | Path, layout: str | None = None, compression: str = "c23") -> Manifest:
    """The real items of ROOT (label 0, split set), in a Manifest the preparation engine accepts."""
    root = require_dir(root, "dataset root", "pass an FF++ or Celeb-DF tree, or a folder of face videos/images")
    layout = layout or detect_layout(root)
    if layout not in LAYOUTS:
        raise InputError(f"--layout {layout!r}: choose one of {', '.join(LAYOUTS)}")
    if layout == "ffpp":
        full = get_parser("ffpp")(root, compression=compression)
        reals = [i for i in full.items if i.label == 0]
        skipped = [s for s in full.skipped if "/youtube/" in s[0]]
        if not reals:
            raise InputError(f"no FF++ real videos in any split under {root} ({compression})")
        return Manifest("FaceForensics++", full.root, reals, [f"FF++ originals, compression {compression}"], skipped)
    if layout == "celebdf":
        return _celebdf(root)
    return _folder(root)


def _celebdf(root: Path) -> Manifest:
    from dfake_cli.data.datasets.celebdf import LIST_NAME

    listed: set[str] = set()
    list_path = root / LIST_NAME
    if list_path.is_file():
        for line in list_path.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.strip().split(maxsplit=1)
            if len(parts) == 2 and parts[0] == "1":
                listed.add(Path(parts[1].strip().replace("\\", "/")).stem)
    clips: list[tuple[str, str, Path]] = []  # (method, identity, path)
    for method, names in (("Celeb-real", ("Celeb-real",)), ("YouTube-real", ("YouTube-real", "Youtube-real"))):
        folder = child_dir(root, *names)
        if folder is None:
            continue
        if child_dir(folder, "videos") is not None and not any(folder.glob("*.mp4")):
            folder = child_dir(folder, "videos")
        for path in sorted(folder.glob("*.mp4")):
            m = _CELEB.match(path.stem)
            ident = f"id{m[1]}" if (method == "Celeb-real" and m) else f"{method}/{path.stem}"
            clips.append((method, ident, path))
    if not clips:
        raise InputError(f"no real videos in {root}/Celeb-real or {root}/YouTube-real")
    test_ids = {ident for method, ident, path in clips if path.stem in listed}
    items = []
    for method, ident, path in clips:
        split = "test" if ident in test_ids else ("val" if hashed_split(ident) == "val" else "train")
        items.append(VideoItem(f"Celeb-DF/{method}/{path.stem}", path, 0, method, split))
    notes = [f"Celeb-DF reals: {len(test_ids)} identities in the test list kept in test"
             + ("" if list_path.is_file() else f" (no {LIST_NAME}: nothing in test)")]
    return Manifest("Celeb-DF", root, items, notes, [])


def _folder(root: Path) -> Manifest:
    split_dirs = {s: child_dir(root, s) for s in SPLITS}
    fixed = any(d is not None for d in split_dirs.values())
    bases = [(s, d) for s, d in split_dirs.items() if d is not None] if fixed else [(None, root)]
    items, skipped = [], []
    dataset = root.resolve().name
    for split, base in bases:
        for path in sorted(p for p in base.rglob("*") if p.is_file()):
            kind = media_kind(path)
            if kind is None:
                if not path.name.startswith("."):
                    skipped.append(("", str(path), "not media", "not an image or video file (by extension)"))
                continue
            rel = path.relative_to(base)
            ident = rel.parts[0] if len(rel.parts) > 1 else rel.stem
            name = rel.as_posix() if split is None else f"{split}/{rel.as_posix()}"
            items.append(VideoItem(f"{dataset}/real/{name}", path, 0, "real", split or hashed_split(ident), kind))
    if not items:
        raise InputError(f"no images or videos under {root}")
    how = "train/val/test folders" if fixed else "identities (first folder level) hashed 80/10/10"
    return Manifest(dataset, root, items, [f"{len(items)} real files; splits from {how}"], skipped)
