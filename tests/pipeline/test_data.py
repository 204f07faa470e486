"""pipeline.data: list files, class folders, SSv2 annotations, manifests and links; every bad
input named with its file and line."""
import csv
import json
import os
import shutil

import pytest

from apt_video.cli import main
from apt_video.pipeline.data import DataError, read_list_file, read_manifest, read_ssv2, write_manifest
from apt_video.pipeline.datasets import open_dataset
from apt_video.pipeline.probe import probe_dataset
from apt_video.pipeline.video import probe_video


def test_list_file_errors_name_the_line(tmp_path):
    p = tmp_path / "train.csv"
    p.write_text("a.mp4 0\nb.mp4 one\n")
    with pytest.raises(DataError, match=r"train.csv:2: expected '<path> <int label>', got 'b.mp4 one'"):
        read_list_file(p)
    p.write_text("dir with space/a.mp4 3\n")
    assert read_list_file(p, "/data")[0].path == "/data/dir with space/a.mp4"
    (tmp_path / "classes.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match="label 3 is out of range for 2 classes"):
        open_dataset(p)


def test_class_folders_and_plain_folders(tmp_path, index_videos):
    for cls in ("walk", "run"):
        (tmp_path / "tree" / cls).mkdir(parents=True)
        shutil.copy(index_videos["vp9"], tmp_path / "tree" / cls / "x.webm")
    ds = open_dataset(tmp_path / "tree")
    assert ds.classes == ["run", "walk"] and [e.label for e in ds.entries] == [0, 1]
    (tmp_path / "flat" / "sub").mkdir(parents=True)
    shutil.copy(index_videos["h264"], tmp_path / "flat" / "b.mp4")
    shutil.copy(index_videos["h264"], tmp_path / "flat" / "sub" / "a.mp4")
    ds = open_dataset(tmp_path / "flat")
    assert [os.path.basename(e.path) for e in ds.entries] == ["b.mp4", "a.mp4"] or \
        [e.path.endswith(("flat/b.mp4", "sub/a.mp4")) for e in ds.entries]
    assert all(e.label == -1 for e in ds.entries)


def test_ssv2_annotations(tmp_path):
    (tmp_path / "labels.json").write_text(json.dumps({"Pushing something": "1", "Holding something": "0"}))
    (tmp_path / "val.json").write_text(json.dumps([{"id": "7", "template": "Pushing [something]"},
                                                   {"id": "9", "template": "Holding [something]"}]))
    ds = read_ssv2(tmp_path / "labels.json", tmp_path / "val.json", tmp_path / "v")
    assert ds.classes == ["Holding something", "Pushing something"]
    assert [(os.path.basename(e.path), e.label) for e in ds.entries] == [("7.webm", 1), ("9.webm", 0)]
    via_open = open_dataset(tmp_path / "val.json", tmp_path / "v")  # what train/probe/score call
    assert via_open.classes == ds.classes and [e.path for e in via_open.entries] == [e.path for e in ds.entries]
    (tmp_path / "bad.json").write_text(json.dumps([{"id": "1", "template": "Dropping [something]"}]))
    with pytest.raises(DataError, match="template 'Dropping something'"):
        read_ssv2(tmp_path / "labels.json", tmp_path / "bad.json", tmp_path / "v")


# -- bad list files, manifests and folders ---------------------------------------------------------------
def test_list_files_reject_negative_labels_and_other_encodings_but_take_a_bom(tmp_path):
    p = tmp_path / "train.csv"
    p.write_text("a.mp4 0\nb.mp4 -1\n")
    with pytest.raises(DataError, match=r"train.csv:2: label -1 is negative"):
        read_list_file(p)
    p.write_bytes("\ufeffa.mp4 0\nb.mp4 1\n".encode("utf-8"))  # a byte-order mark, as some editors save
    assert [os.path.basename(e.path) for e in read_list_file(p)] == ["a.mp4", "b.mp4"]
    p.write_bytes("a.mp4 0\ncaf\xe9.mp4 1\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"train.csv:2: the list file is not UTF-8 \(byte 0xe9\)"):
        read_list_file(p)
    assert main(["probe", str(p)]) == 2


def test_manifest_columns_in_any_order(tmp_path, index_videos):
    entries = [probe_video(index_videos["vp9"], label=2)]
    write_manifest(tmp_path / "m.csv", entries)
    rows = list(csv.reader(open(tmp_path / "m.csv")))
    order = list(reversed(range(len(rows[0]))))
    with open(tmp_path / "r.csv", "w", newline="") as f:
        csv.writer(f).writerows([[r[i] for i in order] for r in rows])
    ds = open_dataset(tmp_path / "r.csv")
    assert read_manifest(tmp_path / "r.csv") == entries and ds.entries == entries


def test_links_loops_and_folders_named_like_videos_in_a_class_tree(tmp_path, index_videos, capsys):
    tree = tmp_path / "tree"
    for cls in ("jump", "walk"):
        (tree / cls).mkdir(parents=True)
    shutil.copy(index_videos["vp9"], tree / "jump" / "a.webm")
    (tree / "jump" / "again.webm").symlink_to("a.webm")
    (tree / "walk" / "up").symlink_to("..")  # a loop
    (tree / "walk" / "x.mp4").mkdir()  # a folder, not a video
    (tree / "walk" / "gone.webm").symlink_to("missing.webm")
    ds = open_dataset(tree)
    names = [os.path.relpath(e.path, tree) for e in ds.entries]
    assert names == ["jump/a.webm", "jump/again.webm", "walk/gone.webm"]  # as found, not resolved
    entries, _ = probe_dataset(ds, None, progress=False)
    assert [e.status for e in entries] == ["ok", "ok", "missing"] and "link" in entries[2].reason
    assert main(["probe", str(tree), "--workers", "1"]) == 0
    assert "3 videos: 2 ok, 1 missing" in capsys.readouterr().out
