"""``apt-video doctor`` on a host without a GPU: CPU checks run, GPU checks skip with their reason,
a failing check turns into FAIL and exit status 1, the JSON report."""
import json

import numpy as np
import pytest
import torch

from apt_video.cli import main
from apt_video.pipeline.video import decode_frames, decode_route, probe_video
from apt_video.tools.checks import BELOW_NVDEC, FAIL, PASS, SKIP, Check, Context, decode_check, sample_video
from apt_video.tools.doctor import Report, run_checks


@pytest.mark.slow
def test_doctor_on_a_host_without_a_gpu(tmp_path, capsys):
    assert main(["doctor", "--quick", "--json", str(tmp_path / "d.json"), "--work", str(tmp_path / "w")]) == 0
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "d.json").read_text())
    status = {r["name"]: r for r in report["results"]}
    for name in ("dali-gpu-graphs", "dali-decode-cpu", "train-step-cpu", "inference-cpu", "score"):
        assert status[name]["status"] == PASS, status[name]
    gpu = ("dali-decode-gpu", "gpu-loader", "train-step-cuda", "ddp-nccl", "inference-gpu", "tensorrt")
    if not torch.cuda.is_available():
        for name in gpu:
            assert status[name]["status"] == SKIP and "no CUDA GPU" in status[name]["detail"]
    env = report["environment"]
    assert env["cpu"]["model"] and "CPUExecutionProvider" in env["onnxruntime"]["usable"]
    assert env["pyav"]["codecs"]["vp9"] == ["decode", "encode"] and report["exit_code"] == 0
    assert "dali-decode-cpu" in out and "passed" in out and status["dali-decode-cpu"]["figures"]["clips_per_s"] > 0


def test_a_failing_check_fails_the_run_and_a_broken_one_is_reported(tmp_path):
    video = sample_video(tmp_path, "vp9")
    ok, _, figures = decode_check(video, "cpu")
    assert ok and figures["mean_abs_diff"] <= 2.0
    shifted = decode_frames(video, np.arange(1, 33, 2))  # the wrong frames: every one a frame late
    assert not decode_check(video, "cpu", reference=shifted)[0]

    def broken(ctx):
        raise RuntimeError("the device went away")

    checks = [Check("right-frames", lambda ctx: decode_check(video, "cpu")),
              Check("planted", lambda ctx: decode_check(video, "cpu", reference=shifted)),
              Check("broken", broken), Check("needs-gpu", broken, needs_gpu=True)]
    results = run_checks(checks, Context(tmp_path, quick=True, gpu=False), say=lambda _: None)
    assert [r.status for r in results] == [PASS, FAIL, FAIL, SKIP]
    assert "the device went away" in results[2].detail and "no CUDA GPU" in results[3].detail
    report = Report({}, results)
    assert report.exit_code == 1 and report.to_dict()["exit_code"] == 1
    assert Report({}, [results[0], results[3]]).exit_code == 0


def test_the_doctors_test_videos_are_sizes_nvdec_takes_and_one_below(tmp_path):
    """The first GPU run failed the doctor's decode check on its own 160x120 VP9 video (NVDEC's
    minimum is 128x128): the decode checks use a size NVDEC takes in every codec, and one VP9 video
    below the minimum must take the PyAV route."""
    for codec in ("h264", "hevc", "vp9", "av1"):
        e = probe_video(sample_video(tmp_path, codec))
        assert e.ok and decode_route(e, "gpu") is None, (codec, decode_route(e, "gpu"))
    codec, size = BELOW_NVDEC
    e = probe_video(sample_video(tmp_path, codec, size=size))
    assert "below NVDEC's vp9 minimum" in decode_route(e, "gpu") and decode_route(e, "cpu") is None
