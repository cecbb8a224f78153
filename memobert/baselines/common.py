"""Pieces shared by the baselines: the task a runner gives them, the output dataclass, the config base, masked pooling
and the text-id embedder.

Every neural baseline reads the batch keys of `MEmoBertProcessor` (any subset): `input_ids` / `attention_mask`
`(B, L)` word pieces, `visual_feats` / `visual_mask` `(B, Tv, Dv)` / `(B, Tv)`, `acoustic_feats` / `acoustic_mask`
`(B, Ta, Da)` / `(B, Ta)`, `labels` `(B,)`. A mask of 1 marks a real step; a sample whose mask is all 0 lacks that
modality. Extra keys (`token_type_ids`, `word_ids`, ...) are ignored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn
from transformers.utils import ModelOutput

from ..data.schema import MODALITIES
FEATS_KEY = {"text": "input_ids", "visual": "visual_feats", "acoustic": "acoustic_feats"}
MASK_KEY = {"text": "attention_mask", "visual": "visual_mask", "acoustic": "acoustic_mask"}


@dataclass(frozen=True)
class BaselineTask:
    """What a runner tells a baseline about the task (`BaselineSpec.config_for_task`): the classes in output order,
    their prompt words, and, once the corpus is known, its frame sizes and the tokenizer of its `input_ids`."""

    classes: tuple[str, ...]
    label_words: tuple[str, ...]
    visual_dim: int | None = None
    acoustic_dim: int | None = None
    tokenizer: Any = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass
class BaselineOutput(ModelOutput):
    """`loss` (scalar, when `labels` were given) and `logits` `(batch, num_classes)`: `argmax` is the prediction."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None


@dataclass
class BaselineConfig:
    """Fields every baseline config has; the downstream runner fills the sizes from the corpus (`corpus.json`).

    num_classes: emotion classes. text_vocab_size: size of the word-piece vocabulary of `input_ids`.
    visual_dim / acoustic_dim: frame feature sizes. modalities: the inputs the model uses (any non-empty subset of
    text, visual, acoustic; a baseline may accept only some).
    """

    num_classes: int = 4
    text_vocab_size: int = 30522
    visual_dim: int = 342
    acoustic_dim: int = 768
    modalities: tuple[str, ...] = MODALITIES

    def __post_init__(self) -> None:
        self.modalities = tuple(self.modalities)
        unknown = [m for m in self.modalities if m not in MODALITIES]
        if unknown or not self.modalities:
            raise ValueError(f"{type(self).__name__}.modalities must be a non-empty subset of {MODALITIES}, "
                             f"got {self.modalities!r}.")
        if self.num_classes < 2:
            raise ValueError(f"{type(self).__name__}.num_classes must be >= 2, got {self.num_classes}.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


C = TypeVar("C")


def make_config(config_class: type[C], config: C | Mapping[str, Any] | None = None, **overrides: Any) -> C:
    """A `config_class` from an instance, a mapping (e.g. a parsed YAML file) or None, with `overrides` applied.

    Unknown keys raise, naming the valid ones (a typo in a config file must not pass silently)."""
    if isinstance(config, config_class):
        values = dataclasses.asdict(config)
    elif config is None:
        values = {}
    elif isinstance(config, Mapping):
        values = dict(config)
    else:
        raise TypeError(f"config must be a {config_class.__name__}, a mapping or None, got {type(config).__name__}.")
    values.update(overrides)
    names = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"Unknown {config_class.__name__} field(s) {unknown}; valid fields: {sorted(names)}.")
    for f in dataclasses.fields(config_class):  # YAML gives lists where the dataclass holds tuples
        if isinstance(values.get(f.name), list) and isinstance(f.default, tuple):
            values[f.name] = tuple(values[f.name])
    return config_class(**values)


# ----------------------------------------------------------------------------------------------------------------------
# Masked pooling over time
# ----------------------------------------------------------------------------------------------------------------------


def full_mask(feats: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """`mask` as float `(B, T)`, or all ones when None."""
    if mask is None:
        return feats.new_ones(feats.shape[:2], dtype=torch.float32)
    if mask.shape != feats.shape[:2]:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match the features' (batch, steps) "
                         f"{tuple(feats.shape[:2])}.")
    return mask.to(torch.float32)


