"""models.prompts: the reparameterization, prompt dropout, prompts only in the prompted layers, and
the folded model's identical logits."""
import itertools

import pytest
import torch

from apt_video import models

from models_kit import tiny


def test_reparameterization_uses_max_of_scale_and_one_per_token():
    m = tiny(prompt_num_tokens=3).eval()
    with torch.no_grad():
        m.prompt_scale.copy_(torch.tensor([0.5, 1.0, 3.0]).expand_as(m.prompt_scale))
        m.prompt_scale[1, 1, 2] = -2.0
    eff = m.effective_prompts()
    assert eff.shape == (3, 2, 3, 16)
    raw = torch.stack([m.prompt_embeddings_k, m.prompt_embeddings_v], 1)
    factor = torch.tensor([1.0, 1.0, 3.0]).expand(3, 2, 3).clone()
    factor[1, 1, 2] = 1.0
    torch.testing.assert_close(eff, raw * factor[..., None])


def test_prompt_dropout_only_in_training_and_before_scale():
    torch.manual_seed(0)
    m = tiny(prompt_dropout=0.5)
    with torch.no_grad():
        m.prompt_scale.fill_(2.0)
    m.eval()
    raw = torch.stack([m.prompt_embeddings_k, m.prompt_embeddings_v], 1)
    torch.testing.assert_close(m.effective_prompts(), raw * 2)
    m.train()
    eff = m.effective_prompts()
    kept = eff != 0
    assert 0.3 < kept.float().mean() < 0.7
    # dropout scales survivors by 1/(1-p) = 2, then the reparam by max(2, 1) = 2
    torch.testing.assert_close(eff[kept], (raw * 4)[kept])


def test_prompts_change_the_output_and_only_prompted_layers_get_them():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 32, 32)
    m = tiny(prompt_start=1, prompt_end=1).eval()
    assert m.prompt_embeddings_k.shape == (1, 7, 16)
    seen = []
    for i, blk in enumerate(m.blocks):
        blk.attn.register_forward_hook(lambda mod, args, out, i=i: seen.append((i, args[1] is not None)))
    m(x)
    assert seen == [(0, False), (1, True), (2, False)]
    plain = tiny(transfer_type="end2end").eval()
    plain.load_state_dict({k: v for k, v in m.state_dict().items() if "prompt" not in k})
    assert not torch.allclose(plain(x), m(x))


@pytest.mark.parametrize("reparam,tokens", list(itertools.product([True, False], [1, 6])))
def test_folded_model_gives_identical_eval_logits(reparam, tokens):
    torch.manual_seed(0)
    m = tiny(prompt_reparam=reparam, prompt_num_tokens=tokens, prompt_dropout=0.3)
    if reparam:
        with torch.no_grad():
            m.prompt_scale.uniform_(0.2, 3.0)
    x = torch.randn(2, 3, 4, 32, 32)
    f = models.fold_prompts(m)
    assert m.training and not f.training  # the input model is left as it was
    m.eval()
    torch.testing.assert_close(f(x), m(x), atol=0, rtol=0)
    names = dict(f.named_parameters())
    assert "prompt_scale" not in f.state_dict() and "prompt_embeddings_k" not in names
    assert not any(p.requires_grad for p in f.parameters())
    f.train()  # no dropout left on the prompts
    torch.testing.assert_close(f.effective_prompts(), m.effective_prompts())
