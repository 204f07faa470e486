"""apt_video.commands.argtypes: a bad number or list is refused by argparse, naming the option."""
import argparse
import re

import pytest

from apt_video.commands.argtypes import batch_profile, comma_list, opset, positive_int, share, views


def parse(kind, text):
    p = argparse.ArgumentParser(prog="t", exit_on_error=False)
    p.add_argument("--x", type=kind)
    return p.parse_args(["--x", text]).x


@pytest.mark.parametrize("kind,text,want", [
    (positive_int, "3", 3), (share, "1e-1", 0.1), (views, "10X3", (10, 3)), (batch_profile, "1:30:60", (1, 30, 60)),
    (opset, "23", 23), (comma_list("apt_video.pipeline.video", "CODECS"), " vp9, h264 ", "vp9,h264"),
])
def test_good_values(kind, text, want):
    assert parse(kind, text) == want


@pytest.mark.parametrize("kind,text,message", [
    (positive_int, "0", "'0': must be at least 1"), (positive_int, "2.5", "'2.5' is not a whole number"),
    (share, "1", "'1' must be in [0, 1)"), (views, "0x3", "both numbers must be >= 1"),
    (batch_profile, "30:1:60", "need 1 <= MIN <= OPT <= MAX"), (opset, "17", "choose 18 to 23"),
    (comma_list("apt_video.pipeline.video", "CODECS"), "vp9,bogus", "'bogus': choose from"),
])
def test_bad_values_name_the_option(kind, text, message):
    with pytest.raises(argparse.ArgumentError, match=f"argument --x: .*{re.escape(message)}"):
        parse(kind, text)
