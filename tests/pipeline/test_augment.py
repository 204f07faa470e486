"""The augmentation the source draws (``pipeline.augment``): the crop window as VideoMAE draws it,
RandAugment's draws as timm's, and RandAugment computed on the regions the crop needs giving the
pixels that whole-frame RandAugment gives (VideoMAE's order), for every op and many draws."""
import dataclasses
import math

import numpy as np
import pytest

from apt_video.models.card import ClipSpec
from apt_video.pipeline.augment import (
    HEAD,
    PER_OP,
    SKIPPED,
    AugmentSpec,
    crop_window,
    draw_ops,
    erase_box,
    plan,
    regions,
)
from apt_video.pipeline.graphs import _augment
from apt_video.pipeline.randaug import OP_NAMES, parse_rand_augment

from reference import ref_erase_cube_box, ref_spatial_crop


class _PythonRandom:
    """``random.uniform`` / ``random.randint`` as the reference calls them, read from a numpy
    generator in the order ours reads it."""

    def __init__(self, rng):
        self.rng = rng

    def random(self):
        return self.rng.random()

    def uniform(self, a, b):
        return self.rng.uniform(a, b)

    def randint(self, a, b):
        return int(self.rng.integers(a, b + 1))


@pytest.mark.parametrize("h,w", [(240, 320), (320, 240), (100, 1000), (1000, 90), (7, 5), (224, 224)])
def test_crop_window_is_videomaes(h, w):
    """VideoMAE's ``_get_param_spatial_crop`` (ten tries, log-uniform ratio, central fallback) fed
    the same random numbers gives the same windows; the fallback is reached on the thin frames."""
    scale, ratio = (0.08, 1.0), (3 / 4, 4 / 3)
    for seed in range(300):
        ours = crop_window(h, w, scale, ratio, np.random.default_rng(seed))
        ref = ref_spatial_crop(scale, ratio, h, w, _PythonRandom(np.random.default_rng(seed)))
        assert ours == ref, (seed, ours, ref)
        y, x, ch, cw = ours
        assert 0 <= y and y + ch <= h and 0 <= x and x + cw <= w and ch > 0 and cw > 0


def test_ops_are_drawn_as_timm_draws_them():
    """n ops with replacement, uniform over the 15; each applied with probability p; magnitude
    N(m, mstd) clipped to [0, mmax] in 1/3 bins; the signed ops negated half the time."""
    spec = parse_rand_augment("rand-m7-n4-mstd0.5-inc1")
    rng = np.random.default_rng(0)
    d = np.concatenate([draw_ops(spec, rng) for _ in range(5000)])
    applied = d[:, 0] != SKIPPED
    assert abs(applied.mean() - 0.5) < 0.02
    counts = np.bincount(d[applied, 0], minlength=15)
    assert len(counts) == 15 and counts.min() > 0.85 * counts.mean()
    assert abs(d[:, 1].mean() / 3 - 7) < 0.02 and abs(d[:, 1].std() / 3 - 0.5) < 0.05
    assert abs(d[:, 2].mean() - 0.5) < 0.02
    capped = draw_ops(dataclasses.replace(spec, m=10, mstd=5), np.random.default_rng(1))
    assert (capped[:, 1] <= 30).all()
    only = draw_ops(dataclasses.replace(spec, only=("Invert",), p=1.0), rng)
    assert (only[:, 0] == OP_NAMES.index("Invert")).all()


def _augment_both(frames, spec, augment, seeds, size=32):
    """``_augment`` of ``frames`` under each seed's plan, with the regions cut and uncut."""
    from nvidia.dali import fn, pipeline_def

    h, w = frames.shape[1:3]
    rows = {cut: [plan(augment, h, w, size, np.random.default_rng(s), cut=cut) for s in seeds] for cut in (True, False)}
    clip_spec = ClipSpec(num_frames=len(frames), input_size=size)

    @pipeline_def(batch_size=len(seeds), num_threads=2, device_id=None, enable_conditionals=True)
    def pipe():
        clip = fn.external_source(source=lambda: [frames] * len(seeds), layout="FHWC")
        cut = fn.external_source(source=lambda: rows[True])  # (a source that takes no argument)
        whole = fn.external_source(source=lambda: rows[False])
        return _augment(clip, cut, clip_spec, augment), _augment(clip, whole, clip_spec, augment)

    p = pipe()
    p.build()
    cut, whole = p.run()
    return [np.asarray(cut[i]) for i in range(len(seeds))], [np.asarray(whole[i]) for i in range(len(seeds))], rows


