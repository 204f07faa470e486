"""DALI training and test pipelines on real files: exact frames, crops, padding, bad files."""
import dataclasses
import shutil

import numpy as np
import pytest
import torch

from apt_video import models
from apt_video.config import load_config
from apt_video.models.card import ClipSpec
from apt_video.pipeline.data import VideoEntry
from apt_video.pipeline.datasets import open_dataset
from apt_video.pipeline.graphs import AugmentSpec
from apt_video.pipeline.loader import VideoLoader, default_threads
from apt_video.pipeline.probe import probe_dataset
from apt_video.pipeline.randaug import parse_rand_augment
from apt_video.pipeline.sampling import crop_offsets, dense_view_indices, resize_short_side
from apt_video.pipeline.video import DALI_CODECS, dali_can_decode, probe_video, write_video
from apt_video.train import forward_backward

from videos import index_frames, read_index

SPEC = ClipSpec(num_frames=8, sampling_rate=2, input_size=48, test_num_segment=3, test_num_crop=3)


def pixels(video, spec=SPEC):
    """(3, T, H, W) normalised -> (T, H, W, 3) 0..255."""
    return video.permute(1, 2, 3, 0).numpy() * np.array(spec.std) * 255 + np.array(spec.mean) * 255


@pytest.mark.parametrize("codec", ["vp9", "vp8", "mjpeg", "h264", "hevc", "mpeg4"])
def test_test_views_exact_frames_and_crops(index_videos, codec):
    e = probe_video(index_videos[codec], label=3)
    assert e.ok and e.frames == 70 and e.codec == codec
    assert dali_can_decode(e, "cpu") == (codec in DALI_CODECS["cpu"])
    loader = VideoLoader([e], SPEC, mode="test", batch_size=1, num_workers=1)
    (batch,) = list(loader.epoch(0))
    assert batch.video.shape == (1, 9, 3, 8, 48, 48) and batch.labels.tolist() == [3] and batch.ids == [0]
    expect = dense_view_indices(70, 8, 2, 3)
    rh, rw = resize_short_side(e.height, e.width, 48)
    offsets = crop_offsets(rh, rw, 48, 3)
    for v in range(9):
        seg, crop = divmod(v, 3)  # segment-major order
        frames = pixels(batch.video[0, v])
        assert [read_index(f) for f in frames] == expect[seg].tolist()
        # the blue ramp runs along the long side: its value at the crop's first row/column says where
        # the crop starts, B * (long - 1) / 255
        if rh > rw:
            start = frames[:, 0, 8:-8, 2].mean() * (rh - 1) / 255
            want = offsets[crop][0]
        else:
            start = frames[:, 8:-8, 0, 2].mean() * (rw - 1) / 255
            want = offsets[crop][1]
        assert abs(start - want) <= 1.5, (v, start, offsets[crop])
    assert not loader.failures


def test_views_of_mixed_sizes_in_one_batch(index_videos):
    entries = [probe_video(p, label=i) for i, p in enumerate(index_videos.values())]
    loader = VideoLoader(entries, SPEC, mode="test", batch_size=4, num_workers=2)
    seen = []
    for batch in loader.epoch(0):
        assert batch.video.shape[1:] == (9, 3, 8, 48, 48)
        for row, k in enumerate(batch.ids):
            assert read_index(pixels(batch.video[row, 4])[0]) == dense_view_indices(70, 8, 2, 3)[1][0]
            seen.append(k)
    assert seen == list(range(len(entries)))  # input order, the padding of the last batch dropped
    assert not loader.failures


def test_short_video_is_padded_not_dropped(tmp_path):
    path = write_video(tmp_path / "short.webm", index_frames(5, 64, 48), "vp9")
    e = probe_video(path, clip_frames=8)
    assert e.ok and e.frames == 5 and e.reason.startswith("short: 5 frames < 8")
    (batch,) = list(VideoLoader([e], SPEC, mode="test", batch_size=1, num_workers=1).epoch(0))
    for v in range(0, 9, 3):
        assert [read_index(f) for f in pixels(batch.video[0, v])] == [0, 2, 4, 4, 4, 4, 4, 4]
    spec = ClipSpec(num_frames=8, sampling_rate=4, input_size=32)
    (batch,) = list(VideoLoader([e], spec, mode="train", batch_size=1, num_workers=1,
                                augment=AugmentSpec(flip=False)).epoch(0))
    assert [read_index(f) for f in pixels(batch.video[0], spec)] == [0, 4, 4, 4, 4, 4, 4, 4]


