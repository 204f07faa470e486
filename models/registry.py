"""Model registry in the timm style: ``@register_model`` constructors and ``create_model``."""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

_ENTRYPOINTS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a model constructor under its function name."""
    if fn.__name__ in _ENTRYPOINTS:
        raise ValueError(f"model {fn.__name__!r} is registered twice")
    _ENTRYPOINTS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    """Names of every registered architecture, sorted."""
    return sorted(_ENTRYPOINTS)


def create_model(name: str, **overrides) -> nn.Module:
    """Build a registered architecture, with keyword overrides of its defaults.

    Example: ``create_model("vit_base_patch16_224", num_classes=51, prompt_num_tokens=200)``.
    """
    if name not in _ENTRYPOINTS:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    return _ENTRYPOINTS[name](**overrides)
