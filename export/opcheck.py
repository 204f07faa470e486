"""Static check: is every op of a graph one that TensorRT's ONNX parser imports?

The table lists the ONNX ops that the TensorRT 10 / 11 ONNX parser (onnx-tensorrt,
``docs/operators.md``) supports, with the first opset where our use of the op is supported.
A node outside the ai.onnx domain, or an op not in the table, is reported with its name.
"""
from __future__ import annotations

from pathlib import Path

import onnx

_SUPPORTED = """
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast
CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum
DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor
Gather GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool Greater
GreaterOrEqual GroupNormalization GRU HardSigmoid HardSwish Identity If InstanceNormalization IsInf
IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop LpNormalization LpPool LRN
LSTM MatMul Max MaxPool Mean MeanVarianceNormalization Min Mish Mod Mul Neg NonMaxSuppression
NonZero Not OneHot Or Pad PRelu Pow QuantizeLinear RandomNormal RandomNormalLike RandomUniform
RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax
ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RNN
RoiAlign Round ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin Sinh Size Slice
Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sum Tan Tanh ThresholdedRelu Tile TopK
Transpose Trilu Unsqueeze Upsample Where Xor
""".split()
#: op -> lowest opset at which TensorRT's parser takes it (1 = any)
TRT_SUPPORTED_OPS = {op: 1 for op in _SUPPORTED}
TRT_SUPPORTED_OPS["Attention"] = 23  # mapped onto TensorRT's fused attention layer
#: op -> the first TensorRT release whose ONNX parser imports it (TensorRT's changelog, 10.14 GA:
#: "Parsers: Added support for the Attention operator")
TRT_MIN_VERSION = {"Attention": (10, 14)}
TRT_SUPPORTED_OPS["Gelu"] = 20


def _version(text: str | None) -> tuple[int, ...] | None:
    try:
        return tuple(int(v) for v in text.split(".")[:2]) if text else None
    except ValueError:
        return None


def fused_attention_supported(trt_version: str | None) -> bool:
    """True unless a TensorRT older than 10.14 is installed here (no TensorRT: the graph is made
    for TensorRT's current parser)."""
    v = _version(trt_version)
    return v is None or v >= TRT_MIN_VERSION["Attention"]


def unsupported_ops(path: str | Path, opset: int | None = None, trt_version: str | None = None) -> list[str]:
    """Problems found, one line per offending op type (empty when TensorRT can parse every node).
    ``trt_version``: the installed TensorRT, whose parser may predate an op (None: the current one)."""
    proto = onnx.load(str(path), load_external_data=False)
    if opset is None:
        opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    problems: dict[str, str] = {}
    for node in proto.graph.node:
        key = f"{node.domain or 'ai.onnx'}::{node.op_type}"
        if key in problems:
            continue
        if node.domain not in ("", "ai.onnx"):
            problems[key] = (f"{node.op_type} (node {node.name!r}) is in domain {node.domain!r}, "
                             f"which TensorRT's ONNX parser does not import")
        elif node.op_type not in TRT_SUPPORTED_OPS:
            problems[key] = f"{node.op_type} (node {node.name!r}) is not supported by TensorRT's ONNX parser"
        elif opset < TRT_SUPPORTED_OPS[node.op_type]:
            problems[key] = (f"{node.op_type} (node {node.name!r}) needs opset >= {TRT_SUPPORTED_OPS[node.op_type]}, "
                             f"the graph has {opset}")
        elif node.op_type in TRT_MIN_VERSION and _version(trt_version) is not None \
                and _version(trt_version) < TRT_MIN_VERSION[node.op_type]:
            need = ".".join(map(str, TRT_MIN_VERSION[node.op_type]))
            problems[key] = (f"{node.op_type} (node {node.name!r}) needs TensorRT >= {need}, this host has "
                             f"{trt_version}; export with --attention matmul")
    return list(problems.values())
