"""The DALI graphs: training clips and test views, on the CPU or the GPU.

- ``train_pipeline``: VideoMAE's order: RandAugment (``pipeline.randaug``) on the full decoded
  frames, then normalisation, random resized crop, flip and random erasing; ``(3, T, S, S)``
  float32 per sample, ``num_sample`` independent augmentations of one decode, each as the source
  drew it (``pipeline.augment``). (``aa_region="crop"`` runs RandAugment on the crop instead, at
  the cost of crop-wide statistics and fill.)
- ``views_pipeline``: short side resized, segments x crops views cut from one decode of the video.

Both read their samples from a ``pipeline.source.ClipSource``.
"""
from __future__ import annotations

import re
import warnings

import numpy as np

from apt_video.models.card import ClipSpec

from .augment import AA_REGIONS, ERASE, FIRST_REGION, HEAD, LAST_CORNER, PER_OP, WINDOW, AugmentSpec
from .randaug import FILL, Step, rand_augment
from .source import SAMPLE_DTYPES, SAMPLE_LAYOUTS, ClipSource, Sample

__all__ = ["AA_REGIONS", "AugmentSpec", "dali_error", "decode_alone", "decode_stage", "file_decoder", "source_outputs",
           "train_pipeline", "views_pipeline"]

# the training graph does not use the resize/crop outputs of the shared source; that is intended
warnings.filterwarnings("ignore",
                        message="The external source node .* (outputs at the indices|the output at the index)")

def source_outputs(source: ClipSource, device: str, parallel: bool = True) -> tuple:
    """The source's fields as DALI nodes (a ``Sample`` of nodes) and the decoded clip, FHWC uint8
    on ``device``: DALI's decoder for the samples routed to it, PyAV's frames for the others.
    ``parallel``: the source runs in DALI's worker processes; else in the thread that runs the pipeline."""
    from nvidia.dali import fn, types

    s = Sample(*fn.external_source(source=source, num_outputs=len(Sample._fields), batch=False, parallel=parallel,
                                   dtype=[getattr(types, t) for t in SAMPLE_DTYPES], layout=list(SAMPLE_LAYOUTS)))
    if s.route:
        clip = fn.decoders.video(s.data, frames=s.indices, device="mixed" if device == "gpu" else "cpu")
    else:
        clip = s.frames.gpu() if device == "gpu" else s.frames
    return s, clip


def file_decoder(data: np.ndarray, indices: np.ndarray, device: str, device_id: int | None = None):
    """A built one-sample pipeline that decodes frames ``indices`` of the encoded file ``data``
    (uint8 bytes) with DALI's decoder on ``device`` (``cpu`` or ``gpu``, which is NVDEC: ``mixed``);
    each ``run()`` gives the FHWC uint8 frames."""
    from nvidia.dali import fn, pipeline_def

    idx = np.asarray(indices, np.int32)

    @pipeline_def(batch_size=1, num_threads=1, device_id=(device_id or 0) if device == "gpu" else None)
    def pipe():
        encoded = fn.external_source(source=lambda: [data], batch=True)
        frames = fn.external_source(source=lambda: [idx], batch=True)
        return fn.decoders.video(encoded, frames=frames, device="mixed" if device == "gpu" else "cpu")

    p = pipe()
    p.build()
    return p


def decode_alone(path: str, indices: np.ndarray, device: str, device_id: int | None = None) -> str | None:
    """Decode frames ``indices`` of one file with DALI's decoder on ``device`` in a pipeline of its
    own: None when it decodes, else DALI's error (its first line). Finds the file of a batch that
    broke DALI's decoder without touching the loader's pipeline."""
    try:
        file_decoder(np.fromfile(path, np.uint8), indices, device, device_id).run()
    except (RuntimeError, OSError, ValueError) as exc:
        return dali_error(exc)
    return None


def dali_error(exc: BaseException) -> str:
    """What a DALI error says went wrong, in one line of at most 200 characters: the line after its
    ``encountered:`` (DALI's run-time errors open with "Critical error in pipeline:" and the
    operator's definition), without an assertion's condition; else its first line."""
    text = str(exc).strip()
    text = text.rsplit("encountered:", 1)[-1].strip() or text
    line = text.splitlines()[0] if text else type(exc).__name__
    return re.sub(r'^Assert on ".*?" failed: ', "", line)[:200]


def _normalize(clip, spec: ClipSpec, mirror=None):
    from nvidia.dali import fn, types

    return fn.crop_mirror_normalize(
        clip, dtype=types.FLOAT, output_layout="CFHW", mirror=mirror if mirror is not None else 0,
        mean=[255 * m for m in spec.mean], std=[255 * s for s in spec.std])


def decode_stage(source: ClipSource, device: str, parallel: bool = True, **pipe_kw):
    """The source and the decode alone: the decoded clip (FHWC uint8 on ``device``) and the sample's
    status, as the training and view graphs receive them (the loader's first stage, on its own)."""
    from nvidia.dali import pipeline_def

    @pipeline_def(enable_conditionals=True)
    def pipe():
        s, clip = source_outputs(source, device, parallel)
        return clip, s.status

    return pipe(**pipe_kw)


