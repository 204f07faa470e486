"""The model card: the facts that travel with a trained model, as one typed record.

Written into every weights file by training, copied into ``model.json`` by the exporter, read by the
scorer: architecture and overrides, class names, the clip geometry and normalisation
(``ClipSpec``), the test views, the pretrained backbone (name, path, sha256) and where the run's
data lives. Like timm's ``PretrainedCfg``: nobody retypes these facts, everybody reads this record.
``to_dict``/``from_dict`` are its only serialisation (``from_dict`` also reads the flat layout of
format 1).
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field

# ImageNet statistics used by VideoMAE for normalisation, on 0..1 pixels
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SAMPLERS = ("dense", "segment")  # VideoMAE's kinetics.py (dense windows) and ssv2.py (TSN segments)
TRANSFER_TYPES = ("prompt", "linear", "end2end")
CARD_VERSION = 2
SHA256 = re.compile(r"[0-9a-f]{64}")

#: the clip's whole-number keys and their ranges (a card or config outside them is refused when read)
CLIP_RANGES = {"num_frames": (1, 256), "sampling_rate": (1, 64), "input_size": (16, 1024),
               "test_num_segment": (1, 100), "test_num_crop": (1, 10)}
#: the keyword overrides of ``create_model`` a card may hold: type and range (None: any value of the type)
OVERRIDES = {
    "num_classes": (int, 1, 100_000), "num_frames": (int, 1, 256), "img_size": (int, 16, 1024),
    "patch_size": (int, 1, 64), "in_chans": (int, 3, 3), "tubelet_size": (int, 1, 16),
    "embed_dim": (int, 8, 4096), "depth": (int, 1, 64), "num_heads": (int, 1, 64), "mlp_ratio": (float, 0.25, 16),
    "qkv_bias": (bool, None, None), "norm_eps": (float, 1e-12, 1e-2), "head_norm_eps": (float, 1e-12, 1e-2),
    "drop_rate": (float, 0, 0.99),
    "attn_drop_rate": (float, 0, 0.99), "drop_path_rate": (float, 0, 0.99), "fc_drop_rate": (float, 0, 0.99),
    "init_scale": (float, 1e-12, 10), "transfer_type": (str, None, None), "prompt_num_tokens": (int, 0, 4096),
    "prompt_start": (int, 0, 63), "prompt_end": (int, 0, 63), "prompt_dropout": (float, 0, 0.99),
    "prompt_reparam": (bool, None, None), "prompt_init": (str, None, None),
}


def class_names(n: int) -> list[str]:
    """The names of ``n`` classes that no file names: ``class_0``, ``class_1``, ... (a list file's
    numbers, a downloaded checkpoint without ``--classes``)."""
    return [f"class_{i}" for i in range(n)]


class CardError(ValueError):
    """A model card that cannot be read: the message names the key."""


def check_value(key: str, value, kind: type, lo=None, hi=None):
    """``value`` if it is a ``kind`` (int, float, bool, str; an int is a float, a bool is neither)
    within ``[lo, hi]`` and finite, else ``ValueError`` naming ``key``. Returns floats as float."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = {int: isinstance(value, int) and not isinstance(value, bool), float: is_number,
          bool: isinstance(value, bool), str: isinstance(value, str)}[kind]
    if not ok:
        what = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}[kind]
        raise ValueError(f"{key}={value!r} must be {what}")
    if kind is float:
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{key}={value!r} must be a finite number")
    if lo is not None and not lo <= value <= hi:
        raise ValueError(f"{key}={value!r} must be in [{lo}, {hi}]")
    return value


@dataclass(frozen=True)
class ClipSpec:
    """What one clip is: frames, temporal sampling, input size, test views and normalisation."""

    num_frames: int = 16
    sampling_rate: int = 4
    input_size: int = 224
    sampler: str = "dense"  # one of SAMPLERS
    test_num_segment: int = 10
    test_num_crop: int = 3
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self):
        for name, (lo, hi) in CLIP_RANGES.items():
            check_value(name, getattr(self, name), int, lo, hi)
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler={self.sampler!r}; choose one of {', '.join(repr(s) for s in SAMPLERS)}")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if not isinstance(values, (list, tuple)) or len(values) != 3:
                shown = list(values) if isinstance(values, (list, tuple)) else values
                raise ValueError(f"{name}={shown!r} must be 3 finite numbers (R, G, B, on 0..1 pixels)")
            try:
                object.__setattr__(self, name, tuple(check_value(name, v, float) for v in values))
            except ValueError:
                raise ValueError(f"{name}={list(values)!r} must be 3 finite numbers (R, G, B, on 0..1 "
                                 f"pixels)") from None
        if not all(0 <= v <= 1 for v in self.mean):
            raise ValueError(f"mean={list(self.mean)} must lie in [0, 1] (on 0..1 pixels)")
        if not all(v > 0 for v in self.std):
            raise ValueError(f"std={list(self.std)} must be greater than 0 (the clip is divided by it)")

    @property
    def num_views(self) -> int:
        return self.test_num_segment * self.test_num_crop

    def with_views(self, segments: int, crops: int) -> ClipSpec:
        return dataclasses.replace(self, test_num_segment=segments, test_num_crop=crops)


