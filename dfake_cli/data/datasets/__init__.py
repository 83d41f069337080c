"""Dataset parsers: one module per on-disk layout, registered by name, each returning a Manifest.

A parser only reads the tree (paths, split files, labels); it never decodes a video. Decoding,
detection and caching belong to `dfake_cli.data.prepare`, so every dataset gets the same crops.

    @register_dataset("ffpp", aliases=("ff++",))
    def parse_ffpp(root, **options) -> Manifest: ...

    get_parser("ff++")(root, compression="c23") -> Manifest
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

from dfake_cli.errors import InputError

KINDS = ("video", "image", "frames")
SPLITS = ("train", "val", "test")


@dataclass
class VideoItem:
    """One unit of a dataset: a video, an image, or a folder/list of already-cropped face frames.

    `video_id` is unique across datasets: `<dataset>/<method>/<name>`. label 0 = real, 1 = fake.
    `target` / `source` are the video_ids of the originals a fake was made from (FF++ `T_S`: target T,
    source S); they must name other items of the same manifest. `mask_path` is a mask video (DFD) used to
    pick the manipulated face. `frames` lists image files for kind "frames" (else `path` is a folder of them).
    """

    video_id: str
    path: Path
    label: int
    method: str
    split: str
    kind: str = "video"
    target: Optional[str] = None
    source: Optional[str] = None
    mask_path: Optional[Path] = None
    frames: Optional[list[Path]] = None

    def __post_init__(self) -> None:
        from dfake_cli.io import printable

        self.video_id = printable(self.video_id)  # ids from non-UTF-8 file names: escaped, still unique
        self.method = printable(self.method)
        self.path = Path(self.path)
        if self.mask_path is not None:
            self.mask_path = Path(self.mask_path)
        if self.frames is not None:
            self.frames = [Path(p) for p in self.frames]
        if self.kind not in KINDS:
            raise ValueError(f"VideoItem.kind must be one of {KINDS}, got {self.kind!r}")
        if self.label not in (0, 1):
            raise ValueError(f"VideoItem.label must be 0 (real) or 1 (fake), got {self.label!r}")
        if self.split not in SPLITS:
            raise ValueError(f"VideoItem.split must be one of {SPLITS}, got {self.split!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = str(self.path)
        d["mask_path"] = None if self.mask_path is None else str(self.mask_path)
        d["frames"] = None if self.frames is None else [str(p) for p in self.frames]
        return d


@dataclass
class Manifest:
    """What a parser found: the items to prepare, plus what it skipped and notes for the summary.

    `skipped` holds (video_id, path, reason, detail) for videos the parser already knows it cannot use
    (reason a short category such as "not in any split" or "original missing", detail free text); they go
    to the skipped CSV and are counted in the summary like the videos preparation itself skips.
    """

    dataset: str
    root: Path
    items: list[VideoItem]
    notes: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        seen: set[str] = set()
        for item in self.items:
            if item.video_id in seen:
                raise ValueError(f"duplicate video_id in manifest: {item.video_id}")
            seen.add(item.video_id)

    def by_id(self) -> dict[str, VideoItem]:
        return {item.video_id: item for item in self.items}


Parser = Callable[..., Manifest]
DATASETS: dict[str, Parser] = {}
_ALIASES: dict[str, str] = {}


def register_dataset(name: str, aliases: tuple[str, ...] = ()) -> Callable[[Parser], Parser]:
    """Decorator: make `fn(root, **options) -> Manifest` available as get_parser(name)."""

    def deco(fn: Parser) -> Parser:
        DATASETS[name] = fn
        for alias in aliases:
            _ALIASES[alias.lower()] = name
        return fn

    return deco


def _load_all() -> None:
    """Import every module of this package: each registers its parsers (no central list to edit)."""
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


def get_parser(name: str) -> Parser:
    """The parser registered as `name` (or an alias), or a one-line InputError listing the known ones."""
    _load_all()
    key = _ALIASES.get(name.lower(), name)
    if key not in DATASETS:
        lowered = {k.lower(): k for k in DATASETS}
        key = lowered.get(key.lower(), key)
    if key not in DATASETS:
        known = ", ".join(sorted(DATASETS))
        raise InputError(f"unknown dataset {name!r}; known: {known}")
    return DATASETS[key]