def test_training_clips_follow_the_dense_sampler_and_cover_every_video(index_videos):
    entries = [probe_video(p, label=i) for i, p in enumerate(index_videos.values())]
    spec = ClipSpec(num_frames=8, sampling_rate=3, input_size=32)
    loader = VideoLoader(entries, spec, mode="train", batch_size=4, num_workers=2, seed=3,
                         augment=AugmentSpec(flip=True))
    assert len(loader) == 2
    for epoch in range(2):
        ids = []
        for batch in loader.epoch(epoch):
            assert batch.video.shape == (4, 3, 8, 32, 32)
            for row in range(4):
                idx = [read_index(f) for f in pixels(batch.video[row], spec)]
                assert idx[-1] - idx[0] <= 8 * 3 - 1 and np.all(np.diff(idx) >= 2)
            assert batch.labels.tolist() == [entries[k].label for k in batch.ids]
            ids += batch.ids
        assert set(ids) == set(range(6)) and len(ids) == 8  # wrapped around to fill the last batch
    assert not loader.failures


def test_repeated_augmentation_and_sharding(motion_data):
    ds = open_dataset(motion_data / "train.csv")
    entries, _ = probe_dataset(ds, None, progress=False)
    spec = ClipSpec(num_frames=8, sampling_rate=2, input_size=32)
    shards = [VideoLoader(entries, spec, batch_size=2, num_sample=2, shard_id=r, num_shards=2, num_workers=1)
              for r in range(2)]
    ids = [[k for b in s.epoch(0) for k in b.ids] for s in shards]
    assert all(x[0::2] == x[1::2] for x in ids)  # each video twice in a row
    assert set(ids[0]).isdisjoint(ids[1]) or len(entries) % 2
    assert set(ids[0]) | set(ids[1]) == set(range(len(entries)))


def test_repeated_augmentation_decodes_once_and_augments_twice(index_videos):
    # VideoMAE's num_sample: the repeats of a video share its sampled frames (one decode), each
    # with its own crop
    entries = [probe_video(index_videos[c], label=i) for i, c in enumerate(["vp9", "h264", "mjpeg"])]
    spec = ClipSpec(num_frames=8, sampling_rate=4, input_size=32)
    loader = VideoLoader(entries, spec, batch_size=3, num_sample=2, num_workers=1, seed=1,
                         augment=AugmentSpec(scale=(0.1, 0.3), flip=False))
    (batch,) = list(loader.epoch(0))
    assert batch.video.shape == (6, 3, 8, 32, 32) and len(batch.ids) == 6
    assert batch.ids[0::2] == batch.ids[1::2] and sorted(batch.ids[0::2]) == [0, 1, 2]
    assert batch.labels.tolist() == [entries[k].label for k in batch.ids]
    for row in range(0, 6, 2):
        first, second = pixels(batch.video[row], spec), pixels(batch.video[row + 1], spec)
        assert [read_index(f) for f in first] == [read_index(f) for f in second]
        assert np.abs(first[..., 2] - second[..., 2]).mean() > 1  # the blue ramp: different crops


def test_file_broken_after_probing_is_reported_and_the_epoch_goes_on(tmp_path, index_videos):
    ok = [probe_video(index_videos[c], label=i) for i, c in enumerate(["vp9", "mjpeg", "h264"])]
    broken = []
    for codec in ("vp9", "h264"):  # DALI route and PyAV route
        p = tmp_path / index_videos[codec].name
        shutil.copy(index_videos[codec], p)
        broken.append(probe_video(p, label=9))
        p.write_bytes(b"\x1a\x45\xdf\xa3" + bytes(range(256)) * 40)
    loader = VideoLoader(ok[:2] + [broken[0]] + ok[2:] + [broken[1]], SPEC, mode="test", batch_size=2,
                         num_workers=1)
    ids = [k for b in loader.epoch(0) for k in b.ids]
    assert ids == [0, 1, 3]
    assert sorted((f.index, f.path) for f in loader.failures) == [(2, broken[0].path), (4, broken[1].path)]
    assert all(f.reason for f in loader.failures)
    # DALI's decoder failed on the batch [mjpeg, broken vp9]: only the broken file left DALI's route
    assert loader.routes[1] is None and loader.routes[2].startswith("DALI's decoder failed: Failed to create")
    assert loader.routes[0] is None and "no h264 decoder" in loader.routes[3]


