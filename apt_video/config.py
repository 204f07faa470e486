"""Training configuration: one dataclass, YAML presets in ``configs/`` that mirror it one-to-one,
``--config FILE.yaml`` and ``--set key=value`` overrides, validated before any work starts.

The clip (frames, sampling rate, input size, sampler, test views, normalisation) is one
``models.ClipSpec`` under the key ``clip``; the keys a preset, file or ``--set clip.KEY=VALUE``
leaves out take the architecture's default (``models.default_clip``, as timm's ``pretrained_cfg``)."""
from __future__ import annotations

import dataclasses
import difflib
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from apt_video.models.card import ClipSpec
from apt_video.pipeline.datasets import HELD_OUT, PARTS, RunData
from apt_video.pipeline.randaug import VIDEOMAE_RAND_AUGMENT

# installed (pip install .): the presets ship as package data in apt_video/presets; in a source
# checkout or an editable install they are read from the top-level configs/ folder
_PACKAGED = Path(__file__).resolve().parent / "presets"
CONFIG_DIR = _PACKAGED if (_PACKAGED / "hmdb51.yaml").is_file() else Path(__file__).resolve().parent.parent / "configs"
PRESETS = ("hmdb51", "ucf101", "ssv2", "kinetics400", "demo", "demo_backbone")
OPTIMIZERS = ("adamw", "adam", "sgd")  # adamw: APT's (decoupled decay); adam: torch Adam with L2 decay
AMP_MODES = ("auto", "bf16", "fp16", "none")  # auto: bf16 on a GPU, fp32 on the CPU


#: upper bounds of keys whose range has no natural top (a typo such as epochs=1e12 would otherwise
#: allocate a schedule of terabytes, batch sizes of 10^30 a batch that never fills)
UPPER_BOUNDS = {"epochs": 100_000, "warmup_epochs": 100_000, "batch_size": 65_536, "val_batch_size": 65_536,
                "test_batch_size": 65_536, "update_freq": 1024, "num_sample": 64, "num_workers": 256,
                "num_threads": 1024, "nb_classes": 100_000, "prompt_num_tokens": 4096, "tubelet_size": 16,
                "eval_freq": 100_000, "lr_scale_batch": 1 << 20, "split": 100, "lr": 1e4, "warmup_lr": 1e4,
                "min_lr": 1e4, "weight_decay": 1e4, "init_scale": 10.0, "clip_grad": 1e6}


def _numbers(values, n: int) -> bool:
    """``values`` is a list of ``n`` finite numbers (no strings, no booleans)."""
    return isinstance(values, (list, tuple)) and len(values) == n and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)


class ConfigError(ValueError):
    """A bad key or value: the message names it and says what is allowed."""


