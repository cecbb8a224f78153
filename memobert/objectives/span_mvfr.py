"""SpanMVFR: regress the original features of span-masked face frames (MSE), through the head tied to the projection."""

from __future__ import annotations

from .base import FrameRegressionHead, FrameRegressionTask, register_task


class VisualFrameRegressionHead(FrameRegressionHead):
    """The face frames' regression head (weight tied to the visual input projection)."""

    modality = "visual"
    target_names = ("visual_targets",)


@register_task
class SpanMaskedVisualFrameRegressionTask(FrameRegressionTask):
    """Span masking of the face frames (ratio 0.2, spans of 3); MSE to the unmasked features ->
    `losses["span_mvfr"]`."""

    name = "span_mvfr"
    modality = "visual"
    head_class = VisualFrameRegressionHead
    default_ratio = 0.2