def test_training_with_rand_augment_on_regions_reports_broken_files_and_goes_on(tmp_path, index_videos):
    """Training clips with every RandAugment op drawn (each planned on the regions its crop needs):
    broken files on both decode routes are reported, the placeholders of the failed samples (8x8)
    go through the same plan, and every good video is delivered."""
    ok = [probe_video(index_videos[c], label=i) for i, c in enumerate(["vp9", "mjpeg", "h264"])]
    broken = []
    for codec in ("vp9", "h264"):
        p = tmp_path / index_videos[codec].name
        shutil.copy(index_videos[codec], p)
        broken.append(probe_video(p, label=1))
        p.write_bytes(p.read_bytes()[:300])  # cut after probing
    augment = AugmentSpec(rand_augment=parse_rand_augment("rand-m9-n4-mstd1-inc1-p1"), scale=(0.05, 1.0))
    loader = VideoLoader(ok[:2] + [broken[0]] + ok[2:] + [broken[1]], SPEC, batch_size=2, num_workers=1,
                         num_sample=2, augment=augment)
    batches = list(loader.epoch(0))
    assert {k for b in batches for k in b.ids} == {0, 1, 3}
    assert all(b.video.shape[1:] == (3, SPEC.num_frames, SPEC.input_size, SPEC.input_size) for b in batches)
    assert all(torch.isfinite(b.video).all() for b in batches)
    # an epoch wraps around to whole batches, so a video may come (and fail) twice; each listed
    assert {f.index for f in loader.failures} == {2, 4} and all(f.reason for f in loader.failures)


def test_variable_frame_rate_is_indexed_in_decode_order(tmp_path):
    pts = np.cumsum([0] + [20, 60] * 20)[:40].tolist()  # alternating 20 ms and 60 ms gaps
    path = write_video(tmp_path / "vfr.webm", index_frames(40, 64, 48), "vp9", fps=25, pts=pts)
    e = probe_video(path)
    assert e.ok and e.frames == 40
    (batch,) = list(VideoLoader([e], SPEC, mode="test", batch_size=1, num_workers=1).epoch(0))
    for seg in range(3):
        assert [read_index(f) for f in pixels(batch.video[0, seg * 3])] == dense_view_indices(40, 8, 2, 3)[seg].tolist()


def test_4k_frames_are_scaled_while_decoding(tmp_path):
    frames = np.repeat(index_frames(6, 64, 36), 60, axis=1).repeat(60, axis=2)  # 3840 x 2160
    path = write_video(tmp_path / "uhd.avi", frames, "mjpeg")
    e = probe_video(path)
    assert (e.width, e.height) == (3840, 2160) and not dali_can_decode(e, "cpu")
    spec = ClipSpec(num_frames=4, sampling_rate=1, input_size=32, test_num_segment=1, test_num_crop=3)
    (batch,) = list(VideoLoader([e], spec, mode="test", batch_size=1, num_workers=1).epoch(0))
    assert batch.video.shape == (1, 3, 3, 4, 32, 32)
    assert [read_index(f) for f in pixels(batch.video[0, 1], spec)] == [0, 1, 2, 3]


