"""Tiny archives for parser tests: WildDeepfake ships faces as PNGs inside tar.gz files."""

import io
import tarfile

import numpy as np
from PIL import Image


def png_bytes(value: int, size: int = 8) -> bytes:
    """A flat grey PNG of size x size, as bytes."""
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def write_tar(path, members) -> None:
    """Write (name, bytes) members into a tar.gz at `path` (names kept verbatim, e.g. './1/fake/3/7.png')."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
