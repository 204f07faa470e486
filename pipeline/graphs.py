"""The DALI graphs: training clips and test views, on the CPU or the GPU.

- ``train_pipeline``: VideoMAE's order: RandAugment (``pipeline.randaug``) on the full decoded
  frames, then normalisation, random resized crop, flip and random erasing; ``(3, T, S, S)``
  float32 per sample, ``num_sample`` independent augmentations of one decode. (``aa_region="crop"``
  runs RandAugment on the crop instead: cheaper for frames larger than the crop, at the cost of
  crop-wide statistics and fill.)
- ``views_pipeline``: short side resized, segments x crops views cut from one decode of the video.

Both read their samples from a ``pipeline.source.ClipSource``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from models.card import ClipSpec

from .randaug import RandAugmentSpec
from .source import SAMPLE_DTYPES, SAMPLE_LAYOUTS, ClipSource, Sample

# the training graph does not use the resize/crop outputs of the shared source; that is intended
warnings.filterwarnings("ignore", message="The external source node .* outputs at the indices")

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


def _normalize(clip, spec: ClipSpec, mirror=None):
    from nvidia.dali import fn, types

    return fn.crop_mirror_normalize(
        clip, dtype=types.FLOAT, output_layout="CFHW", mirror=mirror if mirror is not None else 0,
        mean=[255 * m for m in spec.mean], std=[255 * s for s in spec.std])


def train_pipeline(source: ClipSource, spec: ClipSpec, augment: AugmentSpec, device: str, num_sample: int = 1,
                   parallel: bool = True, **pipe_kw):
    """Training clips: ``num_sample`` outputs ``video (3, T, S, S) float32`` normalised, each an
    independent augmentation of the same decoded frames (VideoMAE's repeated augmentation decodes
    once), then label, sample id, status, error."""
    from nvidia.dali import pipeline_def

    @pipeline_def(enable_conditionals=True)
    def pipe():
        s, decoded = source_outputs(source, device, parallel)
        videos = [_augment(decoded, spec, augment) for _ in range(num_sample)]
        return (*videos, s.label, s.sid, s.status, s.error)

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
