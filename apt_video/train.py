"""Prompt-tuning VideoMAE with the DALI loader: ``forward_backward`` and ``optimizer_step`` (one
step, as APT's engine takes it), ``train_one_epoch``, ``evaluate``, ``final_test``, ``train``.

Plain functions in the torchvision-reference style. One process per GPU (or one CPU process) under
``torchrun``; every rank reads its shard of each split; only rank 0 writes. A run folder holds
``config.yaml``, ``metrics.csv``, ``tb/`` (TensorBoard), ``checkpoints/{last,best}.safetensors``
(trained tensors + the model card), ``checkpoints/last_state.pt`` (everything needed to resume,
in one atomic file), ``skipped.csv`` and, at the end, ``test_metrics.json`` (``runfolder``: those
files, and resuming from them).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from apt_video import holdout, models
from apt_video.models import ModelCard
from apt_video.models.files import atomic_write_text
from apt_video.pipeline.data import DataError, VideoEntry, class_names
from apt_video.pipeline.datasets import HELD_OUT, RunData, open_dataset
from apt_video.pipeline.graphs import AugmentSpec
from apt_video.pipeline.loader import VideoLoader
from apt_video.pipeline.probe import load_manifest
from apt_video.pipeline.randaug import parse_rand_augment

from .config import ConfigError, TrainConfig, lr_scaling, run_config
from .distributed import Dist, setup_distributed
from .evaluate import accuracy_report, merge_views, topk_correct
from .runfolder import load_backbone, load_state, remove_run, restore, save_state, write_metrics, write_skipped

log = logging.getLogger(__name__)


def amp_settings(amp: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """``(autocast dtype or None, use a grad scaler)``: bf16 on GPU by default, fp32 on CPU."""
    if device.type != "cuda" or amp == "none":
        return None, False
    if amp == "fp16":
        return torch.float16, True
    return torch.bfloat16, False


# -- schedule and optimiser -------------------------------------------------------------------------
def cosine_schedule(base: float, final: float, epochs: int, steps_per_epoch: int, warmup_epochs: int,
                    warmup_start: float) -> np.ndarray:
    """Per-step values: linear warmup from ``warmup_start`` to ``base`` over ``warmup_epochs``, then
    a half cosine from ``base`` down to ``final`` (VideoMAE's ``cosine_scheduler``)."""
    warm = warmup_epochs * steps_per_epoch
    warmup = np.linspace(warmup_start, base, warm) if warm > 0 else np.array([])
    rest = np.arange(epochs * steps_per_epoch - warm)
    cosine = final + 0.5 * (base - final) * (1 + np.cos(np.pi * rest / max(len(rest), 1)))
    return np.concatenate([warmup, cosine])


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Trainable parameters; biases and 1-D tensors (norms, prompt scales if 1-D) get no decay."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay)
    if cfg.opt == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    cls = torch.optim.AdamW if cfg.opt == "adamw" else torch.optim.Adam
    return cls(groups, lr=cfg.lr, eps=cfg.opt_eps, betas=tuple(cfg.opt_betas))


# -- one step and one epoch ----------------------------------------------------------------------------
#: batches between checks that the running loss is finite (each check waits for the device)
FINITE_CHECK_EVERY = 20


def set_lr(optimizer: torch.optim.Optimizer, lr_values: np.ndarray, step: int) -> float:
    """Set every group's lr to the schedule's value at optimiser ``step`` (the last one past the end)."""
    lr = float(lr_values[min(step, len(lr_values) - 1)])
    for g in optimizer.param_groups:
        g["lr"] = lr
    return lr


def forward_backward(net, video: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig, scaler=None,
                     amp_dtype: torch.dtype | None = None, sync: bool = True,
                     weight: torch.Tensor | None = None) -> torch.Tensor:
    """One micro-batch: label-smoothed cross entropy of ``net(video)`` (``(B, 3, T, S, S)``
    normalised), backward of ``loss / update_freq``. ``sync=False`` skips DDP's gradient all-reduce
    (an accumulation step); ``weight`` (all zeros) makes a placeholder batch that only keeps the
    ranks in step. Returns the mean loss, detached, on the device (no host sync)."""
    ctx = net.no_sync() if (not sync and hasattr(net, "no_sync")) else nullcontext()
    device_type = video.device.type
    with ctx, torch.autocast(device_type, dtype=amp_dtype, enabled=amp_dtype is not None):
        loss = F.cross_entropy(net(video), labels, label_smoothing=cfg.smoothing)
        if weight is not None:
            loss = loss * weight.to(loss.device).mean()
        scaled = loss / cfg.update_freq
        (scaler.scale(scaled) if scaler else scaled).backward()
    return loss.detach()


def optimizer_step(model, optimizer: torch.optim.Optimizer, scaler=None, clip_grad: float | None = None) -> None:
    """Apply the accumulated gradients (unscaled and clipped first where asked) and clear them."""
    if scaler:
        scaler.unscale_(optimizer)
    if clip_grad:
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], clip_grad)
    if scaler:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def train_one_epoch(model, loader: VideoLoader, optimizer, scaler, lr_values: np.ndarray, epoch: int,
                    cfg: TrainConfig, d: Dist, progress: bool = True) -> dict:
    model.train()
    amp_dtype, _ = amp_settings(cfg.amp, d.device)
    steps = len(loader) // cfg.update_freq
    # the running loss stays on the device: the host reads it every FINITE_CHECK_EVERY batches
    loss_sum = torch.zeros((), dtype=torch.float64, device=d.device)
    seen, t0, step = 0, time.perf_counter(), epoch * steps
    bar = tqdm(total=len(loader), desc=f"epoch {epoch}", unit="batch", disable=not (progress and d.main),
               leave=False)
    optimizer.zero_grad(set_to_none=True)
    for i, batch in enumerate(loader.epoch(epoch)):
        if i // cfg.update_freq >= steps:
            break  # an incomplete accumulation at the end of the epoch is not applied
        if i % cfg.update_freq == 0:
            set_lr(optimizer, lr_values, step)
        video = batch.video.to(d.device, non_blocking=True)
        labels = batch.labels.to(d.device, non_blocking=True)
        sync = (i + 1) % cfg.update_freq == 0
        loss = forward_backward(model, video, labels, cfg, scaler, amp_dtype, sync=sync or d.world == 1,
                                weight=batch.weight)
        if sync:
            optimizer_step(model, optimizer, scaler, cfg.clip_grad)
            step += 1
        if batch.weight is None:  # a placeholder batch (weight 0) is not part of the epoch's loss
            loss_sum += loss * len(labels)
            seen += len(labels)
        bar.update()
        if (i + 1) % FINITE_CHECK_EVERY == 0:
            _check_finite(loss_sum, epoch, i, optimizer)
            bar.set_postfix(loss=f"{loss_sum.item() / max(seen, 1):.3f}",
                            clips_s=f"{seen * d.world / (time.perf_counter() - t0):.1f}")
    bar.close()
    _check_finite(loss_sum, epoch, None, optimizer)
    loss_total, seen_all = d.sum([float(loss_sum), float(seen)])
    elapsed = time.perf_counter() - t0
    return {"train_loss": loss_total / max(seen_all, 1), "lr": optimizer.param_groups[0]["lr"],
            "clips_per_s": seen_all / elapsed if elapsed > 0 else 0.0}


