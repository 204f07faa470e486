"""Reading checkpoints of every format a VideoMAE / APT user meets, into our state-dict names.

Formats: VideoMAE pre-training (``encoder.`` prefix, decoder), VideoMAE fine-tuned (``fc_norm``),
APT (``head_norm``, ``prompt_*``), apt-video's own safetensors, and Hugging Face transformers
VideoMAE (v4 ``q_bias``/``v_bias`` and v5 ``query.bias``/``value.bias``). Files: ``.pth``, ``.pt``,
``.bin``, ``.ckpt`` (unpickled with ``weights_only=True``, never executing code) and ``.safetensors``.
Conversion is a pure function on a state dict; ``models.artifact.load_pretrained`` loads any of
them into a model.
"""
from __future__ import annotations

import argparse
import logging
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

log = logging.getLogger(__name__)

#: safetensors metadata key marking apt-video's own files, and the value for "trained tensors only"
APT_FORMAT_KEY, APT_PARTIAL = "apt_video_contents", "trained"
_WRAPPERS = ("model", "module", "state_dict", "model_state")
#: classes a plain checkpoint may hold beside tensors: VideoMAE's and APT's ``save_model`` store the
#: run's ``argparse.Namespace`` as ``args`` (attributes only: unpickling it runs no code of the file's)
SAFE_GLOBALS = [argparse.Namespace]
#: the tensors a prompt-tuned or linear run trains (the rest is the frozen backbone)
TRAINED_PREFIXES = ("head.", "head_norm.", "prompt_")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: the message names the file and the key."""


@dataclass
class LoadReport:
    """What ``load_pretrained`` did, key by key."""

    path: str
    source_format: str
    loaded: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)  # trainable tensors the file lacked: kept at init
    dropped: list[str] = field(default_factory=list)  # present in the file but not used, with reason
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.path}: {self.source_format} checkpoint, {len(self.loaded)} tensors loaded"]
        if self.fresh:
            parts.append(f"{len(self.fresh)} kept at init ({_short(self.fresh)})")
        if self.dropped:
            parts.append(f"{len(self.dropped)} dropped ({_short(self.dropped)})")
        return "; ".join(parts)


def _short(names: list[str], n: int = 4) -> str:
    return ", ".join(names[:n]) + (f", ... +{len(names) - n}" if len(names) > n else "")


# -- reading files ----------------------------------------------------------------------------------
def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a checkpoint file, unwrapped from ``model``/``module``/``state_dict``.

    Pickled files are read with ``torch.load(weights_only=True)`` (and ``SAFE_GLOBALS``): a file that
    needs code execution is refused. Returns ``(state_dict, metadata)``; metadata is empty for pickled files.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    meta: dict[str, str] = {}
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = dict(f.metadata() or {})
                sd = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    else:
        try:
            with torch.serialization.safe_globals(SAFE_GLOBALS):
                obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise CheckpointError(
                f"{path}: refusing to unpickle: not a plain PyTorch state dict (corrupt, or holding "
                f"objects other than tensors, which could run code when loaded). Only tensors are read "
                f"(torch.load weights_only=True); re-save the state dict or convert it to .safetensors"
            ) from exc
        except (RuntimeError, EOFError, OSError) as exc:
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({exc})") from exc
        sd = _unwrap(obj, path)
    if not sd:
        raise CheckpointError(f"{path}: the checkpoint holds no tensors")
    return sd, meta


def _unwrap(obj, path: Path) -> dict[str, torch.Tensor]:
    while isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in _WRAPPERS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            raise CheckpointError(f"{path}: no state dict found (top-level keys: {_short(list(obj), 8)}); "
                                  f"expected tensors at the top or under one of {_WRAPPERS}")
        obj = inner
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


# -- converting names -------------------------------------------------------------------------------
_HF_LAYER = re.compile(r"^videomae\.encoder\.layer\.(\d+)\.(.+)$")
_HF_BLOCK_NAMES = {
    "attention.attention.q_bias": "attn.q_bias",
    "attention.attention.v_bias": "attn.v_bias",
    "attention.attention.query.bias": "attn.q_bias",
    "attention.attention.value.bias": "attn.v_bias",
    "attention.output.dense.weight": "attn.proj.weight",
    "attention.output.dense.bias": "attn.proj.bias",
    "layernorm_before.weight": "norm1.weight",
    "layernorm_before.bias": "norm1.bias",
    "layernorm_after.weight": "norm2.weight",
    "layernorm_after.bias": "norm2.bias",
    "intermediate.dense.weight": "mlp.fc1.weight",
    "intermediate.dense.bias": "mlp.fc1.bias",
    "output.dense.weight": "mlp.fc2.weight",
    "output.dense.bias": "mlp.fc2.bias",
}
_DROP_PREFIXES = ("decoder.", "encoder_to_decoder.", "mask_token", "norm.", "pos_embed",
                  "videomae.layernorm.", "decoder_pos_embed")


def detect_format(sd: dict[str, torch.Tensor]) -> str:
    """``huggingface``, ``videomae-pretrain``, ``videomae-finetuned`` or ``apt``."""
    keys = [k.removeprefix("module.") for k in sd]
    if any(k.startswith("videomae.") for k in keys):
        return "huggingface"
    if any(k.startswith("encoder.blocks.") or k.startswith("encoder.patch_embed.") for k in keys):
        return "videomae-pretrain"
    if any(k.startswith("fc_norm.") for k in keys):
        return "videomae-finetuned"
    return "apt"


def convert_state_dict(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str], str]:
    """Rename a checkpoint's tensors to ours. Pure: returns ``(converted, dropped, format)``;
    ``dropped`` lists the keys that have no place in this model (decoders, final norm, mask token)."""
    fmt = detect_format(sd)
    sd = {_strip(k): v for k, v in sd.items()}
    if fmt == "huggingface":
        sd = _from_huggingface(sd)
    elif fmt == "videomae-pretrain":
        sd = {k.removeprefix("encoder."): v for k, v in sd.items()}
    out, dropped = {}, []
    for k, v in sd.items():
        k = "head_norm." + k[len("fc_norm."):] if k.startswith("fc_norm.") else k
        if k.startswith(_DROP_PREFIXES) or k.endswith(".attn.k_bias"):
            dropped.append(k)
        else:
            out[k] = v
    return out, dropped, fmt


def _strip(key: str) -> str:
    for prefix in ("module.", "_orig_mod."):
        key = key.removeprefix(prefix)
    return key


def _from_huggingface(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    qkv: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in sd.items():
        m = _HF_LAYER.match(k)
        if m:
            i, rest = int(m.group(1)), m.group(2)
            proj = re.fullmatch(r"attention\.attention\.(query|key|value)\.weight", rest)
            if proj:
                qkv.setdefault(i, {})[proj.group(1)] = v
            elif rest == "attention.attention.key.bias":
                out[f"blocks.{i}.attn.k_bias"] = v  # VideoMAE has none; dropped by the caller
            elif rest in _HF_BLOCK_NAMES:
                out[f"blocks.{i}.{_HF_BLOCK_NAMES[rest]}"] = v
            else:
                out[k] = v  # unknown: reported as unexpected
        elif k.startswith("videomae.embeddings.patch_embeddings.projection."):
            out["patch_embed.proj." + k.rsplit(".", 1)[1]] = v
        elif k.startswith("classifier."):
            out["head." + k.split(".", 1)[1]] = v
        elif k.startswith("videomae.") and not k.startswith("videomae.layernorm."):
            out[k.removeprefix("videomae.")] = v
        else:
            out[k] = v
    for i, parts in qkv.items():
        missing = {"query", "key", "value"} - set(parts)
        if missing:
            raise CheckpointError(f"videomae.encoder.layer.{i}.attention.attention: missing "
                                  f"{', '.join(sorted(missing))} weight")
        out[f"blocks.{i}.attn.qkv.weight"] = torch.cat([parts["query"], parts["key"], parts["value"]])
    return out
