"""VideoMAE-style baselines for ``apt-video bench``: what apt-video is measured against.

- ``DecordClips``: the VideoMAE training loader (decord decode, PIL RandAugment applying the same
  timm op to every frame, normalise, random resized crop, flip; ``num_sample`` augmentations of
  one decode) in torch DataLoader workers; with ``decode_only``, the decoded frames alone.
- ``EagerViT``: a straightforward eager forward of the same network with explicit
  softmax(QK^T)V attention, loading apt-video's state dict.
- ``videomae_eval``: the VideoMAE test loop (decord decode of every rate-th frame, resize, per-view
  crops and normalisation in torch, the model on each video's views).
"""
from __future__ import annotations

import random

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from timm.data.auto_augment import rand_augment_transform

from apt_video.models.card import ClipSpec
from apt_video.pipeline.randaug import VIDEOMAE_RAND_AUGMENT
from apt_video.pipeline.sampling import crop_offsets, dense_indices, dense_view_indices, resize_short_side


# -- training loader --------------------------------------------------------------------------------
class VideoRandAugment:
    """timm's RandAugment ops (``rand_augment_transform``) with one draw per clip, applied to all
    of its PIL frames, as VideoMAE's video RandAugment does."""

    def __init__(self, config: str = VIDEOMAE_RAND_AUGMENT):
        self.ra = rand_augment_transform(config, {"translate_const": 100, "img_mean": (124, 116, 104)})

    def __call__(self, frames):
        for op in np.random.choice(self.ra.ops, self.ra.num_layers, replace=True):
            if op.prob < 1.0 and random.random() > op.prob:
                continue
            mag = op.magnitude
            if op.magnitude_std > 0:
                mag = random.gauss(mag, op.magnitude_std)
            mag = max(0.0, min(mag, op.magnitude_max or 10))
            args = op.level_fn(mag, op.hparams) if op.level_fn is not None else ()
            frames = [op.aug_fn(f, *args, **op.kwargs) for f in frames]
        return frames


class DecordClips(torch.utils.data.Dataset):
    """(clips ``(num_sample, 3, T, S, S)`` float32, label) per video, VideoMAE's way: one decode,
    ``num_sample`` augmentations. ``decode_only``: the decoded ``(T, H, W, 3)`` uint8 frames."""

    def __init__(self, paths: list[str], spec: ClipSpec, rand_augment: str | None, num_sample: int = 1,
                 decode_only: bool = False):
        self.paths, self.spec, self.num_sample, self.decode_only = paths, spec, num_sample, decode_only
        self.ra = VideoRandAugment(rand_augment) if rand_augment else None
        self.mean = torch.tensor(spec.mean).view(3, 1, 1, 1)
        self.std = torch.tensor(spec.std).view(3, 1, 1, 1)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        import decord

        vr = decord.VideoReader(self.paths[i], num_threads=1)
        idx = dense_indices(len(vr), self.spec.num_frames, self.spec.sampling_rate, np.random.default_rng())
        frames = vr.get_batch(list(idx)).asnumpy()
        if self.decode_only:
            return torch.from_numpy(frames), 0
        clips = []
        for _ in range(self.num_sample):
            aug = frames
            if self.ra is not None:
                aug = np.stack([np.asarray(f) for f in self.ra([Image.fromarray(f) for f in frames])])
            clip = torch.from_numpy(aug).permute(3, 0, 1, 2).float().div_(255)  # (3, T, H, W)
            clip = (clip - self.mean) / self.std
            clips.append(random_resized_crop(clip, self.spec.input_size))
        return torch.stack(clips), 0