@dataclass
class TrainConfig:
    # model
    model: str = "vit_base_patch16_224"
    nb_classes: int = 0  # 0: the number of classes of the dataset
    tubelet_size: int = 2
    #: the clip: frames, sampling rate, input size, sampler, test views, normalisation (keys left
    #: out take the architecture's default clip)
    clip: ClipSpec = field(default_factory=ClipSpec)
    drop_path: float = 0.0
    fc_drop_rate: float = 0.0
    init_scale: float = 0.001
    attn_impl: str = "sdpa"
    # transfer
    transfer_type: str = "prompt"
    prompt_num_tokens: int = 200
    prompt_start: int = 0
    prompt_end: int = 11
    prompt_dropout: float = 0.1
    prompt_reparam: bool = True
    prompt_init: str = "random"
    # data
    data_set: str = "UCF101"
    train_list: str = "train.csv"
    val_list: str = "val.csv"
    test_list: str = "test.csv"
    split: int = 0  # 0: the list files above; N: split N of the official layout at --data-root (UCF101, ...)
    splits: str = ""  # folder of the official split files (default: found inside or beside --data-root)
    aa: str = VIDEOMAE_RAND_AUGMENT
    aa_interp: str = "bilinear"  # resampling of RandAugment's geometric ops: bilinear or nearest
    aa_region: str = "frame"  # RandAugment on the full decoded frame (VideoMAE) or on the crop (crop-wide stats)
    color_jitter: float = 0.4  # recorded from the paper's table, never applied (as in VideoMAE)
    flip: bool = True
    crop_scale: list = field(default_factory=lambda: [0.08, 1.0])  # random resized crop area range
    reprob: float = 0.0
    num_sample: int = 2
    num_workers: int = 2
    num_threads: int = 0  # DALI's thread pool; 0: the host's cores per local rank (pipeline.loader.default_threads)
    dali_executor: str = "dynamic"  # CPU pipelines: one of EXECUTORS (dynamic: level memory; pipelined: faster)
    # the longest side decoded at its native size, by either decode route; longer videos are scaled
    # down to it while decoding (pipeline.video.MAX_SIDE: 1920, a 16-frame 1080p clip is 100 MB)
    decode_max_side: int = 1920
    # optimisation
    batch_size: int = 8
    val_batch_size: int = 8
    test_batch_size: int = 2
    epochs: int = 200
    update_freq: int = 1
    opt: str = "adamw"  # APT's code maps adam and adamw to decoupled decay (AdamW); adam = torch Adam, L2
    opt_eps: float = 1e-8
    opt_betas: list = field(default_factory=lambda: [0.9, 0.999])
    momentum: float = 0.9
    weight_decay: float = 1e-5
    lr: float = 0.3
    lr_scale_batch: int = 256  # lr, warmup_lr and min_lr scale by global batch / this (0: no scaling)
    # the reference's videos per optimiser step (its GPUs x batch_size x update_freq; 0: not known):
    # only reported at the start of a run, beside this run's, with the update_freq that matches it
    paper_global_batch: int = 0
    warmup_lr: float = 0.0  # the reference parses warmup_lr but its schedule starts at 0
    min_lr: float = 1e-6
    warmup_epochs: int = 5
    clip_grad: typing.Optional[float] = None
    smoothing: float = 0.1
    amp: str = "auto"  # auto: bf16 on GPU, fp32 on CPU; or bf16, fp16, none
    seed: int = 0
    eval_freq: int = 1
    final_test: bool = True
    # shares of each class's training videos held out for validation and test (apt_video.holdout);
    # with either above 0, val_list and test_list stay empty
    val_split: float = 0.0
    test_split: float = 0.0

    def validate(self) -> TrainConfig:
        # PyTorch and the network: the model is built on the meta device to check the prompt layers;
        # imported here, as the command line reads this module for its --help
        import torch

        from apt_video.models import TRANSFER_TYPES, create_model, list_models
        from apt_video.models.vit import ATTN_IMPLS
        from apt_video.pipeline.graphs import AA_REGIONS
        from apt_video.pipeline.loader import EXECUTORS
        from apt_video.pipeline.randaug import INTERPOLATIONS, parse_rand_augment

        def need(cond, key, allowed):
            if not cond:
                value = getattr(self.clip, key[5:]) if key.startswith("clip.") else getattr(self, key)
                raise ConfigError(f"{key}={value!r}: {allowed}")

        need(self.model in list_models(), "model", f"choose one of {', '.join(list_models())}")
        need(self.transfer_type in TRANSFER_TYPES, "transfer_type", f"choose one of {TRANSFER_TYPES}")
        need(self.opt in OPTIMIZERS, "opt", f"choose one of {', '.join(OPTIMIZERS)}")
        need(self.amp in AMP_MODES, "amp", f"choose one of {', '.join(AMP_MODES)}")
        need(self.attn_impl in ATTN_IMPLS, "attn_impl", f"choose one of {', '.join(ATTN_IMPLS)}")
        need(self.aa_interp in INTERPOLATIONS, "aa_interp", f"choose one of {', '.join(INTERPOLATIONS)}")
        need(self.dali_executor in EXECUTORS, "dali_executor", f"choose one of {', '.join(EXECUTORS)}")
        need(self.aa_region in AA_REGIONS, "aa_region", f"choose one of {', '.join(AA_REGIONS)}")
        need(self.prompt_init == "random", "prompt_init", "only 'random' is implemented")
        for key in ("batch_size", "val_batch_size", "test_batch_size", "epochs", "update_freq", "num_sample",
                    "tubelet_size", "eval_freq"):
            need(getattr(self, key) >= 1, key, "must be at least 1")
        for key in ("prompt_num_tokens", "warmup_epochs", "nb_classes", "num_workers", "lr_scale_batch", "split",
                    "num_threads", "seed", "paper_global_batch"):
            need(getattr(self, key) >= 0, key, "must be >= 0")
        for key in ("lr", "weight_decay", "warmup_lr", "min_lr", "color_jitter", "prompt_start"):
            need(getattr(self, key) >= 0, key, "must be >= 0")
        for key in ("opt_eps", "init_scale"):
            need(getattr(self, key) > 0, key, "must be > 0")
        for key in ("prompt_dropout", "drop_path", "fc_drop_rate", "reprob", "smoothing", "momentum"):
            need(0 <= getattr(self, key) < 1, key, "must be in [0, 1)")
        need(self.clip_grad is None or self.clip_grad > 0, "clip_grad", "must be > 0 (or empty: no clipping)")
        for f in dataclasses.fields(self):  # NaN and infinity, in keys with or without a range above
            value = getattr(self, f.name)
            need(not isinstance(value, float) or math.isfinite(value), f.name, "must be a finite number")
        for key, top in UPPER_BOUNDS.items():
            need(getattr(self, key) is None or getattr(self, key) <= top, key, f"must be at most {top}")
        need(self.seed < 2**32, "seed", "must be in [0, 2**32)")
        need(64 <= self.decode_max_side <= 8192, "decode_max_side", "must be in [64, 8192] (pixels)")
        for key in ("val_split", "test_split"):
            need(0 <= getattr(self, key) < 1, key, "must be in [0, 1): the share of each class's videos held out")
        need(self.val_split + self.test_split < 1, "val_split", f"+ test_split={self.test_split} must be below 1")
        for key in HELD_OUT:
            need(not (self.val_split or self.test_split) or not getattr(self, f"{key}_list"), f"{key}_list",
                 f"must be empty when val_split or test_split hold the {key} videos out of the training videos")
        need(self.prompt_start <= self.prompt_end, "prompt_start", f"must be <= prompt_end={self.prompt_end}")
        need(self.warmup_epochs <= self.epochs, "warmup_epochs", f"must be <= epochs={self.epochs}")
        need(self.clip.num_frames % self.tubelet_size == 0, "clip.num_frames",
             f"must be a multiple of tubelet_size={self.tubelet_size}")
        need(_numbers(self.crop_scale, 2) and 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1, "crop_scale",
             "two numbers 0 < min <= max <= 1")
        need(_numbers(self.opt_betas, 2) and all(0 <= b < 1 for b in self.opt_betas), "opt_betas",
             "two numbers in [0, 1)")
        if self.aa:
            try:
                parse_rand_augment(self.aa, self.aa_interp)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        try:  # the architecture takes these overrides (patch size, depth for the prompt layers, ...)
            with torch.device("meta"):
                create_model(self.model, **self.model_overrides(max(self.nb_classes, 1)))
        except ValueError as exc:
            raise ConfigError(f"{self.model}: {exc}") from None
        return self

    def run_data(self, root: str | Path) -> RunData:
        """Where this run's parts come from, under ``root``: the split of an official layout, or the
        list files."""
        return RunData(Path(root), {part: getattr(self, f"{part}_list") for part in PARTS}, self.split, self.splits)

    def model_overrides(self, num_classes: int) -> dict:
        """Keyword overrides for ``models.create_model`` (what the checkpoint metadata records)."""
        kw = dict(num_classes=num_classes, num_frames=self.clip.num_frames, img_size=self.clip.input_size,
                  tubelet_size=self.tubelet_size, drop_path_rate=self.drop_path, fc_drop_rate=self.fc_drop_rate,
                  init_scale=self.init_scale, transfer_type=self.transfer_type)
        if self.transfer_type == "prompt":
            kw.update(prompt_num_tokens=self.prompt_num_tokens, prompt_start=self.prompt_start,
                      prompt_end=self.prompt_end, prompt_dropout=self.prompt_dropout,
                      prompt_reparam=self.prompt_reparam, prompt_init=self.prompt_init)
        return kw

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["clip"] = {k: list(v) if isinstance(v, tuple) else v for k, v in out["clip"].items()}
        return out


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
CLIP_FIELDS = {f.name: f for f in dataclasses.fields(ClipSpec)}  # the keys under clip


