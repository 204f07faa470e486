"""models.card: the clip record checks its values."""
import pytest

from apt_video.models.card import ClipSpec


def test_clip_spec_validates():
    with pytest.raises(ValueError, match="test_num_crop=0"):
        ClipSpec(test_num_crop=0)
    with pytest.raises(ValueError, match="sampler='tsn'"):
        ClipSpec(sampler="tsn")
    assert ClipSpec().num_views == 30