def random_resized_crop(clip: torch.Tensor, size: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    _, _, h, w = clip.shape
    for _ in range(10):
        area = h * w * random.uniform(*scale)
        ar = np.exp(random.uniform(np.log(ratio[0]), np.log(ratio[1])))
        cw, ch = int(round(np.sqrt(area * ar))), int(round(np.sqrt(area / ar)))
        if 0 < cw <= w and 0 < ch <= h:
            y, x = random.randint(0, h - ch), random.randint(0, w - cw)
            break
    else:
        ch, cw, y, x = h, w, 0, 0
    out = F.interpolate(clip[:, :, y:y + ch, x:x + cw], size=(size, size), mode="bilinear", align_corners=False)
    return out.flip(-1) if random.random() < 0.5 else out


def _flatten_samples(batch):
    """VideoMAE's multiple-samples collate: the repeats of each video side by side."""
    clips = torch.cat([x[0] for x in batch])
    return clips, torch.tensor([x[1] for x in batch]).repeat_interleave(len(clips) // len(batch))


class EndlessShuffle(torch.utils.data.Sampler):
    """Positions ``0..n-1``, shuffled afresh for each pass, without end: one DataLoader iteration
    runs on over the epochs, its workers never waiting at an epoch's end for the next ``iter()``
    (as an infinite training sampler does, and as apt-video's training source streams)."""

    def __init__(self, n: int, seed: int = 0):
        self.n, self.seed = n, seed

    def __iter__(self):
        rng = np.random.default_rng(self.seed)
        while True:
            yield from rng.permutation(self.n).tolist()


def decord_loader(paths, spec, rand_augment, batch_size=8, workers=2, num_sample=1, decode_only=False):
    """``batch_size`` videos per batch (``batch_size * num_sample`` clips), batch after batch over
    endless shuffled epochs (``EndlessShuffle``): a bench times the steady state, not epoch ends."""
    ds = DecordClips(paths, spec, rand_augment, num_sample, decode_only)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, sampler=EndlessShuffle(len(ds)),
                                       num_workers=workers, drop_last=True,
                                       persistent_workers=workers > 0,
                                       collate_fn=None if decode_only else _flatten_samples)


# -- eager network ---------------------------------------------------------------------------------
class EagerViT(torch.nn.Module):
    """The same VideoMAE network written plainly: per-block explicit attention, no fused kernels."""

    def __init__(self, model):
        super().__init__()
        self.m = model

    def forward(self, x, prompts=None):
        m = self.m
        x = m.patch_embed(x) + m.pos_embed
        eff = m.effective_prompts()
        for i, blk in enumerate(m.blocks):
            a = blk.attn
            y = blk.norm1(x)
            b, n, d = y.shape
            qkv = F.linear(y, a.qkv.weight, torch.cat([a.q_bias, torch.zeros_like(a.q_bias), a.v_bias]))
            q, k, v = qkv.reshape(b, n, 3, a.num_heads, a.head_dim).permute(2, 0, 3, 1, 4)
            if eff is not None and m.prompt_start <= i <= m.prompt_end:
                p = eff[i - m.prompt_start]
                k = torch.cat([k, p[0].expand(b, a.num_heads, -1, -1)], 2)
                v = torch.cat([v, p[1].expand(b, a.num_heads, -1, -1)], 2)
            attn = torch.softmax((q @ k.transpose(-2, -1)) * a.scale, dim=-1)
            x = x + a.proj((attn @ v).transpose(1, 2).reshape(b, n, d))
            x = x + blk.mlp(blk.norm2(x))
        return m.head(m.head_norm(x.mean(1)))


# -- evaluation loop ------------------------------------------------------------------------------------
@torch.no_grad()
def videomae_eval(model, paths: list[str], spec: ClipSpec, chunk: int = 30) -> tuple[list[np.ndarray], int]:
    """Merged probabilities per video and the number of clips run, VideoMAE's test way."""
    import decord

    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    out, clips = [], 0
    for path in paths:
        vr = decord.VideoReader(path, num_threads=1)
        seg = dense_view_indices(len(vr), spec.num_frames, spec.sampling_rate, spec.test_num_segment)
        frames = torch.from_numpy(vr.get_batch(list(range(0, len(vr), spec.sampling_rate))).asnumpy())
        h, w = frames.shape[1:3]
        rh, rw = resize_short_side(h, w, spec.input_size)
        frames = F.interpolate(frames.permute(0, 3, 1, 2).float(), size=(rh, rw), mode="bilinear",
                               align_corners=False)
        views = []
        for s in seg:
            pos = torch.as_tensor(s // spec.sampling_rate).clamp(max=len(frames) - 1)
            clip = frames[pos]
            for y, x in crop_offsets(rh, rw, spec.input_size, spec.test_num_crop):
                crop = clip[:, :, y:y + spec.input_size, x:x + spec.input_size] / 255
                views.append(((crop - mean) / std).permute(1, 0, 2, 3))
        views = torch.stack(views)
        logits = torch.cat([model(views[i:i + chunk]) for i in range(0, len(views), chunk)])
        out.append(torch.softmax(logits, -1).mean(0).numpy())
        clips += len(views)
    return out, clips
