"""`dfake detect PATH...`: fake probability per image or video with the detector only (no Stable Diffusion).

Faces are found and aligned exactly as preparation does (the checkpoint records the alignment); a video's
probability is the mean over evenly spaced frames that show a face. A file without a face, or one that
cannot be read, gets a status of its own instead of stopping the run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

from dfake_cli.errors import InputError
from dfake_cli.runtime import check_device
from dfake_cli.workspace import Workspace

OK = "ok"
NO_FACE = "no face"
NOT_FOUND = "not found"


@dataclass
class FileScore:
    """One file's outcome: p(fake) and verdict when status is "ok", else why it has none."""

    path: str
    kind: str  # "image" | "video"
    status: str = OK  # ok | no face | not found | unreadable: <why>
    prob_fake: Optional[float] = None
    label: Optional[str] = None  # "fake" when prob_fake >= 0.5, else "real"
    frames: int = 0  # faces the probability is the mean of


@dataclass
class DetectResult:
    checkpoint: str
    results: list[FileScore] = field(default_factory=list)

    @property
    def any_scored(self) -> bool:
        return any(r.status == OK for r in self.results)

    def to_dict(self) -> dict:
        """`dfake detect --json`: {"checkpoint": ..., "results": [one object per file]}."""
        return {"checkpoint": self.checkpoint, "results": [asdict(r) for r in self.results]}


def expand_paths(paths: list[str]) -> list[Path]:
    """Files as given; folders expand to the images and videos inside them (recursively, sorted)."""
    from dfake_cli.data.video import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

    out: list[Path] = []
    for arg in paths:
        p = Path(arg).expanduser()
        if p.is_dir():
            exts = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in exts)
        else:
            out.append(p)
    return out


def score_file(path: Path, detector, extractor, frames: int) -> FileScore:
    """Find, align and score the face(s) of one image or video; never raises for a bad file."""
    import numpy as np

    from dfake_cli.data.video import VIDEO_EXTENSIONS, VideoReadError, read_frames, read_image

    row = FileScore(path=str(path), kind="video" if path.suffix.lower() in VIDEO_EXTENSIONS else "image")
    if not path.is_file():
        row.status = NOT_FOUND
        return row
    try:
        if row.kind == "video":
            clip, _ = read_frames(path, num=frames)
            faces = extractor.track(clip)
            crops = [extractor.align(f, face)[0] for f, face in zip(clip, faces) if face is not None]
        else:
            image = read_image(path)
            if extractor.too_small(*image.shape[:2]):
                row.status = f"too small: {image.shape[1]}x{image.shape[0]} px cannot hold a face"
                return row
            found = extractor.extract_image(image)
            crops = [found[0]] if found is not None else []
    except VideoReadError as exc:
        row.status = f"unreadable: {exc}"
        return row
    if not crops:
        row.status = NO_FACE
        return row
    row.prob_fake = float(detector.predict_proba(np.stack(crops)).mean())
    row.label = "fake" if row.prob_fake >= 0.5 else "real"
    row.frames = len(crops)
    return row


def run_detect(
    workspace: Workspace, paths: list[str], checkpoint: Optional[str] = None, frames: int = 32,
    device: Optional[str] = None, on_file: Optional[Callable[[int, int], None]] = None,
) -> DetectResult:
    """Score every file (folders expanded); `on_file(done, total)` after each one (progress)."""
    from dfake_cli.data.faces import FaceAlignConfig, FaceExtractor
    from dfake_cli.models.checkpoints import resolve_checkpoint
    from dfake_cli.models.detector import Detector

    if frames < 1:
        raise InputError(f"--frames {frames}: use at least 1")
    dev = check_device(device)  # checked before anything is read or loaded
    ckpt = resolve_checkpoint(workspace, checkpoint)
    if ckpt is None:
        raise InputError(
            f"no trained model in workspace {workspace.root}: run 'dfake train' first or pass --checkpoint RUN|DIR"
        )
    files = expand_paths(paths)
    if not files:
        raise InputError("no images or videos found in the given paths")
    detector = Detector.from_pretrained(ckpt, device=dev)
    extractor = FaceExtractor(FaceAlignConfig.from_dict(detector.face_align), device=dev)
    result = DetectResult(checkpoint=str(ckpt))
    for i, path in enumerate(files):
        result.results.append(score_file(path, detector, extractor, frames))
        if on_file is not None:
            on_file(i + 1, len(files))
    return result
