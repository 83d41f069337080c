"""`prepare_sbi`: a real-only dataset -> a DiffusionFake training cache of reals and self-blended fakes.

Two resumable stages, both under `<name>.sbi-work/` next to the cache (removed once the cache is whole):

1. the ordinary preparation engine on the real items (`reals.h5`: aligned faces, landmarks, no latents), so
   SBI faces are detected, tracked and aligned exactly like every other cache's;
2. per real video, one shard (`parts/`): its real faces (each its own source and target), and for each face
   `variants` blends with their source copies (and, when the augmentation fell on the target copy, that
   target copy); the SD-VAE latents of every row come from the same encoder as `prepare ff++`.

The shards are assembled by the cache writer, which also computes the weight targets from the latents as
for FF++. Row layout of one fake: input = the blend (label 1, method `SBI`), target_row = the real face
(or its augmented copy, method `SBI-target`), source_row = the transformed copy (method `SBI-source`).
Splits are the real videos' (sources.py). Blends depend only on (seed, video id, frame, variant).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from dfake_cli import __version__
from dfake_cli.data import cache as cache_mod
from dfake_cli.data.cache import ROLE_INPUT, ROLE_SOURCE, ROLE_TARGET, ShardRows
from dfake_cli.data.datasets import Manifest
from dfake_cli.data.faces import FaceAlignConfig, template
from dfake_cli.data.prepare import PrepareResult, prepare_manifest, select_items
from dfake_cli.data.sbi.blend import SelfBlend, face_rng, self_blend
from dfake_cli.data.sbi.config import SBIConfig
from dfake_cli.data.sbi.preview import write_preview
from dfake_cli.errors import InputError
from dfake_cli.runtime import DEFAULT_MARGIN, DEFAULT_SIZE

METHOD_FAKE, METHOD_SOURCE, METHOD_TARGET = "SBI", "SBI-source", "SBI-target"


@dataclass
class SBIPrepareResult(PrepareResult):
    """A PrepareResult (the summary every prepare command prints) plus the SBI counts."""

    real_faces: int = 0
    fakes: int = 0
    preview: Optional[Path] = None

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["preview"] = str(self.preview) if self.preview else None
        return out


def work_dir(cache_path: Path) -> Path:
    return cache_path.with_name(cache_path.name[: -len(cache_path.suffix)] + ".sbi-work")


def _split_name(video_id: str) -> tuple[str, str]:
    """`dataset/method/name` -> (dataset, name); the name may hold slashes (folder layouts)."""
    parts = video_id.split("/", 2)
    return parts[0], parts[-1]


def _points(landmarks: np.ndarray, size: int, margin: float) -> np.ndarray:
    """The face's 5 landmarks in the crop; where they were not detected (pre-cropped frames), the
    alignment template, which is where an aligned face's landmarks are by construction."""
    return template(size, margin).astype(np.float32) if not np.isfinite(landmarks).all() else landmarks


def blend_video(faces: np.ndarray, landmarks: np.ndarray, frames: np.ndarray, video_id: str, cfg: SBIConfig,
                margin: float) -> list[tuple[int, int, SelfBlend]]:
    """(face position, variant, blend) for every face of one video, in a fixed order."""
    size = faces.shape[1]
    out = []
    for i in range(len(faces)):
        pts = _points(landmarks[i], size, margin)
        for k in range(cfg.variants):
            out.append((i, k, self_blend(faces[i], pts, face_rng(cfg.seed, video_id, int(frames[i]), k), cfg)))
    return out


