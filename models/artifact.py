"""apt-video's weights files: the trained tensors as safetensors with a metadata record.

The record travels from training to the exporter to the scorer (one place per fact): architecture
and overrides, class names, clip geometry and normalisation, test views, the pretrained backbone's
name, path and sha256. A prompt-tuned run stores only what it trained (prompts, head, head_norm);
the backbone comes from the pretrained file named in the record (or given anew).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import logging

import torch

from .checkpoint import APT_FORMAT_KEY, APT_PARTIAL, CheckpointError, load_pretrained
from .registry import create_model

log = logging.getLogger("apt_video")
META_KEY = "apt_video"
FORMAT_VERSION = 1


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def trained_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """What a run trained: every tensor for end2end, else the parameters that require grad."""
    if getattr(model, "transfer_type", "end2end") == "end2end":
        return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k in names}


def save_trained(model: torch.nn.Module, path: str | Path, meta: dict) -> None:
    """Write the trained tensors and ``meta`` atomically as one safetensors file."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = trained_state(model)
    partial = getattr(model, "transfer_type", "end2end") != "end2end"
    header = {META_KEY: json.dumps({"format_version": FORMAT_VERSION, **meta}),
              APT_FORMAT_KEY: APT_PARTIAL if partial else "full"}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=header)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_meta(path: str | Path) -> dict:
    """The metadata record of an apt-video weights file."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    if META_KEY not in header:
        raise CheckpointError(f"{path}: not an apt-video weights file (no '{META_KEY}' metadata); "
                              f"use models.load_pretrained for other checkpoints")
    return json.loads(header[META_KEY])


def build_from_trained(path: str | Path, pretrained: str | Path | None = None,
                       verify_sha: bool = True) -> tuple[torch.nn.Module, dict]:
    """Rebuild the model of a weights file, in eval mode: the architecture from its record, the
    backbone from ``pretrained`` (default: the record's pretrained path) when the file holds only
    trained tensors, then the file's tensors. Returns ``(model, meta)``."""
    meta = read_meta(path)
    model = create_model(meta["model"], **meta["model_overrides"])
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        partial = (f.metadata() or {}).get(APT_FORMAT_KEY) == APT_PARTIAL
    if partial:
        src = pretrained or (meta.get("pretrained") or {}).get("path")
        if not src:
            raise CheckpointError(f"{path}: holds only the trained tensors and names no pretrained backbone; "
                                  f"pass the backbone checkpoint (--pretrained)")
        if not Path(src).is_file():
            raise CheckpointError(f"{path}: its backbone {src} is not there; pass it with --pretrained")
        want = (meta.get("pretrained") or {}).get("sha256")
        if verify_sha and want and sha256_file(src) != want:
            if pretrained is None:
                raise CheckpointError(f"{src}: sha256 differs from the one recorded in {path} at training time")
            log.warning("%s: not the backbone %s was trained on (sha256 differs); using it as asked",
                        src, path)
        load_pretrained(model, src)
    load_pretrained(model, path)
    return model.eval(), meta
