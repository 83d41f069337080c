"""The identities of the sample data: public-domain portraits that ship inside installed packages.

Only three usable portraits travel with our dependencies (no network is ever used):
  * matplotlib `mpl-data/sample_data/grace_hopper.jpg`: Rear Admiral Grace Hopper, US Navy photo (public domain);
  * scikit-image `data/astronaut.png`: astronaut Eileen Collins, NASA (public domain);
  * scikit-image `data/camera.png`: "cameraman" by Lav Varshney (CC0), grey-level, a profile view.
(`skimage.data.lfw_subset()` has faces too, but 25x25 LFW crops are neither usable nor public domain.)

A deepfake set needs more people than that, so each identity is a base portrait plus a deterministic
change: mirroring, a warp of the face shape (jaw width, face length), a skin-tone shift, a hair-colour
shift and a background/clothes tint. The face box and landmarks follow those changes exactly; the tests
check that MTCNN still detects every identity in the videos.
Derived identities that share a base portrait are not independent people; sample_data/README.md says so.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dfake_cli.sampledata.determinism import portable_cv2
from dfake_cli.sampledata.landmarks import Detection, quantise, detect_portrait

BASES = {
    "hopper": "matplotlib mpl-data/sample_data/grace_hopper.jpg (US Navy photo, public domain)",
    "collins": "scikit-image data/astronaut.png (NASA photo of Eileen Collins, public domain)",
    "cameraman": "scikit-image data/camera.png (photo by Lav Varshney, CC0), colourised",
}


@dataclass(frozen=True)
class IdentitySpec:
    """How one identity is derived from its base portrait (all changes are deterministic)."""

    name: str
    base: str
    mirror: bool = False
    jaw: float = 1.0  # horizontal scale of the lower face (>1 wider)
    length: float = 1.0  # vertical scale of the lower face (>1 longer)
    skin: tuple[float, float, float] = (0.0, 0.0, 0.0)  # LAB shift inside the face
    hair: tuple[float, float, float] = (0.0, 0.0, 0.0)  # LAB shift above the face
    background: tuple[int, int, int] | None = None  # RGB tint blended outside the head
    background_strength: float = 0.0

    def describe(self) -> str:
        parts = [self.base + (" mirrored" if self.mirror else "")]
        if self.jaw != 1.0 or self.length != 1.0:
            parts.append(f"face shape jaw x{self.jaw:.2f}, length x{self.length:.2f}")
        if any(self.skin):
            parts.append("skin LAB %+g/%+g/%+g" % self.skin)
        if any(self.hair):
            parts.append("hair LAB %+g/%+g/%+g" % self.hair)
        if self.background is not None and self.background_strength > 0:
            parts.append(f"background tint {self.background} at {self.background_strength:.2f}")
        return "; ".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)


# Order matters: sample_data assigns identities by position (see generate.py); append, never reorder.
IDENTITIES: tuple[IdentitySpec, ...] = (
    IdentitySpec("hopper", "hopper"),
    IdentitySpec("collins", "collins"),
    IdentitySpec("cameraman", "cameraman"),
    IdentitySpec("hopper-m", "hopper", mirror=True, jaw=1.10, skin=(4, 6, 10), hair=(-25, 2, 6),
                 background=(60, 90, 150), background_strength=0.45),
    IdentitySpec("collins-m", "collins", mirror=True, jaw=0.92, length=1.08, skin=(-22, 8, 14),
                 hair=(-30, 0, -4), background=(70, 120, 80), background_strength=0.4),
    IdentitySpec("cameraman-b", "cameraman", jaw=1.08, length=0.95, skin=(-12, 10, 18), hair=(-10, 6, 12),
                 background=(150, 110, 80), background_strength=0.35),
    IdentitySpec("hopper-c", "hopper", length=1.10, jaw=0.94, skin=(8, -2, -6), hair=(30, 4, 24),
                 background=(170, 140, 100), background_strength=0.45),
    IdentitySpec("collins-c", "collins", jaw=1.10, length=0.94, skin=(-10, -4, 16), hair=(-35, 4, 0),
                 background=(90, 90, 110), background_strength=0.5),
    # Celeb-DF miniature identities.
    IdentitySpec("hopper-d", "hopper", mirror=True, jaw=0.95, length=1.05, skin=(-16, 12, 20),
                 hair=(-35, 0, 0), background=(120, 60, 60), background_strength=0.5),
    IdentitySpec("collins-d", "collins", mirror=True, jaw=1.06, skin=(6, 4, 0), hair=(25, 6, 30),
                 background=(40, 70, 120), background_strength=0.5),
    IdentitySpec("collins-e", "collins", length=1.06, jaw=0.96, skin=(-28, 10, 22), hair=(-40, 0, 0),
                 background=(120, 120, 60), background_strength=0.45),
    IdentitySpec("cameraman-d", "cameraman", mirror=True, jaw=0.94, skin=(-20, 8, 14),
                 background=(60, 100, 100), background_strength=0.4),
    IdentitySpec("hopper-e", "hopper", jaw=1.06, length=0.96, skin=(-6, 2, 24), hair=(10, 10, 28),
                 background=(90, 130, 90), background_strength=0.45),
)


def identities() -> list[str]:
    """Names of every identity, in catalogue order (index i <-> identities()[i])."""
    return [spec.name for spec in IDENTITIES]


def spec_of(name_or_index: str | int) -> IdentitySpec:
    if isinstance(name_or_index, (int, np.integer)):
        if not 0 <= int(name_or_index) < len(IDENTITIES):
            raise ValueError(f"identity index {name_or_index} out of range 0..{len(IDENTITIES) - 1}")
        return IDENTITIES[int(name_or_index)]
    for spec in IDENTITIES:
        if spec.name == name_or_index:
            return spec
    raise ValueError(f"unknown identity {name_or_index!r}; known: {', '.join(identities())}")


@functools.lru_cache(maxsize=None)
def base_image(base: str) -> np.ndarray:
    """A base portrait as uint8 RGB, read from the package that ships it."""
    from PIL import Image

    if base == "hopper":
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        with Image.open(path) as im:
            img = np.asarray(im.convert("RGB"))
    elif base == "collins":
        import skimage.data

        img = skimage.data.astronaut()
    elif base == "cameraman":
        import skimage.data

        grey = skimage.data.camera().astype(np.float32)
        # A warm tone map so the grey photo is a plausible colour face (colour matching needs chroma).
        img = np.clip(grey[..., None] * np.array([1.06, 0.95, 0.82], np.float32) + [10, 6, 0], 0, 255)
        img = img.round().astype(np.uint8)
    else:
        raise ValueError(f"unknown base portrait {base!r}; known: {', '.join(BASES)}")
    img = np.ascontiguousarray(img, dtype=np.uint8)
    img.setflags(write=False)
    return img


def _ellipse_mask(shape: tuple[int, int], centre, axes, blur: float) -> np.ndarray:
    import cv2

    mask = np.zeros(shape, np.float32)
    cv2.ellipse(mask, (int(round(centre[0])), int(round(centre[1]))),
                (max(1, int(round(axes[0]))), max(1, int(round(axes[1])))), 0, 0, 360, 1.0, -1)
    k = int(blur * 3) | 1
    return cv2.GaussianBlur(mask, (k, k), blur)


def _shift_lab(img: np.ndarray, mask: np.ndarray, shift) -> np.ndarray:
    import cv2

    lab = cv2.cvtColor(img.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    lab += mask[..., None] * np.asarray(shift, np.float32)
    lab[..., 0] = np.clip(lab[..., 0], 0, 100)
    rgb = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=None)
def base_face(base: str) -> Detection:
    """MTCNN's detection on a base portrait (once per process: float64 MTCNN is the slow part)."""
    found = detect_portrait(base_image(base))
    if found is None:
        raise RuntimeError(f"MTCNN finds no face in base portrait {base!r}")
    return found


