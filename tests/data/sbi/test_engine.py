"""prepare_sbi end to end on a miniature FF++ tree: schema, pairs, seeded blends, reruns, preview."""

from __future__ import annotations

import numpy as np
import pytest

from dfake_cli.data.cache import FaceCache
from dfake_cli.data.sbi import SBIConfig
from dfake_cli.data.sbi.engine import prepare_sbi, video_rows, work_dir
from dfake_cli.data.sbi.sources import real_manifest
from dfake_cli.errors import InputError

FRAMES, SIZE = 3, 64


@pytest.fixture(scope="module")
def sbi_cache(tiny_ffpp_master, tmp_path_factory):
    out = tmp_path_factory.mktemp("sbi") / "data" / "sbi.h5"
    manifest = real_manifest(tiny_ffpp_master)
    # preview first: stage 1 runs and is kept, so the build below starts from its faces
    prev = prepare_sbi(manifest, out, frames=FRAMES, size=SIZE, progress=False, preview=4)
    assert prev.preview.is_file() and not out.exists() and (work_dir(out) / "reals.h5").is_file()
    result = prepare_sbi(manifest, out, frames=FRAMES, size=SIZE, progress=False)
    return manifest, out, result


def test_schema_pairs_and_scores(sbi_cache):
    _, path, result = sbi_cache
    assert result.real_faces == 2 * FRAMES and result.fakes == 2 * result.real_faces
    assert result.processed_units == 0  # stage 1's faces came from the preview run
    assert not work_dir(path).exists()
    with FaceCache(path) as cache:
        df = cache.index
        assert cache.has_latents and cache.attrs["training"] and cache.attrs["dataset"] == "SBI-FaceForensics++"
        inputs = df[df.role == "input"]
        assert sorted(inputs.label.value_counts().tolist()) == [result.real_faces, result.fakes]
        reals, fakes = inputs[inputs.label == 0], inputs[inputs.label == 1]
        assert (reals.source_row == reals.index).all() and (reals.target_row == reals.index).all()
        assert (reals.score_s == 1).all()
        assert set(df.method[fakes.source_row]) == {"SBI-source"}
        assert set(df.method[fakes.target_row]) <= {"youtube", "SBI-target"}
        assert (df.role[fakes.source_row] != "input").all()
        assert ((fakes.score_s > 0) & (fakes.score_s <= 1) & (fakes.score_t > 0) & (fakes.score_t <= 1)).all()
        # the target is the face the blend keeps: the same frame of the same real video, pixel-aligned
        tgt = fakes.target_row.to_numpy()
        assert (df.frame_index[tgt].to_numpy() == fakes.frame_index.to_numpy()).all()
        assert (df.split[tgt].to_numpy() == fakes.split.to_numpy()).all()
        # blends are reproducible: rebuild one video's rows from its real faces
        vid = reals.video_id.iloc[0]
        rows = reals.index[reals.video_id == vid].to_numpy()
        meta = {"landmarks": cache.landmarks(rows), "matrix": cache.matrices(rows),
                "confidence": reals.confidence[rows].to_numpy(), "frame_index": reals.frame_index[rows].to_numpy()}
        again, n_fakes = video_rows(cache.faces(rows), meta, vid, "youtube", SBIConfig(), 1.3)
        prefix = f"FaceForensics++/SBI/{vid.split('/')[-1]}_sbi"
        stored = np.flatnonzero((df.role == "input") & df.video_id.str.startswith(prefix))
        fresh = again.faces[(again.label == 1) & (np.asarray(again.role) == "input")]
        assert len(stored) == n_fakes == FRAMES * 2
        assert np.array_equal(cache.faces(stored), fresh)


def test_rerun_and_changed_options(sbi_cache):
    manifest, path, _ = sbi_cache
    assert prepare_sbi(manifest, path, frames=FRAMES, size=SIZE, progress=False).already_prepared
    with pytest.raises(InputError, match="sbi differ"):
        prepare_sbi(manifest, path, frames=FRAMES, size=SIZE, progress=False, sbi=SBIConfig(variants=1))


def test_only_reals_are_accepted(tiny_ffpp_master, tmp_path):
    from dfake_cli.data.datasets import get_parser

    with pytest.raises(InputError, match="real items only"):
        prepare_sbi(get_parser("ffpp")(tiny_ffpp_master), tmp_path / "x.h5", progress=False)
