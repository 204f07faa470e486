"""What the tests of export share."""
import torch

from apt_video import models


def tiny(seed=0, **kw):
    torch.manual_seed(seed)
    m = models.create_model("vit_small_patch16_224", img_size=32, num_frames=4, embed_dim=64, depth=2, num_heads=2,
                            num_classes=5, prompt_num_tokens=6, init_scale=1.0, prompt_dropout=0.2, **kw)
    if m.prompt_scale is not None:
        with torch.no_grad():
            m.prompt_scale.uniform_(0.5, 2.5)
    return m.eval()
