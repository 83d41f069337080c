"""Regenerate the embedded sample data: `python -m dfake_cli.sampledata.generate --out sample_data [--seed 0]`.

Writes `<out>/FaceForensics++/`, `<out>/Celeb-DF-v2/`, `<out>/README.md` and `<out>/SHA256SUMS`. Each
dataset folder is built in a temporary folder and swapped in whole, so an interrupted run leaves the
previous data intact. The same seed gives byte-identical files (deterministic x264, seeded everything).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from dfake_cli.errors import DfakeError, InputError
from dfake_cli.io import atomic_path, write_text_atomic
from dfake_cli.sampledata.manipulate import FFPP_METHODS
from dfake_cli.sampledata.portraits import BASES, spec_of
from dfake_cli.sampledata.trees import ffpp_fake_names, write_celebdf_tree, write_ffpp_tree

FFPP_DIR = "FaceForensics++"
CELEBDF_DIR = "Celeb-DF-v2"
MAX_TOTAL_BYTES = 15 * 1024 * 1024


@dataclass(frozen=True)
class SampleLayout:
    """What sample_data holds: which identity plays which video, the pairs, the sizes."""

    ffpp_ids: dict[str, str] = field(default_factory=lambda: {
        "000": "hopper", "001": "collins", "002": "cameraman", "003": "hopper-m",
        "004": "collins-m", "005": "cameraman-b", "006": "hopper-c", "007": "collins-c"})
    # val and test hold identities derived from photos that train also sees (hopper, collins), so the
    # val split that picks best/ measures what test measures; the profile photo (cameraman) is trained on.
    ffpp_pairs: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: {
        "train": [("000", "004"), ("002", "005")], "val": [("001", "003")], "test": [("006", "007")]})
    celeb_ids: tuple[str, ...] = ("hopper-d", "collins-d", "collins-e")
    youtube_ids: tuple[str, ...] = ("cameraman-d", "hopper-e")
    celeb_fakes: tuple[tuple[int, int], ...] = ((0, 1), (1, 0), (0, 2), (2, 0), (1, 2))
    celeb_held_out: tuple[str, ...] = ("Celeb-synthesis/id1_id2_0000.mp4",)
    n_frames: tuple[int, int] = (48, 60)
    size: int = 256
    ffpp_masks: bool = True

    def video_count(self) -> int:
        n_ffpp = len(self.ffpp_ids) + len(FFPP_METHODS) * len(ffpp_fake_names(self.ffpp_pairs)) * (
            2 if self.ffpp_masks else 1)
        return n_ffpp + len(self.celeb_ids) + len(self.youtube_ids) + len(self.celeb_fakes)


def generate(out: str | Path, seed: int = 0, layout: SampleLayout | None = None) -> Path:
    """Write the whole sample data folder; returns `out` (DFAKE_NO_PROGRESS=1 hides the progress bar)."""
    from dfake_cli.console import progress

    layout = layout or SampleLayout()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; pass a folder (it is created if missing)")
    start = time.time()
    with progress("videos") as bar:
        task = bar.add_task("sample data", total=layout.video_count(), rate="", info="")

        def tick(name: str) -> None:
            done = bar.tasks[task].completed + 1
            bar.update(task, advance=1, info=name, rate=f"{done / max(1e-6, time.time() - start):.1f} videos/s")

        with atomic_path(out / FFPP_DIR) as tmp:
            write_ffpp_tree(tmp, layout.ffpp_ids, layout.ffpp_pairs, FFPP_METHODS, layout.n_frames, layout.size,
                            seed, masks=layout.ffpp_masks, tick=tick)
        with atomic_path(out / CELEBDF_DIR) as tmp:
            write_celebdf_tree(tmp, layout.celeb_ids, layout.youtube_ids, layout.celeb_fakes, layout.celeb_held_out,
                               layout.n_frames, layout.size, seed, tick=tick)
    write_text_atomic(out / "README.md", readme(layout, seed))
    write_text_atomic(out / "SHA256SUMS", checksums(out))
    return out


def dataset_files(out: Path) -> list[Path]:
    """Every file of the two dataset folders, sorted (what SHA256SUMS covers)."""
    return sorted(p for d in (FFPP_DIR, CELEBDF_DIR) for p in (out / d).rglob("*") if p.is_file())


def checksums(out: Path) -> str:
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(out).as_posix()}" for p in dataset_files(out)]
    return "\n".join(lines) + "\n"


def readme(layout: SampleLayout, seed: int) -> str:
    id_rows = [f"| FF++ `{vid}` | `{name}` | {spec_of(name).describe()} |" for vid, name in layout.ffpp_ids.items()]
    id_rows += [f"| Celeb-DF `id{i}` | `{name}` | {spec_of(name).describe()} |" for i, name in enumerate(layout.celeb_ids)]
    id_rows += [f"| Celeb-DF YouTube `{j:05d}` | `{name}` | {spec_of(name).describe()} |"
                for j, name in enumerate(layout.youtube_ids)]
    splits = "; ".join(f"{s}: " + ", ".join(f"{a}/{b}" for a, b in p) for s, p in layout.ffpp_pairs.items())
    bases = "\n".join(f"- `{k}`: {v}" for k, v in BASES.items())
    fakes = ", ".join(f"id{t}_id{s}" for t, s in layout.celeb_fakes)
    lo, hi = layout.n_frames
    return f"""# dfake sample data

