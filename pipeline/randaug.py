"""timm-faithful RandAugment for video clips, built from DALI's operators (and torch for Equalize's table).

``rand-m7-n4-mstd0.5-inc1`` means: ``n`` = 4 ops per clip, chosen uniformly with replacement from
15 ops; magnitude ``m`` = 7 of ``mmax`` = 10, drawn per op application from N(m, mstd) and clipped
to [0, mmax]; each chosen op applied with probability ``p`` = 0.5; ``inc1`` = the 'increasing' op
set (Posterize, Solarize and the enhance ops grow stronger with magnitude). The same op and
magnitude apply to every frame of a clip (the data is FHWC, one sample per clip). Geometric ops
fill with grey 128 (VideoMAE's copy of timm's RandAugment, which is given no ``img_mean``),
translations are relative to the frame size (0.45 at m = 10).

DALI's own ``rand_augment`` lacks ``mstd``, ``p``, Invert and SolarizeAdd, and its Posterize is
milder, hence this module.

``interp`` is the resampling of the geometric ops (Rotate, Shear, Translate): ``bilinear`` (the
default; VideoMAE asks PIL for bicubic, which DALI's warps do not offer: bilinear is the closest) or
``nearest`` (torchvision's RandAugment default).

Several ops are written here, not taken from DALI's suite, because on CPU the suite's versions cost
several times more than the work needs (``apt-video bench loader`` measures the whole loader):

- Translate: an integer shift (a padded slice) and, for bilinear, a two-tap filter for the
  fraction: the same pixels as a bilinear warp, at a fifth of its cost.
- Rotate and Shear: DALI's CPU warp is twice as fast when it clamps to the border as when it fills,
  so the clip gets a one-pixel border of the fill colour and the warp clamps to it (the same
  result as filling, up to rounding).
- Contrast, AutoContrast, Solarize, SolarizeAdd: one operator (or a short expression) each instead
  of a chain of element-wise operations over the whole clip.

Color, Contrast, Brightness, Sharpness and AutoContrast compute PIL's formulas as rand_augment.py
runs them (``Image.blend`` with the grey image, the mean grey level, black, the ``SMOOTH``-filtered
frame; ``ImageOps.autocontrast``'s table), truncated as PIL truncates: the same levels, but for
Color's grey level, which PIL rounds before blending (a level at most). Equalize is PIL's table
per frame and channel, computed with torch inside the graph (``equalize_frames``): DALI's
``fn.equalize`` is OpenCV's formula, and DALI has no per-sample table lookup.
tests/pipeline/test_randaug.py measures every op against PIL.

The draws (op, magnitude bin, sign) are made per clip by the source (``pipeline.augment``), which
also gives each geometric op the region of the frame to compute: only what the crop will need.

On the GPU, Contrast and AutoContrast are plain arithmetic instead (``portable`` ops): DALI takes
named arguments such as ``contrast_center`` or ``fn.normalize``'s ``mean`` from CPU data only, and
their statistics are computed on the GPU. Constants that DALI needs on the CPU (slice anchors) are
placed there explicitly.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

#: the RandAugment of VideoMAE's and APT's fine-tuning scripts (and of the HMDB51 preset)
VIDEOMAE_RAND_AUGMENT = "rand-m7-n4-mstd0.5-inc1"
#: magnitude bins per unit of magnitude: 3 bins per step gives a resolution of 1/3 for the noise
BINS_PER_UNIT = 3
FILL = 128  # fill of the geometric ops: VideoMAE's rand_augment.py _FILL (timm given no img_mean)
#: the geometric ops and their parameter at magnitude 10: degrees, shear factor, fraction of the frame
GEOMETRIC = {"Rotate": 30.0, "ShearX": 0.3, "ShearY": 0.3, "TranslateXRel": 0.45, "TranslateYRel": 0.45}
STATISTICS = ("AutoContrast", "Equalize", "Contrast")  # ops that take statistics of the whole frame


@dataclass(frozen=True)
class RandAugmentSpec:
    n: int = 2
    m: float = 9.0
    mstd: float = 0.0
    mmax: float = 10.0
    p: float = 0.5
    increasing: bool = False
    interp: str = "bilinear"  # geometric ops: bilinear or nearest
    only: tuple[str, ...] = ()  # draw from these ops (names of OP_NAMES) alone; empty: all 15

    def __post_init__(self):
        unknown = [name for name in self.only if name not in OP_NAMES]
        if unknown:
            raise ValueError(f"RandAugment op {unknown[0]!r}: choose among {', '.join(OP_NAMES)}")

    @property
    def num_bins(self) -> int:
        return int(round(self.mmax * BINS_PER_UNIT)) + 1


INTERPOLATIONS = ("bilinear", "nearest")


def parse_rand_augment(config: str, interp: str = "bilinear") -> RandAugmentSpec:
    """Parse a timm RandAugment string (``rand-m7-n4-mstd0.5-inc1``); keys m, n, mstd, mmax, inc, p.
    ``interp``: resampling of the geometric ops, one of ``INTERPOLATIONS``."""
    if interp not in INTERPOLATIONS:
        raise ValueError(f"aa_interp={interp!r}: choose one of {', '.join(INTERPOLATIONS)}")
    parts = config.split("-")
    if not parts or parts[0] != "rand":
        raise ValueError(f"auto_augment={config!r}: only timm RandAugment strings ('rand-m7-n4-...') "
                         f"are supported")
    values: dict = {}
    for part in parts[1:]:
        match = re.fullmatch(r"(mstd|mmax|inc|m|n|p)([0-9.]+)", part)
        if not match:
            raise ValueError(f"auto_augment={config!r}: cannot read {part!r}; known keys are "
                             f"m (magnitude), n (ops), mstd, mmax, inc, p")
        key, val = match.groups()
        values[key] = float(val)
    spec = RandAugmentSpec(n=int(values.get("n", 2)), m=values.get("m", 9.0), mstd=values.get("mstd", 0.0),
                           mmax=values.get("mmax", 10.0), p=values.get("p", 0.5),
                           increasing=bool(values.get("inc", 0)), interp=interp)
    if spec.n < 0 or not 0 <= spec.m <= spec.mmax or spec.mstd < 0 or not 0 <= spec.p <= 1:
        raise ValueError(f"auto_augment={config!r}: need n >= 0, 0 <= m <= mmax, mstd >= 0, 0 <= p <= 1")
    return spec


# -- magnitude -> parameter, as timm maps a level in [0, 1] ------------------------------------------------
def _posterize_increasing(level):  # bits kept: 4 at level 0 -> 0 at level 1
    keep = 4 - int(level * 4)
    return np.uint8((0xFF << (8 - keep)) & 0xFF)


def _posterize(level):  # bits kept: int(level * 4), timm's non-increasing variant
    keep = int(level * 4)
    return np.uint8((0xFF << (8 - keep)) & 0xFF)


def _solarize_increasing(level):  # pixels at or above the threshold are inverted
    return np.int32(256 - int(level * 256))


def _solarize(level):
    return np.int32(int(level * 256))


def _solarize_add(level):
    return np.uint8(int(level * 110))


def _enhance_increasing(level):
    return 1.0 + level


def _enhance(level):
    return level * 1.8 + 0.1


# -- the ops: one factory each, and the table ---------------------------------------------------------
def _dali():
    """DALI's modules the ops are written with (imported when a graph is built, not before)."""
    from nvidia.dali import fn, types
    from nvidia.dali import math as dmath
    from nvidia.dali.auto_aug import augmentations
    from nvidia.dali.auto_aug.core import augmentation

    return fn, types, dmath, augmentations, augmentation


