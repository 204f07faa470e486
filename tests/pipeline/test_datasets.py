"""UCF101, HMDB51 and Kinetics read in their official layouts: small trees made here with real
videos (MPEG-4 Part 2 .avi as UCF101 and HMDB51 ship, .mp4 for Kinetics), class indices against a
hand-written expectation, one epoch of training and a labelled scoring run on each, and the bad
layouts."""
import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from apt_video import models
from apt_video.cli import main
from apt_video.exporting import real_clips
from apt_video.pipeline.data import DataError
from apt_video.pipeline.datasets import find_splits, has_part, open_dataset, open_layout
from apt_video.pipeline.probe import probe_dataset
from apt_video.pipeline.video import write_video
from apt_video.tools.synth import motion_clip

ANGLES = {0: 0.0, 1: 90.0, 2: 180.0}


def _video(path, cls, seed, codec="mpeg4"):
    write_video(path, motion_clip(ANGLES[cls], 20, 64, 48, np.random.default_rng(seed)), codec)


@pytest.fixture(scope="module")
def ucf101(tmp_path_factory):
    """UCF-101/<Class>/v_<Class>_gXX_cYY.avi and ucfTrainTestlist/ beside it. The test list writes
    'HandStandPushups' for the folder 'HandstandPushups', as the official one does."""
    base = tmp_path_factory.mktemp("ucf")
    root, lists = base / "UCF-101", base / "ucfTrainTestlist"
    classes = ["ApplyEyeMakeup", "HandstandPushups", "JumpRope"]
    lists.mkdir()
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
    train, test = [], []
    for c, cls in enumerate(classes):
        listed = "HandStandPushups" if cls == "HandstandPushups" else cls
        for g in range(1, 6):
            name = f"v_{listed}_g{g:02d}_c01.avi"
            _video(root / cls / name, c, seed=10 * c + g)
            (test if g == 1 else train).append((f"{listed}/{name}", c))
    (lists / "trainlist01.txt").write_text("".join(f"{p} {c + 1}\n" for p, c in train))
    (lists / "testlist01.txt").write_text("".join(f"{p}\n" for p, _ in test))
    return root