def test_a_720p_video_gives_the_same_views_by_either_route(tmp_path):
    """The reference decodes at the native size (kinetics.py:234-235); so do both routes up to
    ``MAX_SIDE``: a 1280x720 VP9 read by DALI's CPU decoder and by PyAV (the route a file takes
    when DALI cannot, or after DALI failed on it) gives the same test views, up to the decoders'
    colour conversion: under a level on average. (PyAV once scaled such frames to 640 px first:
    12 levels on average, 57 at the 99th percentile.)"""
    # grey detail (the decoders differ in chroma upsampling, not in luma), moving: 12 frames of 1280x720
    grey = np.random.default_rng(5).integers(0, 256, (90, 160), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    frames = np.stack([np.roll(np.stack([grey] * 3, -1), 6 * i, axis=1) for i in range(12)])
    e = probe_video(write_video(tmp_path / "hd.webm", frames, "vp9"))
    assert (e.width, e.height) == (1280, 720) and dali_can_decode(e, "cpu")
    spec = ClipSpec(num_frames=4, sampling_rate=2, input_size=112, test_num_segment=2, test_num_crop=3)
    dali = VideoLoader([e], spec, mode="test", batch_size=1, num_workers=1)
    pyav = VideoLoader([e], spec, mode="test", batch_size=1, num_workers=1)
    pyav._pyav.add(0)  # the PyAV route for the same file, as the loader reroutes one DALI failed on
    (a,), (b,) = list(dali.epoch(0)), list(pyav.epoch(0))
    diff = np.abs(np.stack([pixels(v, spec) for v in a.video[0]]) - np.stack([pixels(v, spec) for v in b.video[0]]))
    assert diff.mean() < 1.5 and np.percentile(diff, 99) < 4, (diff.mean(), np.percentile(diff, 99))


def test_loader_refuses_unprobed_or_bad_entries(tmp_path):
    with pytest.raises(ValueError, match="not usable .*nope.webm: file not found"):
        VideoLoader([probe_video(tmp_path / "nope.webm")], SPEC)
    with pytest.raises(ValueError, match="no videos"):
        VideoLoader([], SPEC)
    assert not VideoEntry("x").ok


@pytest.mark.parametrize("mode", ["train", "test"])
def test_reused_batch_buffer_holds_each_batch_until_the_next(index_videos, mode):
    entries = [probe_video(index_videos[c], label=i) for i, c in enumerate(["vp9", "mjpeg", "h264", "vp8"])]
    spec = ClipSpec(num_frames=8, sampling_rate=2, input_size=32, test_num_segment=2, test_num_crop=2)

    def batches(reuse):
        loader = VideoLoader(entries, spec, mode=mode, batch_size=2, num_workers=1, seed=4, reuse=reuse,
                             num_sample=2, augment=AugmentSpec(flip=False), group=1)  # two DALI batches
        return [(b.video.clone(), b.video.untyped_storage().data_ptr(), b.ids) for b in loader.epoch(0)]

    fresh, reused = batches(False), batches(True)
    assert len(fresh) == len(reused) == 2
    for (a, _, ids_a), (b, _, ids_b) in zip(fresh, reused):
        assert ids_a == ids_b and torch.equal(a, b)
    assert reused[0][1] == reused[1][1]  # one buffer, overwritten by the next DALI batch


def test_both_executors_deliver_the_same_clips(index_videos):
    """``executor`` trades memory for speed; the clips stay those of the seed."""
    entries = [probe_video(index_videos[c], label=i) for i, c in enumerate(["vp9", "mjpeg", "h264", "vp8"])]
    spec = ClipSpec(num_frames=8, sampling_rate=2, input_size=32)

    def clips(executor):
        loader = VideoLoader(entries, spec, batch_size=2, num_workers=1, seed=6, num_sample=2, executor=executor,
                             augment=AugmentSpec(rand_augment=parse_rand_augment("rand-m9-n2-mstd0.5-inc1")))
        return [(b.video.clone(), b.ids) for b in loader.epoch(0)]

    dynamic, pipelined = clips("dynamic"), clips("pipelined")
    assert [ids for _, ids in dynamic] == [ids for _, ids in pipelined] and len(dynamic) == 2
    for (a, _), (b, _) in zip(dynamic, pipelined):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="executor='eager'"):
        VideoLoader(entries, spec, executor="eager")


