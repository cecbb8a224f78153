"""Generic early and late fusion of pooled modality vectors (the baselines every multimodal paper compares with).

Small composable modules in the manner of TorchMultimodal's `modules/fusions/`:

- `ModalityPooler`: batch -> {modality: `(B, D_m)` pooled vector}, plus a `(B,)` presence flag per modality. Text ids
  go through a trainable embedding then a masked mean; frame features are mean-pooled over real frames.
- `ConcatFusion`: {modality: vector} -> one concatenated vector (absent modality = zeros), fixed order.
- `WeightedLateFusion`: {modality: logits} -> fused class distribution; `"mean"` averages the per-modality
  probabilities, `"learned"` weights them by a softmax over one trainable score per modality. Only the modalities
  present in a sample take part (their weights are renormalised).
- `EarlyFusionModel` / `LateFusionModel`: the two baselines (`BASELINES["early_fusion"]`, `["late_fusion"]`).

Open points and the readings chosen (each an option): pooling is the mean over time (`pooling="mean"`, or
`"mean_std"` for mean ‖ std); late fusion averages probabilities, not logits (`combine`); the late-fusion loss is the
NLL of the fused distribution, optionally plus each head's own cross-entropy (`modality_loss_weight`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .common import (
    BaselineConfig,
    BaselineOutput,
    TokenEmbedder,
    batch_size_of,
    classification_loss,
    full_mask,
    make_config,
    masked_mean,
    modality_inputs,
    nll_from_log_probs,
    present,
)


@dataclass
class FusionConfig(BaselineConfig):
    """text_embed_dim: size of the trainable word embedding. pooling: "mean" | "mean_std". hidden_size / dropout:
    the MLP(s). combine (late fusion): "mean" | "learned". modality_loss_weight (late): weight of the heads' own CE."""

    text_embed_dim: int = 128
    pooling: str = "mean"
    hidden_size: int = 128
    dropout: float = 0.1
    combine: str = "mean"
    modality_loss_weight: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pooling not in ("mean", "mean_std"):
            raise ValueError(f"FusionConfig.pooling must be 'mean' or 'mean_std', got {self.pooling!r}.")
        if self.combine not in ("mean", "learned"):
            raise ValueError(f"FusionConfig.combine must be 'mean' or 'learned', got {self.combine!r}.")


