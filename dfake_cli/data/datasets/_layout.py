"""Small helpers shared by the test-set parsers: finding folders the way users actually name them.

Dataset copies differ in details that should not matter (a `videos/` level added by SelfBlendedImages'
scripts, `Youtube-real` vs `YouTube-real`, `real test` vs `real_test`); these helpers absorb them in one
place so that each parser states only its layout.
"""

from __future__ import annotations

from pathlib import Path

from dfake_cli.data.video import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS


def child_dir(parent: Path, *names: str) -> Path | None:
    """The first existing sub-folder of `parent` named like one of `names` (exact match first, then
    ignoring case, spaces vs underscores and dashes)."""
    for name in names:
        if (parent / name).is_dir():
            return parent / name
    if not parent.is_dir():
        return None
    wanted = {_fold(n) for n in names}
    for child in sorted(parent.iterdir()):
        if child.is_dir() and _fold(child.name) in wanted:
            return child
    return None


def _fold(name: str) -> str:
    return name.lower().replace(" ", "").replace("_", "").replace("-", "")


OUTSIDE_ROOT = "outside the root"


def escapes_root(root: Path, rel: str) -> str | None:
    """Why the index-file path `rel` may not be read under `root` (None when it stays inside).

    An index file (a test list, dataset.json) is data, not a trusted path: an absolute path, a '..'
    that climbs out, or a symlink that resolves outside `root` would pull foreign files into a cache.
    """
    rel_path = Path(rel)
    if rel_path.is_absolute() or rel.startswith(("/", "\\")) or (len(rel) > 1 and rel[1] == ":"):
        return f"absolute path {rel!r} in the index; only paths relative to {root} are read"
    if ".." in rel_path.parts:
        return f"{rel!r} climbs out with '..'; only paths under {root} are read"
    return None


def inside(root: Path, path: Path) -> bool:
    """True when `path`, symlinks resolved, lies under `root` (symlinks resolved too)."""
    try:
        return Path(path).resolve().is_relative_to(Path(root).resolve())
    except OSError:
        return False


def locate(root: Path, rel: str, extra_level: str = "videos") -> tuple[Path | None, str | None]:
    """(path, None) for a file found under `root` (see `find_file`); (None, why) when `rel` or the file it
    names leaves the root; (None, None) when it is simply not there."""
    why = escapes_root(root, rel)
    if why is not None:
        return None, why
    found = _find_file(root, rel, extra_level)
    if found is not None and not inside(root, found):
        return None, f"{rel!r} is a link to {found.resolve()}, outside {root}"
    return found, None


def find_file(root: Path, rel: str, extra_level: str = "videos") -> Path | None:
    """`root/rel` if it exists; else the same file with its folder names matched loosely, or with an
    `extra_level` folder after the first component (SBI's `Celeb-real/videos/x.mp4`). Never a file
    outside `root` (use `locate` to learn why one was refused)."""
    return locate(root, rel, extra_level)[0]


def _find_file(root: Path, rel: str, extra_level: str) -> Path | None:
    direct = root / rel
    if direct.is_file():
        return direct
    parts = Path(rel).parts
    if not parts:
        return None
    folder = child_dir(root, parts[0])
    if folder is None:
        return None
    for base in (folder, folder / extra_level):
        candidate = base.joinpath(*parts[1:])
        if candidate.is_file():
            return candidate
    return None


def media_kind(path: Path) -> str | None:
    """'video' or 'image' from the file extension, None for anything else."""
    ext = path.suffix.lower()
    if ext in VIDEO_EXTENSIONS:
        return "video"
    if ext in IMAGE_EXTENSIONS:
        return "image"
    return None


Skip = tuple[str, str, str, str]


def skip(skipped: list[Skip], path: object, reason: str, detail: str = "", video_id: str = "") -> None:
    """Record an entry the parser cannot use: (video_id, path, reason category, detail), as in Manifest."""
    skipped.append((video_id, str(path), reason, detail))


def manifest(dataset: str, root: Path, items: list, notes: list[str], skipped: list[Skip]):
    """Build the Manifest; what the parser could not use is kept with its reason (never dropped silently)."""
    from dfake_cli.data.datasets import Manifest

    notes = list(notes)
    if skipped:
        notes.append(f"{len(skipped)} entries skipped by the parser (listed in the skipped CSV)")
    return Manifest(dataset=dataset, root=root, items=items, notes=notes, skipped=skipped)
