"""The preparation engine: manifest -> faces (+ FF++ pairs + SD latents for training sets) -> HDF5 cache.

Work is split into units, one per video (plus originals that only lend source faces); each unit ends in
one atomic shard (see cache.py), so a killed run resumes where it stopped and a finished cache re-runs in
seconds. Pairing for a fake `T_S` at frame i (spec part 0): the input is the fake frame aligned by its
own tracked face; the target is original T's frame i warped with the same matrix (pixel-aligned with
the fake); the source is original S's frame min(i, len(S) - 1) aligned by S's own tracked face. A real
face is its own source and target.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from dfake_cli import __version__
from dfake_cli.data import cache as cache_mod
from dfake_cli.data.cache import ROLE_INPUT, ROLE_SOURCE, ROLE_TARGET, ShardRows
from dfake_cli.data.datasets import Manifest, VideoItem
from dfake_cli.data.faces import FaceAlignConfig, FaceExtractor, transform_points
from dfake_cli.errors import InputError
from dfake_cli.io import atomic_path

STAGES = ("scan", "decode", "detect", "align", "encode", "write", "assemble")
MASK_THRESHOLD = 16  # grey level above which a (compressed) mask video pixel counts as manipulated


@dataclass
class PrepareResult:
    """What a preparation did; the CLI prints it, benchmarks read `timings` (seconds per stage)."""

    cache_path: Path
    skipped_csv: Optional[Path]
    videos: int = 0  # input videos selected
    prepared: int = 0  # input videos with rows in the cache
    frames: int = 0  # frames decoded from input videos
    faces: int = 0  # input rows (faces to classify) in the cache
    rows: int = 0  # all rows, references included
    no_face_frames: int = 0  # decoded input frames where the tracked face was missing
    dropped_frames: int = 0  # fake frames dropped because their source original had no face there
    skipped: dict = field(default_factory=dict)  # reason -> videos
    elapsed: float = 0.0
    timings: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    already_prepared: bool = False
    processed_units: int = 0  # units computed in this run (0 when everything was resumed)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.elapsed if self.elapsed > 0 else 0.0


@dataclass
class Unit:
    """One shard's worth of work. `indices` None: let the unit choose evenly spaced frames itself."""

    item: VideoItem
    is_input: bool
    indices: Optional[list[int]] = None
    source_indices: list[int] = field(default_factory=list)  # extra frames needed as source faces
    target_path: Optional[Path] = None  # fakes (training): original T, warped with the fake's matrices
    target_method: str = "youtube"  # the method column of those target rows (T's own)
    source_count: int = 0  # fakes (training): frames of original S (to clamp the paired frame)
    shard: Optional[Path] = None

    def key(self, content: str) -> str:
        spec = {
            "content": content, "item": self.item.to_dict(), "input": self.is_input, "indices": self.indices,
            "source_indices": self.source_indices, "target": str(self.target_path), "sc": self.source_count,
        }
        return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:24]


# ------------------------------------------------------------------------------------------ one unit


