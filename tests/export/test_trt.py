"""export.trt: the TensorRT engine against ONNX Runtime (where TensorRT is installed); fp32 engines
are built without TF32."""
from types import SimpleNamespace

import pytest
import torch

from apt_video.cli import main
from apt_video.export import (
    load_runner,
    read_package,
)
from apt_video.export.trt import config_flags, trt_missing


@pytest.mark.skipif(trt_missing() is not None, reason=f"TensorRT unavailable: {trt_missing()}")
def test_tensorrt_engine_matches_onnx_runtime(tmp_path, prompt_run):
    run, _ = prompt_run
    out = tmp_path / "trt"
    assert main(["export", str(run), "-o", str(out), "--precision", "fp16", "--batch-profile", "1:4:8",
                 "--timing-cache", str(tmp_path / "cache.bin")]) == 0
    package, _ = read_package(out)
    assert package.files["plan"] == "model.plan" and package.tensorrt["version"]
    assert package.tensorrt["verification"]["passed"] and not package.tensorrt["tf32"]
    trt_runner, ort_runner = load_runner(out, "trt"), load_runner(out, "ort")
    x = torch.randn(3, 3, 8, 112, 112)
    a, b = trt_runner(x), ort_runner(x)
    assert (a.argmax(1) == b.argmax(1)).float().mean() >= 0.66
    assert (tmp_path / "cache.bin").stat().st_size > 0


def test_fp32_engines_are_built_without_tf32():
    class Config:
        def __init__(self):
            self.cleared = []

        def clear_flag(self, flag):
            self.cleared.append(flag)

    trt = SimpleNamespace(BuilderFlag=SimpleNamespace(TF32="TF32"))
    fp32, fp16 = Config(), Config()
    config_flags(fp32, trt, "fp32")
    config_flags(fp16, trt, "fp16")
    assert fp32.cleared == ["TF32"] and fp16.cleared == []
