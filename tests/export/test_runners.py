"""export.runners: the runners' refusals are one line; partial weights need their backbone; task files
are checked."""
import shutil

import pytest

from apt_video import models
from apt_video.cli import main
from apt_video.export import (
    BackendUnavailable,
    OrtRunner,
    load_runner,
    read_package,
)
from apt_video.export.runners import load_task
from apt_video.export.trt import trt_missing


def test_runner_errors_are_one_line(tmp_path, prompt_run):
    run, _ = prompt_run
    out = tmp_path / "exp"
    assert main(["export", str(run), "-o", str(out), "--onnx-only", "--opset", "18"]) == 0
    if trt_missing():
        with pytest.raises(BackendUnavailable) as err:
            load_runner(out, backend="trt")
        assert "\n" not in str(err.value) and "TensorRT" in str(err.value)
    with pytest.raises(BackendUnavailable, match="export it first"):
        load_runner(run, backend="ort")
    with pytest.raises(BackendUnavailable, match="torch backend takes a training run"):
        load_runner(out, backend="torch")
    with pytest.raises(FileNotFoundError, match="no model.json"):
        load_runner(tmp_path)
    with pytest.raises(ValueError, match="backend='tpu'"):
        load_runner(out, backend="tpu")


def test_partial_weights_need_their_backbone(tmp_path, prompt_run):
    run, _ = prompt_run
    shutil.copy(run / "checkpoints" / "last.safetensors", tmp_path / "w.safetensors")
    card = models.read_card(tmp_path / "w.safetensors")
    model, _ = models.build_from_trained(tmp_path / "w.safetensors")
    assert model.num_prompt_tokens == 8
    with pytest.raises(models.CheckpointError, match="pass it with --pretrained"):
        models.build_from_trained(tmp_path / "w.safetensors", pretrained=str(tmp_path / "gone.pth"))
    assert main(["export", str(tmp_path / "w.safetensors"), "--pretrained", str(tmp_path / "nope.pth"),
                 "-o", str(tmp_path / "x")]) == 2
    assert card.pretrained.path


def test_a_gpu_host_without_a_working_cuda_provider_is_refused(tmp_path, exported):
    package, folder = read_package(exported)
    with pytest.raises(BackendUnavailable, match="cannot use this host's GPU"):
        OrtRunner(folder / "model.onnx", package, providers=[("CUDAExecutionProvider", {"device_id": 0}),
                                                            "CPUExecutionProvider"])
    runner = OrtRunner(folder / "model.onnx", package)  # here: no GPU, the CPU as asked
    assert runner.providers == ["CPUExecutionProvider"] and not runner.on_gpu


def test_task_files_are_checked(tmp_path, exported):
    (tmp_path / "junk.safetensors").write_bytes(b"not a task")
    with pytest.raises(BackendUnavailable, match="not a prompts-as-input export"):
        load_runner(exported, task=tmp_path / "junk.safetensors")

    with pytest.raises(BackendUnavailable, match="not a readable task file"):
        load_task(tmp_path / "junk.safetensors")
