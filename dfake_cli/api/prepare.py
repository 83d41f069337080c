"""`dfake prepare`: raw dataset trees -> one HDF5 face cache per dataset in <workspace>/data/.

`prepare_ffpp` builds the training cache (faces, source/target pairs, SD-VAE latents, weight targets);
`prepare_testset` builds a test cache (faces + index) with the same alignment as the training cache, so a
test face is cropped exactly like the faces the detector was trained on.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from dfake_cli.errors import InputError
from dfake_cli.data.prepare.engine import check_options
from dfake_cli.runtime import DEFAULT_MARGIN, DEFAULT_SIZE, check_device
from dfake_cli.workspace import Workspace, hold_lock, validate_name

if TYPE_CHECKING:
    from dfake_cli.data.prepare import PrepareResult

#: The cache `dfake train` reads by default; test sets copy its size and margin.
TRAINING_CACHE = "ffpp"
#: The test-set layouts `prepare_testset` accepts (parsers in data/datasets/).
TESTSETS = ("celebdf", "dfdcp", "dfd", "wdf", "diffswap", "folder")


def prepare_ffpp(
    root: str | Path, workspace: Workspace, *, compression: str = "c23", methods: Optional[str] = None,
    frames: int = 32, size: int = DEFAULT_SIZE, margin: float = DEFAULT_MARGIN, sd: Optional[str] = None,
    device: str = "cpu", workers: int = 1, limit: Optional[int] = None, name: str = TRAINING_CACHE,
    progress: bool = True, stage: str = "auto",
) -> "PrepareResult":
    """Parse an FF++ tree and prepare its training cache `<workspace>/data/<name>.h5` (resumable).

    `sd` None falls back to $DFAKE_SD; with neither, one line asks for it (no silent tiny SD on real data).
    """
    from dfake_cli.data.datasets import get_parser
    from dfake_cli.data.prepare import prepare_manifest
    from dfake_cli.models.sd import require_sd

    sd = require_sd(sd, "the training cache's latents")
    name = validate_name(name, "cache name")
    check_options(frames, size, margin, workers)
    if device != "cpu":
        check_device(device)
    manifest = get_parser("ffpp")(root, compression=compression, methods=methods)
    workspace.ensure()
    with hold_lock(workspace.cache_lock(name), f"prepare of {name!r}"):
        return prepare_manifest(
            manifest, workspace.cache_path(name), frames=frames, size=size, margin=margin, device=device,
            workers=workers, limit=limit, training=True, sd=sd, skipped_csv=workspace.skipped_path(name),
            progress=progress, stage=stage,
        )


def default_cache_name(dataset: str, root: str | Path) -> str:
    """celebdf, dfdcp, dfd, wdf, diffswap; a folder gets folder-<its name> (made file-name safe)."""
    if dataset != "folder":
        return dataset
    base = Path(root).expanduser().resolve().name
    safe = re.sub(r"[^A-Za-z0-9_.+-]+", "-", base).strip("-.") or "data"
    return f"folder-{safe}"


def alignment_defaults(workspace: Workspace, size: Optional[int], margin: Optional[float]) -> tuple[int, float, str]:
    """(size, margin, where they came from): explicit options win, then the training cache, then the defaults."""
    from dfake_cli.data.cache import cache_attrs

    attrs = cache_attrs(workspace.cache_path(TRAINING_CACHE)) or {}
    origin = f"as {TRAINING_CACHE}.h5" if attrs else "defaults"
    size = size if size is not None else int(attrs.get("size", DEFAULT_SIZE))
    margin = margin if margin is not None else float(attrs.get("margin", DEFAULT_MARGIN))
    return size, margin, origin


def prepare_testset(
    workspace: Workspace, dataset: str, root: str | Path, *, name: Optional[str] = None, frames: int = 32,
    size: Optional[int] = None, margin: Optional[float] = None, device: str = "cpu", workers: int = 1,
    limit: Optional[int] = None, progress: bool = True, stage: str = "auto", **parser_options: Any,
) -> "PrepareResult":
    """Parse `root` as `dataset` and prepare `<workspace>/data/<name>.h5`; returns the PrepareResult.

    WildDeepfake frames are extracted next to the cache (`<name>.extract/`, only the frames used) and
    removed once the cache is complete; an interrupted run reuses what was already extracted.
    """
    if dataset not in TESTSETS:
        raise InputError(f"test set {dataset!r}: use one of {', '.join(TESTSETS)}")
    cache_name = validate_name(name or default_cache_name(dataset, root), "--name")
    workspace.ensure()
    # One preparation per cache name: the lock covers WildDeepfake's extraction folder too.
    with hold_lock(workspace.cache_lock(cache_name), f"prepare of {cache_name!r}"):
        return _prepare_testset(workspace, dataset, root, cache_name, name, frames, size, margin, device, workers,
                                limit, progress, parser_options, stage)


def _prepare_testset(workspace: Workspace, dataset: str, root: str | Path, cache_name: str, name: Optional[str],
                     frames: int, size: Optional[int], margin: Optional[float], device: str, workers: int,
                     limit: Optional[int], progress: bool, parser_options: dict, stage: str = "auto") -> "PrepareResult":
    from dfake_cli.data.datasets import get_parser
    from dfake_cli.data.prepare import prepare_manifest

    given = {"size": size, "margin": margin}
    size, margin, origin = alignment_defaults(workspace, size, margin)
    inherited = [k for k, v in given.items() if v is None]
    check_options(frames, size, margin, workers,
                  f"{' and '.join(inherited)} {origin}; pass --{inherited[0]}" if inherited and origin != "defaults" else "")
    if device != "cpu":
        check_device(device)
    if limit is not None and limit < 1:
        raise InputError(f"--limit {limit}: must be >= 1")
    extract_dir = None
    if dataset == "wdf":
        extract_dir = workspace.data_dir / f"{cache_name}.extract"
        parser_options = {**parser_options, "extract_dir": extract_dir, "frames": frames}
    if dataset == "folder" and name:
        parser_options = {**parser_options, "name": name}  # --name also names the dataset in the report
    try:
        manifest = get_parser(dataset)(root, **parser_options)
    except Exception:  # a refused tree leaves no half-extracted frames behind (Ctrl-C keeps them: resumable)
        if extract_dir is not None:
            shutil.rmtree(extract_dir, ignore_errors=True)
        raise
    if not manifest.items:
        if extract_dir is not None:
            shutil.rmtree(extract_dir, ignore_errors=True)
        raise InputError(f"{root}: no usable {manifest.dataset} video found ({len(manifest.skipped)} skipped: "
                         f"{_reasons(manifest.skipped)}); check the folder layout (docs/evaluation.md)")
    result = prepare_manifest(
        manifest, workspace.cache_path(cache_name), frames=frames, size=size, margin=margin, device=device,
        workers=workers, limit=limit, training=False, skipped_csv=workspace.skipped_path(cache_name),
        progress=progress, stage=stage,
    )
    if extract_dir is not None:
        shutil.rmtree(extract_dir, ignore_errors=True)
    return result


def _reasons(skipped: list) -> str:
    counts = Counter(s[2] for s in skipped)
    return ", ".join(f"{n} {reason}" for reason, n in counts.most_common(3)) or "none"


from dfake_cli.api.sbi import prepare_sbi  # noqa: E402,F401  (`dfake prepare sbi`: its own module, same api)
