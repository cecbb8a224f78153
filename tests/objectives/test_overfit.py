"""Each pretraining task trains: a tiny model overfits one small batch (its loss falls by >= 90 %)."""

import numpy as np
import pytest
import torch

from memobert import MEmoBertConfig, MEmoBertForPreTraining
from memobert.objectives import PretrainingCollator, SpecialTokenIds, get_task

# A made-up 100-token vocabulary: pad 0, cls 1, sep 2, mask 3; words use ids 5..99.
SPECIALS = SpecialTokenIds(cls_token_id=1, sep_token_id=2, pad_token_id=0, mask_token_id=3, vocab_size=100)


def tiny_config() -> MEmoBertConfig:
    return MEmoBertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        visual_dim=6,
        acoustic_dim=5,
        max_text_length=16,
        max_visual_length=12,
        max_acoustic_length=16,
        mask_token_id=3,
        label_token_ids=[10, 11, 12, 13],
    )


def small_rows(num_rows: int = 4, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(num_rows):
        n_text, n_vis, n_ac = int(rng.integers(6, 11)), int(rng.integers(8, 13)), int(rng.integers(10, 17))
        word_ids, word = [], 0
        while len(word_ids) < n_text:
            word_ids += [word] * int(rng.integers(1, 3))
            word += 1
        logits = rng.normal(size=(n_vis, 8)) * 3
        soft = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        rows.append(
            {
                "input_ids": rng.integers(5, 100, size=n_text).tolist(),
                "word_ids": word_ids[:n_text],
                "visual_feats": rng.normal(size=(n_vis, 6)).astype(np.float16),
                "face_soft_labels": soft.astype(np.float16),
                "acoustic_feats": rng.normal(size=(n_ac, 5)).astype(np.float16),
            }
        )
    return rows


@pytest.mark.parametrize(
    "task_name, options",
    [
        ("wwmlm", {}),
        ("span_mvfr", {}),
        ("span_mafr", {}),
        ("span_mvfc_kl", {}),
        ("span_mafr", {"replacement": "mockingjay", "ratio": 0.5}),
    ],
    ids=["wwmlm", "span_mvfr", "span_mafr", "span_mvfc_kl", "span_mafr-mockingjay"],
)
def test_a_tiny_model_overfits_one_batch(task_name, options):
    torch.manual_seed(0)
    config = tiny_config()
    model = MEmoBertForPreTraining(config)
    task = get_task(task_name, **options)
    batch = PretrainingCollator(SPECIALS, config, tasks=[task], seed=0)(small_rows(), task_name)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    first = None
    for _ in range(300):
        loss = task.loss(model(**batch))
        first = loss.item() if first is None else first
        if loss.item() <= 0.1 * first:
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert first > 0
    assert loss.item() <= 0.1 * first, f"{task_name}: loss {first:.4f} -> {loss.item():.4f}, not down by 90 %"
    # The heads stayed tied while training.
    assert model.cls.predictions.decoder.weight is model.memobert.embeddings.word_embeddings.weight
