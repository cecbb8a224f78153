"""WWMLM: whole-word masked language modelling over the text, through BERT's MLM head tied to the word embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..modeling_memobert import MEmoBertPreTrainingHead, MEmoBertPreTrainingHeadOutput
from .base import PaddedBatch, PretrainingTask, mean_or_zero, register_task
from .masking import SpecialTokenIds, WholeWordMasking


class WholeWordMLMHead(MEmoBertPreTrainingHead):
    """Cross-entropy over the vocabulary at the masked word pieces, through the model's own MLM head (`model.cls`,
    BERT's, shared with `MEmoBertForPrompt`): this head adds no parameters."""

    target_names = ("labels",)

    def __init__(self, config=None):
        super().__init__()

    def forward(self, model, outputs, inputs) -> MEmoBertPreTrainingHeadOutput:
        labels = inputs["labels"]
        if outputs.text_hidden_state is None:
            raise ValueError("MLM labels were given without input_ids.")
        masked = labels != -100
        # The vocabulary projection runs at masked tokens only: the costliest matmul of the model otherwise.
        logits = model.cls(outputs.text_hidden_state[masked])
        total = F.cross_entropy(logits.float(), labels[masked], reduction="sum")
        return MEmoBertPreTrainingHeadOutput(mean_or_zero(total, masked.sum()), logits)


@register_task
class WholeWordMLMTask(PretrainingTask):
    """
    Each whole word selected with `probability` (0.15), at least one per sample with text; all pieces of a selected
    word become `[MASK]` (80 %), random tokens (10 %) or stay (10 %). Cross-entropy over the vocabulary at the
    selected pieces (`labels`, -100 elsewhere) -> `losses["wwmlm"]`.
    """

    name = "wwmlm"
    modality = "text"
    head_class = WholeWordMLMHead

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
