"""Metrics on hand-computed cases: perfect, inverted, ties, interpolated EER, one class refused."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from dfake_cli.errors import InputError
from dfake_cli.evaluation import metrics as M


def test_perfect_separation():
    m = M.frame_metrics([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert m["auc"] == 1.0 and m["eer"] == 0.0 and m["ap"] == 1.0
    assert m["acc"] == m["acc_real"] == m["acc_fake"] == 1.0
    assert (m["n"], m["n_real"], m["n_fake"]) == (4, 2, 2)


def test_inverted_scores():
    m = M.frame_metrics([0, 0, 1, 1], [0.8, 0.9, 0.1, 0.2])
    assert m["auc"] == 0.0 and m["eer"] == 1.0
    assert m["acc"] == m["acc_real"] == m["acc_fake"] == 0.0


def test_all_ties_are_chance():
    m = M.frame_metrics([0, 1, 0, 1, 1], [0.3] * 5)
    assert m["auc"] == 0.5 and m["eer"] == 0.5
    # 0.3 < 0.5: everything called real
    assert m["acc_real"] == 1.0 and m["acc_fake"] == 0.0 and m["acc"] == pytest.approx(2 / 5)


def test_threshold_counts_half_as_fake():
    m = M.frame_metrics([0, 1], [0.49, 0.5])
    assert m["acc"] == 1.0


def test_tie_across_classes_interpolates_eer():
    # desc: 0.8 F | 0.5 F,R tie | 0.2 R -> vertices (0,0) (0,.5) (.5,1) (1,1); the tie is a diagonal
    # segment on which FPR - FNR goes from -0.5 to +0.5: the crossing is at its middle, FPR = 0.25.
    labels, scores = [0, 1, 0, 1], [0.2, 0.5, 0.5, 0.8]
    assert M.eer(labels, scores) == pytest.approx(0.25)
    assert M.auc(labels, scores) == pytest.approx(0.875)


def test_horizontal_segment_crossing():
    # reals 0.2, 0.6; fakes 0.4, 0.8, 0.9 -> vertices (0,0) (0,1/3) (0,2/3) (.5,2/3) (.5,1) (1,1);
    # between (0, 2/3) and (.5, 2/3) FNR stays 1/3 while FPR grows: they meet at FPR = 1/3.
    labels, scores = [0, 0, 1, 1, 1], [0.2, 0.6, 0.4, 0.8, 0.9]
    assert M.eer(labels, scores) == pytest.approx(1 / 3)
    assert M.auc(labels, scores) == pytest.approx(5 / 6)


def test_roc_vertices_exact():
    fpr, tpr, thr = M.roc([0, 1, 0, 1], [0.2, 0.5, 0.5, 0.8])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 1, 1])
    assert np.isinf(thr[0]) and list(thr[1:]) == [0.8, 0.5, 0.2]


def test_auc_matches_sklearn_and_eer_is_a_crossing_on_random_data():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    s = np.round(rng.normal(y * 0.7, 1.0), 1)  # rounding makes many ties
    assert M.auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    e = M.eer(y, s)
    # at the EER, the polyline's FPR and FNR are equal: check against a dense walk along the curve
    fpr, tpr, _ = M.roc(y, s)
    t = np.linspace(0, 1, 2001)
    fs = np.concatenate([f0 + t * (f1 - f0) for f0, f1 in zip(fpr[:-1], fpr[1:])])
    ts = np.concatenate([t0 + t * (t1 - t0) for t0, t1 in zip(tpr[:-1], tpr[1:])])
    k = np.argmin(np.abs(fs - (1 - ts)))
    assert e == pytest.approx(fs[k], abs=2e-3)


@pytest.mark.parametrize("labels", [[0, 0, 0], [1, 1]])
def test_one_class_is_refused(labels):
    with pytest.raises(InputError, match="only (real|fake) samples"):
        M.frame_metrics(labels, [0.5] * len(labels))


def test_bad_inputs_are_refused():
    with pytest.raises(InputError, match="labels must be 0"):
        M.frame_metrics([0, 2], [0.1, 0.2])
    with pytest.raises(InputError, match="NaN"):
        M.frame_metrics([0, 1], [0.1, float("nan")])
    with pytest.raises(InputError, match="2 labels but 3 scores"):
        M.frame_metrics([0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(InputError, match="no samples"):
        M.frame_metrics([], [])


def test_video_metrics_average_frames_per_unique_id():
    df = pd.DataFrame({
        "video_id": ["a/r/1", "a/r/1", "a/DF/000_003", "a/DF/000_003", "a/NT/000_003"],
        "label": [0, 0, 1, 1, 1],
        "score": [0.2, 0.4, 0.9, 0.7, 0.1],
    })
    v = M.video_scores(df).set_index("video_id")
    assert v.loc["a/r/1", "score"] == pytest.approx(0.3) and v.loc["a/r/1", "n_frames"] == 2
    assert v.loc["a/DF/000_003", "score"] == pytest.approx(0.8)
    m = M.video_metrics(df)
    assert m["n"] == 3 and m["auc"] == pytest.approx(0.5) and m["acc"] == pytest.approx(2 / 3)


def test_video_with_mixed_labels_is_refused():
    df = pd.DataFrame({"video_id": ["x", "x", "y"], "label": [0, 1, 0], "score": [0.1, 0.2, 0.3]})
    with pytest.raises(InputError, match="both labels"):
        M.video_metrics(df)
