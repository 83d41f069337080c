"""WildDeepfake test set: face sequences inside `real_test/*.tar.gz` and `fake_test/*.tar.gz`.

Layout (datasets.md b): `deepfake_in_the_wild/{real_test,fake_test}/<N>.tar.gz` (the original README spells
the folders with spaces, `real test`), members `./<N>/<real|fake>/<seq_id>/<frame_no>.png`, already-cropped
faces (no detection needed). A sequence has no global id, so its key is (split, N, seq_id) and it counts as
one video. Only the frames that will be used (`frames` evenly spaced per sequence) are extracted, into
`extract_dir`, under names this parser builds from positions (member names never become paths: no
traversal). Refused and listed as skipped: sequence names that are not plain (`..`), absolute or '..'
member paths, members over MAX_MEMBER_BYTES (a small archive can hold a huge sparse member), and a
sequence key that a second archive repeats (the first is kept).
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
MAX_MEMBER_BYTES = 32 << 20  # per extracted face image; a larger member is skipped, never read
_SAFE_SEQ = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9_.-]+$")
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
    keys: dict[str, Path] = {}  # sequence key -> the archive that holds it (a key in two archives: refused)
    for split_name, label, folder in _split_dirs(root, split):
        archives = _archives(folder)
        if not archives:
            raise InputError(f"WildDeepfake: no .tar.gz archives in {folder}")
        for a_no, archive in enumerate(archives):
            try:
                with tarfile.open(archive, "r:*") as tar:
                    sequences: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
                    conflicts: set[tuple[str, str]] = set()
                    for member in tar.getmembers():
                        m = _MEMBER.match(member.name) if member.isfile() else None
                        if m is not None and not _SAFE_SEQ.match(m[3]):
                            skip(skipped, f"{archive}:{member.name}", "unsafe member name",
                                 f"sequence name {m[3]!r} is not a plain name (letters, digits, _ . -)")
                            continue
                        if m is None:
                            if member.isfile() and _unsafe(member.name):
                                skip(skipped, f"{archive}:{member.name}", "unsafe member name",
                                     "absolute or '..' member path: not extracted")
                            else:
                                ignored += member.isfile()
                            continue
                        if member.size > MAX_MEMBER_BYTES:
                            skip(skipped, f"{archive}:{member.name}", "member too large",
                                 f"{member.size} bytes > {MAX_MEMBER_BYTES} (a face PNG is ~100 kB): not extracted")
                            continue
                        sequences[(m[1], m[3])].append((int(m[4]), member.name))
                        if m[2].lower() != split_name.split("_")[0]:
                            conflicts.add((m[1], m[3]))
                    wanted: dict[str, Path] = {}
                    for s_no, ((n, seq), members) in enumerate(sorted(sequences.items())):
                        key = f"{split_name}/{n}/{seq}"
                        if (n, seq) in conflicts:
                            skip(skipped, f"{archive}:{key}", "label contradicts folder",
                                 f"frames are labelled differently from the {split_name} folder")
                            continue
                        if key in keys:
                            skip(skipped, f"{archive}:{key}", "duplicate sequence",
                                 f"sequence {n}/{seq} is also in {keys[key]}; the first one is kept")
                            continue
                        keys[key] = archive
                        members.sort()
                        chosen = [members[i] for i in evenly_spaced(len(members), frames or 0)]
                        # Destinations are built from positions only: member names never become paths.
                        seq_dir = out / split_name / f"{a_no:05d}" / f"{s_no:06d}"
                        paths = []
                        for frame_no, name in chosen:
                            dest = seq_dir / f"{frame_no:06d}{Path(name).suffix.lower()}"
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
                for key in [k for k, a in keys.items() if a == archive]:
                    del keys[key]
                skip(skipped, archive, "unreadable archive", f"{exc}".splitlines()[0] if str(exc) else type(exc).__name__)
    notes = [f"frames extracted to {out}", f"{frames or 'all'} frames per sequence"]
    if ignored:
        notes.append(f"{ignored} archive members ignored (not <N>/<real|fake>/<seq>/<frame>.png)")
    return manifest(DATASET, root, items, notes, skipped)


def _unsafe(name: str) -> bool:
    """A member path that would leave the extraction folder if it were used as one."""
    return name.startswith(("/", "\\")) or ".." in name.replace("\\", "/").split("/")


def _extract(tar: tarfile.TarFile, wanted: dict[str, Path]) -> None:
    """Write the wanted members to their destinations (already-extracted files are kept: resumable).

    Copied in 1 MiB blocks and never more than MAX_MEMBER_BYTES, whatever the member claims."""
    for member in tar.getmembers():
        dest = wanted.get(member.name)
        if dest is None or (dest.is_file() and dest.stat().st_size == member.size):
            continue
        src = tar.extractfile(member)
        if src is None:
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        with open(tmp, "wb") as f:
            left = MAX_MEMBER_BYTES
            while left > 0:
                block = src.read(min(1 << 20, left))
                if not block:
                    break
                f.write(block)
                left -= len(block)
        tmp.replace(dest)
