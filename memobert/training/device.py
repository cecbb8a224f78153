"""Batches onto the run's device."""

from __future__ import annotations

import torch


def to_device(batch: dict, device: torch.device) -> dict:
    """A batch on `device`: tensors moved (float16 frames widened to float32 there, exactly: they were stored as
    float16), other entries (utterance texts, speakers) kept as they are."""
    moved = {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    return {k: v.float() if isinstance(v, torch.Tensor) and v.dtype == torch.float16 else v for k, v in moved.items()}


__all__ = ["to_device"]
