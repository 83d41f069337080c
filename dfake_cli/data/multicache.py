"""`MultiCache`: several finished caches read as one, through the FaceCache interface.

Global rows are the caches' rows one after another (cache 0 first); `locate(rows)` maps them back to
(cache, local row). Index columns that hold rows (`source_row`, `target_row`) are shifted into the global
numbering, so every consumer of a FaceCache (the training loader, validation) works unchanged on a mixture.
The caches must agree on what makes their rows interchangeable: face size, margin, the Stable Diffusion
their latents come from (and its latent scaling).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from dfake_cli.data.cache import FaceCache
from dfake_cli.data.cache.reader import input_rows_of
from dfake_cli.errors import InputError

# attrs that must be equal for rows of different caches to be trained on together
MUST_AGREE = ("size", "margin", "sd_identity", "latent_scaling")


class MultiCache:
    """Read-only view over `paths` (two or more caches). Pickles by paths, like FaceCache."""

    def __init__(self, paths: Sequence[str | Path]):
        self.paths = [Path(p) for p in paths]
        if len(self.paths) < 2:
            raise ValueError("MultiCache needs at least two caches; open one cache with FaceCache")
        self.caches = [FaceCache(p) for p in self.paths]
        lengths = [len(c) for c in self.caches]
        self.offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self._index = None
        first = self.caches[0].attrs
        for cache in self.caches[1:]:
            for key in MUST_AGREE:
                a, b = first.get(key), cache.attrs.get(key)
                if key in first and not _same(a, b):
                    raise InputError(f"caches {self.paths[0].name} and {cache.path.name} differ in {key} ({a!r} vs "
                                     f"{b!r}); prepare them with the same --size, --margin and --sd to train on both")

    # ---------------------------------------------------------------------------- FaceCache interface

    @property
    def path(self) -> Path:
        return self.paths[0]

    @property
    def attrs(self) -> dict:
        attrs = dict(self.caches[0].attrs)
        attrs["dataset"] = "+".join(str(c.attrs.get("dataset", c.path.stem)) for c in self.caches)
        attrs["caches"] = ",".join(str(p) for p in self.paths)
        return attrs

    @property
    def size(self) -> int:
        return self.caches[0].size

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def has_latents(self) -> bool:
        return all(c.has_latents for c in self.caches)

    @property
    def has_flipped_latents(self) -> bool:
        return all(c.has_flipped_latents for c in self.caches)

    @property
    def index(self):
        """The caches' indexes stacked; row columns shifted to global rows (-1 stays -1)."""
        if self._index is None:
            import pandas as pd

            parts = []
            for off, cache in zip(self.offsets, self.caches):
                df = cache.index.copy()
                for col in ("source_row", "target_row"):
                    if col in df:
                        v = df[col].to_numpy()
                        df[col] = np.where(v >= 0, v + off, v)
                parts.append(df)
            self._index = pd.concat(parts, ignore_index=True)
        return self._index

    def cache_of(self, rows) -> np.ndarray:
        """For global rows, the position of their cache in `paths` (the sampler balances over it)."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"row out of range [0, {len(self)})")
        return np.searchsorted(self.offsets, rows, side="right") - 1

    def locate(self, rows) -> tuple[np.ndarray, np.ndarray]:
        """(cache position, local row) of each global row."""
        rows = np.asarray(rows, dtype=np.int64)
        which = self.cache_of(rows)
        return which, rows - self.offsets[which]

    def _gather(self, rows, read) -> tuple[np.ndarray, ...]:
        """Call `read(cache, local_rows)` per cache (one call each) and put the results back in row order."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        which, local = self.locate(rows)
        out: list | None = None
        for c in np.unique(which):
            sel = np.flatnonzero(which == c)
            got = read(self.caches[int(c)], local[sel])
            got = got if isinstance(got, tuple) else (got,)
            if out is None:
                out = [np.empty((len(rows),) + a.shape[1:], a.dtype) for a in got]
            for dst, a in zip(out, got):
                dst[sel] = a
        if out is None:  # no rows: shapes from the first cache
            got = read(self.caches[0], np.zeros(0, np.int64))
            out = list(got if isinstance(got, tuple) else (got,))
        return tuple(out)

    def faces(self, rows) -> np.ndarray:
        return self._gather(rows, lambda c, r: c.faces(r))[0]

    def landmarks(self, rows) -> np.ndarray:
        return self._gather(rows, lambda c, r: c.landmarks(r))[0]

    def matrices(self, rows) -> np.ndarray:
        return self._gather(rows, lambda c, r: c.matrices(r))[0]

    def latent_moments(self, rows, **kwargs) -> tuple[np.ndarray, np.ndarray]:
        mean, logvar = self._gather(rows, lambda c, r: tuple(c.latent_moments(r, **kwargs)))
        return mean, logvar

    def input_rows(self, split: str | None = None) -> np.ndarray:
        return input_rows_of(self.index, split)

    def close(self) -> None:
        for c in self.caches:
            c.close()

    def __enter__(self) -> "MultiCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _same(a, b) -> bool:
    try:
        return bool(np.isclose(float(a), float(b))) or (np.isnan(float(a)) and np.isnan(float(b)))
    except (TypeError, ValueError):
        return a == b


def open_caches(paths: Sequence[str | Path]):
    """One path: a FaceCache; several: a MultiCache over them."""
    paths = list(paths) if not isinstance(paths, (str, Path)) else [paths]
    return FaceCache(paths[0]) if len(paths) == 1 else MultiCache(paths)
