"""Models to graphs: ONNX export with folded prompts, the TensorRT op check, verification against
PyTorch, export packages (model.json), TensorRT engine building, and runners for every backend.
Never decodes video: the clips to verify on are handed in."""
from .build import default_attention, export_package
from .graph import ATTENTION_FORMS, DTYPES, apply_task, export_onnx, op_types, prepare, task_tensors
from .opcheck import TRT_SUPPORTED_OPS, fused_attention_supported, unsupported_ops
from .package import Package, PackageError, check_files, read_package, write_package
from .runners import BACKENDS, BackendUnavailable, OrtRunner, Runner, TorchRunner, describe_model, load_runner
from .verify import THRESHOLDS, compare, onnx_session, verify_graph

__all__ = ["ATTENTION_FORMS", "BACKENDS", "BackendUnavailable", "DTYPES", "OrtRunner", "Package", "PackageError",
           "Runner", "THRESHOLDS", "TRT_SUPPORTED_OPS", "TorchRunner", "apply_task", "check_files", "compare",
           "default_attention", "describe_model", "export_onnx", "export_package", "fused_attention_supported",
           "load_runner", "onnx_session", "op_types", "prepare", "read_package", "task_tensors", "unsupported_ops",
           "verify_graph", "write_package"]
