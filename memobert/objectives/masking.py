"""
The maskers of the pretraining tasks, vectorised over the batch in torch on the CPU (they run in the collator):

- `WholeWordMasking`: whole-word masking of the text (WWMLM).
- `SpanMasking`: span masking of frames (SpanMVFR, SpanMVFC-KL, SpanMAFR), one class for both frame modalities.

Every random draw goes through the `torch.Generator` the caller passes, so a seeded generator gives the same masks.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

REPLACEMENT_MODES = ("mask_vector", "mockingjay")


# ----------------------------------------------------------------------------------------------------------------------
# Special token ids
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpecialTokenIds:
    """
    The token ids the collator and the text masker need. `[CLS]`, `[SEP]`, `[PAD]`, `[MASK]` and `never_mask_ids`
    are never selected for masking nor drawn as random replacement tokens; random tokens come from `[0, vocab_size)`.
    """

    cls_token_id: int
    sep_token_id: int
    pad_token_id: int
    mask_token_id: int
    vocab_size: int
    never_mask_ids: tuple[int, ...] = ()

    def __post_init__(self):
        specials = (self.cls_token_id, self.sep_token_id, self.pad_token_id, self.mask_token_id, *self.never_mask_ids)
        bad = [i for i in specials if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"Special token ids {bad} are outside the vocabulary [0, {self.vocab_size}).")
        if self.vocab_size <= len(set(specials)):
            raise ValueError(f"vocab_size {self.vocab_size} leaves no ordinary token to draw as a random replacement.")

    @classmethod
    def from_tokenizer(cls, tokenizer) -> SpecialTokenIds:
        """The ids of a (BERT-style) tokenizer; all its special tokens (e.g. `[UNK]`) are never masked."""
        missing = [
            name
            for name in ("cls_token_id", "sep_token_id", "pad_token_id", "mask_token_id")
            if getattr(tokenizer, name, None) is None
        ]
        if missing:
            raise ValueError(f"The tokenizer has no {', '.join(missing)}; MEmoBERT pretraining needs a BERT-style one.")
        return cls(
            cls_token_id=tokenizer.cls_token_id,
            sep_token_id=tokenizer.sep_token_id,
            pad_token_id=tokenizer.pad_token_id,
            mask_token_id=tokenizer.mask_token_id,
            vocab_size=len(tokenizer),
            never_mask_ids=tuple(sorted(set(tokenizer.all_special_ids))),
        )

    @cached_property
    def excluded_ids(self) -> torch.Tensor:
        """Ids never masked and never drawn as random replacements."""
        ids = {self.cls_token_id, self.sep_token_id, self.pad_token_id, self.mask_token_id, *self.never_mask_ids}
        return torch.tensor(sorted(ids), dtype=torch.long)

    @cached_property
    def random_token_candidates(self) -> torch.Tensor:
        """The ids a random replacement is drawn from: the vocabulary less `excluded_ids`."""
        keep = torch.ones(self.vocab_size, dtype=torch.bool)
        keep[self.excluded_ids] = False
        return keep.nonzero().squeeze(1)


# ----------------------------------------------------------------------------------------------------------------------
# Whole-word masking
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class WholeWordMaskingOutput:
    """
    input_ids: the masked input ids. labels: the original ids at selected tokens, -100 elsewhere.
    selected: `(batch, len)` bool, the tokens to predict. replaced_by_mask / replaced_by_random: subsets of `selected`.
    """

    input_ids: torch.Tensor
    labels: torch.Tensor
    selected: torch.Tensor
    replaced_by_mask: torch.Tensor
    replaced_by_random: torch.Tensor


@dataclass(frozen=True)
class WholeWordMasking:
    """
    Selects each whole word with probability `probability` (at least one word per sample that has one); all pieces of
    a selected word share one fate: `[MASK]` with probability `mask_replace_prob`, a random token (one per piece) with
    `random_replace_prob`, unchanged otherwise. Special tokens and padding are never selected.
    """

    probability: float = 0.15
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1

    def __post_init__(self):
        if not 0.0 < self.probability <= 1.0:
            raise ValueError(f"WholeWordMasking probability must be in (0, 1], got {self.probability}.")
        if self.mask_replace_prob < 0 or self.random_replace_prob < 0:
            raise ValueError("mask_replace_prob and random_replace_prob must be >= 0.")
        if self.mask_replace_prob + self.random_replace_prob > 1.0 + 1e-9:
            raise ValueError(
                f"mask_replace_prob + random_replace_prob = {self.mask_replace_prob + self.random_replace_prob} "
                "exceeds 1; the rest is the share of selected words kept unchanged."
            )

    def __call__(
        self,
        input_ids: torch.Tensor,
        word_ids: torch.Tensor,
        special_token_ids: SpecialTokenIds,
        generator: torch.Generator | None = None,
    ) -> WholeWordMaskingOutput:
        """
        input_ids: `(batch, len)` with special tokens and padding. word_ids: `(batch, len)`, the word of each piece
        (any integers: a word is a run of equal ids), -1 at special tokens and padding.
        """
        if input_ids.shape != word_ids.shape:
            raise ValueError(f"input_ids {tuple(input_ids.shape)} and word_ids {tuple(word_ids.shape)} differ in shape.")
        batch, length = input_ids.shape
        maskable = (word_ids >= 0) & ~torch.isin(input_ids, special_token_ids.excluded_ids)
        # Number the words of each row 0, 1, ...: a word starts where a maskable piece's word id differs from the
        # previous piece's (or the previous piece is not maskable).
        previous = torch.cat([torch.full_like(word_ids[:, :1], -2), word_ids[:, :-1]], dim=1)
        previous_maskable = torch.cat([torch.zeros_like(maskable[:, :1]), maskable[:, :-1]], dim=1)
        starts = maskable & ((word_ids != previous) | ~previous_maskable)
        word_index = (starts.long().cumsum(dim=1) - 1).clamp(min=0)
        num_words = starts.sum(dim=1)
        max_words = int(num_words.max()) if batch else 0
        if max_words == 0:
            nothing = torch.zeros_like(maskable)
            return WholeWordMaskingOutput(input_ids.clone(), torch.full_like(input_ids, -100), nothing, nothing, nothing)

        present = torch.arange(max_words) < num_words[:, None]
        draws = torch.rand(batch, max_words, 2, generator=generator)
        chosen = (draws[..., 0] < self.probability) & present
        # At least one word per sample: where none was chosen, take the present word with the smallest draw.
        nothing_chosen = ~chosen.any(dim=1) & (num_words > 0)
        fallback = torch.where(present, draws[..., 0], torch.full_like(draws[..., 0], 2.0)).argmin(dim=1)
        chosen[nothing_chosen, fallback[nothing_chosen]] = True
        fate = draws[..., 1]
        to_mask_word = fate < self.mask_replace_prob
        to_random_word = ~to_mask_word & (fate < self.mask_replace_prob + self.random_replace_prob)

        selected = maskable & chosen.gather(1, word_index)
        by_mask = selected & to_mask_word.gather(1, word_index)
        by_random = selected & to_random_word.gather(1, word_index)
        candidates = special_token_ids.random_token_candidates
        random_tokens = candidates[torch.randint(len(candidates), (batch, length), generator=generator)]
        masked_ids = torch.where(by_mask, torch.full_like(input_ids, special_token_ids.mask_token_id), input_ids)
        masked_ids = torch.where(by_random, random_tokens, masked_ids)
        labels = torch.where(selected, input_ids, torch.full_like(input_ids, -100))
        return WholeWordMaskingOutput(masked_ids, labels, selected, by_mask, by_random)


# ----------------------------------------------------------------------------------------------------------------------
# Span masking of frames
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class SpanMaskingOutput:
    """
    feats: the features to feed the model: zero at `bool_masked_pos` (the model puts its learned mask vector there),
        a random real frame of the batch at Mockingjay's random share, the original elsewhere.
    bool_masked_pos: `(batch, len)` bool, frames given the learned mask vector.
    target_pos: `(batch, len)` bool, frames whose original features are predicted; equals `bool_masked_pos` in
        `"mask_vector"` mode, and adds the randomly replaced and the kept frames in `"mockingjay"` mode.
    span_starts: `(batch, max_spans)` first frame of each span, -1 for no span. A span that would run past the last
        real frame (only when a sample has fewer frames than `span_length`) stops there.
    """

    feats: torch.Tensor
    bool_masked_pos: torch.Tensor
    target_pos: torch.Tensor
    span_starts: torch.Tensor


@dataclass(frozen=True)
class SpanMasking:
    """
    Masks spans of `span_length` consecutive frames; a sample of `n` real frames gets `max(1, int(n * ratio //
    span_length))` spans, so at least one frame. Span starts are uniform over the placements that fit in the real
    frames, so the last frames can be masked too; padding never is.

    Args:
        ratio: share of frames to mask (0.2 for faces, 0.15 for acoustic frames in the paper).
        span_length: frames per span (3).
        allow_overlap: `False` (default) places the spans without overlap, so exactly `spans * span_length` frames
            are masked; `True` draws distinct starts independently, as the original code did, so spans may overlap
            and fewer frames may be masked.
        replacement: `"mask_vector"` (the paper): every masked frame is zeroed and gets the learned mask vector.
            `"mockingjay"`: of the masked frames, `mask_vector_prob` get the mask vector, `random_frame_prob` a
            random real frame of the batch, the rest stay unchanged; all of them are predicted.
    """

    ratio: float
    span_length: int = 3
    allow_overlap: bool = False
    replacement: str = "mask_vector"
    mask_vector_prob: float = 0.8
    random_frame_prob: float = 0.1

    def __post_init__(self):
        if not 0.0 < self.ratio <= 1.0:
            raise ValueError(f"SpanMasking ratio must be in (0, 1], got {self.ratio}.")
        if self.span_length < 1:
            raise ValueError(f"SpanMasking span_length must be >= 1, got {self.span_length}.")
        if self.replacement not in REPLACEMENT_MODES:
            raise ValueError(f"SpanMasking replacement must be one of {REPLACEMENT_MODES}, got {self.replacement!r}.")
        if min(self.mask_vector_prob, self.random_frame_prob) < 0 or self.mask_vector_prob + self.random_frame_prob > 1:
            raise ValueError("mask_vector_prob and random_frame_prob must be >= 0 and sum to at most 1.")

    def num_spans(self, lengths: torch.Tensor) -> torch.Tensor:
        """Spans per sample for `lengths` real frames: `max(1, int(n * ratio // span_length))`, 0 when `n == 0`."""
        # torch's floor rounding mode on doubles is CPython's float `//`, so this is the formula to the bit.
        spans = torch.div(lengths.double() * self.ratio, self.span_length, rounding_mode="floor").long()
        return torch.where(lengths > 0, spans.clamp(min=1), torch.zeros_like(spans))

    def select(self, lengths: torch.Tensor, max_length: int, generator: torch.Generator | None = None):
        """`(selected (batch, max_length) bool, span_starts (batch, max_spans))` for samples of `lengths` frames."""
        batch = lengths.shape[0]
        span = self.span_length
        spans = self.num_spans(lengths)
        max_spans = int(spans.max()) if batch else 0
        if max_spans == 0:
            return torch.zeros(batch, max_length, dtype=torch.bool), torch.full((batch, 0), -1, dtype=torch.long)
        # Choose `spans` distinct slots out of `slots` per sample (the smallest random keys), then map slots to starts.
        # Overlap allowed: a slot is a start, 0..n-L. No overlap: k blocks of L in n frames <-> k slots out of
        # n - k(L-1), start_i = slot_i + i(L-1) for the sorted slots (stars and bars).
        if self.allow_overlap:
            slots = (lengths - span + 1).clamp(min=1)
        else:
            slots = (lengths - spans * (span - 1)).clamp(min=1)
        max_slots = int(slots.max())
        keys = torch.rand(batch, max_slots, generator=generator)
        keys = keys.masked_fill(torch.arange(max_slots) >= slots[:, None], 2.0)
        used = torch.arange(max_spans) < spans[:, None]
        # The first `spans` columns of the argsort are the chosen slots; push the other columns past them, then sort.
        chosen = keys.argsort(dim=1)[:, :max_spans]
        chosen = torch.where(used, chosen, torch.full_like(chosen, max_slots)).sort(dim=1).values
        if not self.allow_overlap:
            chosen = chosen + torch.arange(max_spans) * (span - 1)
        span_starts = torch.where(used, chosen, torch.full_like(chosen, -1))

        frames = span_starts[:, :, None] + torch.arange(span)  # (batch, spans, span)
        valid = used[:, :, None] & (frames < lengths[:, None, None])
        selected = torch.zeros(batch, max_length, dtype=torch.bool)
        rows = torch.arange(batch)[:, None, None].expand_as(frames)
        selected[rows[valid], frames[valid]] = True
        return selected, span_starts

    def __call__(
        self, feats: torch.Tensor, frame_mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> SpanMaskingOutput:
        """feats: `(batch, len, dim)`; frame_mask: `(batch, len)`, 1 at real frames (right padding)."""
        frame_mask = frame_mask.bool()
        lengths = frame_mask.sum(dim=1)
        if not torch.equal(frame_mask, torch.arange(frame_mask.shape[1]) < lengths[:, None]):
            raise ValueError("SpanMasking expects right-padded frames: each mask row must be 1s then 0s.")
        selected, span_starts = self.select(lengths, frame_mask.shape[1], generator)
        selected &= frame_mask
        if self.replacement == "mask_vector":
            by_mask_vector = selected
            by_random = torch.zeros_like(selected)
        else:
            fate = torch.rand(selected.shape, generator=generator)
            by_mask_vector = selected & (fate < self.mask_vector_prob)
            by_random = selected & ~by_mask_vector & (fate < self.mask_vector_prob + self.random_frame_prob)
        out = feats.clone()
        # Integer indices, not the boolean mask: CPU index_put with a boolean mask is ~8x slower than the clone itself.
        out[by_mask_vector.nonzero(as_tuple=True)] = 0.0
        num_random = int(by_random.sum())
        if num_random:
            real_frames = feats[frame_mask]
            picks = torch.randint(len(real_frames), (num_random,), generator=generator)
            out[by_random] = real_frames[picks]
        return SpanMaskingOutput(feats=out, bool_masked_pos=by_mask_vector, target_pos=selected, span_starts=span_starts)


__all__ = [
    "REPLACEMENT_MODES",
    "SpecialTokenIds",
    "WholeWordMasking",
    "WholeWordMaskingOutput",
    "SpanMasking",
    "SpanMaskingOutput",
]