#: a decimal number as written by hand: YAML 1.1 reads ``1e-4`` (no dot) as a string, not a float
DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _float(value) -> float:
    """``value`` as a float: a number (not a bool), or a decimal written as text (``1e-4``)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and DECIMAL.fullmatch(value.strip()):
        return float(value)
    raise TypeError


def _coerce(owner: type, key: str, value, where: str, name: str | None = None):
    """``value`` as the type of ``owner``'s field ``key`` (``name``: the key as the user writes it)."""
    name = name or key
    kind = typing.get_type_hints(owner)[key]
    if value is None:
        if typing.get_origin(kind) is typing.Union and type(None) in typing.get_args(kind):
            return None
        raise ConfigError(f"{where}: {name} cannot be empty")
    if typing.get_origin(kind) is typing.Union:  # Optional[X]: X
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    base = typing.get_origin(kind) or kind
    try:
        if base is tuple and isinstance(value, (list, tuple)):
            return tuple(_float(v) for v in value)
        if base is bool:
            if isinstance(value, bool):
                return value
            raise TypeError
        if base is float:
            return _float(value)
        if base is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if base is str and isinstance(value, str):
            return value
        if base is list and isinstance(value, list):  # the number pairs: text decimals read as numbers
            return [v if isinstance(v, bool) or not isinstance(v, str) or not DECIMAL.fullmatch(v.strip())
                    else float(v) for v in value]
        if base is str and isinstance(value, (int, float)):
            return str(value)
        raise TypeError
    except TypeError:
        what = "a list of numbers" if base is tuple else base.__name__
        raise ConfigError(f"{where}: {name}={value!r} must be {what}") from None


