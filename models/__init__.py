"""Networks of apt-video: the VideoMAE ViT with attention prompts, its registry, checkpoint
reading and prompt folding, and the model card. Tensors only: no video files, no CLI, no ONNX.

- ``vit.py``: the network (blocks, the model class, the registered architectures)
- ``registry.py``: ``create_model``, ``list_models``, ``default_clip`` (an architecture's clip)
- ``prompts.py``: the transfer types, reparameterization, prompt folding
- ``checkpoint.py``: reading every checkpoint format into our names (pure state-dict conversion)
- ``hub.py``: where a named checkpoint lives (a file, a Hugging Face folder or model id)
- ``hfcard.py``: a downloaded Hugging Face VideoMAE classifier's ``config.json`` read as a model card
- ``ckptcard.py``: a VideoMAE or APT classifier checkpoint (``.pth``) read as a model card from its shapes
- ``artifact.py``: apt-video's weights files (trained tensors and the card), loading any checkpoint
- ``card.py``: the model card and ``ClipSpec``, the facts that travel with a model
- ``files.py``: atomic file writes

Names are imported when first used, so that the card, the clip and the file helpers load without
PyTorch (the command line's ``--help``).
"""
import importlib

_WHERE = {
    "CheckpointError": "checkpoint", "LoadReport": "checkpoint", "convert_state_dict": "checkpoint",
    "read_state_dict": "checkpoint",
    "fold_prompts": "prompts", "reparameterize": "prompts",
    "create_model": "registry", "default_clip": "registry", "list_models": "registry", "register_model": "registry",
    "VideoVisionTransformer": "vit", "count_parameters": "vit", "flops_per_clip": "vit",
    "sincos_position_table": "vit",
    "backbone_record": "artifact", "build_from_trained": "artifact", "find_weights": "artifact",
    "load_any": "artifact", "load_pretrained": "artifact", "load_weights": "artifact", "read_card": "artifact",
    "describe": "artifact", "hf_source": "artifact", "CardFill": "artifact",
    "checkpoint_card": "ckptcard", "read_class_names": "ckptcard", "open_model": "artifact", "hf_card": "hfcard",
    "save_trained": "artifact", "sha256_file": "artifact", "trained_state": "artifact",
    "Backbone": "card", "CardError": "card", "ClipSpec": "card", "IMAGENET_MEAN": "card", "IMAGENET_STD": "card",
    "ModelCard": "card", "SAMPLERS": "card", "class_names": "card", "TRANSFER_TYPES": "card",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _WHERE[name] in ("registry", "vit", "artifact"):
        importlib.import_module(f"{__name__}.vit")  # registers the architectures
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
