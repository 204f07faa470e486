"""tools.synth: the synthetic motion datasets (reversing, distractors, lines of motion) and the synth
and transcode commands."""
import numpy as np
import pytest

from apt_video.cli import main
from apt_video.pipeline.datasets import open_dataset
from apt_video.pipeline.probe import probe_dataset
from apt_video.pipeline.video import decode_frames, probe_video
from apt_video.tools.synth import motion_clip


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