def _levels(spec: RandAugmentSpec, top: float = 1.0) -> tuple[float, float]:
    """The level range the magnitude bins span: 0 .. ``top`` x mmax / 10."""
    return 0.0, top * spec.mmax / 10.0


def _enhance_args(spec: RandAugmentSpec) -> dict:
    """Color, Contrast, Brightness: timm's factor mapping, negated at random in the increasing set."""
    return dict(mag_range=_levels(spec, 0.9 if spec.increasing else 1.0), randomly_negate=spec.increasing,
                mag_to_param=_enhance_increasing if spec.increasing else _enhance)


def _op_auto_contrast(spec: RandAugmentSpec, portable: bool):
    fn, types, dmath, _, augmentation = _dali()

    @augmentation
    def auto_contrast(data, _):  # PIL: each channel of each frame stretched to 0..255; flat ones kept
        lo = fn.cast(fn.reductions.min(data, axes=[1, 2], keep_dims=True), dtype=types.FLOAT)
        hi = fn.cast(fn.reductions.max(data, axes=[1, 2], keep_dims=True), dtype=types.FLOAT)
        spread = fn.cast(hi > lo, dtype=types.FLOAT)
        if portable:  # ImageOps.autocontrast's table truncates
            scale = 255.0 / ((hi - lo) * spread + (1.0 - spread))
            return fn.cast(dmath.floor((data - lo * spread) * (scale * spread + (1.0 - spread))), dtype=types.UINT8)
        return fn.normalize(data, mean=lo * spread, stddev=(hi - lo) / 255.0 * spread + (1.0 - spread),
                            axes=[1, 2], shift=TRUNCATE, dtype=types.UINT8)

    return auto_contrast


