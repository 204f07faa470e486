"""What the tests of models share."""
import importlib
from contextlib import contextmanager

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


@contextmanager
def offline_hub_cache(tmp_path, monkeypatch, repo: str, fill):
    """A Hugging Face cache laid out here as huggingface_hub lays it out, holding ``repo``
    (``org/name``) at one commit, its snapshot folder filled by ``fill(folder)``; HF_HUB_CACHE and
    HF_HUB_OFFLINE point at it inside the block (no network). Yields the snapshot folder."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    folder = tmp_path / "hub" / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True)
    fill(snapshot)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hc

    importlib.reload(hc)  # the cache location and offline flag are read at import
    try:
        yield snapshot
    finally:
        monkeypatch.undo()
        importlib.reload(hc)
