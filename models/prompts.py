"""Attention prompts of APT: initialisation, reparameterization and folding into constants."""
from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn


def prompt_init_bound(patch_size: int, head_dim: int) -> float:
    """Half-width ``v`` of the uniform(-v, v) prompt init: ``sqrt(6 / (3 * p * p + head_dim))``."""
    return math.sqrt(6.0 / (3 * patch_size * patch_size + head_dim))


def reparameterize(prompts: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """Effective prompts ``prompt * max(scale, 1)`` per token.

    ``prompts (layers, 2, tokens, head_dim)``, ``scale (layers, 2, tokens)`` or None (no reparam).
    Written as APT writes it, ``torch.maximum(scale, ones)``: at the tie (the scale starts at exactly
    1) ``maximum`` passes half the gradient to the scale, where ``clamp(min=1)`` would pass none
    and the scale could never move.
    """
    if scale is None:
        return prompts
    return prompts * torch.maximum(scale, torch.ones_like(scale)).unsqueeze(-1).to(prompts.dtype)


@torch.no_grad()
def fold_prompts(model: nn.Module) -> nn.Module:
    """An inference copy of ``model`` whose prompts are the effective constants.

    The reparameterization is applied once, ``prompt_scale`` and prompt dropout are gone, and the
    prompts become buffers (still named ``prompt_embeddings_k`` / ``prompt_embeddings_v``). The copy
    is in eval mode and gives the same logits as ``model.eval()``. The input model is not changed.
    """
    folded = copy.deepcopy(model).eval()
    if getattr(folded, "prompt_embeddings_k", None) is not None and not folded.prompts_folded:
        was_training = model.training
        model.eval()
        effective = model.effective_prompts().detach().clone()
        model.train(was_training)
        del folded.prompt_embeddings_k, folded.prompt_embeddings_v
        if folded.prompt_scale is not None:
            del folded.prompt_scale
        folded.prompt_scale = None
        folded.register_buffer("prompt_embeddings_k", effective[:, 0].contiguous())
        folded.register_buffer("prompt_embeddings_v", effective[:, 1].contiguous())
        folded.prompt_dropout = nn.Identity()
        folded.prompts_folded = True
    for p in folded.parameters():
        p.requires_grad_(False)
    return folded
