"""`make demo`: the whole pipeline on the embedded default, through the real CLI.

prepare the FF++ miniature -> train DiffusionFake and a --no-guide baseline on the same budget ->
prepare the Celeb-DF miniature -> evaluate both across datasets -> reconstruct one face.

The embedded default is a tiny Stable Diffusion with random weights (fixed seed) and synthetic sample data:
it proves that every stage runs and that the detector learns the miniature's fakes. It does not reproduce
the paper's numbers, and the guided-vs-baseline comparison printed at the end is whatever was measured.

Environment overrides (for a quicker or longer run): DEMO_STEPS, DEMO_BATCH, DEMO_BACKBONE, DEMO_LR, DEMO_WEIGHT_LR,
DEMO_FRAMES, DEMO_SIZE, DFAKE_WORKSPACE, DFAKE_SAMPLE_DATA (the sample data folder: a pip install has none,
`python -m dfake_cli.sampledata.generate --out DIR` writes it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from rich.table import Table

from dfake_cli.console import EMBEDDED_NOTICE, console

REPO = Path(__file__).resolve().parent.parent
IN_CLONE = (REPO / "pyproject.toml").is_file()  # a git clone (else: installed with pip, no sample_data/ beside it)
SAMPLE = Path(os.environ.get("DFAKE_SAMPLE_DATA", REPO / "sample_data" if IN_CLONE else "sample_data")).resolve()

# Training budget of the demo: the whole pipeline in about five minutes on 2 quiet CPU cores (README).
# A small backbone trained from scratch needs a larger learning rate than the paper's 1e-5 (which assumes
# ImageNet-pretrained weights, unavailable offline). Faces at 64 px (latents 4x8x8) keep a guided step of
# batch 16 near 1.2 s on 2 cores (3.3 s at 128 px).
# The weight nets W_s/W_t (three linear 3x3 convolutions and a linear head before the sigmoid) saturate
# within 3 steps at lr 1e-3 and never come back (a saturated sigmoid passes almost no gradient); their own
# smaller learning rate keeps them moving towards their targets (docs/training.md, Weight modules).
STEPS = int(os.environ.get("DEMO_STEPS", "48"))
BATCH = int(os.environ.get("DEMO_BATCH", "16"))
BACKBONE = os.environ.get("DEMO_BACKBONE", "resnet18")
LR = os.environ.get("DEMO_LR", "1e-3")
WEIGHT_LR = os.environ.get("DEMO_WEIGHT_LR", "1e-5")
FRAMES = os.environ.get("DEMO_FRAMES", "8")
SIZE = os.environ.get("DEMO_SIZE", "64")


def dfake(workspace: Path, *args: str) -> None:
    """Run one `dfake` command in a subprocess, exactly as a user would; stop the demo if it fails."""
    cmd = [sys.executable, "-m", "dfake_cli", "--workspace", str(workspace), *args]
    console.print(f"\n[bold cyan]$ dfake {' '.join(args)}[/]")
    res = subprocess.run(cmd, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if res.returncode != 0:
        console.print(f"[red]demo stopped: `dfake {' '.join(args)}` exited with {res.returncode}[/]")
        sys.exit(res.returncode)


def first_frame_png(video: Path, out: Path) -> Path:
    """Save the middle frame of a sample video as a PNG: the input of `dfake reconstruct`."""
    from PIL import Image

    from dfake_cli.data.video import frame_count, read_frames

    frames, _ = read_frames(video, indices=[frame_count(video) // 2])
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(frames[0]).save(out)
    return out


def _cell(metrics: dict | None) -> str:
    if not metrics:
        return "-"
    return f"{100 * metrics['auc']:.1f} / {100 * metrics['eer']:.1f}"


def side_by_side(reports: dict[str, Path]) -> Table:
    """Guided vs baseline, AUC / EER (%) per dataset, frame and video level, as measured."""
    loaded = {name: json.loads((path / "report.json").read_text()) for name, path in reports.items()}
    datasets = list(next(iter(loaded.values()))["datasets"])
    table = Table(title="DiffusionFake vs plain detector (embedded default), AUC / EER (%)")
    table.add_column("model (level)")
    for ds in datasets:
        table.add_column(ds, justify="center")
    for name, report in loaded.items():
        for level in ("frame", "video"):
            table.add_row(f"{name} ({level})", *[_cell(report["datasets"][ds].get(level)) for ds in datasets])
    return table


def main() -> None:
    workspace = Path(os.environ.get("DFAKE_WORKSPACE", REPO / "dfake-workspace" if IN_CLONE else "dfake-workspace")).resolve()
    ffpp_root = SAMPLE / "FaceForensics++"
    celeb_root = SAMPLE / "Celeb-DF-v2"
    if not ffpp_root.is_dir() or not celeb_root.is_dir():
        how = "make sample-data" if IN_CLONE else f"python -m dfake_cli.sampledata.generate --out {SAMPLE}"
        print(f"dfake demo: no sample data in {SAMPLE}; create it with `{how}`, or point "
              f"DFAKE_SAMPLE_DATA at a copy", file=sys.stderr)
        sys.exit(2)
    console.print(EMBEDDED_NOTICE)
    started = time.time()

    dfake(workspace, "prepare", "ff++", str(ffpp_root), "--sd", "tiny", "--frames", FRAMES, "--size", SIZE,
          "--name", "ffpp")
    common = ["--data", "ffpp", "--sd", "tiny", "--backbone", BACKBONE, "--steps", str(STEPS),
              "--batch-size", str(BATCH), "--lr", LR, "--seed", "0", "--no-val-losses"]
    guided = ["--weight-lr", WEIGHT_LR]
    runs = {"DiffusionFake": "demo-guided", "no-guide baseline": "demo-baseline"}
    for name, run in runs.items():
        extra = ["--no-guide"] if name.startswith("no-guide") else list(guided)
        if (workspace / "runs" / run / "last").is_dir():
            extra.append("--resume")  # a finished run re-runs in seconds; an interrupted one continues
        dfake(workspace, "train", "--run", run, *common, *extra)
    dfake(workspace, "prepare", "celebdf", str(celeb_root), "--frames", FRAMES, "--name", "celebdf")

    reports = {}
    for name, run in runs.items():
        out = workspace / "reports" / run
        dfake(workspace, "eval", "--dataset", "ffpp", "--dataset", "celebdf", "--checkpoint", run,
              "--out", str(out))
        reports[name] = out

    fake_video = sorted((ffpp_root / "manipulated_sequences" / "Deepfakes" / "c23" / "videos").glob("*.mp4"))[0]
    image = first_frame_png(fake_video, workspace / "reconstructions" / f"{fake_video.stem}-input.png")
    grid = workspace / "reconstructions" / f"{fake_video.stem}-grid.png"
    dfake(workspace, "reconstruct", str(image), "--checkpoint", runs["DiffusionFake"], "--steps", "20",
          "--seeds", "2", "--out", str(grid))

    console.print()
    console.print(side_by_side(reports), width=max(console.width, 100))
    console.print(EMBEDDED_NOTICE)
    console.print(f"\n[bold]Outputs[/] (workspace {workspace}):")
    outputs = [("caches", f"{workspace / 'data'} (ffpp.h5, celebdf.h5, *.skipped.csv)")]
    for name, run in runs.items():
        outputs.append((f"{name} run", f"{workspace / 'runs' / run} (best/, last/, metrics.csv)"))
        outputs.append((f"{name} report", f"{reports[name]} (report.json, predictions.csv, roc.png)"))
    outputs += [("reconstruction", str(grid)), ("elapsed", f"{time.time() - started:.0f} s")]
    for label, value in outputs:
        console.print(f"  {label + ':':26}{value}", soft_wrap=True)


if __name__ == "__main__":
    main()
