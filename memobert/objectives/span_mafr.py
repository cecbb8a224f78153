"""SpanMAFR: regress the original features of span-masked acoustic frames (MSE), through the head tied to the
acoustic input projection."""

from __future__ import annotations

from .base import FrameRegressionHead, FrameRegressionTask, register_task


class AcousticFrameRegressionHead(FrameRegressionHead):
    """The acoustic frames' regression head (weight tied to the acoustic input projection)."""

    modality = "acoustic"
    target_names = ("acoustic_targets",)


@register_task
class SpanMaskedAcousticFrameRegressionTask(FrameRegressionTask):
    """Span masking of the acoustic frames (ratio 0.15, spans of 3); MSE to the unmasked features ->
    `losses["span_mafr"]`."""

    name = "span_mafr"
    modality = "acoustic"
    head_class = AcousticFrameRegressionHead
    default_ratio = 0.15
