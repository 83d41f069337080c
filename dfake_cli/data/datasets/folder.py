"""A generic test set: `real/` and `fake/` folders of images or videos (also the DiffSwap layout).

DiffSwap has no official detection set: papers use the DiffSwap subset of DiffusionFace, an image-level
set (datasets.md b), so it is read as this layout under the name "DiffSwap". Files are found recursively;
a first-level sub-folder of `fake/` names the method (`fake/DiffSwap/x.png` -> method DiffSwap), so a
folder holding several generators gets a per-method breakdown. Images are one item each (image level);
videos are videos.
"""

from __future__ import annotations

from pathlib import Path

from dfake_cli.data.datasets import VideoItem, register_dataset
from dfake_cli.data.datasets._layout import child_dir, manifest, media_kind, skip
from dfake_cli.errors import InputError, require_dir

_CLASSES = (("real", 0), ("fake", 1))


def parse_folder_as(dataset: str, root: str | Path) -> object:
    """Manifest of `root/real/**` (label 0) and `root/fake/**` (label 1) images and videos."""
    root = require_dir(root, f"{dataset} root", "pass a folder holding real/ and fake/")
    items: list[VideoItem] = []
    skipped: list[tuple[str, str]] = []
    counts = {}
    for cls, label in _CLASSES:
        folder = child_dir(root, cls)
        if folder is None:
            raise InputError(f"{root} has no {cls}/ folder; a {dataset} set needs both real/ and fake/ sub-folders")
        n = 0
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            kind = media_kind(path)
            if kind is None:
                if not path.name.startswith("."):
                    skip(skipped, path, "not media", "not an image or video file (by extension)")
                continue
            rel = path.relative_to(folder)
            method = cls if label == 0 or len(rel.parts) == 1 else rel.parts[0]
            name = rel.as_posix() if method == cls else Path(*rel.parts[1:]).as_posix()
            items.append(VideoItem(video_id=f"{dataset}/{method}/{name}", path=path, label=label,
                                   method=method, split="test", kind=kind))
            n += 1
        counts[cls] = n
    if not items:
        raise InputError(f"no images or videos under {root}/real and {root}/fake")
    kinds = sorted({it.kind for it in items})
    notes = [f"{counts['real']} real, {counts['fake']} fake files ({' and '.join(kinds)})"]
    return manifest(dataset, root, items, notes, skipped)


@register_dataset("folder")
def parse_folder(root: str | Path, name: str | None = None, **_: object):
    """A `real/` + `fake/` folder; the dataset is named `name`, else after the folder."""
    return parse_folder_as(name or Path(root).expanduser().resolve().name, root)


@register_dataset("diffswap")
def parse_diffswap(root: str | Path, **_: object):
    """The DiffSwap test images, arranged as `real/` and `fake/`."""
    return parse_folder_as("DiffSwap", root)
