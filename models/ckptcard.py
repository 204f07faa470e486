"""A classifier checkpoint as VideoMAE's and APT's own code save it (``checkpoint.pth``, or the same
tensors as ``.safetensors`` without apt-video's card) read as a model card from its tensors' shapes,
so that it is scored and exported with no training step.

What the shapes say: the width and the patch and tubelet sizes (``patch_embed.proj.weight``), the
depth (``blocks.N``), the MLP ratio (``mlp.fc1``), the q/v biases, the classes (``head.weight``)
and, for an APT checkpoint, the prompts (``prompt_embeddings_k``: prompted layers, tokens and the
head width, hence the heads). What they do not say is taken from the caller's clip (a preset's or
the flags': frames, input size, sampling and views) and, for the heads of a VideoMAE checkpoint,
from the width as VideoMAE's architectures pair them. The class names are the caller's (a
``--classes`` file), else ``class_0``, ``class_1``, ... as a list file's numbers are named.
"""
from __future__ import annotations

import re
from pathlib import Path

from .card import CardError, ClipSpec, ModelCard, class_names
from .checkpoint import CheckpointError, convert_state_dict, read_state_dict

#: VideoMAE's architectures by width: (registered name, heads)
_BY_WIDTH = {384: ("vit_small_patch16_224", 6), 768: ("vit_base_patch16_224", 12),
             1024: ("vit_large_patch16_224", 16), 1280: ("vit_huge_patch16_224", 16)}
_BLOCK = re.compile(r"^blocks\.(\d+)\.")


def checkpoint_card(path: str | Path, clip: ClipSpec | None = None, classes: list[str] | None = None) -> ModelCard:
    """The card of the VideoMAE or APT classifier checkpoint at ``path``; ``CheckpointError`` naming
    the file and the tensor when it is not one (a pre-training checkpoint, no head, layer scale)."""
    raw, _ = read_state_dict(path)
    sd, _, fmt = convert_state_dict(raw)
    if fmt == "videomae-pretrain":
        raise CheckpointError(f"{path}: a VideoMAE pre-training checkpoint (no classifier); fine-tune it first "
                              f"(apt-video train --finetune {path})")
    for key in ("patch_embed.proj.weight", "head.weight", "head_norm.weight"):
        if key not in sd:
            what = "fc_norm.weight: the mean-pooling LayerNorm" if key == "head_norm.weight" else key
            raise CheckpointError(f"{path}: no {what}; a VideoMAE or APT classifier checkpoint (use_mean_pooling) "
                                  f"is needed to score")
    if any(k.endswith((".gamma_1", ".gamma_2")) for k in sd):
        raise CheckpointError(f"{path}: holds layer scale (blocks.N.gamma_1, init_values > 0), which apt-video's "
                              f"VideoMAE does not have")
    if sd["patch_embed.proj.weight"].ndim != 5:
        raise CheckpointError(f"{path}: patch_embed.proj.weight has shape {list(sd['patch_embed.proj.weight'].shape)}; "
                              f"a video model's is (width, 3, tubelet, patch, patch)")
    width, chans, tubelet, patch, _ = sd["patch_embed.proj.weight"].shape
    depth = 1 + max((int(m.group(1)) for k in sd if (m := _BLOCK.match(k))), default=-1)
    if depth < 1 or "blocks.0.mlp.fc1.weight" not in sd:
        raise CheckpointError(f"{path}: no transformer blocks (blocks.0.mlp.fc1.weight)")
    n_classes = sd["head.weight"].shape[0]
    name, heads = _BY_WIDTH.get(width, ("vit_base_patch16_224", max(width // 64, 1)))
    overrides = {"num_classes": n_classes, "embed_dim": width, "depth": depth, "patch_size": patch,
                 "in_chans": chans, "tubelet_size": tubelet,
                 "mlp_ratio": sd["blocks.0.mlp.fc1.weight"].shape[0] / width,
                 "qkv_bias": "blocks.0.attn.q_bias" in sd}
    prompts = sd.get("prompt_embeddings_k")
    if prompts is not None:
        layers, tokens, head_dim = prompts.shape
        overrides.update(transfer_type="prompt", prompt_num_tokens=tokens, prompt_start=0, prompt_end=layers - 1,
                         num_heads=width // head_dim, prompt_reparam="prompt_scale" in sd)
    else:
        overrides.update(transfer_type="end2end", num_heads=heads)
    clip = clip or ClipSpec()
    overrides.update(num_frames=clip.num_frames, img_size=clip.input_size)
    names = classes if classes is not None else class_names(n_classes)
    if len(names) != n_classes:
        raise CheckpointError(f"{path}: its head has {n_classes} classes but {len(names)} class names were given "
                              f"(--classes)")
    try:
        return ModelCard.from_dict({"model": name, "model_overrides": overrides, "classes": list(names),
                                    "transfer_type": overrides["transfer_type"],
                                    "clip": {**clip.__dict__, "mean": list(clip.mean), "std": list(clip.std)}},
                                   str(path))
    except CardError as exc:
        raise CheckpointError(str(exc)) from None


def read_class_names(path: str | Path) -> list[str]:
    """The class names of a ``--classes`` file: one name per line (MMAction2's label maps), or
    ``INDEX NAME`` lines (UCF101's ``classInd.txt``) numbered from 0 or 1 in order. Blank lines are
    skipped; a repeated name is refused."""
    path = Path(path)
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"--classes {path}: not readable text ({exc})") from None
    lines = [line for line in lines if line]
    if not lines:
        raise CheckpointError(f"--classes {path}: holds no class names (one per line)")
    split = [line.split(None, 1) for line in lines]
    numbered = all(len(s) == 2 and s[0].isascii() and s[0].isdecimal() for s in split)
    if numbered:
        first = int(split[0][0])
        if first in (0, 1) and [int(s[0]) for s in split] == list(range(first, first + len(split))):
            lines = [s[1].strip() for s in split]
    seen: dict[str, int] = {}
    for i, name in enumerate(lines):
        if name in seen:
            raise CheckpointError(f"--classes {path}: the name {name!r} is given twice (entries {seen[name] + 1} "
                                  f"and {i + 1})")
        seen[name] = i
    return lines
