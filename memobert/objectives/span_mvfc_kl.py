"""SpanMVFC-KL: predict the stored face-expression distribution of span-masked face frames, KL(target || prediction)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..configuration_memobert import MEmoBertConfig
from ..modeling_memobert import MEmoBertPredictionHeadTransform, MEmoBertPreTrainingHead, MEmoBertPreTrainingHeadOutput
from .base import FrameSpanTask, PaddedBatch, masked_frames, mean_or_zero, register_task, zero_outside


class FaceExpressionHead(MEmoBertPreTrainingHead):
    """Predicts each masked face frame's expression distribution: Linear-GELU-LayerNorm -> Linear(num_face_classes);
    loss KL(stored soft labels || softmax(logits)), summed over the frames' classes and averaged over the frames."""

    target_names = ("face_soft_labels",)

    def __init__(self, config: MEmoBertConfig):
        super().__init__()
        self.transform = MEmoBertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.num_face_classes)

    def forward(self, model, outputs, inputs) -> MEmoBertPreTrainingHeadOutput:
        masked = masked_frames(inputs, outputs, "visual")
        logits = self.decoder(self.transform(outputs.visual_hidden_state[masked]))
        log_probs = F.log_softmax(logits.float(), dim=-1)
        total = F.kl_div(log_probs, inputs["face_soft_labels"][masked].float(), reduction="sum")
        return MEmoBertPreTrainingHeadOutput(mean_or_zero(total, masked.sum()), logits)


@register_task
class SpanMaskedVisualFrameClassificationTask(FrameSpanTask):
    """
    Span masking of the face frames (ratio 0.2, spans of 3); the face head predicts each masked frame's expression
    distribution, loss KL(stored soft labels || softmax(logits)) per frame -> `losses["span_mvfc_kl"]`.
    """

    name = "span_mvfc_kl"
    modality = "visual"
    head_class = FaceExpressionHead
    needs_face_soft_labels = True
    default_ratio = 0.2

    def targets(self, padded: PaddedBatch, target_pos: torch.Tensor) -> dict[str, torch.Tensor]:
        if padded.face_soft_labels is None:
            raise ValueError(
                "Task 'span_mvfc_kl' needs face_soft_labels in the padded batch; PretrainingCollator pads them for "
                "tasks with needs_face_soft_labels = True."
            )
        return {"face_soft_labels": zero_outside(padded.face_soft_labels, target_pos)}
