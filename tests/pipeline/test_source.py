"""pipeline.source: the training source streams past an epoch's end into the next epoch's samples."""
import numpy as np
import pytest

from apt_video.models.card import ClipSpec
from apt_video.pipeline.source import ClipSource
from apt_video.pipeline.video import probe_video


def test_the_training_source_runs_past_the_epoch_end_into_the_next_epoch(index_videos):
    # what DALI asks after an epoch's last sample is the next epoch's first, not an end of data
    from nvidia.dali.types import SampleInfo

    entries = [probe_video(index_videos[c], label=i) for i, c in enumerate(["vp9", "mjpeg", "h264"])]
    spec = ClipSpec(num_frames=8, sampling_rate=2, input_size=32)
    src = ClipSource(entries, spec, "train", batch_size=2, seed=1, start_epoch=2, start_batch=1, group=2)
    assert len(src.order(2)) == 4  # 3 videos, wrapped to 4, one DALI batch of 2 x 2
    for i in range(9):  # the first call skips start_batch's DALI batch: epoch 3's first sample
        got = src(SampleInfo(i, i % 4, i // 4, 0))
        epoch, pos = divmod(i, 4)
        want = ClipSource(entries, spec, "train", batch_size=2, seed=1, start_epoch=3 + epoch)(
            SampleInfo(pos, pos, 0, 0))
        assert all(np.array_equal(a, b) for a, b in zip(got, want)), i
    with pytest.raises(StopIteration):  # test and validation passes still end
        ClipSource(entries, spec, "eval", batch_size=2)(SampleInfo(4, 0, 2, 0))
