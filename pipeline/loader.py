"""The loader: batches of one shard of a dataset through DALI, with every video either delivered or
listed in ``VideoLoader.failures`` with its reason.

Each file's decode route is decided up front from its probe (``routes``: DALI's decoder, or PyAV
and why). Failures inside the source are flagged per sample; a failure inside DALI's decoder finds
the file that caused it (each DALI-routed file of the batch decoded alone), sends that file to PyAV
from then on, rebuilds the pipeline and runs the batch again. CPU outputs leave DALI with one copy,
into one reused batch buffer where the caller allows it.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from apt_video.models.card import ClipSpec

from . import nvdec
from .data import VideoEntry
from .graphs import AugmentSpec, dali_error, decode_alone, decode_stage, train_pipeline, views_pipeline
from .source import FAILED, OK, ClipSource, start_method, workers_ignore_ctrl_c
from .video import MAX_SIDE, decode_route

log = logging.getLogger(__name__)
EXECUTORS = ("dynamic", "pipelined")  # DALI's exec_dynamic=True / False


def default_threads(cores: int | None = None, local_ranks: int | None = None) -> int:
    """DALI's thread pool (which also runs the mixed video decoder's per-sample work): the cores this
    process may use, shared among the ranks on this host (``LOCAL_WORLD_SIZE`` under torchrun), at
    least 2."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
    if local_ranks is None:
        local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE") or 1)
    return max(2, cores // max(1, local_ranks))


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
    delivered or listed in ``failures`` (``Failure(index into entries, path, reason)``).

    Training is one stream over the epochs: DALI never ends a training epoch, ``epoch(e)`` stops
    after e's batches while the workers already decode e + 1's first (the same clips a loader built
    at e + 1, as a resumed run is, delivers). Validation and test passes end as usual."""

    entries: list[VideoEntry]
    spec: ClipSpec
    mode: str = "train"
    batch_size: int = 8
    device: str = "cpu"
    device_id: int | None = None
    #: DALI's thread pool; None: ``default_threads()`` (2 on a 2-core host, 16 on a 16-core GPU host)
    num_threads: int | None = None
    #: DALI's source worker processes (PyAV decoding, file reads); 0: the source runs in this
    #: process, in the thread that runs the pipeline (no worker to start: for short-lived loaders, e.g. one per
    #: Ray task on a GPU, where workers would have to be spawned afresh each time)
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
    #: training batches per DALI batch; None: 2 for CPU training (RandAugment's branches then get
    #: twice the samples each and keep both cores busy: ~10% more clips/s, ``apt-video bench loader``),
    #: else 1. An epoch is then padded to a whole number of DALI batches.
    group: int | None = None
    #: deliver every batch in one buffer that the next batch overwrites (for loops that are done
    #: with a batch before they ask for the next; saves a large allocation per batch)
    reuse: bool = False
    #: DALI executor of CPU pipelines (GPU ones always use the dynamic executor): ``dynamic`` frees
    #: what each operator is done with, so memory stays level; ``pipelined`` keeps every
    #: operator's buffers and on CPU runs the training graph ~20% faster, but its memory grows
    #: with the largest share of a batch each RandAugment branch has seen (``apt-video bench loader``)
    executor: str = "dynamic"
    max_side: int = MAX_SIDE  # the longest side decoded at its native size (pipeline.video.MAX_SIDE)
    failures: list[Failure] = field(default_factory=list)
    #: index into entries -> None (DALI's decoder reads it) or why PyAV does: decided from the probe
    #: before DALI sees the file, and for a file that broke DALI's decoder, why
    routes: dict[int, str | None] = field(default_factory=dict)

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
        if self.group is None:
            self.group = 2 if self.device == "cpu" and self.mode == "train" else 1
        if self.num_threads is None:
            self.num_threads = default_threads()
        limits = nvdec.host_limits(self.device_id) if self.device == "gpu" else None
        self.routes = {k: decode_route(e, self.device, limits, self.max_side) for k, e in enumerate(self.entries)}
        self._pyav = {k for k, why in self.routes.items() if why}
        if self._pyav:
            first = min(self._pyav)
            log.info("%d of %d videos decode with PyAV, not DALI's %s decoder (first: %s: %s)", len(self._pyav),
                     len(self.entries), "NVDEC" if self.device == "gpu" else "CPU", self.entries[first].path,
                     self.routes[first])
        self._batch_buffer: torch.Tensor | None = None
        self._pipe = None
        self._iter = None
        self._next_epoch = 0

    @property
    def _dali_batch(self) -> int:
        return self.batch_size * self.group

    def source(self, start_epoch: int = 0, start_batch: int = 0) -> ClipSource:
        return ClipSource(self.entries, self.spec, self.mode, self.batch_size, self.device, self.shard_id,
                          self.num_shards, self.seed, frozenset(self._pyav), start_epoch, start_batch, self.group,
                          self.augment, self._repeats, self.max_side)

    @property
    def _repeats(self) -> int:
        return self.num_sample if self.mode == "train" else 1

    def __len__(self) -> int:
        return self.source().batches(0)

    def _pipeline_kwargs(self, start_epoch: int, start_batch: int) -> dict:
        return dict(batch_size=self._dali_batch, num_threads=self.num_threads,
                    device_id=self.device_id if self.device == "gpu" else None,
                    parallel=self.num_workers > 0, py_num_workers=max(1, self.num_workers),
                    py_start_method=start_method(self.device), prefetch_queue_depth=self.prefetch,
                    exec_dynamic=self.device == "gpu" or self.executor == "dynamic",
                    seed=int(np.random.default_rng([self.seed, start_epoch, start_batch]).integers(2**31)))

    def decode_stage(self):
        """A built pipeline of this loader's source and decode alone, configured as the loader's own
        (pool, workers, prefetch, routes): each ``run()`` decodes one DALI batch, FHWC uint8 on the
        loader's device (never copied to the host), with each sample's status. For profiling the
        loader stage by stage (``apt-video bench gpu``)."""
        pipe = decode_stage(self.source(), self.device, **self._pipeline_kwargs(0, 0))
        with workers_ignore_ctrl_c():
            pipe.build()
        return pipe

    def _build(self, start_epoch: int, start_batch: int):
        from nvidia.dali.plugin.pytorch import DALIGenericIterator

        if self._pipe is not None:
            self.close()
        src = self.source(start_epoch, start_batch)
        kw = self._pipeline_kwargs(start_epoch, start_batch)
        if self.mode == "train":
            pipe = train_pipeline(src, self.spec, self.device, **kw)
        else:
            crops = self.spec.test_num_crop if self.mode == "test" else 1
            pipe = views_pipeline(src, self.spec, self.device, crops, **kw)
        with workers_ignore_ctrl_c():  # DALI starts its source workers here
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
        try:
            yield from self._batches(epoch)
        except GeneratorExit:  # the caller stopped early: DALI is mid-epoch, so the next epoch starts afresh
            self.close()
            raise

    def _batches(self, epoch: int):
        # a training source streams epoch after epoch (pipeline.source): its epochs end by count
        last = len(self.source().order(epoch)) // self._dali_batch if self.mode == "train" else None
        batch_no = 0
        while last is None or batch_no < last:
            try:
                out = next(self._iter)[0]
            except StopIteration:
                return
            except RuntimeError as exc:  # DALI's decoder failed on a file: that file goes to PyAV
                if not self._reroute(epoch, batch_no, exc):
                    raise
                self._build(epoch, batch_no)
                continue
            batch_no += 1
            if self.mode == "test":
                batch = self._deliver_views(out)
                if batch is not None:
                    yield batch
            else:
                yield from self._deliver(out)

    def _reroute(self, epoch: int, batch_no: int, exc: Exception) -> bool:
        """After DALI's decoder failed on DALI batch ``batch_no`` of ``epoch``: decode each of its
        DALI-routed files alone to find the one(s) that fail, and send those to PyAV from now on
        (all of the batch's, if none fails alone). False when the batch had none left to send."""
        src = self.source()
        lo = batch_no * self._dali_batch
        dali = [(pos, k) for pos, k in enumerate(src.order(epoch)[lo:lo + self._dali_batch], lo)
                if k >= 0 and k not in self._pyav]
        if not dali:
            return False
        self.close()  # the failed pipeline is unusable; each file is tried in a pipeline of its own
        first = dali_error(exc)
        culprits = {}
        for pos, k in dali:
            why = decode_alone(self.entries[k].path, src.frame_indices(k, src.sample_rng(epoch, pos))[0],
                               self.device, self.device_id)
            if why:
                culprits[k] = why
        if not culprits:
            log.warning("DALI failed on a batch (%s) and none of its %d files fails alone; decoding them with "
                        "PyAV from now on", first, len(dali))
            culprits = {k: first for _, k in dali}
        for k, why in culprits.items():
            self.routes[k] = f"DALI's decoder failed: {why}"
            log.warning("%s: DALI's decoder failed (%s); decoded with PyAV from now on", self.entries[k].path, why)
        self._pyav.update(culprits)
        return True

    def _deliver(self, out) -> list[Batch]:
        """The ``group`` training (or validation) batches of one DALI batch. Every kept clip is
        copied once out of DALI's buffers into the batch buffer, the repeats of a video side by
        side (v0 s0, v0 s1, v1 s0, ...), each batch in its own part of the buffer."""
        status = out["status"].reshape(-1).cpu()
        sids = out["sid"].reshape(-1).cpu().tolist()
        self._report(out, status, sids)
        r = self._repeats
        parts = []  # (rows of the DALI batch, weight) per delivered batch
        for c in range(0, len(status), self.batch_size):
            rows = torch.arange(c, min(c + self.batch_size, len(status)))
            keep = rows[status[rows] == OK]
            if keep.numel():
                parts.append((keep, None))
            elif self.mode == "train" and self.num_shards > 1 and bool((status[rows] == FAILED).any()):
                # every sample failed: the other ranks still step, so this one delivers its placeholder
                # clips with weight 0 (a zero loss that keeps DDP's gradient all-reduce in step)
                parts.append((rows, torch.zeros(len(rows) * r)))
        if not parts:
            return []
        outs = [out[f"video{j}"] for j in range(r)] if self.mode == "train" else [out["video"]]
        total = sum(len(rows) for rows, _ in parts)
        buffer = self._buffer((total, r, *outs[0].shape[1:]), outs[0])
        labels = out["label"].reshape(-1).cpu().long().clamp(min=0)
        batches, at = [], 0
        for rows, weight in parts:
            chunk = buffer[at:at + len(rows)]
            at += len(rows)
            whole = int(rows[-1] - rows[0]) + 1 == len(rows)  # a run of rows: a view, no extra copy
            picked = [v.narrow(0, int(rows[0]), len(rows)) if whole else v.index_select(0, rows.to(v.device))
                      for v in outs]
            video = torch.stack(picked, 1, out=chunk).flatten(0, 1)
            if self.mode == "eval":
                video = video[:, 0]
            batches.append(Batch(video, labels.index_select(0, rows).repeat_interleave(r),
                                 [sids[i] for i in rows.tolist() for _ in range(r)], weight))
        return batches

    def _deliver_views(self, out) -> Batch | None:
        status = out["status"].reshape(-1).cpu()
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
