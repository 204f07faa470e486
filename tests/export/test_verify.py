"""export.verify: verification fails when the graph does not compute its model."""
import torch

from apt_video.export import (
    export_onnx,
    verify_graph,
)

from export_kit import tiny


def test_verification_fails_when_the_graph_does_not_match(tmp_path):
    m = tiny()
    path = export_onnx(m, tmp_path / "m.onnx", opset=18, attention="matmul")
    other = tiny()
    with torch.no_grad():
        other.head.weight.mul_(-3)
    result = verify_graph(path, other, {"random": torch.randn(4, 3, 4, 32, 32)}, "fp32")
    assert not result["passed"] and not result["sets"]["random"]["passed"]
