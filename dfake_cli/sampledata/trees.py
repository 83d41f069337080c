"""Writers of miniature dataset trees in the real FaceForensics++ and Celeb-DF v2 layouts.

Tests across dfake call these to build their own tiny trees (e.g. 12 frames at 128 px in a few
seconds); `generate.py` calls them with the sample_data settings. Every video's content depends only on
(seed, its own name, its identity, size, frame count), never on which other videos are written, so a
subset regenerates byte-identically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from dfake_cli.sampledata.clips import Clip, render_clip, rng_for
from dfake_cli.sampledata.manipulate import FFPP_METHODS, RECIPES, swap_face
from dfake_cli.sampledata.videoio import write_video

FramesSpec = int | tuple[int, int]  # a fixed count, or an inclusive range drawn per video
Tick = Callable[[str], None]

SPLITS = ("train", "val", "test")


def frames_for(n_frames: FramesSpec, seed: int, video: str) -> int:
    """The frame count of `video`: fixed, or drawn from the inclusive range with the video's own seed."""
    if isinstance(n_frames, (int, np.integer)):
        count = int(n_frames)
    else:
        lo, hi = (int(v) for v in n_frames)
        if lo > hi:
            raise ValueError(f"n_frames range {n_frames} is empty")
        count = int(rng_for(seed, "frames", video).integers(lo, hi + 1))
    if count < 1:
        raise ValueError(f"n_frames must be >= 1, got {count}")
    return count


def _fake_seed(seed: int, recipe: str, name: str) -> int:
    return int(rng_for(seed, "fake", recipe, name).integers(0, 2**31 - 1))


def _write(path: Path, frames: np.ndarray, written: list[Path], tick: Tick | None, crf: int) -> None:
    write_video(path, frames, fps=25, crf=crf)
    written.append(path)
    if tick is not None:
        tick(path.name)


def ffpp_fake_names(pairs_by_split: Mapping[str, Sequence[Sequence[str]]]) -> dict[str, str]:
    """Every fake name `TTT_SSS` (both orders of each pair) -> its split."""
    out: dict[str, str] = {}
    for split, pairs in pairs_by_split.items():
        for a, b in pairs:
            out[f"{a}_{b}"] = split
            out[f"{b}_{a}"] = split
    return out


def write_ffpp_tree(
    root: str | Path,
    ids: Mapping[str, str | int] | Sequence[str | int],
    pairs_by_split: Mapping[str, Sequence[Sequence[str]]],
    methods: Sequence[str] = FFPP_METHODS,
    n_frames: FramesSpec = 48,
    size: int = 256,
    seed: int = 0,
    compression: str = "c23",
    masks: bool = False,
    crf: int = 23,
    tick: Tick | None = None,
) -> list[Path]:
    """Write a FaceForensics++ miniature under `root` (the `FaceForensics++` folder); return written files.

    ids: video id ("000") -> identity (name or index from `identities()`), or a sequence of identities
        numbered "000", "001", ... in order.
    pairs_by_split: {"train": [("000", "001"), ...], "val": [...], "test": [...]} as in the official split
        JSONs; each pair gives fakes `a_b` and `b_a` (target_source) for every method. All three split
        files are written (empty lists for missing splits).
    masks: also write `manipulated_sequences/<method>/masks/videos/TTT_SSS.mp4` (the blending masks).
    tick: called with each file name once it is written (progress bars).
    """
    root = Path(root)
    if not isinstance(ids, Mapping):
        ids = {f"{i:03d}": identity for i, identity in enumerate(ids)}
    unknown_splits = set(pairs_by_split) - set(SPLITS)
    if unknown_splits:
        raise ValueError(f"unknown split(s) {sorted(unknown_splits)}; use {SPLITS}")
    bad = [m for m in methods if m not in FFPP_METHODS]
    if bad:
        raise ValueError(f"unknown FF++ method(s) {bad}; choose from {FFPP_METHODS}")
    for pairs in pairs_by_split.values():
        for pair in pairs:
            if len(pair) != 2 or pair[0] == pair[1] or any(v not in ids for v in pair):
                raise ValueError(f"pair {list(pair)} must name two different ids among {sorted(ids)}")

    written: list[Path] = []
    clips: dict[str, Clip] = {}
    real_dir = root / "original_sequences" / "youtube" / compression / "videos"
    for vid, identity in sorted(ids.items()):
        clips[vid] = render_clip(identity, frames_for(n_frames, seed, vid), size, seed, key=f"ffpp/{vid}")
        _write(real_dir / f"{vid}.mp4", clips[vid].frames, written, tick, crf)

    for method in methods:
        method_dir = root / "manipulated_sequences" / method
        for name in sorted(ffpp_fake_names(pairs_by_split)):
            target, source = name.split("_")
            t, s = clips[target], clips[source]
            out = swap_face(t.frames, s.frames, method, _fake_seed(seed, method, name),
                            target_landmarks=t.landmarks, source_landmarks=s.landmarks, return_masks=masks)
            fakes, blend = out if masks else (out, None)
            _write(method_dir / compression / "videos" / f"{name}.mp4", fakes, written, tick, crf)
            if blend is not None:
                mask_rgb = np.repeat(blend[..., None], 3, axis=-1)
                _write(method_dir / "masks" / "videos" / f"{name}.mp4", mask_rgb, written, tick, crf)

    for split in SPLITS:
        path = root / f"{split}.json"
        pairs = [[str(a), str(b)] for a, b in pairs_by_split.get(split, [])]
        path.write_text(json.dumps(pairs))  # the official files: one line, a list of 2-element lists
        written.append(path)
    return written


