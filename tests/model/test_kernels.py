"""The CPU dropout and attention kernels of modeling_memobert: same distribution and gradients as torch's."""

import math

import pytest
import torch
import torch.nn.functional as F

from memobert import MEmoBertConfig, MEmoBertForPreTraining
from memobert.kernels import MEmoBertDropout, attention, cpu_keep_mask, dropout


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_mask_rate_and_independence(p):
    torch.manual_seed(0)
    keep = cpu_keep_mask((500, 1000), p).float()
    n = keep.numel()
    assert abs(keep.mean().item() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)
    # Neighbouring elements (which share one 64-bit draw) are uncorrelated.
    flat = keep.flatten()
    correlation = torch.corrcoef(torch.stack([flat[:-1], flat[1:]]))[0, 1].item()
    assert abs(correlation) < 0.01
    assert cpu_keep_mask((7, 3), p).shape == (7, 3)  # sizes that are not a multiple of 4


def test_keep_mask_follows_the_seed():
    torch.manual_seed(3)
    first = cpu_keep_mask((64, 64), 0.1)
    torch.manual_seed(3)
    assert torch.equal(first, cpu_keep_mask((64, 64), 0.1))
    assert not torch.equal(first, cpu_keep_mask((64, 64), 0.1))


def test_dropout_scales_kept_values_and_masks_gradients():
    torch.manual_seed(0)
    x = torch.randn(32, 100, requires_grad=True)
    y = dropout(x, 0.2, training=True)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / 0.8)
    (y * 3).sum().backward()
    torch.testing.assert_close(x.grad, kept.float() * 3 / 0.8)
    assert dropout(x, 0.2, training=False) is x
    assert dropout(x, 0.0, training=True) is x


def test_dropout_expectation_matches_torch():
    torch.manual_seed(0)
    x = torch.ones(200_000)
    ours = dropout(x, 0.3, True).mean().item()
    theirs = F.dropout(x, 0.3, True).mean().item()
    assert abs(ours - 1.0) < 0.01 and abs(theirs - 1.0) < 0.01


def test_torch_implementation_uses_torch_dropout():
    x = torch.randn(8, 16)
    torch.manual_seed(5)
    expected = F.dropout(x, 0.3, True)
    torch.manual_seed(5)
    torch.testing.assert_close(MEmoBertDropout(0.3, "torch").train()(x), expected)


def test_attention_with_dropout_equals_sdpa_math():
    """The CPU path with dropout is softmax(q k^T / sqrt(d) + bias) -> dropout -> @ v: checked against SDPA with
    no dropout when nothing is dropped, and against the same mask applied by hand."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 8, requires_grad=True) for _ in range(3))
    bias = torch.zeros(2, 1, 1, 7)
    bias[0, ..., 5:] = torch.finfo(torch.float32).min
    reference = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    torch.testing.assert_close(attention(q, k, v, bias, dropout_p=1e-9), reference)  # p rounds to 0: all kept

    torch.manual_seed(1)
    out = attention(q, k, v, bias, dropout_p=0.25)
    torch.manual_seed(1)
    keep = cpu_keep_mask((2, 3, 7, 7), 0.25)
    probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8) + bias, dim=-1)
    torch.testing.assert_close(out, (probs * keep / 0.75) @ v)
    assert torch.isfinite(out).all()


def test_model_outputs_do_not_depend_on_the_implementation_in_eval_mode():
    torch.manual_seed(0)
    kwargs = dict(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                  visual_dim=6, acoustic_dim=5)
    fast = MEmoBertForPreTraining(MEmoBertConfig(**kwargs)).eval()
    plain = MEmoBertForPreTraining(MEmoBertConfig(**kwargs, dropout_implementation="torch")).eval()
    plain.load_state_dict(fast.state_dict())
    inputs = dict(input_ids=torch.randint(5, 50, (3, 9)), attention_mask=torch.ones(3, 9, dtype=torch.long),
                  visual_feats=torch.randn(3, 4, 6), visual_mask=torch.ones(3, 4, dtype=torch.long),
                  acoustic_feats=torch.randn(3, 5, 5), acoustic_mask=torch.ones(3, 5, dtype=torch.long))
    torch.testing.assert_close(fast.memobert(**inputs).last_hidden_state, plain.memobert(**inputs).last_hidden_state)
    with pytest.raises(ValueError, match="dropout_implementation"):
        MEmoBertConfig(dropout_implementation="fast")
