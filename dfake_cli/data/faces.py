"""Face detection (MTCNN), one-face tracking and 5-point similarity alignment.

Shared by `prepare` (caches), `detect` and `reconstruct`, so that every face the model sees went through
the same crop. Detection runs on a downscaled copy of each frame (MTCNN's cost grows with the pixel
count and faces in deepfake videos are large); the crop is taken from the full-resolution frame.

Speed (prepare spends most of its CPU here). The MTCNN nets run channels_last (same numbers, ~1.5x less
CPU: the NCHW max-pool kernel was a third of detection). `track` searches a video adaptively: once the
face it follows is known, later frames are searched only for faces of about that size (MTCNN's image
pyramid then starts much smaller), and every frame where that finds nothing to follow is searched again
at full range, so a frame is never skipped that the full search would have kept.

The crop maps the 5 landmarks (left eye, right eye, nose, left and right mouth corner) onto the ArcFace
112x112 template by a least-squares similarity transform (Umeyama), with the template shrunk by
1/margin around the crop centre so that some context around the face is kept.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

import cv2
import numpy as np

from dfake_cli.runtime import DEFAULT_MARGIN, DEFAULT_SIZE

# The 5-point template of ArcFace-style face recognition crops, in a 112x112 box:
# left eye, right eye, nose tip, left mouth corner, right mouth corner (image left/right).
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


@dataclass
class FaceAlignConfig:
    """How faces are found and cropped; stored in every cache so crops can be reproduced."""

    size: int = DEFAULT_SIZE
    margin: float = DEFAULT_MARGIN
    detect_size: int = 320  # long side of the frame copy given to MTCNN (never upscaled)
    # In pixels of the detection copy (32 at 320 = 64 px in a 640 frame); larger values mean fewer pyramid
    # levels and candidate boxes, the main cost of MTCNN on CPU.
    min_face_size: int = 32
    thresholds: tuple = (0.6, 0.7, 0.8)  # MTCNN's three stages (P-, R-, O-net)
    min_confidence: float = 0.8  # MTCNN probability below which a detection is ignored
    min_track_iou: float = 0.3  # a face must overlap the previous one this much to continue the track
    batch_size: int = 16  # frames per MTCNN call

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FaceAlignConfig":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if "thresholds" in known:
            known["thresholds"] = tuple(float(t) for t in known["thresholds"])
        return cls(**known)


@dataclass
class Face:
    """One detected face in frame coordinates: box (x1, y1, x2, y2), 5 landmarks (x, y), probability."""

    box: np.ndarray
    landmarks: np.ndarray
    confidence: float

    @property
    def area(self) -> float:
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))


def template(size: int, margin: float) -> np.ndarray:
    """The 5 landmark positions in a size x size crop: the 112 template centred and shrunk by 1/margin."""
    if margin <= 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    return (ARCFACE_TEMPLATE_112 - 56.0) / margin * (size / 112.0) + size / 2.0


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src to dst (Umeyama 1991).

    Returns the 2x3 matrix M with dst ~= M @ [src, 1]. Written out rather than using RANSAC-based
    estimators so that the same landmarks always give the same crop.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    n = src.shape[0]
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    sc, dc = src - mu_s, dst - mu_d
    cov = dc.T @ sc / n
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt
    var_s = (sc**2).sum() / n
    scale = float((s * d).sum() / var_s) if var_s > 0 else 1.0
    t = mu_d - scale * rot @ mu_s
    m = np.zeros((2, 3), dtype=np.float64)
    m[:, :2] = scale * rot
    m[:, 2] = t
    return m.astype(np.float32)


def transform_points(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to (k, 2) points."""
    pts = np.asarray(points, dtype=np.float64)
    return (pts @ np.asarray(m, dtype=np.float64)[:, :2].T + np.asarray(m, dtype=np.float64)[:, 2]).astype(
        np.float32
    )


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _mask_overlap(face: Face, mask: np.ndarray) -> float:
    """Number of non-zero mask pixels inside the face box (mask in frame coordinates)."""
    h, w = mask.shape[:2]
    x1, y1 = int(max(0, np.floor(face.box[0]))), int(max(0, np.floor(face.box[1])))
    x2, y2 = int(min(w, np.ceil(face.box[2]))), int(min(h, np.ceil(face.box[3])))
    if x2 <= x1 or y2 <= y1:
        return 0.0
    return float(np.count_nonzero(mask[y1:y2, x1:x2]))


