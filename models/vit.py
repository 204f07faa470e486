"""VideoMAE vision transformer with Attention Prompt Tuning (APT).

Reads top-down: patch embedding and position table, attention with prompt K/V, the block, the
model, then the registered constructors. State-dict names follow the VideoMAE / APT reference
checkpoints (``patch_embed.proj``, ``blocks.{i}.attn.qkv.weight``, ``attn.q_bias``, ``attn.v_bias``,
``head_norm``, ``head``, ``prompt_embeddings_k``, ``prompt_embeddings_v``, ``prompt_scale``), so
released APT checkpoints load with ``strict=True``.
"""
from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, trunc_normal_

from .card import TRANSFER_TYPES, ClipSpec
from .prompts import prompt_init_bound, reparameterize
from .registry import default_clip, register_model

ATTN_IMPLS = ("sdpa", "math")


def sincos_position_table(num_positions: int, dim: int) -> torch.Tensor:
    """Fixed sinusoid position table of VideoMAE, ``(1, num_positions, dim)`` float32.

    Column ``j`` uses angle ``pos / 10000 ** (2 * (j // 2) / dim)``: sine on even columns, cosine on
    odd ones. Computed in float64 and rounded once, for any frame count and image size.
    """
    pos = torch.arange(num_positions, dtype=torch.float64)[:, None]
    j = torch.arange(dim, dtype=torch.float64)[None, :]
    angle = pos / torch.pow(10000.0, 2 * torch.div(j, 2, rounding_mode="floor") / dim)
    table = torch.where(j.long() % 2 == 0, torch.sin(angle), torch.cos(angle))
    return table.to(torch.float32).unsqueeze(0)