@dataclass(frozen=True)
class Backbone:
    """The pretrained weights a run started from."""

    name: str
    path: str
    sha256: str


@dataclass
class ModelCard:
    """Everything a trained model's users need besides its tensors."""

    model: str  # registered architecture
    model_overrides: dict  # keyword overrides of create_model (num_classes, prompts, geometry, ...)
    classes: list[str]
    transfer_type: str = "prompt"  # prompt | linear | end2end
    clip: ClipSpec = field(default_factory=ClipSpec)
    pretrained: Backbone | None = None
    data: dict | None = None  # {"root", "val_list", "test_list"} of the training run
    epoch: int | None = None
    val_top1: float | None = None

    @property
    def contents(self) -> str:
        """``full`` when the weights hold every tensor (end2end, or a run without a pretrained
        backbone, whose random backbone is part of the model), ``trained`` when only what the run
        trained (the backbone comes from ``pretrained``)."""
        return "full" if self.transfer_type == "end2end" or self.pretrained is None else "trained"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["clip"] = {**d["clip"], "mean": list(self.clip.mean), "std": list(self.clip.std)}
        return {"card_version": CARD_VERSION, **d}

    @classmethod
    def from_dict(cls, d: dict, where: str = "model card") -> ModelCard:
        """The card of ``d``, every value checked (type, range, finiteness, agreement between the
        class list and the head, the overrides and the clip); ``CardError`` names the key."""
        try:
            if not isinstance(d, dict):
                raise ValueError(f"expected a mapping, got {type(d).__name__}")
            if "clip" in d:
                if not isinstance(d["clip"], dict):
                    raise ValueError("clip must be a mapping")
                unknown = sorted(set(d["clip"]) - {f.name for f in dataclasses.fields(ClipSpec)})
                if unknown:
                    raise ValueError(f"clip has unknown key {unknown[0]!r}")
                clip = ClipSpec(**d["clip"])
            else:  # format 1: the clip's keys at the top level
                clip = ClipSpec(**{k: d[k] for k in ("num_frames", "sampling_rate", "input_size", "test_num_segment",
                                                     "test_num_crop", "mean", "std")},
                                sampler=d.get("sampler", "dense"))
            card = cls(model=check_value("model", d["model"], str), model_overrides=_overrides(d["model_overrides"]),
                       classes=_classes(d["classes"]), transfer_type=d.get("transfer_type", "prompt"), clip=clip,
                       pretrained=_backbone(d.get("pretrained")), data=_data(d.get("data")),
                       epoch=None if d.get("epoch") is None else check_value("epoch", d["epoch"], int, 0, 10**9),
                       val_top1=None if d.get("val_top1") is None else check_value("val_top1", d["val_top1"], float,
                                                                                  0, 100))
            card.check()
            return card
        except KeyError as exc:
            raise CardError(f"{where}: the model card lacks {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise CardError(f"{where}: the model card is not valid ({exc}); export or train the model again, "
                            f"or correct the file") from None

    def check(self) -> None:
        """The card agrees with itself: ``ValueError`` naming the first pair of keys that do not."""
        if self.transfer_type not in TRANSFER_TYPES:
            raise ValueError(f"transfer_type={self.transfer_type!r}; choose one of {', '.join(TRANSFER_TYPES)}")
        o = self.model_overrides
        pairs = (("num_classes", len(self.classes), "classes"), ("num_frames", self.clip.num_frames, "clip.num_frames"),
                 ("img_size", self.clip.input_size, "clip.input_size"),
                 ("transfer_type", self.transfer_type, "transfer_type"))
        for key, value, other in pairs:
            if key in o and o[key] != value:
                raise ValueError(f"model_overrides.{key}={o[key]!r} but {other} gives {value!r}")


def _overrides(value) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"model_overrides={value!r} must be a mapping")
    out = {}
    for key, v in value.items():
        if key not in OVERRIDES:
            raise ValueError(f"model_overrides has unknown key {key!r}")
        kind, lo, hi = OVERRIDES[key]
        out[key] = check_value(f"model_overrides.{key}", v, kind, lo, hi)
    if out.get("transfer_type", "prompt") not in TRANSFER_TYPES:
        raise ValueError(f"model_overrides.transfer_type={out['transfer_type']!r}; choose one of "
                         f"{', '.join(TRANSFER_TYPES)}")
    return out


def _classes(value) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ValueError("classes must be a non-empty list of names")
    seen = set()
    for i, name in enumerate(value):
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"classes[{i}]={name!r} must be a non-empty name")
        if name in seen:
            raise ValueError(f"classes[{i}]={name!r} is listed twice")
        seen.add(name)
    return list(value)


def _backbone(value) -> Backbone | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"pretrained={value!r} must be a mapping of name, path, sha256")
    rec = Backbone(*(check_value(f"pretrained.{k}", value[k], str) for k in ("name", "path", "sha256")))
    if not SHA256.fullmatch(rec.sha256):
        raise ValueError(f"pretrained.sha256={rec.sha256!r} must be 64 hexadecimal digits")
    return rec


def _data(value) -> dict | None:
    if value is not None and not (isinstance(value, dict) and all(
            isinstance(k, str) and (v is None or isinstance(v, (str, int))) for k, v in value.items())):
        raise ValueError(f"data={value!r} must be a mapping of names to paths")
    return value