def follow_track(
    detections: Sequence[Sequence[Face]], min_iou: float = 0.3, masks: Sequence[np.ndarray] | None = None
) -> list[Face | None]:
    """One face per frame: start at the first frame with a face and follow it by overlap, both ways.

    The start face is the largest one, or, with `masks` (one per frame, e.g. DFD manipulation masks), the
    one covering the most mask pixels at the first frame whose mask has any. A frame whose best overlap
    with the last followed face is under `min_iou` gets None: the crop never jumps to another person.
    """
    n = len(detections)
    out: list[Face | None] = [None] * n
    start = -1
    chosen: Face | None = None
    if masks is not None:
        for i, faces in enumerate(detections):
            if faces and i < len(masks) and masks[i] is not None and np.any(masks[i]):
                scored = [(_mask_overlap(f, masks[i]), f.area, k) for k, f in enumerate(faces)]
                best = max(scored)
                if best[0] > 0:
                    start, chosen = i, faces[best[2]]
                    break
    if chosen is None:
        for i, faces in enumerate(detections):
            if faces:
                start = i
                chosen = max(faces, key=lambda f: f.area)
                break
    if chosen is None:
        return out
    out[start] = chosen
    for order in (range(start + 1, n), range(start - 1, -1, -1)):
        last = chosen
        for i in order:
            if not detections[i]:
                continue
            overlaps = [iou(last.box, f.box) for f in detections[i]]
            k = int(np.argmax(overlaps))
            if overlaps[k] >= min_iou:
                out[i] = detections[i][k]
                last = out[i]
    return out


def _to_faces(boxes, probs, points, sx: float, sy: float, min_conf: float) -> list[Face]:
    """MTCNN's object arrays for one frame -> Faces in full-frame coordinates."""
    if boxes is None:
        return []
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4) / np.array([sx, sy, sx, sy], dtype=np.float32)
    p = np.asarray(probs, dtype=np.float32).reshape(-1)
    lm = np.asarray(points, dtype=np.float32).reshape(-1, 5, 2) / np.array([sx, sy], dtype=np.float32)
    return [Face(b[k], lm[k], float(p[k])) for k in range(len(b)) if p[k] >= min_conf]


# Adaptive search: later frames of a video look for faces of at least this fraction of the followed face's
# shorter box side (in detection-copy pixels). MTCNN still finds a face somewhat under its minimum size, and
# a frame where nothing is found to follow is searched again at full range.
SEARCH_RATIO = 0.6


PYRAMID_FACTOR = 0.709  # MTCNN's scale step between pyramid levels (facenet-pytorch's default)


def search_min_size(face: Face, scale: float, floor: int, ratio: float | None = None) -> float:
    """The MTCNN minimum face size (detection-copy pixels) for the rest of a video that follows `face`.

    Snapped to the full search's own pyramid (floor / 0.709^k): the narrowed search then runs exactly the
    coarser levels of the full one (the same resized images, the same P-Net outputs) and only drops the
    fine levels, where a face of this size is not what is found.
    """
    ratio = SEARCH_RATIO if ratio is None else ratio
    side = min(face.box[2] - face.box[0], face.box[3] - face.box[1]) * scale
    size = float(floor)
    while size / PYRAMID_FACTOR <= ratio * side:
        size /= PYRAMID_FACTOR
    return size


