"""export.opcheck: the TensorRT op check catches planted ops; the installed TensorRT's version gates
the fused Attention op."""
import onnx

from apt_video.export import (
    default_attention,
    export_onnx,
    fused_attention_supported,
    unsupported_ops,
)

from export_kit import tiny


def test_op_check_catches_planted_ops(tmp_path):
    path = export_onnx(tiny(), tmp_path / "m.onnx", opset=18, attention="matmul")
    proto = onnx.load(str(path))
    out = proto.graph.output[0].name
    proto.graph.node.append(onnx.helper.make_node("Unique", [out], ["u"], name="planted_unique"))
    proto.graph.node.append(onnx.helper.make_node("MyCustom", [out], ["c"], name="planted_custom", domain="com.acme"))
    onnx.save(proto, str(tmp_path / "bad.onnx"))
    problems = unsupported_ops(tmp_path / "bad.onnx")
    assert any("Unique (node 'planted_unique') is not supported" in p for p in problems)
    assert any("MyCustom (node 'planted_custom') is in domain 'com.acme'" in p for p in problems)
    fused = export_onnx(tiny(), tmp_path / "f.onnx", opset=23)
    assert any("Attention" in p and "needs opset >= 23" in p for p in unsupported_ops(fused, 18))


def test_tensorrt_version_gates_the_fused_attention_op(tmp_path):
    path = export_onnx(tiny(), tmp_path / "f.onnx", opset=23, attention="fused")
    assert unsupported_ops(path, trt_version="10.13.3") == [
        next(p for p in unsupported_ops(path, trt_version="10.13.3") if "Attention" in p)]
    assert "needs TensorRT >= 10.14, this host has 10.13.3" in unsupported_ops(path, trt_version="10.13.3")[0]
    assert unsupported_ops(path, trt_version="10.14.1") == [] and unsupported_ops(path) == []
    assert default_attention(23, "10.9.0") == "matmul" and default_attention(23, "11.4.0") == "fused"
    assert default_attention(23, None) == "fused" and default_attention(18, None) == "matmul"
    assert not fused_attention_supported("10.13") and fused_attention_supported("10.14")