@pytest.mark.parametrize("interp", ["bilinear", "nearest"])
def test_regions_give_the_pixels_of_whole_frame_rand_augment(interp):
    """Every op on many draws (geometric ones chained, statistics ops before and after them): the
    crop of RandAugment run on the needed regions equals the crop of RandAugment on whole frames.
    The frames are noise, where a pixel taken from the wrong place shows."""
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (3, 48, 64, 3), dtype=np.uint8)
    frames[:, 10:30, 20:50] //= 2  # and some structure, for the statistics ops
    spec = dataclasses.replace(parse_rand_augment("rand-m9-n4-mstd1-inc1-p0.8", interp))
    augment = AugmentSpec(rand_augment=spec, scale=(0.05, 0.6), flip=False)
    seeds = list(range(96))
    cut, whole, rows = _augment_both(frames, spec, augment, seeds)
    level = 1 / (255 * 0.225) + 1e-4  # one grey level, normalised
    smaller = 0
    for s, a, b, row in zip(seeds, cut, whole, rows[True]):
        diff = np.abs(a - b)
        # The warp's coordinates, computed in region coordinates, differ in float rounding: where
        # the exact value is a tie (x.5, common with two-decimal shear factors) the two round to
        # neighbouring levels, and a later Posterize or Solarize threshold can widen a few of those.
        # A pixel taken from the wrong place would differ by the noise's spread. Nearest resampling
        # takes the other neighbour at such a tie: on noise, a jump (up to 8% of the values here, a
        # shear of -0.28 whose ties fall on whole rows). A region read from a wrong place differs
        # nearly everywhere.
        wrong = (diff > level).mean()
        near = interp == "nearest"
        assert (diff > 1e-6).mean() < (0.09 if near else 0.05) and wrong < (0.09 if near else 0.01), (s, row)
        smaller += (row[6] - row[4]) * (row[7] - row[5]) < 48 * 64  # the first region
    assert smaller > 40  # the regions were cut in most draws


def test_sharpness_on_regions_gives_whole_frame_pixels_exactly():
    """Sharpness (its border kept where the region meets the frame's edge) with whole-pixel shifts
    before and after it: the crop of the regions equals the crop of whole frames, every value, for
    windows anywhere up to the whole frame."""
    frames = np.random.default_rng(4).integers(0, 256, (2, 40, 52, 3), dtype=np.uint8)
    spec = dataclasses.replace(parse_rand_augment("rand-m9-n3-mstd1-inc1-p1", "nearest"),
                               only=("Sharpness", "TranslateXRel", "TranslateYRel"))
    augment = AugmentSpec(rand_augment=spec, scale=(0.05, 1.0), flip=False)
    seeds = list(range(48))
    cut, whole, rows = _augment_both(frames, spec, augment, seeds)
    sharp = OP_NAMES.index("Sharpness")
    assert sum(sharp in row[HEAD::PER_OP] for row in rows[True]) > 30
    edge = 0
    for s, a, b, row in zip(seeds, cut, whole, rows[True]):
        np.testing.assert_array_equal(a, b, err_msg=str(s))
        edge += row[4] == 0 or row[5] == 0 or row[6] == 40 or row[7] == 52  # a region at the frame's edge
    assert edge > 10


