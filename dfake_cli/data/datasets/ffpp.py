"""FaceForensics++: the training set (reals from YouTube, fakes `T_S` per manipulation method).

    <root>/train.json val.json test.json            official pair lists [["953", "974"], ...]
    <root>/original_sequences/youtube/<c>/videos/000.mp4
    <root>/manipulated_sequences/<Method>/<c>/videos/000_003.mp4      target 000, source 003

Ids: `FaceForensics++/youtube/000` (label 0) and `FaceForensics++/<Method>/000_003` (label 1). A pair
("a", "b") puts reals a and b and fakes a_b and b_a in its split. Videos in no split are not prepared:
they are listed as skipped with reason "not in any split" (training on them could leak test identities).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from dfake_cli.data.datasets import SPLITS, Manifest, VideoItem, register_dataset
from dfake_cli.errors import InputError

DATASET = "FaceForensics++"
CLASSIC_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
OPTIONAL_METHODS = ("FaceShifter",)
COMPRESSIONS = ("raw", "c23", "c40")


def find_root(root: str | Path, compression: str = "c23") -> Path:
    """The FaceForensics++ folder: `root` itself or `root/FaceForensics++`; else one line on what was expected."""
    root = Path(root).expanduser()
    for cand in (root, root / DATASET):
        if (cand / "original_sequences").is_dir() or (cand / "manipulated_sequences").is_dir():
            return cand
    raise InputError(
        f"{root} is not a FaceForensics++ tree: expected {root}/original_sequences/youtube/{compression}/videos/*.mp4 "
        f"and {root}/manipulated_sequences/<Method>/{compression}/videos/*.mp4"
    )


def read_splits(root: Path) -> dict[str, str]:
    """Map every id ("000") and fake name ("000_003", "003_000") to its split, from the official JSONs."""
    out: dict[str, str] = {}
    for split in SPLITS:
        path = root / f"{split}.json"
        if not path.is_file():
            raise InputError(
                f"split file missing: {path}; copy {split}.json from the FaceForensics repository's dataset/splits/"
            )
        try:
            pairs = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not valid JSON ({' '.join(str(exc).split())[:80]}); copy {split}.json "
                             "from the FaceForensics repository's dataset/splits/ again") from None
        # A dict, or pairs of anything but two ids, would be iterated character by character: refuse it.
        bad = not isinstance(pairs, list) or next((p for p in pairs if not _is_pair(p)), None) is not None
        if bad:
            what = type(pairs).__name__ if not isinstance(pairs, list) else repr(next(p for p in pairs if not _is_pair(p)))
            raise InputError(f"{path}: expected a JSON list of [id, id] pairs like [[\"953\", \"974\"], ...], "
                             f"found {what[:60]}")
        for a, b in ((str(a), str(b)) for a, b in pairs):
            for key in (a, b, f"{a}_{b}", f"{b}_{a}"):
                other = out.setdefault(key, split)
                if other != split and "test" in (other, split):  # test faces in training: a leak, refused
                    raise InputError(f"id {key} is listed in both {other}.json and {split}.json in {root}; "
                                     "each id and pair belongs to one split")
    return out


def _is_pair(p: object) -> bool:
    return (isinstance(p, list) and len(p) == 2
            and all(isinstance(v, (str, int)) and not isinstance(v, bool) and str(v).isdigit() for v in p))


def _videos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.mp4") if p.is_file()) if folder.is_dir() else []


def _parse_methods(methods: str | Iterable[str] | None) -> list[str] | None:
    if methods is None:
        return None
    if isinstance(methods, str):
        methods = methods.split(",")
    names = [m.strip() for m in methods if m and m.strip()]
    return names or None


@register_dataset("ffpp", aliases=("ff++", "faceforensics++", "faceforensics"))
def parse_ffpp(
    root: str | Path, compression: str = "c23", methods: str | Iterable[str] | None = None, **_: object
) -> Manifest:
    """Reals and fakes of one compression level, with splits and each fake's target/source originals."""
    if compression not in COMPRESSIONS:
        raise InputError(f"--compression {compression!r}: choose one of {', '.join(COMPRESSIONS)}")
    root = find_root(root, compression)
    real_dir = root / "original_sequences" / "youtube" / compression / "videos"
    if not real_dir.is_dir():
        raise InputError(f"{root} is not a FaceForensics++ {compression} tree: expected {real_dir}/*.mp4 "
                         f"(other levels: --compression raw|c23|c40)")
    split_of = read_splits(root)

    def method_dir(m: str) -> Path:
        return root / "manipulated_sequences" / m / compression / "videos"

    notes: list[str] = []
    wanted = _parse_methods(methods)
    if wanted is None:
        # The paper trains on the four classic methods; FaceShifter (and others) only when named.
        chosen = [m for m in CLASSIC_METHODS if method_dir(m).is_dir()]
        for m in CLASSIC_METHODS:
            if m not in chosen:
                notes.append(f"method {m} not found ({method_dir(m)}): not prepared")
        for m in OPTIONAL_METHODS:
            if method_dir(m).is_dir():
                notes.append(f"method {m} present but not prepared (the paper's recipe is the four classic "
                             f"methods): name it in --methods to include it")
    else:
        for m in wanted:
            if not method_dir(m).is_dir():
                raise InputError(f"--methods {m}: not found, expected {method_dir(m)}/*.mp4")
        chosen = list(dict.fromkeys(wanted))

    items: list[VideoItem] = []
    skipped: list[tuple[str, str, str, str]] = []
    reals: dict[str, Path] = {}
    for path in _videos(real_dir):
        name = path.stem
        reals[name] = path
        vid = f"{DATASET}/youtube/{name}"
        split = split_of.get(name)
        if split is None:
            skipped.append((vid, str(path), "not in any split", "id absent from train/val/test.json"))
            continue
        items.append(VideoItem(vid, path, 0, "youtube", split))
    present = {item.video_id for item in items}

    for m in chosen:
        for path in _videos(method_dir(m)):
            name = path.stem
            vid = f"{DATASET}/{m}/{name}"
            parts = name.split("_")
            if len(parts) != 2:
                skipped.append((vid, str(path), "unexpected name", "expected <target>_<source>.mp4"))
                continue
            split = split_of.get(name)
            if split is None:
                skipped.append((vid, str(path), "not in any split", "pair absent from train/val/test.json"))
                continue
            target, source = parts
            missing = [o for o in (target, source) if f"{DATASET}/youtube/{o}" not in present]
            if missing:
                where = ", ".join(str(real_dir / f"{o}.mp4") for o in missing)
                skipped.append((vid, str(path), "original missing", f"needs {where}"))
                continue
            items.append(VideoItem(
                vid, path, 1, m, split,
                target=f"{DATASET}/youtube/{target}", source=f"{DATASET}/youtube/{source}",
            ))
    if not items:
        raise InputError(f"no usable videos in {root} ({compression}): check the tree and the split JSONs")
    notes.insert(0, f"compression {compression}; methods: {', '.join(chosen) if chosen else '(none)'}")
    return Manifest("ffpp", root, items, notes, skipped)
