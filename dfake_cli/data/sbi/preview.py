"""`--preview N`: a PNG grid, one row per blend: target | source | mask | blended (what to look at before
spending hours of preparation on a blend setting)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from dfake_cli.data.sbi.blend import SelfBlend
from dfake_cli.io import atomic_path

COLUMNS = ("target", "source", "mask", "blended")


def preview_grid(blends: Sequence[SelfBlend], labels: Sequence[str] | None = None, pad: int = 4) -> np.ndarray:
    """uint8 RGB image: a header row naming the columns, then one row per blend (label on the target)."""
    import cv2

    if not blends:
        raise ValueError("no blends to preview")
    size = blends[0].target.shape[0]
    header = 22
    h = header + len(blends) * (size + pad) + pad
    w = len(COLUMNS) * (size + pad) + pad
    grid = np.full((h, w, 3), 255, np.uint8)
    for c, name in enumerate(COLUMNS):
        cv2.putText(grid, name, (pad + c * (size + pad) + 4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
    for r, b in enumerate(blends):
        y = header + pad + r * (size + pad)
        mask = np.repeat(np.rint(b.mask * 255).astype(np.uint8)[..., None], 3, axis=-1)
        for c, img in enumerate((b.target, b.source, mask, b.blended)):
            x = pad + c * (size + pad)
            grid[y : y + size, x : x + size] = img
        note = f"r={b.ratio:.2f}" + (" aug:target" if b.target_augmented else " aug:source")
        if labels is not None:
            note = f"{labels[r]} {note}"
        cv2.putText(grid, note, (pad + 3, y + size - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (255, 255, 0), 1,
                    cv2.LINE_AA)
    return grid


def write_preview(path: Path, blends: Sequence[SelfBlend], labels: Sequence[str] | None = None) -> Path:
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(preview_grid(blends, labels)).save(tmp, format="PNG")
    return path
