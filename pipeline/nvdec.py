"""Which files NVDEC decodes, decided per file from its probe before DALI sees it.

NVDEC takes a stream only within per-codec limits: coded size (minimum and maximum width and height,
a macroblock budget), chroma format and bit depth. A file outside them makes DALI's mixed decoder
raise a critical error that leaves the whole pipeline unusable (``Video is too small in at least
one dimension``), so such files take the PyAV route from the start.

The limits come from the host's driver (``cuvidGetDecoderCaps``, the query DALI itself makes before
it opens a decoder) where ``libnvcuvid`` and a GPU are present, else from the NVIDIA Video Codec
SDK's table for Turing to Hopper GPUs (``SDK_LIMITS``).
"""
from __future__ import annotations

import ctypes
import logging
import re
from dataclasses import dataclass

log = logging.getLogger(__name__)

#: chroma subsampling names as ``probe_video`` records them (from the pixel format)
CHROMA = ("400", "420", "422", "444")


@dataclass(frozen=True)
class Limits:
    """What NVDEC takes of one codec at one chroma format and bit depth (coded pixels)."""

    min_width: int
    min_height: int
    max_width: int
    max_height: int
    max_macroblocks: int  # coded width * height / 256 must not exceed it


def _sdk(codec: str, formats: list[tuple[str, int]], lo: tuple[int, int], hi: tuple[int, int]) -> dict:
    mbs = hi[0] * hi[1] // 256
    return {(codec, chroma, depth): Limits(lo[0], lo[1], hi[0], hi[1], mbs) for chroma, depth in formats}


#: NVIDIA Video Codec SDK, NVDEC application note, "Hardware video decoder capabilities"
#: (Turing, Ampere, Ada and Hopper; Blackwell adds 4:2:2 H.264 and HEVC, which the driver query finds)
SDK_LIMITS: dict[tuple[str, str, int], Limits] = {
    **_sdk("h264", [("420", 8)], (48, 16), (4096, 4096)),
    **_sdk("hevc", [(c, d) for c in ("420", "444") for d in (8, 10, 12)], (144, 144), (8192, 8192)),
    **_sdk("vp9", [("420", d) for d in (8, 10, 12)], (128, 128), (8192, 8192)),
    **_sdk("av1", [("420", 8), ("420", 10), ("400", 8), ("400", 10)], (128, 128), (8192, 8192)),
    **_sdk("vp8", [("420", 8)], (48, 16), (4096, 4096)),
    **_sdk("mpeg4", [("420", 8)], (48, 16), (2032, 2032)),
    **_sdk("mjpeg", [(c, 8) for c in CHROMA], (64, 64), (32768, 16384)),
}

#: FFmpeg codec name -> cudaVideoCodec (cuviddec.h); the codecs DALI's mixed decoder opens
CUVID_CODECS = {"mpeg4": 2, "h264": 4, "mjpeg": 5, "hevc": 8, "vp8": 9, "vp9": 10, "av1": 11}


def pixel_format(pix_fmt: str) -> tuple[str, int] | None:
    """``(chroma, bit depth)`` of an FFmpeg pixel format name (``yuv420p`` -> ``("420", 8)``,
    ``yuv422p10le`` -> ``("422", 10)``, ``gray`` -> ``("400", 8)``); None when it is not a YUV or
    grey format NVDEC could output (RGB, palette, alpha, or unknown)."""
    m = re.fullmatch(r"(?:yuvj?(4[0-4]{2})p|(gray)|(nv12)|(p010)|(p016))(\d+)?(le|be)?", pix_fmt or "")
    if not m:
        return None
    chroma = m.group(1) or ("400" if m.group(2) else "420")
    depth = int(m.group(6)) if m.group(6) else (10 if m.group(4) else 16 if m.group(5) else 8)
    if chroma not in CHROMA or chroma == "440":
        return None
    return chroma, depth


