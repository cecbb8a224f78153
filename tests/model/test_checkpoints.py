"""Checkpoints across versions: a MEmoBertForPreTraining saved with the fixed head names of memobert 0.1.0 loads as
it is, and saves again with today's names."""

from __future__ import annotations

import torch
from safetensors.torch import load_file, save_file

from memobert import MEmoBertConfig, MEmoBertForPreTraining, MEmoBertForPrompt
from memobert.modeling_memobert import LEGACY_HEAD_NAMES
from tests.support.models import tiny_config_kwargs


def as_legacy_checkpoint(folder) -> None:
    """Rewrites a saved model's weights under the head names memobert 0.1.0 wrote (visual_regression. ...)."""
    path = folder / "model.safetensors"
    state = load_file(path)
    renamed = {}
    for key, value in state.items():
        for old, new in LEGACY_HEAD_NAMES.items():
            if key.startswith(new):
                key = old + key[len(new):]
        renamed[key] = value
    assert any(k.startswith("visual_regression.") for k in renamed) and not any(k.startswith("heads.") for k in renamed)
    save_file(renamed, path, metadata={"format": "pt"})


def test_a_checkpoint_with_the_old_head_names_loads_and_saves_with_the_new_ones(tmp_path):
    torch.manual_seed(0)
    model = MEmoBertForPreTraining(MEmoBertConfig(**tiny_config_kwargs()))
    model.save_pretrained(tmp_path / "old")
    as_legacy_checkpoint(tmp_path / "old")

    loaded, info = MEmoBertForPreTraining.from_pretrained(tmp_path / "old", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    for (name, expected), (loaded_name, value) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert name == loaded_name and torch.equal(value, expected), name

    loaded.save_pretrained(tmp_path / "new")
    keys = set(load_file(tmp_path / "new" / "model.safetensors"))
    assert {k for k in keys if k.startswith("heads.span_mvfr.")} and not {k for k in keys if "regression." in k}
    # The downstream classes read the shared parts of either checkpoint the same way.
    prompt_old = MEmoBertForPrompt.from_pretrained(tmp_path / "old")
    prompt_new = MEmoBertForPrompt.from_pretrained(tmp_path / "new")
    for (name, a), b in zip(prompt_old.state_dict().items(), prompt_new.state_dict().values()):
        assert torch.equal(a, b), name
