"""apt_video.scoring.inputs: labels keyed by full path, renumbered as the model numbers its classes
by name, and the metrics of the rows written."""
import pytest

from apt_video.pipeline.data import DataError, VideoEntry
from apt_video.scoring.inputs import label_metrics, to_model_labels


def test_labels_are_renumbered_by_class_name_and_refused_when_the_model_lacks_one():
    truth = {"/d/a.mp4": 0, "/d/b.mp4": 1, "/d/c.mp4": -1}
    assert to_model_labels(truth, ["walk", "run"], ["run", "walk"], "x") == {"/d/a.mp4": 1, "/d/b.mp4": 0,
                                                                          "/d/c.mp4": -1}
    assert to_model_labels(truth, ["Walk", "RUN"], ["run", "walk"], "x")["/d/a.mp4"] == 1  # case, unambiguous
    with pytest.raises(DataError, match="x: class 'jump' of the labels is not a class of the model"):
        to_model_labels(truth, ["walk", "jump"], ["run", "walk"], "x")
    with pytest.raises(DataError, match="label 2 is beyond the model's 2 classes"):
        to_model_labels({"/d/a.mp4": 2}, None, ["run", "walk"], "x")


def test_two_folders_holding_one_file_name_keep_their_own_labels(tmp_path):
    """VideoMAE's merge keys videos by file name; ours by full path."""
    entries = [VideoEntry(str(tmp_path / f / "clip.mp4")) for f in ("x", "y")]
    labels = {str((tmp_path / "x" / "clip.mp4").resolve()): 0, str((tmp_path / "y" / "clip.mp4").resolve()): 1}
    rows = [{"video": i, "status": "ok", "top_k": [(c, 0.9), (o, 0.1)]}
            for i, c, o in (("x/clip.mp4", "a", "b"), ("y/clip.mp4", "b", "a"))]
    report = label_metrics(rows, entries, ["x/clip.mp4", "y/clip.mp4"], labels, ["a", "b"])
    assert report["top1"] == 100.0 and report["videos"] == 2 and report["unlabelled"] == []
