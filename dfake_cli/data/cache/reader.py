"""Reading a finished cache: `FaceCache` (plain h5py, fork-safe) and `cache_attrs`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np

from dfake_cli.data.cache.schema import INDEX_STR, ROLE_INPUT
from dfake_cli.errors import InputError


_DEFLATE = 1  # HDF5 filter id of gzip/deflate


def chunk_layout(dset) -> str | None:
    """"raw" or "deflate" when every row is one chunk that `read_chunk_rows` can read directly, else None.

    New caches store faces uncompressed (raw); caches written before that store them with gzip (deflate),
    which is still read directly and inflated here. Any other layout (shuffle, other filters, chunks of
    several rows) is left to h5py's own reading.
    """
    if dset.chunks != (1, *dset.shape[1:]) or dset.dtype != np.uint8:
        return None
    plist = dset.id.get_create_plist()
    ids = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    if not ids:
        return "raw"
    return "deflate" if ids == [_DEFLATE] else None


def read_chunk_rows(dset, rows: np.ndarray, layout: str) -> np.ndarray:
    """Rows of a one-row-per-chunk dataset, in the order of `rows`, one direct chunk read per row.

    h5py's fancy indexing over the same rows builds a point selection and goes through the filter
    pipeline chunk by chunk: ~15 ms per 256 px face, against ~0.1 ms for a direct read of a raw chunk
    (~1.4 ms with zlib inflating a gzip chunk), measured on portrait crops (docs/cache.md).
    """
    import zlib

    shape = tuple(dset.shape[1:])
    out = np.empty((len(rows), *shape), np.uint8)
    flat = out.reshape(len(rows), -1)
    zeros = (0,) * len(shape)
    n = int(dset.shape[0])
    for i, r in enumerate(rows):
        r = int(r)
        if not 0 <= r < n:
            raise IndexError(f"row out of range [0, {n}): {r}")
        mask, data = dset.id.read_direct_chunk((r, *zeros))
        if layout == "deflate" and not mask & 1:  # bit 0 set: HDF5 skipped the filter for this chunk
            data = zlib.decompress(data)
        arr = np.frombuffer(data, np.uint8)
        if arr.size != flat.shape[1]:
            raise OSError(f"chunk of row {r} has {arr.size} bytes, expected {flat.shape[1]}")
        flat[i] = arr
    return out


def _read_rows(dset, rows: Iterable[int]) -> np.ndarray:
    """h5py fancy indexing needs increasing unique indices: read sorted unique, return in request order."""
    rows = np.asarray(list(rows) if not isinstance(rows, np.ndarray) else rows, dtype=np.int64).reshape(-1)
    if rows.size == 0:
        return np.zeros((0,) + tuple(dset.shape[1:]), dtype=dset.dtype)
    uniq, inverse = np.unique(rows, return_inverse=True)
    if uniq[0] < 0 or uniq[-1] >= dset.shape[0]:
        raise IndexError(f"row out of range [0, {dset.shape[0]}): {rows.min()}..{rows.max()}")
    data = dset[uniq] if len(uniq) > 1 else dset[int(uniq[0])][None]
    return data[inverse]


#: What every finished cache holds; checked on open.
REQUIRED = ("faces", "index/video_id", "index/frame_index", "index/label", "index/method", "index/split",
            "index/role")


class FaceCache:
    """Read a finished cache with plain h5py. Safe across fork: the file reopens in a new process.

        with FaceCache(path) as cache:
            df = cache.index                  # one row per face (pandas)
            x = cache.faces([3, 1, 2])        # uint8 (3, S, S, 3), in the requested order
            mean, logvar = cache.latent_moments(df.source_row[rows])
    """

    INDEX_COLUMNS = (
        "video_id", "frame_index", "label", "method", "split", "role", "source_row", "target_row",
        "confidence", "score_s", "score_t",
    )

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise InputError(f"cache not found: {self.path}; create it with 'dfake prepare'")
        self._h = None
        self._pid = None
        self._index = None
        self._layout: str | None = None  # how faces are read (chunk_layout), found on first use
        h = self._file
        if not bool(h.attrs.get("complete", False)):
            self.close()
            raise InputError(f"cache {self.path} is incomplete; run the same 'dfake prepare' command again")
        missing = [name for name in REQUIRED if name not in h]
        if missing:  # edited or damaged by another tool: name it now, not as a KeyError mid-run
            self.close()
            raise InputError(f"cache {self.path} has no /{missing[0]} dataset: it is damaged; delete it and run "
                             "'dfake prepare' again")
        self._attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in h.attrs.items()}

    @property
    def _file(self):
        import h5py

        if self._h is None or self._pid != os.getpid():
            try:
                self._h = h5py.File(self.path, "r")
            except OSError as exc:
                raise InputError(f"cannot read cache {self.path}: {exc}; delete it and prepare again") from exc
            self._pid = os.getpid()
        return self._h

    def close(self) -> None:
        if self._h is not None and self._pid == os.getpid():
            self._h.close()
        self._h = None

    def __enter__(self) -> "FaceCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return int(self._file["faces"].shape[0])

    def __getstate__(self):  # DataLoader workers: pickle the path only, reopen on first access
        return {"path": self.path, "_attrs": self._attrs, "_index": self._index}

    def __setstate__(self, state):
        self.path, self._attrs, self._index = state["path"], state["_attrs"], state["_index"]
        self._h = None
        self._pid = None
        self._layout = None

    @property
    def attrs(self) -> dict:
        return dict(self._attrs)

    @property
    def size(self) -> int:
        return int(self._file["faces"].shape[1])

    @property
    def index(self):
        """The index as a pandas DataFrame (row number = cache row); landmarks via `.landmarks(rows)`."""
        if self._index is None:
            import pandas as pd

            g = self._file["index"]
            data = {}
            for col in self.INDEX_COLUMNS:
                if col not in g:
                    continue
                data[col] = g[col].asstr()[()] if col in INDEX_STR else g[col][()]
            self._index = pd.DataFrame(data)
        return self._index

    @property
    def has_latents(self) -> bool:
        return "latents" in self._file

    def faces(self, rows) -> np.ndarray:
        """uint8 (len(rows), S, S, 3) in the requested order (repeats allowed), chunk by chunk."""
        dset = self._file["faces"]
        if self._layout is None:
            self._layout = chunk_layout(dset) or "h5py"
        if self._layout == "h5py":
            return _read_rows(dset, rows)
        rows = np.asarray(list(rows) if not isinstance(rows, np.ndarray) else rows, dtype=np.int64).reshape(-1)
        return read_chunk_rows(dset, rows, self._layout)

    def landmarks(self, rows) -> np.ndarray:
        return _read_rows(self._file["index"]["landmarks"], rows)

    def matrices(self, rows) -> np.ndarray:
        return _read_rows(self._file["index"]["matrix"], rows)

    @property
    def has_flipped_latents(self) -> bool:
        """Whether the cache also holds the moments of the horizontally flipped faces."""
        return self.has_latents and "flip_mean" in self._file["latents"]

    def latent_moments(self, rows, flipped: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """SD-VAE posterior (mean, logvar) of `rows`; `flipped`: of the horizontally flipped faces, which is
        what a flipped input's source/target must be reconstructed from (the VAE is not flip-equivariant)."""
        if not self.has_latents:
            raise InputError(f"cache {self.path} has no latents (a test cache); prepare a training set with 'dfake prepare ff++'")
        g = self._file["latents"]
        if not flipped:
            return _read_rows(g["mean"], rows), _read_rows(g["logvar"], rows)
        if "flip_mean" not in g:
            raise InputError(f"cache {self.path} has no flipped-face latents (prepared by an older dfake): "
                             "prepare it again, or train with --flip 0")
        return _read_rows(g["flip_mean"], rows), _read_rows(g["flip_logvar"], rows)

    def input_rows(self, split: str | None = None) -> np.ndarray:
        """Rows of the samples to classify (role "input"), optionally of one split."""
        return input_rows_of(self.index, split)


def input_rows_of(index, split: str | None = None) -> np.ndarray:
    """Rows of a cache index (one cache's or a mixture's) whose role is "input", optionally of one split."""
    mask = index["role"].to_numpy() == ROLE_INPUT
    if split is not None:
        mask &= index["split"].to_numpy() == split
    return np.flatnonzero(mask)


def cache_attrs(path: Path) -> dict | None:
    """The attrs of a finished cache at `path`, or None when there is none (missing or incomplete)."""
    import h5py

    if not Path(path).is_file():
        return None
    try:
        with h5py.File(path, "r") as h:
            if not bool(h.attrs.get("complete", False)):
                return None
            return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in h.attrs.items()}
    except OSError:
        return None
