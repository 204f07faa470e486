"""RandAugment in DALI follows the timm string and applies one op per clip to all its frames."""
import dataclasses

import numpy as np
import pytest

from apt_video.pipeline.augment import SKIPPED, draw_ops, op_block, op_param
from apt_video.pipeline.randaug import (
    FILL,
    OP_NAMES,
    OPS,
    Step,
    _translate,
    _warp,
    parse_rand_augment,
    rand_augment,
)

BASE = np.repeat(np.random.default_rng(0).integers(0, 256, (1, 32, 40, 3), dtype=np.uint8), 4, axis=0)


def run(spec, batches=8, batch_size=64, seed=5, base=BASE):
    """RandAugment of ``spec`` on copies of ``base`` (whole frames), drawn per clip by
    ``pipeline.augment.draw_ops`` as the source draws them. Returns the clips and per clip ``(n, 2)``
    records of (op index or -1 when skipped, magnitude bin)."""
    from nvidia.dali import fn, pipeline_def

    rng = np.random.default_rng(seed)
    draws = [[draw_ops(spec, rng) for _ in range(batch_size)] for _ in range(batches)]
    f, h, w = base.shape[:3]
    full = (0, 0, h, w)  # whole frames
    blocks = [[np.array([op_block(spec, *d[k], h, w, full, full) for k in range(spec.n)], np.float32) for d in b]
              for b in draws]

    @pipeline_def(batch_size=batch_size, num_threads=2, device_id=None, enable_conditionals=True, seed=seed)
    def pipe():
        clip = fn.external_source(source=lambda: [base] * batch_size, layout="FHWC")
        ops = fn.external_source(source=iter([[d.astype(np.int32) for d in b] for b in draws]))
        geo = fn.external_source(source=iter(blocks))
        return rand_augment(clip, spec, [Step(ops[k, 0], ops[k, 1], ops[k, 2], geo[k]) for k in range(spec.n)])

    p = pipe()
    p.build()
    outs = []
    for _ in range(batches):
        (o,) = p.run()
        outs += [np.asarray(o[i]) for i in range(batch_size)]
    recs = np.stack([d[:, :2] for b in draws for d in b])
    recs[..., 0][recs[..., 0] == SKIPPED] = -1
    return outs, recs


def test_parse_timm_strings():
    s = parse_rand_augment("rand-m7-n4-mstd0.5-inc1")
    assert (s.m, s.n, s.mstd, s.increasing, s.p, s.mmax) == (7, 4, 0.5, True, 0.5, 10)
    assert parse_rand_augment("rand-m4-n2-mstd0.2-inc1").n == 2
    assert not parse_rand_augment("rand-m9").increasing
    for bad in ("augmix-m5", "rand-q3", "rand-m11"):
        with pytest.raises(ValueError, match="auto_augment="):
            parse_rand_augment(bad)


def test_ops_magnitudes_and_probability_follow_the_string():
    spec = parse_rand_augment("rand-m7-n2-mstd0.5-inc1")
    outs, recs = run(spec)
    ops, bins = recs[..., 0].ravel(), recs[..., 1].ravel()
    assert abs((ops == -1).mean() - 0.5) < 0.05  # p = 0.5 per op
    counts = np.bincount(ops[ops >= 0], minlength=15)
    assert len(counts) == 15 and counts.min() > 0.5 * counts.mean()  # uniform over the 15 inc ops
    assert abs(bins.mean() / 3 - 7) < 0.1 and abs(bins.std() / 3 - 0.5) < 0.1  # N(7, 0.5) in 1/3 bins
    for clip in outs:  # one op per clip, the same on every frame
        assert all(np.array_equal(clip[0], f) for f in clip[1:])
    assert sum(not np.array_equal(o, BASE) for o in outs) > 0.6 * len(outs)


@pytest.mark.parametrize("name,expect", [
    ("Invert", lambda x: 255 - x),
    ("Posterize", lambda x: x & 0xC0),  # increasing, m7: 4 - int(0.7 * 4) = 2 bits kept
    ("Solarize", lambda x: np.where(x >= 256 - int(0.7 * 256), 255 - x, x)),
    ("SolarizeAdd", lambda x: np.where(x < 128, np.minimum(x.astype(int) + int(0.7 * 110), 255), x)),
])
def test_pixel_ops_match_timm_exactly(name, expect):
    spec = parse_rand_augment("rand-m7-n1-mstd0-inc1-p1")
    outs, recs = run(spec, batches=3)
    k = OP_NAMES.index(name)
    hits = [o for o, r in zip(outs, recs) if r[0, 0] == k]
    assert hits, f"{name} never drawn"
    for o in hits:
        np.testing.assert_array_equal(o, expect(BASE.astype(int)).astype(np.uint8))