@pytest.fixture(scope="module")
def hmdb51(tmp_path_factory):
    """hmdb51_org/<class>/<video>.avi and testTrainMulti_7030_splits/<class>_test_split1.txt."""
    base = tmp_path_factory.mktemp("hmdb")
    root, splits = base / "hmdb51_org", base / "testTrainMulti_7030_splits"
    splits.mkdir()
    for c, cls in enumerate(["wave", "climb", "kick"]):  # sorted: climb 0, kick 1, wave 2
        lines = []
        for k in range(5):
            name = f"{cls}_video_{k}.avi"
            _video(root / cls / name, c, seed=100 + 10 * c + k)
            lines.append(f"{name} {2 if k == 0 else (0 if k == 4 else 1)}")
        (splits / f"{cls}_test_split1.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def kinetics(tmp_path_factory):
    """kinetics/<part>/<label>/<youtube_id>_<start>_<end>.mp4 and annotations/{train,validate,test}.csv
    (the test rows are the validation ones here); one listed video was never downloaded."""
    base = tmp_path_factory.mktemp("k400")
    root, ann = base / "kinetics", base / "annotations"
    ann.mkdir()
    rows = {"train": [], "val": []}
    for c, label in enumerate(["abseiling", "bowling", "surfing water"]):
        for k in range(5):
            part = "val" if k == 0 else "train"
            yid, start = f"id{c}{k}xx", 10 * k
            stem = f"{yid}_{start:06d}_{start + 10:06d}"
            if not (c == 2 and k == 4):  # the one that is missing
                _video(root / part / label / f"{stem}.mp4", c, seed=200 + 10 * c + k, codec="h264")
            rows[part].append([label, yid, start, start + 10, "train" if part == "train" else "val"])
    rows["test"] = rows["val"]
    for part, name in (("train", "train.csv"), ("val", "validate.csv"), ("test", "test.csv")):
        with open(ann / name, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
            w.writerows(rows[part])
    return root


def test_class_indices_follow_each_datasets_convention(ucf101, hmdb51, kinetics):
    ds = open_layout(ucf101, 1, "train")
    assert ds.classes == ["ApplyEyeMakeup", "HandstandPushups", "JumpRope"]  # classInd.txt, 1-based -> 0
    test = open_layout(ucf101, 1, "test")
    assert [e.label for e in test.entries] == [0, 1, 2] and all(e.path.endswith(".avi") for e in test.entries)
    assert test.entries[1].path.endswith("HandstandPushups/v_HandStandPushups_g01_c01.avi")  # the folder's case
    assert open_layout(ucf101, 1, "val").entries == test.entries  # UCF101's val is its test list
    ds = open_layout(hmdb51, 1, "train")
    assert ds.classes == ["climb", "kick", "wave"]  # sorted class folders
    assert sorted({e.label for e in ds.entries}) == [0, 1, 2] and len(ds.entries) == 9  # flag 1; flag 0 unused
    assert [p.split("/")[-1] for p in sorted(e.path for e in open_layout(hmdb51, 1, "test").entries)] == \
        ["climb_video_0.avi", "kick_video_0.avi", "wave_video_0.avi"]
    ds = open_layout(kinetics, 1, "train")
    assert ds.classes == ["abseiling", "bowling", "surfing water"] and len(ds.entries) == 12
    assert [e.label for e in open_layout(kinetics, 1, "val").entries] == [0, 1, 2]
    assert has_part(kinetics, 1, "test") and has_part(ucf101, 1, "test")
    assert open_dataset(ucf101, split=1, part="test").entries == test.entries  # what every command calls


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ucf101", "hmdb51", "kinetics"])
def test_one_epoch_and_a_labelled_score_on_each(tmp_path, request, name, capsys, monkeypatch):
    root = request.getfixturevalue(name)
    run = tmp_path / "run"
    sets = ["--set", "epochs=1", "--set", "num_workers=1", "--set", "batch_size=4", "--set", "val_batch_size=4"]
    if name == "ucf101":  # split files given relative to the working folder
        sets += ["--splits", os.path.relpath(root.parent / "ucfTrainTestlist")]
    assert main(["train", "--preset", "demo", "--data-root", str(root), "--split", "1", "-o", str(run),
                 "--no-progress", *sets]) == 0
    card = models.read_card(run / "checkpoints" / "best.safetensors")
    if name == "ucf101":
        assert Path(card.data["splits"]).is_absolute()
    monkeypatch.chdir(tmp_path)  # the exporter finds the run's validation videos from anywhere
    assert real_clips(card, 2)[0] is not None
    monkeypatch.undo()
    test = json.loads((run / "test_metrics.json").read_text())
    assert test["classes"] == open_layout(root, 1, "train").classes and test["videos"] == 3
    skipped = (run / "skipped.csv").read_text()
    assert ("id24xx_000040_000050" in skipped) == (name == "kinetics")  # never downloaded: listed, not fatal
    out = tmp_path / "scores.csv"
    code = main(["score", str(root), "--split", "1", "--model", str(run), "-o", str(out), "--labels",
                 "--no-progress"])
    assert code == 0
    metrics = json.loads((tmp_path / "scores.csv.metrics.json").read_text())
    assert metrics["videos"] == 3 and metrics["classes"] == test["classes"]
    assert "labels: top-1" in capsys.readouterr().out


def test_bad_layouts_are_named(tmp_path, ucf101, hmdb51):
    with pytest.raises(DataError, match="UCF101 has splits 1 \\(--split\\)"):
        open_layout(ucf101, 4, "train")
    with pytest.raises(DataError, match="HMDB51 has splits 1"):
        open_layout(hmdb51, 2, "train")
    lists = tmp_path / "lists"
    shutil.copytree(ucf101.parent / "ucfTrainTestlist", lists)
    (lists / "trainlist01.txt").write_text("Juggling/v_Juggling_g01_c01.avi 1\n")
    with pytest.raises(DataError, match="trainlist01.txt:1: class 'Juggling' is not in .*classInd.txt"):
        open_layout(ucf101, 1, "train", splits=lists)
    (lists / "trainlist01.txt").write_text("JumpRope/v_JumpRope_g09_c01.avi 3\n")  # listed, not there
    ds = open_layout(ucf101, 1, "train", splits=lists)
    entries, _ = probe_dataset(ds, None, progress=False)
    assert [e.status for e in entries] == ["missing"]  # a row to skip, not a crash
    mixed = tmp_path / "mixed"
    shutil.copytree(ucf101.parent / "ucfTrainTestlist", mixed)
    for f in (hmdb51.parent / "testTrainMulti_7030_splits").iterdir():
        shutil.copy(f, mixed / f.name)
    with pytest.raises(DataError, match="holds the split files of hmdb51 and ucf101"):
        find_splits(ucf101, mixed)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no UCF101 .* split files found"):
        find_splits(ucf101, tmp_path / "empty")
    assert main(["probe", str(ucf101), "--split", "7"]) == 2


def test_split_files_inside_the_hmdb51_folder_are_not_a_class(tmp_path, hmdb51):
    root = tmp_path / "hmdb51_org"
    shutil.copytree(hmdb51, root)
    shutil.copytree(hmdb51.parent / "testTrainMulti_7030_splits", root / "testTrainMulti_7030_splits")
    assert open_layout(root, 1, "train").classes == ["climb", "kick", "wave"]


def test_malformed_lines_are_named(tmp_path, ucf101, hmdb51, kinetics):
    """Each malformed line of a split, class or annotation file is one DataError naming file:line."""
    lists = tmp_path / "ucf"
    shutil.copytree(ucf101.parent / "ucfTrainTestlist", lists)
    for text, error in [("JumpRope/v_JumpRope_g02_c01.avi three\n", "trainlist01.txt:1: expected '<Class>/"),
                        ("v_JumpRope_g02_c01.avi 3\n", "trainlist01.txt:1: expected '<Class>/"),
                        ("\nJumpRope/v_JumpRope_g02_c01.avi 3 extra\n", "trainlist01.txt:2: expected"),
                        ("JumpRope/v_JumpRope_g02_c01.avi 1\n", "trainlist01.txt:1: label 1 does not match "
                                                                "class 'JumpRope' \\(3 in classInd.txt\\)")]:
        (lists / "trainlist01.txt").write_text(text)
        with pytest.raises(DataError, match=error):
            open_layout(ucf101, 1, "train", splits=lists)
    shutil.copy(ucf101.parent / "ucfTrainTestlist" / "trainlist01.txt", lists)
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n3 HandstandPushups\n")
    with pytest.raises(DataError, match="classInd.txt:2: expected '<index> <Class>' numbered from 1"):
        open_layout(ucf101, 1, "train", splits=lists)

    splits = tmp_path / "hmdb"
    shutil.copytree(hmdb51.parent / "testTrainMulti_7030_splits", splits)
    (splits / "kick_test_split1.txt").write_text("kick_video_0.avi\n")
    with pytest.raises(DataError, match="kick_test_split1.txt:1: expected '<video>.avi <0\\|1\\|2>'"):
        open_layout(hmdb51, 1, "train", splits=splits)

    ann = tmp_path / "k"
    shutil.copytree(kinetics.parent / "annotations", ann)
    good = (ann / "train.csv").read_text()
    header = "label,youtube_id,time_start,time_end,split\n"
    for text, error in [(header + "bowling,idx,ten,20,train\n", "train.csv:2: expected a youtube_id and whole"),
                        (header + "bowling,idx\n", "train.csv:2: expected a youtube_id"),
                        (header + ",idx,10,20,train\n", "train.csv:2: no label"),
                        ("youtube_id,time_start,time_end,split\nidx,10,20,train\n", "train.csv: no column label"),
                        ("label,youtube_id,start,end\nbowling,idx,10,20\n",
                         "train.csv: no column .*time_start, time_end")]:
        (ann / "train.csv").write_text(text)
        with pytest.raises(DataError, match=error):
            open_layout(kinetics, 1, "train", splits=ann)
    (ann / "train.csv").write_text(good)
    (ann / "validate.csv").write_text(header + "skiing,idz,0,10,val\n")
    with pytest.raises(DataError, match="validate.csv:2: label 'skiing' is not a class of .*train.csv"):
        open_layout(kinetics, 1, "val", splits=ann)
    (ann / "validate.csv").write_text("youtube_id,time_start,time_end\nidz,0,10\n")  # unlabelled, as test.csv
    assert [e.label for e in open_layout(kinetics, 1, "val", splits=ann).entries] == [-1]
    assert main(["probe", str(kinetics), "--split", "1", "--splits", str(tmp_path / "nowhere")]) == 2


def test_hmdb51_classes_come_from_the_split_files(tmp_path, hmdb51):
    """Folders that are not classes (a stray download, a cache) do not renumber the classes."""
    root = tmp_path / "hmdb51_org"
    shutil.copytree(hmdb51, root)
    (root / "brush_hair_extra").mkdir()
    (root / ".cache").mkdir()
    ds = open_layout(root, 1, "train", splits=hmdb51.parent / "testTrainMulti_7030_splits")
    assert ds.classes == ["climb", "kick", "wave"]
    assert {e.path.split("/")[-2]: e.label for e in ds.entries} == {"climb": 0, "kick": 1, "wave": 2}
    shutil.rmtree(root / "kick")
    with pytest.raises(DataError, match="kick_test_split1.txt: class 'kick' has no folder"):
        open_layout(root, 1, "train", splits=hmdb51.parent / "testTrainMulti_7030_splits")
