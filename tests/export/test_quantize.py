"""export.quantize: int8 and fp8 graphs calibrated on real clips, verified against the fp32 model."""
import json

import onnx
import pytest
import torch

from apt_video import models
from apt_video.cli import main
from apt_video.export import (
    export_package,
    unsupported_ops,
)
from apt_video.export.quantize import FLOAT_OPS
from apt_video.exporting import export_run, real_clips
from apt_video.scoring import score_videos


def quantized_nodes(path) -> dict[str, int]:
    """Op type -> how many of its nodes take a dequantized input (their inputs come through Q/DQ)."""
    graph = onnx.load(str(path), load_external_data=False).graph
    dq = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    counts: dict[str, int] = {}
    for n in graph.node:
        if any(i in dq for i in n.input):
            counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return counts


# -- int8 -------------------------------------------------------------------------------------------------
def test_int8_graph_calibrated_on_real_clips_agrees_with_fp32(tmp_path, prompt_run, task_data):
    run, _ = prompt_run
    package, where = export_run(run, tmp_path / "int8", precision="int8", tensorrt=False, calib_clips=48)
    assert package.passed and where == tmp_path / "int8", json.dumps(package.verification, default=str)
    assert set(package.verification["sets"]) == {"real", "holdout"}  # noise is outside the calibrated ranges
    q = package.quantization
    assert q["calibration_clips"] == 36 and q["quantizer"].startswith("onnxruntime.quantization")
    assert "val.csv" in q["calibration_source"] and len(q["calibration_sha256"]) == 64
    nodes = quantized_nodes(where / "model.onnx")
    assert nodes.get("MatMul", 0) >= 4 * 4 and nodes.get("Conv") == 1 and nodes.get("Gemm", 0) + nodes.get("MatMul", 0)
    assert not any(op in nodes for op in FLOAT_OPS)  # LayerNorm, softmax and attention stay in float

    graph = onnx.load(str(where / "model.onnx"), load_external_data=False).graph
    made_by = {o: n.op_type for n in graph.node for o in n.output}
    requantized = [n.name for n in graph.node if n.op_type == "QuantizeLinear" and made_by.get(n.input[0]) in
                   ("MatMul", "Gemm")]
    assert requantized == []  # Q/DQ on the products' inputs only: their outputs stay float
    assert unsupported_ops(where / "model.onnx") == []  # TensorRT's parser takes the Q/DQ graph
    package32, where32 = export_run(run, tmp_path / "fp32", tensorrt=False)
    test = task_data / "B" / "test.csv"
    reports = [score_videos(test, w, tmp_path / f"{name}.csv", labels=test, progress=False)
               for name, w in (("int8", where), ("fp32", where32))]
    a, b = ([r["pred"] for r in rep.rows] for rep in reports)
    assert sum(x == y for x, y in zip(a, b)) / len(a) >= 0.99
    assert abs(reports[0].metrics["top1"] - reports[1].metrics["top1"]) <= 0.5


def test_fp8_graph_calibrated_on_real_clips_is_verified_and_kept_off_the_cpu(tmp_path, prompt_run, task_data,
                                                                              capsys):
    """FP8 (E4M3) Q/DQ on the matrix products and the patch embedding, verified through ONNX Runtime's
    Q/DQ simulation; scoring it on the CPU is refused (it is TensorRT's, on sm 8.9+)."""
    run, _ = prompt_run
    package, where = export_run(run, tmp_path / "fp8", precision="fp8", tensorrt=False, calib_clips=24)
    assert package.passed and where == tmp_path / "fp8", json.dumps(package.verification, default=str)
    assert set(package.verification["sets"]) == {"real", "holdout"}
    assert all(s["top1_agreement"] >= 0.99 for s in package.verification["sets"].values())
    q = package.quantization
    assert q["weights"].startswith("float8 e4m3") and q["calibration_clips"] == 18
    graph = onnx.load(str(where / "model.onnx")).graph
    fp8 = onnx.TensorProto.FLOAT8E4M3FN
    assert sum(i.data_type == fp8 for i in graph.initializer) >= 4 * 4  # weights (and zero points) in float8
    nodes = quantized_nodes(where / "model.onnx")
    assert nodes.get("MatMul", 0) >= 4 * 4 and nodes.get("Conv") == 1 and "Gemm" not in nodes
    assert not any(op in nodes for op in FLOAT_OPS)
    assert unsupported_ops(where / "model.onnx") == []
    capsys.readouterr()
    test = task_data / "B" / "test.csv"
    assert main(["score", str(test), "--model", str(where), "-o", str(tmp_path / "p.csv"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fp8 graph runs on TensorRT" in err[0]


@pytest.mark.parametrize("precision", ["int8", "fp8"])
def test_quantized_graphs_calibrated_on_blank_clips_fail_verification(tmp_path, prompt_run, precision):
    run, _ = prompt_run
    model, card = models.build_from_trained(run / "checkpoints" / "best.safetensors")

    real, _ = real_clips(card, 8)
    blank = torch.zeros(16, 3, 8, 112, 112)  # every activation range collapses
    package, where = export_package(model, card, tmp_path / "x", {"real": real}, precision=precision, tensorrt=False,
                                    calibration=blank)
    assert not package.passed and where.name == "x.rejected" and not (tmp_path / "x").exists()
    with pytest.raises(ValueError, match="needs real clips to calibrate on"):
        export_package(model, card, tmp_path / "y", {"real": real}, precision=precision, calibration=None)
