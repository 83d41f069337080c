"""The generic real/ + fake/ folder parser and DiffSwap (the same layout, image level)."""

import numpy as np
import pytest
from PIL import Image

from dfake_cli.data.datasets.folder import parse_diffswap, parse_folder
from dfake_cli.errors import InputError
from dfake_cli.sampledata.videoio import write_video


def _image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(path)


@pytest.fixture()
def tree(tmp_path):
    root = tmp_path / "my set"
    _image(root / "real" / "a.png")
    _image(root / "real" / "sub" / "b.jpg")
    _image(root / "fake" / "x.png")
    _image(root / "fake" / "DiffSwap" / "y.png")
    write_video(root / "fake" / "v.mp4", np.zeros((2, 16, 16, 3), np.uint8))
    (root / "fake" / "README.txt").write_text("not a face")
    return root


def test_folder_items_kinds_and_methods(tree):
    m = parse_folder(tree)
    assert m.dataset == "my set"
    by_id = {it.video_id: it for it in m.items}
    assert sorted(by_id) == ["my set/DiffSwap/y.png", "my set/fake/v.mp4", "my set/fake/x.png",
                             "my set/real/a.png", "my set/real/sub/b.jpg"]
    assert by_id["my set/real/sub/b.jpg"].label == 0 and by_id["my set/fake/x.png"].label == 1
    assert by_id["my set/fake/v.mp4"].kind == "video" and by_id["my set/DiffSwap/y.png"].kind == "image"
    assert by_id["my set/DiffSwap/y.png"].method == "DiffSwap"
    assert len(m.skipped) == 1 and m.skipped[0][1].endswith("README.txt") and m.skipped[0][2] == "not media"


def test_named_folder_and_diffswap(tree):
    assert parse_folder(tree, name="custom").items[0].video_id.startswith("custom/")
    d = parse_diffswap(tree)
    assert d.dataset == "DiffSwap" and len(d.items) == 5


def test_missing_class_folder(tmp_path):
    _image(tmp_path / "real" / "a.png")
    with pytest.raises(InputError, match="no fake/ folder"):
        parse_folder(tmp_path)
