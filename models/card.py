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
from dataclasses import dataclass, field

# ImageNet statistics used by VideoMAE for normalisation, on 0..1 pixels
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SAMPLERS = ("dense", "segment")  # VideoMAE's kinetics.py (dense windows) and ssv2.py (TSN segments)
CARD_VERSION = 2


class CardError(ValueError):
    """A model card that cannot be read: the message names the key."""


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
        for name in ("num_frames", "sampling_rate", "input_size", "test_num_segment", "test_num_crop"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler={self.sampler!r}; choose one of {', '.join(repr(s) for s in SAMPLERS)}")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) != 3 or not all(math.isfinite(v) for v in values):
                raise ValueError(f"{name}={list(values)} must be 3 finite numbers (R, G, B, on 0..1 pixels)")
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
        try:
            if "clip" in d:
                clip = ClipSpec(**d["clip"])
            else:  # format 1: the clip's keys at the top level
                clip = ClipSpec(**{k: d[k] for k in ("num_frames", "sampling_rate", "input_size", "test_num_segment",
                                                     "test_num_crop", "mean", "std")},
                                sampler=d.get("sampler", "dense"))
            pre = d.get("pretrained")
            return cls(model=d["model"], model_overrides=dict(d["model_overrides"]), classes=list(d["classes"]),
                       transfer_type=d.get("transfer_type", "prompt"), clip=clip,
                       pretrained=Backbone(pre["name"], pre["path"], pre["sha256"]) if pre else None,
                       data=d.get("data"), epoch=d.get("epoch"), val_top1=d.get("val_top1"))
        except KeyError as exc:
            raise CardError(f"{where}: the model card lacks {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise CardError(f"{where}: the model card is not valid ({exc})") from None
