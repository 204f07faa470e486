"""What each training clip's augmentation will be, drawn per sample in the source, before DALI runs it.

The source (``pipeline.source.ClipSource``) draws, for each of a video's ``num_sample``
augmentations, the random resized crop window (VideoMAE's ``_get_param_spatial_crop``) and the
RandAugment ops (timm's ``RandAugment``: ``n`` ops with replacement, each applied with probability
``p``, magnitude ``N(m, mstd)`` clipped to ``[0, mmax]``, sign random for the signed ops). Knowing the
crop before RandAugment runs, it also works out the part of the frame that each op has to compute
for the crop to come out as it would from whole-frame RandAugment (VideoMAE's order): the window,
grown backwards through every later geometric op (the box its inverse maps the needed box to, plus
a margin for the bilinear taps) and through Sharpness's 3x3 filter; the whole frame once an op that
takes whole-frame statistics (AutoContrast, Equalize, Contrast) comes later. A geometric op outputs
only its part; the others keep theirs. ``pipeline.randaug`` runs the ops on those parts: the same
pixels as whole frames, at a fraction of the work (``apt-video bench loader``).

The geometric ops' parameters are computed here too, in the regions' coordinates: the warps'
matrices and the translations' slices, so that the DALI graph holds one warp or one slice per op
and no small operators to build them.

All of it is one float32 row per augmentation (``HEAD + PER_OP * n`` values):

    window y, x, h, w | region before the first op y0, x0, y1, x1 | the last region's corner y, x |
    per op: op index (``len(OP_NAMES)`` = skipped), magnitude bin, sign (1 = negated), and ``BLOCK``
            values: for Rotate and Shear the matrix from the op's input (with a one-pixel border)
            to its output (2x3, row-major), the output's h, w and the input's h, w; for the
            translations the slice of the input (anchor y, x, shape h, w) and the two bilinear taps;
            for Sharpness its region's h, w (the border it keeps) |
    with random erasing (``reprob > 0``), ``ERASE`` values: applied (1 or 0), the box's top, left,
            h, w in pixels of the crop (``erase_box``)

Regions are whole pixels of the decoded frame, within it. With RandAugment on the crop
(``aa_region="crop"``), the frame is the resized crop and every region all of it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .randaug import BINS_PER_UNIT, GEOMETRIC, OP_NAMES, STATISTICS, RandAugmentSpec

AA_REGIONS = ("frame", "crop")  # where RandAugment runs: the full decoded frame (VideoMAE) or the crop
MARGIN = 2  # pixels beyond a box that a bilinear sample of it may read
SKIPPED = len(OP_NAMES)  # the op index of an op that was drawn but not applied (identity)
WINDOW, FIRST_REGION, LAST_CORNER = slice(0, 4), slice(4, 8), slice(8, 10)  # where a row holds them
HEAD = LAST_CORNER.stop  # window (4), first region (4), last region's corner (2)
BLOCK = 10  # a geometric op's parameters
PER_OP = 3 + BLOCK  # op, bin, sign, parameters
WARPS = ("Rotate", "ShearX", "ShearY")
ERASE = 5  # random erasing's values at the end of a row: applied, top, left, h, w


@dataclass(frozen=True)
class AugmentSpec:
    """Training augmentation after decoding, in DALI. There is no colour jitter: VideoMAE's video
    datasets never apply one (timm drops it under an auto-augment policy, and without a policy
    their loader has no augmentation to run)."""

    rand_augment: RandAugmentSpec | None = None
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    reprob: float = 0.0  # random erasing probability (one box on every frame, per-pixel N(0, 1) noise)
    aa_region: str = "frame"  # one of AA_REGIONS

    def __post_init__(self):
        if self.aa_region not in AA_REGIONS:
            raise ValueError(f"aa_region={self.aa_region!r}: choose one of {', '.join(AA_REGIONS)}")

    @property
    def num_ops(self) -> int:
        """RandAugment ops drawn per clip (0: none)."""
        return self.rand_augment.n if self.rand_augment is not None else 0


def crop_window(h: int, w: int, scale, ratio, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """``(y, x, h, w)`` of a random resized crop of an ``h x w`` frame, as VideoMAE's
    ``_get_param_spatial_crop`` draws it: ten tries of an area in ``scale`` of the frame and a
    log-uniform aspect ratio in ``ratio``, rounded; else the centred largest crop within ``ratio``."""
    for _ in range(10):
        area = h * w * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        cw, ch = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
        if 0 < cw <= w and 0 < ch <= h:
            return int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1)), ch, cw
    if w / h < min(ratio):
        cw, ch = w, int(round(w / min(ratio)))
    elif w / h > max(ratio):
        cw, ch = int(round(h * max(ratio))), h
    else:
        cw, ch = w, h
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def draw_ops(spec: RandAugmentSpec, rng: np.random.Generator) -> np.ndarray:
    """``(n, 3)`` int: op index (``SKIPPED`` when not applied), magnitude bin, sign (1 = negated),
    as timm's RandAugment draws them for one clip (every frame gets the same)."""
    drawn = [OP_NAMES.index(name) for name in spec.only] or list(range(len(OP_NAMES)))
    out = np.zeros((spec.n, 3), np.int64)
    for k in range(spec.n):
        op = drawn[int(rng.integers(len(drawn)))]
        mag = min(max(rng.normal(spec.m, spec.mstd) if spec.mstd > 0 else spec.m, 0.0), spec.mmax)
        applied = rng.random() < spec.p
        out[k] = (op if applied else SKIPPED, int(math.floor(mag * BINS_PER_UNIT + 0.5)), int(rng.random() < 0.5))
    return out


