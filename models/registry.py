"""Model registry in the timm style: ``@register_model`` constructors, ``create_model``, and each
architecture's default clip (``default_clip``: frames, sampling rate, input size and test views, as
timm's ``pretrained_cfg`` gives a model's input size), from which a training config defaults."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

from .card import ClipSpec

_ENTRYPOINTS: dict[str, Callable[..., nn.Module]] = {}
_CLIPS: dict[str, ClipSpec] = {}


def register_model(fn: Callable[..., nn.Module] | None = None, *, clip: ClipSpec | None = None):
    """Register a model constructor under its function name, with its default clip (VideoMAE's
    16 frames at rate 4, 224 px, 10x3 test views when none is given). ``@register_model`` or
    ``@register_model(clip=ClipSpec(...))``."""
    def register(f: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if f.__name__ in _ENTRYPOINTS:
            raise ValueError(f"model {f.__name__!r} is registered twice")
        _ENTRYPOINTS[f.__name__] = f
        _CLIPS[f.__name__] = clip or ClipSpec()
        return f

    return register(fn) if fn is not None else register


def list_models() -> list[str]:
    """Names of every registered architecture, sorted."""
    return sorted(_ENTRYPOINTS)


def _known(name: str) -> None:
    if name not in _ENTRYPOINTS:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")


def create_model(name: str, **overrides) -> nn.Module:
    """Build a registered architecture, with keyword overrides of its defaults.

    Example: ``create_model("vit_base_patch16_224", num_classes=51, prompt_num_tokens=200)``.
    """
    _known(name)
    return _ENTRYPOINTS[name](**overrides)


def default_clip(name: str) -> ClipSpec:
    """The clip architecture ``name`` is built for: its frames and input size, the sampling rate
    and test views VideoMAE uses with it."""
    _known(name)
    return _CLIPS[name]