def equalize_frames(clip):
    """PIL's ``ImageOps.equalize`` of every frame and channel of one FHWC uint8 clip, on the CPU or
    the GPU (a DLPack tensor in, one out, as DALI's ``dl_tensor_python_function`` passes them).

    PIL's table, per frame and channel with histogram ``h`` over ``N`` pixels: ``step = (N - h[last
    level present]) // 255``; level ``i`` maps to ``(step // 2 + sum(h[:i])) // step``, at most
    255; a plane with ``step == 0`` (one level, or nearly) is kept. DALI's ``fn.equalize`` uses
    OpenCV's formula, up to 3 levels away; DALI has no per-sample table lookup, so the table is
    computed and applied with torch's ``bincount`` and indexing.

    On the GPU the work runs on DALI's own stream: DALI reads the result there after this returns
    (no wait here), and torch's allocator reuses its memory only for later work on that stream."""
    import torch

    x = torch.from_dlpack(clip)
    if not x.is_cuda:
        return torch.utils.dlpack.to_dlpack(_equalize(torch, x))
    from nvidia.dali.python_function_plugin import current_dali_stream

    with torch.cuda.stream(torch.cuda.ExternalStream(current_dali_stream(), device=x.device)):
        return torch.utils.dlpack.to_dlpack(_equalize(torch, x))


