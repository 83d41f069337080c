"""`make demo-sbi`: DiffusionFake trained on self-blended fakes of the FF++ miniature's REAL videos only,
evaluated beside the FF++-trained demo model on the FF++ test split and on Celeb-DF.

    prepare sbi --preview 6 (look at the blends) -> prepare sbi -> train on sbi (no FF++ fake is seen) ->
    the FF++-trained run of `make demo` (trained here if missing) -> eval both on ffpp + celebdf

Same workspace, budget and settings as `make demo` (its environment overrides apply), so the two runs differ
only in their training data. What it prints is whatever was measured; the miniature is tiny and synthetic.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from dfake_cli.console import EMBEDDED_NOTICE, console
from dfake_cli.demo import BACKBONE, BATCH, FRAMES, LR, SAMPLE, SIZE, STEPS, WEIGHT_LR, dfake, side_by_side

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    workspace = Path(os.environ.get("DFAKE_WORKSPACE", REPO / "dfake-workspace")).resolve()
    ffpp_root, celeb_root = SAMPLE / "FaceForensics++", SAMPLE / "Celeb-DF-v2"
    if not ffpp_root.is_dir() or not celeb_root.is_dir():
        console.print(f"[red]sample data missing under {SAMPLE}: run `make sample-data`[/]")
        sys.exit(2)
    console.print(EMBEDDED_NOTICE)
    started = time.time()
    faces = ["--frames", FRAMES, "--size", SIZE]
    preview = workspace / "data" / "sbi.preview.png"
    dfake(workspace, "prepare", "sbi", str(ffpp_root), "--layout", "ffpp", *faces, "--sd", "tiny", "--name", "sbi",
          "--preview", "6", "--preview-out", str(preview))
    dfake(workspace, "prepare", "sbi", str(ffpp_root), "--layout", "ffpp", *faces, "--sd", "tiny", "--name", "sbi")
    dfake(workspace, "prepare", "ff++", str(ffpp_root), *faces, "--sd", "tiny", "--name", "ffpp")
    dfake(workspace, "prepare", "celebdf", str(celeb_root), "--frames", FRAMES, "--name", "celebdf")

    common = ["--sd", "tiny", "--backbone", BACKBONE, "--steps", str(STEPS), "--batch-size", str(BATCH), "--lr", LR,
              "--weight-lr", WEIGHT_LR, "--seed", "0", "--no-val-losses"]
    runs = {"SBI-trained (reals only)": ("demo-sbi", "sbi"), "FF++-trained": ("demo-guided", "ffpp")}
    for run, data in runs.values():
        extra = ["--resume"] if (workspace / "runs" / run / "last").is_dir() else []
        dfake(workspace, "train", "--run", run, "--data", data, *common, *extra)
    reports = {}
    for name, (run, _) in runs.items():
        out = workspace / "reports" / run
        dfake(workspace, "eval", "--dataset", "ffpp", "--dataset", "celebdf", "--checkpoint", run, "--out", str(out))
        reports[name] = out

    console.print()
    console.print(side_by_side(reports), width=max(console.width, 100))
    console.print(EMBEDDED_NOTICE)
    console.print(f"\n[bold]Outputs[/] (workspace {workspace}):")
    for label, value in [("blend preview", str(preview)), ("SBI cache", str(workspace / "data" / "sbi.h5")),
                         *[(f"{n} report", str(p)) for n, p in reports.items()],
                         ("elapsed", f"{time.time() - started:.0f} s")]:
        console.print(f"  {label + ':':30}{value}", soft_wrap=True)


if __name__ == "__main__":
    main()
