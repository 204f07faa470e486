"""apt_video.exporting: ``apt-video export`` of a training run: the package's metadata and runners,
the opset as written, weights holding NaN named."""
import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from apt_video import models
from apt_video.cli import main
from apt_video.export import (
    load_runner,
    read_package,
)


def test_export_command_metadata_and_runners(tmp_path, prompt_run, capsys):
    run, _ = prompt_run
    out = tmp_path / "exp"
    assert main(["export", str(run), "-o", str(out), "--precision", "fp16"]) == 0
    text = capsys.readouterr().out
    assert "TensorRT engine not built" in text or (out / "model.plan").is_file()
    package, folder = read_package(out)
    assert package.verification["passed"] and set(package.verification["sets"]) == {"random", "real"}
    assert package.card == models.read_card(run / "checkpoints" / "best.safetensors")  # the card travels whole
    assert package.input["shape"] == ["batch", 3, 8, 112, 112] and package.precision == "fp16"
    assert (package.card.clip.test_num_segment, package.card.clip.test_num_crop) == (2, 3)
    assert package.checkpoint["sha256"] == models.sha256_file(run / "checkpoints" / "best.safetensors")
    assert package.op_check["passed"] and package.opset == 23
    assert package.sha256["model.onnx"] == models.sha256_file(out / "model.onnx")
    assert json.loads((out / "model.json").read_text())["format"] == "apt-video-export"
    ort_runner = load_runner(out)  # auto: no engine here -> ONNX Runtime
    torch_runner = load_runner(run)
    assert (ort_runner.name, torch_runner.name) == ("ort", "torch")
    x = torch.randn(5, 3, 8, 112, 112)
    ort_runner.max_batch = 2  # chunks of the batch limit
    np.testing.assert_allclose(ort_runner(x).numpy(), torch_runner(x).numpy(), atol=2e-2, rtol=2e-2)
    assert ort_runner.classes == torch_runner.classes


def test_opset_is_checked_and_recorded_as_written(tmp_path, prompt_run, capsys):
    run, _ = prompt_run
    with pytest.raises(SystemExit):
        main(["export", str(run), "-o", str(tmp_path / "x"), "--opset", "5"])
    assert "choose 18 to 23" in capsys.readouterr().err
    assert main(["export", str(run), "-o", str(tmp_path / "y"), "--onnx-only", "--opset", "18",
                 "--verify-clips", "0"]) == 0
    package, _ = read_package(tmp_path / "y")
    assert package.opset == 18 and package.attention == "matmul"


def test_nan_weights_are_named(tmp_path, prompt_run, capsys):
    src = prompt_run[0] / "checkpoints" / "last.safetensors"
    tensors = load_file(str(src))
    with safe_open(str(src), "pt") as f:
        header = f.metadata()
    tensors["head.weight"][0, 0] = float("nan")
    save_file(tensors, str(tmp_path / "nan.safetensors"), metadata=header)
    assert main(["export", str(tmp_path / "nan.safetensors"), "-o", str(tmp_path / "x"), "--onnx-only"]) == 2
    assert "tensor 'head.weight' holds NaN or infinite values" in capsys.readouterr().err
