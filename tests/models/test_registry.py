"""models.registry: the registered architectures, and an unknown name refused."""
import pytest

from apt_video import models

from models_kit import tiny


def test_registry_lists_and_rejects():
    assert {"vit_small_patch16_224", "vit_base_patch16_224", "vit_large_patch16_224",
            "vit_huge_patch16_224", "vit_micro_patch16_112"} <= set(models.list_models())
    with pytest.raises(ValueError, match="unknown model 'vit_giant'"):
        models.create_model("vit_giant")
    with pytest.raises(ValueError, match="prompt layers 3..2"):
        tiny(prompt_start=3, prompt_end=2)