def video_rows(faces: np.ndarray, meta_rows: dict, video_id: str, method: str, cfg: SBIConfig,
               margin: float) -> tuple[ShardRows, int]:
    """One real video's shard rows: its faces, then per face and variant [source, (target), fake]."""
    n = len(faces)
    ds, name = _split_name(video_id)
    lms, mats, confs, fidx = (meta_rows[k] for k in ("landmarks", "matrix", "confidence", "frame_index"))
    imgs = list(faces)
    vids, methods, labels, roles = [video_id] * n, [method] * n, [0] * n, [ROLE_INPUT] * n
    frames, lm_out, mat_out, conf_out = list(fidx), list(lms), list(mats), list(confs)
    link, source_link = [-1] * n, [-1] * n
    fakes = 0

    def add(img, vid, meth, label, role, i) -> int:
        imgs.append(img)
        vids.append(vid)
        methods.append(meth)
        labels.append(label)
        roles.append(role)
        frames.append(fidx[i])
        lm_out.append(lms[i])
        mat_out.append(mats[i])
        conf_out.append(confs[i])
        link.append(-1)
        source_link.append(-1)
        return len(imgs) - 1

    for i, k, b in blend_video(faces, lms, fidx, video_id, cfg, margin):
        tag = f"{name}_sbi{k}"
        src = add(b.source, f"{ds}/{METHOD_SOURCE}/{tag}", METHOD_SOURCE, 0, ROLE_SOURCE, i)
        tgt = add(b.target, f"{ds}/{METHOD_TARGET}/{tag}", METHOD_TARGET, 0, ROLE_TARGET, i) \
            if b.target_augmented else i
        fake = add(b.blended, f"{ds}/{METHOD_FAKE}/{tag}", METHOD_FAKE, 1, ROLE_INPUT, i)
        link[fake], source_link[fake] = tgt, src
        fakes += 1
    size = faces.shape[1]
    rows = ShardRows(
        faces=np.stack(imgs).astype(np.uint8).reshape(-1, size, size, 3), video_id=vids,
        frame_index=np.asarray(frames, np.int32), label=np.asarray(labels, np.int8), method=methods, role=roles,
        confidence=np.asarray(conf_out, np.float32), landmarks=np.asarray(lm_out, np.float32).reshape(-1, 5, 2),
        matrix=np.asarray(mat_out, np.float32).reshape(-1, 2, 3), link=np.asarray(link, np.int64),
        source_frame=np.full(len(imgs), -1, np.int64), source_link=np.asarray(source_link, np.int64),
    )
    return rows, fakes


def _videos(index) -> "OrderedDict[str, np.ndarray]":
    """Input rows of a faces cache grouped by video, in cache order."""
    groups: OrderedDict[str, list[int]] = OrderedDict()
    vids = index["video_id"].to_numpy()
    for r in np.flatnonzero(index["role"].to_numpy() == ROLE_INPUT):
        groups.setdefault(str(vids[r]), []).append(int(r))
    return OrderedDict((k, np.asarray(v, np.int64)) for k, v in groups.items())


def write_sbi_preview(cache_path: Path, out: Path, n: int, cfg: SBIConfig, margin: float) -> Path:
    """Blend `n` real faces of a cache (spread over its videos) with `cfg` and write the check grid."""
    from dfake_cli.data.cache import FaceCache

    with FaceCache(cache_path) as cache:
        df = cache.index
        rows = np.flatnonzero((df["role"].to_numpy() == ROLE_INPUT) & (df["label"].to_numpy() == 0))
        if not len(rows):
            raise InputError(f"{cache_path} has no real faces to preview")
        pick = rows[np.unique(np.linspace(0, len(rows) - 1, min(n, len(rows))).round().astype(np.int64))]
        faces, lms = cache.faces(pick), cache.landmarks(pick)
        vids, fidx = df["video_id"].to_numpy()[pick], df["frame_index"].to_numpy()[pick]
    blends, labels = [], []
    for j, r in enumerate(pick):
        k = j % cfg.variants
        pts = _points(lms[j], faces.shape[1], margin)
        blends.append(self_blend(faces[j], pts, face_rng(cfg.seed, str(vids[j]), int(fidx[j]), k), cfg))
        labels.append(f"{_split_name(str(vids[j]))[1]}#{int(fidx[j])}")
    return write_preview(out, blends, labels)


