"""A 68-point mean-face landmark template, placed in an aligned crop from the cache's 5 landmarks.

The cache keeps only MTCNN's 5 points (eye centres, nose tip, mouth corners). The blend mask needs the face
outline, so a generic face is drawn in the usual 68-point order (jaw 0-16, eyebrows 17-26, nose 27-35, eyes
36-47, mouth 48-67) and mapped onto each face by the least-squares similarity transform between its own 5
points and the face's. The template is written here from textbook mean-face proportions, in units of the
distance between the eye centres, origin between the eyes, y down: nose tip 0.57 below the eyes, mouth
corners 1.15 below and 0.83 apart (the proportions of the ArcFace 5-point template the crops are aligned
to), eye width 0.42, eyebrows 0.3 above the eyes, chin 1.75 below, face width 2.1 at eye level. It is no
fitted landmark model: pose and expression are not followed beyond rotation and scale, which is enough for
a mask that is blurred, warped and jittered anyway.
"""

from __future__ import annotations

import numpy as np

from dfake_cli.data.faces import similarity_transform, transform_points

JAW = slice(0, 17)
BROWS = slice(17, 27)


def _template() -> np.ndarray:
    pts: list[tuple[float, float]] = []
    # jaw: a rounded-square half ellipse from the image-left temple (0) round the chin (8) to the right (16)
    for s in np.linspace(0.0, np.pi, 17):
        c, sn = np.cos(s), np.sin(s)
        pts.append((-1.05 * np.sign(c) * abs(c) ** 0.8, 0.1 + 1.65 * sn ** 1.1))
    # eyebrows: left brow from its outer end (17) to its inner end (21), the right brow mirrored (22-26)
    brow = [(-0.95, -0.28), (-0.78, -0.38), (-0.58, -0.42), (-0.38, -0.41), (-0.17, -0.36)]
    pts += brow + [(-x, y) for x, y in reversed(brow)]
    # nose bridge (27-30, tip last) and the lower nose (31-35)
    pts += [(0.0, y) for y in (0.06, 0.23, 0.40, 0.57)]
    pts += [(-0.22, 0.68), (-0.11, 0.71), (0.0, 0.72), (0.11, 0.71), (0.22, 0.68)]
    # eyes, clockwise in the image from the image-left corner: left eye 36 (outer) .. 39 (inner), right eye
    # 42 (inner) .. 45 (outer); two upper-lid points, then two lower-lid points
    ring = [(-0.21, 0.0), (-0.07, -0.08), (0.07, -0.08), (0.21, 0.0), (0.07, 0.07), (-0.07, 0.07)]
    for cx in (-0.5, 0.5):
        pts += [(cx + dx, dy) for dx, dy in ring]
    # mouth, outer lip (48 left corner, 51 top, 54 right corner, 57 bottom) and inner lip (60-67)
    mx, my = 0.415, 1.155
    outer = [(-mx, my), (-0.27, 1.07), (-0.11, 1.03), (0.0, 1.05), (0.11, 1.03), (0.27, 1.07), (mx, my),
             (0.28, 1.25), (0.13, 1.31), (0.0, 1.32), (-0.13, 1.31), (-0.28, 1.25)]
    inner = [(-0.33, 1.16), (-0.12, 1.12), (0.0, 1.13), (0.12, 1.12), (0.33, 1.16), (0.12, 1.19),
             (0.0, 1.20), (-0.12, 1.19)]
    pts += outer + inner
    out = np.asarray(pts, dtype=np.float64)
    assert out.shape == (68, 2)
    return out


TEMPLATE_68 = _template()


def five_points(lm68: np.ndarray) -> np.ndarray:
    """The 5 MTCNN-style points of a 68-point set: eye centres, nose tip, mouth corners (image left first)."""
    lm68 = np.asarray(lm68, dtype=np.float64)
    return np.stack([lm68[36:42].mean(0), lm68[42:48].mean(0), lm68[30], lm68[48], lm68[54]])


TEMPLATE_5 = five_points(TEMPLATE_68)


def landmarks68(points5: np.ndarray) -> np.ndarray:
    """The template's 68 points in the coordinates of `points5` (a face's 5 landmarks), float32 (68, 2)."""
    m = similarity_transform(TEMPLATE_5, np.asarray(points5, dtype=np.float64))
    return transform_points(TEMPLATE_68, m)


def hull_points(lm68: np.ndarray, forehead: float = 0.0) -> np.ndarray:
    """The outline the mask is the convex hull of: jaw and eyebrows, the brows lifted by `forehead` eye
    distances (perpendicular to the eye line, so it follows head roll) to take in part of the forehead."""
    lm68 = np.asarray(lm68, dtype=np.float64)
    eyes = five_points(lm68)[:2]
    across = eyes[1] - eyes[0]
    up = np.array([across[1], -across[0]])  # the eye line turned 90 degrees, pointing up in the image
    brows = lm68[BROWS] + forehead * up
    return np.concatenate([lm68[JAW], brows]).astype(np.float32)
