"""apt_video.holdout: validation and test videos held out of one's own class folders, stratified,
seeded and at least one each; and the config that train's --data stands for."""
import pytest

from apt_video.holdout import folder_config, split_entries
from apt_video.pipeline.data import DataError, VideoEntry


def entries(counts):
    return [VideoEntry(f"/v/c{label}/{i:02d}.mp4", label) for label, n in enumerate(counts) for i in range(n)]


def test_each_class_gives_its_share_seeded():
    videos = entries([20, 7, 3])
    parts = split_entries(videos, ["a", "b", "c"], 0.1, 0.2, seed=0)
    for label, (n_val, n_test) in enumerate([(2, 4), (1, 1), (1, 1)]):  # round(n * share), at least one
        assert sum(e.label == label for e in parts["val"]) == n_val
        assert sum(e.label == label for e in parts["test"]) == n_test
    assert sorted(e.path for p in parts.values() for e in p) == sorted(e.path for e in videos)  # each once
    assert split_entries(list(reversed(videos)), ["a", "b", "c"], 0.1, 0.2, seed=0) == parts  # order-free
    assert split_entries(videos, ["a", "b", "c"], 0.1, 0.2, seed=1) != parts
    assert split_entries(videos, ["a", "b", "c"], 0.0, 0.1, seed=0)["val"] == []


def test_a_class_too_small_to_hold_out_and_train_is_named():
    with pytest.raises(DataError, match="class 'b' has 2 usable videos: too few to hold out 1 for validation and 1"):
        split_entries(entries([10, 2]), ["a", "b"], 0.1, 0.1, seed=0)


def test_folder_config():
    assert folder_config(False, None, 0.2) == ["test_split=0.2"]
    assert folder_config(True, None, 0.2) == ["nb_classes=0", "train_list=.", "val_list=''", "test_list=''",
                                              "val_split=0.1", "test_split=0.2"]
