"""Face manipulation recipes for the sample data, made the way deepfakes are made.

Every recipe aligns the source face onto the target frame with the similarity transform between their
5 landmarks (Umeyama), then blends part of it in. They differ where real methods differ:

* `Deepfakes`   identity swap: low-resolution "decoder output" (resampled), full colour transfer, a large
                ellipse mask with a wide soft edge, slight per-frame landmark jitter (flicker).
* `FaceSwap`    identity swap, graphics style: a face-outline polygon (landmark hull) with a sharp seam,
                a mid-resolution (x0.6) face and a partial, mean-only colour correction.
* `Face2Face`   expression reenactment: only the mouth region comes from the source, re-rendered smooth
                (resampled x0.5 and blurred).
* `NeuralTextures` reenactment: mouth and eye regions from the source through a texture-like filter
                (edge-preserving smoothing + coarse resampling), as a rendered neural texture looks.
* `CelebDF`     the Celeb-DF miniature's own recipe, deliberately different: a rounded-rectangle mask,
                a resampled and colour-shifted face, Poisson (seamless) cloning instead of alpha blending.

Fake frame i is built from target frame i and source frame min(i, len(source) - 1), as in FF++.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dfake_cli.sampledata.determinism import portable_cv2
from dfake_cli.sampledata.landmarks import LEFT_EYE, MOUTH_LEFT, MOUTH_RIGHT, RIGHT_EYE, track_landmarks

FFPP_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
RECIPES = FFPP_METHODS + ("CelebDF",)
IDENTITY_SWAPS = ("Deepfakes", "FaceSwap", "CelebDF")  # the source donates identity, not expression


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src points onto dst: 2x3."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    cov = b.T @ a / len(src)
    u, d, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rot = u @ sign @ vt
    var = (a ** 2).sum() / len(src)
    scale = float(np.trace(np.diag(d) @ sign) / var) if var > 0 else 1.0
    mat = np.zeros((2, 3))
    mat[:, :2] = scale * rot
    mat[:, 2] = mu_d - scale * rot @ mu_s
    return mat


@dataclass(frozen=True)
class FaceFrame:
    """A face-aligned coordinate frame: origin between the eyes, x along the eye line, y down, unit u."""

    origin: np.ndarray
    x_axis: np.ndarray
    y_axis: np.ndarray
    unit: float

    @classmethod
    def from_landmarks(cls, lm: np.ndarray) -> "FaceFrame":
        lm = np.asarray(lm, np.float64)
        eyes = (lm[LEFT_EYE] + lm[RIGHT_EYE]) / 2
        mouth = (lm[MOUTH_LEFT] + lm[MOUTH_RIGHT]) / 2
        d = lm[RIGHT_EYE] - lm[LEFT_EYE]
        iod = float(np.hypot(*d))
        x_axis = d / iod if iod > 1e-6 else np.array([1.0, 0.0])
        y_axis = np.array([-x_axis[1], x_axis[0]])
        # A profile face has a short eye distance; the eye-mouth distance keeps the unit face-sized.
        unit = max(iod, 0.75 * float(np.hypot(*(mouth - eyes))), 2.0)
        return cls(eyes, x_axis, y_axis, unit)

    def to_image(self, pts) -> np.ndarray:
        pts = np.asarray(pts, np.float64)
        return self.origin + self.unit * (pts[:, :1] * self.x_axis + pts[:, 1:2] * self.y_axis)

    @property
    def angle_deg(self) -> float:
        return float(np.degrees(np.arctan2(self.x_axis[1], self.x_axis[0])))


# Face outline in face-frame units (eyes at x = +-0.5, y = 0; mouth near y = 1).
_OUTLINE = [(-0.95, -0.45), (-0.5, -0.62), (0.5, -0.62), (0.95, -0.45), (1.05, 0.3), (0.9, 1.05),
            (0.5, 1.5), (0.0, 1.65), (-0.5, 1.5), (-0.9, 1.05), (-1.05, 0.3)]


def _rounded_rect(x0, y0, x1, y1, r, n=6) -> list[tuple[float, float]]:
    pts = []
    for cx, cy, start in ((x1 - r, y0 + r, -90), (x1 - r, y1 - r, 0), (x0 + r, y1 - r, 90), (x0 + r, y0 + r, 180)):
        for k in range(n + 1):
            a = np.radians(start + 90 * k / n)
            pts.append((cx + r * np.cos(a), cy + r * np.sin(a)))
    return pts


def _ellipse(mask: np.ndarray, frame: FaceFrame, centre_img, axes_units) -> None:
    import cv2

    cv2.ellipse(mask, (int(round(centre_img[0])), int(round(centre_img[1]))),
                (max(1, int(round(axes_units[0] * frame.unit))), max(1, int(round(axes_units[1] * frame.unit)))),
                frame.angle_deg, 0, 360, 1.0, -1)


def _polygon(mask: np.ndarray, frame: FaceFrame, pts_units) -> None:
    import cv2

    poly = np.round(frame.to_image(pts_units)).astype(np.int32)
    cv2.fillPoly(mask, [poly], 1.0)


def _soften(mask: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    if sigma <= 0:
        return mask
    return cv2.GaussianBlur(mask, (0, 0), sigma)


def region_mask(shape: tuple[int, int], lm: np.ndarray, recipe: str) -> np.ndarray:
    """The recipe's blending mask on a frame with landmarks `lm`: float32 (H, W) in [0, 1]."""
    frame = FaceFrame.from_landmarks(lm)
    lm = np.asarray(lm, np.float64)
    mask = np.zeros(shape, np.float32)
    u = frame.unit
    if recipe == "Deepfakes":
        _ellipse(mask, frame, frame.to_image([(0.0, 0.55)])[0], (0.95, 1.15))
        return _soften(mask, 0.18 * u)
    if recipe == "FaceSwap":
        _polygon(mask, frame, _OUTLINE)
        return _soften(mask, 0.6)
    mouth = (lm[MOUTH_LEFT] + lm[MOUTH_RIGHT]) / 2
    if recipe == "Face2Face":
        _ellipse(mask, frame, mouth - 0.05 * u * frame.y_axis, (0.7, 0.5))
        return _soften(mask, 0.08 * u)
    if recipe == "NeuralTextures":
        _ellipse(mask, frame, mouth - 0.1 * u * frame.y_axis, (0.6, 0.4))
        for eye in (lm[LEFT_EYE], lm[RIGHT_EYE]):
            _ellipse(mask, frame, eye, (0.33, 0.22))
        return _soften(mask, 0.07 * u)
    if recipe == "CelebDF":
        _polygon(mask, frame, _rounded_rect(-0.85, -0.5, 0.85, 1.4, 0.4))
        return mask  # seamless cloning makes its own soft transition
    raise ValueError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")


