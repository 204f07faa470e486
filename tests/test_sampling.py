"""Samplers and view geometry against the VideoMAE formulas, over the parameter space."""
import itertools

import numpy as np
import pytest

from pipeline.sampling import (ClipSpec, crop_offsets, dense_indices, resize_short_side, segment_indices,
                               test_view_indices as view_indices)


@pytest.mark.parametrize("n,clip,rate", list(itertools.product([1, 5, 30, 64, 65, 300], [8, 16], [1, 2, 4])))
def test_dense_indices_follow_videomae(n, clip, rate):
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = dense_indices(n, clip, rate, rng)
        assert idx.shape == (clip,) and idx.min() >= 0 and idx.max() <= n - 1
        assert np.all(np.diff(idx) >= 0)
        if n > clip * rate:  # a window of clip*rate frames
            assert idx[-1] - idx[0] <= clip * rate - 1
            start = idx[0]
            np.testing.assert_array_equal(
                idx, np.clip(np.linspace(start, start + clip * rate, clip), start, start + clip * rate - 1)
                .astype(int))
        else:  # the whole video at `rate`, padded with the last frame
            k = n // rate
            head = np.clip(np.linspace(0, n, k), 0, n - 1).astype(int) if k else np.array([], int)
            np.testing.assert_array_equal(idx, np.concatenate([head, np.full(clip - k, n - 1)]))


def test_dense_window_start_is_random_and_covers_the_video():
    rng = np.random.default_rng(0)
    starts = {int(dense_indices(200, 16, 4, rng)[0]) for _ in range(500)}
    assert min(starts) == 0 and max(starts) == 200 - 1 - 64 and len(starts) > 100


def test_segment_sampler_ssv2():
    np.testing.assert_array_equal(segment_indices(33, 16, None), [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23,
                                                                  25, 27, 29, 31])
    rng = np.random.default_rng(0)
    for n in (3, 16, 50):
        idx = segment_indices(n, 16, rng)
        seg = (n - 1) / 16
        for i, v in enumerate(idx):
            assert round(seg * i) <= v <= round(seg * (i + 1))


def test_test_views_exact_values():
    # 70 frames at rate 2 -> 35 sampled frames; 3 segments of 8 start at int(k * 27 / 2) = 0, 13, 27
    v = view_indices(70, 8, 2, 3)
    np.testing.assert_array_equal(v[:, 0], [0, 26, 54])
    np.testing.assert_array_equal(v[1], np.arange(26, 42, 2))
    # short video: every frame at the rate, padded with the last sampled one
    np.testing.assert_array_equal(view_indices(5, 8, 2, 2), [[0, 2, 4, 4, 4, 4, 4, 4]] * 2)
    # 10 segments over 300 frames at rate 4: 75 frames, step 59/9
    v = view_indices(300, 16, 4, 10)
    assert [r[0] // 4 for r in v] == [int(k * 59 / 9) for k in range(10)]
    assert view_indices(100, 16, 4, 1)[0][0] == 0


@pytest.mark.parametrize("h,w,size,crops", list(itertools.product([240, 320, 224, 1080], [320, 240, 1920],
                                                                  [224, 112], [1, 2, 3, 5])))
def test_resize_and_crops(h, w, size, crops):
    rh, rw = resize_short_side(h, w, size)
    assert min(rh, rw) == size
    assert (rh >= rw) == (h >= w) or rh == rw
    offsets = crop_offsets(rh, rw, size, crops)
    assert len(offsets) == crops
    long = max(rh, rw)
    starts = [y if rh >= rw else x for y, x in offsets]
    if crops == 1:
        assert starts == [(long - size) // 2]
    else:
        assert starts == [int(j * (long - size) / (crops - 1)) for j in range(crops)]
        assert starts[0] == 0 and starts[-1] == long - size
    for y, x in offsets:
        assert 0 <= y <= rh - size and 0 <= x <= rw - size


def test_resize_truncates_like_videomae():
    assert resize_short_side(240, 320, 224) == (224, 298)  # 298.67 -> 298
    assert resize_short_side(320, 240, 224) == (298, 224)


def test_clip_spec_validates():
    with pytest.raises(ValueError, match="test_num_crop=0"):
        ClipSpec(test_num_crop=0)
    with pytest.raises(ValueError, match="sampler='tsn'"):
        ClipSpec(sampler="tsn")
    assert ClipSpec().num_views == 30
