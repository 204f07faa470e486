"""Networks of apt-video: the VideoMAE ViT with attention prompts, its registry, checkpoint
reading and prompt folding. Tensors only: no video files, no CLI, no ONNX."""
from . import vit as _vit  # noqa: F401  (registers the architectures)
from .checkpoint import CheckpointError, LoadReport, convert_state_dict, read_state_dict
from .prompts import TRANSFER_TYPES, fold_prompts, reparameterize
from .registry import create_model, list_models, register_model
from .vit import VideoVisionTransformer, count_parameters, flops_per_clip, sincos_position_table

__all__ = [
    "CheckpointError", "LoadReport", "TRANSFER_TYPES", "VideoVisionTransformer", "convert_state_dict",
    "count_parameters", "create_model", "flops_per_clip", "fold_prompts", "list_models",
    "load_pretrained", "read_state_dict", "register_model", "reparameterize", "sincos_position_table",
]
from .artifact import (  # noqa: E402
    backbone_record,
    build_from_trained,
    find_weights,
    load_any,
    load_pretrained,
    load_weights,
    read_card,
    save_trained,
    sha256_file,
    trained_state,
)
from .card import IMAGENET_MEAN, IMAGENET_STD, SAMPLERS, Backbone, CardError, ClipSpec, ModelCard  # noqa: E402

__all__ += ["Backbone", "CardError", "ClipSpec", "IMAGENET_MEAN", "IMAGENET_STD", "ModelCard", "SAMPLERS",
            "backbone_record", "build_from_trained", "find_weights", "load_any", "load_weights", "read_card",
            "save_trained", "sha256_file", "trained_state"]