def test_regions_follow_the_crop_back_through_the_ops():
    """Hand-checked cases: no op (the window and its margin), a translation (the window shifted
    back), a statistics op (the whole frame before it), a skipped op (nothing changes)."""
    spec = parse_rand_augment("rand-m9-n1-mstd0-inc1")
    window = (100, 150, 50, 60)  # y, x, h, w in a 240 x 320 frame
    none = regions(spec, np.zeros((0, 3), np.int64), window, 240, 320)
    assert none.tolist() == [[98, 148, 152, 212]]
    tx = OP_NAMES.index("TranslateXRel")  # bin 27 = 0.405 of the width, negated (sign 1): as PIL's
    got = regions(spec, np.array([[tx, 27, 1]]), window, 240, 320)  # transform, output x reads x - 129.6
    assert got[1].tolist() == [98, 148, 152, 212]
    assert got[0].tolist() == [96, math.floor(148 - 129.6 - 2), 154, math.ceil(212 - 129.6 + 2)]
    eq = OP_NAMES.index("Equalize")
    assert regions(spec, np.array([[eq, 27, 0]]), window, 240, 320).tolist() == [[0, 0, 240, 320]] * 2
    assert regions(spec, np.array([[SKIPPED, 27, 0]]), window, 240, 320).tolist() == [[98, 148, 152, 212]] * 2
    far = regions(spec, np.array([[tx, 27, 0]]), (0, 300, 10, 20), 240, 320)  # reads only beyond the frame
    assert far[0].tolist() == [0, 319, 14, 320]  # one pixel will do
    sharp = OP_NAMES.index("Sharpness")  # before it: one pixel more, and at least its 3x3 filter's size
    got = regions(spec, np.array([[sharp, 27, 0], [tx, 27, 0]]), (0, 300, 10, 20), 240, 320)
    assert got[0].tolist() == [0, 317, 15, 320]
    assert regions(spec, np.array([[sharp, 27, 0]]), window, 240, 320)[0].tolist() == [97, 147, 153, 213]


def test_sharpness_is_skipped_on_frames_smaller_than_its_filter():
    """PIL's Sharpness leaves a frame under 3 pixels high or wide as it is (all of it is the border
    its filter leaves): the plan skips it there, and gives it its region's size elsewhere."""
    sharp = OP_NAMES.index("Sharpness")
    spec = dataclasses.replace(parse_rand_augment("rand-m9-n2-mstd0-inc1-p1"), only=("Sharpness",))
    augment = AugmentSpec(rand_augment=spec)
    for h, w, kept in ((2, 40, False), (40, 2, False), (3, 3, True), (48, 64, True)):
        row = plan(augment, h, w, 8, np.random.default_rng(0))
        ops = [int(row[HEAD + PER_OP * k]) for k in range(2)]
        assert ops == ([sharp] * 2 if kept else [SKIPPED] * 2), (h, w)
        if kept:
            size = row[HEAD + 3:HEAD + 5]
            assert size.tolist() == [row[6] - row[4], row[7] - row[5]] and min(size) >= 3


@pytest.mark.parametrize("size,prob", [(224, 0.25), (112, 1.0), (16, 1.0), (3, 1.0)])
def test_erase_box_is_videomaes(size, prob):
    """VideoMAE's RandomErasing (cube, one box; up to 100 tries) fed the same random numbers gives
    the same boxes; no box fits a crop of 3 (a side of 3 is never below 3, 1 is never 2% of 9)."""
    for seed in range(400):
        ours = erase_box(size, prob, np.random.default_rng(seed))
        ref = ref_erase_cube_box(size, size, prob, _PythonRandom(np.random.default_rng(seed)))
        assert (tuple(int(v) for v in ours[1:]) if ours[0] else None) == ref, (seed, ours, ref)


def test_random_erasing_fills_one_box_with_fresh_noise_on_every_frame():
    """Through the training graph: with reprob 1 the clip equals the unerased one outside one box,
    the same box on every frame, where it holds N(0, 1) noise drawn anew for each frame and channel
    (random_erasing.py pixel mode, after normalisation)."""
    frames = np.random.default_rng(3).integers(0, 256, (4, 48, 64, 3), dtype=np.uint8)
    size, seeds = 32, list(range(6))
    plain = AugmentSpec(flip=False)
    erased = dataclasses.replace(plain, reprob=1.0)
    a, _, _ = _augment_both(frames, ClipSpec(), plain, seeds, size)
    b, _, rows = _augment_both(frames, ClipSpec(), erased, seeds, size)
    for k in range(len(seeds)):
        applied, top, left, h, w = (int(v) for v in rows[True][k][-5:])
        assert applied == 1 and 0.02 * size * size - size <= h * w <= size * size / 3 + size
        inside = np.zeros((size, size), bool)
        inside[top:top + h, left:left + w] = True
        np.testing.assert_array_equal(b[k][:, :, ~inside], a[k][:, :, ~inside])
        noise = b[k][:, :, inside]  # (C, F, pixels)
        assert abs(noise.mean()) < 0.15 and abs(noise.std() - 1) < 0.15
        assert not np.allclose(noise[:, 0], noise[:, 1]) and not np.allclose(noise[0], noise[1])
