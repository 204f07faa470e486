"""Where a checkpoint named on the command line lives: a file, a Hugging Face ``save_pretrained``
folder, or a Hugging Face model id (``MCG-NJU/videomae-base``, ``org/name@revision``).

Ids are resolved with ``huggingface_hub``: the local cache first, the hub only when the cache
lacks the files and ``HF_HUB_OFFLINE`` is not set; a clear message when the id cannot be had. The
file is then read as any other checkpoint (``models.checkpoint``: Hugging Face names are mapped).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from .checkpoint import CheckpointError

#: weight files of a Hugging Face model folder, in order of preference
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


#: a name ending so is a weights file (perhaps mistyped), never a hub id
FILE_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")


def is_hub_id(spec: str | Path) -> bool:
    return bool(_ID.match(str(spec))) and not Path(spec).exists() and Path(spec).suffix not in FILE_SUFFIXES


def resolve_weights(spec: str | Path) -> Path:
    """The checkpoint file ``spec`` names (see the module docstring)."""
    path = Path(spec)
    if path.is_dir():
        found = next((path / n for n in HF_WEIGHTS if (path / n).is_file()), None)
        if found is None:
            raise CheckpointError(f"{path}: a folder without {' or '.join(HF_WEIGHTS)}; name the checkpoint file")
        return found
    if path.exists() or not is_hub_id(spec):
        return path
    return _from_hub(str(spec))


def _from_hub(spec: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise CheckpointError(f"{spec}: looks like a Hugging Face model id, but huggingface_hub is not installed "
                              f"(pip install huggingface_hub), or pass a checkpoint file") from None
    repo, _, revision = spec.partition("@")
    kw = dict(repo_id=repo, revision=revision or None,
              allow_patterns=[*HF_WEIGHTS, "config.json", "preprocessor_config.json"])
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    folder, errors = None, []
    for local in (True,) if offline else (True, False):  # the cache first
        try:
            folder = Path(snapshot_download(local_files_only=local, **kw))
            break
        except Exception as exc:  # noqa: BLE001  huggingface_hub raises several kinds: say what it said
            errors.append(str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__)
    if folder is None:
        where = "not in the local Hugging Face cache and HF_HUB_OFFLINE is set" if offline else errors[-1]
        raise CheckpointError(f"{spec}: cannot get this Hugging Face model ({where}); check the id, the network or "
                              f"HF_HOME, or pass a checkpoint file")
    found = next((folder / n for n in HF_WEIGHTS if (folder / n).is_file()), None)
    if found is None:
        raise CheckpointError(f"{spec}: the model holds none of {', '.join(HF_WEIGHTS)} (a sharded checkpoint?); "
                              f"download it and pass the file")
    return found