def train_pipeline(source: ClipSource, spec: ClipSpec, device: str, parallel: bool = True, **pipe_kw):
    """Training clips: ``source.num_sample`` outputs ``video (3, T, S, S) float32`` normalised, each
    an independent augmentation (``source.augment``, drawn by the source) of the same decoded frames
    (VideoMAE's repeated augmentation decodes once), then label, sample id, status, error."""
    from nvidia.dali import pipeline_def

    @pipeline_def(enable_conditionals=True)
    def pipe():
        s, decoded = source_outputs(source, device, parallel)
        videos = [_augment(decoded, s.plan[j], spec, source.augment) for j in range(source.num_sample)]
        return (*videos, s.label, s.sid, s.status, s.error)

    return pipe(**pipe_kw)


def _augment(clip, plan, spec: ClipSpec, augment: AugmentSpec):
    """One augmentation of a batch of decoded FHWC uint8 clips, as ``plan`` (a row of
    ``pipeline.augment``) has it, in VideoMAE's order (kinetics.py / ssv2.py ``_aug_frame``):
    RandAugment on the whole frames, normalisation, random resized crop, flip, random erasing.
    Returns CFHW float32, normalised. RandAugment computes only the regions of the frame the crop
    needs (the same pixels). The crop is taken from the uint8 frames and normalised after
    (normalising is per-channel affine, so the two orders differ only by the crop's rounding to
    whole levels)."""
    from nvidia.dali import fn, types

    def steps():
        ints = fn.cast(plan, dtype=types.INT32)  # op, bin, sign: one cast for all steps
        return [Step(ints[at], ints[at + 1], ints[at + 2], plan[at + 3:at + PER_OP])
                for at in (HEAD + PER_OP * k for k in range(augment.num_ops))]

    origin = types.Constant(np.zeros(2, np.float32), device="cpu")
    if augment.num_ops and augment.aa_region == "frame":
        first = plan[FIRST_REGION]
        clip = fn.slice(clip, first[0:2], first[2:4] - first[0:2], axes=[1, 2], normalized_anchor=False,
                        normalized_shape=False, out_of_bounds_policy="pad", fill_values=FILL)
        clip = rand_augment(clip, augment.rand_augment, steps())
        origin = plan[LAST_CORNER]
    window = plan[WINDOW]
    start = window[0:2] - origin
    # the crop window, resized: bilinear without antialiasing, as VideoMAE (torch interpolate)
    clip = fn.resize(clip, size=[spec.input_size] * 2, roi_start=start, roi_end=start + window[2:4],
                     roi_relative=False, interp_type=types.INTERP_LINEAR, antialias=False)
    if augment.num_ops and augment.aa_region == "crop":
        clip = rand_augment(clip, augment.rand_augment, steps())
    mirror = fn.random.coin_flip(probability=0.5) if augment.flip else None
    video = _normalize(clip, spec, mirror)
    if augment.reprob > 0:
        at = HEAD + PER_OP * augment.num_ops
        video = _random_erase(video, plan[at:at + ERASE])
    return video


def _random_erase(video, box):
    """The box the source drew (``pipeline.augment.erase_box``) erased on every frame of the
    normalised CFHW clip, filled with per-pixel N(0, 1) noise, fresh for each frame and channel
    (VideoMAE's random_erasing.py, pixel mode): outside the box the clip, inside the noise."""
    from nvidia.dali import fn

    if box[0] > 0:
        where = dict(anchor=box[1:3], shape=box[3:5], axis_names="HW", normalized_anchor=False,
                     normalized_shape=False, fill_value=0.0)
        noise = fn.reshape(fn.random.normal(video), layout="CFHW")  # the layout of _normalize's output
        video = fn.erase(video, **where) + (noise - fn.erase(noise, **where))
    return video


def views_pipeline(source: ClipSource, spec: ClipSpec, device: str, crops: int, parallel: bool = True, **pipe_kw):
    """Test views from one decode per video: ``(crops, 3, U, S, S)`` float32 over the U distinct
    frames the views use, and ``expand`` ``(segments * T,)`` mapping view frames onto them."""
    from nvidia.dali import fn, pipeline_def, types

    @pipeline_def(enable_conditionals=True)
    def pipe():
        s, clip = source_outputs(source, device, parallel)
        clip = fn.resize(clip, resize_y=s.resize[0], resize_x=s.resize[1], interp_type=types.INTERP_LINEAR,
                         antialias=False)
        views = []
        size = types.Constant(np.array([spec.input_size] * 2, np.float32), device="cpu")  # slice shapes: CPU
        for j in range(crops):
            crop = fn.slice(clip, s.anchors[j], size, axes=[1, 2],
                            normalized_anchor=False, normalized_shape=False, out_of_bounds_policy="error")
            views.append(_normalize(crop, spec))
        return fn.stack(*views), s.label, s.sid, s.status, s.error, s.expand

    return pipe(**pipe_kw)
