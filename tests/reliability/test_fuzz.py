"""Property-based fuzzing (hypothesis) of what the 13 findings had in common: hostile names, shapes, options.

Each property is what dfake promises for every input: bad input is one line with exit code 2 (never a
traceback, never exit 1), skips are listed, nothing is written outside the extraction folder. The short
profile (`make test`) is derandomized; `make fuzz` runs the long one (conftest.py).
"""

import io
import math
import os
import tarfile

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from PIL import Image

from helpers.clitools import run
from dfake_cli.errors import InputError

# A POSIX file name: any bytes but '/' and NUL, not '.' or '..', at most 64 bytes.
names = st.binary(min_size=1, max_size=64).map(lambda b: b.replace(b"/", b"_").replace(b"\0", b"_")).filter(
    lambda b: b not in (b".", b".."))
numbers = st.one_of(st.integers(-10**9, 10**9), st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=False),
                    st.sampled_from([0, 1, 8, 16, 256, 1024, 1.3, 0.5, 4.0]))
option_text = st.one_of(numbers.map(str), st.text(min_size=0, max_size=12),
                        st.sampled_from(["inf", "-inf", "nan", "1e309", "0x10", "", " ", "cuda:99", "tpu", "cpu"]))


# ------------------------------------------------------------------------------------------- file names


@given(st.lists(names, min_size=1, max_size=6, unique=True))
def test_any_file_names_give_valid_ids_and_a_writable_skip_list(tmp_path_factory, raw_names):
    from dfake_cli.data.datasets.folder import parse_folder_as
    from dfake_cli.data.prepare.results import cache_options, write_skipped_csv
    from dfake_cli.data.faces import FaceAlignConfig

    root = tmp_path_factory.mktemp("names")
    for cls in ("real", "fake"):
        (root / cls).mkdir()
    for k, raw in enumerate(raw_names):
        folder = root / ("real", "fake")[k % 2]
        with open(os.path.join(os.fsencode(folder), raw + b".png"), "wb") as f:
            f.write(b"x")
        with open(os.path.join(os.fsencode(folder), raw), "wb") as f:  # no extension: not media, skipped
            f.write(b"x")
    m = parse_folder_as("F", root)
    for item in m.items:
        item.video_id.encode("utf-8")  # never a lone surrogate
    assert len({it.video_id for it in m.items}) == len(m.items)
    write_skipped_csv(root / "skipped.csv", m.skipped)
    cache_options(m, m.items, 2, FaceAlignConfig(), False, "", None)
    assert (root / "skipped.csv").read_bytes().decode("utf-8")


@given(st.lists(st.tuples(st.sampled_from(["real", "fake"]), names, st.integers(0, 99)), min_size=1, max_size=5))
def test_any_archive_member_names_stay_inside_the_extraction_folder(tmp_path_factory, members):
    from dfake_cli.data.datasets.wdf import parse_wdf

    root = tmp_path_factory.mktemp("wdf")
    base = root / "deepfake_in_the_wild"
    buf = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(buf, format="PNG")
    png = buf.getvalue()
    for cls in ("real", "fake"):
        path = base / f"{cls}_test" / "1.tar.gz"
        path.parent.mkdir(parents=True)
        with tarfile.open(path, "w:gz") as tar:
            for c, seq, frame in members + [(cls, b"0", 1)]:
                if c != cls:
                    continue
                info = tarfile.TarInfo(f"./1/{c}/{os.fsdecode(seq)}/{frame}.png")
                info.size = len(png)
                tar.addfile(info, io.BytesIO(png))
    out = root / "x"
    m = parse_wdf(root, extract_dir=out, frames=2)
    inside = out.resolve()
    extracted = [p for p in root.rglob("*") if p.is_file() and p.suffix == ".png"]
    assert all(p.resolve().is_relative_to(inside) for p in extracted)
    assert len({it.video_id for it in m.items}) == len(m.items) >= 2


# ------------------------------------------------------------------------------------------ image shapes


@pytest.fixture(scope="module")
def extractor():
    from dfake_cli.data.faces import FaceAlignConfig, FaceExtractor

    return FaceExtractor(FaceAlignConfig(size=32))


@given(st.integers(1, 70), st.integers(1, 70), st.integers(0, 255))
def test_any_image_shape_is_detected_or_reported_never_a_crash(extractor, h, w, value):
    image = np.full((h, w, 3), value, np.uint8)
    faces = extractor.detect([image])[0]
    assert isinstance(faces, list)
    if extractor.too_small(h, w):
        assert faces == []


@given(st.sampled_from([(1, 5000), (5000, 1), (2, 30000), (3, 700), (31, 4000)]))
def test_extreme_aspect_ratios(extractor, shape):
    image = np.zeros(shape + (3,), np.uint8)
    assert extractor.detect([image])[0] == []


# --------------------------------------------------------------------------------------- option values


@given(numbers, numbers, numbers, numbers)
def test_prepare_option_check_refuses_or_accepts_never_crashes(frames, size, margin, workers):
    from dfake_cli.data.prepare.engine import check_options

    try:
        check_options(frames, size, margin, workers)
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(size, int) and 16 <= size <= 1024 and size % 8 == 0
    assert math.isfinite(margin) and 0.5 <= margin <= 4 and frames >= 1


def _ok_or_one_line(code, err):
    assert code in (0, 2), err
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


@given(st.sampled_from(["--margin", "--size", "--frames", "--workers", "--limit", "--device"]), option_text)
def test_prepare_options_from_the_command_line(tmp_path_factory, wdf_root, capsys, option, value):
    ws = tmp_path_factory.mktemp("ws")
    extra = [] if option == "--size" else ["--size", "16"]
    code, out, err = run(["--workspace", ws, "prepare", "wdf", wdf_root, option, value, *extra, "--workers", "1"]
                         if option != "--workers" else
                         ["--workspace", ws, "prepare", "wdf", wdf_root, option, value, *extra], capsys)
    _ok_or_one_line(code, err)


@given(st.sampled_from(["--frames", "--device", "--checkpoint"]), option_text)
def test_detect_options(tmp_path_factory, capsys, option, value):
    ws = tmp_path_factory.mktemp("ws")
    code, out, err = run(["--workspace", ws, "detect", ws / "none.png", option, value], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err


@given(st.sampled_from(["--frames", "--batch-size", "--precision", "--device", "--dataset", "--out"]), option_text)
def test_eval_options(tmp_path_factory, capsys, option, value):
    assume(option != "--out" or value.strip())
    ws = tmp_path_factory.mktemp("ws")
    args = ["--workspace", ws, "eval", option, value] + ([] if option == "--dataset" else ["--dataset", "ffpp"])
    code, out, err = run(args, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
