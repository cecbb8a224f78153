"""The MEmoBERT processor: the prompt template, truncation, frame padding, word ids, save/load, with a prompt model."""

import numpy as np
import pytest
import torch

from memobert import MEmoBertForPrompt, MEmoBertProcessor


def test_processor_builds_the_prompt(tokenizer):
    processor = MEmoBertProcessor(tokenizer)
    batch = processor(text=["I hate this", None], prompt=True, labels=["anger", "sad"])
    decoded = tokenizer.batch_decode(batch["input_ids"], skip_special_tokens=False)
    assert decoded[0].startswith("[CLS] i hate this. i am [MASK]. [SEP]")
    assert decoded[1].startswith("[CLS] i am [MASK]. [SEP]")
    assert batch["labels"].tolist() == [0, 3]
    assert batch["attention_mask"][1].sum() == 6


def test_processor_truncates_the_utterance_never_the_prompt(tokenizer):
    processor = MEmoBertProcessor(tokenizer, max_prompt_text_length=12)
    batch = processor(text=["word " * 50], prompt=True)
    ids = batch["input_ids"][0].tolist()
    assert len(ids) == 12
    assert tokenizer.decode(ids[-5:]) == "i am [MASK]. [SEP]"


def test_processor_pads_and_truncates_frames(tokenizer):
    processor = MEmoBertProcessor(tokenizer, max_visual_length=4)
    visual = [np.ones((6, 3)), None, np.ones((2, 3))]
    batch = processor(text=["a", "b", None], visual=visual, acoustic=[np.ones((5, 2))] * 3)
    assert batch["visual_feats"].shape == (3, 4, 3)
    assert batch["visual_mask"].tolist() == [[1, 1, 1, 1], [0, 0, 0, 0], [1, 1, 0, 0]]
    assert batch["attention_mask"][2].sum() == 0  # no text for the third sample
    assert "acoustic_mask" in batch and batch["acoustic_feats"].shape == (3, 5, 2)
    with pytest.raises(ValueError, match="different numbers"):
        processor(text=["a"], visual=visual)


def test_processor_word_ids_and_round_trip(tokenizer, tmp_path):
    processor = MEmoBertProcessor(tokenizer, label_words=["angry", "happy"], max_text_length=20)
    batch = processor(text=["grumpiness stuff"], return_word_ids=True)
    pieces = tokenizer.convert_ids_to_tokens(batch["input_ids"][0])
    words = batch["word_ids"][0].tolist()
    assert pieces[0] == "[CLS]" and words[0] == -1 and words[-1] == -1
    assert len(set(words[1:-1])) == 2 and len(pieces) > 4  # "grumpiness" is several pieces of one word
    processor.save_pretrained(tmp_path)
    again = MEmoBertProcessor.from_pretrained(str(tmp_path))
    assert again.settings == processor.settings and again.label_token_ids == processor.label_token_ids


def test_processor_and_prompt_model_end_to_end(minilm_path, tokenizer):
    model = MEmoBertForPrompt.from_bert(minilm_path, visual_dim=6, acoustic_dim=5).eval()
    processor = MEmoBertProcessor(tokenizer, model.config)
    batch = processor(
        text=["this is wonderful news", "leave me alone"],
        visual=[np.random.rand(8, 6), None],
        acoustic=[np.random.rand(20, 5), np.random.rand(7, 5)],
        prompt=True,
        labels=["happy", "anger"],
    )
    with torch.no_grad():
        out = model(**batch)
    assert out.logits.shape == (2, 4) and torch.isfinite(out.loss)
