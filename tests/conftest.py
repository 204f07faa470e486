"""Shared test data: small videos made here with PyAV, every frame's index painted in."""
import os
import signal
import subprocess
import tempfile
import time
import warnings

import pytest

from apt_video.cli import main
from apt_video.config import load_config
from apt_video.pipeline.video import CODECS, write_video
from apt_video.tools.synth import make_motion_dataset
from apt_video.train import train

from videos import index_frames

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="apt-video-test-cache-")  # probe caches of scoring
warnings.filterwarnings("ignore", category=DeprecationWarning)


@pytest.fixture(scope="session")
def index_videos(tmp_path_factory):
    """One 70-frame video per codec, of different sizes (portrait, landscape, square, odd)."""
    root = tmp_path_factory.mktemp("index_videos")
    sizes = {"vp9": (160, 120), "vp8": (96, 128), "mjpeg": (120, 160), "h264": (200, 112),
             "hevc": (98, 66), "mpeg4": (96, 96)}
    return {codec: write_video(root / f"{codec}{CODECS[codec][1]}", index_frames(70, *size), codec)
            for codec, size in sizes.items()}


@pytest.fixture(scope="session")
def motion_data(tmp_path_factory):
    """A 4-class synthetic motion dataset: 12 videos per class, 24 frames, 64x48, VP9."""
    root = tmp_path_factory.mktemp("motion")
    make_motion_dataset(root, classes=4, per_class=12, frames=24, size=(64, 48), codec="vp9", seed=0)
    return root


def _train(data, out, sets, finetune=None, preset="demo"):
    cfg = load_config(preset, sets=["num_workers=1"] + sets)
    return train(cfg, data, out, finetune=finetune, progress=False)


@pytest.fixture(scope="session")
def task_data(tmp_path_factory):
    """Two motion tasks: A (right/down/left/up) and B (the four diagonals), 40 videos per class."""
    root = tmp_path_factory.mktemp("tasks")
    make_motion_dataset(root / "A", classes=4, per_class=40, frames=24, size=(64, 48), seed=1)
    make_motion_dataset(root / "B", classes=4, per_class=40, frames=24, size=(64, 48), offset_deg=45, seed=2)
    return root


@pytest.fixture(scope="session")
def backbone_run(task_data, tmp_path_factory):
    """A tiny VideoMAE trained end2end on task A (the 'pretrained backbone' of the other tests)."""
    out = tmp_path_factory.mktemp("runs") / "A"
    result = _train(task_data / "A", out, ["final_test=false"], preset="demo_backbone")
    return out, result


@pytest.fixture(scope="session")
def prompt_run(task_data, backbone_run, tmp_path_factory):
    """Attention prompts tuned on task B over the frozen task-A backbone."""
    out = tmp_path_factory.mktemp("runs") / "B"
    backbone = backbone_run[0] / "checkpoints" / "last.safetensors"
    result = _train(task_data / "B", out, ["epochs=8"], finetune=str(backbone))
    return out, result


@pytest.fixture(scope="session")
def exported(prompt_run, tmp_path_factory):
    """The prompt-tuned model of task B exported to ONNX (fp32)."""
    out = tmp_path_factory.mktemp("export") / "B"
    assert main(["export", str(prompt_run[0]), "-o", str(out), "--onnx-only"]) == 0
    return out


@pytest.fixture
def kill_when(tmp_path):
    """``kill_when(cmd, ready)``: run ``cmd`` in its own session and send its whole process group
    ``sig`` as soon as ``ready()`` holds (or it ended, or 300 s passed): SIGKILL as a crash or an
    OOM kill would, SIGINT as Ctrl-C in a terminal does. Returns the exit status and stderr."""
    def run(cmd, ready, env=None, timeout=300, sig=signal.SIGKILL):
        env = env or {**os.environ, "PYTHONWARNINGS": "ignore"}
        with open(tmp_path / "kill_when.err", "w+") as err:
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
            deadline = time.time() + timeout
            while time.time() < deadline and proc.poll() is None and not ready():
                time.sleep(0.05)
            os.killpg(proc.pid, sig)
            code = proc.wait(timeout=120)
            err.seek(0)
            return code, err.read()
    return run
