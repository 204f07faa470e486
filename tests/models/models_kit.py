"""What the tests of models share."""
from apt_video import models


def tiny(**kw):
    base = dict(img_size=32, num_frames=4, embed_dim=48, depth=3, num_heads=3, num_classes=5,
                prompt_num_tokens=7)
    return models.create_model("vit_small_patch16_224", **{**base, **kw})
