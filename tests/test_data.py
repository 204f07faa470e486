"""Datasets, manifests and probing: every bad file named with its reason, caching, CLI."""
import csv
import json
import os
import shutil

import av
import numpy as np
import pytest
from videos import index_frames, read_index

from apt_video.cli import main
from apt_video.pipeline import video
from apt_video.pipeline.data import DataError, read_list_file, read_manifest, read_ssv2, write_manifest
from apt_video.pipeline.datasets import open_dataset
from apt_video.pipeline.probe import default_paths, probe_dataset
from apt_video.pipeline.video import decode_frames, probe_video, write_video
from apt_video.tools.synth import motion_clip


@pytest.fixture
def bad_files(tmp_path, index_videos):
    d = tmp_path / "bad"
    d.mkdir()
    good = index_videos["vp9"].read_bytes()
    (d / "zero.webm").write_bytes(b"")
    (d / "text.mp4").write_text("not a video at all\n" * 50)
    (d / "random.webm").write_bytes(os.urandom(5000))
    (d / "truncated.webm").write_bytes(good[: len(good) // 2])
    mp4 = index_videos["h264"].read_bytes()
    (d / "truncated.mp4").write_bytes(mp4[: len(mp4) // 2])  # index at the end: cannot open
    write_video(d / "short.webm", index_frames(5, 32, 32), "vp9")
    with av.open(str(d / "audio.mka"), "w") as c:  # a container with no video stream
        s = c.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame(format="s16", layout="mono", samples=800)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.sample_rate = 8000
        for packet in s.encode(frame):
            c.mux(packet)
    return d


def test_probe_names_every_bad_file(bad_files):
    got = {p.name: probe_video(p) for p in sorted(bad_files.iterdir())}
    got["missing.webm"] = probe_video(bad_files / "missing.webm")
    status = {k: v.status for k, v in got.items()}
    assert status == {"zero.webm": "empty", "text.mp4": "unreadable", "random.webm": "unreadable",
                      "truncated.webm": "ok", "truncated.mp4": "unreadable", "short.webm": "ok",
                      "audio.mka": "no-video-stream", "missing.webm": "missing"}
    assert got["truncated.webm"].reason.startswith("damaged: ") and got["truncated.webm"].damaged
    assert got["short.webm"].reason.startswith("short: 5 frames < 16")
    assert all(v.reason for v in got.values())


def test_probe_cli_summary_manifest_and_cache(tmp_path, bad_files, index_videos, capsys):
    shutil.copy(index_videos["mjpeg"], bad_files / "good.avi")
    lst = tmp_path / "list.txt"
    lst.write_text("".join(f"bad/{p.name} {i}\n" for i, p in enumerate(sorted(bad_files.iterdir()))))
    assert main(["probe", str(lst), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "8 videos: 3 ok" in out and "unreadable" in out and "no-video-stream" in out
    manifest, cache = default_paths(lst)
    rows = read_manifest(manifest)
    assert [os.path.basename(r.path) for r in rows] == sorted(p.name for p in bad_files.iterdir())
    assert [r.label for r in rows] == list(range(8))
    assert main(["probe", str(lst)]) == 0
    assert "(0 probed, 8 from cache)" in capsys.readouterr().out
    os.utime(bad_files / "good.avi", ns=(1, 1))  # changed file: probed again
    assert main(["probe", str(lst), "--out", str(tmp_path / "m.csv")]) == 0
    assert "(1 probed, 7 from cache)" in capsys.readouterr().out
    assert (tmp_path / "m.csv").is_file()


def test_probe_fails_when_nothing_is_usable(tmp_path, bad_files, capsys):
    lst = tmp_path / "l.csv"
    lst.write_text("bad/zero.webm 0\nbad/text.mp4 1\n")
    assert main(["probe", str(lst)]) == 1
    assert "no usable video" in capsys.readouterr().out


def test_read_only_dataset_caches_elsewhere(tmp_path, index_videos, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    shutil.copy(index_videos["vp9"], ro / "a.webm")
    (ro / "train.csv").write_text("a.webm 0\n")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    os.chmod(ro, 0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user that can write anywhere")
    finally:
        pass
    manifest, cache = default_paths(ro / "train.csv")
    assert str(manifest).startswith(str(tmp_path / "cache"))
    os.chmod(ro, 0o755)


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


def test_synth_cli_and_transcode(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "s"), "--classes", "3", "--per-class", "5", "--frames", "12",
                 "--size", "48x32", "--codec", "mjpeg"]) == 0
    ds = open_dataset(tmp_path / "s" / "train.csv")
    assert ds.classes == ["move_000.0deg", "move_120.0deg", "move_240.0deg"] and len(ds.entries) == 9
    entries, _ = probe_dataset(ds, None, progress=False)
    assert all(e.ok and e.codec == "mjpeg" and e.frames == 12 for e in entries)
    assert main(["probe", str(tmp_path / "s" / "train.csv"), "--transcode", str(tmp_path / "t"),
                 "--codec", "vp9"]) == 0
    t = open_dataset(tmp_path / "t" / "train.csv")
    assert t.classes == ds.classes and [e.label for e in t.entries] == [e.label for e in ds.entries]
    assert all(probe_video(e.path).codec == "vp9" for e in t.entries)
    with pytest.raises(SystemExit):
        main(["synth", str(tmp_path / "x"), "--size", "13x7"])


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


def test_rotated_video_is_decoded_upright(tmp_path):
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[:8, :8] = 255  # a white top-left corner
    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.set_display_rotation(90)  # shown turned 90 degrees counter-clockwise
        for _ in range(20):
            for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    e = probe_video(path, clip_frames=8)
    assert e.ok and e.rotation == 90 and (e.width, e.height) == (48, 64) and "rotated" in e.reason
    upright = decode_frames(path, [0, 5])
    assert upright.shape == (2, 64, 48, 3)
    assert upright[0, -8:, :8].mean() > 200 and upright[0, :8, :8].mean() < 50  # the corner is now bottom-left


def _h264_with_b_frames(path, frames, gop):
    """x264 at its medium preset: B-frames, so packets come in another order than the frames show."""
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt, s.gop_size = frames.shape[2], frames.shape[1], "yuv420p", gop
        s.options = {"preset": "medium", "crf": "18", "bf": "3"}
        for f in frames:
            for packet in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in s.encode():
            out.mux(packet)
    return path


@pytest.mark.parametrize("kind", ["h264 b-frames", "h264", "hevc", "mpeg4", "h264 vfr"])
def test_decoding_from_a_keyframe_gives_the_frames_of_decoding_from_the_start(tmp_path, kind):
    n, frames = 60, index_frames(60, 64, 48)
    if kind == "h264 b-frames":
        path = _h264_with_b_frames(tmp_path / "b.mp4", frames, gop=8)
    elif kind == "h264 vfr":
        pts = np.cumsum(np.random.default_rng(0).integers(20, 60, n)).tolist()  # ms, irregular
        path = write_video(tmp_path / "v.mp4", frames, "h264", gop=8, pts=pts)
    else:
        path = write_video(tmp_path / f"x{video.CODECS[kind][1]}", frames, kind, gop=8)
    e = probe_video(path, clip_frames=16)
    assert e.ok and e.frames == n
    for indices in (range(20, 52, 2), range(8, 24), [33, 9, 33, 41], [57, 58, 59, 60, 75], [17], [44, 12]):
        whole = decode_frames(path, indices)  # every frame from the first: the reference
        seeked = decode_frames(path, indices, frames=n, threads=False)
        assert np.array_equal(seeked, whole), (kind, list(indices))
        assert [read_index(f) for f in seeked] == [min(i, n - 1) for i in indices]
    assert video._INDEX[(str(path), n)] is not None  # the timestamp index was taken: decoding did seek
    # a frame count the packets do not give: no index, decoded from the start
    assert np.array_equal(decode_frames(path, [30, 40], frames=n + 1), decode_frames(path, [30, 40]))
    assert video._INDEX[(str(path), n + 1)] is None


def test_the_timestamp_index_keeps_to_its_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(video, "_INDEX", {})
    monkeypatch.setattr(video, "_indexed", 0)
    monkeypatch.setattr(video, "_INDEX_BUDGET", 100)
    paths = [write_video(tmp_path / f"{k}.mp4", index_frames(40, 32, 32), "h264", gop=8) for k in range(3)]
    for path in paths:
        decode_frames(path, [30], frames=40)
    sizes = [len(pts) + len(keys) for pts, keys in video._INDEX.values()]
    assert list(video._INDEX) == [(str(p), 40) for p in paths[1:]]  # the oldest went
    assert video._indexed == sum(sizes) <= 100 and sizes[0] > 40


def test_a_keyframe_seek_that_lands_off_the_index_decodes_from_the_start(tmp_path):
    n = 60
    path = _h264_with_b_frames(tmp_path / "b.mp4", index_frames(n, 64, 48), gop=8)
    decode_frames(path, [30], frames=n)
    pts, keys = video._INDEX[(str(path), n)]
    video._INDEX[(str(path), n)] = (pts + 1, keys + 1)  # every timestamp off by a tick
    assert np.array_equal(decode_frames(path, range(30, 46), frames=n), decode_frames(path, range(30, 46)))
    assert video._INDEX[(str(path), n)] is None  # not tried again: later clips decode from the start at once


@pytest.mark.parametrize("args,message", [(["--frames", "0"], "--frames: '0': must be at least 1"),
                                          (["--classes", "0"], "--classes: '0': must be at least 1")])
def test_synth_refuses_zero(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit):
        main(["synth", str(tmp_path / "s"), *args])
    assert message in capsys.readouterr().err and not (tmp_path / "s").exists()


def test_reversing_motion_returns_to_its_start():
    rng = np.random.default_rng(0)
    there_and_back = motion_clip(0.0, 24, 64, 48, rng, reverse=True)
    onward = motion_clip(0.0, 24, 64, 48, np.random.default_rng(0))
    np.testing.assert_array_equal(there_and_back[:13], onward[:13])  # the same way out
    np.testing.assert_array_equal(there_and_back[13], there_and_back[11])  # then the way back
    assert not np.array_equal(there_and_back[20], onward[20])


def _shift(a: np.ndarray, b: np.ndarray) -> int:
    """The horizontal shift (pixels, -8..8) that best maps rows ``a`` onto rows ``b``."""
    a, b = a.astype(float).mean(-1), b.astype(float).mean(-1)
    return min(range(-8, 9), key=lambda s: np.abs(np.roll(a, s, axis=1) - b).mean())


def test_distractor_videos_move_their_class_on_top_and_any_direction_below(tmp_path, capsys):
    clip = motion_clip(0.0, 6, 96, 64, np.random.default_rng(0), bottom_deg=180.0)
    top, bottom = clip[:, 4:28], clip[:, 36:60]
    assert _shift(top[2], top[4]) > 0 > _shift(bottom[2], bottom[4])  # right on top, left below
    assert main(["synth", str(tmp_path / "d"), "--classes", "4", "--per-class", "4", "--frames", "6",
                 "--size", "64x48", "--distractor"]) == 0
    assert "wrote 16 videos" in capsys.readouterr().out
    labels = [int(line.split()[1]) for part in ("train", "val", "test")
              for line in (tmp_path / "d" / f"{part}.csv").read_text().splitlines()]
    assert sorted(labels) == [k for k in range(4) for _ in range(4)]


def test_axis_videos_slide_either_way_along_their_class_line(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "x"), "--classes", "4", "--per-class", "6", "--frames", "6",
                 "--size", "64x48", "--axis", "--seed", "3"]) == 0
    assert "wrote 24 videos" in capsys.readouterr().out
    names = (tmp_path / "x" / "classes.txt").read_text().split()
    assert names == ["along_000.0deg", "along_045.0deg", "along_090.0deg", "along_135.0deg"]
    ways = set()
    for part in ("train", "val", "test"):
        for line in (tmp_path / "x" / f"{part}.csv").read_text().splitlines():
            rel, label = line.split()
            if label != "0":
                continue
            clip = decode_frames(tmp_path / "x" / rel, range(6))
            ways.add(np.sign(_shift(clip[2], clip[4])))  # line 0 is horizontal: right or left
    assert ways == {-1, 1}  # both ways along the line share the class
    assert main(["synth", str(tmp_path / "y"), "--axis", "--reverse"]) == 2 and not (tmp_path / "y").exists()
