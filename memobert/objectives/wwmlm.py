"""WWMLM: whole-word masked language modelling over the text, through the MLM head tied to the word embeddings."""

from __future__ import annotations

import torch

from .base import PaddedBatch, PretrainingTask, register_task
from .masking import SpecialTokenIds, WholeWordMasking


@register_task
class WholeWordMLMTask(PretrainingTask):
    """
    Each whole word selected with `probability` (0.15), at least one per sample with text; all pieces of a selected
    word become `[MASK]` (80 %), random tokens (10 %) or stay (10 %). Cross-entropy over the vocabulary at the
    selected pieces (`labels`, -100 elsewhere) -> `mlm_loss`.
    """

    name = "wwmlm"
    modality = "text"
    head_name = "cls"
    loss_name = "mlm_loss"
    target_names = ("labels",)

    def __init__(
        self,
        probability: float = 0.15,
        mask_replace_prob: float = 0.8,
        random_replace_prob: float = 0.1,
        masker: WholeWordMasking | None = None,
    ):
        self.masker = masker or WholeWordMasking(probability, mask_replace_prob, random_replace_prob)

    def build_batch(
        self, padded: PaddedBatch, special_token_ids: SpecialTokenIds, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        if padded.input_ids is None:
            raise ValueError(
                "Task 'wwmlm' needs input_ids in the batch; PretrainingCollator always gives them "
                "(all padding when no row has text)."
            )
        masked = self.masker(padded.input_ids, padded.word_ids, special_token_ids, generator)
        batch = padded.model_inputs()
        batch["input_ids"] = masked.input_ids
        batch["labels"] = masked.labels
        return batch
