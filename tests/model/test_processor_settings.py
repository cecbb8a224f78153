"""The processor's settings are the model config's (one definition of lengths, template and label words)."""

from __future__ import annotations

import json

import pytest

from memobert import MEmoBertConfig, MEmoBertProcessor
from memobert.processing_memobert import PROCESSOR_CONFIG_NAME, PROCESSOR_FIELDS


def test_settings_come_from_the_config_and_overrides_only(tokenizer):
    config = MEmoBertConfig(max_text_length=12, max_visual_length=7, prompt_template="{text} it was {mask} .",
                            label_words=["sad", "happy"])
    processor = MEmoBertProcessor(tokenizer, config)
    assert processor.settings == {name: getattr(config, name) for name in PROCESSOR_FIELDS}
    defaults = MEmoBertProcessor(tokenizer).settings
    assert defaults == {name: getattr(MEmoBertConfig(), name) for name in PROCESSOR_FIELDS}
    assert MEmoBertProcessor(tokenizer, config, max_text_length=20).settings["max_text_length"] == 20
    batch = processor(text=["x"], prompt=True)
    assert tokenizer.decode(batch["input_ids"][0]) == "[CLS] x. it was [MASK]. [SEP]"

    with pytest.raises(TypeError, match="unknown settings \\['hidden_size'\\]"):
        MEmoBertProcessor(tokenizer, config, hidden_size=8)
    with pytest.raises(ValueError, match="prompt_template"):  # the config's own check, the only one
        MEmoBertProcessor(tokenizer, prompt_template="no mask here")


def test_a_saved_processor_reads_its_settings_over_the_folders_model_config(tokenizer, tmp_path):
    config = MEmoBertConfig(max_text_length=12, label_words=["sad", "happy"])
    config.save_pretrained(tmp_path)
    MEmoBertProcessor(tokenizer, config, max_text_length=64).save_pretrained(str(tmp_path))
    assert json.loads((tmp_path / PROCESSOR_CONFIG_NAME).read_text())["max_text_length"] == 64
    loaded = MEmoBertProcessor.from_pretrained(str(tmp_path))
    assert loaded.settings["max_text_length"] == 64 and loaded.label_words == ["sad", "happy"]
    (tmp_path / PROCESSOR_CONFIG_NAME).unlink()  # a model folder without processor settings: the model's config
    assert MEmoBertProcessor.from_pretrained(str(tmp_path)).settings["max_text_length"] == 12