def color_transfer(src: np.ndarray, ref: np.ndarray, mask: np.ndarray, match_std: bool = True) -> np.ndarray:
    """Reinhard colour transfer in LAB: give `src`'s masked pixels the statistics of `ref`'s."""
    import cv2

    sel = mask > 0.5
    if sel.sum() < 16:
        return src
    s = cv2.cvtColor(src.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    r = cv2.cvtColor(ref.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    # Statistics in float64: summation order (SIMD width) then cannot change the float32 result.
    ss, rr = s[sel].astype(np.float64), r[sel].astype(np.float64)
    mu_s, mu_r = ss.mean(0), rr.mean(0)
    if match_std:
        gain = (rr.std(0) + 1e-3) / (ss.std(0) + 1e-3)
        s = ((s - mu_s) * gain + mu_r).astype(np.float32)
    else:
        s = (s - mu_s + mu_r).astype(np.float32)
    s[..., 0] = np.clip(s[..., 0], 0, 100)
    out = cv2.cvtColor(s, cv2.COLOR_LAB2RGB)
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)


def resample(img: np.ndarray, factor: float) -> np.ndarray:
    """Down- then up-sample (a generator's low output resolution)."""
    import cv2

    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, int(round(w * factor))), max(1, int(round(h * factor)))),
                       interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _blend(src: np.ndarray, dst: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[..., None]
    return np.clip(src.astype(np.float32) * m + dst.astype(np.float32) * (1 - m) + 0.5, 0, 255).astype(np.uint8)


def _seamless(src: np.ndarray, dst: np.ndarray, mask: np.ndarray) -> np.ndarray:
    import cv2

    m = (mask > 0.5).astype(np.uint8) * 255
    m[:3], m[-3:], m[:, :3], m[:, -3:] = 0, 0, 0, 0  # cloning needs a margin inside the frame
    ys, xs = np.nonzero(m)
    if len(xs) < 16:
        return dst.copy()
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    centre = (int((x0 + x1 + 1) // 2), int((y0 + y1 + 1) // 2))
    return cv2.seamlessClone(src, dst, m, centre, cv2.NORMAL_CLONE)


_JITTER = {"Deepfakes": 0.6, "FaceSwap": 0.25, "Face2Face": 0.25, "NeuralTextures": 0.25, "CelebDF": 0.8}


def manipulate_frame(target: np.ndarray, source: np.ndarray, lm_t: np.ndarray, lm_s: np.ndarray, recipe: str,
                     rng: np.random.Generator, shift: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One fake frame and its blending mask (float32 [0, 1], the region taken from the source)."""
    import cv2

    h, w = target.shape[:2]
    lm_t = np.asarray(lm_t, np.float64) + rng.normal(0, _JITTER[recipe], (5, 2))
    mat = umeyama(lm_s, lm_t)
    warped = cv2.warpAffine(source, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    mask = region_mask((h, w), lm_t, recipe)
    if recipe == "Deepfakes":
        warped = color_transfer(resample(warped, 0.45), target, mask)
        return _blend(warped, target, mask), mask
    if recipe == "FaceSwap":
        # A fitted 3D model's texture: mid resolution, and only part of the tone corrected.
        corrected = color_transfer(resample(warped, 0.6), target, mask, match_std=False)
        warped = cv2.addWeighted(corrected, 0.7, resample(warped, 0.6), 0.3, 0)
        return _blend(warped, target, mask), mask
    if recipe == "Face2Face":
        # The re-rendered lower face is smooth: a model render lacks the skin's fine detail.
        warped = color_transfer(cv2.GaussianBlur(resample(warped, 0.5), (0, 0), 0.8), target, mask)
        return _blend(warped, target, mask), mask
    if recipe == "NeuralTextures":
        textured = resample(cv2.bilateralFilter(warped, 7, 40, 4), 0.4)
        return _blend(color_transfer(textured, target, mask), target, mask), mask
    if recipe == "CelebDF":
        warped = resample(warped, 0.6)
        lab = cv2.cvtColor(warped.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
        lab += shift if shift is not None else 0.0
        warped = np.clip(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB) * 255 + 0.5, 0, 255).astype(np.uint8)
        return _seamless(warped, target, mask), mask
    raise ValueError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")


def swap_face(
    target_frames: np.ndarray, source_frames: np.ndarray, recipe: str, seed: int,
    target_landmarks: np.ndarray | None = None, source_landmarks: np.ndarray | None = None,
    return_masks: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Fake frames uint8 (N_target, H, W, 3): the source face put onto each target frame by `recipe`.

    Landmarks (N, 5, 2) may be given (the generator knows them exactly); otherwise MTCNN finds them.
    With `return_masks`, also returns the blending masks as uint8 (N, H, W) (255 = from the source).
    """
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    target_frames = np.asarray(target_frames, np.uint8)
    source_frames = np.asarray(source_frames, np.uint8)
    if target_frames.ndim != 4 or source_frames.ndim != 4 or len(source_frames) == 0:
        raise ValueError("target and source frames must be non-empty uint8 arrays (N, H, W, 3)")
    lm_t = track_landmarks(target_frames) if target_landmarks is None else np.asarray(target_landmarks, np.float32)
    lm_s = track_landmarks(source_frames) if source_landmarks is None else np.asarray(source_landmarks, np.float32)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, RECIPES.index(recipe)]))
    # Celeb-DF: one colour offset per video plus a little per-frame drift (its visible flicker).
    shift = np.array([rng.uniform(-6, 6), rng.uniform(-5, 5), rng.uniform(-5, 5)], np.float32)
    fakes = np.empty_like(target_frames)
    masks = np.empty(target_frames.shape[:3], np.uint8)
    with portable_cv2():
        for i in range(len(target_frames)):
            j = min(i, len(source_frames) - 1)
            drift = shift + rng.normal(0, 0.8, 3).astype(np.float32)
            fakes[i], mask = manipulate_frame(target_frames[i], source_frames[j], lm_t[i], lm_s[j], recipe, rng,
                                              drift)
            masks[i] = np.clip(mask * 255 + 0.5, 0, 255).astype(np.uint8)
    return (fakes, masks) if return_masks else fakes
