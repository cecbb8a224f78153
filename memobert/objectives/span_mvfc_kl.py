"""SpanMVFC-KL: predict the stored FER+ expression distribution of span-masked face frames, KL(target || prediction)."""

from __future__ import annotations

import torch

from .base import FrameSpanTask, PaddedBatch, register_task, zero_outside


@register_task
class SpanMaskedVisualFrameClassificationTask(FrameSpanTask):
    """
    Span masking of the face frames (ratio 0.2, spans of 3); the face head predicts each masked frame's expression
    distribution, loss KL(stored soft labels || softmax(logits)) per frame -> `face_classification_loss`.
    """

    name = "span_mvfc_kl"
    modality = "visual"
    head_name = "face_classifier"
    loss_name = "face_classification_loss"
    target_names = ("face_soft_labels",)
    needs_face_soft_labels = True
    default_ratio = 0.2

    def targets(self, padded: PaddedBatch, target_pos: torch.Tensor) -> dict[str, torch.Tensor]:
        if padded.face_soft_labels is None:
            raise ValueError(
                "Task 'span_mvfc_kl' needs face_soft_labels in the padded batch; PretrainingCollator pads them for "
                "tasks with needs_face_soft_labels = True."
            )
        return {"face_soft_labels": zero_outside(padded.face_soft_labels, target_pos)}
