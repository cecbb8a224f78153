"""SpanMAFR: regress the original features of span-masked acoustic frames (MSE), through the head tied to the projection."""

from __future__ import annotations

import torch

from .base import FrameSpanTask, PaddedBatch, register_task, zero_outside


@register_task
class SpanMaskedAcousticFrameRegressionTask(FrameSpanTask):
    """Span masking of the acoustic frames (ratio 0.15, spans of 3); MSE to the unmasked features -> `acoustic_regression_loss`."""

    name = "span_mafr"
    modality = "acoustic"
    head_name = "acoustic_regression"
    loss_name = "acoustic_regression_loss"
    target_names = ("acoustic_targets",)
    default_ratio = 0.15

    def targets(self, padded: PaddedBatch, target_pos: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"acoustic_targets": zero_outside(padded.acoustic_feats, target_pos)}
