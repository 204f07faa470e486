"""Samplers and view geometry against VideoMAE's datasets, re-implemented here from the reference.

The ``ref_*`` functions (tests/reference.py) transcribe the index formulas of MCG-NJU/VideoMAE (the same code is in
wgcban/apt): kinetics.py ``loadvideo_decord`` and ``__getitem__`` (dense sampler, used for Kinetics,
UCF101 and HMDB51), ssv2.py (TSN segments) and functional.py ``get_resize_sizes``. They are written
as the reference writes them, not as ``pipeline.sampling`` does, and compared over many video lengths."""
import itertools

import numpy as np
import pytest

from apt_video.models.card import ClipSpec
from apt_video.pipeline.sampling import (
    crop_offsets,
    dense_indices,
    dense_view_indices,
    eval_indices,
    resize_short_side,
    segment_indices,
    segment_view_indices,
    train_indices,
    view_indices,
)

from reference import (
    ref_center_crop,
    ref_crop_starts,
    ref_kinetics_test,
    ref_kinetics_train,
    ref_resize,
    ref_ssv2_test,
    ref_ssv2_train,
)

LENGTHS = [1, 2, 3, 5, 7, 15, 16, 17, 30, 31, 32, 33, 47, 63, 64, 65, 100, 127, 128, 129, 300, 1001]


# -- the reference, transcribed -----------------------------------------------------------------------
# -- parity ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,clip,rate", list(itertools.product(LENGTHS, [8, 16], [1, 2, 4])))
def test_dense_train_equals_kinetics_py(n, clip, rate):
    for seed in range(10):
        ours = dense_indices(n, clip, rate, np.random.default_rng(seed))
        ref_rng = np.random.default_rng(seed)
        ref = ref_kinetics_train(n, clip, rate, lambda lo, hi: int(ref_rng.integers(lo, hi)))
        assert ours.tolist() == [int(v) for v in ref]
        spec = ClipSpec(num_frames=clip, sampling_rate=rate)
        assert train_indices(spec, n, np.random.default_rng(seed)).tolist() == ours.tolist()


def test_dense_window_start_is_random_and_covers_the_video():
    rng = np.random.default_rng(0)
    starts = {int(dense_indices(200, 16, 4, rng)[0]) for _ in range(500)}
    assert min(starts) == 0 and max(starts) == 200 - 1 - 64 and len(starts) > 100


@pytest.mark.parametrize("n,clip,rate,segments", list(itertools.product(LENGTHS, [8, 16], [1, 2, 4], [2, 3, 5, 10])))
def test_dense_test_views_equal_kinetics_py(n, clip, rate, segments):
    ours = dense_view_indices(n, clip, rate, segments)
    assert ours.tolist() == ref_kinetics_test(n, clip, rate, segments)
    spec = ClipSpec(num_frames=clip, sampling_rate=rate, test_num_segment=segments)
    assert view_indices(spec, n).tolist() == ours.tolist()


def test_one_dense_test_segment_starts_at_zero():
    # the reference divides by zero here (segments - 1); one segment is the first window
    assert dense_view_indices(100, 16, 4, 1).tolist() == [list(range(0, 64, 4))]


@pytest.mark.parametrize("n", LENGTHS)
def test_ssv2_train_equals_ssv2_py(n):
    for seed in range(10):
        ours = segment_indices(n, 16, np.random.default_rng(seed))
        ref_rng = np.random.default_rng(seed)
        ref = ref_ssv2_train(n, 16, lambda hi, size: ref_rng.integers(hi, size=size))
        assert ours.tolist() == [int(v) for v in ref]
        spec = ClipSpec(sampler="segment")
        assert train_indices(spec, n, np.random.default_rng(seed)).tolist() == ours.tolist()


@pytest.mark.parametrize("n", LENGTHS)
def test_ssv2_validation_takes_segment_middles(n):
    avg = n // 16
    want = [x * avg + avg // 2 for x in range(16)] if avg else [0] * 16
    assert segment_indices(n, 16, None).tolist() == want
    assert eval_indices(ClipSpec(sampler="segment"), n).tolist() == want


@pytest.mark.parametrize("n", LENGTHS)
def test_ssv2_two_test_views_equal_ssv2_py(n):
    ours = segment_view_indices(n, 16, 2)
    assert ours.tolist() == [[int(v) for v in view] for view in ref_ssv2_test(n, 16)]
    spec = ClipSpec(sampler="segment", test_num_segment=2)
    assert view_indices(spec, n).tolist() == ours.tolist()


@pytest.mark.parametrize("n,segments", list(itertools.product([16, 33, 64, 65, 200, 1001], [1, 3, 5, 10])))
def test_ssv2_views_generalise_to_any_count(n, segments):
    views = segment_view_indices(n, 16, segments)
    tick = n / 16
    assert views.shape == (segments, 16) and views.min() >= 0 and views.max() <= n - 1
    assert views[0].tolist() == [int(tick * x) for x in range(16)]  # view 0: the segment starts
    assert views.tolist() == [[int(tick * x + tick * k / segments) for x in range(16)] for k in range(segments)]
    if n >= 16 * segments:  # long enough: every view is a different clip, inside its segments
        assert len({tuple(v) for v in views.tolist()}) == segments
        for x in range(16):
            assert all(int(tick * x) <= v < int(tick * (x + 1)) + 1 for v in views[:, x])


def test_short_ssv2_videos_keep_their_views_apart():
    # 10 dense segments of a 48-frame SSv2 video at rate 4 would all be one clip; TSN views are not
    spec = ClipSpec(sampler="segment", test_num_segment=10)
    assert len({tuple(v) for v in view_indices(spec, 160).tolist()}) == 10
    dense = ClipSpec(sampler="dense", test_num_segment=10)
    assert len({tuple(v) for v in view_indices(dense, 48).tolist()}) == 1


@pytest.mark.parametrize("h,w,size,crops", list(itertools.product([240, 320, 224, 1080, 97], [320, 240, 1920, 224],
                                                                  [224, 112], [2, 3, 5])))
def test_resize_and_crops_equal_the_reference(h, w, size, crops):
    rh, rw = resize_short_side(h, w, size)
    assert (rh, rw) == ref_resize(h, w, size)
    offsets = crop_offsets(rh, rw, size, crops)
    starts = ref_crop_starts(rh, rw, size, crops)
    want = [(s, 0) for s in starts] if rh >= rw else [(0, s) for s in starts]
    assert offsets == want


@pytest.mark.parametrize("h,w", [(240, 320), (320, 240), (240, 427), (427, 240), (360, 481), (224, 299),
                                 (224, 301), (224, 225), (128, 171), (1080, 1920), (97, 131)])
@pytest.mark.parametrize("size", [224, 112])
def test_one_crop_is_videomae_center_crop(h, w, size):
    """One crop (validation's, and a test of one crop, where kinetics.py's test branch divides by
    zero) is video_transforms.CenterCrop on the resized frame: Python's round of half the margin,
    which sends .5 to the even neighbour (margins of 75 and 77 both start at 38)."""
    rh, rw = resize_short_side(h, w, size)
    assert crop_offsets(rh, rw, size, 1) == [ref_center_crop(rh, rw, size)]
