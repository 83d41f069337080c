"""WildDeepfake test set: face sequences inside `real_test/*.tar.gz` and `fake_test/*.tar.gz`.

Layout (datasets.md b): `deepfake_in_the_wild/{real_test,fake_test}/<N>.tar.gz` (the original README spells
the folders with spaces, `real test`), members `./<N>/<real|fake>/<seq_id>/<frame_no>.png`, already-cropped
faces (no detection needed). A sequence has no global id, so its key is (split, N, seq_id) and it counts as
one video. Only the frames that will be used (`frames` evenly spaced per sequence) are extracted, into
`extract_dir`, under names this parser builds (member names never become paths: no traversal).
"""

from __future__ import annotations

import re
import tarfile
import tempfile
from collections import defaultdict
from pathlib import Path

from dfake_cli.data.datasets import VideoItem, register_dataset
from dfake_cli.data.datasets._layout import child_dir, manifest, skip
from dfake_cli.errors import InputError, require_dir

DATASET = "WildDeepfake"
_MEMBER = re.compile(r"^(?:\./)?(\d+)/(real|fake)/([^/]+)/(\d+)\.(png|jpg|jpeg)$", re.IGNORECASE)


def _split_dirs(root: Path, split: str) -> list[tuple[str, int, Path]]:
    base = child_dir(root, "deepfake_in_the_wild") or root
    found = []
    for cls, label in (("real", 0), ("fake", 1)):
        folder = child_dir(base, f"{cls}_{split}", f"{cls} {split}")
        if folder is None:
            raise InputError(
                f"WildDeepfake: no {cls}_{split}/ folder in {base}; expected deepfake_in_the_wild/{{real,fake}}_{split}/<N>.tar.gz"
            )
        found.append((f"{cls}_{split}", label, folder))
    return found


def _archives(folder: Path) -> list[Path]:
    def number(p: Path) -> tuple[int, str]:
        stem = p.name.split(".")[0]
        return (int(stem), p.name) if stem.isdigit() else (1 << 30, p.name)

    return sorted((p for p in folder.iterdir() if p.name.endswith((".tar.gz", ".tgz", ".tar"))), key=number)


@register_dataset("wdf")
def parse_wdf(root: str | Path, extract_dir: str | Path | None = None, frames: int | None = 32,
              split: str = "test", **_: object):
    """Manifest of WildDeepfake `split` sequences (items of kind "frames"), extracting the chosen frames.

    `frames`: at most this many evenly spaced frames per sequence are extracted (None or 0: all).
    `extract_dir`: where they go (default: a new temporary folder, named in the manifest notes).
    """
    from dfake_cli.data.video import evenly_spaced

    root = require_dir(root, "WildDeepfake root", "pass the folder holding deepfake_in_the_wild/ (or real_test/ and fake_test/)")
    out = Path(extract_dir) if extract_dir else Path(tempfile.mkdtemp(prefix="dfake-wdf-"))
    items: list[VideoItem] = []
    skipped: list[tuple[str, str]] = []
    ignored = 0
    for split_name, label, folder in _split_dirs(root, split):
        archives = _archives(folder)
        if not archives:
            raise InputError(f"WildDeepfake: no .tar.gz archives in {folder}")
        for archive in archives:
            try:
                with tarfile.open(archive, "r:*") as tar:
                    sequences: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
                    conflicts: set[tuple[str, str]] = set()
                    for member in tar.getmembers():
                        m = _MEMBER.match(member.name) if member.isfile() else None
                        if m is None:
                            ignored += member.isfile()
                            continue
                        sequences[(m[1], m[3])].append((int(m[4]), member.name))
                        if m[2].lower() != split_name.split("_")[0]:
                            conflicts.add((m[1], m[3]))
                    wanted: dict[str, Path] = {}
                    for (n, seq), members in sorted(sequences.items()):
                        key = f"{split_name}/{n}/{seq}"
                        if (n, seq) in conflicts:
                            skip(skipped, f"{archive}:{key}", "label contradicts folder",
                                 f"frames are labelled differently from the {split_name} folder")
                            continue
                        members.sort()
                        chosen = [members[i] for i in evenly_spaced(len(members), frames or 0)]
                        paths = []
                        for frame_no, name in chosen:
                            dest = out / split_name / n / seq / f"{frame_no:06d}{Path(name).suffix.lower()}"
                            wanted[name] = dest
                            paths.append(dest)
                        items.append(VideoItem(
                            video_id=f"{DATASET}/{split_name}/{n}_{seq}", path=archive, label=label,
                            method=split_name, split="test", kind="frames", frames=paths,
                        ))
                    _extract(tar, wanted)
            except (tarfile.TarError, OSError, EOFError) as exc:
                # drop the items of a broken archive: their frames may be missing
                items = [it for it in items if it.path != archive]
                skip(skipped, archive, "unreadable archive", f"{exc}".splitlines()[0] if str(exc) else type(exc).__name__)
    notes = [f"frames extracted to {out}", f"{frames or 'all'} frames per sequence"]
    if ignored:
        notes.append(f"{ignored} archive members ignored (not <N>/<real|fake>/<seq>/<frame>.png)")
    return manifest(DATASET, root, items, notes, skipped)


def _extract(tar: tarfile.TarFile, wanted: dict[str, Path]) -> None:
    """Write the wanted members to their destinations (already-extracted files are kept: resumable)."""
    for member in tar.getmembers():
        dest = wanted.get(member.name)
        if dest is None or (dest.is_file() and dest.stat().st_size == member.size):
            continue
        src = tar.extractfile(member)
        if src is None:
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        tmp.write_bytes(src.read())
        tmp.replace(dest)
