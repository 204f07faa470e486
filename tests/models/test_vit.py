"""models.vit: attention with prompt keys and values against the explicit computation and the APT
reference's gradients, the position table, the trainable sets, the paper's parameter count."""
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from apt_video import models
from apt_video.models.vit import Attention

from models_kit import tiny
from reference import ref_apt_logits, ref_label_smoothing_ce


def explicit_attention(attn: Attention, x, pk=None, pv=None):
    """softmax(Q K^T / sqrt(d)) V written out from the weights, one head at a time."""
    b, n, d = x.shape
    h, hd = attn.num_heads, attn.head_dim
    w = attn.qkv.weight
    q = x @ w[:d].T + attn.q_bias
    k = x @ w[d:2 * d].T
    v = x @ w[2 * d:].T + attn.v_bias
    outs = []
    for i in range(h):
        sl = slice(i * hd, (i + 1) * hd)
        ki, vi = k[..., sl], v[..., sl]
        if pk is not None:  # the same prompts for every head
            ki = torch.cat([ki, pk.expand(b, -1, -1)], 1)
            vi = torch.cat([vi, pv.expand(b, -1, -1)], 1)
        a = torch.softmax(q[..., sl] @ ki.transpose(1, 2) / math.sqrt(hd), -1)
        outs.append(a @ vi)
    return attn.proj(torch.cat(outs, -1))


@pytest.mark.parametrize("impl,heads,tokens,n",
                         list(itertools.product(["sdpa", "math"], [1, 2, 4], [0, 1, 5], [3, 16])))
def test_attention_matches_explicit_computation(impl, heads, tokens, n):
    torch.manual_seed(0)
    attn = Attention(16 * heads, heads).eval()
    attn.attn_impl = impl
    torch.nn.init.normal_(attn.q_bias)
    torch.nn.init.normal_(attn.v_bias)
    x = torch.randn(2, n, attn.head_dim * heads)
    pk = torch.randn(tokens, attn.head_dim) if tokens else None
    pv = torch.randn(tokens, attn.head_dim) if tokens else None
    out = attn(x, pk, pv)
    assert out.shape == x.shape  # prompts extend K/V only
    torch.testing.assert_close(out, explicit_attention(attn, x, pk, pv), atol=1e-5, rtol=1e-5)


def test_sdpa_and_math_models_agree():
    torch.manual_seed(0)
    m = tiny().eval()
    x = torch.randn(3, 3, 4, 32, 32)
    a = m(x)
    m.set_attn_impl("math")
    torch.testing.assert_close(m(x), a, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="attn_impl='flash'"):
        m.set_attn_impl("flash")


@pytest.mark.parametrize("frames,size", [(4, 32), (8, 48), (16, 64), (2, 16)])
def test_position_table_matches_formula_for_any_geometry(frames, size):
    m = tiny(num_frames=frames, img_size=size)
    n, d = frames // 2 * (size // 16) ** 2, 48
    expect = np.array([[p / np.power(10000, 2 * (j // 2) / d) for j in range(d)] for p in range(n)])
    expect[:, 0::2], expect[:, 1::2] = np.sin(expect[:, 0::2]), np.cos(expect[:, 1::2])
    np.testing.assert_allclose(m.pos_embed[0].numpy(), expect, atol=1e-6)
    assert "pos_embed" not in m.state_dict()
    assert m(torch.randn(1, 3, frames, size, size)).shape == (1, 5)


def test_wrong_input_geometry_is_named():
    with pytest.raises(ValueError, match="8 frames at 32x32 does not match the model \\(4 frames at 32x32\\)"):
        tiny()(torch.randn(1, 3, 8, 32, 32))


def trainable(m):
    return {n for n, p in m.named_parameters() if p.requires_grad}


def test_trainable_sets_per_transfer_type():
    assert trainable(tiny()) == {"prompt_embeddings_k", "prompt_embeddings_v", "prompt_scale",
                                 "head.weight", "head.bias", "head_norm.weight", "head_norm.bias"}
    assert trainable(tiny(transfer_type="linear")) == {"head.weight", "head.bias", "head_norm.weight",
                                                       "head_norm.bias"}
    m = tiny(transfer_type="end2end")
    assert trainable(m) == {n for n, _ in m.named_parameters()}
    assert not any("prompt" in n for n in trainable(m))
    with pytest.raises(ValueError, match="transfer_type='lora'"):
        tiny(transfer_type="lora")


@pytest.mark.parametrize("tokens,classes", [(1, 51), (200, 101)])
def test_vit_base_prompt_parameter_count_matches_the_paper(tokens, classes):
    with torch.device("meta"):
        m = models.create_model("vit_base_patch16_224", num_classes=classes, prompt_num_tokens=tokens)
    t, total = models.count_parameters(m)
    assert t == 1560 * tokens + 769 * classes + 1536
    assert total == 86_225_664 + 1536 + 769 * classes + 1560 * tokens  # VideoMAE ViT-B backbone


def test_backward_reaches_only_trainable_tensors():
    m = tiny()
    F.cross_entropy(m(torch.randn(2, 3, 4, 32, 32)), torch.tensor([0, 1])).backward()
    grads = {n for n, p in m.named_parameters() if p.grad is not None}
    assert grads == trainable(m)


# -- gradient parity with APT's modeling_VPT.py, re-implemented here ------------------------------------
TRAINED = ("prompt_embeddings_k", "prompt_embeddings_v", "prompt_scale", "head.weight", "head.bias",
           "head_norm.weight", "head_norm.bias")


@pytest.mark.parametrize("scales,start,end", [("ones", 0, 2), ("random", 0, 2), ("random", 1, 1), ("ones", 2, 2)])
def test_gradients_equal_apt_reference(scales, start, end):
    torch.manual_seed(0)
    m = tiny(prompt_start=start, prompt_end=end, prompt_num_tokens=5).double().eval()
    if scales == "random":
        with torch.no_grad():
            m.prompt_scale.uniform_(0.5, 2.0)
            m.prompt_scale[0, 0, :2] = 1.0  # ties inside a random scale too
    x = torch.randn(2, 3, 4, 32, 32, dtype=torch.float64)
    labels = torch.tensor([1, 4])
    w = {k: v.detach().clone().requires_grad_(k in TRAINED) for k, v in m.state_dict().items()}
    ref = ref_apt_logits(w, x, heads=3, tubelet=2, patch=16, prompt_start=start, prompt_end=end, depth=3)
    ref_label_smoothing_ce(ref, labels, 0.1).backward()
    ours = m(x)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)
    F.cross_entropy(ours, labels, label_smoothing=0.1).backward()
    grads = dict(m.named_parameters())
    for name in TRAINED:
        torch.testing.assert_close(grads[name].grad, w[name].grad, rtol=1e-9, atol=1e-14, msg=name)
    if scales == "ones":  # the reparameterization moves from the start: half the gradient at the tie
        assert grads["prompt_scale"].grad.abs().min() > 0