def op_param(spec: RandAugmentSpec, op: int, mag_bin: int, sign: int) -> float:
    """The parameter a geometric op gets for a magnitude bin and sign (degrees for Rotate, the shear
    factor, the translation as a fraction of the frame), mapped as DALI's ``augmentation`` maps the
    other ops' magnitudes: ``linspace(0, top * mmax / 10, num_bins)[bin]``. rand_augment.py's
    parameter is that value, negated for sign 1 (``_randomly_negate``), and PIL's ``transform`` and
    ``rotate`` read it as the map from the output to the source (``rotate``: counter-clockwise); the
    matrices here map the source to the output, so they take it negated."""
    top = GEOMETRIC[OP_NAMES[op]] * spec.mmax / 10.0
    value = float(np.linspace(0.0, top, spec.num_bins, dtype=np.float32)[mag_bin])
    return value if sign else -value


def op_matrix(name: str, param: float, h: int, w: int) -> np.ndarray:
    """The 2x3 matrix (x, y, source to output pixels) of a warping op on the whole ``h x w`` frame:
    Rotate about the frame centre, Shear about the origin, as DALI's ``transforms.rotation`` and
    ``transforms.shear`` define them (tests/test_randaug.py compares the two). The regions are walked
    back with it and the warps' matrices built from it."""
    if name == "Rotate":
        a = math.radians(param)
        r = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        c = np.array([w / 2, h / 2])
        return np.concatenate([r, (c - r @ c)[:, None]], 1)
    if name == "ShearX":
        return np.array([[1.0, param, 0.0], [0.0, 1.0, 0.0]])
    return np.array([[1.0, 0.0, 0.0], [param, 1.0, 0.0]])  # ShearY


def _source_box(name: str, param: float, box, h: int, w: int):
    """The box of the input that the output ``box`` (y0, x0, y1, x1, edges in pixels) reads,
    before the margin: its corners mapped back through the op."""
    y0, x0, y1, x1 = box
    if name in ("TranslateXRel", "TranslateYRel"):  # output i reads input i - param * length
        if name == "TranslateXRel":
            return y0, x0 - param * w, y1, x1 - param * w
        return y0 - param * h, x0, y1 - param * h, x1
    m = op_matrix(name, param, h, w)
    corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], float)
    src = (corners - m[:, 2]) @ np.linalg.inv(m[:, :2]).T
    return src[:, 1].min(), src[:, 0].min(), src[:, 1].max(), src[:, 0].max()


def _within(box, h: int, w: int, margin: float) -> np.ndarray:
    """``box`` grown by ``margin`` to whole pixels, cut to the frame; at least one pixel (a box
    wholly outside the frame reads nothing of it: any pixel will do)."""
    y0, x0 = min(max(0, math.floor(box[0] - margin)), h - 1), min(max(0, math.floor(box[1] - margin)), w - 1)
    y1, x1 = max(min(h, math.ceil(box[2] + margin)), y0 + 1), max(min(w, math.ceil(box[3] + margin)), x0 + 1)
    return np.array([y0, x0, y1, x1], np.int64)


def _at_least(box: np.ndarray, size: int, h: int, w: int) -> np.ndarray:
    """``box`` (y0, x0, y1, x1) grown to ``size`` pixels along each axis, within the frame (an
    ``h x w`` frame smaller than that: all of it)."""
    out = box.copy()
    for lo, hi, length in ((0, 2, h), (1, 3, w)):
        short = min(size, length) - (out[hi] - out[lo])
        if short > 0:  # further on the far side, the rest on the near side
            far = min(length, out[hi] + short)
            out[lo], out[hi] = out[lo] - (short - (far - out[hi])), far
    return out


def regions(spec: RandAugmentSpec, ops: np.ndarray, window, h: int, w: int) -> np.ndarray:
    """``(n + 1, 4)`` regions (y0, x0, y1, x1): before the first op, then after each op, such that
    every op computes on its region what it computes there on whole frames, and the last region
    holds ``window`` (y, x, h, w) with the crop's bilinear margin."""
    full = np.array([0, 0, h, w], np.int64)
    y, x, ch, cw = window
    need = _within((y, x, y + ch, x + cw), h, w, MARGIN)  # what the crop's resize reads
    needed = [need]  # backwards: what is needed after op k, k = n-1 .. 0
    for op, mag_bin, sign in ops[::-1]:
        name = OP_NAMES[op] if op != SKIPPED else None
        if name in STATISTICS:
            need = full
        elif name in GEOMETRIC:
            need = _within(_source_box(name, op_param(spec, op, mag_bin, sign), need, h, w), h, w, MARGIN)
        elif name == "Sharpness":  # its 3x3 filter, on a region of at least 3 x 3 (pipeline.randaug)
            need = _at_least(_within(need, h, w, 1), 3, h, w)
        needed.append(need)
    needed = needed[::-1]  # needed[k]: before op k (k = 0 .. n-1); needed[n]: after the last op
    out = [needed[0]]
    for k, (op, _, _) in enumerate(ops):  # forwards: a geometric op outputs what is needed after it
        out.append(needed[k + 1] if op != SKIPPED and OP_NAMES[op] in GEOMETRIC else out[-1])
    return np.stack(out)