def _masked_std(feats: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    m = full_mask(feats, mask).to(feats.dtype).unsqueeze(-1)
    mean = (feats * m).sum(1) / m.sum(1).clamp_min(1.0)
    var = (((feats - mean[:, None]) ** 2) * m).sum(1) / m.sum(1).clamp_min(1.0)
    return (var + 1e-6).sqrt()


class ModalityPooler(nn.Module):
    """Batch -> ({modality: `(B, D_m)`}, {modality: `(B,)` bool present}). `dims[m]` is the pooled size."""

    def __init__(self, config: BaselineConfig, text_embed_dim: int = 128, pooling: str = "mean") -> None:
        super().__init__()
        self.modalities = tuple(config.modalities)
        self.pooling = pooling
        factor = 2 if pooling == "mean_std" else 1
        raw = {"text": text_embed_dim, "visual": config.visual_dim, "acoustic": config.acoustic_dim}
        self.dims = {m: raw[m] * factor for m in self.modalities}
        self.text = TokenEmbedder(config.text_vocab_size, text_embed_dim) if "text" in self.modalities else None

    def forward(self, **batch: Any) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        inputs = modality_inputs(batch, self.modalities)
        vectors, flags = {}, {}
        for name, (x, mask) in inputs.items():
            if name == "text":
                if mask is None:
                    mask = torch.ones_like(x)
                x = self.text(x)
            x = x.float()
            pooled = masked_mean(x, mask)
            if self.pooling == "mean_std":
                pooled = torch.cat([pooled, _masked_std(x, mask)], dim=-1)
            vectors[name] = pooled
            flags[name] = present(x, mask)
        return vectors, flags


class ConcatFusion(nn.Module):
    """{modality: `(B, D_m)`} -> `(B, sum D_m)` in `dims` order; a modality missing from the dict is zeros."""

    def __init__(self, dims: dict[str, int]) -> None:
        super().__init__()
        self.dims = dict(dims)
        self.out_dim = sum(self.dims.values())

    def forward(self, vectors: dict[str, torch.Tensor]) -> torch.Tensor:
        ref = next(iter(vectors.values()))
        parts = [vectors[m] if m in vectors else ref.new_zeros(ref.shape[0], d) for m, d in self.dims.items()]
        return torch.cat(parts, dim=-1)


class WeightedLateFusion(nn.Module):
    """{modality: logits `(B, C)`} + presence -> (fused log-probabilities `(B, C)`, weights `(B, M)`).

    fused p = sum_m w_m p_m over present modalities, w renormalised over them; `"mean"`: equal w, `"learned"`:
    w = softmax(trainable scores). A sample with no modality present gets the uniform distribution.
    """

    def __init__(self, modalities: tuple[str, ...], combine: str = "mean") -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self.combine = combine
        self.scores = nn.Parameter(torch.zeros(len(self.modalities))) if combine == "learned" else None

    def forward(self, logits: dict[str, torch.Tensor], flags: dict[str, torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        ref = next(iter(logits.values()))
        names = [m for m in self.modalities if m in logits]
        probs = torch.stack([logits[m].float().softmax(-1) for m in names], dim=1)  # (B, M, C)
        avail = torch.stack([flags[m] for m in names], dim=1).float()  # (B, M)
        if self.scores is not None:
            index = [self.modalities.index(m) for m in names]
            base = self.scores[index].softmax(0)[None].expand_as(avail)
        else:
            base = torch.ones_like(avail)
        weights = base * avail
        weights = weights / weights.sum(1, keepdim=True).clamp_min(1e-12)
        fused = (weights[..., None] * probs).sum(1)
        none = avail.sum(1) == 0
        fused = torch.where(none[:, None], torch.full_like(fused, 1.0 / ref.shape[-1]), fused)
        return fused.clamp_min(1e-12).log(), weights


def _mlp(in_dim: int, hidden: int, out_dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, out_dim))


class EarlyFusionModel(nn.Module):
    """Early fusion: pooled modality vectors -> concatenation -> MLP -> classes."""

    config_class = FusionConfig

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        self.config = config
        self.pooler = ModalityPooler(config, config.text_embed_dim, config.pooling)
        self.fusion = ConcatFusion(self.pooler.dims)
        self.classifier = _mlp(self.fusion.out_dim, config.hidden_size, config.num_classes, config.dropout)

    def forward(self, labels: torch.Tensor | None = None, **batch: Any) -> BaselineOutput:
        vectors, flags = self.pooler(**batch)
        logits = self.classifier(self.fusion(vectors))
        return BaselineOutput(loss=classification_loss(logits, labels), logits=logits)


@dataclass
class LateFusionOutput(BaselineOutput):
    """`logits` are the log fused probabilities; `modality_logits` each head's logits; `weights` `(B, M)`."""

    modality_logits: dict[str, torch.Tensor] | None = None
    weights: torch.Tensor | None = None


class LateFusionModel(nn.Module):
    """Late fusion: one MLP head per modality, fused at the decision level by `WeightedLateFusion`."""

    config_class = FusionConfig

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        self.config = config
        self.pooler = ModalityPooler(config, config.text_embed_dim, config.pooling)
        self.heads = nn.ModuleDict({m: _mlp(d, config.hidden_size, config.num_classes, config.dropout)
                                    for m, d in self.pooler.dims.items()})
        self.fusion = WeightedLateFusion(config.modalities, config.combine)

    def forward(self, labels: torch.Tensor | None = None, **batch: Any) -> LateFusionOutput:
        vectors, flags = self.pooler(**batch)
        batch_size_of({m: (v, None) for m, v in vectors.items()})
        modality_logits = {m: self.heads[m](v) for m, v in vectors.items()}
        log_probs, weights = self.fusion(modality_logits, flags)
        loss = nll_from_log_probs(log_probs, labels)
        if loss is not None and self.config.modality_loss_weight > 0:
            own = [nn.functional.cross_entropy(lg[flags[m]], labels[flags[m]].long())
                   for m, lg in modality_logits.items() if flags[m].any()]
            loss = loss + self.config.modality_loss_weight * torch.stack(own).mean()
        return LateFusionOutput(loss=loss, logits=log_probs, modality_logits=modality_logits, weights=weights)


def build_early_fusion(config: FusionConfig | dict | None = None, **overrides: Any) -> EarlyFusionModel:
    """`EarlyFusionModel` from a `FusionConfig`, a mapping or None (defaults), with keyword overrides."""
    return EarlyFusionModel(make_config(FusionConfig, config, **overrides))


def build_late_fusion(config: FusionConfig | dict | None = None, **overrides: Any) -> LateFusionModel:
    """`LateFusionModel` from a `FusionConfig`, a mapping or None (defaults), with keyword overrides."""
    return LateFusionModel(make_config(FusionConfig, config, **overrides))
