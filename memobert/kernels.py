"""CPU kernels of the MEmoBERT model: dropout from 16-bit keep masks, and attention through SDPA.

Neither has parameters, so checkpoints do not depend on them; `config.dropout_implementation="torch"` switches the
dropout back to torch's everywhere. Part of the model layer: imports nothing of memobert.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["cpu_keep_mask", "dropout", "MEmoBertDropout", "attention"]


def cpu_keep_mask(shape: torch.Size | tuple[int, ...], p: float) -> torch.Tensor:
    """
    A Bernoulli(1 - p) keep mask drawn on the CPU from 16-bit uniforms, four per 64-bit draw of torch's default
    generator: about 3x cheaper than `bernoulli_`, which spends one generator call per element (the dropout masks were
    14 % of a CPU training step). `p` is rounded to a multiple of 2^-16.
    """
    count = math.prod(shape)
    words = torch.empty((count + 3) // 4, dtype=torch.int64).random_(-(2**63), None)
    uniforms = words.view(torch.int16)[:count]  # uniform over [-32768, 32767]
    return (uniforms >= round(p * 65536) - 32768).view(shape)


class _ScaleByKeepMask(torch.autograd.Function):
    """x * keep * scale, saving only the boolean mask for the backward (as torch's own dropout does)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return torch.ops.aten.native_dropout_backward(x, keep, scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return torch.ops.aten.native_dropout_backward(grad, keep, ctx.scale), None, None


def _use_fast_dropout(x: torch.Tensor, implementation: str) -> bool:
    return implementation == "auto" and x.device.type == "cpu" and not torch.compiler.is_compiling()


def dropout(x: torch.Tensor, p: float, training: bool, implementation: str = "auto") -> torch.Tensor:
    """
    Inverted dropout. `implementation="auto"`: on the CPU in eager mode the mask comes from `cpu_keep_mask`; on
    accelerators and under `torch.compile` (which fuse their own random numbers) and with `"torch"`,
    `torch.nn.functional.dropout`. Both keep each element with probability 1 - p and scale kept ones by 1 / (1 - p).
    """
    if not training or p == 0.0:
        return x
    if p >= 1.0 or not _use_fast_dropout(x, implementation):
        return F.dropout(x, p, training=True)
    return _ScaleByKeepMask.apply(x, cpu_keep_mask(x.shape, p), 1.0 / (1.0 - p))


class MEmoBertDropout(nn.Module):
    """`nn.Dropout` through `dropout` (no parameters, so checkpoints are unchanged)."""

    def __init__(self, p: float, implementation: str = "auto"):
        super().__init__()
        self.p, self.implementation = p, implementation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training, self.implementation)

    def extra_repr(self) -> str:
        return f"p={self.p}, implementation={self.implementation}"


def attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_bias: torch.Tensor | None,
    dropout_p: float = 0.0,
    implementation: str = "auto",
) -> torch.Tensor:
    """
    softmax(q k^T / sqrt(d) + bias) v with dropout on the probabilities. torch's `scaled_dot_product_attention`
    (flash/memory-efficient kernels) whenever it can run fused: always without dropout, and with dropout on
    accelerators. With dropout on the CPU torch falls back to its unfused math path anyway; there the same math runs
    with `cpu_keep_mask` for the dropout.
    """
    if dropout_p == 0.0 or not _use_fast_dropout(query, implementation):
        return F.scaled_dot_product_attention(query, key, value, attn_mask=attention_bias, dropout_p=dropout_p)
    scores = torch.matmul(query, key.transpose(-1, -2)).mul_(1.0 / math.sqrt(query.shape[-1]))
    if attention_bias is not None:
        scores = scores.add_(attention_bias)
    return torch.matmul(dropout(scores.softmax(dim=-1), dropout_p, True, implementation), value)
