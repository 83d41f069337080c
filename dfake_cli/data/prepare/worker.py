"""The per-video worker: decode, detect + track, align (+ target warps and VAE latents), one shard per unit.

Pairing for a fake `T_S` at frame i: the input is the fake frame aligned by its own tracked face; the
target is original T's frame i warped with the same matrix (pixel-aligned with the fake); the source is
original S's frame min(i, len(S) - 1) aligned by S's own tracked face (paired at assembly). A real face
is its own source and target.

An original's decoded frames stay lent to the fakes that follow it in its group (units.group_units): a
fake whose target frames were all decoded there warps them instead of decoding its target again. Frames
decode the same whichever batch they are read in, so a lent frame is the very frame a decode would give.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from dfake_cli.data import cache as cache_mod
from dfake_cli.data.cache import ROLE_INPUT, ROLE_SOURCE, ROLE_TARGET, ShardRows
from dfake_cli.data.faces import FaceAlignConfig, FaceExtractor, transform_points
from dfake_cli.data.prepare.units import Unit

STAGES = ("scan", "decode", "detect", "align", "encode", "write", "assemble")
MASK_THRESHOLD = 16  # grey level above which a (compressed) mask video pixel counts as manipulated


@dataclass
class Decoded:
    """A video unit's frames decoded ahead by another process (stage.py): what `_video` would read itself.
    Errors travel as the VideoReadError message, raised again where the unit runs."""

    frames: Optional[np.ndarray] = None
    idx: Optional[np.ndarray] = None
    error: Optional[str] = None
    masks: Optional[list[np.ndarray]] = None
    target: dict[int, np.ndarray] = field(default_factory=dict)  # frame index -> original T's frame
    target_error: Optional[str] = None
    seconds: float = 0.0


def wanted_frames(unit: Unit) -> Optional[list[int]]:
    """The frames a video unit decodes: its own and those it lends as source faces (None: evenly spaced)."""
    return None if unit.indices is None else sorted(set(unit.indices) | set(unit.source_indices))


def read_masks(unit: Unit, idx: np.ndarray, shape: tuple[int, int]) -> Optional[list[np.ndarray]]:
    """The mask video's frames at `idx` as booleans of the frame's size (None when it cannot be read)."""
    import cv2

    from dfake_cli.data.video import VideoReadError, read_frames

    if unit.item.mask_path is None:
        return None
    try:
        mframes, _ = read_frames(unit.item.mask_path, indices=idx)
    except VideoReadError:
        return None
    out = []
    for m in mframes:
        g = m.max(axis=-1) if m.ndim == 3 else m
        if g.shape[:2] != shape:
            g = cv2.resize(g, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
        out.append(g > MASK_THRESHOLD)
    return out



class UnitWorker:
    """Turns units into shards; holds MTCNN and (for training caches) the SD-VAE encoder, loaded once."""

    def __init__(self, config: FaceAlignConfig, frames: int, device: str = "cpu", training: bool = False,
                 sd: Optional[str] = None):
        self.config = config
        self.frames = frames
        self.device = device
        self.training = training
        self.sd_spec = sd
        self.extractor = FaceExtractor(config, device=device)
        self._encoder = None
        self.latent_scaling: Optional[float] = None
        self._lent: tuple[str, dict[int, np.ndarray]] = ("", {})  # the last original's path and frames

    @property
    def encoder(self):
        """The SD-VAE encoder alone (the UNet is never loaded): encoder.py."""
        if self._encoder is None:
            from dfake_cli.data.prepare.encoder import VaeEncoder, load_vae

            self._encoder = VaeEncoder(load_vae(self.sd_spec or "tiny"), device=self.device)
            self.latent_scaling = self._encoder.scaling_factor
        return self._encoder

    def warm(self) -> None:
        """Load the models now, so that start-up is timed apart from the work."""
        _ = self.extractor.mtcnn
        if self.training:
            _ = self.encoder

    def run(self, unit: Unit, decoded: Optional[Decoded] = None) -> dict:
        """Process `unit`, write its shard, return its meta (status, reason, counts, timings)."""
        return self.run_many([(unit, decoded)])[0]

    def run_many(self, work: list[tuple[Unit, Optional[Decoded]]]) -> list[dict]:
        """Several units, their faces VAE-encoded together in large batches (the batched stage); each unit
        still writes its own shard. The encode time is shared among the units by their faces."""
        done = [self._rows(unit, decoded) for unit, decoded in work]
        with_faces = [(rows, meta) for _, rows, meta in done if rows is not None and len(rows)]
        if with_faces and self.training:
            t0 = time.perf_counter()
            self.encode_many([rows for rows, _ in with_faces])
            seconds = time.perf_counter() - t0
            total = sum(len(rows) for rows, _ in with_faces)
            for rows, meta in with_faces:
                meta["latent_scaling"] = self.latent_scaling
                meta["timings"]["encode"] += seconds * len(rows) / total
        for unit, rows, meta in done:
            t0 = time.perf_counter()
            cache_mod.write_shard(unit.shard, rows if rows is not None else ShardRows.empty(self.config.size), meta)
            meta["timings"]["write"] += time.perf_counter() - t0
        return [meta for _, _, meta in done]

    def _rows(self, unit: Unit, decoded: Optional[Decoded]) -> tuple[Unit, Optional[ShardRows], dict]:
        """Detect, track and align one unit (no latents yet): (unit, rows or None when skipped, meta)."""
        from dfake_cli.data.video import VideoReadError

        self.extractor.timings = {"detect": 0.0, "align": 0.0}
        timings = {k: 0.0 for k in STAGES}
        item = unit.item
        meta = {
            "video_id": item.video_id, "path": str(item.path), "split": item.split, "label": int(item.label),
            "method": item.method, "kind": item.kind, "is_input": unit.is_input, "status": "ok", "reason": "",
            "detail": "", "source_id": item.source if (self.training and item.label == 1) else None,
            "target_id": item.target, "size": self.config.size, "frames_read": 0, "faces": 0, "no_face": 0,
        }
        try:
            if item.kind == "video":
                rows = self._video(unit, meta, timings, decoded)
            elif item.kind == "image":
                rows = self._image(unit, meta, timings)
            else:
                rows = self._frames(unit, meta, timings)
        except VideoReadError as exc:
            msg = str(exc)
            reason = "no frames" if "no frames" in msg else "unreadable video"
            rows = self._skip(meta, reason, msg)
        timings["detect"] += self.extractor.timings["detect"]
        timings["align"] += self.extractor.timings["align"]
        meta["timings"] = timings
        return unit, rows, meta

    def encode_many(self, many: list[ShardRows]) -> None:
        """`encode` over the faces of several units at once (one stream of large batches)."""
        faces = np.concatenate([rows.faces for rows in many])
        mean, logvar = self._latents(faces)
        # The VAE is not flip-equivariant: a flipped input is reconstructed from its flipped faces' moments.
        fmean, flogvar = self._latents(np.ascontiguousarray(faces[:, :, ::-1]))
        start = 0
        for rows in many:
            end = start + len(rows)
            rows.mean, rows.logvar = mean[start:end], logvar[start:end]
            rows.flip_mean, rows.flip_logvar = fmean[start:end], flogvar[start:end]
            start = end

    def encode(self, rows: ShardRows) -> ShardRows:
        """Store the SD-VAE latent moments of every face of `rows` in it (training caches; also used by the
        self-blended-image engine, so both kinds of training cache hold the same latents)."""
        self.encode_many([rows])
        return rows

    @staticmethod
    def _skip(meta: dict, reason: str, detail: str) -> None:
        meta.update(status="skipped", reason=reason, detail=detail)
        return None

    def _latents(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.encoder.moments(faces)

    def _lent_frames(self, path, indices: list[int]) -> Optional[list[np.ndarray]]:
        """Original `path`'s frames at `indices` when its unit just decoded all of them (else None)."""
        lent_path, frames = self._lent
        if lent_path != str(path) or any(i not in frames for i in indices):
            return None
        return [frames[i] for i in indices]

    def _video(self, unit: Unit, meta: dict, timings: dict, decoded: Optional[Decoded] = None) -> Optional[ShardRows]:
        from dfake_cli.data.video import VideoReadError, read_frames

        item = unit.item
        t0 = time.perf_counter()
        own = None if unit.indices is None else list(unit.indices)
        if decoded is None:
            frames, idx = read_frames(item.path, num=self.frames, indices=wanted_frames(unit))
        elif decoded.error is not None:
            raise VideoReadError(decoded.error)
        else:
            frames, idx = decoded.frames, decoded.idx
            timings["decode"] += decoded.seconds
        timings["decode"] += time.perf_counter() - t0
        idx = [int(i) for i in idx]
        if self.training and item.label == 0:  # lent to the fakes of its group (their target warps)
            self._lent = (str(item.path), dict(zip(idx, frames)))
        own_set = set(idx) if own is None else set(own)
        n_own = sum(1 for i in idx if i in own_set)
        meta["frames_read"] = n_own if unit.is_input else 0
        masks = read_masks(unit, np.asarray(idx), frames.shape[1:3]) if decoded is None else decoded.masks
        track = self.extractor.track(frames, masks)
        meta["no_face"] = sum(1 for i, f in zip(idx, track) if f is None and i in own_set) if unit.is_input else 0
        have = [k for k, f in enumerate(track) if f is not None]
        if not have:
            return self._skip(meta, "no face found", f"no face in {len(idx)} decoded frames")

        size = self.config.size
        crops, mats, lms, confs, fidx, roles = [], [], [], [], [], []
        for k in have:
            crop, m = self.extractor.align(frames[k], track[k])
            crops.append(crop)
            mats.append(m)
            lms.append(transform_points(track[k].landmarks, m))
            confs.append(track[k].confidence)
            fidx.append(idx[k])
            roles.append(ROLE_INPUT if (unit.is_input and idx[k] in own_set) else ROLE_SOURCE)
        n = len(crops)
        link = np.full(n, -1, np.int64)
        source_frame = np.full(n, -1, np.int64)
        video_ids, methods, labels = [item.video_id] * n, [item.method] * n, [int(item.label)] * n

        if unit.target_path is not None:  # a training fake: add its pixel-aligned target faces
            t0 = time.perf_counter()
            tframes = self._lent_frames(unit.target_path, fidx) if decoded is None else None
            try:
                if decoded is not None:
                    if decoded.target_error is not None:
                        raise VideoReadError(decoded.target_error)
                    tframes = [decoded.target[i] for i in fidx]
                elif tframes is None:
                    tframes, _ = read_frames(unit.target_path, indices=fidx)
            except VideoReadError as exc:
                timings["decode"] += time.perf_counter() - t0
                return self._skip(meta, "original unreadable", f"{unit.target_path}: {exc}")
            timings["decode"] += time.perf_counter() - t0
            for r in range(n):
                crops.append(self.extractor.warp(tframes[r], mats[r]))
                mats.append(mats[r])
                lms.append(lms[r])
                confs.append(confs[r])
                fidx.append(fidx[r])
                roles.append(ROLE_TARGET)
                link[r] = n + r
                source_frame[r] = min(fidx[r], max(0, unit.source_count - 1))
            video_ids += [item.target] * n
            methods += [unit.target_method] * n
            labels += [0] * n
            link = np.concatenate([link, np.full(n, -1, np.int64)])
            source_frame = np.concatenate([source_frame, np.full(n, -1, np.int64)])

        meta["faces"] = sum(1 for r in roles if r == ROLE_INPUT)
        return ShardRows(
            faces=np.stack(crops).astype(np.uint8).reshape(-1, size, size, 3), video_id=video_ids,
            frame_index=np.asarray(fidx, np.int32), label=np.asarray(labels, np.int8), method=methods,
            role=roles, confidence=np.asarray(confs, np.float32),
            landmarks=np.stack(lms).astype(np.float32), matrix=np.stack(mats).astype(np.float32),
            link=link, source_frame=source_frame,
        )

    def _image(self, unit: Unit, meta: dict, timings: dict) -> Optional[ShardRows]:
        from dfake_cli.data.video import read_image

        item = unit.item
        t0 = time.perf_counter()
        image = read_image(item.path)
        timings["decode"] += time.perf_counter() - t0
        meta["frames_read"] = 1
        if self.extractor.too_small(*image.shape[:2]):
            meta["no_face"] = 1
            return self._skip(meta, "image too small", f"{image.shape[1]}x{image.shape[0]} px cannot hold a face of "
                              f"{self.config.min_face_size} px")
        faces = self.extractor.detect([image])[0]
        if not faces:
            meta["no_face"] = 1
            return self._skip(meta, "no face found", "no face in the image")
        face = max(faces, key=lambda f: f.area)
        crop, m = self.extractor.align(image, face)
        meta["faces"] = 1
        return ShardRows(
            faces=crop[None], video_id=[item.video_id], frame_index=np.zeros(1, np.int32),
            label=np.asarray([item.label], np.int8), method=[item.method], role=[ROLE_INPUT],
            confidence=np.asarray([face.confidence], np.float32),
            landmarks=transform_points(face.landmarks, m)[None], matrix=m[None],
            link=np.full(1, -1, np.int64), source_frame=np.full(1, -1, np.int64),
        )

    def _frames(self, unit: Unit, meta: dict, timings: dict) -> Optional[ShardRows]:
        """Already-cropped faces (WildDeepfake): resized to size x size, no detection, confidence nan."""
        import cv2

        from dfake_cli.data.video import IMAGE_EXTENSIONS, VideoReadError, evenly_spaced, read_image

        item = unit.item
        files = item.frames
        if files is None:
            if not item.path.is_dir():
                raise VideoReadError(f"not a folder of face images: {item.path}")
            files = [p for p in item.path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS]
            files.sort(key=lambda p: (0, int(p.stem), "") if p.stem.isdigit() else (1, 0, p.name))
        if not files:
            raise VideoReadError("no frames")
        chosen = evenly_spaced(len(files), self.frames)
        size = self.config.size
        crops, fidx, mats = [], [], []
        t0 = time.perf_counter()
        bad = 0
        for k in chosen:
            path = files[int(k)]
            try:
                img = read_image(path)
            except VideoReadError:
                bad += 1
                continue
            h, w = img.shape[:2]
            interp = cv2.INTER_AREA if max(h, w) > size else cv2.INTER_LINEAR
            crops.append(cv2.resize(img, (size, size), interpolation=interp))
            mats.append(np.array([[size / w, 0, 0], [0, size / h, 0]], np.float32))
            fidx.append(int(path.stem) if path.stem.isdigit() else int(k))
        timings["decode"] += time.perf_counter() - t0
        meta["frames_read"] = len(crops)
        if not crops:
            return self._skip(meta, "unreadable video", f"none of {len(chosen)} face images could be read")
        n = len(crops)
        meta["faces"] = n
        return ShardRows(
            faces=np.stack(crops).astype(np.uint8), video_id=[item.video_id] * n,
            frame_index=np.asarray(fidx, np.int32), label=np.full(n, item.label, np.int8),
            method=[item.method] * n, role=[ROLE_INPUT] * n, confidence=np.full(n, np.nan, np.float32),
            landmarks=np.full((n, 5, 2), np.nan, np.float32), matrix=np.stack(mats),
            link=np.full(n, -1, np.int64), source_frame=np.full(n, -1, np.int64),
        )