def _check_finite(loss_sum: torch.Tensor, epoch: int, batch: int | None, optimizer) -> None:
    if not math.isfinite(float(loss_sum)):
        where = f"batch {batch}" if batch is not None else "the end of the epoch"
        raise FloatingPointError(f"the training loss became {float(loss_sum)} by epoch {epoch}, {where}: lower lr "
                                 f"(now {optimizer.param_groups[0]['lr']:.3g}) or set clip_grad; nothing of this "
                                 f"epoch was saved, "
                                 f"the checkpoints hold the last complete one")


def _check_trained_finite(model, epoch: int, ckpt: Path) -> None:
    """The trained tensors are finite after ``epoch``, else ``FloatingPointError`` (nothing of the
    epoch is saved: the checkpoints stay those of the last good epoch)."""
    bad = [n for n, p in model.named_parameters() if p.requires_grad and not torch.isfinite(p).all()]
    if bad:
        raise FloatingPointError(f"epoch {epoch}: {len(bad)} trained tensors became NaN or infinite ({bad[0]}, ...); "
                                 f"lower lr or set clip_grad; nothing of this epoch was saved, {ckpt} holds the last "
                                 f"complete one")


@torch.no_grad()
def evaluate(model, loader: VideoLoader, cfg: TrainConfig, d: Dist) -> dict:
    """One clip per validation video: loss (plain cross entropy), top-1 and top-5 in percent."""
    model.eval()
    amp_dtype, _ = amp_settings(cfg.amp, d.device)
    loss_sum, c1, c5, n = 0.0, 0, 0, 0
    for batch in loader.epoch(0):
        video, labels = batch.video.to(d.device), batch.labels.to(d.device)
        with torch.autocast(d.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(video).float()
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
        a, b = topk_correct(logits, labels)
        c1, c5, n = c1 + a, c5 + b, n + len(labels)
    loss_sum, c1, c5, n = d.sum([loss_sum, c1, c5, float(n)])
    return {"val_loss": loss_sum / max(n, 1), "val_top1": 100 * c1 / max(n, 1), "val_top5": 100 * c5 / max(n, 1)}


@torch.no_grad()
def predict_views(model, loader: VideoLoader, d: Dist, amp: str = "none", chunk: int = 16) -> dict[int, np.ndarray]:
    """Merged class probabilities of every delivered video of this shard: ``{entry index: (C,)}``."""
    model.eval()
    amp_dtype, _ = amp_settings(amp, d.device)
    out = {}
    for batch in loader.epoch(0):
        b, v = batch.video.shape[:2]
        clips = batch.video.reshape(b * v, *batch.video.shape[2:])
        logits = []
        for s in range(0, b * v, chunk):
            with torch.autocast(d.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits.append(model(clips[s:s + chunk].to(d.device)).float().cpu())
        probs = merge_views(torch.cat(logits).view(b, v, -1))
        out.update({k: p.numpy() for k, p in zip(batch.ids, probs)})
    return out


# -- the whole run ----------------------------------------------------------------------------------------
def _split(cfg: TrainConfig, data: RunData, part: str, d: Dist) -> tuple[list[VideoEntry], list, list[str]]:
    src, kw = data.source(part)
    if not kw and not src.exists():
        raise DataError(f"{src}: no such list file (set train_list/val_list/test_list, --data-root, or --split "
                        f"for an official dataset layout)")
    if d.main:
        ds, _ = load_manifest(src, data.root, cfg.clip.num_frames, workers=max(1, (os.cpu_count() or 1)), **kw)
    d.barrier()
    if not d.main:  # the others read rank 0's probe cache and leave the manifest to it
        ds, _ = load_manifest(src, data.root, cfg.clip.num_frames, write=False, **kw)
    name = f"split {cfg.split} {part}" if kw else src.name
    bad = [(name, e.path, e.status, e.reason) for e in ds.entries if not e.ok]
    if bad and d.main:
        log.warning("%s: %d of %d videos are not usable (listed in skipped.csv)", src, len(bad), len(ds.entries))
    return ds.usable(), bad, ds.classes


@dataclasses.dataclass
class RunVideos:
    """A run's videos, every one checked: the training and validation entries, ``held`` (``{part:
    entries}`` when validation and test are held out of the training videos, else None), the class
    names, and the unusable videos (rows of ``skipped.csv``)."""

    train: list[VideoEntry]
    val: list[VideoEntry]
    held: dict | None
    classes: list[str]
    skipped: list


def run_videos(cfg: TrainConfig, data: RunData, run_dir: Path, resume: str | None, d: Dist) -> RunVideos:
    """Read and check the run's training and validation videos (and that its test part, if any, is
    not empty) before anything is written; ``DataError`` or ``ConfigError`` naming what to fix."""
    train_set, bad_train, classes = _split(cfg, data, "train", d)
    held = None
    if cfg.val_split or cfg.test_split:
        held = holdout.kept_split(run_dir, train_set) if resume is not None or run_dir.is_dir() else None
        held = held or holdout.split_entries(train_set, classes, cfg.val_split, cfg.test_split, cfg.seed)
        train_set, val_set, bad_val = held["train"], held["val"], []
    else:
        val_set, bad_val, _ = _split(cfg, data, "val", d) if data.has("val") else ([], [], [])
    if cfg.nb_classes and classes and cfg.nb_classes != len(classes):
        raise DataError(f"nb_classes={cfg.nb_classes} but the dataset names {len(classes)} classes: set nb_classes "
                        f"to 0 (the dataset's) or fix the class list")
    classes = classes or class_names(cfg.nb_classes)
    if not train_set:
        raise DataError(f"{data.source('train')[0]}: no usable training video")
    unlabelled = [e.path for e in train_set + val_set if e.label < 0]
    if unlabelled:
        raise DataError(f"{unlabelled[0]}: has no label ({len(unlabelled)} such videos); training needs a "
                        f"label for every video (a list file, class folders or a labelled manifest)")
    clips = len(train_set) * cfg.num_sample // d.world  # one rank's clips per epoch
    if cfg.batch_size > clips:
        raise ConfigError(f"batch_size={cfg.batch_size} is larger than the {clips} training clips of an epoch "
                          f"({len(train_set)} usable videos x num_sample={cfg.num_sample}"
                          f"{f' / {d.world} ranks' if d.world > 1 else ''}); lower batch_size")
    if cfg.final_test and not held and data.has("test"):  # read now, not after the last epoch
        src, kw = data.source("test")
        if not open_dataset(src, data.root, **kw).entries:
            raise DataError(f"{src}: the test part holds no videos; fill it, or set final_test=false")
    return RunVideos(train_set, val_set, held, classes, bad_train + bad_val)


def train(cfg: TrainConfig, data_root: str | Path, output: str | Path, finetune: str | None = None,
          resume: str | None = None, progress: bool = True, overwrite: bool = False) -> dict:
    """Train, validate every ``eval_freq`` epochs, checkpoint, resume, and test at the end.
    Returns the final record (history, trainable and total parameter counts, test metrics). A folder
    that already holds a run is continued (``resume``) or started afresh (``overwrite``), never
    written over silently; nothing is written before every input is checked."""
    d = setup_distributed()
    torch.manual_seed(cfg.seed + d.rank)
    run_dir = Path(output)
    if cfg.splits:  # recorded absolute: the exporter and --resume may run from another folder
        cfg = dataclasses.replace(cfg, splits=str(Path(cfg.splits).resolve()))
    data = cfg.run_data(data_root)
    ckpt = run_dir / "checkpoints"
    state_path = ckpt / "last_state.pt"
    # a run is what training leaves: metrics or a checkpoint (a folder a refused first try made is not one)
    existing = resume is None and ((run_dir / "metrics.csv").exists() or (ckpt.is_dir() and any(ckpt.iterdir())))
    d.barrier()  # every rank looks before rank 0 writes anything
    if existing:
        if not overwrite:
            raise DataError(f"{run_dir}: holds a training run already; pass --resume to continue it, or "
                            f"--overwrite to start afresh (its checkpoints and metrics are then removed)")
        if d.main:
            remove_run(run_dir)
        d.barrier()
    state = None
    if resume == "auto" and state_path.is_file():
        state = load_state(state_path)
    elif resume and resume != "auto":
        state = load_state(Path(resume))
    videos = run_videos(cfg, data, run_dir, resume, d)
    held, classes, skipped = videos.held, videos.classes, videos.skipped

    try:
        model = models.create_model(cfg.model, **cfg.model_overrides(len(classes)))
    except ValueError as exc:  # e.g. prompt layers beyond the model's depth
        raise ConfigError(f"{cfg.model}: {exc}") from None
    model.set_attn_impl(cfg.attn_impl)
    pretrained = load_backbone(model, finetune) if finetune else None
    model.to(d.device)
    optimizer = build_optimizer(cfg, model)
    scaler = torch.amp.GradScaler("cuda") if amp_settings(cfg.amp, d.device)[1] else None
    history, best, start = [], -1.0, 0
    if state is not None:
        history, best, start, pretrained = restore(state, cfg, model, optimizer, scaler, finetune, pretrained)
    if d.main:  # every input checked (data, classes, backbone, resume state): the run's folder begins
        ckpt.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", run_config(cfg, d.world))
        log.info("%s", lr_scaling(cfg, d.world).describe(cfg, d.world))
        if held:
            holdout.write_split(run_dir, held, classes)
            log.info("held out of %d training videos: %d for validation, %d for test (per class, seed %d); the "
                     "split is kept in %s", sum(map(len, held.values())), len(held["val"]), len(held["test"]),
                     cfg.seed, run_dir / holdout.FOLDER)
        if state is not None:
            log.info("resuming %s after epoch %d", run_dir, start - 1)
    if pretrained is None and cfg.transfer_type != "end2end" and d.main:
        log.warning("%s tuning on a random backbone: no --pretrained/--finetune weights were given, so the frozen "
                    "features are noise on real data; pass a VideoMAE checkpoint with --pretrained",
                    cfg.transfer_type)
    trainable, total = models.count_parameters(model)
    if d.main:
        log.info("%s: %s trainable of %s parameters (%s)", cfg.model, f"{trainable:,}", f"{total:,}", cfg.transfer_type)
    # the only buffer is the fixed position table: nothing to broadcast before every forward
    net = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[d.local_rank] if d.device.type == "cuda" else None,
        broadcast_buffers=False) if d.world > 1 else model

    spec = cfg.clip
    augment = AugmentSpec(rand_augment=parse_rand_augment(cfg.aa, cfg.aa_interp) if cfg.aa else None, flip=cfg.flip,
                          scale=tuple(cfg.crop_scale), reprob=cfg.reprob, aa_region=cfg.aa_region)
    # reuse: every loop below is done with a batch before it asks for the next
    common = dict(device="gpu" if d.device.type == "cuda" else "cpu", device_id=d.local_rank,
                  num_workers=cfg.num_workers, num_threads=cfg.num_threads or None, shard_id=d.rank,
                  num_shards=d.world, reuse=True, executor=cfg.dali_executor, max_side=cfg.decode_max_side)
    train_loader = VideoLoader(videos.train, spec, mode="train", batch_size=cfg.batch_size, augment=augment,
                               seed=cfg.seed, num_sample=cfg.num_sample, **common)
    val_loader = VideoLoader(videos.val, spec, mode="eval", batch_size=cfg.val_batch_size, **common) \
        if videos.val else None

    # VideoMAE's linear scaling: videos per optimiser step (its repeated augmentations, num_sample,
    # do not count)
    scaled = lr_scaling(cfg, d.world)
    steps = max(1, len(train_loader) // cfg.update_freq)
    lr_values = cosine_schedule(scaled.lr, scaled.min_lr, cfg.epochs, steps, cfg.warmup_epochs, scaled.warmup_lr)
    writer = None
    if d.main:
        writer = SummaryWriter(str(run_dir / "tb"), purge_step=start)
        write_metrics(run_dir, history)

    card = ModelCard(model=cfg.model, model_overrides=cfg.model_overrides(len(classes)), classes=classes,
                     transfer_type=cfg.transfer_type, clip=spec, pretrained=pretrained,
                     data={"root": str(data.root.resolve()),
                           **({f"{part}_list": str((run_dir / holdout.FOLDER / f"{part}.txt").resolve())
                               for part in HELD_OUT} if held else
                              {f"{part}_list": data.lists[part] for part in HELD_OUT}),
                           "split": cfg.split, "splits": cfg.splits})
    for epoch in range(start, cfg.epochs):
        stats = {"epoch": epoch, **train_one_epoch(net, train_loader, optimizer, scaler, lr_values, epoch, cfg,
                                                   d, progress)}
        _check_trained_finite(model, epoch, ckpt)
        if val_loader is not None and ((epoch + 1) % cfg.eval_freq == 0 or epoch + 1 == cfg.epochs):
            stats.update(evaluate(net, val_loader, cfg, d))
        history.append(stats)
        skipped += [("train", f.path, "decode-error", f.reason) for f in train_loader.failures]
        if d.main:
            improved = stats.get("val_top1", -1.0) > best
            best = max(best, stats.get("val_top1", -1.0))
            save_state(state_path, {"epoch": epoch, "model": models.trained_state(model),
                                    "optimizer": optimizer.state_dict(),
                                    "scaler": scaler.state_dict() if scaler else None, "history": history,
                                    "best_top1": best, "rng": torch.get_rng_state(),
                                    "pretrained": dataclasses.asdict(pretrained) if pretrained else None,
                                    "config": cfg.to_dict()})
            epoch_card = dataclasses.replace(card, epoch=epoch, val_top1=stats.get("val_top1"))
            models.save_trained(model, ckpt / "last.safetensors", epoch_card)
            if improved or not (ckpt / "best.safetensors").exists():
                models.save_trained(model, ckpt / "best.safetensors", epoch_card)
            write_metrics(run_dir, history)
            write_skipped(run_dir, skipped)
            for k, v in stats.items():
                if k != "epoch":
                    writer.add_scalar(k, v, epoch)
            writer.flush()
            log.info("epoch %d: %s", epoch, ", ".join(f"{k} {v:.4g}" for k, v in stats.items() if k != "epoch"))
        d.barrier()
    result = {"history": history, "parameters": {"trainable": trainable, "total": total}}
    if cfg.final_test and (held["test"] if held else data.has("test")):
        result["test"] = final_test(model, cfg, data, run_dir, classes, spec, common, d, skipped,
                                    held["test"] if held else None)
    if writer:
        writer.close()
    return result


def final_test(model, cfg, data: RunData, run_dir, classes, spec, common, d, skipped, held=None) -> dict | None:
    """The segments x crops evaluation of the test list (or the ``held`` out test videos), merged per
    video as VideoMAE does."""
    test_set, bad = (held, []) if held is not None else _split(cfg, data, "test", d)[:2]
    if not test_set:
        return None
    loader = VideoLoader(test_set, spec, mode="test", batch_size=cfg.test_batch_size, **common)
    local = predict_views(model, loader, d, cfg.amp)
    merged, failures = {}, []
    for part, fails in zip(d.gather(local), d.gather([(f.path, f.reason) for f in loader.failures])):
        merged.update(part)
        failures += fails
    if not d.main:
        return None
    ids = sorted(merged)
    report = accuracy_report(np.stack([merged[k] for k in ids]), np.array([test_set[k].label for k in ids]), classes)
    report.update({"views": f"{spec.test_num_segment}x{spec.test_num_crop}", "weights": "last",
                   "not_scored": [{"path": e[1], "reason": f"{e[2]}: {e[3]}"} for e in bad] +
                                 [{"path": p, "reason": r} for p, r in failures]})
    atomic_write_text(run_dir / "test_metrics.json", json.dumps(report, indent=1))
    write_skipped(run_dir, skipped + bad + [("test", p, "decode-error", r) for p, r in failures])
    log.info("test (%s views, %d videos): top-1 %.2f, top-5 %.2f", report["views"], report["videos"],
             report["top1"], report["top5"])
    return report