def prepare_sbi(
    manifest: Manifest, cache_path: str | Path, *, sbi: SBIConfig = SBIConfig(), frames: int = 32, size: int = DEFAULT_SIZE,
    margin: float = DEFAULT_MARGIN, device: str = "cpu", workers: int = 1, limit: Optional[int] = None, sd: str = "tiny",
    skipped_csv: str | Path | None = None, progress: bool = True, preview: Optional[int] = None,
    preview_path: str | Path | None = None,
) -> SBIPrepareResult:
    """Build the SBI training cache at `cache_path` from the real items of `manifest` (resumable).

    With `preview` N: write the check grid of N blends to `preview_path` and stop (stage 1's faces are kept,
    so the real run that follows starts from them).
    """
    from dfake_cli.models.sd import sd_identity

    t_start = time.perf_counter()
    cfg = sbi.validated()
    cache_path = Path(cache_path)
    skipped_csv = Path(skipped_csv) if skipped_csv is not None else cache_path.with_suffix(".skipped.csv")
    if any(item.label != 0 for item in manifest.items):
        raise InputError(f"{manifest.dataset}: self-blended fakes are made from real items only")
    sd_id = sd_identity(sd)
    selected = select_items(manifest.items, limit)
    options = json.loads(json.dumps({
        "kind": "sbi", "dataset": manifest.dataset, "frames": frames, "size": size, "margin": margin,
        "sd_identity": sd_id, "limit": -1 if limit is None else int(limit), "sbi": cfg.to_dict(),
        "videos_sha": hashlib.sha1("\n".join(sorted(i.video_id for i in selected)).encode()).hexdigest()[:16],
    }))
    work = work_dir(cache_path)
    existing = cache_mod.cache_attrs(cache_path)
    if preview is not None:
        if preview < 1:
            raise InputError(f"--preview {preview}: must be >= 1")
        out = Path(preview_path) if preview_path else cache_path.with_suffix(".preview.png")
        source = cache_path if existing is not None else None
        result = SBIPrepareResult(cache_path=cache_path, skipped_csv=None, notes=list(manifest.notes))
        if source is None:
            base = _stage_faces(manifest, work, frames, size, margin, device, workers, limit, progress)
            source, result.videos, result.frames = work / "reals.h5", base.videos, base.frames
        result.preview = write_sbi_preview(source, out, preview, cfg, margin)
        result.elapsed = time.perf_counter() - t_start
        return result
    if existing is not None:
        old = json.loads(existing.get("options", "{}"))
        diff = sorted(k for k in options if old.get(k) != options[k])
        if not diff:
            summary = json.loads(existing.get("summary", "{}"))
            return SBIPrepareResult(
                cache_path=cache_path, skipped_csv=skipped_csv if skipped_csv.is_file() else None,
                videos=summary.get("videos", 0), prepared=summary.get("prepared", 0),
                frames=summary.get("frames", 0), faces=summary.get("faces", 0), rows=summary.get("rows", 0),
                no_face_frames=summary.get("no_face_frames", 0), skipped=summary.get("skipped", {}),
                notes=json.loads(existing.get("notes", "[]")), already_prepared=True,
                real_faces=summary.get("real_faces", 0), fakes=summary.get("fakes", 0),
                elapsed=time.perf_counter() - t_start,
            )
        raise InputError(f"{cache_path} was prepared with different options ({', '.join(diff)} differ): "
                         f"pass --name NEW for a second cache, or delete {cache_path}")
    if cache_path.exists():
        raise InputError(f"{cache_path} exists but is not a finished dfake cache: delete it and run again")

    base = _stage_faces(manifest, work, frames, size, margin, device, workers, limit, progress)
    shards, real_faces, fakes, timings = _stage_blends(work, options, cfg, size, margin, frames, device, sd,
                                                      progress)
    t0 = time.perf_counter()
    metas = [cache_mod.read_shard_meta(p) for p in shards]
    scaling = next((float(m["latent_scaling"]) for m in metas if m.get("latent_scaling")), float("nan"))
    notes = list(manifest.notes) + [f"{real_faces} real faces, {fakes} self-blended fakes ({cfg.variants} per face)"]
    align = FaceAlignConfig(size=size, margin=margin)
    attrs = {
        "dataset": f"SBI-{manifest.dataset}", "root": str(manifest.root), "sd_identity": sd_id,
        "latent_scaling": scaling, "size": size, "margin": margin, "frames_per_video": frames,
        "dfake_version": __version__, "created": cache_mod.now_iso(), "align": json.dumps(align.to_dict()),
        "training": True, "limit": options["limit"], "options": json.dumps(options, sort_keys=True),
        "score": "(cos(mean_input, mean_branch) + 1) / 2 over flattened VAE latent means",
        "labels": "0 real, 1 fake (self-blended)", "notes": json.dumps(notes), "sbi": json.dumps(cfg.to_dict()),
    }
    result = SBIPrepareResult(
        cache_path=cache_path, skipped_csv=skipped_csv, videos=base.videos, prepared=len(shards),
        frames=base.frames, no_face_frames=base.no_face_frames, skipped=dict(base.skipped), notes=notes,
        processed_units=base.processed_units, real_faces=real_faces, fakes=fakes,
    )

    def finish(h, stats: cache_mod.AssembleStats) -> None:
        if base.skipped_csv is not None and Path(base.skipped_csv).is_file():
            shutil.copyfile(base.skipped_csv, skipped_csv)
        h.attrs["summary"] = json.dumps({
            "videos": result.videos, "prepared": result.prepared, "frames": result.frames, "faces": stats.inputs,
            "rows": stats.rows, "no_face_frames": result.no_face_frames, "skipped": result.skipped,
            "dropped_frames": 0, "real_faces": real_faces, "fakes": fakes,
        })

    stats = cache_mod.assemble(shards, cache_path, attrs, True, size, before_complete=finish)
    timings["assemble"] = time.perf_counter() - t0
    shutil.rmtree(work, ignore_errors=True)
    result.rows, result.faces = stats.rows, stats.inputs
    result.timings = {**base.timings, **timings}
    result.elapsed = time.perf_counter() - t_start
    return result


