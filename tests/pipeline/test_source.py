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


@pytest.mark.parametrize("n,batch,world", [(8, 4, 1), (9, 4, 1), (11, 4, 1), (3, 8, 1), (16, 4, 2), (17, 4, 2),
                                           (23, 2, 4), (5, 1, 3)])
def test_an_epoch_wraps_around_where_the_reference_drops_the_last_batch(index_videos, n, batch, world):
    """The reference drops an epoch's last incomplete batch (DataLoader drop_last) and so never
    trains on some videos in an epoch (all of them when a rank has fewer than a batch); ours
    wraps around to a whole batch, so every video trains every epoch: one batch more exactly when
    a rank's share is not a whole number of batches, and the same count otherwise."""
    from reference import ref_train_batches

    entry = probe_video(index_videos["vp9"], label=0)
    spec = ClipSpec(num_frames=8, sampling_rate=2, input_size=32)
    used = set()
    for rank in range(world):
        src = ClipSource([entry] * n, spec, "train", batch_size=batch, shard_id=rank, num_shards=world)
        share = -(-n // world)
        assert src.batches(0) == ref_train_batches(n, batch, world) + (share % batch != 0)
        used |= {k for k in src.order(0)[:src.batches(0) * batch] if k >= 0}
    assert used == set(range(n))
