"""SpanMVFR: regress the original features of span-masked face frames (MSE), through the head tied to the projection."""

from __future__ import annotations

import torch

from .base import FrameSpanTask, PaddedBatch, register_task, zero_outside


@register_task
class SpanMaskedVisualFrameRegressionTask(FrameSpanTask):
    """Span masking of the face frames (ratio 0.2, spans of 3); MSE to the unmasked features -> `visual_regression_loss`."""

    name = "span_mvfr"
    modality = "visual"
    head_name = "visual_regression"
    loss_name = "visual_regression_loss"
    target_names = ("visual_targets",)
    default_ratio = 0.2

    def targets(self, padded: PaddedBatch, target_pos: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"visual_targets": zero_outside(padded.visual_feats, target_pos)}
