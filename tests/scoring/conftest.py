"""Shared by the tests of this folder."""
import numpy as np
import pytest

from apt_video.pipeline.video import write_video
from apt_video.tools.synth import make_motion_dataset, motion_clip

from videos import write_broken_videos


@pytest.fixture(scope="module")
def folder(tmp_path_factory, index_videos):
    """Videos of task B in several codecs and sizes, plus broken files, in nested folders."""
    root = tmp_path_factory.mktemp("score")
    make_motion_dataset(root / "ds", classes=4, per_class=3, frames=30, size=(80, 60), offset_deg=45,
                        split=(0, 0, 1), seed=7)
    rng = np.random.default_rng(3)
    write_video(root / "ds" / "videos" / "extra" / "diag_h264.mp4", motion_clip(45, 30, 96, 64, rng), "h264")
    write_video(root / "ds" / "videos" / "extra" / "diag_mjpeg.avi", motion_clip(135, 30, 72, 96, rng), "mjpeg")
    write_broken_videos(root / "ds" / "videos" / "zz_bad", index_videos["h264"].read_bytes())
    return root / "ds"