def apply(cfg: dict, updates: dict, where: str) -> dict:
    """Set ``updates`` (key -> value; ``clip`` a mapping, or ``clip.KEY``) into ``cfg``, each
    value checked against its field's type."""
    for key, value in updates.items():
        if key == DERIVED:
            continue  # what a run derived, written beside its settings for the record (``run_config``)
        if key == "clip":
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: clip must be a mapping of {', '.join(CLIP_FIELDS)}")
            for sub, v in value.items():
                _apply_clip(cfg, str(sub), v, where)
        elif key.startswith("clip."):
            _apply_clip(cfg, key[len("clip."):], value, where)
        elif key in FIELDS:
            cfg[key] = _coerce(TrainConfig, key, value, where)
        else:
            keys = [*(k for k in FIELDS if k != "clip"), *(f"clip.{k}" for k in CLIP_FIELDS)]
            close = ([f"clip.{key}"] if key in CLIP_FIELDS else []) or difflib.get_close_matches(key, keys, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")
    return cfg


def _apply_clip(cfg: dict, key: str, value, where: str) -> None:
    if key not in CLIP_FIELDS:
        close = difflib.get_close_matches(key, CLIP_FIELDS, n=3)
        hint = f"; did you mean {', '.join(f'clip.{c}' for c in close)}?" if close else ""
        raise ConfigError(f"{where}: unknown key 'clip.{key}'{hint}")
    cfg.setdefault("clip", {})[key] = _coerce(ClipSpec, key, value, where, f"clip.{key}")


def load_config(preset: str | None = None, config_file: str | None = None,
                sets: list[str] | None = None, varied: list[str] | None = None) -> TrainConfig:
    """Preset, then config file, then ``--set key=value`` (values read as YAML), then the sweep's
    ``varied`` ``key=value`` items (named ``--vary`` in messages), then validated."""
    cfg: dict = {}
    if preset:
        path = CONFIG_DIR / f"{preset}.yaml"
        if not path.is_file():
            raise ConfigError(f"--preset {preset!r}: choose one of {', '.join(PRESETS)}")
        apply(cfg, yaml.safe_load(path.read_text()) or {}, str(path))
    if config_file:
        try:
            data = yaml.safe_load(Path(config_file).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{config_file}: cannot read ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{config_file}: expected a mapping of key: value")
        apply(cfg, data, config_file)
    for option, item in [("--set", i) for i in sets or []] + [("--vary", i) for i in varied or []]:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"{option} {item!r}: expected key=value")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        apply(cfg, {key.strip(): value}, f"{option} {item}")
    return resolve(cfg)


def resolve(cfg: dict) -> TrainConfig:
    """The config of the keys in ``cfg`` (the rest at their defaults; the clip keys left out at the
    architecture's), validated."""
    from apt_video.models import default_clip, list_models

    given = dict(cfg)
    clip = given.pop("clip", {})
    config = TrainConfig(**given)
    base = default_clip(config.model) if config.model in list_models() else ClipSpec()
    try:
        config.clip = dataclasses.replace(base, **clip)
    except ValueError as exc:  # ClipSpec's own checks name the key
        raise ConfigError(f"clip.{exc}") from None
    return config.validate()


def dump_config(cfg: TrainConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


#: the key of a run's config.yaml that holds what the run derived from its settings (ignored when read)
DERIVED = "derived"


@dataclass(frozen=True)
class LrScaling:
    """VideoMAE's linear scaling rule for one run: the base rates times videos per optimiser step
    (``batch_size x update_freq x world``; repeated augmentations do not count) over ``lr_scale_batch``."""

    global_batch: int
    lr: float
    min_lr: float
    warmup_lr: float
    paper_global_batch: int
    #: the update_freq that gives the paper's global batch with this batch size and world (None: none does)
    matching_update_freq: int | None

    def describe(self, cfg: TrainConfig, world: int) -> str:
        """The line a run starts with."""
        text = (f"lr {self.lr:.4g} (lr {cfg.lr:g} x global batch {self.global_batch} / {cfg.lr_scale_batch or 1}; "
                f"global batch = batch_size {cfg.batch_size} x update_freq {cfg.update_freq} x {world} "
                f"process{'es' if world > 1 else ''})")
        if not cfg.lr_scale_batch:
            text = f"lr {self.lr:.4g} as given (lr_scale_batch 0: not scaled); global batch {self.global_batch}"
        if self.paper_global_batch and self.paper_global_batch != self.global_batch:
            ratio = self.paper_global_batch / (cfg.lr_scale_batch or self.paper_global_batch)
            text += f"; the paper's global batch is {self.paper_global_batch} (lr {cfg.lr * ratio:.4g})"
            if self.matching_update_freq:
                text += f": --set update_freq={self.matching_update_freq} matches it here"
            else:
                text += ": no update_freq matches it with this batch_size and world"
        return text


def lr_scaling(cfg: TrainConfig, world: int) -> LrScaling:
    global_batch = cfg.batch_size * cfg.update_freq * world
    scale = global_batch / cfg.lr_scale_batch if cfg.lr_scale_batch else 1.0
    per_step = cfg.batch_size * world
    paper = cfg.paper_global_batch
    match = paper // per_step if paper and paper % per_step == 0 else None
    return LrScaling(global_batch, cfg.lr * scale, cfg.min_lr * scale, cfg.warmup_lr * scale, paper, match)


def run_config(cfg: TrainConfig, world: int) -> str:
    """A run's config.yaml: its settings (readable back with ``--config``), then under ``derived``
    what it made of them on this host (ignored when read)."""
    s = lr_scaling(cfg, world)
    derived = {"world_size": world, "global_batch": s.global_batch, "effective_lr": s.lr, "effective_min_lr": s.min_lr,
               "effective_warmup_lr": s.warmup_lr, "paper_global_batch": s.paper_global_batch}
    return dump_config(cfg) + yaml.safe_dump({DERIVED: derived}, sort_keys=False)
