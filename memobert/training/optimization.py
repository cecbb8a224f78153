"""The optimizer of both loops (pretraining and downstream)."""

from __future__ import annotations

import torch

from .arguments import OptimizerArguments


def build_optimizer(
    model: torch.nn.Module, args: OptimizerArguments, learning_rate: float, device: torch.device
) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices only (never biases, LayerNorm, embeddings' mask vectors), fused."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "LayerNorm" in name or "norm" in name else decay).append(param)
    groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # One fused kernel per parameter (CUDA and CPU): 6x faster than the per-tensor loop on the CPU, no temporaries.
    fused = device.type in ("cuda", "cpu") and all(p.dtype.is_floating_point for p in decay + no_decay)
    return torch.optim.AdamW(
        groups, lr=learning_rate, betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon, fused=fused
    )


__all__ = ["build_optimizer"]
