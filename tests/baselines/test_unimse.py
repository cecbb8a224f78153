"""UniMSE-style T5 baseline: adapters, contrastive loss, label words scored (never generated). Tiny T5, one thread."""

from __future__ import annotations

import pytest
import torch

from memobert.baselines import build_baseline
from memobert.baselines.unimse import info_nce

T5_TINY = dict(vocab_size=64, d_model=16, d_kv=4, d_ff=32, num_layers=2, num_decoder_layers=1, num_heads=2,
               dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
LABEL_IDS = [[10, 1], [11, 1], [12, 13, 1], [14, 1]]


def tiny(**overrides):
    config = dict(t5_config=T5_TINY, text_source="input_ids", label_token_ids=LABEL_IDS, visual_dim=6,
                  acoustic_dim=5, adapter_bottleneck=8, projection_dim=8)
    config.update(overrides)
    torch.manual_seed(0)
    return build_baseline("unimse", config)


def batch(size: int = 8) -> dict:
    g = torch.Generator().manual_seed(0)
    b = dict(input_ids=torch.randint(2, 64, (size, 6), generator=g), attention_mask=torch.ones(size, 6,
                                                                                              dtype=torch.long),
             acoustic_feats=torch.randn(size, 7, 5, generator=g), acoustic_mask=torch.ones(size, 7, dtype=torch.long),
             visual_feats=torch.randn(size, 3, 6, generator=g), visual_mask=torch.ones(size, 3, dtype=torch.long),
             labels=torch.arange(size) % 4)
    b["visual_mask"][0] = 0
    b["attention_mask"][1, 3:] = 0
    return b


def test_label_word_scores_are_sequence_log_likelihoods():
    model = tiny().eval()
    b = batch()
    out = model(**b)
    assert out.logits.shape == (8, 4) and out.lm_loss is not None and out.contrastive_loss is not None
    # Class 2's score (a three-token sequence) from a plain T5 pass: the adapters start as the identity (Up = 0), so
    # the adapted encoder equals the plain one (no modality context is set outside forward).
    target = torch.tensor([LABEL_IDS[2]] * 8)
    with torch.no_grad():
        ref = model.t5(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=target)
    log_probs = ref.logits.log_softmax(-1).gather(-1, target[..., None]).squeeze(-1).sum(-1)
    assert torch.allclose(out.logits[:, 2], log_probs, atol=1e-5)
    # The true-class score gives the generation loss (token cross-entropy).
    assert torch.allclose(out.lm_loss, -(out.logits[torch.arange(8), b["labels"]]
                                          / torch.tensor([2, 2, 3, 2])[b["labels"]]).mean(), atol=1e-6)


def test_unimse_forward_backward_reaches_adapters_and_overfits():
    model = tiny()
    b = batch()
    out = model(**b)
    out.loss.backward()
    for name in ("slots", "projections", "av_heads", "text_head"):
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert all(g is not None for g in grads), name
    assert any(p.grad.abs().sum() > 0 for p in model.slots.parameters())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        loss = model(**b).loss
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        out = model(**b)
    assert out.loss.item() < 0.1 * first
    assert (out.logits.argmax(-1) == b["labels"]).all()
    # The trained adapters matter, and a deep copy (e.g. a kept best model) runs its own adapters.
    copy = __import__("copy").deepcopy(model)
    with torch.no_grad():
        assert torch.allclose(copy(**b).logits, out.logits, atol=1e-5)
        for p in copy.slots.parameters():
            p.zero_()
        assert not torch.allclose(copy(**b).logits, out.logits, atol=1e-3)
        assert torch.allclose(model(**b).logits, out.logits, atol=1e-5)


def test_attention_adapters_and_missing_modalities():
    model = tiny(adapter_mode="attention", fusion_layers=[0, -1])
    assert model.fusion_layers == (0, 1)
    b = batch()
    del b["visual_feats"], b["visual_mask"]
    out = model(**b)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    text_only = tiny(modalities=("text",))
    assert len(text_only.slots) == 0 and text_only(**batch()).contrastive_loss is None


def test_info_nce_prefers_aligned_pairs():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 8, generator=g)
    assert info_nce(a, a, 0.1) < info_nce(a, torch.randn(6, 8, generator=g), 0.1)


def test_texts_are_tokenised_by_the_model_tokenizer(minilm_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    t5 = dict(T5_TINY, vocab_size=tokenizer.vocab_size, eos_token_id=tokenizer.sep_token_id)
    torch.manual_seed(0)
    model = build_baseline("unimse", dict(t5_config=t5, tokenizer_name_or_path=minilm_path, visual_dim=6,
                                          acoustic_dim=5, adapter_bottleneck=8, projection_dim=8))
    # anger happy neutral sad in the uncased WordPiece vocabulary, each + [SEP] as end of sequence
    assert model.label_ids.tolist() == [[4963, 102], [3407, 102], [8699, 102], [6517, 102]]
    b = batch(3)
    out = model(texts=["so angry", "", "a happy day"], acoustic_feats=b["acoustic_feats"],
                acoustic_mask=b["acoustic_mask"], labels=b["labels"])
    assert out.logits.shape == (3, 4)
    with pytest.raises(ValueError, match="texts"):
        model(input_ids=b["input_ids"])


def test_config_errors():
    with pytest.raises(ValueError, match="text"):
        tiny(modalities=("visual",))
    with pytest.raises(ValueError, match="label_token_ids"):
        tiny(label_token_ids=[[1]])
    with pytest.raises(ValueError, match="share"):
        tiny(label_token_ids=[[10, 1], [10, 1], [12, 1], [14, 1]])
