"""INT8 graphs by explicit quantization: Q/DQ nodes in the ONNX graph, calibrated on real clips.

ONNX Runtime's static quantizer (``onnxruntime.quantization.quantize_static``, QDQ format) puts
QuantizeLinear/DequantizeLinear pairs around the matrix products (``MatMul``, ``Gemm``) and the
patch embedding (``Conv``): int8 weights per output channel, uint8 activations per tensor from the
calibration clips' ranges. LayerNorm, softmax and the fused ``Attention`` op stay in floating point
(quantizing the opset-23 ``Attention`` node gives a ``QAttention`` that ONNX Runtime rejects). The
same Q/DQ graph runs in ONNX Runtime on the CPU and builds an INT8 TensorRT engine (explicit
quantization, what TensorRT 10/11 expect).

NVIDIA Model Optimizer (``nvidia-modelopt`` 0.47 ``[onnx]``) pins ``onnx~=1.21`` and
``onnxruntime-gpu~=1.24``, older than this project's, so ONNX Runtime's quantizer is the one used.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

#: what is quantized, and what never is
QUANTIZED_OPS = ("MatMul", "Gemm", "Conv")
FLOAT_OPS = ("LayerNormalization", "Softmax", "Attention")


def quantize_int8(fp32_path: str | Path, out_path: str | Path, calibration: np.ndarray, batch: int = 1) -> dict:
    """Write the INT8 Q/DQ graph of ``fp32_path`` to ``out_path``, calibrated on ``calibration``
    ``(N, 3, T, S, S)`` float32 normalised clips. Returns the facts for model.json."""
    import onnx
    import onnxruntime
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    if len(calibration) == 0:
        raise ValueError("int8 needs calibration clips: give --calib LIST (or a run whose validation list is there)")
    proto = onnx.load(str(fp32_path))
    del proto.graph.value_info[:]  # the exporter's stale shapes fail the quantizer's shape inference
    clean = Path(out_path).with_name(f".{Path(out_path).name}.fp32.onnx")
    onnx.save(proto, str(clean))

    class Clips(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"video": calibration[i:i + batch]} for i in range(0, len(calibration), batch)])

        def get_next(self):
            return next(self.batches, None)

    try:
        quantize_static(str(clean), str(out_path), Clips(), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=list(QUANTIZED_OPS), per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        extra_options={"MatMulConstBOnly": True})
    finally:
        clean.unlink(missing_ok=True)
    return {"quantizer": f"onnxruntime.quantization.quantize_static {onnxruntime.__version__}", "format": "QDQ",
            "ops": list(QUANTIZED_OPS), "weights": "int8 per channel", "activations": "uint8 per tensor",
            "calibration_clips": int(len(calibration)), "calibration_sha256": _sha(calibration)}


def quantized_nodes(path: str | Path) -> dict[str, int]:
    """Op type -> how many of its nodes take a dequantized input (their inputs come through Q/DQ)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    dq = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    counts: dict[str, int] = {}
    for n in graph.node:
        if any(i in dq for i in n.input):
            counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return counts


def _sha(a: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.float32).tobytes()).hexdigest()
