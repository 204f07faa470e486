"""Networks of apt-video: the VideoMAE ViT with attention prompts, its registry, checkpoint
reading and prompt folding. Tensors only: no video files, no CLI, no ONNX."""
from . import vit as _vit  # noqa: F401  (registers the architectures)
from .checkpoint import CheckpointError, LoadReport, convert_state_dict, load_pretrained, read_state_dict
from .prompts import TRANSFER_TYPES, fold_prompts, reparameterize
from .registry import create_model, list_models, register_model
from .vit import VideoVisionTransformer, count_parameters, flops_per_clip, sincos_position_table

__all__ = [
    "CheckpointError", "LoadReport", "TRANSFER_TYPES", "VideoVisionTransformer", "convert_state_dict",
    "count_parameters", "create_model", "flops_per_clip", "fold_prompts", "list_models",
    "load_pretrained", "read_state_dict", "register_model", "reparameterize", "sincos_position_table",
]
from .artifact import build_from_trained, read_meta, save_trained, sha256_file, trained_state  # noqa: E402

__all__ += ["build_from_trained", "read_meta", "save_trained", "sha256_file", "trained_state"]
