"""What the tests of models share."""
import torch

from apt_video import models

GEOM = dict(img_size=32, num_frames=4, embed_dim=64, depth=2, num_heads=2, num_classes=3)


def make(**kw):
    return models.create_model("vit_small_patch16_224", **{**GEOM, **kw})


def randomize(m):
    torch.manual_seed(1)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.05)
    return m


def backbone(sd):
    return {k: v for k, v in sd.items() if not k.startswith(("head", "prompt"))}


X = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(0))


def same_backbone(a, b):
    sa, sb = backbone(a.state_dict()), backbone(b.state_dict())
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], atol=0, rtol=0, msg=k)


def hf_logits(hf, x):
    with torch.no_grad():
        return hf(pixel_values=x.permute(0, 2, 1, 3, 4)).logits  # HF takes (B, T, C, H, W)
