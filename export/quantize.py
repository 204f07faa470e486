"""INT8 and FP8 graphs by explicit quantization: Q/DQ nodes in the ONNX graph, calibrated on real clips.

ONNX Runtime's static quantizer (``onnxruntime.quantization.quantize_static``, QDQ format) puts
QuantizeLinear/DequantizeLinear pairs on the inputs of the matrix products and the patch embedding
(their weights and activations), not on the matrix products' outputs: that is TensorRT's placement
for explicit quantization, and on the CPU ONNX Runtime then runs each ``MatMul`` as one
``MatMulIntegerToFloat`` (int8 product, float output, bias and activation in float) instead of a
``QLinearMatMul`` whose uint8 output is dequantized again (ViT-S, 2-core AMD EPYC, the two graphs
timed in turn: 1.42x fp32 against 1.32x; ``apt-video bench infer``: 1.41-1.46x), and one
rounding fewer per layer:

- ``int8``: ``MatMul``, ``Gemm`` and ``Conv``; int8 weights per output channel, uint8 activations
  per tensor from the calibration clips' ranges (min/max). Runs in ONNX Runtime on the CPU and
  builds an INT8 TensorRT engine.
- ``fp8``: ``MatMul`` and ``Conv``; float8 E4M3 weights and activations per tensor, scales from
  the calibration clips' distributions (the quantizer's only method for float types). TensorRT
  builds FP8 engines from it on GPUs with FP8 tensor cores (sm 8.9+: Ada, Hopper, Blackwell).
  ONNX Runtime has no float8 matrix kernels on the CPU: it runs the graph only with its graph
  optimisations off, as Q/DQ simulation (how the export verifies it), so scoring refuses it there.

LayerNorm, softmax and the fused ``Attention`` op stay in floating point (quantizing the opset-23
``Attention`` node gives a ``QAttention`` that ONNX Runtime rejects). Q/DQ graphs are explicit
quantization, what TensorRT 10/11 expect (their implicit calibrators are deprecated).

NVIDIA Model Optimizer (``nvidia-modelopt`` 0.47) was tried beside this project's ONNX 1.23 and
ONNX Runtime 1.32: its ``[onnx]`` extra pins ``onnx~=1.21`` and ``onnxruntime-gpu~=1.24``, but its
core installed without them quantizes on the CPU (``calibration_eps=["cpu"]``). On the bench's
ViT-S its int8 graph ran 1.38x fp32 where this one ran 1.41x (same run, 2-core AMD EPYC), it puts
Q/DQ on the LayerNorm inputs and residual Adds (for TensorRT's fusions) and leaves the patch Conv
and the head in float. So ONNX Runtime's quantizer, already a dependency, is the one used.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx

#: what is quantized per precision (float8 Gemm becomes a QGemm node, which has no CPU kernel), and
#: what never is
QUANTIZED_OPS = {"int8": ("MatMul", "Gemm", "Conv"), "fp8": ("MatMul", "Conv")}
FLOAT_OPS = ("LayerNormalization", "Softmax", "Attention")
#: quantized ops whose outputs stay in float (not the patch Conv: ONNX Runtime runs a Conv in int8,
#: as QLinearConv, only with its output quantized; without, it ran a float Conv on dequantized weights)
FLOAT_OUTPUT = ("MatMul", "Gemm")
PRECISIONS = tuple(QUANTIZED_OPS)


def quantize_int8(fp32_path: str | Path, out_path: str | Path, calibration: np.ndarray, batch: int = 1) -> dict:
    """``quantize(..., precision="int8")``."""
    return quantize(fp32_path, out_path, calibration, "int8", batch)


def quantize(fp32_path: str | Path, out_path: str | Path, calibration: np.ndarray, precision: str,
             batch: int = 1) -> dict:
    """Write the ``precision`` (int8 or fp8) Q/DQ graph of ``fp32_path`` to ``out_path``, calibrated
    on ``calibration`` ``(N, 3, T, S, S)`` float32 normalised clips. Returns the facts for model.json."""
    import onnxruntime
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if precision not in QUANTIZED_OPS:
        raise ValueError(f"precision={precision!r}: quantized precisions are {', '.join(QUANTIZED_OPS)}")
    if len(calibration) == 0:
        raise ValueError(f"{precision} needs calibration clips: give --calib LIST (or a run whose validation list "
                         f"is there)")
    proto = onnx.load(str(fp32_path))
    del proto.graph.value_info[:]  # the exporter's stale shapes fail the quantizer's shape inference
    clean = Path(out_path).with_name(f".{Path(out_path).name}.fp32.onnx")
    onnx.save(proto, str(clean))

    class Clips(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"video": calibration[i:i + batch]} for i in range(0, len(calibration), batch)])

        def get_next(self):
            return next(self.batches, None)

    if precision == "int8":
        kw = dict(per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        facts = {"weights": "int8 per channel", "activations": "uint8 per tensor", "calibration": "min/max"}
    else:
        kw = dict(per_channel=False, activation_type=QuantType.QFLOAT8E4M3FN, weight_type=QuantType.QFLOAT8E4M3FN,
                  calibrate_method=CalibrationMethod.Distribution)
        facts = {"weights": "float8 e4m3 per tensor", "activations": "float8 e4m3 per tensor",
                 "calibration": "distribution"}
    try:
        quantize_static(str(clean), str(out_path), Clips(), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=list(QUANTIZED_OPS[precision]), **kw,
                        extra_options={"MatMulConstBOnly": True,
                                       "OpTypesToExcludeOutputQuantization": list(FLOAT_OUTPUT)})
    finally:
        clean.unlink(missing_ok=True)
    return {"quantizer": f"onnxruntime.quantization.quantize_static {onnxruntime.__version__}", "format": "QDQ",
            "ops": list(QUANTIZED_OPS[precision]), "float_outputs": list(FLOAT_OUTPUT), **facts,
            "calibration_clips": int(len(calibration)), "calibration_sha256": _sha(calibration)}


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.float32).tobytes()).hexdigest()
