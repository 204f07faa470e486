"""Models to graphs: ONNX export with folded prompts, the TensorRT op check, verification against
PyTorch, TensorRT engine building, and runners for every backend. Never decodes video."""
from .graph import ATTENTION_FORMS, DTYPES, apply_task, export_onnx, op_types, prepare, task_tensors
from .opcheck import TRT_SUPPORTED_OPS, unsupported_ops
from .runners import BACKENDS, BackendUnavailable, OrtRunner, Runner, TorchRunner, load_runner, read_model_json
from .verify import THRESHOLDS, compare, onnx_session, verify_graph

__all__ = ["ATTENTION_FORMS", "BACKENDS", "BackendUnavailable", "DTYPES", "OrtRunner", "Runner", "THRESHOLDS",
           "TRT_SUPPORTED_OPS", "TorchRunner", "apply_task", "compare", "export_onnx", "load_runner", "onnx_session",
           "op_types", "prepare", "read_model_json", "task_tensors", "unsupported_ops", "verify_graph"]
