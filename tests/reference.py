"""The reference's formulas, transcribed for the parity tests: APT (wgcban/apt) and VideoMAE
(MCG-NJU/VideoMAE). Each function is written as the named reference file writes it, not as apt-video
does, so that a test comparing the two can fail. Nothing here is imported by apt-video itself.

- ``ref_apt_logits``, ``ref_sinusoid_table``: modeling_VPT.py (PromptedVisionTransformer, Attention).
- ``ref_label_smoothing_ce``: timm's LabelSmoothingCrossEntropy, run_class_apt.py's criterion.
- ``ref_param_groups``: optim_factory.get_parameter_groups; ``ref_adamw_step``: DeepSpeed Adam with
  ``adam_w_mode=True`` (utils.create_ds_config); ``ref_cosine_scheduler``: utils.cosine_scheduler.
- ``ref_kinetics_*``: kinetics.py (dense sampler); ``ref_ssv2_*``: ssv2.py (TSN segments);
  ``ref_resize``, ``ref_crop_starts``: functional.get_resize_sizes and the test crops;
  ``ref_center_crop``: video_transforms.CenterCrop (the validation crop);
  ``ref_erase_cube_box``: random_erasing.py (VideoMAE's RandomErasing, one box on every frame);
  ``ref_train_batches``, ``ref_steps_per_epoch``: run_class_apt.py's loader and schedule length;
  ``ref_spatial_crop``: video_transforms._get_param_spatial_crop (the random resized crop).
"""
import math

import numpy as np
import torch
import torch.nn.functional as F


