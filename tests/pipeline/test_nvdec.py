"""Which files NVDEC takes, decided per file from the probe (pipeline.nvdec, pipeline.video.decode_route).

The limits are NVIDIA's, from the Video Codec SDK's NVDEC table (Turing to Hopper), typed here from
that table, not from the module: the first GPU run saw VP9 refused at 160x120 (minimum 128x128) and
H.264 at 160x120 decode."""
import ctypes
import itertools

import pytest

from apt_video.pipeline import nvdec
from apt_video.pipeline.data import VideoEntry
from apt_video.pipeline.video import decode_route, probe_video, write_video

from videos import index_frames

# codec -> (min w, min h, max w, max h, accepted (chroma, depth)), from the SDK's table
SDK = {
    "h264": (48, 16, 4096, 4096, {("420", 8)}),
    "hevc": (144, 144, 8192, 8192, {(c, d) for c in ("420", "444") for d in (8, 10, 12)}),
    "vp9": (128, 128, 8192, 8192, {("420", d) for d in (8, 10, 12)}),
    "av1": (128, 128, 8192, 8192, {("420", 8), ("420", 10), ("400", 8), ("400", 10)}),
    "mpeg4": (48, 16, 2032, 2032, {("420", 8)}),
}


PIX = {"yuv420p": ("420", 8), "yuvj420p": ("420", 8), "yuv422p": ("422", 8), "yuv444p": ("444", 8),
       "yuv420p10le": ("420", 10), "yuv444p12le": ("444", 12), "gray": ("400", 8), "gray10le": ("400", 10),
       "nv12": ("420", 8), "p010le": ("420", 10)}


@pytest.mark.parametrize("name,want", [*PIX.items(), ("rgb24", None), ("yuva420p", None), ("pal8", None),
                                       ("yuv440p", None), ("gbrp", None), ("", None)])
def test_pixel_formats_give_chroma_and_bit_depth(name, want):
    assert nvdec.pixel_format(name) == want


@pytest.mark.parametrize("codec,pix,size", itertools.product(
    SDK, ["yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "gray"],
    [(160, 120), (320, 240), (128, 128), (144, 144), (2048, 1080), (4096, 2160), (8192, 4320), (40, 40)]))
def test_the_route_follows_the_sdk_table(codec, pix, size):
    lo_w, lo_h, hi_w, hi_h, formats = SDK[codec]
    unit = 16 if codec in ("h264", "mpeg4") else 8
    w, h = (-(-v // unit) * unit for v in size)
    takes = PIX[pix] in formats and lo_w <= w <= hi_w and lo_h <= h <= hi_h
    why = nvdec.refusal(codec, *size, pix)
    assert (why is None) == takes, why
    if not takes:
        assert codec in why
    e = VideoEntry("x", codec=codec, width=size[0], height=size[1], pix_fmt=pix, status="ok")
    if max(size) > 1920:  # DALI's route stops there in any case (PyAV scales such frames down)
        assert "longer than 1920 px" in decode_route(e, "gpu")
    else:
        assert decode_route(e, "gpu") == why


def test_what_the_first_gpu_run_met():
    vp9 = VideoEntry("a.webm", codec="vp9", width=160, height=120, pix_fmt="yuv420p", status="ok")
    assert "below NVDEC's vp9 minimum of 128x128" in decode_route(vp9, "gpu")
    assert decode_route(VideoEntry("b.mp4", codec="h264", width=160, height=120, pix_fmt="yuv420p", status="ok"),
                        "gpu") is None
    assert decode_route(vp9, "cpu") is None  # DALI's CPU decoder has no such minimum
    unknown = VideoEntry("c.webm", codec="vp9", width=320, height=240, status="ok")  # a manifest without pix_fmt
    assert "pixel format unknown" in decode_route(unknown, "gpu")


def test_the_hosts_own_limits_replace_the_table():
    e = VideoEntry("a.webm", codec="vp9", width=160, height=120, pix_fmt="yuv420p", status="ok")
    host = {("vp9", "420", 8): nvdec.Limits(64, 64, 8192, 8192, 262144)}
    assert decode_route(e, "gpu", host) is None
    assert "does not decode h264" in decode_route(
        VideoEntry("b.mp4", codec="h264", width=320, height=240, pix_fmt="yuv420p", status="ok"), "gpu", host)


def test_no_driver_here_means_the_sdk_table():
    try:
        ctypes.CDLL("libnvcuvid.so.1")
        pytest.skip("this host has NVDEC")
    except OSError:
        pass
    assert nvdec.host_limits(0) is None


def test_the_caps_struct_has_cuviddec_h_layout():
    # CUVIDDECODECAPS: 3 ints, 3 reserved, 2 bytes + a short, 3 uints, 2 shorts, 2 bytes + a short, 10 reserved
    assert ctypes.sizeof(nvdec._Caps) == 12 + 12 + 4 + 12 + 4 + 4 + 40 == 88
    assert (nvdec._Caps.bIsSupported.offset, nvdec._Caps.nMaxWidth.offset, nvdec._Caps.nMaxMBCount.offset,
            nvdec._Caps.nMinWidth.offset, nvdec._Caps.reserved3.offset) == (24, 28, 36, 40, 48)


@pytest.mark.parametrize("codec,pix,size,route", [
    ("vp9", "yuv420p", (160, 120), "below NVDEC's vp9 minimum"),
    ("vp9", "yuv420p", (320, 240), None),
    ("vp9", "yuv444p", (320, 240), "does not decode vp9 4:4:4"),
    ("h264", "yuv420p", (160, 120), None),
    ("h264", "yuv422p", (320, 240), "does not decode h264 4:2:2 at 8 bits"),
    ("h264", "yuv420p10le", (320, 240), "does not decode h264 4:2:0 at 10 bits"),
    ("hevc", "yuv444p", (320, 240), None),
    ("hevc", "yuv420p", (128, 96), "below NVDEC's hevc minimum"),
])
def test_probed_files_are_routed_before_dali_sees_them(tmp_path, codec, pix, size, route):
    path = write_video(tmp_path / f"v.{'webm' if codec == 'vp9' else 'mp4'}", index_frames(12, *size), codec,
                       pix_fmt=pix)
    e = probe_video(path)
    assert e.ok and e.pix_fmt == pix and (e.width, e.height) == size
    why = decode_route(e, "gpu")
    assert why is None if route is None else route in why
