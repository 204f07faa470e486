"""DALI pipelines for training clips and test views, and the loader that accounts for every video.

One parallel external source (``ClipSource``) picks the videos of each batch and their frame
indices (``pipeline.sampling``), and decides per file how it is decoded: DALI's own decoder where
the device takes the codec (``pipeline.video.dali_can_decode``), PyAV inside the source worker
otherwise. After decoding, everything runs in DALI on the pipeline's device:

- ``train_pipeline``: VideoMAE's order: RandAugment (``pipeline.randaug``) on the full decoded
  frames, then normalisation, random resized crop, flip and random erasing; ``(B, 3, T, S, S)``
  per batch. (``AugmentSpec.aa_region="crop"`` runs RandAugment on the crop instead: cheaper for
  frames larger than the crop, at the cost of crop-wide statistics and fill.)
- ``views_pipeline``: short side resized, segments x crops views cut from one decode of the
  video; ``(B, V, 3, T, S, S)``.

A file that fails to decode is reported (``VideoLoader.failures``) and the epoch goes on: failures
inside the source are flagged per sample; a failure inside DALI's decoder rebuilds the pipeline and
retries that batch through PyAV.
"""
from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from models.card import ClipSpec

from .data import VideoEntry
from .randaug import RandAugmentSpec
from .sampling import crop_offsets, eval_indices, resize_short_side, train_indices, view_indices
from .video import dali_can_decode, decode_frames

log = logging.getLogger("apt_video")
# the training graph does not use the resize/crop outputs of the shared source; that is intended
warnings.filterwarnings("ignore", message="The external source node .* outputs at the indices")

OK, FAILED, PADDING = 0, 1, 2
EXECUTORS = ("dynamic", "pipelined")  # DALI's exec_dynamic=True / False
ERROR_BYTES = 240  # room for the reason of a failed sample, as a fixed uint8 field
_EMPTY_FRAMES = np.zeros((1, 2, 2, 3), np.uint8)
_EMPTY_BYTES = np.zeros((1,), np.uint8)


AA_REGIONS = ("frame", "crop")  # where RandAugment runs: the full decoded frame (VideoMAE) or the crop


@dataclass(frozen=True)
class AugmentSpec:
    """Training augmentation after decoding, in DALI. There is no colour jitter: VideoMAE's video
    datasets never apply one (timm drops it under an auto-augment policy, and without a policy
    their loader has no augmentation to run)."""

    rand_augment: RandAugmentSpec | None = None
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    reprob: float = 0.0  # random erasing probability (constant fill 0 = the mean after normalising)
    aa_region: str = "frame"  # one of AA_REGIONS

    def __post_init__(self):
        if self.aa_region not in AA_REGIONS:
            raise ValueError(f"aa_region={self.aa_region!r}: choose one of {', '.join(AA_REGIONS)}")


