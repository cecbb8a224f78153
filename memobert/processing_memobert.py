"""MEmoBertProcessor: text + frame features -> padded model inputs, and the downstream prompt."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np
import torch
from transformers import AutoTokenizer, BatchFeature

from .configuration_memobert import MEmoBertConfig, verbalizer_token_ids

PROCESSOR_CONFIG_NAME = "memobert_processor.json"
END_PUNCTUATION = (".", "!", "?")
# The fields of MEmoBertConfig that the processor reads (defaults, meaning and checks are the config's).
PROCESSOR_FIELDS = (
    "max_text_length",
    "max_prompt_text_length",
    "max_visual_length",
    "max_acoustic_length",
    "prompt_template",
    "label_words",
)


class MEmoBertProcessor:
    """
    Turns utterances into MEmoBERT inputs; its settings are the `PROCESSOR_FIELDS` of a `MEmoBertConfig` (the model's,
    so processor and model agree), optionally overridden (e.g. a downstream run's text length).

    `processor(text=[...], visual=[...], acoustic=[...])` gives `input_ids, attention_mask, token_type_ids,
    visual_feats, visual_mask, acoustic_feats, acoustic_mask` (each segment right-padded; a modality absent from the
    whole batch is left out, one absent from a sample is all padding in its row). With `prompt=True` the text becomes
    the prompt `[CLS] <text> i am [MASK] . [SEP]` (`[CLS] i am [MASK] . [SEP]` without text), truncating the utterance
    and never the prompt.
    """

    def __init__(self, tokenizer, config: MEmoBertConfig | None = None, **overrides):
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("MEmoBertProcessor needs a fast tokenizer (word ids for whole-word masking).")
        unknown = sorted(set(overrides) - set(PROCESSOR_FIELDS))
        if unknown:
            raise TypeError(f"MEmoBertProcessor got unknown settings {unknown}; it takes {list(PROCESSOR_FIELDS)}.")
        config = config if config is not None else MEmoBertConfig()
        settings = {name: overrides.get(name, getattr(config, name)) for name in PROCESSOR_FIELDS}
        MEmoBertConfig(**settings)  # the config's checks (prompt template, lengths) on these settings
        self.tokenizer = tokenizer
        self.settings = settings
        before, after = settings["prompt_template"].split("{text}", 1)
        mask = tokenizer.mask_token
        self._prompt_prefix_ids = self._encode(before.format(mask=mask))
        self._prompt_suffix_ids = self._encode(after.format(mask=mask))
        self.label_token_ids = verbalizer_token_ids(settings["label_words"], tokenizer)

    @property
    def label_words(self) -> list[str]:
        return list(self.settings["label_words"])

    # -- construction ------------------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, name_or_path: str, **overrides) -> MEmoBertProcessor:
        """Tokenizer + settings from a folder saved by `save_pretrained`: its `memobert_processor.json`, over the
        folder's model config (`config.json`) when it has one, else over the config defaults."""
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        config = None
        if os.path.isfile(os.path.join(name_or_path, "config.json")):
            loaded = MEmoBertConfig.from_pretrained(name_or_path)
            config = loaded if loaded.model_type == "memobert" else None
        settings_file = os.path.join(name_or_path, PROCESSOR_CONFIG_NAME)
        if os.path.isfile(settings_file):
            with open(settings_file, encoding="utf-8") as handle:
                overrides = {**json.load(handle), **overrides}
        return cls(tokenizer, config, **overrides)

    def save_pretrained(self, save_directory: str) -> None:
        """The tokenizer and `memobert_processor.json` (the settings) into `save_directory`."""
        os.makedirs(save_directory, exist_ok=True)
        self.tokenizer.save_pretrained(save_directory)
        with open(os.path.join(save_directory, PROCESSOR_CONFIG_NAME), "w", encoding="utf-8") as handle:
            json.dump(self.settings, handle, indent=2)

    # -- text --------------------------------------------------------------------------------------------------------

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text.strip() else []

    def _text_rows(self, texts: Sequence[str | None], prompt: bool) -> tuple[list[list[int]], list[list[int]]]:
        """Token ids and word ids (-1 for special and prompt tokens) of each row."""
        tok = self.tokenizer
        budget = (self.settings["max_prompt_text_length"] if prompt else self.settings["max_text_length"]) - 2
        if prompt:
            budget -= len(self._prompt_prefix_ids) + len(self._prompt_suffix_ids)
            if budget < 0:
                raise ValueError("max_prompt_text_length is shorter than the prompt template itself.")
        ids_rows, word_rows = [], []
        for text in texts:
            text = (text or "").strip()
            if prompt and text and not text.endswith(END_PUNCTUATION):
                text += " ."
            encoding = tok(text, add_special_tokens=False, truncation=False) if text else None
            ids = encoding["input_ids"][:budget] if encoding else []
            words = [w if w is not None else -1 for w in encoding.word_ids()][:budget] if encoding else []
            if prompt:
                ids = self._prompt_prefix_ids + ids + self._prompt_suffix_ids
                words = [-1] * len(self._prompt_prefix_ids) + words + [-1] * len(self._prompt_suffix_ids)
            elif not ids:
                ids_rows.append([])
                word_rows.append([])
                continue
            ids_rows.append([tok.cls_token_id] + ids + [tok.sep_token_id])
            word_rows.append([-1] + words + [-1])
        return ids_rows, word_rows

    # -- frames ------------------------------------------------------------------------------------------------------

    @staticmethod
    def _pad_frames(
        frames: Sequence[np.ndarray | torch.Tensor | None], max_length: int, name: str
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Right-padded `(batch, frames, dim)` features and their mask; None when no sample has this modality."""
        arrays = [None if f is None else torch.as_tensor(np.asarray(f, dtype=np.float32))[:max_length] for f in frames]
        dims = {a.shape[-1] for a in arrays if a is not None and a.ndim == 2}
        if any(a is not None and a.ndim != 2 for a in arrays) or len(dims) > 1:
            raise ValueError(f"Every {name} item must be a (frames, dim) array of one dim; got dims {sorted(dims)}.")
        if not dims:
            return None
        dim = dims.pop()
        length = max((len(a) for a in arrays if a is not None), default=0)
        feats = torch.zeros(len(arrays), max(length, 1), dim)
        mask = torch.zeros(len(arrays), max(length, 1), dtype=torch.long)
        for row, array in enumerate(arrays):
            if array is not None and len(array):
                feats[row, : len(array)] = array
                mask[row, : len(array)] = 1
        return feats, mask

    # -- the call ----------------------------------------------------------------------------------------------------

    def __call__(
        self,
        text: str | Sequence[str | None] | None = None,
        visual: np.ndarray | Sequence[np.ndarray | None] | None = None,
        acoustic: np.ndarray | Sequence[np.ndarray | None] | None = None,
        prompt: bool = False,
        labels: Sequence[int | str] | None = None,
        return_word_ids: bool = False,
    ) -> BatchFeature:
        """
        text: one string or a list (None = no text for that sample). visual / acoustic: one `(frames, dim)` array or
        a list of them (None = modality absent for that sample). labels: class indices or label words.
        """
        single = isinstance(text, str) or (visual is not None and _is_single_array(visual)) or (
            acoustic is not None and _is_single_array(acoustic)
        )
        if single:
            text = [text] if text is not None else None
            visual = [visual] if visual is not None else None
            acoustic = [acoustic] if acoustic is not None else None
        sizes = {len(x) for x in (text, visual, acoustic) if x is not None}
        if len(sizes) > 1:
            raise ValueError(f"text, visual and acoustic hold different numbers of samples: {sorted(sizes)}.")
        if not sizes and not prompt:
            raise ValueError("Give at least one of text, visual or acoustic.")
        batch_size = sizes.pop() if sizes else 1

        data: dict[str, torch.Tensor] = {}
        if text is not None or prompt:
            texts = text if text is not None else [None] * batch_size
            ids_rows, word_rows = self._text_rows(texts, prompt)
            length = max(1, max(len(r) for r in ids_rows))
            input_ids = torch.full((batch_size, length), self.tokenizer.pad_token_id, dtype=torch.long)
            attention_mask = torch.zeros(batch_size, length, dtype=torch.long)
            word_ids = torch.full((batch_size, length), -1, dtype=torch.long)
            for row, (ids, words) in enumerate(zip(ids_rows, word_rows)):
                input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
                attention_mask[row, : len(ids)] = 1
                word_ids[row, : len(words)] = torch.tensor(words, dtype=torch.long)
            data.update(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=torch.zeros_like(input_ids))
            if return_word_ids:
                data["word_ids"] = word_ids
        for name, frames, max_length in (
            ("visual", visual, self.settings["max_visual_length"]),
            ("acoustic", acoustic, self.settings["max_acoustic_length"]),
        ):
            padded = self._pad_frames(frames, max_length, name) if frames is not None else None
            if padded is not None:
                data[f"{name}_feats"], data[f"{name}_mask"] = padded
        if labels is not None:
            data["labels"] = torch.tensor([self.label_index(label) for label in labels], dtype=torch.long)
        return BatchFeature(data=data)

    def label_index(self, label: int | str) -> int:
        """Class index of a label given as an index or as its label word."""
        words = self.label_words
        if isinstance(label, str):
            if label not in words:
                raise ValueError(f"Unknown label {label!r}; the label words are {words}.")
            return words.index(label)
        if not 0 <= int(label) < len(words):
            raise ValueError(f"Label index {label} is outside 0..{len(words) - 1} (label words {words}).")
        return int(label)


def _is_single_array(x) -> bool:
    return isinstance(x, (np.ndarray, torch.Tensor)) and x.ndim == 2


__all__ = ["MEmoBertProcessor", "PROCESSOR_CONFIG_NAME", "PROCESSOR_FIELDS"]
