"""apt-video's weights files: the trained tensors as safetensors with the model card in the header.

The card (``models.card.ModelCard``) travels from training to the exporter to the scorer. A
prompt-tuned or linear run stores only what it trained (prompts, head, head_norm); the backbone
comes from the pretrained file its card names (checked by sha256) or from one given anew.
``load_weights`` is the one way a model gets such a file's tensors, backbone first.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .card import Backbone, CardError, ClipSpec, ModelCard
from .checkpoint import (
    APT_FORMAT_KEY,
    APT_PARTIAL,
    TRAINED_PREFIXES,
    CheckpointError,
    LoadReport,
    convert_state_dict,
    read_state_dict,
)
from .ckptcard import checkpoint_card
from .files import atomic_path
from .hfcard import hf_card, is_hf_folder
from .hub import FILE_SUFFIXES as CHECKPOINT_SUFFIXES
from .hub import HF_WEIGHTS, is_hub_id, resolve_weights
from .registry import create_model

log = logging.getLogger(__name__)
META_KEY = "apt_video"


def load_pretrained(model: torch.nn.Module, path: str | Path, own: bool = False) -> LoadReport:
    """Load a checkpoint of any supported format into ``model`` and say what happened.

    - Every backbone tensor must be present with the right shape; otherwise ``CheckpointError``
      names the key (apt-video's own "trained tensors only" files are exempt: they carry no backbone).
    - A classifier head of another size is dropped with a message and stays at its init.
    - Prompts of another shape are an error naming the key and both shapes.
    - Trainable tensors the file lacks (head, head_norm, prompts) stay at their init.

    ``own``: the file is the model's own weights (its card built ``model``): then a head of another
    size, or no head at all, means the card's class list does not describe the weights, an error.
    """
    path = resolve_weights(path)
    raw, meta = read_state_dict(path)
    sd, dropped, fmt = convert_state_dict(raw)
    partial = meta.get(APT_FORMAT_KEY) == APT_PARTIAL
    report = LoadReport(str(path), "apt-video (trained tensors)" if partial else fmt)
    report.dropped += [f"{k} (no place in this architecture)" for k in dropped]
    target = model.state_dict()
    to_load: dict[str, torch.Tensor] = {}
    # backbone first, so that an architecture mismatch is reported as such
    for key, ref in sorted(target.items(), key=lambda kv: kv[0].startswith(TRAINED_PREFIXES)):
        trained = key.startswith(TRAINED_PREFIXES)
        if key not in sd:
            if trained or partial:
                report.fresh.append(key)
                continue
            raise CheckpointError(
                f"{path}: backbone tensor {key!r} {tuple(ref.shape)} is missing from this {fmt} "
                f"checkpoint: it was saved for another architecture, or is not a VideoMAE checkpoint")
        value = sd.pop(key)
        if value.shape != ref.shape:
            if key.startswith("head.") and own:
                raise CheckpointError(f"{path}: its card lists {model.num_classes} classes but the head tensor "
                                      f"{key!r} has shape {tuple(value.shape)}: the card does not describe these "
                                      f"weights; train or export the model again")
            if key.startswith("head."):
                msg = (f"{key} {tuple(value.shape)} dropped: this model has {model.num_classes} "
                       f"classes; the head stays at its init")
                log.warning("%s: %s", path, msg)
                report.dropped.append(msg)
                continue
            what = "prompt" if key.startswith("prompt_") else "backbone"
            raise CheckpointError(
                f"{path}: {what} tensor {key!r} has shape {tuple(value.shape)} in the checkpoint but "
                f"{tuple(ref.shape)} in the model; check the architecture and its overrides "
                f"(embed_dim, depth, num_frames, prompt_num_tokens, prompt_start/prompt_end)")
        to_load[key] = value.to(ref.dtype)
        report.loaded.append(key)
    report.dropped += [f"{k} (not in this model)" for k in sd]
    if own and "head.weight" in report.fresh:
        raise CheckpointError(f"{path}: holds no classifier head (head.weight), so its card's classes have no "
                              f"weights; train the model again")
    for key, value in to_load.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(f"{path}: tensor {key!r} holds NaN or infinite values: the file is damaged or "
                                  f"comes from a run that diverged")
    if fmt == "huggingface":
        report.notes.append("Hugging Face fc_norm uses LayerNorm eps 1e-5; this model uses 1e-6")
    model.load_state_dict(to_load, strict=False)
    log.info("%s", report.summary())
    return report


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def backbone_record(path: str | Path) -> Backbone:
    """Name, absolute path and sha256 of a pretrained weights file."""
    p = Path(path)
    return Backbone(p.name, str(p.resolve()), sha256_file(p))


def trained_state(model: torch.nn.Module, full: bool = False) -> dict[str, torch.Tensor]:
    """What a run trained: every tensor for end2end (or ``full``), else the parameters that require
    grad."""
    if full or getattr(model, "transfer_type", "end2end") == "end2end":
        return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k in names}


def save_trained(model: torch.nn.Module, path: str | Path, card: ModelCard) -> None:
    """Write the trained tensors and the card atomically as one safetensors file."""
    header = {META_KEY: json.dumps(card.to_dict()),
              APT_FORMAT_KEY: APT_PARTIAL if card.contents == "trained" else "full"}
    with atomic_path(path) as tmp:
        save_file(trained_state(model, full=card.contents == "full"), str(tmp), metadata=header)


#: where a training run keeps its weights, in order of preference
RUN_WEIGHTS = ("checkpoints/best.safetensors", "checkpoints/last.safetensors")


def find_weights(path: str | Path) -> Path | None:
    """An apt-video weights file: ``path`` itself, or the best (else last) weights of a training run
    folder; None when ``path`` is neither."""
    p = Path(path)
    if p.suffix == ".safetensors" and p.is_file():
        return p
    if p.is_dir():
        return next((p / name for name in RUN_WEIGHTS if (p / name).is_file()), None)
    return None


def _header(path: str | Path) -> dict:
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc


def read_card(path: str | Path) -> ModelCard:
    """The model card of an apt-video weights file."""
    header = _header(path)
    if META_KEY not in header:
        raise CheckpointError(f"{path}: not an apt-video weights file (no '{META_KEY}' metadata); "
                              f"use models.load_pretrained for other checkpoints")
    try:
        data = json.loads(header[META_KEY])
    except ValueError as exc:
        raise CheckpointError(f"{path}: its model card ('{META_KEY}' metadata) is not readable JSON ({exc}); "
                              f"the file is damaged or was edited") from None
    try:
        return ModelCard.from_dict(data, str(path))
    except CardError as exc:
        raise CheckpointError(str(exc)) from None


def load_weights(model: torch.nn.Module, path: str | Path, pretrained: str | Path | None = None,
                 card: ModelCard | None = None, own: bool = False) -> Backbone | None:
    """Load an apt-video weights file into ``model``: when it holds only trained tensors, first its
    backbone, ``pretrained`` or else the one its card names (whose sha256 must match). Returns the
    backbone used (None for a file that holds every tensor). What the file holds is read from its
    header, not inferred from the card: files written before cards recorded the backbone hold only
    the trained tensors, yet their cards name none. ``own``: ``model`` was built from this file's
    card, whose classes must then match the head (``load_pretrained``)."""
    card = card or read_card(path)
    backbone = None
    partial = card.contents == "trained" or _header(path).get(APT_FORMAT_KEY) == APT_PARTIAL
    if pretrained and not partial:
        raise CheckpointError(f"{path}: holds every tensor, its backbone too, so a pretrained backbone "
                              f"({pretrained}) has no place; leave out --pretrained")
    if partial:
        src = resolve_weights(pretrained) if pretrained else (card.pretrained.path if card.pretrained else None)
        if not src:
            raise CheckpointError(f"{path}: holds only the trained tensors and names no pretrained backbone; "
                                  f"pass the backbone checkpoint (--pretrained)")
        if not Path(src).is_file():
            raise CheckpointError(f"{path}: its backbone {src} is not there; pass it with --pretrained")
        backbone = backbone_record(src)
        if card.pretrained and backbone.sha256 != card.pretrained.sha256:
            if pretrained is None:
                raise CheckpointError(f"{src}: sha256 differs from the one recorded in {path} at training time")
            log.warning("%s: not the backbone %s was trained on (sha256 differs); using it as asked", src, path)
        load_pretrained(model, src)
    load_pretrained(model, path, own=own)
    return backbone


def load_any(model: torch.nn.Module, path: str | Path) -> tuple[LoadReport | None, Backbone]:
    """``--finetune``: an apt-video weights file (its backbone too) or any supported checkpoint,
    also a Hugging Face model id or folder (``models.hub``). Returns the report (None for apt-video
    files) and the record of the backbone the model now has."""
    path = resolve_weights(path)
    try:
        card = read_card(path)
    except CheckpointError:
        card = None
    if card is not None:
        backbone = load_weights(model, path, card=card)
        return None, backbone or backbone_record(path)
    return load_pretrained(model, path), backbone_record(path)


def build_from_trained(path: str | Path, pretrained: str | Path | None = None) -> tuple[torch.nn.Module, ModelCard]:
    """Rebuild the model of a weights file, in eval mode: the architecture from its card, then
    ``load_weights``. Returns ``(model, card)``."""
    card = read_card(path)
    model = create_model(card.model, **card.model_overrides)
    load_weights(model, path, pretrained, card, own=True)
    return model.eval(), card


def hf_source(spec: str | Path) -> Path | None:
    """The Hugging Face model folder ``spec`` names: a ``save_pretrained`` folder, a weights file in
    one, or a model id (fetched into the cache when not there: ``models.hub``); else None."""
    p = Path(spec)
    if p.is_dir():
        return p if is_hf_folder(p) else None
    if p.is_file():
        return p.parent if p.name in HF_WEIGHTS and is_hf_folder(p.parent) else None
    if is_hub_id(spec):
        folder = resolve_weights(spec).parent
        return folder if is_hf_folder(folder) else None
    return None


@dataclass(frozen=True)
class CardFill:
    """What a downloaded model's files do not say, given by the user: how to sample and view its
    clips (``clip``: a preset's, ``--preset``) and its class names (``classes``: ``--classes``).
    apt-video's own weights carry both in their card, so a fill is refused for them."""

    clip: ClipSpec | None = None
    classes: tuple[str, ...] | None = None

    def __bool__(self) -> bool:
        return self.clip is not None or self.classes is not None


def _apt_weights(spec: str | Path) -> Path | None:
    """``find_weights``, less a ``.safetensors`` file without apt-video's card (a converted VideoMAE
    checkpoint: ``checkpoint_card`` reads it)."""
    weights = find_weights(spec)
    if weights is not None and Path(spec).is_file() and META_KEY not in _header(weights):
        return None
    return weights


def _no_fill(spec: str | Path, fill: CardFill | None) -> None:
    if fill:
        raise CheckpointError(f"{spec}: an apt-video model; its card holds its clip and class names, so "
                              f"--preset and --classes have no place (--views sets the test views)")


def describe(spec: str | Path, fill: CardFill | None = None) -> tuple[ModelCard, Path] | None:
    """The card and weights file of the model ``spec`` names, nothing loaded: an apt-video weights
    file or run folder; a Hugging Face VideoMAE classifier as downloaded; or a VideoMAE or APT
    classifier checkpoint file (``.pth``). ``fill`` gives what a downloaded model's files do not
    say (the clip's sampling and views; the class names). None when ``spec`` is none of these."""
    fill = fill or CardFill()
    weights = _apt_weights(spec)
    if weights is not None:
        _no_fill(spec, fill)
        return read_card(weights), weights
    classes = list(fill.classes) if fill.classes is not None else None
    folder = hf_source(spec)
    if folder is not None:
        card = hf_card(folder, fill.clip)
        if classes is not None:
            if len(classes) != card.num_classes:
                raise CheckpointError(f"{folder}: id2label has {card.num_classes} classes but {len(classes)} class "
                                      f"names were given (--classes)")
            card = dataclasses.replace(card, classes=classes)
        return card, resolve_weights(folder)
    if Path(spec).is_file() and Path(spec).suffix in CHECKPOINT_SUFFIXES:
        return checkpoint_card(spec, fill.clip, classes), Path(spec)
    return None


def open_model(spec: str | Path, pretrained: str | Path | None = None,
               fill: CardFill | None = None) -> tuple[torch.nn.Module, ModelCard, Path] | None:
    """The model ``spec`` names (see ``describe``) built and loaded, in eval mode, with its card and
    weights file; None when ``spec`` is none of the kinds. A downloaded classifier holds its
    backbone, so ``pretrained`` is refused for it; its head must have one row per class."""
    weights = _apt_weights(spec)
    if weights is not None:
        _no_fill(spec, fill)
        model, card = build_from_trained(weights, pretrained)
        return model, card, weights
    found = describe(spec, fill)
    if found is None:
        return None
    card, weights = found
    if pretrained:
        raise CheckpointError(f"{spec}: a downloaded classifier holds its backbone, so --pretrained has no "
                              f"place; leave it out")
    model = create_model(card.model, **card.model_overrides)
    load_pretrained(model, weights, own=True)
    return model.eval(), card, weights