def masked_mean(feats: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """`(B, T, D)` -> `(B, D)`: mean over real steps (zeros for a sample with none)."""
    m = full_mask(feats, mask).to(feats.dtype).unsqueeze(-1)
    return (feats * m).sum(1) / m.sum(1).clamp_min(1.0)


def pool_to_steps(feats: torch.Tensor, mask: torch.Tensor | None, steps: int) -> torch.Tensor:
    """`(B, T, D)` -> `(B, steps, D)`: the real steps of each sample cut into `steps` equal spans, each averaged.

    Used to bring unaligned modalities to one time axis (MFN's `t`). A span that holds no frame (fewer real frames than
    steps) takes the frame it falls on (nearest-frame upsampling); a sample with no real frame gives zeros.
    """
    batch, length, dim = feats.shape
    m = full_mask(feats, mask)
    lengths = m.sum(1)  # (B,)
    # Position of each real frame among the real frames, then its span index 0..steps-1.
    rank = (m.cumsum(1) - 1).clamp_min(0)
    span = torch.floor(rank * steps / lengths.clamp_min(1.0)[:, None]).long().clamp(0, steps - 1)
    assign = torch.nn.functional.one_hot(span, steps).to(feats.dtype) * m.to(feats.dtype)[..., None]  # (B, T, S)
    sums = torch.einsum("bts,btd->bsd", assign, feats)
    counts = assign.sum(1)  # (B, S)
    pooled = sums / counts.clamp_min(1.0)[..., None]
    empty = counts == 0
    if empty.any():
        # Nearest real frame for empty spans: frame index floor((s + 0.5) * len / steps) among the real frames.
        centre = torch.floor((torch.arange(steps, device=feats.device, dtype=torch.float32)[None] + 0.5)
                             * lengths[:, None] / steps).long()
        centre = torch.minimum(centre, (lengths.long() - 1).clamp_min(0)[:, None])
        # Map the rank among real frames back to a position (real frames are not necessarily left-aligned).
        order = torch.argsort((1 - m) * (length + 1) + torch.arange(length, device=feats.device)[None], dim=1)
        position = torch.gather(order, 1, centre)
        nearest = torch.gather(feats, 1, position[..., None].expand(-1, -1, dim))
        nearest = nearest * (lengths > 0).to(feats.dtype)[:, None, None]
        pooled = torch.where(empty[..., None], nearest, pooled)
    return pooled


def present(feats: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """`(B,)` bool: the sample has at least one real step."""
    return full_mask(feats, mask).sum(1) > 0


class TokenEmbedder(nn.Module):
    """Word-piece ids -> `(B, L, dim)` trainable embeddings (the text input of the non-transformer baselines)."""

    def __init__(self, vocab_size: int, dim: int, padding_idx: int | None = 0) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=padding_idx)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        if input_ids.numel() and int(input_ids.max()) >= self.embedding.num_embeddings:
            raise ValueError(f"input_ids hold id {int(input_ids.max())} but the text vocabulary has "
                             f"{self.embedding.num_embeddings} entries; set config.text_vocab_size to the tokenizer's.")
        return self.embedding(input_ids)


def modality_inputs(batch: Mapping[str, Any], modalities: tuple[str, ...]) -> dict[str, tuple[torch.Tensor,
                                                                                           torch.Tensor | None]]:
    """{modality: (feats or input_ids, mask or None)} for the configured modalities present in the batch."""
    out = {}
    for name in modalities:
        value = batch.get(FEATS_KEY[name])
        if value is not None:
            out[name] = (value, batch.get(MASK_KEY[name]))
    if not out:
        raise ValueError(f"The batch holds none of the model's modalities {modalities} (keys "
                         f"{[FEATS_KEY[m] for m in modalities]}); got keys {sorted(batch)}.")
    return out


def batch_size_of(inputs: Mapping[str, tuple[torch.Tensor, torch.Tensor | None]]) -> int:
    sizes = {int(x.shape[0]) for x, _ in inputs.values()}
    if len(sizes) != 1:
        raise ValueError(f"The modalities hold different batch sizes: {sorted(sizes)}.")
    return sizes.pop()


def classification_loss(logits: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
    """Cross-entropy of `(B, C)` logits against `(B,)` class indices (None when there are no labels)."""
    if labels is None:
        return None
    return nn.functional.cross_entropy(logits, labels.to(logits.device).long().view(-1))


def nll_from_log_probs(log_probs: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
    if labels is None:
        return None
    return nn.functional.nll_loss(log_probs, labels.to(log_probs.device).long().view(-1))
