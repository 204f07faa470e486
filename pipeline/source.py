"""The sample source of every DALI pipeline: which video each sample is, which frames, decoded how.

``ClipSource`` is the per-sample callback of DALI's parallel external source. It picks the videos
of a shard and epoch (``order``), their frame indices (``pipeline.sampling``) and, per file, the
decode route, decided per file before DALI sees it (``pipeline.video.decode_route``): DALI's own
decoder where the device takes the file, or PyAV inside the source worker. A file that fails is
flagged in its sample (status and reason), never dropped. Each sample is a ``Sample``: named
fields, handed to DALI as its outputs in order.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from typing import NamedTuple

import numpy as np

from apt_video.models.card import ClipSpec

from .augment import AugmentSpec, plan
from .data import VideoEntry, shard_bounds
from .sampling import crop_offsets, eval_indices, resize_short_side, train_indices, view_indices
from .video import MAX_SIDE, decode_frames, decode_route

OK, FAILED, PADDING = 0, 1, 2  # sample status
MODES = ("train", "eval", "test")
ERROR_BYTES = 240  # room for the reason of a failed sample, as a fixed uint8 field
_EMPTY_FRAMES = np.zeros((1, 2, 2, 3), np.uint8)
_EMPTY_BYTES = np.zeros((1,), np.uint8)


class Sample(NamedTuple):
    """One sample as the external source hands it to DALI (one output per field, in this order)."""

    data: np.ndarray  # the encoded file (DALI decodes it), or one empty byte
    frames: np.ndarray  # FHWC uint8 frames decoded by PyAV, or a tiny placeholder
    indices: np.ndarray  # int32 frame indices to decode
    resize: np.ndarray  # float32 (h, w) of the short-side resize (views)
    anchors: np.ndarray  # float32 (crops, 2) crop corners (views)
    label: np.ndarray  # int32
    sid: np.ndarray  # int64 position in the source's entries (-1: padding)
    status: np.ndarray  # int32 OK / FAILED / PADDING
    route: np.ndarray  # bool: True when DALI decodes
    error: np.ndarray  # uint8 (ERROR_BYTES,) reason of a failure, UTF-8, zero-padded
    expand: np.ndarray  # int32 view frame -> decoded frame (test views decode each frame once)
    plan: np.ndarray  # float32 (num_sample, HEAD + PER_OP * n): each training augmentation (pipeline.augment)


#: DALI types and layouts of the fields, in order
SAMPLE_DTYPES = ("UINT8", "UINT8", "INT32", "FLOAT", "FLOAT", "INT32", "INT64", "INT32", "BOOL", "UINT8", "INT32",
                 "FLOAT")
SAMPLE_LAYOUTS = ("", "FHWC", "", "", "", "", "", "", "", "", "", "")


class ClipSource:
    """Per-sample callback of the parallel external source: which video, which frames, decoded how.

    Outputs: encoded bytes (DALI route), decoded frames FHWC uint8 (PyAV route), frame indices,
    per-view resize size and crop anchors (views mode), label, sample id (index into ``entries``),
    status (OK / FAILED / PADDING), route (True = DALI decodes), error text (uint8, fixed size),
    and in training the ``num_sample`` augmentations of ``augment`` drawn for the sample.

    ``pyav``: the entries PyAV decodes (default: those ``decode_route`` does not give DALI on
    ``device``, with the Video Codec SDK's NVDEC limits); every other entry goes to DALI's decoder.
    """

    def __init__(self, entries: list[VideoEntry], spec: ClipSpec, mode: str, batch_size: int,
                 device: str = "cpu", shard_id: int = 0, num_shards: int = 1, seed: int = 0,
                 pyav: frozenset[int] | None = None, start_epoch: int = 0,
                 start_batch: int = 0, group: int = 1, augment: AugmentSpec | None = None, num_sample: int = 1,
                 max_side: int = MAX_SIDE):
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}; choose one of {', '.join(MODES)}")
        self.entries, self.spec, self.mode = entries, spec, mode
        self.batch_size, self.device, self.seed = batch_size, device, seed
        self.shard_id, self.num_shards = shard_id, num_shards
        if pyav is None:
            pyav = frozenset(k for k, e in enumerate(entries) if decode_route(e, device, max_side=max_side))
        self.max_side = max_side  # frames longer than this decode with PyAV, scaled down to it (video.MAX_SIDE)
        self.pyav, self.start_epoch, self.start_batch = pyav, start_epoch, start_batch
        self.group = group  # delivered batches per DALI batch (start_batch counts DALI batches)
        self.augment = augment if augment is not None else AugmentSpec()
        self.num_sample = num_sample  # training augmentations per decoded video
        self._parent = os.getpid()  # the process whose pipeline starts the DALI workers
        self._tied = False
        self._per_epoch: int | None = None  # samples in a training epoch

    # -- which sample goes where ------------------------------------------------------------------
    def order(self, epoch: int) -> list[int]:
        """Entry indices of this shard's samples in ``epoch``, a whole number of DALI batches
        (``batch_size * group``); -1 = padding.

        Training shuffles (seeded by epoch) and pads the epoch by wrapping around to a whole number
        of batches, so that every video is used; eval/test keep the input order, give each shard a
        contiguous run, and pad the last batch with -1. What a whole number of DALI batches needs
        beyond that is -1 too (never delivered). (Repeated augmentation, ``num_sample``, happens
        after decoding.)
        """
        n = len(self.entries)
        if self.mode == "train":
            perm = np.random.default_rng([self.seed, epoch]).permutation(n)
            per_shard = -(-n // self.num_shards)
            per_shard = -(-per_shard // self.batch_size) * self.batch_size
            total = per_shard * self.num_shards
            perm = np.resize(perm, total)  # wraps around
            mine = [int(k) for k in perm[self.shard_id * per_shard:(self.shard_id + 1) * per_shard]]
        else:
            lo, hi = shard_bounds(n, self.shard_id, self.num_shards)
            mine = list(range(lo, hi))
            mine += [-1] * (-len(mine) % self.batch_size)
        return mine + [-1] * (-len(mine) % (self.batch_size * self.group))

    def batches(self, epoch: int) -> int:
        """Batches delivered in ``epoch`` (the padding that only fills a DALI batch is not one)."""
        order = self.order(epoch)
        while order and order[-1] == -1 and len(order) % self.batch_size == 0 and \
                all(k == -1 for k in order[-self.batch_size:]):
            order = order[:-self.batch_size]
        return len(order) // self.batch_size

    def __call__(self, info):
        if not self._tied and os.getpid() != self._parent:
            die_with_parent(self._parent)
            self._tied = True
        skip = self.start_batch * self.batch_size * self.group
        if self.mode == "train":
            # one stream over the epochs, never ended inside DALI (the loader counts each epoch's
            # batches): the workers decode the next epoch's first batch while DALI augments this
            # epoch's last, as DALI's readers do. Every training epoch has the same length.
            if self._per_epoch is None:
                self._per_epoch = len(self._cached_order(self.start_epoch))
            at = info.idx_in_epoch + skip
            epoch, pos = self.start_epoch + at // self._per_epoch, at % self._per_epoch
        else:
            epoch = self.start_epoch + info.epoch_idx
            pos = info.idx_in_epoch + (skip if info.epoch_idx == 0 else 0)
        order = self._cached_order(epoch)
        if pos >= len(order):
            raise StopIteration
        k = order[pos]
        rng = self.sample_rng(epoch, pos)
        if k < 0:
            return self._pack(None, -1, PADDING, "", rng)
        return self._sample(k, rng)

    def _cached_order(self, epoch):
        if getattr(self, "_order_epoch", None) != epoch:
            self._order_cache, self._order_epoch = self.order(epoch), epoch
        return self._order_cache

    # -- one sample -----------------------------------------------------------------------------
    def frame_indices(self, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        """The int32 frames entry ``k``'s sample decodes and, for test views, ``expand`` (view frame
        -> decoded frame; None otherwise)."""
        e = self.entries[k]
        if self.mode == "train":
            segments = train_indices(self.spec, e.frames, rng)[None]
        elif self.mode == "eval":
            segments = eval_indices(self.spec, e.frames)[None]
        else:
            segments = view_indices(self.spec, e.frames)
        if self.mode == "test":
            # decode each frame once, in order (overlapping segments would make the decoder seek
            # back); ``expand`` maps the views' frames onto the decoded ones
            indices, expand = np.unique(segments.reshape(-1), return_inverse=True)
            return indices.astype(np.int32), expand.reshape(-1).astype(np.int32)
        return segments.reshape(-1).astype(np.int32), None

    def sample_rng(self, epoch: int, pos: int) -> np.random.Generator:
        """The generator of the sample at position ``pos`` of ``epoch``'s order (its frames, its augmentation)."""
        return np.random.default_rng([self.seed, epoch, pos, self.shard_id])

    def _sample(self, k: int, rng: np.random.Generator):
        e = self.entries[k]
        indices, expand = self.frame_indices(k, rng)
        use_dali = k not in self.pyav
        try:
            if use_dali:
                data, frames, size = np.fromfile(e.path, dtype=np.uint8), _EMPTY_FRAMES, (e.height, e.width)
                if data.size == 0:
                    raise RuntimeError("zero-byte file")
            else:
                # from the keyframe before the clip (the file's frame count checks the index); no
                # FFmpeg threads in DALI's workers, which already decode one video each per core
                data, frames = _EMPTY_BYTES, decode_frames(e.path, indices, self.max_side,
                                                           frames=None if e.damaged else e.frames,
                                                           threads=os.getpid() == self._parent)
                size = frames.shape[1:3]
        except Exception as exc:  # reported per sample; the epoch goes on
            return self._pack(None, k, FAILED, f"{type(exc).__name__}: {exc}", rng)
        return self._pack((data, frames, indices, size, use_dali), k, OK, "", rng, expand)

    def _pack(self, payload, k: int, status: int, error: str, rng: np.random.Generator, expand=None):
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
        if self.mode == "train":
            plans = np.stack([plan(self.augment, h, w, spec.input_size, rng) for _ in range(self.num_sample)])
        else:
            plans = np.zeros((1, 1), np.float32)
        sample = Sample(data, frames, indices, np.asarray([rh, rw], np.float32), anchors, np.array(label, np.int32),
                        np.array(k, np.int64), np.array(status, np.int32), np.array(use_dali, np.bool_), err, expand,
                        plans)
        return tuple(sample)  # DALI's workers rebuild the container with type(sample)(...): a plain tuple


def start_method(device: str) -> str:
    """How DALI starts the source workers: ``spawn`` for GPU pipelines and wherever CUDA is already
    initialised in this process (a forked child cannot use it, and DALI refuses to fork then: a
    CPU loader in a GPU training or scoring process), else ``fork`` (quicker to start)."""
    torch = sys.modules.get("torch")
    cuda_up = torch is not None and torch.cuda.is_initialized()
    return "spawn" if device == "gpu" or cuda_up else "fork"


@contextlib.contextmanager
def workers_ignore_ctrl_c():
    """Worker processes started inside this block ignore SIGINT (a forked child inherits the
    ignored signal, and so does a spawned interpreter, which then installs no KeyboardInterrupt
    handler). Ctrl-C in a terminal reaches the whole process group: the main process alone turns
    it into one line and shuts its workers down, instead of every worker printing a traceback."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def pool_worker(parent: int) -> None:
    """A process pool's initializer: Ctrl-C is the parent's to handle, and the worker dies with it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent)


def die_with_parent(parent: int) -> None:
    """In a worker process (DALI's source workers, the probe's pool): be killed when the process
    that started it dies (even by SIGKILL, which leaves no chance to clean up), instead of running on
    as an orphan holding memory."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