@dataclass
class FaceExtractor:
    """MTCNN detection + tracking + alignment with one config; `timings` accumulates seconds per stage.

    `adaptive=False` makes `track` search every frame at full range (the reference the adaptive search is
    tested against).
    """

    config: FaceAlignConfig = field(default_factory=FaceAlignConfig)
    device: str = "cpu"
    timings: dict = field(default_factory=lambda: {"detect": 0.0, "align": 0.0})
    adaptive: bool = True

    def __post_init__(self) -> None:
        self._mtcnn = None
        self._template = template(self.config.size, self.config.margin)

    @property
    def mtcnn(self):
        """Loaded on first use (its weights ship inside the facenet-pytorch wheel: works offline)."""
        if self._mtcnn is None:
            import torch  # noqa: F401  (before anything that could pull decord)
            from facenet_pytorch import MTCNN

            self._mtcnn = MTCNN(
                keep_all=True, device=self.device, min_face_size=self.config.min_face_size,
                thresholds=list(self.config.thresholds), post_process=False,
            )
            for net in (self._mtcnn.pnet, self._mtcnn.rnet, self._mtcnn.onet):
                net.to(memory_format=torch.channels_last)  # identical outputs, much faster CPU pooling
        return self._mtcnn

    def _scale_for(self, h: int, w: int) -> float:
        long_side = max(h, w)
        return min(1.0, self.config.detect_size / long_side) if long_side > 0 else 1.0

    def too_small(self, h: int, w: int) -> bool:
        """True when no face of at least `min_face_size` px can fit in the detection copy of an h x w frame.

        MTCNN's image pyramid is empty for such a frame (a 6x6 icon, a 30000x2 strip) and it fails with
        `torch.cat(): expected a non-empty list`; such a frame simply has no face.
        """
        scale = self._scale_for(h, w)
        return min(h, w) * scale < self.config.min_face_size

    def detect(self, frames: np.ndarray | Sequence[np.ndarray], min_size: float | None = None) -> list[list[Face]]:
        """All faces (probability >= min_confidence) in each uint8 RGB frame, in frame coordinates.

        Frames of one size go through MTCNN in batches of `batch_size` on a copy whose long side is at
        most `detect_size`. `min_size` (detection-copy pixels) narrows the search to larger faces.
        """
        t0 = time.perf_counter()
        self.mtcnn.min_face_size = min_size or self.config.min_face_size
        frames = list(frames) if not isinstance(frames, np.ndarray) else frames
        out: list[list[Face]] = []
        i = 0
        while i < len(frames):
            h, w = frames[i].shape[:2]
            j = i + 1
            while j < len(frames) and j - i < self.config.batch_size and frames[j].shape[:2] == (h, w):
                j += 1
            if self.too_small(h, w):
                out.extend([] for _ in range(j - i))
                i = j
                continue
            scale = self._scale_for(h, w)
            if scale < 1.0:
                size = (max(1, round(w * scale)), max(1, round(h * scale)))
                small = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames[i:j]])
                sx, sy = size[0] / w, size[1] / h
            else:
                small = np.stack([np.ascontiguousarray(f) for f in frames[i:j]])
                sx = sy = 1.0
            boxes, probs, points = self.mtcnn.detect(small, landmarks=True)
            for k in range(j - i):
                out.append(_to_faces(boxes[k], probs[k], points[k], sx, sy, self.config.min_confidence))
            i = j
        self.timings["detect"] += time.perf_counter() - t0
        return out

    def track(
        self, frames: np.ndarray | Sequence[np.ndarray], masks: Sequence[np.ndarray] | None = None
    ) -> list[Face | None]:
        """One face per frame for a video: see `follow_track`; adaptive search (module docstring)."""
        if not self.adaptive or masks is not None or len(frames) < 2:
            return follow_track(self.detect(frames), self.config.min_track_iou, masks)
        n = len(frames)
        floor = self.config.min_face_size
        detections: list[list[Face]] = []
        narrowed = [False] * n
        min_size = None  # full range until the face to follow is known
        step = 1  # the first frame alone: its faces set the search size for the rest
        while len(detections) < n:
            a = len(detections)
            b = min(n, a + step)
            detections += self.detect(frames[a:b], min_size)
            narrowed[a:b] = [min_size is not None] * (b - a)
            step = self.config.batch_size
            if min_size is None:
                start = next((faces for faces in detections if faces), None)
                if start is not None:
                    h, w = frames[0].shape[:2]
                    min_size = search_min_size(max(start, key=lambda f: f.area), self._scale_for(h, w), floor)
        track = follow_track(detections, self.config.min_track_iou)
        again = [i for i in range(n) if narrowed[i] and track[i] is None]
        if again:
            for i, faces in zip(again, self.detect([frames[i] for i in again])):
                detections[i] = faces
            track = follow_track(detections, self.config.min_track_iou)
        return track

    def matrix(self, face: Face) -> np.ndarray:
        """The 2x3 similarity transform taking the frame to the aligned crop."""
        return similarity_transform(face.landmarks, self._template)

    def warp(self, frame: np.ndarray, m: np.ndarray) -> np.ndarray:
        """Apply a known transform: a target face pixel-aligned with its fake uses the fake's matrix."""
        t0 = time.perf_counter()
        s = self.config.size
        crop = cv2.warpAffine(
            np.ascontiguousarray(frame), np.asarray(m, dtype=np.float64), (s, s),
            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0,
        )
        self.timings["align"] += time.perf_counter() - t0
        return crop

    def align(self, frame: np.ndarray, face: Face) -> tuple[np.ndarray, np.ndarray]:
        """(crop uint8 (S, S, 3), M float32 (2, 3)) for `face` in `frame`."""
        m = self.matrix(face)
        return self.warp(frame, m), m

    def extract_image(self, image: np.ndarray) -> tuple[np.ndarray, Face] | None:
        """The largest face of a single image, aligned; None when there is no face."""
        faces = self.detect([image])[0]
        if not faces:
            return None
        face = max(faces, key=lambda f: f.area)
        crop, _ = self.align(image, face)
        return crop, face