Two miniature deepfake datasets in the exact layouts of the real ones, so that `dfake prepare`, `train`,
`eval`, `reconstruct` and `detect` run end to end without downloading anything. They prove the pipeline
works; they are far too small and too synthetic to say anything about real detection accuracy.

- `FaceForensics++/`: `original_sequences/youtube/c23/videos/000..007.mp4` (8 reals),
  `manipulated_sequences/{{Deepfakes,Face2Face,FaceSwap,NeuralTextures}}/c23/videos/TTT_SSS.mp4` (8 fakes per
  method, `TTT` = target, `SSS` = source), their blending masks in `manipulated_sequences/<method>/masks/videos/`,
  and `train.json` / `val.json` / `test.json` in the official pair-list format ({splits}).
- `Celeb-DF-v2/`: `Celeb-real/id<i>_0000.mp4` ({len(layout.celeb_ids)}), `YouTube-real/<nnnnn>.mp4`
  ({len(layout.youtube_ids)}), `Celeb-synthesis/id<t>_id<s>_0000.mp4` ({fakes}) and
  `List_of_testing_videos.txt` (`1` = real, `0` = fake; no newline after the last line, like the real file).
  Not in the list, as in the real dataset where the folders also hold training videos:
  {", ".join(layout.celeb_held_out)}.

Videos: H.264 mp4 (yuv420p, CRF 23, 25 fps), {layout.size}x{layout.size}, {lo}-{hi} frames each (seeded per video);
every fake has exactly the frame count of its target original.

## How it was made

1. **Portraits.** Only portraits that ship inside installed packages are used, never the network:
{bases}

   `skimage.data.lfw_subset()` was left out: 25x25 LFW crops are too small and not public domain.
2. **Identities.** Three photos are too few people, so each identity is a base portrait plus a deterministic
   change: mirroring, a warp of the lower face (jaw width, face length), LAB shifts of skin and hair, and a
   background/clothes tint (`dfake_cli/sampledata/portraits.py`). Identities derived from the same photo are not
   truly different people; identities are still disjoint between the FF++ splits, as in the real dataset.
3. **Real videos.** A virtual camera pans, zooms and rolls smoothly over the portrait, with a slow exposure
   drift (`clips.py`). MTCNN (facenet-pytorch, weights inside the wheel) finds the 5 landmarks on the portrait
   once; the camera warp moves them exactly to every frame.
4. **Fakes** (`manipulate.py`), made the way deepfakes are made: the source face is aligned onto each target
   frame by the similarity transform between their landmarks, then blended. Frame *i* of `TTT_SSS` is built
   from frame *i* of `TTT` and frame min(*i*, last) of `SSS`.
   - Deepfakes: identity swap, face rendered at low resolution (resampled x0.45), Reinhard colour transfer,
     large ellipse mask with a wide soft edge, landmark jitter (flicker).
   - FaceSwap: identity swap through a face-outline polygon with a sharp seam, a mid-resolution (x0.6) face,
     partial mean-only colour correction.
   - Face2Face: only the mouth region from the source (expression), re-rendered smooth (resampled x0.5,
     blurred), colour-matched.
   - NeuralTextures: mouth and eye regions from the source through an edge-preserving, coarsely
     resampled (x0.4) "texture" filter.
   - Celeb-DF (a different recipe, so evaluating on it is a cross-dataset test): rounded-rectangle mask,
     face resampled x0.6 and colour-shifted with per-frame drift, Poisson (seamless) cloning.

   Learnability check (seed 0, by hand, not a test): a 4-layer CNN trained from scratch on 128 px face crops
   of the train split (about 3 minutes on one CPU core) reached frame AUC 0.97 on the test split (Deepfakes,
   FaceSwap, NeuralTextures 1.00, Face2Face 0.87) and 0.97 on the Celeb-DF list. The data are easy on
   purpose: they exercise the pipeline, they are no benchmark.

## Licences

- Grace Hopper photo: US Navy, public domain (shipped by matplotlib).
- Eileen Collins astronaut photo: NASA, public domain (shipped by scikit-image).
- Cameraman photo: Lav Varshney, CC0 (shipped by scikit-image).
- The derived videos in this folder: public domain / CC0, like their sources; the generator code is dfake's (MIT).

## Regenerate

    python -m dfake_cli.sampledata.generate --out sample_data --seed {seed}     # or: make sample-data

The same seed gives the same bytes (seeded per video; x264 with `asm=0`, one thread). `SHA256SUMS` lists
every file; `sha256sum -c SHA256SUMS` inside this folder checks a copy. The whole folder stays under 15 MB.
Byte-identical output across x86-64 machines is sought too (OpenCV's baseline kernels, float64 MTCNN, see
`dfake_cli/sampledata/determinism.py`); another CPU architecture may differ in a few pixels.
Tests and other code can build their own smaller trees with `dfake_cli.sampledata.write_ffpp_tree` and
`write_celebdf_tree`.

## Identities

| video | identity | derived from |
|---|---|---|
""" + "\n".join(id_rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dfake_cli.sampledata.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="sample_data", help="output folder (default: sample_data)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)
    try:
        start = time.time()
        out = generate(args.out, args.seed)
        total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        print(f"wrote {out} ({total / 1e6:.1f} MB) in {time.time() - start:.0f} s")
        if total > MAX_TOTAL_BYTES:
            print(f"warning: {total / 1e6:.1f} MB exceeds the 15 MB budget for the committed sample data")
    except DfakeError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
