"""The pretraining collator: corpus rows (memobert.data.schema) -> one task's batch for `MEmoBertForPreTraining`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..configuration_memobert import MEmoBertConfig
from ..data import schema
from .base import PaddedBatch, PretrainingTask, available_tasks, get_task
from .masking import SpecialTokenIds


class PretrainingCollator:
    """
    Turns corpus rows into the batch of one pretraining task: adds `[CLS]`/`[SEP]`, truncates to the config's
    `max_text_length` (specials included), `max_visual_length` and `max_acoustic_length`, right-pads each segment,
    then runs the task's masker. `collator(rows, "span_mvfr")` returns the keyword arguments of
    `MEmoBertForPreTraining.forward`, holding that task's targets only.

    Modalities: a row lacking one (no word pieces, zero frames, a missing key or None) is all padding in that segment.
    A modality that no row of the batch has is left out of the batch, except the one the task masks: that one is
    given as a single all-padding position, nothing is masked and the task's loss is 0 (`masked_mean` of nothing),
    with gradients of zero, so every rank of a distributed run still runs the same graph for the drawn task.

    Randomness: every draw comes from `self.generator` (seeded by `seed`), or from the `generator` given to a call.
    With DataLoader workers, give each worker its own seed (`collator.reseed(seed + worker_id)` in `worker_init_fn`).
    For speed, give frames as numpy arrays (`dataset.with_format("numpy")`), not nested lists.

    Args:
        special_token_ids: a tokenizer (its special tokens are read) or a `SpecialTokenIds`.
        config: the model config (lengths, feature sizes, vocabulary size, mask token id).
        tasks: the tasks this collator builds, as names (default options) or task objects; default all registered.
        seed: seed of the collator's generator (None: nondeterministic).
    """

    def __init__(
        self,
        special_token_ids: SpecialTokenIds | Any,
        config: MEmoBertConfig,
        tasks: Iterable[str | PretrainingTask] | None = None,
        seed: int | None = None,
    ):
        if not isinstance(special_token_ids, SpecialTokenIds):
            special_token_ids = SpecialTokenIds.from_tokenizer(special_token_ids)
        if special_token_ids.vocab_size > config.vocab_size:
            raise ValueError(
                f"The tokenizer has {special_token_ids.vocab_size} tokens but the model config only "
                f"{config.vocab_size} (config.vocab_size); use the model's tokenizer or resize the embeddings."
            )
        if special_token_ids.mask_token_id != config.mask_token_id:
            raise ValueError(
                f"The tokenizer's [MASK] id is {special_token_ids.mask_token_id} but config.mask_token_id is "
                f"{config.mask_token_id}; set config.mask_token_id from the tokenizer."
            )
        if config.max_text_length < 3:
            raise ValueError(f"config.max_text_length is {config.max_text_length}: it must hold [CLS], a piece and [SEP].")
        self.special_token_ids = special_token_ids
        self.config = config
        # Read once: attribute access on a transformers config costs microseconds each, per row adds up.
        self._max_text_length = config.max_text_length
        self._visual = (config.max_visual_length, config.visual_dim)
        self._acoustic = (config.max_acoustic_length, config.acoustic_dim)
        self._num_face_classes = config.num_face_classes
        self.tasks: dict[str, PretrainingTask] = {}
        for task in available_tasks() if tasks is None else tasks:
            task = get_task(task) if isinstance(task, str) else task
            if not isinstance(task, PretrainingTask):
                raise TypeError(f"tasks must hold task names or PretrainingTask objects, got {type(task).__name__}.")
            self.tasks[task.name] = task
        self.generator = torch.Generator()
        self.reseed(seed)

    def reseed(self, seed: int | None) -> None:
        """Seeds the collator's generator (None: from fresh entropy)."""
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(seed)

    def task(self, task: str | PretrainingTask) -> PretrainingTask:
        """The collator's task object for a name (or the object itself)."""
        if isinstance(task, PretrainingTask):
            return task
        if task not in self.tasks:
            raise KeyError(f"This collator has no task {task!r}; it was built with {sorted(self.tasks)}.")
        return self.tasks[task]

    def __call__(
        self,
        rows: Sequence[Mapping[str, Any]],
        task: str | PretrainingTask,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """The batch of `task` for `rows`: keyword arguments of `MEmoBertForPreTraining.forward`."""
        task = self.task(task)
        padded = self.pad(rows, include=(task.modality,), face_soft_labels=task.needs_face_soft_labels)
        return task.build_batch(padded, self.special_token_ids, generator if generator is not None else self.generator)

    # -- padding -----------------------------------------------------------------------------------------------------

    def pad(
        self,
        rows: Sequence[Mapping[str, Any]],
        include: Iterable[str] = (),
        face_soft_labels: bool = False,
        keep_float16: bool = False,
    ) -> PaddedBatch:
        """
        Rows -> right-padded tensors, no masking. `include` names modalities to give even when no row has them
        (as one all-padding position); `face_soft_labels` pads the rows' soft labels too. With `keep_float16`, frames
        stored as float16 stay float16 (half the bytes to send from a DataLoader worker and to the device; widen them
        there: the values are exactly the float32 ones); otherwise frames are float32.
        """
        if len(rows) == 0:
            raise ValueError("PretrainingCollator got an empty list of rows.")
        include = set(include)
        padded = PaddedBatch()
        (max_visual, visual_dim), (max_acoustic, acoustic_dim) = self._visual, self._acoustic

        text = self._pad_text(rows)
        if text is not None or "text" in include:
            padded.input_ids, padded.attention_mask, padded.word_ids = text or self._empty_text(len(rows))

        visual = [self._frames(row, i, schema.VISUAL_FEATS, visual_dim) for i, row in enumerate(rows)]
        if any(len(f) for f in visual) or "visual" in include:
            padded.visual_feats, padded.visual_mask = _pad_frames(visual, max_visual, visual_dim, keep_float16)
            if face_soft_labels:
                labels = [
                    self._soft_labels(row, i, len(frames)) for i, (row, frames) in enumerate(zip(rows, visual))
                ]
                padded.face_soft_labels, _ = _pad_frames(labels, max_visual, self._num_face_classes, keep_float16)

        acoustic = [self._frames(row, i, schema.ACOUSTIC_FEATS, acoustic_dim) for i, row in enumerate(rows)]
        if any(len(f) for f in acoustic) or "acoustic" in include:
            padded.acoustic_feats, padded.acoustic_mask = _pad_frames(acoustic, max_acoustic, acoustic_dim, keep_float16)
        return padded

    def _pad_text(self, rows: Sequence[Mapping[str, Any]]) -> tuple[torch.Tensor, ...] | None:
        budget = self._max_text_length - 2
        pieces, words = [], []
        for index, row in enumerate(rows):
            ids = row.get(schema.INPUT_IDS)
            ids = np.asarray([] if ids is None else ids, dtype=np.int64).reshape(-1)
            word_ids = row.get(schema.WORD_IDS)
            word_ids = np.asarray([] if word_ids is None else word_ids, dtype=np.int64).reshape(-1)
            if len(word_ids) != len(ids):
                raise ValueError(
                    f"Corpus row {_row_name(row, index)} has {len(ids)} input_ids but {len(word_ids)} word_ids; "
                    "write one word id per word piece (the fast tokenizer's word_ids())."
                )
            pieces.append(ids[:budget])
            words.append(word_ids[:budget])
        lengths = torch.tensor([len(p) for p in pieces], dtype=torch.long)
        if not bool((lengths > 0).any()):
            return None
        has_text = lengths > 0
        total = torch.where(has_text, lengths + 2, 0)
        columns = torch.arange(int(total.max()))
        ids = self._empty_text(len(rows), len(columns))[0]
        word_ids = torch.full_like(ids, -1)
        piece_slots = (columns >= 1) & (columns <= lengths[:, None])
        ids[piece_slots] = torch.from_numpy(np.concatenate(pieces))
        word_ids[piece_slots] = torch.from_numpy(np.concatenate(words))
        text_rows = has_text.nonzero().squeeze(1)
        ids[text_rows, 0] = self.special_token_ids.cls_token_id
        ids[text_rows, lengths[text_rows] + 1] = self.special_token_ids.sep_token_id
        attention_mask = (columns < total[:, None]).long()
        return ids, attention_mask, word_ids

    def _empty_text(self, batch: int, length: int = 1) -> tuple[torch.Tensor, ...]:
        ids = torch.full((batch, length), self.special_token_ids.pad_token_id, dtype=torch.long)
        return ids, torch.zeros_like(ids), torch.full_like(ids, -1)

    @staticmethod
    def _frames(row: Mapping[str, Any], index: int, key: str, dim: int) -> np.ndarray:
        value = row.get(key)
        if value is None:
            return np.zeros((0, dim), dtype=np.float32)
        frames = np.asarray(value)
        if frames.size == 0:
            return np.zeros((0, dim), dtype=np.float32)
        if frames.ndim != 2 or frames.shape[1] != dim:
            field = "visual_dim" if key == schema.VISUAL_FEATS else "acoustic_dim"
            raise ValueError(
                f"Corpus row {_row_name(row, index)} has {key} of shape {frames.shape}, expected (frames, {dim}); set "
                f"config.{field} to the extractor's feature size or re-extract the features."
            )
        return frames

    def _soft_labels(self, row: Mapping[str, Any], index: int, num_frames: int) -> np.ndarray:
        classes = self._num_face_classes
        if classes == 0:  # a face encoder without expression classes (e.g. an `hf:` image encoder)
            return np.zeros((num_frames, 0), np.float32)
        labels = self._frames(row, index, schema.FACE_SOFT_LABELS, classes)
        if len(labels) != num_frames:
            raise ValueError(
                f"Corpus row {_row_name(row, index)} has {num_frames} face frames but {len(labels)} face_soft_labels "
                f"rows; span_mvfc_kl needs one {classes}-class distribution per face frame (re-run the face extractor)."
            )
        return labels


def _pad_frames(
    frames: list[np.ndarray], max_length: int, dim: int, keep_float16: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded `(batch, length, dim)` frames (first `max_length` of each row; float32, or float16 when all rows
    are float16 and `keep_float16`) and their long mask."""
    lengths = [min(len(f), max_length) for f in frames]
    length = max(1, max(lengths))
    # One copy per row into a zeroed array: ~10x faster than concatenating then scattering through a boolean mask.
    # Frames stored as float16 (the corpus' dtype) are padded as float16 and widened once, by torch: its vectorised
    # float16 -> float32 conversion is ~5x faster than numpy's cast inside each row's copy. The values are the same
    # (the conversion is exact); any other dtype is copied straight into float32.
    half = all(array.dtype == np.float16 for array, n in zip(frames, lengths) if n)
    feats = np.zeros((len(frames), length, dim), dtype=np.float16 if half else np.float32)
    for row, (array, n) in enumerate(zip(frames, lengths)):
        if n:
            feats[row, :n] = array[:n]
    mask = torch.arange(length) < torch.tensor(lengths)[:, None]
    feats = torch.from_numpy(feats)
    return (feats if keep_float16 else feats.float()), mask.long()


def _row_name(row: Mapping[str, Any], index: int) -> str:
    utterance = row.get(schema.UTTERANCE_ID)
    return f"{utterance!r} (row {index} of the batch)" if utterance else f"{index} of the batch"


__all__ = ["PretrainingCollator"]