def op_block(spec: RandAugmentSpec, op: int, mag_bin: int, sign: int, h: int, w: int, box_in, box_out) -> list:
    """The ``BLOCK`` parameters of one op that reads region ``box_in`` and writes ``box_out`` (y0, x0,
    y1, x1) of an ``h x w`` frame (zeros for the ops that take none)."""
    name = OP_NAMES[op] if op != SKIPPED else None
    if name == "Sharpness":  # the region's size: its border stays as it is
        return [float(box_in[2] - box_in[0]), float(box_in[3] - box_in[1])] + [0.0] * (BLOCK - 2)
    if name not in GEOMETRIC:
        return [0.0] * BLOCK
    param = op_param(spec, op, mag_bin, sign)
    iy, ix, iy1, ix1 = (int(v) for v in box_in)
    oy, ox, oy1, ox1 = (int(v) for v in box_out)
    if name in WARPS:  # bordered input pixel -> frame -> the op -> output region
        def shift(dx, dy):
            return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])
        m = shift(-ox, -oy) @ np.vstack([op_matrix(name, param, h, w), [0.0, 0.0, 1.0]]) @ shift(ix - 1, iy - 1)
        return [*m[:2].ravel(), oy1 - oy, ox1 - ox, iy1 - iy, ix1 - ix]
    axis = 1 if name == "TranslateXRel" else 0  # output i reads input i - param * length, in float32
    src = float(np.float32(w if axis else h) * np.float32(param) * np.float32(-1.0))
    anchor, shape = [oy - iy, ox - ix], [oy1 - oy, ox1 - ox]
    if spec.interp == "nearest":
        anchor[axis] += math.floor(src + 0.5)
        return [*anchor, *shape, 1.0, 0.0] + [0.0] * (BLOCK - 6)
    whole = math.floor(src)
    anchor[axis] += whole
    shape[axis] += 1  # one more pixel for the two-tap filter
    frac = np.float32(src - whole)
    return [*anchor, *shape, float(np.float32(1.0) - frac), float(frac)] + [0.0] * (BLOCK - 6)


def erase_box(size: int, prob: float, rng: np.random.Generator) -> list[float]:
    """Random erasing of a ``size x size`` crop as VideoMAE's kinetics.py runs it (its
    random_erasing.py, ``mode="pixel"``, ``max_count=1``, cube: the frames are the batch, and one box
    is erased on all of them): applied with probability ``prob``; up to 100 tries of an area of
    2-33% of the crop at a log-uniform aspect ratio in [0.3, 1/0.3], sides rounded, kept when both
    are below ``size``. Returns ``[applied, top, left, h, w]`` (zeros when not applied)."""
    if rng.random() > prob:
        return [0.0] * ERASE
    area = size * size
    for _ in range(100):
        target = rng.uniform(0.02, 1 / 3) * area
        aspect = math.exp(rng.uniform(math.log(0.3), math.log(1 / 0.3)))
        h, w = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if w < size and h < size:
            top, left = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
            return [1.0, float(top), float(left), float(h), float(w)]
    return [0.0] * ERASE


def plan(augment: AugmentSpec, h: int, w: int, size: int, rng: np.random.Generator, cut: bool = True) -> np.ndarray:
    """One augmentation of an ``h x w`` clip cropped to ``size``: the float32 row described in the
    module docstring. ``cut=False``: every region is the whole frame (for comparison)."""
    ra = augment.rand_augment
    n = augment.num_ops
    window = crop_window(h, w, augment.scale, augment.ratio, rng)
    ops = draw_ops(ra, rng) if n else np.zeros((0, 3), np.int64)
    if augment.aa_region == "crop":  # RandAugment on the whole resized crop
        h = w = size
    if min(h, w) < 3:  # PIL's Sharpness leaves a frame this small as it is (all of it is border)
        ops[ops[:, 0] == OP_NAMES.index("Sharpness"), 0] = SKIPPED
    if cut and augment.aa_region == "frame" and n:
        boxes = regions(ra, ops, window, h, w)
    else:
        boxes = np.tile(np.array([0, 0, h, w], np.int64), (n + 1, 1))
    row = [*window, *boxes[0], *boxes[n][:2]]
    for k in range(n):
        row += [*ops[k], *op_block(ra, *ops[k], h, w, boxes[k], boxes[k + 1])]
    if augment.reprob > 0:
        row += erase_box(size, augment.reprob, rng)
    return np.asarray(row, np.float32)
