"""DFD parser: actors reals, DeepFakeDetection fakes named <target>_<source>__<scene>__<id>, masks."""

import numpy as np
import pytest

from dfake_cli.data.datasets.dfd import parse_dfd
from dfake_cli.errors import InputError
from dfake_cli.sampledata.videoio import write_video


@pytest.fixture()
def tree(tmp_path):
    root = tmp_path / "FaceForensics++"
    vids = [
        "original_sequences/actors/c23/videos/01__kitchen_pan.mp4",
        "original_sequences/actors/c23/videos/02__kitchen_pan.mp4",
        "manipulated_sequences/DeepFakeDetection/c23/videos/01_02__kitchen_pan__YVGY8LOK.mp4",
        "manipulated_sequences/DeepFakeDetection/c23/videos/02_01__kitchen_pan__ABCD1234.mp4",
        "manipulated_sequences/DeepFakeDetection/c23/videos/03_04__walking__ZZZZ0000.mp4",
        "manipulated_sequences/DeepFakeDetection/c23/videos/weird-name.mp4",
        "manipulated_sequences/DeepFakeDetection/masks/videos/01_02__kitchen_pan__YVGY8LOK.mp4",
    ]
    for rel in vids:
        write_video(root / rel, np.zeros((2, 16, 16, 3), np.uint8))
    return root


def test_reals_fakes_targets_and_masks(tree):
    m = parse_dfd(tree)
    by_id = {it.video_id: it for it in m.items}
    assert sorted(by_id) == [
        "DFD/DeepFakeDetection/01_02__kitchen_pan__YVGY8LOK", "DFD/DeepFakeDetection/02_01__kitchen_pan__ABCD1234",
        "DFD/DeepFakeDetection/03_04__walking__ZZZZ0000", "DFD/actors/01__kitchen_pan", "DFD/actors/02__kitchen_pan",
    ]
    fake = by_id["DFD/DeepFakeDetection/01_02__kitchen_pan__YVGY8LOK"]
    assert fake.label == 1 and fake.target == "DFD/actors/01__kitchen_pan" and fake.source == "DFD/actors/02__kitchen_pan"
    assert fake.mask_path == tree / "manipulated_sequences/DeepFakeDetection/masks/videos" / fake.path.name
    assert by_id["DFD/DeepFakeDetection/02_01__kitchen_pan__ABCD1234"].mask_path is None
    orphan = by_id["DFD/DeepFakeDetection/03_04__walking__ZZZZ0000"]
    assert orphan.target is None and orphan.label == 1
    assert by_id["DFD/actors/01__kitchen_pan"].label == 0
    assert [s[1] for s in m.skipped] == [str(tree / "manipulated_sequences/DeepFakeDetection/c23/videos/weird-name.mp4")]
    assert any("no mask" in n for n in m.notes) and any("no original" in n for n in m.notes)


def test_missing_compression_names_what_exists(tree):
    with pytest.raises(InputError, match=r"no raw/ videos .*found: c23"):
        parse_dfd(tree, compression="raw")
    with pytest.raises(InputError, match="--compression"):
        parse_dfd(tree, compression="c99")


def test_not_a_dfd_tree(tmp_path):
    with pytest.raises(InputError, match="DeepFakeDetection"):
        parse_dfd(tmp_path)