def _stage_faces(manifest: Manifest, work: Path, frames: int, size: int, margin: float, device: str, workers: int,
                 limit: Optional[int], progress: bool) -> PrepareResult:
    """Stage 1: the real faces, by the ordinary engine (resumable on its own). Work left by a run with other
    face options is stale: it is removed rather than refused (it is an intermediate, not a cache)."""
    stamp = json.dumps({"dataset": manifest.dataset, "root": str(manifest.root), "frames": frames, "size": size,
                        "margin": margin, "limit": limit}, sort_keys=True)
    if work.is_dir() and (not (work / "faces.json").is_file() or (work / "faces.json").read_text() != stamp):
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    (work / "faces.json").write_text(stamp)
    return prepare_manifest(manifest, work / "reals.h5", frames=frames, size=size, margin=margin, device=device,
                            workers=workers, limit=limit, training=False, skipped_csv=work / "reals.skipped.csv",
                            progress=progress)


def _stage_blends(work: Path, options: dict, cfg: SBIConfig, size: int, margin: float, frames: int, device: str,
                  sd: str, progress: bool) -> tuple[list[Path], int, int, dict]:
    """Stage 2: one shard per real video (blends + latents); existing shards are reused."""
    from dfake_cli.console import progress as make_progress
    from dfake_cli.data.cache import FaceCache
    from dfake_cli.data.prepare import UnitWorker

    parts = work / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    content = {k: options[k] for k in ("frames", "size", "margin", "sd_identity", "sbi")}
    shards, real_faces, fakes = [], 0, 0
    timings = {"blend": 0.0, "encode": 0.0, "write": 0.0}
    encoder = None
    bar = make_progress(unit="faces")
    if not progress:
        bar.disable = True
    with FaceCache(work / "reals.h5") as reals, bar:
        df = reals.index
        groups = _videos(df)
        splits, methods = df["split"].to_numpy(), df["method"].to_numpy()
        task = bar.add_task("self-blend", total=len(groups), rate="", info="")
        for video_id, rows in groups.items():
            fidx = df["frame_index"].to_numpy()[rows]
            key = hashlib.sha1(json.dumps({"c": content, "v": video_id, "f": fidx.tolist()},
                                          sort_keys=True).encode()).hexdigest()[:24]
            shard = parts / f"{key}.npz"
            shards.append(shard)
            real_faces += len(rows)
            fakes += len(rows) * cfg.variants
            if not shard.is_file():
                t0 = time.perf_counter()
                meta_rows = {"landmarks": reals.landmarks(rows), "matrix": reals.matrices(rows),
                             "confidence": df["confidence"].to_numpy()[rows], "frame_index": fidx}
                shard_rows, _ = video_rows(reals.faces(rows), meta_rows, video_id, str(methods[rows[0]]), cfg,
                                           margin)
                t1 = time.perf_counter()
                if encoder is None:
                    encoder = UnitWorker(FaceAlignConfig(size=size, margin=margin), frames, device, True, sd)
                encoder.encode(shard_rows)
                t2 = time.perf_counter()
                meta = {"status": "ok", "video_id": video_id, "label": 0, "split": str(splits[rows[0]]),
                        "path": video_id, "is_input": True, "latent_scaling": encoder.latent_scaling}
                cache_mod.write_shard(shard, shard_rows, meta)
                timings["blend"] += t1 - t0
                timings["encode"] += t2 - t1
                timings["write"] += time.perf_counter() - t2
            bar.update(task, advance=1, info=_split_name(video_id)[1])
    if not shards:
        raise InputError("no real faces were found, so there is nothing to blend (see the skipped list)")
    return shards, real_faces, fakes, timings