def _mirror(found: Detection, width: int) -> Detection:
    """The detection of the mirrored image: x -> width - 1 - x, left and right swapped."""
    x1, y1, x2, y2 = found.box
    box = np.array([width - 1 - x2, y1, width - 1 - x1, y2], np.float32)
    lm = found.landmarks[[1, 0, 2, 4, 3]].copy()
    lm[:, 0] = width - 1 - lm[:, 0]
    return Detection(box, lm, found.confidence)


def _moved(points: np.ndarray, cx: float, eye_y: float, factors) -> np.ndarray:
    """Where the shape warp moves `points` (K, 2): inverts its backward map by fixed-point iteration."""
    pts = np.asarray(points, np.float64)
    out = pts.copy()
    for _ in range(50):
        wx, wy = factors(out[:, 0], out[:, 1])
        out = np.stack([cx + (pts[:, 0] - cx) * wx, eye_y + (pts[:, 1] - eye_y) * wy], axis=1)
    return out


def _derive(spec: IdentitySpec) -> tuple[np.ndarray, Detection]:
    """The identity's portrait and its face; the face is moved analytically, not re-detected.

    Tracking the face through mirroring and the shape warp keeps MTCNN to one (float64) run per base
    photo; tests check that MTCNN still finds every identity's face in the videos.
    """
    import cv2

    img = base_image(spec.base)
    found = base_face(spec.base)
    if spec.mirror:
        found = _mirror(found, img.shape[1])
        img = np.ascontiguousarray(img[:, ::-1])
    x1, y1, x2, y2 = (float(v) for v in found.box)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    u = (x2 - x1) / 2  # half the face width: the unit of every region below
    eye_y = float(found.landmarks[:2, 1].astype(np.float64).mean())
    h, w = img.shape[:2]

    def factors(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        falloff = np.exp(-(((xs - cx) / (1.6 * u)) ** 2 + ((ys - cy) / (2.0 * u)) ** 2))
        below = np.clip((ys - eye_y) / (0.6 * u), 0, 1)  # only the lower face changes shape
        return 1 + (spec.jaw - 1) * falloff * below, 1 + (spec.length - 1) * falloff * below

    if spec.jaw != 1.0 or spec.length != 1.0:
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
        wx, wy = factors(xs, ys)
        # Snap to remap's 1/32-pixel grid in float64, so last-bit differences of exp() between CPUs
        # cannot move a sample to another grid cell.
        map_x = (np.round((cx + (xs - cx) / wx) * 32) / 32).astype(np.float32)
        map_y = (np.round((eye_y + (ys - eye_y) / wy) * 32) / 32).astype(np.float32)
        img = cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        lm = _moved(found.landmarks, cx, eye_y, factors)
        corners = _moved(np.array([[x1, y1], [x2, y1], [x1, y2], [x2, y2]]), cx, eye_y, factors)
        box = np.concatenate([corners.min(0), corners.max(0)])
        found = Detection(quantise(box), quantise(lm), found.confidence)

    face = _ellipse_mask((h, w), (cx, cy + 0.1 * u), (0.85 * u, 1.15 * u), 0.15 * u)
    if any(spec.skin):
        img = _shift_lab(img, face, spec.skin)
    if any(spec.hair):
        hair = _ellipse_mask((h, w), (cx, cy - 0.9 * u), (1.5 * u, 1.0 * u), 0.2 * u)
        img = _shift_lab(img, np.clip(hair - 1.5 * face, 0, 1), spec.hair)
    if spec.background is not None and spec.background_strength > 0:
        head = _ellipse_mask((h, w), (cx, cy - 0.2 * u), (1.7 * u, 1.9 * u), 0.3 * u)
        ys = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
        tint = np.asarray(spec.background, np.float32) * (0.75 + 0.5 * ys)  # a vertical gradient
        alpha = spec.background_strength * (1 - head)[..., None]
        img = np.clip(img * (1 - alpha) + tint * alpha + 0.5, 0, 255).astype(np.uint8)
    return img, found


@functools.lru_cache(maxsize=None)
def _portrait_cached(name: str) -> tuple[np.ndarray, Detection]:
    with portable_cv2():
        img, found = _derive(spec_of(name))
    img = np.array(img)  # own, contiguous
    img.setflags(write=False)
    return img, found


def portrait(name_or_index: str | int) -> np.ndarray:
    """The identity's portrait, uint8 RGB (H, W, 3) (a copy; cached after the first call)."""
    return _portrait_cached(spec_of(name_or_index).name)[0].copy()


def portrait_face(name_or_index: str | int) -> Detection:
    """The face (box, 5 landmarks) on the identity's portrait: MTCNN's on the base photo, moved along."""
    return _portrait_cached(spec_of(name_or_index).name)[1]