def _equalize(torch, x):
    """``equalize_frames`` on an FHWC uint8 torch tensor."""
    f, h, w, c = x.shape
    plane = torch.arange(f * c, dtype=torch.int32, device=x.device).view(f, 1, 1, c) * 256
    index = (plane + x).flatten()  # each value's slot among the planes' 256 levels (int32: fast)
    hist = torch.bincount(index, minlength=f * c * 256).view(f * c, 256)
    last = 255 - (hist.flip(1) > 0).int().argmax(1, keepdim=True)  # the highest level present
    step = (h * w - hist.gather(1, last)) // 255
    below = hist.cumsum(1) - hist  # pixels below each level
    table = torch.where(step > 0, ((step // 2 + below) // step.clamp(min=1)).clamp(max=255),
                        torch.arange(256, device=x.device))
    return torch.index_select(table.to(torch.uint8).flatten(), 0, index).view(f, h, w, c)


def _op_equalize(spec: RandAugmentSpec, portable: bool):
    fn, _, _, _, augmentation = _dali()

    @augmentation
    def equalize(data, _):  # PIL's table, per frame and channel (equalize_frames)
        gpu = {"synchronize_stream": False} if data.device == "gpu" else {}  # it runs on DALI's stream
        return fn.dl_tensor_python_function(data, function=equalize_frames, batch_processing=False,
                                            output_layouts="FHWC", device=data.device, **gpu)

    return equalize


def _op_invert(spec: RandAugmentSpec, portable: bool):
    return _dali()[3].invert


def _op_warp(spec: RandAugmentSpec, portable: bool):
    """Rotate, ShearX, ShearY: a warp whose matrix comes computed (``pipeline.augment.op_block``),
    magnitude and sign included."""
    fn, _, _, _, augmentation = _dali()

    @augmentation
    def warp(data, _, geometry, interp_type):
        return _warp(data, fn.reshape(geometry[0:6], shape=[2, 3]), geometry[6:8], geometry[8:10], interp_type)

    return warp


def _op_posterize(spec: RandAugmentSpec, portable: bool):
    return _dali()[3].posterize.augmentation(
        mag_range=_levels(spec), mag_to_param=_posterize_increasing if spec.increasing else _posterize)


def _op_solarize(spec: RandAugmentSpec, portable: bool):
    *_, augmentation = _dali()

    @augmentation(mag_range=_levels(spec), param_device="auto",
                  mag_to_param=_solarize_increasing if spec.increasing else _solarize)
    def solarize(data, threshold):  # x >= threshold is inverted: x xor 255
        return data ^ ((data >= threshold) * _u8(255))

    return solarize


def _op_solarize_add(spec: RandAugmentSpec, portable: bool):
    *_, augmentation = _dali()

    @augmentation(mag_range=_levels(spec), param_device="auto", mag_to_param=_solarize_add)
    def solarize_add(data, shift):  # x < 128 gets + shift (at most 110: no overflow)
        return data + (data < _u8(128)) * shift

    return solarize_add


def _op_color(spec: RandAugmentSpec, portable: bool):
    fn, types, dmath, _, augmentation = _dali()

    eye, grey = types.Constant(np.eye(3, dtype=np.float32)), types.Constant(np.tile(LUMA, (3, 1)))

    @augmentation(**_enhance_args(spec))
    def color(data, factor):  # PIL: blend with the frame's grey image, grey + f (x - grey), truncated
        # one per-pixel colour matrix, f I + (1 - f) [luma; luma; luma]; PIL rounds the grey level first
        return fn.coord_transform(data, M=factor * eye + (1.0 - factor) * grey, T=TRUNCATE, dtype=types.UINT8)

    return color


def _op_contrast(spec: RandAugmentSpec, portable: bool):
    fn, types, dmath, _, augmentation = _dali()

    @augmentation(**_enhance_args(spec))
    def contrast(data, factor):  # PIL: blend towards the (rounded) mean grey level of each frame
        if portable:
            mean = fn.reductions.mean(data, axes=[1, 2], keep_dims=True)  # (F, 1, 1, C)
            grey = dmath.floor(fn.reductions.sum(mean * types.Constant(LUMA), axes=[3], keep_dims=True) + 0.5)
            return fn.cast(dmath.floor(grey + (data - grey) * factor), dtype=types.UINT8)  # blend truncates
        mean = fn.reductions.mean(data, axes=[1, 2])  # (F, C)
        grey = fn.reductions.sum(mean * types.Constant(LUMA), axes=[1])
        # the operator rounds; less half a level, it truncates as Image.blend does
        return fn.brightness_contrast(data, contrast=factor, contrast_center=fn.per_frame(dmath.floor(grey + 0.5)),
                                      brightness_shift=TRUNCATE / 255.0)

    return contrast


def _op_brightness(spec: RandAugmentSpec, portable: bool):
    fn, types, dmath, _, augmentation = _dali()

    @augmentation(**_enhance_args(spec))
    def brightness(data, factor):  # PIL: blend with black, f x, truncated (Image.blend)
        return fn.brightness(data, brightness=factor, brightness_shift=TRUNCATE / 255.0)

    return brightness


def _op_sharpness(spec: RandAugmentSpec, portable: bool):
    fn, types, dmath, _, augmentation = _dali()

    @augmentation(**_enhance_args(spec))
    def sharpness(data, factor, geometry):
        """PIL: blend with the frame smoothed by ``SMOOTH`` (rounded), truncated, inside a border
        of one pixel that PIL's filter leaves as it is. ``geometry[0:2]``: the region's (H, W), at
        least 3 each (``pipeline.augment``); its border either is the frame's or lies outside what
        later ops read."""
        h, w = geometry[0:1], geometry[1:2]

        def part(y, x, height, width):  # a slice of data at (y, x), anchors on the CPU
            return fn.slice(data, fn.cat(y, x), fn.cat(height, width), axes=[1, 2], normalized_anchor=False,
                            normalized_shape=False)

        zero, one = (types.Constant(np.array([v], np.float32), device="cpu") for v in (0, 1))
        smooth = fn.filter(data, types.Constant(SMOOTH, device=data.device), mode="valid")  # rounds, as PIL
        inside = fn.cast(part(one, one, h - 2.0, w - 2.0), dtype=types.INT16)
        blend = fn.cast(dmath.floor(smooth + factor * (inside - smooth)), dtype=types.UINT8)  # Image.blend
        middle = fn.cat(part(one, zero, h - 2.0, one), blend, part(one, w - 1.0, h - 2.0, one), axis=2)
        return fn.cat(part(zero, zero, one, w), middle, part(h - 1.0, zero, one, w), axis=1)

    return sharpness


def _op_translate(axis: int):
    """TranslateXRel (``axis`` 1) or TranslateYRel (0): the slice and taps come computed."""
    def factory(spec: RandAugmentSpec, portable: bool):
        *_, augmentation = _dali()

        @augmentation
        def translate(data, _, geometry, interp_type):
            return _translate(data, geometry[0:2], geometry[2:4], geometry[4:6], axis, interp_type)

        return translate

    return factory


#: timm's 15 ops, in the order the drawn op indices refer to (``pipeline.augment`` draws them), each a
#: factory of its DALI augmentation: ``(spec, portable) -> op``. ``portable``: Contrast and
#: AutoContrast as arithmetic that runs on either device (needed on the GPU); else their faster CPU
#: forms, which take statistics as named arguments. The geometric ops take a region of the frame
#: and give another, computing there what they compute on whole frames, with the parameters
#: ``pipeline.augment.op_block`` computes for them; the others keep their input's region.
OPS = {
    "AutoContrast": _op_auto_contrast, "Equalize": _op_equalize, "Invert": _op_invert, "Rotate": _op_warp,
    "Posterize": _op_posterize, "Solarize": _op_solarize, "SolarizeAdd": _op_solarize_add, "Color": _op_color,
    "Contrast": _op_contrast, "Brightness": _op_brightness, "Sharpness": _op_sharpness, "ShearX": _op_warp,
    "ShearY": _op_warp, "TranslateXRel": _op_translate(1), "TranslateYRel": _op_translate(0),
}
OP_NAMES = tuple(OPS)


LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # PIL's grey level (ITU-R 601)
#: PIL's ``ImageFilter.SMOOTH``, the image ``ImageEnhance.Sharpness`` blends with: 3x3, centre 5, sum 13
SMOOTH = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32) / 13
#: added before an operator's rounding so that it truncates, as PIL's blends and tables do (a level
#: within 0.001 below a whole one still rounds up)
TRUNCATE = -0.499


def _u8(value: int):
    from nvidia.dali import types

    return types.Constant(value, dtype=types.UINT8)


def _warp(data, matrix, size, own, interp_type):
    """Affine warp of FHWC ``data`` (its size ``own``, (H, W)) into an output of ``size`` (H, W),
    filling with ``FILL``: a one-pixel border of the fill colour, and a warp that clamps to the
    border. ``matrix`` (2x3) maps the bordered input's pixels to the output's."""
    from nvidia.dali import fn, types

    corner = types.Constant(np.array([-1, -1], np.float32), device="cpu")  # slice anchors live on the CPU
    bordered = fn.slice(data, corner, own + 2.0, axes=[1, 2], normalized_anchor=False,
                        normalized_shape=False, out_of_bounds_policy="pad", fill_values=FILL)
    # float output, then one cast: the same pixels as a uint8 warp (each rounds once), ~10% faster on
    # the CPU, where the uint8 warp rounds every value through a libm call
    warped = fn.warp_affine(bordered, matrix=matrix, size=size, interp_type=interp_type, inverse_map=False,
                            dtype=types.FLOAT)
    return fn.cast(warped, dtype=types.UINT8)


def _translate(data, anchor, shape, taps, axis: int, interp_type):
    """Shift FHWC ``data`` along frame ``axis`` (0 = y, 1 = x), filling with ``FILL``: the
    ``shape`` (H, W) slice of it at ``anchor`` (y, x; padded with the fill beyond it), and for
    bilinear a filter of the two ``taps`` over that slice, one pixel longer along ``axis`` than the
    output."""
    from nvidia.dali import fn, types

    sliced = fn.slice(data, anchor, shape, axes=[1, 2], normalized_anchor=False, normalized_shape=False,
                      out_of_bounds_policy="pad", fill_values=FILL)
    if interp_type == types.INTERP_NN:
        return sliced
    taps = fn.reshape(taps, shape=[1, 2] if axis == 1 else [2, 1])
    return fn.filter(sliced, taps.gpu() if data.device == "gpu" else taps, mode="valid")


class Step(NamedTuple):
    """One RandAugment op of each clip of a batch, as DALI nodes: the op index (``len(OP_NAMES)``:
    skipped), magnitude bin and sign (1 = negated), int32, and ``geometry``: the geometric ops'
    parameters (``pipeline.augment.op_block``), float."""

    op: object
    mag_bin: object
    sign: object
    geometry: object


def rand_augment(clips, spec: RandAugmentSpec, steps: list[Step]):
    """Apply RandAugment's drawn ``steps`` (``pipeline.augment`` draws them) to a batch of FHWC uint8
    clips inside a DALI pipeline defined with ``enable_conditionals=True``."""
    from nvidia.dali import types
    from nvidia.dali.auto_aug.augmentations import identity
    from nvidia.dali.auto_aug.core import select, signed_bin
    from nvidia.dali.pipeline import do_not_convert

    portable = clips.device == "gpu"
    ops = [do_not_convert(OPS[name])(spec, portable) for name in OP_NAMES]  # plain Python: no AutoGraph
    interp = types.INTERP_NN if spec.interp == "nearest" else types.INTERP_LINEAR
    for step in steps:
        # a skipped op selects the identity: one split and merge of the batch per op
        mag = signed_bin(step.mag_bin, random_sign=step.sign)
        clips = select(ops + [identity], step.op, clips, magnitude_bin=mag,
                       num_magnitude_bins=spec.num_bins, geometry=step.geometry, interp_type=interp)
    return clips