class ClipSource:
    """Per-sample callback of the parallel external source: which video, which frames, decoded how.

    Outputs: encoded bytes (DALI route), decoded frames FHWC uint8 (PyAV route), frame indices,
    per-view resize size and crop anchors (views mode), label, sample id (index into ``entries``),
    status (OK / FAILED / PADDING), route (True = DALI decodes), error text (uint8, fixed size).
    """

    def __init__(self, entries: list[VideoEntry], spec: ClipSpec, mode: str, batch_size: int,
                 device: str = "cpu", shard_id: int = 0, num_shards: int = 1, seed: int = 0,
                 force_pyav: frozenset[int] = frozenset(), start_epoch: int = 0,
                 start_batch: int = 0):
        if mode not in ("train", "eval", "test"):
            raise ValueError(f"mode={mode!r}")
        self.entries, self.spec, self.mode = entries, spec, mode
        self.batch_size, self.device, self.seed = batch_size, device, seed
        self.shard_id, self.num_shards = shard_id, num_shards
        self.force_pyav, self.start_epoch, self.start_batch = force_pyav, start_epoch, start_batch
        self._parent = os.getpid()  # the process whose pipeline starts the DALI workers
        self._tied = False

    # -- which sample goes where ------------------------------------------------------------------
    def order(self, epoch: int) -> list[int]:
        """Entry indices of this shard's samples in ``epoch``, a whole number of batches; -1 = padding.

        Training shuffles (seeded by epoch) and pads the epoch by wrapping around so that every
        video is used; eval/test keep the input order, give each shard a contiguous run, and pad
        the last batch with -1. (Repeated augmentation, ``num_sample``, happens after decoding.)
        """
        n = len(self.entries)
        if self.mode == "train":
            perm = np.random.default_rng([self.seed, epoch]).permutation(n)
            per_shard = -(-n // self.num_shards)
            per_shard = -(-per_shard // self.batch_size) * self.batch_size
            total = per_shard * self.num_shards
            perm = np.resize(perm, total)  # wraps around
            mine = perm[self.shard_id * per_shard:(self.shard_id + 1) * per_shard]
            return [int(k) for k in mine]
        per_shard = -(-n // self.num_shards)
        mine = list(range(self.shard_id * per_shard, min(n, (self.shard_id + 1) * per_shard)))
        pad = -len(mine) % self.batch_size
        return mine + [-1] * pad

    def __call__(self, info):
        if not self._tied and os.getpid() != self._parent:
            _die_with_parent(self._parent)
            self._tied = True
        epoch = self.start_epoch + info.epoch_idx
        pos = info.idx_in_epoch + (self.start_batch * self.batch_size if info.epoch_idx == 0 else 0)
        order = self._cached_order(epoch)
        if pos >= len(order):
            raise StopIteration
        k = order[pos]
        if k < 0:
            return self._pack(None, -1, PADDING, "", pos)
        return self._sample(k, np.random.default_rng([self.seed, epoch, pos, self.shard_id]), pos)

    def _cached_order(self, epoch):
        if getattr(self, "_order_epoch", None) != epoch:
            self._order_cache, self._order_epoch = self.order(epoch), epoch
        return self._order_cache

    # -- one sample -----------------------------------------------------------------------------
    def _sample(self, k: int, rng: np.random.Generator, pos: int):
        e = self.entries[k]
        if self.mode == "train":
            segments = train_indices(self.spec, e.frames, rng)[None]
        elif self.mode == "eval":
            segments = eval_indices(self.spec, e.frames)[None]
        else:
            segments = view_indices(self.spec, e.frames)
        expand = None
        if self.mode == "test":
            # decode each frame once, in order (overlapping segments would make the decoder seek
            # back); ``expand`` maps the views' frames onto the decoded ones
            indices, expand = np.unique(segments.reshape(-1), return_inverse=True)
            indices, expand = indices.astype(np.int32), expand.reshape(-1).astype(np.int32)
        else:
            indices = segments.reshape(-1).astype(np.int32)
        use_dali = dali_can_decode(e, self.device) and k not in self.force_pyav
        try:
            if use_dali:
                data, frames, size = np.fromfile(e.path, dtype=np.uint8), _EMPTY_FRAMES, (e.height, e.width)
                if data.size == 0:
                    raise RuntimeError("zero-byte file")
            else:
                data, frames = _EMPTY_BYTES, decode_frames(e.path, indices)
                size = frames.shape[1:3]
        except Exception as exc:  # reported per sample; the epoch goes on
            return self._pack(None, k, FAILED, f"{type(exc).__name__}: {exc}", pos)
        return self._pack((data, frames, indices, size, use_dali), k, OK, "", pos, expand)

    def _pack(self, payload, k: int, status: int, error: str, pos: int, expand=None):
        spec = self.spec
        n = spec.num_frames * (spec.test_num_segment if self.mode == "test" else 1)
        if payload is None:  # failed or padding: a tiny black clip through the PyAV branch
            payload = (_EMPTY_BYTES, np.zeros((n, 8, 8, 3), np.uint8), np.zeros(n, np.int32), (8, 8), False)
        if expand is None:
            expand = np.arange(n, dtype=np.int32) if status == OK else np.zeros(n, np.int32)
        data, frames, indices, (h, w), use_dali = payload
        crops = spec.test_num_crop if self.mode == "test" else 1
        rh, rw = resize_short_side(h, w, spec.input_size)
        anchors = np.asarray(crop_offsets(rh, rw, spec.input_size, crops), np.float32)
        err = np.zeros(ERROR_BYTES, np.uint8)
        raw = error.encode("utf-8", "replace")[:ERROR_BYTES]
        err[:len(raw)] = np.frombuffer(raw, np.uint8)
        label = self.entries[k].label if k >= 0 else -1
        return (data, frames, indices, np.asarray([rh, rw], np.float32), anchors,
                np.array(label, np.int32), np.array(k, np.int64), np.array(status, np.int32),
                np.array(use_dali, np.bool_), err, expand)


def _die_with_parent(parent: int) -> None:
    """In a DALI worker process: be killed when the process that started it dies (even by SIGKILL,
    which leaves no chance to clean up), instead of running on as an orphan holding memory."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def _source_outputs(source: ClipSource, device: str):
    from nvidia.dali import fn, types

    (data, frames, indices, rsize, anchors, label, sid, status, route, err, expand) = fn.external_source(
        source=source, num_outputs=11, batch=False, parallel=True,
        dtype=[types.UINT8, types.UINT8, types.INT32, types.FLOAT, types.FLOAT, types.INT32, types.INT64,
               types.INT32, types.BOOL, types.UINT8, types.INT32],
        layout=["", "FHWC", "", "", "", "", "", "", "", "", ""])
    if route:
        clip = fn.decoders.video(data, frames=indices, device="mixed" if device == "gpu" else "cpu")
    else:
        clip = frames.gpu() if device == "gpu" else frames
    return clip, rsize, anchors, label, sid, status, err, expand


def _normalize(clip, spec: ClipSpec, mirror=None):
    from nvidia.dali import fn, types

    return fn.crop_mirror_normalize(
        clip, dtype=types.FLOAT, output_layout="CFHW", mirror=mirror if mirror is not None else 0,
        mean=[255 * m for m in spec.mean], std=[255 * s for s in spec.std])


def train_pipeline(source: ClipSource, spec: ClipSpec, augment: AugmentSpec, device: str, num_sample: int = 1,
                   **pipe_kw):
    """Training clips: ``num_sample`` outputs ``video (3, T, S, S) float32`` normalised, each an
    independent augmentation of the same decoded frames (VideoMAE's repeated augmentation decodes
    once), then label, sample id, status, error."""
    from nvidia.dali import pipeline_def

    @pipeline_def(enable_conditionals=True)
    def pipe():
        decoded, _, _, label, sid, status, err, _ = _source_outputs(source, device)
        videos = [_augment(decoded, spec, augment) for _ in range(num_sample)]
        return (*videos, label, sid, status, err)

    return pipe(**pipe_kw)


def _augment(clip, spec: ClipSpec, augment: AugmentSpec):
    """One random augmentation of a batch of decoded FHWC uint8 clips, in VideoMAE's order
    (kinetics.py / ssv2.py ``_aug_frame``): RandAugment on the whole frames, normalisation, random
    resized crop, flip, random erasing. Returns CFHW float32, normalised. The crop is taken from
    the uint8 frames and normalised after (normalising is per-channel affine, so the two orders
    differ only by the crop's rounding to whole levels)."""
    from nvidia.dali import fn

    from .randaug import rand_augment

    use_ra = augment.rand_augment is not None and augment.rand_augment.n > 0
    if use_ra and augment.aa_region == "frame":
        clip = rand_augment(clip, augment.rand_augment)
    clip = fn.random_resized_crop(clip, size=[spec.input_size, spec.input_size],
                                  random_area=list(augment.scale), random_aspect_ratio=list(augment.ratio),
                                  antialias=False)  # bilinear without antialiasing, as VideoMAE
    if use_ra and augment.aa_region == "crop":
        clip = rand_augment(clip, augment.rand_augment)
    mirror = fn.random.coin_flip(probability=0.5) if augment.flip else None
    video = _normalize(clip, spec, mirror)
    if augment.reprob > 0:
        video = _random_erase(video, augment.reprob)
    return video


def _random_erase(video, prob: float):
    """timm-style random erasing of one rectangle (area 2-33%, aspect 0.3-3.3) on all frames."""
    from nvidia.dali import fn
    from nvidia.dali import math as dmath

    area = fn.random.uniform(range=[0.02, 1 / 3])
    aspect = dmath.exp(fn.random.uniform(range=[np.log(0.3), np.log(1 / 0.3)]))
    h = dmath.min(dmath.sqrt(area * aspect), 1.0)
    w = dmath.min(dmath.sqrt(area / aspect), 1.0)
    y = fn.random.uniform(range=[0.0, 1.0]) * (1.0 - h)
    x = fn.random.uniform(range=[0.0, 1.0]) * (1.0 - w)
    if fn.random.coin_flip(probability=prob):
        video = fn.erase(video, anchor=fn.stack(y, x), shape=fn.stack(h, w), axis_names="HW",
                         normalized_anchor=True, normalized_shape=True, fill_value=0.0)
    return video


def views_pipeline(source: ClipSource, spec: ClipSpec, device: str, crops: int, **pipe_kw):
    """Test views from one decode per video: ``(crops, 3, U, S, S)`` float32 over the U distinct
    frames the views use, and ``expand`` ``(segments * T,)`` mapping view frames onto them."""
    from nvidia.dali import fn, pipeline_def, types

    @pipeline_def(enable_conditionals=True)
    def pipe():
        clip, rsize, anchors, label, sid, status, err, expand = _source_outputs(source, device)
        clip = fn.resize(clip, resize_y=rsize[0], resize_x=rsize[1], interp_type=types.INTERP_LINEAR,
                         antialias=False)
        views = []
        size = types.Constant(np.array([spec.input_size] * 2, np.float32), device="cpu")  # slice shapes: CPU
        for j in range(crops):
            crop = fn.slice(clip, anchors[j], size, axes=[1, 2],
                            normalized_anchor=False, normalized_shape=False, out_of_bounds_policy="error")
            views.append(_normalize(crop, spec))
        return fn.stack(*views), label, sid, status, err, expand

    return pipe(**pipe_kw)


class Failure(NamedTuple):
    """A video the loader could not deliver: its position in the loader's entries, path and why."""

    index: int
    path: str
    reason: str


@dataclass
class Batch:
    """Delivered samples only. ``video``: ``(B, 3, T, S, S)`` (train/eval; in training B = videos x
    ``num_sample``, a video's repeats side by side) or ``(B, V, 3, T, S, S)`` (test, V = segments x
    crops, segment-major). ``labels`` and ``ids`` (indices into the loader's entries) per row. With
    ``VideoLoader(reuse=True)`` the next batch overwrites ``video``. ``weight`` is set only for a
    training batch of a multi-rank run whose every sample failed (all zeros)."""

    video: torch.Tensor
    labels: torch.Tensor
    ids: list[int]
    weight: torch.Tensor | None = None  # per row; None: every row counts (0: a placeholder row)


@dataclass
class VideoLoader:
    """Batches of one shard of ``entries`` through DALI, epoch after epoch, with every video either
    delivered or listed in ``failures`` (``Failure(index into entries, path, reason)``)."""

    entries: list[VideoEntry]
    spec: ClipSpec
    mode: str = "train"
    batch_size: int = 8
    device: str = "cpu"
    device_id: int | None = None
    num_threads: int = 2
    num_workers: int = 2
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    shard_id: int = 0
    num_shards: int = 1
    seed: int = 0
    num_sample: int = 1
    #: batches DALI works ahead; None: 1 for CPU training (RandAugment's executor and the consumer
    #: share the cores; one batch ahead loaded ~9% faster than two), else 2 (CPU scoring measured
    #: faster with 2: ``apt-video bench loader`` / ``bench score``)
    prefetch: int | None = None
    #: deliver every batch in one buffer that the next batch overwrites (for loops that are done
    #: with a batch before they ask for the next; saves a large allocation per batch)
    reuse: bool = False
    #: DALI executor of CPU pipelines (GPU ones always use the dynamic executor): ``dynamic`` frees
    #: what each operator is done with, so memory stays level; ``pipelined`` keeps every
    #: operator's buffers and on CPU runs the training graph ~20% faster, but its memory grows
    #: with the largest share of a batch each RandAugment branch has seen (``apt-video bench loader``)
    executor: str = "dynamic"
    failures: list[Failure] = field(default_factory=list)

    def __post_init__(self):
        bad = [e for e in self.entries if not e.ok]
        if bad:
            raise ValueError(f"{len(bad)} entries are not usable (first: {bad[0].path}: {bad[0].reason}); "
                             f"pass only manifest rows with status ok")
        if not self.entries:
            raise ValueError("no videos to load")
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor={self.executor!r}: choose one of {', '.join(EXECUTORS)}")
        if self.device == "gpu" and self.device_id is None:
            self.device_id = torch.cuda.current_device()
        if self.prefetch is None:
            self.prefetch = 1 if self.device == "cpu" and self.mode == "train" else 2
        self._force: set[int] = set()
        self._batch_buffer: torch.Tensor | None = None
        self._pipe = None
        self._iter = None
        self._next_epoch = 0

    def source(self, start_epoch: int = 0, start_batch: int = 0) -> ClipSource:
        return ClipSource(self.entries, self.spec, self.mode, self.batch_size, self.device, self.shard_id,
                          self.num_shards, self.seed, frozenset(self._force), start_epoch, start_batch)

    @property
    def _repeats(self) -> int:
        return self.num_sample if self.mode == "train" else 1

    def __len__(self) -> int:
        return len(self.source().order(0)) // self.batch_size

    def _build(self, start_epoch: int, start_batch: int):
        from nvidia.dali.plugin.pytorch import DALIGenericIterator

        if self._pipe is not None:
            self.close()
        src = self.source(start_epoch, start_batch)
        kw = dict(batch_size=self.batch_size, num_threads=self.num_threads,
                  device_id=self.device_id if self.device == "gpu" else None,
                  py_num_workers=max(1, self.num_workers),
                  py_start_method="spawn" if self.device == "gpu" else "fork",
                  prefetch_queue_depth=self.prefetch, exec_dynamic=self.device == "gpu" or self.executor == "dynamic",
                  seed=int(np.random.default_rng([self.seed, start_epoch, start_batch]).integers(2**31)))
        if self.mode == "train":
            pipe = train_pipeline(src, self.spec, self.augment, self.device, self._repeats, **kw)
        else:
            crops = self.spec.test_num_crop if self.mode == "test" else 1
            pipe = views_pipeline(src, self.spec, self.device, crops, **kw)
        pipe.build()
        self._pipe = pipe
        videos = [f"video{j}" for j in range(self._repeats)] if self.mode == "train" else ["video"]
        names = videos + ["label", "sid", "status", "error"] + (["expand"] if self.mode != "train" else [])
        if self.mode == "test" or self.device == "cpu":
            # test views are ragged (distinct frames differ per video): converted sample by sample
            self._iter = _BatchIterator(pipe, names, ragged=("video", "expand") if self.mode == "test" else ())
        else:
            # the first batch is made on the first next(), inside epoch()'s retry, not here
            self._iter = DALIGenericIterator(pipe, names, auto_reset=True, prepare_first_batch=False)

    def epoch(self, epoch: int):
        """Yield the batches of ``epoch`` (epochs must be asked for in order from any start)."""
        if not self.source().order(epoch):  # an empty shard (more ranks than videos): no batch
            return
        if self._iter is None or epoch != self._next_epoch:
            self._build(epoch, 0)
        self._next_epoch = epoch + 1
        batch_no = 0
        while True:
            try:
                out = next(self._iter)[0]
            except StopIteration:
                return
            except RuntimeError as exc:  # DALI's decoder failed on a file: retry this batch via PyAV
                ids = [k for k in self.source().order(epoch)[batch_no * self.batch_size:
                                                            (batch_no + 1) * self.batch_size] if k >= 0]
                log.warning("DALI failed on a batch (%s); decoding its %d videos with PyAV instead",
                            str(exc).splitlines()[0][:200], len(ids))
                if not ids or set(ids) <= self._force:
                    raise
                self._force.update(ids)
                self._build(epoch, batch_no)
                continue
            batch_no += 1
            batch = self._deliver(out)
            if batch is not None:
                yield batch

    def _deliver(self, out) -> Batch | None:
        status = out["status"].reshape(-1).cpu()
        if self.mode == "test":
            return self._deliver_views(out, status)
        sids = out["sid"].reshape(-1).cpu().tolist()
        self._report(out, status, sids)
        keep = torch.nonzero(status == OK).reshape(-1)
        weight = None
        if keep.numel() == 0:
            if self.mode != "train" or self.num_shards == 1:
                return None
            # every sample failed: the other ranks still step, so this one delivers its placeholder
            # clips with weight 0 (a zero loss that keeps DDP's gradient all-reduce in step)
            keep, weight = torch.arange(len(status)), torch.zeros(len(status) * self._repeats)
        r = self._repeats
        outs = [out[f"video{j}"] for j in range(r)] if self.mode == "train" else [out["video"]]
        if keep.numel() < len(status):
            outs = [v.index_select(0, keep.to(v.device)) for v in outs]
        # one copy out of DALI's buffers (views on CPU), the repeats of a video side by side:
        # v0 s0, v0 s1, v1 s0, ...
        video = torch.stack(outs, 1, out=self._buffer((len(keep), r, *outs[0].shape[1:]), outs[0])).flatten(0, 1)
        if self.mode == "eval":
            video = video[:, 0]
        labels = out["label"].reshape(-1).cpu().index_select(0, keep).long().repeat_interleave(r).clamp(min=0)
        return Batch(video, labels, [sids[i] for i in keep.tolist() for _ in range(r)], weight)

    def _deliver_views(self, out, status) -> Batch | None:
        sids = out["sid"].reshape(-1).tolist()
        self._report(out, status, sids)
        keep = torch.nonzero(status == OK).reshape(-1).tolist()
        if not keep:
            return None
        s, t = self.spec.test_num_segment, self.spec.num_frames
        first = out["video"][keep[0]]
        c, ch, _, h, w = first.shape
        # one copy per view, straight into the batch: (crops, 3, U, H, W) -> (S*crops, 3, T, H, W)
        video = self._buffer((len(keep), s * c, ch, t, h, w), first)
        for row, i in enumerate(keep):
            src, expand = out["video"][i], out["expand"][i].to(first.device).long().view(s, t)
            for seg in range(s):
                for crop in range(c):
                    torch.index_select(src[crop], 1, expand[seg], out=video[row, seg * c + crop])
        labels = out["label"].reshape(-1)[keep].long()
        return Batch(video, labels, [sids[i] for i in keep])

    def _buffer(self, shape: tuple, like: torch.Tensor) -> torch.Tensor:
        """An uninitialised batch tensor; with ``reuse``, the same memory every batch (fresh large
        allocations are returned to the OS when freed and cost page faults on every batch)."""
        buf = self._batch_buffer
        if buf is None or buf.shape[1:] != shape[1:] or len(buf) < shape[0] or buf.device != like.device \
                or buf.dtype != like.dtype:
            buf = torch.empty(shape, dtype=like.dtype, device=like.device)
            if self.reuse:
                self._batch_buffer = buf
        return buf[:shape[0]]

    def _report(self, out, status, sids):
        for i in torch.nonzero(status == FAILED).reshape(-1).tolist():
            reason = bytes(out["error"][i].cpu().numpy()).rstrip(b"\0").decode("utf-8", "replace")
            self.failures.append(Failure(sids[i], self.entries[sids[i]].path, reason))
            log.warning("%s: skipped: %s", self.entries[sids[i]].path, reason)

    def close(self):
        self._iter = None
        self._pipe = None


def _to_torch(tensor, view: bool = False) -> torch.Tensor:
    """One DALI sample (CPU or GPU) as a torch tensor, through the DALI PyTorch plugin for GPU.
    ``view``: a CPU sample without copying, valid until the pipeline runs again."""
    if hasattr(tensor, "as_cpu") and type(tensor).__name__.endswith("GPU"):
        from nvidia.dali.plugin.pytorch import feed_ndarray, to_torch_type

        out = torch.empty(tensor.shape(), dtype=to_torch_type[tensor.dtype], device="cuda")
        feed_ndarray(tensor, out)
        return out
    return torch.from_numpy(np.asarray(tensor) if view else np.array(tensor))


class _BatchIterator:
    """Batches of a pipeline as a dict of torch tensors, like DALIGenericIterator's, resetting after
    each epoch. CPU outputs are zero-copy views of DALI's buffers, valid until the next batch (the
    loader copies them once, into the batch it delivers); ``ragged`` outputs, whose samples differ
    in shape, come as lists of per-sample tensors."""

    def __init__(self, pipe, names: list[str], ragged: tuple[str, ...] = ()):
        self.pipe, self.names, self.ragged = pipe, names, ragged

    def __next__(self):
        try:
            outs = self.pipe.run()
        except StopIteration:
            self.pipe.reset()
            raise
        batch = {}
        for name, tl in zip(self.names, outs):
            if name in self.ragged:
                batch[name] = [_to_torch(tl[i], view=True) for i in range(len(tl))]
            elif type(tl).__name__.endswith("GPU"):
                batch[name] = torch.stack([_to_torch(tl[i]) for i in range(len(tl))])
            else:
                batch[name] = torch.from_numpy(np.asarray(tl.as_tensor()))
        return [batch]
