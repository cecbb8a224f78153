"""Rows of a labelled corpus -> model batches for one modality case, and the endless seeded training stream."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from ..data import schema
from ..processing_memobert import MEmoBertProcessor
from .corpus import DownstreamCorpus

# Batch keys beyond the processor's that the runner can give a system that asks for them.
EXTRA_KEYS = ("texts", "speakers")


class BatchBuilder:
    """
    Rows of the corpus -> model inputs for one modality case (absent modalities left out of the batch), with
    `labels`. `extra_keys` adds what a baseline reads beyond the processor's keys: `texts` (the utterance strings,
    "" when the case has no L) and `speakers` (one speaker string per row, for a `prepare` stage on the training rows).
    """

    def __init__(self, corpus: DownstreamCorpus, processor: MEmoBertProcessor, prompt: bool,
                 extra_keys: Sequence[str] = ()):
        unknown = sorted(set(extra_keys) - set(EXTRA_KEYS))
        if unknown:
            raise ValueError(f"BatchBuilder cannot give the batch keys {unknown} (it gives {list(EXTRA_KEYS)}).")
        self.corpus, self.processor, self.prompt, self.extra_keys = corpus, processor, prompt, tuple(extra_keys)

    def with_keys(self, *keys: str) -> BatchBuilder:
        """The same builder giving these extra keys too."""
        return BatchBuilder(self.corpus, self.processor, self.prompt, tuple(dict.fromkeys(self.extra_keys + keys)))

    def __call__(self, rows: Sequence[int], case: str = "LVA", row_ids: bool = False) -> dict:
        """The batch of `rows` in modality `case`; with `row_ids`, also their row numbers under `rows`."""
        rows = [int(r) for r in rows]
        chunk = self.corpus.dataset[rows]
        text = [str(t or "") for t in chunk[schema.TEXT]] if "L" in case else None
        # The processor truncates frames to its max_visual_length / max_acoustic_length.
        visual = [np.asarray(v) for v in chunk[schema.VISUAL_FEATS]] if "V" in case else None
        acoustic = [np.asarray(a) for a in chunk[schema.ACOUSTIC_FEATS]] if "A" in case else None
        if self.prompt and text is None:
            text = [None] * len(rows)  # the template alone: "[CLS] i am [MASK] . [SEP]"
        batch = dict(self.processor(text=text, visual=visual, acoustic=acoustic, prompt=self.prompt))
        batch["labels"] = torch.as_tensor(self.corpus.labels[rows], dtype=torch.long)
        if row_ids:
            batch["rows"] = torch.as_tensor(rows, dtype=torch.long)
        if "texts" in self.extra_keys:
            batch["texts"] = text if text is not None and not self.prompt else [""] * len(rows)
        if "speakers" in self.extra_keys:
            batch["speakers"] = [self.corpus.speakers[r] for r in rows]
        return batch

    def batches(self, rows: np.ndarray, batch_size: int, case: str = "LVA") -> list[dict]:
        """`rows` in order, cut into batches of `batch_size`."""
        return [self(rows[i:i + batch_size], case) for i in range(0, len(rows), batch_size)]


def proper_subcases(modalities: str) -> list[str]:
    """The non-empty proper subsets of `modalities` (letters in L, V, A order): "LA" -> ["L", "A"]."""
    letters = [m for m in "LVA" if m in modalities]
    subsets = ["".join(m for i, m in enumerate(letters) if mask >> i & 1) for mask in range(1, 2 ** len(letters) - 1)]
    return sorted(subsets, key=lambda case: (len(case), ["LVA".index(m) for m in case]))


class ModalityDropout:
    """The modality case of each training batch: the full case, or with probability `p` one of its non-empty proper
    subsets, uniformly (seeded: the same run draws the same cases)."""

    def __init__(self, modalities: str, p: float, seed: int):
        self.full, self.p, self.subcases = modalities, p, proper_subcases(modalities)
        self.rng = np.random.default_rng(seed)

    def __call__(self) -> str:
        if self.p <= 0 or not self.subcases or self.rng.random() >= self.p:
            return self.full
        return self.subcases[int(self.rng.integers(len(self.subcases)))]


def training_batches(
    rows: np.ndarray, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
    labels: np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """Endless batches: successive seeded permutations of `rows` cut into batches, batch j going to rank j % world.
    With `labels` (the class of each of `rows`): class-balanced sampling instead, each pass `len(rows)` rows drawn
    with replacement, a row's chance inversely proportional to its class's count (every class drawn equally often)."""
    rows = np.asarray(rows, dtype=np.int64)
    rng = np.random.default_rng(seed)
    chance = None
    if labels is not None:
        labels = np.asarray(labels, dtype=np.int64)
        if labels.shape != rows.shape:
            raise ValueError(f"training_batches: {len(labels)} labels for {len(rows)} rows.")
        chance = 1.0 / np.bincount(labels)[labels]
        chance /= chance.sum()
    buffer = np.empty(0, dtype=np.int64)
    index = 0
    while True:
        while len(buffer) < batch_size:
            drawn = rng.permutation(rows) if chance is None else rng.choice(rows, size=len(rows), p=chance)
            buffer = np.concatenate([buffer, drawn])
        batch, buffer = buffer[:batch_size], buffer[batch_size:]
        if index % world_size == rank:
            yield batch
        index += 1


__all__ = ["BatchBuilder", "EXTRA_KEYS", "ModalityDropout", "proper_subcases", "training_batches"]
