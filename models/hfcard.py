"""A Hugging Face VideoMAE classifier as downloaded (``save_pretrained`` folder or model id) read as
a model card: the architecture from ``config.json``, the class names from ``id2label``, the
normalisation from ``preprocessor_config.json``. Its weights then load as any checkpoint
(``models.checkpoint`` maps the names), so the model is scored and exported with no training step.

What ``config.json`` does not hold, how the clip is sampled and how many test views, comes from
the caller (``clip``: a preset's or the flags'), else the registry's defaults.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from .card import IMAGENET_MEAN, IMAGENET_STD, CardError, ClipSpec, ModelCard
from .checkpoint import CheckpointError

HF_CONFIG, HF_PREPROCESSOR = "config.json", "preprocessor_config.json"
#: transformers' nn.LayerNorm default: its fc_norm (our head_norm) is built without the config's eps
HF_FC_NORM_EPS = 1e-5
#: registered architectures by (hidden_size, depth): the card names the closest, its overrides say the rest
_NAMES = {(384, 12): "vit_small_patch16_224", (768, 12): "vit_base_patch16_224", (1024, 24): "vit_large_patch16_224",
          (1280, 32): "vit_huge_patch16_224"}


def is_hf_folder(folder: str | Path) -> bool:
    """A folder holding a transformers ``config.json`` (of any model type: the card checks it)."""
    return (Path(folder) / HF_CONFIG).is_file()


def hf_card(folder: str | Path, clip: ClipSpec | None = None) -> ModelCard:
    """The card of the VideoMAE classifier in ``folder``; ``CheckpointError`` naming the file and key
    of anything this model cannot be (not VideoMAE, no classes, CLS pooling, another activation)."""
    path = Path(folder) / HF_CONFIG
    cfg = _json(path)
    if cfg.get("model_type") != "videomae":
        raise CheckpointError(f"{path}: model_type={cfg.get('model_type')!r}; apt-video reads VideoMAE models "
                              f"(model_type 'videomae')")
    arch = cfg.get("architectures") or []
    if "VideoMAEForVideoClassification" not in arch:
        raise CheckpointError(f"{path}: architectures={arch}; a classifier (VideoMAEForVideoClassification) is "
                              f"needed to score: fine-tune this backbone first (apt-video train --finetune {folder})")
    if not cfg.get("use_mean_pooling", True):
        raise CheckpointError(f"{path}: use_mean_pooling=false (the CLS token and a final LayerNorm); apt-video's "
                              f"VideoMAE pools the mean of the tokens, as the released classifiers do")
    if cfg.get("hidden_act", "gelu") != "gelu":
        raise CheckpointError(f"{path}: hidden_act={cfg.get('hidden_act')!r}; VideoMAE's blocks use 'gelu'")
    try:
        labels = cfg["id2label"]
        classes = [labels[str(i)] if str(i) in labels else labels[i] for i in range(len(labels))]
        hidden, depth = cfg.get("hidden_size", 768), cfg.get("num_hidden_layers", 12)
        overrides = {"num_classes": len(classes), "embed_dim": hidden, "depth": depth,
                     "num_heads": cfg.get("num_attention_heads", 12),
                     "mlp_ratio": cfg.get("intermediate_size", 3072) / hidden,
                     "patch_size": cfg.get("patch_size", 16), "img_size": cfg.get("image_size", 224),
                     "in_chans": cfg.get("num_channels", 3), "num_frames": cfg.get("num_frames", 16),
                     "tubelet_size": cfg.get("tubelet_size", 2), "qkv_bias": cfg.get("qkv_bias", True),
                     "norm_eps": cfg.get("layer_norm_eps", 1e-12), "head_norm_eps": HF_FC_NORM_EPS,
                     "transfer_type": "end2end"}
    except (KeyError, TypeError, ZeroDivisionError) as exc:
        raise CheckpointError(f"{path}: id2label must map 0..N-1 to class names, and hidden_size must be a "
                              f"number ({exc!r} did not)") from None
    mean, std = _normalisation(Path(folder) / HF_PREPROCESSOR)
    view = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(clip or ClipSpec()).items()}
    view.update(num_frames=overrides["num_frames"], input_size=overrides["img_size"], mean=mean, std=std)
    try:
        return ModelCard.from_dict({"model": _NAMES.get((hidden, depth), "vit_base_patch16_224"),
                                    "model_overrides": overrides, "classes": classes, "transfer_type": "end2end",
                                    "clip": view}, str(path))
    except CardError as exc:
        raise CheckpointError(str(exc)) from None


def _normalisation(path: Path) -> tuple:
    """``image_mean`` and ``image_std`` of the processor (on 0..1 pixels), else ImageNet's."""
    proc = _json(path) if path.is_file() else {}
    return proc.get("image_mean", list(IMAGENET_MEAN)), proc.get("image_std", list(IMAGENET_STD))


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON mapping, got {type(data).__name__}")
    return data