def test_skipped_ops_leave_the_clip_unchanged():
    outs, recs = run(parse_rand_augment("rand-m9-n1-p0"), batches=1)
    assert (recs[..., 0] == -1).all() and all(np.array_equal(o, BASE) for o in outs)


@pytest.mark.parametrize("interp", ["bilinear", "nearest"])
def test_geometric_ops_resample_as_asked(interp):
    # a two-level picture: bilinear resampling makes levels in between, nearest never does
    two = np.repeat((np.indices((32, 40)).sum(0) // 3 % 2 * 200).astype(np.uint8)[None, :, :, None], 3, -1)
    spec = parse_rand_augment("rand-m9-n1-mstd0-inc1-p1", interp)
    outs, recs = run(spec, batches=2, base=np.repeat(two, 2, axis=0))
    geometric = [OP_NAMES.index(n) for n in ("Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")]
    hits = [o for o, r in zip(outs, recs) if r[0, 0] in geometric]
    assert len(hits) > 5
    levels = set(np.unique(np.concatenate([o.ravel() for o in hits])).tolist())
    if interp == "nearest":
        assert levels <= {0, FILL, 200}  # the picture's two levels and the fill
    else:
        assert len(levels - {0, FILL, 200}) > 20


def test_interpolation_name_is_checked():
    with pytest.raises(ValueError, match="aa_interp='cubic'"):
        parse_rand_augment("rand-m9", "cubic")


def _pil_grey(x):
    return np.floor(x @ np.array([0.299, 0.587, 0.114]) + 0.5)


@pytest.mark.parametrize("name,expect", [
    # PIL's Contrast: blend with the rounded mean grey level of the frame; m7 (not inc): 0.7 * 1.8 + 0.1
    ("Contrast", lambda x: np.clip(np.round((m := np.floor(_pil_grey(x).mean((1, 2), keepdims=True)[..., None]
                                                        + 0.5)) + 1.36 * (x - m)), 0, 255)),
    # PIL's AutoContrast: every channel of every frame stretched to 0..255
    ("AutoContrast", lambda x: np.round((x - x.min((1, 2), keepdims=True)) * 255
                                        / np.ptp(x, (1, 2), keepdims=True))),
])
def test_tone_ops_follow_pil_per_frame(name, expect):
    rng = np.random.default_rng(1)
    base = np.stack([rng.integers(lo, lo + 90, (32, 40, 3)) for lo in (0, 40, 100, 160)]).astype(np.uint8)
    outs, recs = run(parse_rand_augment("rand-m7-n1-mstd0-p1"), batches=3, base=base)
    hits = [o for o, r in zip(outs, recs) if r[0, 0] == OP_NAMES.index(name)]
    assert hits, f"{name} never drawn"
    want = expect(base.astype(float))
    for o in hits:
        assert np.abs(o.astype(float) - want).max() <= 1  # rounding


def test_auto_contrast_keeps_flat_channels():
    from nvidia.dali import fn, pipeline_def

    flat = BASE.copy()
    flat[..., 1] = 77

    @pipeline_def(batch_size=2, num_threads=1, device_id=None)
    def pipe():
        auto_contrast = OPS["AutoContrast"](parse_rand_augment("rand-m7-n1"), False)
        clip = fn.external_source(source=lambda: [flat] * 2, layout="FHWC")
        return auto_contrast(clip, magnitude_bin=0, num_magnitude_bins=31)

    p = pipe()
    p.build()
    out = np.asarray(p.run()[0][0])
    assert (out[..., 1] == 77).all() and out[..., 0].min() == 0 and out[..., 0].max() == 255


@pytest.mark.parametrize("interp", ["bilinear", "nearest"])
def test_fast_geometric_ops_match_a_filling_warp(interp):
    """Translate (slice + two-tap filter) and the bordered, clamping warp, with the parameters the
    source computes for them (``op_block``), give the pixels (to rounding) of DALI's filling
    ``warp_affine`` of the same transform built with DALI's own transforms."""
    from nvidia.dali import fn, pipeline_def, types

    spec = parse_rand_augment("rand-m9-n1-mstd0-inc1", interp)
    interp_type = types.INTERP_NN if interp == "nearest" else types.INTERP_LINEAR
    clip = np.random.default_rng(2).integers(0, 256, (3, 30, 44, 3), dtype=np.uint8)
    f, h, w, _ = clip.shape
    full = (0, 0, h, w)
    cases = [("TranslateXRel", 14, 0), ("TranslateXRel", 27, 1), ("TranslateYRel", 21, 0), ("TranslateYRel", 7, 1),
             ("Rotate", 17, 0), ("Rotate", 29, 1), ("ShearX", 27, 0), ("ShearY", 19, 1)]

    def const(values):
        return types.Constant(np.asarray(values, np.float32), device="cpu")

    @pipeline_def(batch_size=1, num_threads=1, device_id=None)
    def pipe():
        x = fn.external_source(source=lambda: [clip], layout="FHWC")
        outs = []
        for name, mag_bin, sign in cases:
            op = OP_NAMES.index(name)
            v = op_param(spec, op, mag_bin, sign)
            block = op_block(spec, op, mag_bin, sign, h, w, full, full)
            if name.startswith("Translate"):
                axis = 1 if name == "TranslateXRel" else 0
                ours = _translate(x, const(block[0:2]), const(block[2:4]), const(block[4:6]), axis, interp_type)
                m = fn.transforms.translation(offset=[v * w, 0.0] if axis == 1 else [0.0, v * h])
            else:
                if name == "Rotate":
                    m = fn.transforms.rotation(angle=v, center=[w / 2, h / 2])
                else:
                    m = fn.transforms.shear(shear=[v, 0.0] if name == "ShearX" else [0.0, v])
                ours = _warp(x, const(np.reshape(block[0:6], (2, 3))), const(block[6:8]), const(block[8:10]),
                             interp_type)
            ref = fn.warp_affine(x, matrix=m, fill_value=FILL, interp_type=interp_type, inverse_map=False)
            outs += [ours, ref]
        return tuple(outs)

    p = pipe()
    p.build()
    res = [np.asarray(o[0]).astype(int) for o in p.run()]
    for case, ours, ref in zip(cases, res[::2], res[1::2]):
        assert ours.shape == ref.shape == clip.shape, case
        diff = np.abs(ours - ref)
        if interp == "nearest" and not case[0].startswith("Translate"):
            assert (diff > 0).mean() < 0.002, case  # the same pixels, ties at exact halves aside
        else:
            assert diff.max() <= 1, (case, diff.max())
        assert (ours == FILL).mean() > 0.03, case  # the fill came in


@pytest.mark.parametrize("portable,name", [(p, n) for p in (False, True) for n in ("Contrast", "AutoContrast")])
def test_gpu_forms_of_tone_ops_follow_pil_too(portable, name):
    """The arithmetic forms used on the GPU (statistics cannot be named arguments there) give PIL's
    result as the CPU forms do; run here on the CPU."""
    from nvidia.dali import fn, pipeline_def

    rng = np.random.default_rng(1)
    base = np.stack([rng.integers(lo, lo + 90, (32, 40, 3)) for lo in (0, 40, 100, 160)]).astype(np.uint8)
    base[1, ..., 2] = 50  # a flat channel: AutoContrast keeps it
    spec = parse_rand_augment("rand-m7-n1-mstd0-p1")

    @pipeline_def(batch_size=1, num_threads=1, device_id=None)
    def pipe():
        op = OPS[name](spec, portable)
        clip = fn.external_source(source=lambda: [base], layout="FHWC")
        return op(clip, magnitude_bin=21, num_magnitude_bins=spec.num_bins)  # m = 7

    p = pipe()
    p.build()
    out = np.asarray(p.run()[0][0]).astype(float)
    x = base.astype(float)
    if name == "Contrast":
        m = np.floor(_pil_grey(x).mean((1, 2), keepdims=True)[..., None] + 0.5)
        want = np.clip(np.round(m + 1.36 * (x - m)), 0, 255)
    else:
        lo, spread = x.min((1, 2), keepdims=True), np.ptp(x, (1, 2), keepdims=True)
        want = np.where(spread > 0, np.round((x - lo) * 255 / np.maximum(spread, 1)), x)
    assert np.abs(out - want).max() <= 1


def test_only_restricts_the_drawn_ops():
    spec = parse_rand_augment("rand-m7-n2-mstd0-p1")
    _, recs = run(dataclasses.replace(spec, only=("Invert", "Equalize")), batches=1)
    assert set(recs[..., 0].ravel().tolist()) == {OP_NAMES.index("Invert"), OP_NAMES.index("Equalize")}
    with pytest.raises(ValueError, match="RandAugment op 'Blur'"):
        dataclasses.replace(spec, only=("Blur",))


#: per op: (largest mean, largest 99th percentile, largest difference) in levels against PIL, over
#: magnitudes 3, 7 and 10 and both signs; what the tolerance covers
PIL_TOLERANCE = {
    "Invert": (0, 0, 0), "Posterize": (0, 0, 0), "Solarize": (0, 0, 0), "SolarizeAdd": (0, 0, 0),  # exact
    "Contrast": (0, 0, 0), "Brightness": (0, 0, 0), "Sharpness": (0, 0, 0),  # PIL's blends, truncated as
    "Equalize": (0, 0, 0),  # PIL's table                                        # PIL does; Sharpness's border kept
    "Color": (0.3, 1, 1),  # the same blend as one colour matrix: PIL rounds the grey level first
    "AutoContrast": (0.01, 0, 1),  # PIL's table; a level a float rounding below a whole one
    "Rotate": (0.8, 9, 255), "ShearX": (0.8, 9, 255), "ShearY": (0.8, 9, 255),  # bilinear both; the edges
    "TranslateXRel": (0.8, 9, 255), "TranslateYRel": (0.8, 9, 255),  # of the grey fill resample otherwise
}


def test_every_op_follows_pil_on_real_frames():
    """Each of the 15 ops of ``inc1`` at magnitudes 3, 7 and 10, both signs, on the frames of a
    textured moving clip, against rand_augment.py's op on each frame as a PIL image (tests/reference.py,
    bilinear resampling like ours): the mean, 99th percentile and largest difference stay within
    ``PIL_TOLERANCE``."""
    from nvidia.dali import fn, pipeline_def
    from PIL import Image

    from apt_video.pipeline.randaug import BINS_PER_UNIT
    from apt_video.tools.synth import motion_clip

    from reference import ref_rand_augment_op

    frames = motion_clip(30, 4, 96, 72, np.random.default_rng(2))
    spec = parse_rand_augment("rand-m7-n1-mstd0-inc1-p1", "bilinear")
    f, h, w = frames.shape[:3]
    cases = [(k, m, s) for k in range(len(OP_NAMES)) for m in (3, 7, 10) for s in (0, 1)]
    full = (0, 0, h, w)
    ops = [np.array([[k, m * BINS_PER_UNIT, s]], np.int32) for k, m, s in cases]
    geo = [np.array([op_block(spec, k, m * BINS_PER_UNIT, s, h, w, full, full)], np.float32) for k, m, s in cases]

    @pipeline_def(batch_size=len(cases), num_threads=2, device_id=None, enable_conditionals=True, seed=1)
    def pipe():
        clip = fn.external_source(source=lambda: [frames] * len(cases), layout="FHWC")
        o = fn.external_source(source=lambda: ops)
        g = fn.external_source(source=lambda: geo)
        return rand_augment(clip, spec, [Step(o[0, 0], o[0, 1], o[0, 2], g[0])])

    p = pipe()
    p.build()
    (out,) = p.run()
    worst = {}
    for i, (k, m, s) in enumerate(cases):
        name = OP_NAMES[k]
        ours = np.asarray(out[i]).astype(float)
        ref = np.stack([np.asarray(ref_rand_augment_op(Image.fromarray(x), name, m, s, Image.BILINEAR))
                        for x in frames]).astype(float)
        d = np.abs(ours - ref)
        mean, p99, top = PIL_TOLERANCE[name]
        assert d.mean() <= mean and np.percentile(d, 99) <= p99 and d.max() <= top, \
            (name, m, s, d.mean(), np.percentile(d, 99), d.max())
        worst[name] = max(worst.get(name, 0), d.mean())
    assert set(worst) == set(OP_NAMES)


def test_the_third_of_a_magnitude_moves_an_op_less_than_its_noise_does():
    """Ours rounds timm's N(m, mstd) magnitude to a third (``BINS_PER_UNIT``). Measured with
    rand_augment.py's own PIL ops at rand-m7-mstd0.5 on real frames: the rounding moves each op's
    output by at most 2 levels on average, about a fifth (under 0.35) of what the magnitude noise
    itself moves it (the output at the drawn magnitude against the output at m = 7)."""
    from PIL import Image

    from apt_video.tools.synth import motion_clip

    from reference import ref_rand_augment_op

    frames = [Image.fromarray(x) for x in motion_clip(30, 2, 224, 224, np.random.default_rng(2))]
    rng = np.random.default_rng(0)

    def out(name, level, negate):
        return np.stack([np.asarray(ref_rand_augment_op(x, name, level, negate, Image.BILINEAR)) for x in frames])

    for name in OP_NAMES:
        rounding, noise = [], []
        for _ in range(24):
            m, negate = float(np.clip(rng.normal(7, 0.5), 0, 10)), bool(rng.integers(2))
            drawn = out(name, m, negate).astype(float)
            rounding.append(np.abs(drawn - out(name, round(m * 3) / 3, negate)).mean())
            noise.append(np.abs(drawn - out(name, 7.0, negate)).mean())
        assert np.mean(rounding) <= 2.0, (name, np.mean(rounding))
        if np.mean(noise) > 0.1:
            assert np.mean(rounding) <= 0.35 * np.mean(noise), (name, np.mean(rounding), np.mean(noise))


def _pil_planes(rng):
    """Frames whose planes test PIL's equalisation table at its edges: one level, two levels, one
    odd pixel, a skewed histogram, the whole range, and a plane whose table reaches past 255."""
    flat = np.full((6, 9, 3), 77, np.uint8)
    two = np.where(rng.random((6, 9, 3)) < 0.5, 10, 200).astype(np.uint8)
    odd = flat.copy()
    odd[2, 3] = 78
    skewed = (rng.random((6, 9, 3)) ** 4 * 255).astype(np.uint8)
    full = rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)
    past = np.zeros((6, 9, 3), np.uint8)  # step 0 with 54 pixels below the top level: kept as it is,
    past[0, :3] = 255                     # and with 255 + 2 levels, a table past 255 at the top
    return np.stack([flat, two, odd, skewed, full, past])


def test_equalize_is_pils_table_frame_by_frame():
    """``equalize_frames`` against ``ImageOps.equalize`` on each frame, exactly, on planes at the
    table's edges (tests/reference.py's rand_augment.py op)."""
    from PIL import Image

    from apt_video.pipeline.randaug import equalize_frames

    from reference import ref_rand_augment_op

    rng = np.random.default_rng(4)
    for clip in (_pil_planes(rng), rng.integers(0, 256, (3, 17, 300, 3), dtype=np.uint8)):
        import torch

        ours = torch.from_dlpack(equalize_frames(clip)).numpy()
        ref = np.stack([np.asarray(ref_rand_augment_op(Image.fromarray(x), "Equalize", 7, 0, None)) for x in clip])
        assert ours.dtype == np.uint8 and np.array_equal(ours, ref)


@pytest.mark.parametrize("shape", [(3, 3), (3, 8), (7, 4), (5, 5)])
def test_sharpness_keeps_a_small_frames_border_as_pil_does(shape):
    """On frames barely larger than the 3x3 filter, most pixels are PIL's untouched border: ours
    gives PIL's frames exactly, both signs."""
    from nvidia.dali import fn, pipeline_def
    from PIL import Image

    from reference import ref_rand_augment_op

    h, w = shape
    frames = np.random.default_rng(5).integers(0, 256, (2, h, w, 3), dtype=np.uint8)
    spec = parse_rand_augment("rand-m7-n1-mstd0-inc1-p1")
    k = OP_NAMES.index("Sharpness")
    cases = [(m, s) for m in (3, 10) for s in (0, 1)]
    ops = [np.array([k, m * 3, s], np.int32) for m, s in cases]
    geo = [np.array(op_block(spec, k, m * 3, s, h, w, (0, 0, h, w), (0, 0, h, w)), np.float32) for m, s in cases]

    @pipeline_def(batch_size=len(cases), num_threads=1, device_id=None, enable_conditionals=True)
    def pipe():
        clip = fn.external_source(source=lambda: [frames] * len(cases), layout="FHWC")
        o, g = fn.external_source(source=lambda: ops), fn.external_source(source=lambda: geo)
        return rand_augment(clip, spec, [Step(o[0], o[1], o[2], g)])

    p = pipe()
    p.build()
    (out,) = p.run()
    for i, (m, s) in enumerate(cases):
        ref = np.stack([np.asarray(ref_rand_augment_op(Image.fromarray(x), "Sharpness", m, s, None)) for x in frames])
        assert np.array_equal(np.asarray(out[i]), ref), (shape, m, s)
