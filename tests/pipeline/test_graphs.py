"""The DALI graphs' own pieces on the CPU (``pipeline.graphs``): one file's frames through DALI's
decoder, and a file that breaks the decoder named without the loader. The training and view graphs
run through the loader (test_loader.py) and RandAugment's regions through ``_augment``
(test_augment.py)."""
import numpy as np
import pytest

from apt_video.pipeline.graphs import dali_error, decode_alone, file_decoder

from videos import read_index


@pytest.mark.parametrize("codec", ["vp9", "vp8", "mjpeg"])
def test_file_decoder_gives_the_frames_asked_for(index_videos, codec):
    """DALI's CPU decoder on the bytes of one file: the frames at the indices given, in that order
    (repeats and a backward step included), at the file's own size."""
    indices = np.array([0, 5, 33, 33, 12, 69])
    frames = np.asarray(file_decoder(np.fromfile(index_videos[codec], np.uint8), indices, "cpu").run()[0][0])
    assert [read_index(f) for f in frames] == indices.tolist()
    assert frames.shape[1:3] == {"vp9": (120, 160), "vp8": (128, 96), "mjpeg": (160, 120)}[codec]


def test_decode_alone_names_what_breaks_dalis_decoder(index_videos, tmp_path):
    """None for a file DALI decodes; for a file it cannot (a codec its CPU build lacks, bytes cut
    short) one line of DALI's error, not an exception."""
    assert decode_alone(str(index_videos["vp9"]), np.arange(8), "cpu") is None
    cut = tmp_path / "cut.webm"
    cut.write_bytes(index_videos["vp9"].read_bytes()[:400])
    for path in (index_videos["h264"], cut):  # DALI's error opens with "Critical error in pipeline:"
        assert decode_alone(str(path), np.arange(8), "cpu") == 'Failed to create video decoder for "memory file"'


def test_dali_error_keeps_the_line_that_says_what_went_wrong():
    nvdec = ("Critical error in pipeline:\nError in MIXED operator `nvidia.dali.fn.decoders.video`,\nwhich was used "
             "in the pipeline definition with the following traceback:\n\n  File \"graphs.py\", line 58\n\n"
             "encountered:\n\nAssert on \"width >= caps.nMinWidth && height >= caps.nMinHeight\" failed: Video is "
             "too small in at least one dimension. Provided: 160x120 vs supported:128x128\nC++ context: [...]\n"
             "Current pipeline object is no longer valid.")
    assert dali_error(RuntimeError(nvdec)) == ("Video is too small in at least one dimension. Provided: 160x120 vs "
                                               "supported:128x128")
    assert dali_error(ValueError("one line")) == "one line" and dali_error(RuntimeError()) == "RuntimeError"