def ref_sinusoid_table(n_position, d_hid):
    """modeling_VPT.get_sinusoid_encoding_table (a float32 table, as the reference returns)."""
    table = np.array([[pos / np.power(10000, 2 * (j // 2) / d_hid) for j in range(d_hid)]
                      for pos in range(n_position)])
    table[:, 0::2] = np.sin(table[:, 0::2])
    table[:, 1::2] = np.cos(table[:, 1::2])
    return torch.tensor(table, dtype=torch.float32).unsqueeze(0)


def ref_apt_logits(w, x, *, heads, tubelet, patch, prompt_start, prompt_end, depth, eps=1e-6):
    """PromptedVisionTransformer.forward of modeling_VPT.py (eval: no dropout, no drop path), written
    out from a dict of tensors ``w`` with the reference's state-dict names."""
    x = F.conv3d(x, w["patch_embed.proj.weight"], w["patch_embed.proj.bias"], stride=(tubelet, patch, patch))
    x = x.flatten(2).transpose(1, 2)
    b, n, c = x.shape
    x = x + ref_sinusoid_table(n, c).expand(b, -1, -1).type_as(x)
    for i in range(depth):
        pre = f"blocks.{i}."
        p_k = p_v = scale = None
        if prompt_start <= i <= prompt_end:
            p_k = w["prompt_embeddings_k"][i - prompt_start]
            p_v = w["prompt_embeddings_v"][i - prompt_start]
            scale = w["prompt_scale"][i - prompt_start] if "prompt_scale" in w else None
        h = F.layer_norm(x, (c,), w[pre + "norm1.weight"], w[pre + "norm1.bias"], eps)
        qkv_bias = torch.cat((w[pre + "attn.q_bias"], torch.zeros_like(w[pre + "attn.v_bias"]), w[pre + "attn.v_bias"]))
        qkv = F.linear(h, w[pre + "attn.qkv.weight"], qkv_bias).reshape(b, n, 3, heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if scale is not None and p_k is not None and p_v is not None:
            scale_k = scale[0].view(-1, 1)
            scale_v = scale[1].view(-1, 1)
            p_k = p_k * torch.maximum(scale_k, torch.ones_like(scale_k))
            p_v = p_v * torch.maximum(scale_v, torch.ones_like(scale_v))
        if p_k is not None and p_v is not None:
            k = torch.cat((k, p_k.expand(b, heads, -1, -1)), dim=2)
            v = torch.cat((v, p_v.expand(b, heads, -1, -1)), dim=2)
        q = q * (c // heads) ** -0.5
        attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, n, -1)
        x = x + F.linear(out, w[pre + "attn.proj.weight"], w[pre + "attn.proj.bias"])
        h = F.layer_norm(x, (c,), w[pre + "norm2.weight"], w[pre + "norm2.bias"], eps)
        h = F.linear(F.gelu(F.linear(h, w[pre + "mlp.fc1.weight"], w[pre + "mlp.fc1.bias"])),
                     w[pre + "mlp.fc2.weight"], w[pre + "mlp.fc2.bias"])
        x = x + h
    x = F.layer_norm(x.mean(1), (c,), w["head_norm.weight"], w["head_norm.bias"], eps)
    return F.linear(x, w["head.weight"], w["head.bias"])


def ref_label_smoothing_ce(logits, target, smoothing):
    """timm LabelSmoothingCrossEntropy, the criterion of run_class_apt.py."""
    logprobs = F.log_softmax(logits, dim=-1)
    nll = -logprobs.gather(dim=-1, index=target.unsqueeze(1)).squeeze(1)
    return ((1.0 - smoothing) * nll + smoothing * -logprobs.mean(dim=-1)).mean()


def ref_cosine_scheduler(base_value, final_value, epochs, niter_per_ep, warmup_epochs=0, start_warmup_value=0):
    """utils.cosine_scheduler of VideoMAE / APT (warmup_steps unset), as run_class_apt.py calls it:
    without start_warmup_value, so the warmup starts at 0."""
    warmup_schedule = np.array([])
    warmup_iters = warmup_epochs * niter_per_ep
    if warmup_epochs > 0:
        warmup_schedule = np.linspace(start_warmup_value, base_value, warmup_iters)
    iters = np.arange(epochs * niter_per_ep - warmup_iters)
    schedule = np.array([final_value + 0.5 * (base_value - final_value) * (1 + math.cos(math.pi * i / (len(iters))))
                         for i in iters])
    return np.concatenate((warmup_schedule, schedule))


def ref_param_groups(model, weight_decay, skip_list=("pos_embed", "cls_token")):
    """optim_factory.get_parameter_groups (no layer decay): name -> weight decay."""
    out = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        no_decay = len(param.shape) == 1 or name.endswith(".bias") or name in skip_list
        out[name] = 0.0 if no_decay else weight_decay
    return out


def ref_adamw_step(p, g, lr, wd, betas, eps):
    """The first step of DeepSpeed's Adam with adam_w_mode=True and bias correction (what
    utils.create_ds_config asks for with --opt adam or adamw): decoupled decay, lr * (update + wd * p)."""
    m = (1 - betas[0]) * g
    v = (1 - betas[1]) * g * g
    m_hat, v_hat = m / (1 - betas[0]), v / (1 - betas[1])
    return p - lr * (m_hat / (v_hat.sqrt() + eps) + wd * p)


def ref_kinetics_train(n, clip_len, rate, randint):
    """kinetics.py loadvideo_decord, training (num_segment=1, sample_rate_scale=1)."""
    converted_len = int(clip_len * rate)
    seg_len = n // 1
    if seg_len <= converted_len:
        index = np.linspace(0, seg_len, num=seg_len // rate)
        index = np.concatenate((index, np.ones(clip_len - seg_len // rate) * seg_len))
        index = np.clip(index, 0, seg_len - 1).astype(np.int64)
    else:
        end_idx = randint(converted_len, seg_len)
        str_idx = end_idx - converted_len
        index = np.linspace(str_idx, end_idx, num=clip_len)
        index = np.clip(index, str_idx, end_idx - 1).astype(np.int64)
    return list(index)


def ref_kinetics_test(n, clip_len, rate, segments):
    """kinetics.py test: every rate-th frame, padded to clip_len; segment k starts at
    int(k * max((T' - clip_len) / (segments - 1), 0))."""
    all_index = [x for x in range(0, n, rate)]
    while len(all_index) < clip_len:
        all_index.append(all_index[-1])
    views = []
    for chunk_nb in range(segments):
        temporal_step = max(1.0 * (len(all_index) - clip_len) / (segments - 1), 0)
        temporal_start = int(chunk_nb * temporal_step)
        views.append(all_index[temporal_start:temporal_start + clip_len])
    return views


def ref_ssv2_train(n, num_segment, randint_size):
    """ssv2.py loadvideo_decord, training: avg = n // num_segment, x * avg + randint(avg)."""
    average_duration = n // num_segment
    if average_duration > 0:
        return list(np.multiply(list(range(num_segment)), average_duration) + randint_size(average_duration,
                                                                                           num_segment))
    if n > num_segment:
        raise AssertionError("unreachable in the reference: average_duration == 0 means n < num_segment")
    return list(np.zeros((num_segment,)).astype(int))


def ref_ssv2_test(n, num_segment, test_num_segment=2):
    """ssv2.py test: starts and midpoints of num_segment ticks, padded, sorted; view k = buffer[k::2]."""
    tick = n / float(num_segment)
    all_index = list(np.array([int(tick / 2.0 + tick * x) for x in range(num_segment)] +
                              [int(tick * x) for x in range(num_segment)]))
    while len(all_index) < (num_segment * test_num_segment):
        all_index.append(all_index[-1])
    all_index = list(np.sort(np.array(all_index)))
    return [all_index[k::2] for k in range(test_num_segment)]


def ref_resize(h, w, size):
    """functional.py get_resize_sizes: (oh, ow)."""
    if w < h:
        return int(size * h / w), size
    return size, int(size * w / h)


def ref_crop_starts(h, w, short, crops):
    """kinetics.py / ssv2.py test: spatial_start = int(split_nb * (long - short) / (crops - 1)), along H
    when H >= W."""
    spatial_step = 1.0 * (max(h, w) - short) / (crops - 1)
    return [int(split_nb * spatial_step) for split_nb in range(crops)]


def ref_train_batches(n, batch_size, world):
    """run_class_apt.py:280-290: DistributedSampler (each rank ceil(n / world) samples, padded by
    wrapping) into DataLoader(drop_last=True): the batches one rank sees in an epoch."""
    return math.ceil(n / world) // batch_size


def ref_steps_per_epoch(n, batch_size, update_freq, world):
    """run_class_apt.py:453-454: num_training_steps_per_epoch = len(dataset_train) // total_batch_size."""
    total_batch_size = batch_size * update_freq * world
    return n // total_batch_size


def ref_erase_cube_box(img_h, img_w, probability, random, min_area=0.02, max_area=1 / 3, min_aspect=0.3):
    """random_erasing.py RandomErasing._erase_cube (kinetics.py: mode 'pixel', max_count=recount=1,
    so count 1; cube, the default): the box erased on every frame, (top, left, h, w), or None when
    the draw skips it. ``random``: what supplies ``random``, ``uniform`` and ``randint``."""
    log_aspect_ratio = (math.log(min_aspect), math.log(1 / min_aspect))
    if random.random() > probability:
        return None
    area = img_h * img_w
    count = 1
    for _ in range(count):
        for _ in range(100):
            target_area = random.uniform(min_area, max_area) * area / count
            aspect_ratio = math.exp(random.uniform(*log_aspect_ratio))
            h = int(round(math.sqrt(target_area * aspect_ratio)))
            w = int(round(math.sqrt(target_area / aspect_ratio)))
            if w < img_w and h < img_h:
                top = random.randint(0, img_h - h)
                left = random.randint(0, img_w - w)
                return top, left, h, w
    return None


def ref_center_crop(im_h, im_w, size):
    """video_transforms.py CenterCrop: (y1, x1) = (int(round((im_h - h) / 2.)), int(round((im_w - w) / 2.)))."""
    h, w = size, size
    x1 = int(round((im_w - w) / 2.))
    y1 = int(round((im_h - h) / 2.))
    return y1, x1


def ref_spatial_crop(scale, ratio, height, width, random):
    """video_transforms.py _get_param_spatial_crop (num_repeat=10, log_scale=True, switch_hw=False),
    as random_resized_crop calls it: (i, j, h, w). ``random``: what supplies ``uniform`` and ``randint``."""
    for _ in range(10):
        target_area = random.uniform(*scale) * (height * width)
        aspect_ratio = math.exp(random.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < w <= width and 0 < h <= height:
            return random.randint(0, height - h), random.randint(0, width - w), h, w
    in_ratio = float(width) / float(height)
    if in_ratio < min(ratio):
        w = width
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = height
        w = int(round(h * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


# -- RandAugment's ops: rand_augment.py (VideoMAE's copy of timm's), on one PIL frame --------------
RA_MAX_LEVEL = 10.0
RA_FILL = (128, 128, 128)  # rand_augment.py _FILL: VideoMAE passes no img_mean


def ref_rand_augment_op(img, name, level, negate, resample):
    """rand_augment.py: ``LEVEL_TO_ARG[name](level)`` (``_randomly_negate`` given as ``negate``),
    then ``NAME_TO_OP[name](img, *args, fillcolor=_FILL, resample=resample)``, for the 'increasing'
    op set (``inc1``). ``img``: a PIL RGB image; returns one."""
    from PIL import Image, ImageEnhance, ImageOps

    def sign(v):
        return -v if negate else v

    kw = dict(fillcolor=RA_FILL, resample=resample)
    if name == "AutoContrast":
        return ImageOps.autocontrast(img)
    if name == "Equalize":
        return ImageOps.equalize(img)
    if name == "Invert":
        return ImageOps.invert(img)
    if name == "Rotate":
        return img.rotate(sign((level / RA_MAX_LEVEL) * 30.0), **kw)
    if name == "Posterize":  # PosterizeIncreasing
        bits = 4 - int((level / RA_MAX_LEVEL) * 4)
        if bits >= 8:
            return img
        mask = ~(2 ** (8 - bits) - 1)  # ImageOps.posterize's table; at bits 0 (level 10) all black, as
        return img.point([i & mask for i in range(256)] * 3)  # PIL before 10 gave it (10 refuses 0)
    if name == "Solarize":  # SolarizeIncreasing
        return ImageOps.solarize(img, 256 - int((level / RA_MAX_LEVEL) * 256))
    if name == "SolarizeAdd":
        add, thresh = int((level / RA_MAX_LEVEL) * 110), 128
        lut = [min(255, i + add) if i < thresh else i for i in range(256)]
        return img.point(lut * 3)
    enhance = {"Color": ImageEnhance.Color, "Contrast": ImageEnhance.Contrast,
               "Brightness": ImageEnhance.Brightness, "Sharpness": ImageEnhance.Sharpness}
    if name in enhance:  # *Increasing: 1 + randomly negated level / 10 * 0.9
        return enhance[name](img).enhance(1.0 + sign((level / RA_MAX_LEVEL) * 0.9))
    if name in ("ShearX", "ShearY"):
        factor = sign((level / RA_MAX_LEVEL) * 0.3)
        matrix = (1, factor, 0, 0, 1, 0) if name == "ShearX" else (1, 0, 0, factor, 1, 0)
        return img.transform(img.size, Image.AFFINE, matrix, **kw)
    if name in ("TranslateXRel", "TranslateYRel"):
        pct = sign((level / RA_MAX_LEVEL) * 0.45)
        matrix = (1, 0, pct * img.size[0], 0, 1, 0) if name == "TranslateXRel" else \
            (1, 0, 0, 0, 1, pct * img.size[1])
        return img.transform(img.size, Image.AFFINE, matrix, **kw)
    raise ValueError(name)


# -- the test-time merge: engine_for_finetuning.py merge() and compute_video() ----------------------------
def ref_videomae_merge(lines):
    """VideoMAE's ``merge``: ``lines`` of ``(name, logits, label, chunk_nb, split_nb)`` as its
    final_test writes them (the numbers as the strings it reads back); each view's logits through
    softmax, a view seen twice (the distributed sampler's padding: the same ``chunk_nb + split_nb``,
    string concatenation) kept once, the mean per video, then ``compute_video``: argmax, and the
    label among ``argsort(-feat)[:5]``. Returns ``({name: feat}, top-1 %, top-5 %)``."""
    feats, labels, pos = {}, {}, {}
    for name, logits, label, chunk_nb, split_nb in lines:
        data = np.asarray(logits, dtype=np.float64)
        data = np.exp(data - data.max()) / np.exp(data - data.max()).sum()  # scipy.special.softmax
        feats.setdefault(name, [])
        pos.setdefault(name, [])
        if chunk_nb + split_nb in pos[name]:
            continue
        feats[name].append(data)
        pos[name].append(chunk_nb + split_nb)
        labels[name] = label
    top1, top5, merged = [], [], {}
    for name, data in feats.items():
        feat = np.mean(data, axis=0)
        merged[name] = feat
        top1.append((int(np.argmax(feat)) == int(labels[name])) * 1.0)
        top5.append((int(labels[name]) in np.argsort(-feat)[:5]) * 1.0)
    return merged, np.mean(top1) * 100, np.mean(top5) * 100
