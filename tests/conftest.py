"""Shared test data: small videos made here with PyAV, every frame's index painted in."""
import os
import warnings

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")
warnings.filterwarnings("ignore", category=DeprecationWarning)


@pytest.fixture(scope="session")
def index_videos(tmp_path_factory):
    """One 70-frame video per codec, of different sizes (portrait, landscape, square, odd)."""
    from pipeline.synth import CODECS, index_frames, write_video

    root = tmp_path_factory.mktemp("index_videos")
    sizes = {"vp9": (160, 120), "vp8": (96, 128), "mjpeg": (120, 160), "h264": (200, 112),
             "hevc": (98, 66), "mpeg4": (96, 96)}
    return {codec: write_video(root / f"{codec}{CODECS[codec][1]}", index_frames(70, *size), codec)
            for codec, size in sizes.items()}


@pytest.fixture(scope="session")
def motion_data(tmp_path_factory):
    """A 4-class synthetic motion dataset: 12 videos per class, 24 frames, 64x48, VP9."""
    from pipeline.synth import make_motion_dataset

    root = tmp_path_factory.mktemp("motion")
    make_motion_dataset(root, classes=4, per_class=12, frames=24, size=(64, 48), codec="vp9", seed=0)
    return root