def coded_size(codec: str, width: int, height: int) -> tuple[int, int]:
    """The coded size NVDEC checks: whole macroblocks (16 px) for H.264 and MPEG-4, whole 8 px
    blocks for the others (HEVC's minimum coding unit, VP9's and AV1's 8x8 grid)."""
    unit = 16 if codec in ("h264", "mpeg4", "mjpeg") else 8
    return -(-width // unit) * unit, -(-height // unit) * unit


def refusal(codec: str, width: int, height: int, pix_fmt: str, limits: dict | None = None) -> str | None:
    """Why NVDEC would not take a stream (one line), or None when it would."""
    limits = SDK_LIMITS if limits is None else limits
    if codec not in CUVID_CODECS:
        return f"NVDEC has no {codec or 'unknown'} decoder"
    fmt = pixel_format(pix_fmt)
    if fmt is None:
        return f"pixel format {pix_fmt or 'unknown'} is not one NVDEC decodes"
    lim = limits.get((codec, *fmt))
    if lim is None:
        return f"NVDEC does not decode {codec} {fmt[0][0]}:{fmt[0][1]}:{fmt[0][2]} at {fmt[1]} bits"
    w, h = coded_size(codec, width, height)
    if w < lim.min_width or h < lim.min_height:
        return f"{width}x{height} is below NVDEC's {codec} minimum of {lim.min_width}x{lim.min_height}"
    if w > lim.max_width or h > lim.max_height or w * h // 256 > lim.max_macroblocks:
        return f"{width}x{height} is above NVDEC's {codec} maximum of {lim.max_width}x{lim.max_height}"
    return None


# -- the host's own limits --------------------------------------------------------------------------------
class _Caps(ctypes.Structure):
    """``CUVIDDECODECAPS`` (cuviddec.h)."""

    _fields_ = [("eCodecType", ctypes.c_int), ("eChromaFormat", ctypes.c_int), ("nBitDepthMinus8", ctypes.c_uint),
                ("reserved1", ctypes.c_uint * 3), ("bIsSupported", ctypes.c_ubyte), ("nNumNVDECs", ctypes.c_ubyte),
                ("nOutputFormatMask", ctypes.c_ushort), ("nMaxWidth", ctypes.c_uint), ("nMaxHeight", ctypes.c_uint),
                ("nMaxMBCount", ctypes.c_uint), ("nMinWidth", ctypes.c_ushort), ("nMinHeight", ctypes.c_ushort),
                ("bIsHistogramSupported", ctypes.c_ubyte), ("nCounterBitDepth", ctypes.c_ubyte),
                ("nMaxHistogramBins", ctypes.c_ushort), ("reserved3", ctypes.c_uint * 10)]


_HOST: dict[int, dict | None] = {}


def host_limits(device_id: int = 0) -> dict | None:
    """NVDEC's limits on GPU ``device_id`` as its driver reports them, for every codec, chroma
    format and bit depth DALI's decoder may meet (once per process); None where the driver or
    ``libnvcuvid`` cannot be asked (no GPU, or a host without NVDEC)."""
    if device_id not in _HOST:
        try:
            _HOST[device_id] = _query(device_id)
        except (OSError, RuntimeError, AttributeError) as exc:
            log.debug("NVDEC's limits not queried (%s); using the Video Codec SDK's table", exc)
            _HOST[device_id] = None
    return _HOST[device_id]


def _query(device_id: int) -> dict:
    cuda, cuvid = ctypes.CDLL("libcuda.so.1"), ctypes.CDLL("libnvcuvid.so.1")

    def call(fn, *args):
        status = fn(*args)
        if status != 0:
            raise RuntimeError(f"{fn.__name__} returned CUDA error {status}")

    device, ctx, popped = ctypes.c_int(), ctypes.c_void_p(), ctypes.c_void_p()
    call(cuda.cuInit, 0)
    call(cuda.cuDeviceGet, ctypes.byref(device), device_id)
    call(cuda.cuDevicePrimaryCtxRetain, ctypes.byref(ctx), device)  # the context PyTorch and DALI share
    try:
        call(cuda.cuCtxPushCurrent_v2, ctx)
        try:
            found = {}
            for codec, chroma, depth in {(c, ch, d) for (c, ch, d) in SDK_LIMITS} | {
                    (c, ch, d) for c in ("h264", "hevc") for ch in ("420", "422") for d in (8, 10)}:
                caps = _Caps(eCodecType=CUVID_CODECS[codec], eChromaFormat=CHROMA.index(chroma),
                             nBitDepthMinus8=depth - 8)
                call(cuvid.cuvidGetDecoderCaps, ctypes.byref(caps))
                if caps.bIsSupported:
                    found[(codec, chroma, depth)] = Limits(caps.nMinWidth, caps.nMinHeight, caps.nMaxWidth,
                                                           caps.nMaxHeight, caps.nMaxMBCount)
            return found
        finally:
            cuda.cuCtxPopCurrent_v2(ctypes.byref(popped))
    finally:
        cuda.cuDevicePrimaryCtxRelease_v2(device)