def celebdf_names(n_celeb: int, n_youtube: int, fake_pairs: Sequence[tuple[int, int]]) -> list[tuple[int, str]]:
    """(label, relative path) of every video, in test-list order (1 = real, 0 = fake, as the real list)."""
    out: list[tuple[int, str]] = []
    for i in range(n_celeb):
        out.append((1, f"Celeb-real/id{i}_0000.mp4"))
        out += [(0, f"Celeb-synthesis/id{t}_id{s}_0000.mp4") for t, s in fake_pairs if t == i]
    out += [(1, f"YouTube-real/{j:05d}.mp4") for j in range(n_youtube)]
    return out


def write_celebdf_tree(
    root: str | Path,
    celeb_ids: Sequence[str | int],
    youtube_ids: Sequence[str | int],
    fake_pairs: Sequence[tuple[int, int]],
    held_out: Sequence[str] = (),
    n_frames: FramesSpec = 48,
    size: int = 256,
    seed: int = 0,
    recipe: str = "CelebDF",
    crf: int = 23,
    tick: Tick | None = None,
) -> list[Path]:
    """Write a Celeb-DF v2 miniature under `root` (the `Celeb-DF-v2` folder); return written files.

    celeb_ids[i] is the identity of celebrity `id<i>` (video `Celeb-real/id<i>_0000.mp4`); youtube_ids[j]
    that of `YouTube-real/<j:05d>.mp4`; fake_pairs (t, s) give `Celeb-synthesis/id<t>_id<s>_0000.mp4`
    (target id<t>'s real clip, source id<s>). `held_out` lists relative paths written but left out of
    `List_of_testing_videos.txt` (the real dataset's folders hold training videos too). The list's last
    line has no trailing newline, like the real file.
    """
    root = Path(root)
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    for t, s in fake_pairs:
        if t == s or not (0 <= t < len(celeb_ids) and 0 <= s < len(celeb_ids)):
            raise ValueError(f"fake pair ({t}, {s}) must name two different celebrities 0..{len(celeb_ids) - 1}")
    names = celebdf_names(len(celeb_ids), len(youtube_ids), fake_pairs)
    missing = set(held_out) - {rel for _, rel in names}
    if missing:
        raise ValueError(f"held_out names videos that are not written: {sorted(missing)}")

    written: list[Path] = []
    celeb: list[Clip] = []
    for i, identity in enumerate(celeb_ids):
        rel = f"Celeb-real/id{i}_0000.mp4"
        celeb.append(render_clip(identity, frames_for(n_frames, seed, rel), size, seed, key=f"celebdf/{rel}"))
        _write(root / rel, celeb[i].frames, written, tick, crf)
    for j, identity in enumerate(youtube_ids):
        rel = f"YouTube-real/{j:05d}.mp4"
        clip = render_clip(identity, frames_for(n_frames, seed, rel), size, seed, key=f"celebdf/{rel}")
        _write(root / rel, clip.frames, written, tick, crf)
    for t, s in fake_pairs:
        rel = f"Celeb-synthesis/id{t}_id{s}_0000.mp4"
        fakes = swap_face(celeb[t].frames, celeb[s].frames, recipe, _fake_seed(seed, recipe, rel),
                          target_landmarks=celeb[t].landmarks, source_landmarks=celeb[s].landmarks)
        _write(root / rel, fakes, written, tick, crf)

    lines = [f"{label} {rel}" for label, rel in names if rel not in set(held_out)]
    listing = root / "List_of_testing_videos.txt"
    listing.write_text("\n".join(lines))
    written.append(listing)
    return written