class PatchEmbed(nn.Module):
    """Tubelet embedding: ``(B, 3, T, H, W)`` -> ``(B, T/t * H/p * W/p, D)`` with a strided Conv3d."""

    def __init__(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int,
                 num_frames: int, tubelet_size: int):
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size={img_size} is not a multiple of patch_size={patch_size}")
        if num_frames % tubelet_size:
            raise ValueError(f"num_frames={num_frames} is not a multiple of tubelet_size={tubelet_size}")
        self.img_size, self.patch_size = img_size, (patch_size, patch_size)
        self.num_frames, self.tubelet_size = num_frames, tubelet_size
        self.grid = (num_frames // tubelet_size, img_size // patch_size, img_size // patch_size)
        self.num_patches = self.grid[0] * self.grid[1] * self.grid[2]
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=(tubelet_size, patch_size, patch_size),
                              stride=(tubelet_size, patch_size, patch_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, t, h, w = x.shape
        if (t, h, w) != (self.num_frames, self.img_size, self.img_size):
            raise ValueError(f"input of {t} frames at {h}x{w} does not match the model "
                             f"({self.num_frames} frames at {self.img_size}x{self.img_size})")
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention whose keys and values can be extended with prompt tokens.

    The prompts ``(P, head_dim)`` are shared by all heads and appended after the qkv projection, to
    K and V only: queries and the output keep the input length.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim={dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.attn_impl = "sdpa"
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = self.v_bias = None
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, prompt_k: torch.Tensor | None = None,
                prompt_v: torch.Tensor | None = None) -> torch.Tensor:
        """``x (B, N, D)``, effective prompts ``(P, head_dim)`` or None -> ``(B, N, D)``."""
        b, n, d = x.shape
        bias = None
        if self.q_bias is not None:
            bias = torch.cat((self.q_bias, torch.zeros_like(self.q_bias), self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias)
        q, k, v = qkv.reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        if prompt_k is not None:
            p = prompt_k.shape[0]
            k = torch.cat((k, prompt_k.to(k.dtype).expand(b, self.num_heads, p, self.head_dim)), dim=2)
            v = torch.cat((v, prompt_v.to(v.dtype).expand(b, self.num_heads, p, self.head_dim)), dim=2)
        drop = self.attn_drop if self.training else 0.0
        if self.attn_impl == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
        else:  # explicit softmax(q k^T / sqrt(d)) v, the form that exports as MatMul-Softmax-MatMul
            attn = (q * self.scale) @ k.transpose(-2, -1)
            attn = F.dropout(attn.float().softmax(dim=-1).to(q.dtype), drop)  # softmax in fp32
            out = attn @ v
        out = out.transpose(1, 2).reshape(b, n, d)
        return self.proj_drop(self.proj(out))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, norm_layer,
                 drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU, drop=drop)

    def forward(self, x, prompt_k=None, prompt_v=None):
        x = x + self.drop_path(self.attn(self.norm1(x), prompt_k, prompt_v))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class VideoVisionTransformer(nn.Module):
    """VideoMAE ViT (mean pooling, ``head_norm``) with attention prompts in layers
    ``prompt_start..prompt_end`` (inclusive).

    Input ``(B, 3, T, H, W)`` float32, normalised; output logits ``(B, num_classes)``.
    ``transfer_type`` decides what trains: ``prompt`` (prompts + head + head_norm), ``linear``
    (head + head_norm) or ``end2end`` (everything; no prompts are created).
    """

    def __init__(self, *, img_size: int = 224, patch_size: int = 16, in_chans: int = 3,
                 num_classes: int = 400, embed_dim: int = 768, depth: int = 12, num_heads: int = 12,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, norm_eps: float = 1e-6,
                 num_frames: int = 16, tubelet_size: int = 2, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0, fc_drop_rate: float = 0.0,
                 init_scale: float = 0.001, transfer_type: str = "prompt", prompt_num_tokens: int = 200,
                 prompt_start: int = 0, prompt_end: int | None = None, prompt_dropout: float = 0.0,
                 prompt_reparam: bool = True, prompt_init: str = "random", head_norm_eps: float | None = None):
        super().__init__()
        if transfer_type not in TRANSFER_TYPES:
            raise ValueError(f"transfer_type={transfer_type!r}; choose one of {TRANSFER_TYPES}")
        if num_classes < 1:
            raise ValueError(f"num_classes={num_classes} must be at least 1")
        norm_layer = partial(nn.LayerNorm, eps=norm_eps)
        self.num_classes, self.embed_dim, self.num_features = num_classes, embed_dim, embed_dim
        self.num_frames, self.img_size, self.patch_size = num_frames, img_size, patch_size
        self.transfer_type = transfer_type
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim, num_frames, tubelet_size)
        self.register_buffer("pos_embed", sincos_position_table(self.patch_embed.num_patches, embed_dim),
                             persistent=False)
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, norm_layer, drop_rate, attn_drop_rate, dpr[i])
            for i in range(depth))
        # head_norm_eps: a head LayerNorm of its own eps (transformers' fc_norm is 1e-5 beside blocks of 1e-12)
        self.head_norm = nn.LayerNorm(embed_dim, eps=norm_eps if head_norm_eps is None else head_norm_eps)
        self.head_dropout = nn.Dropout(fc_drop_rate)
        self.head = nn.Linear(embed_dim, num_classes)
        self.apply(_init_weights)
        trunc_normal_(self.head.weight, std=0.02)
        with torch.no_grad():
            self.head.weight.mul_(init_scale)
            self.head.bias.mul_(init_scale)

        self.head_dim = embed_dim // num_heads
        self.prompts_folded = False
        self.prompt_embeddings_k = self.prompt_embeddings_v = self.prompt_scale = None
        self.prompt_dropout = nn.Dropout(prompt_dropout)
        if transfer_type == "prompt" and prompt_num_tokens > 0:
            end = depth - 1 if prompt_end is None else prompt_end
            if not 0 <= prompt_start <= end < depth:
                raise ValueError(f"prompt layers {prompt_start}..{end} must satisfy "
                                 f"0 <= prompt_start <= prompt_end < depth={depth}")
            if prompt_init != "random":
                raise ValueError(f"prompt_init={prompt_init!r}: only 'random' is implemented")
            self.prompt_start, self.prompt_end = prompt_start, end
            layers = end - prompt_start + 1
            bound = prompt_init_bound(patch_size, self.head_dim)
            self.prompt_embeddings_k = nn.Parameter(
                torch.empty(layers, prompt_num_tokens, self.head_dim).uniform_(-bound, bound))
            self.prompt_embeddings_v = nn.Parameter(
                torch.empty(layers, prompt_num_tokens, self.head_dim).uniform_(-bound, bound))
            if prompt_reparam:
                self.prompt_scale = nn.Parameter(torch.ones(layers, 2, prompt_num_tokens))
        else:
            self.prompt_start, self.prompt_end = depth, depth - 1  # no prompted layer
        self.set_transfer_type(transfer_type)

    # -- prompts ---------------------------------------------------------------------------
    @property
    def num_prompt_tokens(self) -> int:
        return 0 if self.prompt_embeddings_k is None else self.prompt_embeddings_k.shape[1]

    def effective_prompts(self) -> torch.Tensor | None:
        """Prompts as attention sees them, ``(layers, 2, tokens, head_dim)`` (K then V): dropout on
        the raw prompts in training, then the reparameterization ``prompt * max(scale, 1)``."""
        if self.prompt_embeddings_k is None:
            return None
        pk = self.prompt_dropout(self.prompt_embeddings_k)
        pv = self.prompt_dropout(self.prompt_embeddings_v)
        return reparameterize(torch.stack((pk, pv), dim=1), self.prompt_scale)

    # -- transfer and attention settings ---------------------------------------------------
    def set_transfer_type(self, transfer_type: str) -> None:
        """Set ``requires_grad``: prompt -> names with 'prompt' or 'head'; linear -> 'head' only
        (``head`` and ``head_norm``); end2end -> every parameter."""
        if transfer_type not in TRANSFER_TYPES:
            raise ValueError(f"transfer_type={transfer_type!r}; choose one of {TRANSFER_TYPES}")
        self.transfer_type = transfer_type
        for name, param in self.named_parameters():
            if transfer_type == "end2end":
                param.requires_grad_(True)
            elif transfer_type == "prompt":
                param.requires_grad_("prompt" in name or "head" in name)
            else:
                param.requires_grad_(name.startswith("head"))

    def set_attn_impl(self, impl: str) -> None:
        """``sdpa`` (fused scaled_dot_product_attention) or ``math`` (explicit softmax(QK^T)V)."""
        if impl not in ATTN_IMPLS:
            raise ValueError(f"attn_impl={impl!r}; choose one of {ATTN_IMPLS}")
        for block in self.blocks:
            block.attn.attn_impl = impl

    # -- forward ---------------------------------------------------------------------------
    def forward_pooled(self, x: torch.Tensor, prompts: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, 3, T, H, W)`` -> mean of the last block's tokens ``(B, D)``, before ``head_norm``.

        ``prompts`` ``(layers, 2, tokens, head_dim)`` replaces the model's own effective prompts
        (used by the prompts-as-input export); by default the model's prompts are used.
        """
        x = self.patch_embed(x)
        x = self.pos_drop(x + self.pos_embed.to(x.dtype))
        if prompts is None:
            prompts = self.effective_prompts()
        for i, block in enumerate(self.blocks):
            if prompts is not None and self.prompt_start <= i <= self.prompt_end:
                p = prompts[i - self.prompt_start]
                x = block(x, p[0], p[1])
            else:
                x = block(x)
        return x.mean(dim=1)

    def forward_features(self, x: torch.Tensor, prompts: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, 3, T, H, W)`` -> pooled, normalised features ``(B, D)``."""
        return self.head_norm(self.forward_pooled(x, prompts))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_dropout(features))

    def forward(self, x: torch.Tensor, prompts: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_head(self.forward_features(x, prompts))


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


# -- registered architectures (VideoMAE settings: tubelet 2, q/v bias, LayerNorm eps 1e-6) ----------
_VIDEOMAE = dict(patch_size=16, tubelet_size=2, mlp_ratio=4.0, qkv_bias=True, norm_eps=1e-6)


def _build(name: str, arch: dict, overrides: dict) -> VideoVisionTransformer:
    """Architecture ``name``: VideoMAE's settings, ``arch``, and its registered clip's frames and
    input size (``default_clip``), under the caller's ``overrides``."""
    clip = default_clip(name)
    return VideoVisionTransformer(**{**_VIDEOMAE, "num_frames": clip.num_frames, "img_size": clip.input_size,
                                     **arch, **overrides})


@register_model
def vit_small_patch16_224(**overrides) -> VideoVisionTransformer:
    return _build("vit_small_patch16_224", {"embed_dim": 384, "depth": 12, "num_heads": 6}, overrides)


@register_model
def vit_base_patch16_224(**overrides) -> VideoVisionTransformer:
    return _build("vit_base_patch16_224", {"embed_dim": 768, "depth": 12, "num_heads": 12}, overrides)


@register_model
def vit_large_patch16_224(**overrides) -> VideoVisionTransformer:
    return _build("vit_large_patch16_224", {"embed_dim": 1024, "depth": 24, "num_heads": 16}, overrides)


@register_model
def vit_huge_patch16_224(**overrides) -> VideoVisionTransformer:
    return _build("vit_huge_patch16_224", {"embed_dim": 1280, "depth": 32, "num_heads": 16}, overrides)


@register_model(clip=ClipSpec(num_frames=8, sampling_rate=2, input_size=112, test_num_segment=2))
def vit_micro_patch16_112(**overrides) -> VideoVisionTransformer:
    """A tiny backbone for CPU demos and tests: 8 frames at 112 px, 4 blocks of width 128."""
    return _build("vit_micro_patch16_112", {"embed_dim": 128, "depth": 4, "num_heads": 2}, overrides)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


def flops_per_clip(model: VideoVisionTransformer) -> float:
    """Multiply-accumulates x 2 of one forward pass (matmuls and the patch projection only)."""
    n, d = model.patch_embed.num_patches, model.embed_dim
    p = model.num_prompt_tokens
    kernel = math.prod(model.patch_embed.proj.kernel_size) * model.patch_embed.proj.in_channels
    macs = n * d * kernel
    for i, block in enumerate(model.blocks):
        keys = n + (p if model.prompt_start <= i <= model.prompt_end else 0)
        hidden = block.mlp.fc1.out_features
        macs += n * d * 3 * d + 2 * n * keys * d + n * d * d + 2 * n * d * hidden
    macs += d * model.num_classes
    return 2.0 * macs
