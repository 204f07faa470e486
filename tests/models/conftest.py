"""Shared by the tests of this folder."""
import pytest
import torch


@pytest.fixture(scope="module")
def hf_model():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.VideoMAEConfig(image_size=32, patch_size=16, num_frames=4, tubelet_size=2,
                                      hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                      intermediate_size=256, qkv_bias=True, use_mean_pooling=True,
                                      layer_norm_eps=1e-6, num_labels=3)
    torch.manual_seed(0)
    hf = transformers.VideoMAEForVideoClassification(cfg).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            p.normal_(0, 0.05) if "key.bias" not in name else p.zero_()
    return hf