@pytest.mark.parametrize("mode", ["train", "test"])
def test_a_source_in_this_process_delivers_what_workers_do(index_videos, mode):
    """``num_workers=0`` (the source in the thread that runs the pipeline: no worker processes to start,
    what a Ray task on a GPU uses) gives the same clips and views as the worker processes."""
    entries = [probe_video(index_videos[c], label=i) for i, c in enumerate(["vp9", "mjpeg", "h264", "vp8"])]
    spec = ClipSpec(num_frames=8, sampling_rate=2, input_size=32, test_num_segment=2, test_num_crop=3)

    def batches(workers):
        loader = VideoLoader(entries, spec, mode=mode, batch_size=2, num_workers=workers, seed=6,
                             augment=AugmentSpec(rand_augment=parse_rand_augment("rand-m9-n2-mstd0.5-inc1")))
        return [(b.video.clone(), b.ids) for b in loader.epoch(0)]

    here, workers = batches(0), batches(1)
    assert [ids for _, ids in here] == [ids for _, ids in workers] and sum(len(ids) for _, ids in here) == 4
    for (a, _), (b, _) in zip(here, workers):
        assert torch.equal(a, b)


@pytest.mark.parametrize("region", ["frame", "crop"])
def test_rand_augment_sees_the_whole_frame_as_videomae(tmp_path, region):
    """VideoMAE runs RandAugment on the decoded frames, then crops. A frame whose mid-grey ramp
    (100..150) has a black and a white corner block is left as it is by a whole-frame AutoContrast
    (min 0, max 255); the same op on a small crop that misses a corner stretches the ramp to 0..255."""
    h, w = 72, 96
    frame = np.broadcast_to(np.linspace(100, 150, w)[None, :, None], (h, w, 3)).astype(np.uint8).copy()
    frame[:12, :12], frame[-12:, -12:] = 0, 255
    path = write_video(tmp_path / "ramp.webm", np.repeat(frame[None], 24, 0), "vp9")
    e = probe_video(path, label=0)
    ra = dataclasses.replace(parse_rand_augment("rand-m7-n1-mstd0-p1"), only=("AutoContrast",))
    spec = ClipSpec(num_frames=8, sampling_rate=2, input_size=32)
    loader = VideoLoader([e] * 8, spec, batch_size=8, num_workers=1, seed=4,
                         augment=AugmentSpec(rand_augment=ra, scale=(0.05, 0.1), flip=False, aa_region=region))
    values = np.concatenate([pixels(v, spec).ravel() for b in loader.epoch(0) for v in b.video])
    stretched = ((values > 20) & (values < 90)) | ((values > 160) & (values < 235))
    if region == "frame":  # the ramp keeps its levels (a few blended pixels at the blocks' edges)
        assert stretched.mean() < 0.02
    else:
        assert stretched.mean() > 0.3


def test_an_empty_shard_yields_nothing_and_an_all_failed_batch_keeps_ranks_in_step(tmp_path, index_videos):
    spec = ClipSpec(num_frames=8, sampling_rate=2, input_size=32)
    e = probe_video(index_videos["vp9"], label=1)
    # three ranks, one video: ranks 1 and 2 have no sample (the DALI iterator is never built for them)
    assert [len(list(VideoLoader([e], spec, mode="eval", batch_size=2, num_workers=1, shard_id=r,
                                 num_shards=3).epoch(0))) for r in range(3)] == [1, 0, 0]
    broken = []
    for i in range(2):
        p = tmp_path / f"b{i}.webm"
        shutil.copy(index_videos["vp9"], p)
        broken.append(probe_video(p, label=i))
        p.write_bytes(b"\x1a\x45\xdf\xa3" + bytes(range(256)) * 40)
    loader = VideoLoader(broken, spec, batch_size=1, num_workers=1, shard_id=0, num_shards=2,
                         augment=AugmentSpec(flip=False))
    (batch,) = list(loader.epoch(0))  # every sample failed: a placeholder batch of weight 0, not nothing
    assert batch.weight is not None and float(batch.weight.abs().sum()) == 0 and len(loader.failures) == 1
    model = models.create_model("vit_micro_patch16_112", img_size=32, num_classes=2, prompt_num_tokens=2)
    loss = forward_backward(model, batch.video, batch.labels, load_config("demo"), weight=batch.weight)
    assert float(loss) == 0.0
    assert all(float(p.grad.abs().sum()) == 0 for p in model.parameters() if p.grad is not None)