class UnitWorker:
    """Turns units into shards; holds MTCNN and (for training caches) the SD VAE, loaded once."""

    def __init__(self, config: FaceAlignConfig, frames: int, device: str = "cpu", training: bool = False,
                 sd: Optional[str] = None):
        self.config = config
        self.frames = frames
        self.device = device
        self.training = training
        self.sd_spec = sd
        self.extractor = FaceExtractor(config, device=device)
        self._vae = None
        self.latent_scaling: Optional[float] = None

    @property
    def vae(self):
        if self._vae is None:
            import torch

            from dfake_cli.models.sd import load_stable_diffusion

            sd = load_stable_diffusion(self.sd_spec or "tiny", device=self.device, dtype=torch.float32)
            self._vae, self.latent_scaling = sd.vae, float(sd.scaling_factor)
        return self._vae

    def run(self, unit: Unit) -> dict:
        """Process `unit`, write its shard, return its meta (status, reason, counts, timings)."""
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
                rows = self._video(unit, meta, timings)
            elif item.kind == "image":
                rows = self._image(unit, meta, timings)
            else:
                rows = self._frames(unit, meta, timings)
        except VideoReadError as exc:
            msg = str(exc)
            reason = "no frames" if "no frames" in msg else "unreadable video"
            rows = self._skip(meta, reason, msg)
        if rows is not None and len(rows) and self.training:
            t0 = time.perf_counter()
            self.encode(rows)
            meta["latent_scaling"] = self.latent_scaling
            timings["encode"] += time.perf_counter() - t0
        if rows is None:
            rows = ShardRows.empty(self.config.size)
        timings["detect"] += self.extractor.timings["detect"]
        timings["align"] += self.extractor.timings["align"]
        t0 = time.perf_counter()
        meta["timings"] = timings
        cache_mod.write_shard(unit.shard, rows, meta)
        timings["write"] += time.perf_counter() - t0
        meta["timings"] = timings
        return meta

    def encode(self, rows: ShardRows) -> ShardRows:
        """Store the SD-VAE latent moments of every face of `rows` in it (training caches; also used by the
        self-blended-image engine, so both kinds of training cache hold the same latents)."""
        rows.mean, rows.logvar = self._latents(rows.faces)
        return rows

    @staticmethod
    def _skip(meta: dict, reason: str, detail: str) -> None:
        meta.update(status="skipped", reason=reason, detail=detail)
        return None

    def _latents(self, faces: np.ndarray, batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
        import torch

        from dfake_cli.models.sd import encode_latent_moments

        means, logvars = [], []
        for i in range(0, len(faces), batch):
            x = torch.from_numpy(np.ascontiguousarray(faces[i : i + batch])).permute(0, 3, 1, 2).float()
            x = x / 127.5 - 1.0
            mean, logvar = encode_latent_moments(self.vae, x)
            means.append(mean.cpu().numpy().astype(np.float32))
            logvars.append(logvar.cpu().numpy().astype(np.float32))
        return np.concatenate(means), np.concatenate(logvars)

    def _masks(self, unit: Unit, idx: np.ndarray, shape: tuple[int, int]) -> Optional[list[np.ndarray]]:
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

    def _video(self, unit: Unit, meta: dict, timings: dict) -> Optional[ShardRows]:
        from dfake_cli.data.video import VideoReadError, read_frames

        item = unit.item
        t0 = time.perf_counter()
        own = None if unit.indices is None else list(unit.indices)
        wanted = None if own is None else sorted(set(own) | set(unit.source_indices))
        frames, idx = read_frames(item.path, num=self.frames, indices=wanted)
        timings["decode"] += time.perf_counter() - t0
        idx = [int(i) for i in idx]
        own_set = set(idx) if own is None else set(own)
        n_own = sum(1 for i in idx if i in own_set)
        meta["frames_read"] = n_own if unit.is_input else 0
        masks = self._masks(unit, np.asarray(idx), frames.shape[1:3])
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
            try:
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


# ----------------------------------------------------------------------------------- worker processes

_WORKER: Optional[UnitWorker] = None


def _init_worker(config: dict, frames: int, device: str, training: bool, sd: Optional[str], threads: int) -> None:
    global _WORKER
    import signal

    import torch

    # Ctrl-C is the parent's to handle (one message, pending videos cancelled); a worker finishes its video.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(max(1, threads))
    _WORKER = UnitWorker(FaceAlignConfig.from_dict(config), frames, device, training, sd)


def _run_in_worker(unit: Unit) -> dict:
    assert _WORKER is not None
    return _WORKER.run(unit)


# -------------------------------------------------------------------------------------------- planning


def select_items(items: list[VideoItem], limit: Optional[int]) -> list[VideoItem]:
    """At most `limit` videos per (method, split), in manifest order (reals count as one method)."""
    if limit is None:
        return list(items)
    if limit < 1:
        raise InputError(f"--limit {limit}: must be >= 1")
    taken: Counter = Counter()
    out = []
    for item in items:
        key = (item.method, item.split)
        if taken[key] < limit:
            taken[key] += 1
            out.append(item)
    return out


def _count_frames(paths: list[Path], counts: dict[str, int | str], tick: Callable[[], None]) -> None:
    from dfake_cli.data.video import VideoReadError, frame_count

    for p in paths:
        key = str(p)
        if key not in counts:
            try:
                counts[key] = frame_count(p)
            except VideoReadError as exc:
                counts[key] = str(exc) or "unreadable"
        tick()


def plan_units(
    manifest: Manifest, selected: list[VideoItem], frames: int, training: bool, parts: Path,
    skipped: list[tuple[str, str, str, str]], progress_cb: Callable[[], None] | None = None,
) -> tuple[list[Unit], dict]:
    """Units to run, originals first. Training caches need frame counts (scanned once, kept in parts/)."""
    from dfake_cli.data.video import evenly_spaced

    if not training:
        return [Unit(item, True) for item in selected], {}

    by_id = manifest.by_id()
    counts_path = parts / "counts.json"
    counts: dict[str, int | str] = json.loads(counts_path.read_text()) if counts_path.is_file() else {}
    needed: dict[str, Path] = {}
    for item in selected:
        if item.kind != "video":
            raise InputError(f"{item.video_id}: training caches need videos, got kind {item.kind!r}")
        needed[str(item.path)] = item.path
        if item.label == 1:
            for ref in (item.target, item.source):
                if ref in by_id:
                    needed[str(by_id[ref].path)] = by_id[ref].path
    t0 = time.perf_counter()
    _count_frames(list(needed.values()), counts, progress_cb or (lambda: None))
    with atomic_path(counts_path) as tmp:
        tmp.write_text(json.dumps(counts))
    scan = time.perf_counter() - t0

    def bad(item: VideoItem) -> Optional[str]:
        c = counts.get(str(item.path))
        if isinstance(c, int) and c > 0:
            return None
        return "video has no frames" if c == 0 else str(c)

    originals: dict[str, Unit] = {}
    fakes: list[Unit] = []
    for item in selected:
        problem = bad(item)
        if problem is not None:
            reason = "no frames" if "no frames" in problem else "unreadable video"
            skipped.append((item.video_id, str(item.path), reason, problem))
            continue
        own = evenly_spaced(int(counts[str(item.path)]), frames).tolist()
        if item.label == 0:
            unit = originals.setdefault(item.video_id, Unit(item, True))
            unit.is_input = True
            unit.indices = own
            continue
        target, source = by_id.get(item.target or ""), by_id.get(item.source or "")
        if target is None or source is None:
            missing = item.target if target is None else item.source
            skipped.append((item.video_id, str(item.path), "original missing", f"{missing} is not in the tree"))
            continue
        broken = [o for o in (target, source) if bad(o) is not None]
        if broken:
            skipped.append((item.video_id, str(item.path), "original unreadable",
                            f"{broken[0].path}: {bad(broken[0])}"))
            continue
        s_count = int(counts[str(source.path)])
        src_unit = originals.setdefault(source.video_id, Unit(source, False, indices=[]))
        src_unit.source_indices = sorted(set(src_unit.source_indices) | {min(i, s_count - 1) for i in own})
        fakes.append(Unit(item, True, indices=own, target_path=target.path, target_method=target.method,
                          source_count=s_count))
    for unit in originals.values():
        if not unit.is_input:
            unit.indices = []
    units = list(originals.values()) + fakes
    return units, {"scan": scan}


# ---------------------------------------------------------------------------------------------- engine


def _options(manifest: Manifest, selected: list[VideoItem], frames: int, config: FaceAlignConfig, training: bool,
             sd_id: str, limit: Optional[int]) -> dict:
    ids = hashlib.sha1("\n".join(sorted(i.video_id for i in selected)).encode()).hexdigest()[:16]
    options = {
        "dataset": manifest.dataset, "frames": frames, "size": config.size, "margin": config.margin,
        "training": training, "sd_identity": sd_id, "limit": -1 if limit is None else int(limit),
        "align": config.to_dict(), "videos_sha": ids, "videos": len(selected),
    }
    return json.loads(json.dumps(options))  # as stored (tuples become lists), so comparisons are exact


def _diff(old: dict, new: dict) -> list[str]:
    out = []
    for key in new:
        if key in ("videos",):
            continue
        if old.get(key) != new[key]:
            if key == "videos_sha":
                out.append(f"videos {old.get('videos')} -> {new['videos']} (a different selection)")
            elif key == "align":
                out.append("alignment settings differ")
            else:
                out.append(f"{key} {old.get(key)} -> {new[key]}")
    return out


def write_skipped_csv(path: Path, rows: list[tuple[str, str, str, str]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["video_id", "path", "reason", "detail"])
    for r in rows:
        w.writerow(list(r) + [""] * (4 - len(r)))
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())


def _result_from_attrs(cache_path: Path, skipped_csv: Optional[Path], attrs: dict, elapsed: float) -> PrepareResult:
    summary = json.loads(attrs.get("summary", "{}"))
    return PrepareResult(
        cache_path=cache_path, skipped_csv=skipped_csv, videos=summary.get("videos", 0),
        prepared=summary.get("prepared", 0), frames=summary.get("frames", 0), faces=summary.get("faces", 0),
        rows=summary.get("rows", 0), no_face_frames=summary.get("no_face_frames", 0),
        skipped=summary.get("skipped", {}), dropped_frames=summary.get("dropped_frames", 0), elapsed=elapsed, timings={},
        notes=json.loads(attrs.get("notes", "[]")), already_prepared=True,
    )


def prepare_manifest(
    manifest: Manifest, cache_path: str | Path, *, frames: int = 32, size: int = 256, margin: float = 1.3,
    device: str = "cpu", workers: int = 1, limit: Optional[int] = None, training: bool = False,
    sd: Optional[str] = None, skipped_csv: str | Path | None = None, progress: bool = True,
    align: Optional[FaceAlignConfig] = None,
) -> PrepareResult:
    """Prepare every item of `manifest` into the cache at `cache_path` (resumable, atomic).

    training=True pairs FF++ fakes with their source/target faces and stores SD-VAE latent moments and
    weight targets; False stores faces and the index only (source_row = target_row = -1, no /latents).
    """
    t_start = time.perf_counter()
    cache_path = Path(cache_path)
    skipped_csv = Path(skipped_csv) if skipped_csv is not None else cache_path.with_suffix(".skipped.csv")
    if frames < 1:
        raise InputError(f"--frames {frames}: must be >= 1")
    if size < 16 or size % 8:
        raise InputError(f"--size {size}: must be a multiple of 8 and >= 16 (latents are size/8)")
    if margin <= 0:
        raise InputError(f"--margin {margin}: must be > 0")
    if workers < 0:
        raise InputError(f"--workers {workers}: must be >= 1 (or 0 for one per CPU core)")
    if workers == 0:  # auto: MTCNN/VAE scale better as single-thread processes than as threads (measured 3x)
        workers = 1 if device.startswith("cuda") else max(1, min(os.cpu_count() or 1, 8))
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise InputError(f"--device {device}: no CUDA device here; use --device cpu")
    elif device != "cpu":
        raise InputError(f"--device {device}: use cpu or cuda")
    config = align or FaceAlignConfig()
    config = FaceAlignConfig.from_dict({**config.to_dict(), "size": size, "margin": margin})

    sd_id, scaling = "", float("nan")
    if training:
        from dfake_cli.models.sd import sd_identity

        sd = sd or "tiny"
        sd_id = sd_identity(sd)
    selected = select_items(manifest.items, limit)
    options = _options(manifest, selected, frames, config, training, sd_id, limit)

    existing = cache_mod.cache_attrs(cache_path)
    if existing is not None:
        old = json.loads(existing.get("options", "{}"))
        diff = _diff(old, options)
        if not diff:
            return _result_from_attrs(cache_path, skipped_csv if skipped_csv.is_file() else None, existing,
                                      time.perf_counter() - t_start)
        raise InputError(
            f"{cache_path} was prepared with different options ({'; '.join(diff)}): "
            f"pass --name NEW for a second cache, or delete {cache_path}"
        )
    elif cache_path.exists():
        raise InputError(f"{cache_path} exists but is not a finished dfake cache: delete it and run again")

    parts = cache_path.with_name(cache_path.name[: -len(cache_path.suffix)] + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    for stale in cache_path.parent.glob(f".{cache_path.name}.*.partial.tmp"):  # an assembly killed by SIGKILL
        stale.unlink(missing_ok=True)
    content = hashlib.sha1(json.dumps({k: options[k] for k in ("frames", "size", "margin", "training",
                                                                "sd_identity", "align")},
                                      sort_keys=True).encode()).hexdigest()
    skipped: list[tuple[str, str, str, str]] = [tuple(list(s) + [""] * (4 - len(s)))[:4] for s in manifest.skipped]

    from dfake_cli.console import progress as make_progress

    bar = make_progress(unit="frames")
    if not progress:
        bar.disable = True
    timings = {k: 0.0 for k in STAGES}
    processed = 0
    with bar:
        if training:
            scan_task = bar.add_task("scanning videos", total=None, rate="", info="")
            units, extra = plan_units(manifest, selected, frames, training, parts, skipped,
                                      lambda: bar.advance(scan_task))
            bar.update(scan_task, visible=False)
            timings["scan"] += extra.get("scan", 0.0)
        else:
            units, _ = plan_units(manifest, selected, frames, training, parts, skipped)
        for unit in units:
            unit.shard = parts / f"{unit.key(content)}.npz"
        todo = [u for u in units if not u.shard.is_file()]
        task = bar.add_task(f"prepare {manifest.dataset}", total=len(units), completed=len(units) - len(todo),
                            rate="", info="")
        frames_done, t_loop = 0, time.perf_counter()

        def on_meta(meta: dict) -> None:
            nonlocal frames_done, processed
            processed += 1
            frames_done += int(meta.get("frames_read", 0))
            for k, v in meta.get("timings", {}).items():
                timings[k] = timings.get(k, 0.0) + float(v)
            rate = frames_done / max(1e-9, time.perf_counter() - t_loop)
            bar.update(task, advance=1, rate=f"{rate:.1f} frames/s", info=meta["video_id"].rsplit("/", 1)[-1])

        if todo:
            if workers == 1:
                worker = UnitWorker(config, frames, device, training, sd)
                for unit in todo:
                    on_meta(worker.run(unit))
            else:
                _run_pool(todo, config, frames, device, training, sd, workers, on_meta)

    t0 = time.perf_counter()
    metas = [cache_mod.read_shard_meta(u.shard) for u in units]
    for m in metas:
        if m["status"] != "ok" and m.get("is_input", True):
            skipped.append((m["video_id"], m["path"], m["reason"], m.get("detail", "")))
    if training:  # recorded by the workers that loaded the VAE
        scaling = next((float(m["latent_scaling"]) for m in metas if m.get("latent_scaling")), scaling)
    attrs = {
        "dataset": manifest.dataset, "root": str(manifest.root), "sd_identity": sd_id,
        "latent_scaling": scaling, "size": config.size, "margin": config.margin,
        "frames_per_video": frames, "dfake_version": __version__, "created": cache_mod.now_iso(),
        "align": json.dumps(config.to_dict()), "training": training,
        "limit": -1 if limit is None else int(limit), "options": json.dumps(options, sort_keys=True),
        "score": "(cos(mean_input, mean_branch) + 1) / 2 over flattened VAE latent means",
        "labels": "0 real, 1 fake", "notes": json.dumps(manifest.notes),
    }
    input_units = [m for m in metas if m.get("is_input", True)]
    result = PrepareResult(
        cache_path=cache_path, skipped_csv=skipped_csv, videos=len(selected),
        frames=sum(int(m.get("frames_read", 0)) for m in input_units),
        no_face_frames=sum(int(m.get("no_face", 0)) for m in input_units),
        notes=list(manifest.notes), processed_units=processed,
    )

    def finish(h, stats: cache_mod.AssembleStats) -> None:
        """Before the cache is marked complete: the skip list and the summary a rerun shows."""
        skipped.extend(stats.skipped)
        result.skipped = dict(Counter(r[2] for r in skipped))
        result.dropped_frames = stats.dropped_frames
        ok = {m["video_id"] for m in input_units if m["status"] == "ok"} - {r[0] for r in stats.skipped}
        result.prepared = len(ok)
        write_skipped_csv(skipped_csv, skipped)
        h.attrs["summary"] = json.dumps({
            "videos": result.videos, "prepared": result.prepared, "frames": result.frames,
            "faces": stats.inputs, "rows": stats.rows, "no_face_frames": result.no_face_frames,
            "skipped": result.skipped, "dropped_frames": stats.dropped_frames,
        })

    stats = cache_mod.assemble([u.shard for u in units], cache_path, attrs, training, config.size,
                               before_complete=finish)
    timings["assemble"] += time.perf_counter() - t0
    shutil.rmtree(parts, ignore_errors=True)
    result.rows = stats.rows
    result.faces = stats.inputs
    result.timings = timings
    result.elapsed = time.perf_counter() - t_start
    return result


def _run_pool(todo: list[Unit], config: FaceAlignConfig, frames: int, device: str, training: bool,
              sd: Optional[str], workers: int, on_meta: Callable[[dict], None]) -> None:
    """Several videos at once in spawned processes (torch and fork do not mix); each writes its own shard.

    On Ctrl-C or an error the workers are terminated at once: a shard is renamed into place only when
    complete, so killing a worker mid-video loses nothing but that video, which the next run redoes.
    """
    import multiprocessing as mp

    threads = max(1, (os.cpu_count() or 1) // workers)
    pool = mp.get_context("spawn").Pool(
        workers, initializer=_init_worker, initargs=(config.to_dict(), frames, device, training, sd, threads)
    )
    try:
        for meta in pool.imap_unordered(_run_in_worker, todo, chunksize=1):
            on_meta(meta)
    except BaseException:
        pool.terminate()
        pool.join()
        raise
    pool.close()
    pool.join()