def test_grouped_dali_batches_deliver_the_same_epoch(index_videos):
    # two training batches per DALI batch (the CPU default) keep the epoch as it was: the same
    # videos in the same order, the same number of batches (padding beyond them is never delivered)
    entries = [probe_video(index_videos[c], label=i) for i, c in enumerate(["vp9", "mjpeg", "h264", "vp8", "hevc"])]
    spec = ClipSpec(num_frames=8, sampling_rate=2, input_size=32)
    runs = {}
    for group in (1, 2):
        loader = VideoLoader(entries, spec, batch_size=2, num_workers=1, seed=2, group=group,
                             augment=AugmentSpec(flip=False))
        runs[group] = (len(loader), [b.ids for b in loader.epoch(0)])
    assert runs[1] == runs[2] and runs[1][0] == 3


def test_an_epoch_left_early_does_not_empty_the_next(index_videos):
    # gradient accumulation stops an epoch before DALI's end (an incomplete accumulation is not
    # applied): the next epoch must still deliver all its batches
    entries = [probe_video(index_videos[c], label=i) for i, c in enumerate(["vp9", "mjpeg", "h264", "vp8", "hevc"])]
    spec = ClipSpec(num_frames=8, sampling_rate=2, input_size=32)
    loader = VideoLoader(entries, spec, batch_size=2, num_workers=1, seed=2, augment=AugmentSpec(flip=False))
    for epoch in range(3):
        for i, _ in enumerate(loader.epoch(epoch)):
            if i == 1:
                break  # 2 of 3 batches
    assert len(list(loader.epoch(3))) == 3


def test_training_epochs_stream_on_as_a_loader_built_at_each_epoch(index_videos):
    # the training source never ends an epoch inside DALI (the workers run on into the next one):
    # each epoch of one running loader equals that epoch from a loader built at it (as a resumed
    # run builds it), clip for clip, and has its own number of batches (5 videos, batches of 2: 3)
    entries = [probe_video(index_videos[c], label=i) for i, c in enumerate(["vp9", "mjpeg", "h264", "vp8", "hevc"])]
    spec = ClipSpec(num_frames=8, sampling_rate=2, input_size=32)

    def make():
        return VideoLoader(entries, spec, batch_size=2, num_workers=1, seed=4, augment=AugmentSpec(
            flip=False, rand_augment=parse_rand_augment("rand-m9-n2-mstd0.5", "bilinear")))

    def clips(batches):
        return [(b.ids, b.video.clone()) for b in batches]

    running = make()
    streamed = [clips(running.epoch(e)) for e in range(3)]
    for e in range(3):
        fresh = clips(make().epoch(e))
        assert len(streamed[e]) == len(fresh) == 3
        for (ids, video), (ids2, video2) in zip(streamed[e], fresh):
            assert ids == ids2 and torch.equal(video, video2)
    assert [sorted(set(i for ids, _ in s for i in ids)) for s in streamed] == [list(range(5))] * 3


def test_a_cpu_loader_spawns_its_workers_where_cuda_is_initialised(index_videos, monkeypatch):
    """DALI refuses to fork once CUDA is up in the process (a CPU loader in a GPU training process):
    the workers are spawned then, and deliver the same clips."""
    entries = [probe_video(index_videos[c], label=i) for i, c in enumerate(["vp9", "h264"])]
    spec = ClipSpec(num_frames=8, sampling_rate=2, input_size=32)

    def batches():
        loader = VideoLoader(entries, spec, batch_size=2, num_workers=1, seed=2)
        out = [(b.video.clone(), b.ids) for b in loader.epoch(0)]
        return out, loader._pipe._py_start_method

    forked, method = batches()
    assert method == "fork"
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    spawned, method = batches()
    assert method == "spawn"
    assert [ids for _, ids in forked] == [ids for _, ids in spawned]
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(forked, spawned))


def test_dali_threads_are_the_hosts_cores_per_local_rank(index_videos, monkeypatch):
    assert default_threads(cores=2, local_ranks=1) == 2  # the build machines, as before
    assert default_threads(cores=16, local_ranks=1) == 16 and default_threads(cores=16, local_ranks=4) == 4
    assert default_threads(cores=2, local_ranks=4) == 2
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(16)))
    e = probe_video(index_videos["vp9"])
    assert VideoLoader([e], SPEC).num_threads == 16
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert VideoLoader([e], SPEC).num_threads == 2 and VideoLoader([e], SPEC, num_threads=3).num_threads == 3
