"""ResNet34 on log-mel spectrograms with statistics pooling, SpecAugment and speaker-ID -> emotion transfer.

The system compared in the seed: a ResNet34 (BasicBlocks [3, 4, 6, 3], widths c, 2c, 4c, 8c, strides 1, 2, 2, 2) over
the log-mel "image" `(1, mels, frames)`; statistics pooling concatenates the mean and the standard deviation over time
of the last feature map (channels × reduced mel bins), so any length gives one fixed-size vector; an embedding layer
and a linear head follow. SpecAugment (Park et al. 2019) masks random frequency bands and time spans on the fly, in
training mode only. Transfer: train on speaker identification (`pretrain_speakers`), replace the head
(`replace_head`), retrain on emotion (`train_speaker_then_emotion`). In the downstream runner, stage 1 is
`ResNetLogMelModel.prepare(train_batches)` (on when `speaker_pretraining_epochs` > 0: a speaker-ID head over the
speakers of the fold's training rows only, then a fresh emotion head) and stage 2 is the runner's own training loop.

Open points and the readings chosen (options in `ResNetLogMelConfig`):
- width: 32 base channels (`base_channels`; the "half-width" ResNet34 of speaker verification; 64 is the ImageNet
  width); embedding 256 with BatchNorm + ReLU (`embedding_dim`).
- std is the population standard deviation over the real frames (`sqrt(max(var, 1e-8))`); padded frames (by
  `acoustic_mask`) are left out, their positions following the 8× time reduction of the network.
- SpecAugment: 2 frequency masks of width 0..`freq_mask_width` (default 8 bins) and 2 time masks of width
  0..`time_mask_width` (default 20 frames), drawn per sample, inside the real frames, filled with `mask_value` (0, the
  mean of per-utterance normalised log-mels); no time warping.
- "High resolution" log-mels: the frequency axis is the corpus' acoustic feature (`acoustic_dim` mel bins) and the
  time axis its frames; build the corpus with `LogMelExtractor(pool=1)` for 10 ms frames.
- Transfer: the whole network is retrained for emotion (`freeze_body=False`); the speaker head is discarded. In
  `prepare`, speaker ids are the sorted distinct `speakers` strings of the batches; the utterances are reshuffled
  and re-batched at every epoch (the runner's training rows come grouped by speaker), utterances without frames are
  skipped, and a last batch of one utterance is dropped (the embedding's BatchNorm needs two).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from .common import BaselineConfig, BaselineOutput, classification_loss, make_config


class BasicBlock(nn.Module):
    """ResNet basic block: conv3x3-BN-ReLU-conv3x3-BN + shortcut (1x1 conv + BN when the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNetTrunk(nn.Module):
    """`(B, 1, F, T)` -> `(B, 8c, ceil(F/8), ceil(T/8))`: stem conv3x3 (stride 1) then four stages of BasicBlocks."""

    def __init__(self, layers: tuple[int, ...] = (3, 4, 6, 3), base_channels: int = 32) -> None:
        super().__init__()
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"ResNet layers must be 4 positive block counts, got {layers}.")
        self.stem = nn.Sequential(nn.Conv2d(1, base_channels, 3, 1, 1, bias=False), nn.BatchNorm2d(base_channels),
                                  nn.ReLU())
        stages, channels = [], base_channels
        for index, (blocks, stride) in enumerate(zip(layers, (1, 2, 2, 2))):
            out = base_channels * 2 ** index
            stage = [BasicBlock(channels, out, stride)] + [BasicBlock(out, out) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*stage))
            channels = out
        self.stages = nn.Sequential(*stages)
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    @staticmethod
    def reduced(size: int | torch.Tensor) -> int | torch.Tensor:
        """Size after the three stride-2 stages: ceil(size / 8) (each conv3x3, stride 2, pad 1 gives ceil(n/2))."""
        for _ in range(3):
            size = (size + 1) // 2
        return size


class StatisticsPooling(nn.Module):
    """`(B, D, T)` (+ `(B, T)` mask) -> `(B, 2D)` = mean ‖ std over the real time steps (population std)."""

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"StatisticsPooling takes (batch, dim, time), got {tuple(x.shape)}.")
        if mask is None:
            mean = x.mean(-1)
            var = x.var(-1, unbiased=False)
        else:
            m = mask.to(x.dtype)[:, None, :]
            count = m.sum(-1).clamp_min(1.0)
            mean = (x * m).sum(-1) / count
            var = (((x - mean[..., None]) ** 2) * m).sum(-1) / count
        return torch.cat([mean, var.clamp_min(self.eps).sqrt()], dim=-1)


class SpecAugment(nn.Module):
    """Frequency and time masking of `(B, F, T)` spectrograms, in training mode only (identity in eval mode).

    Per sample: `freq_masks` bands of width w ~ U{0..freq_mask_width} starting at f0 ~ U{0..F-w}, and `time_masks`
    spans of width w ~ U{0..min(time_mask_width, len)} starting at t0 ~ U{0..len-w} inside the sample's real frames
    (`lengths`), set to `mask_value`."""

    def __init__(self, freq_masks: int = 2, freq_mask_width: int = 8, time_masks: int = 2, time_mask_width: int = 20,
                 mask_value: float = 0.0) -> None:
        super().__init__()
        if min(freq_masks, freq_mask_width, time_masks, time_mask_width) < 0:
            raise ValueError("SpecAugment counts and widths must be >= 0.")
        self.freq_masks, self.freq_mask_width = freq_masks, freq_mask_width
        self.time_masks, self.time_mask_width = time_masks, time_mask_width
        self.mask_value = mask_value

    def sample_mask(self, batch: int, freq: int, time: int, lengths: torch.Tensor | None = None,
                    generator: torch.Generator | None = None, device: torch.device | None = None) -> torch.Tensor:
        """`(B, F, T)` bool, True where SpecAugment masks."""
        lengths = torch.full((batch,), time, dtype=torch.long) if lengths is None else lengths.long().cpu()
        mask = torch.zeros(batch, freq, time, dtype=torch.bool)
        f_idx, t_idx = torch.arange(freq), torch.arange(time)

        def draw(high: torch.Tensor) -> torch.Tensor:  # integers uniform in 0..high (inclusive), per sample
            return (torch.rand(batch, generator=generator) * (high + 1).float()).floor().long().clamp(max=high)

        for _ in range(self.freq_masks):
            width = draw(torch.full((batch,), min(self.freq_mask_width, freq)))
            start = draw(freq - width)
            mask |= ((f_idx[None] >= start[:, None]) & (f_idx[None] < (start + width)[:, None]))[:, :, None]
        for _ in range(self.time_masks):
            width = draw(torch.clamp(lengths, max=self.time_mask_width))
            start = draw(lengths - width)
            mask |= ((t_idx[None] >= start[:, None]) & (t_idx[None] < (start + width)[:, None]))[:, None, :]
        return mask.to(device) if device is not None else mask

    def forward(self, spec: torch.Tensor, lengths: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        if not self.training:
            return spec
        if spec.dim() != 3:
            raise ValueError(f"SpecAugment takes (batch, freq, time), got {tuple(spec.shape)}.")
        mask = self.sample_mask(*spec.shape, lengths=lengths, generator=generator, device=spec.device)
        return spec.masked_fill(mask, self.mask_value)


@dataclass
class ResNetLogMelConfig(BaselineConfig):
    """acoustic_dim = mel bins. layers ([3,4,6,3] = ResNet34), base_channels (32), embedding_dim (256), dropout,
    SpecAugment: spec_augment (on/off), freq_masks, freq_mask_width, time_masks, time_mask_width, mask_value.
    Speaker-ID transfer in `prepare`: speaker_pretraining_epochs (0 = off) at speaker_pretraining_lr (AdamW)."""

    modalities: tuple[str, ...] = ("acoustic",)
    acoustic_dim: int = 80
    layers: tuple[int, ...] = (3, 4, 6, 3)
    base_channels: int = 32
    embedding_dim: int = 256
    dropout: float = 0.0
    spec_augment: bool = True
    freq_masks: int = 2
    freq_mask_width: int = 8
    time_masks: int = 2
    time_mask_width: int = 20
    mask_value: float = 0.0
    speaker_pretraining_epochs: int = 0
    speaker_pretraining_lr: float = 1e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.modalities != ("acoustic",):
            raise ValueError("ResNetLogMelConfig.modalities must be ('acoustic',): the model reads log-mels only.")
        if self.speaker_pretraining_epochs < 0 or not self.speaker_pretraining_lr > 0:
            raise ValueError(f"ResNetLogMelConfig: speaker_pretraining_epochs must be >= 0 and speaker_pretraining_lr "
                             f"> 0, got {self.speaker_pretraining_epochs} and {self.speaker_pretraining_lr}.")
        self.layers = tuple(self.layers)


@dataclass
class ResNetLogMelOutput(BaselineOutput):
    """`embedding` `(B, embedding_dim)`: the utterance embedding before the head."""

    embedding: torch.Tensor | None = None


class ResNetLogMelModel(nn.Module):
    """ResNet34 + statistics pooling + embedding + head on `acoustic_feats` `(B, T, mels)`
    (`BASELINES["resnet_logmel"]`)."""

    config_class = ResNetLogMelConfig

    def __init__(self, config: ResNetLogMelConfig) -> None:
        super().__init__()
        self.config = config
        self.spec_augment = SpecAugment(config.freq_masks, config.freq_mask_width, config.time_masks,
                                        config.time_mask_width, config.mask_value) if config.spec_augment else None
        self.trunk = ResNetTrunk(config.layers, config.base_channels)
        pooled_dim = self.trunk.out_channels * ResNetTrunk.reduced(config.acoustic_dim)
        self.pooling = StatisticsPooling()
        self.embedding = nn.Sequential(nn.Linear(2 * pooled_dim, config.embedding_dim),
                                       nn.BatchNorm1d(config.embedding_dim), nn.ReLU(), nn.Dropout(config.dropout))
        self.head = nn.Linear(config.embedding_dim, config.num_classes)

    def replace_head(self, num_classes: int) -> nn.Linear:
        """A fresh linear head with `num_classes` outputs (the transfer step); returns it."""
        if num_classes < 2:
            raise ValueError(f"replace_head needs num_classes >= 2, got {num_classes}.")
        device = self.head.weight.device
        self.head = nn.Linear(self.config.embedding_dim, num_classes).to(device)
        return self.head

    @property
    def prepare_needs_speakers(self) -> bool:
        """Whether `prepare` runs the speaker-ID stage, so that its batches must carry `speakers`."""
        return self.config.speaker_pretraining_epochs > 0

    def prepare(self, train_batches: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """Stage 1 of the transfer, called once with the training batches (the downstream runner's hook): with
        `speaker_pretraining_epochs` > 0, `pretrain_speakers` over the speakers of these batches (each batch carries
        `speakers`, one string per utterance, mapped to ids in sorted order), then a fresh emotion head
        (`replace_head(num_classes)`). Returns a summary (speakers, per-epoch losses); with 0 epochs it does
        nothing."""
        epochs = self.config.speaker_pretraining_epochs
        if epochs == 0:
            return {"speaker_pretraining_epochs": 0}
        utterances, names, batch_size = [], [], 2
        for batch in train_batches:
            if batch.get("speakers") is None:
                raise ValueError("ResNetLogMelModel.prepare with speaker_pretraining_epochs > 0 needs 'speakers' in "
                                 "each batch (one speaker string per utterance).")
            feats, mask = batch["acoustic_feats"], batch.get("acoustic_mask")
            if len(batch["speakers"]) != len(feats):
                raise ValueError(f"A batch has {len(feats)} utterances but {len(batch['speakers'])} speakers.")
            lengths = [feats.shape[1]] * len(feats) if mask is None else mask.sum(1).tolist()
            batch_size = max(batch_size, len(feats))
            for x, length, name in zip(feats, lengths, batch["speakers"]):
                if length > 0:  # an utterance without frames says nothing about its speaker
                    utterances.append(x[:int(length)])
                    names.append(str(name))
        speakers = sorted(set(names))
        if len(speakers) < 2 or len(utterances) < 2:
            raise ValueError(f"Speaker pretraining needs utterances of at least 2 speakers; got {len(utterances)} "
                             f"utterance(s) of {len(speakers)}.")
        index = {name: i for i, name in enumerate(speakers)}
        batches = ReshuffledBatches(utterances, [index[n] for n in names], batch_size)
        losses = pretrain_speakers(self, batches, len(speakers), epochs, self.config.speaker_pretraining_lr)
        self.replace_head(self.config.num_classes)
        return {"speaker_pretraining_epochs": epochs, "learning_rate": self.config.speaker_pretraining_lr,
                "num_speakers": len(speakers), "speakers": speakers, "utterances": len(utterances),
                "speaker_losses": losses}

    def forward(self, acoustic_feats: torch.Tensor | None = None, acoustic_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **unused: Any) -> ResNetLogMelOutput:
        if acoustic_feats is None:
            raise ValueError("ResNetLogMelModel needs acoustic_feats (batch, frames, mels).")
        if acoustic_feats.dim() != 3 or acoustic_feats.shape[-1] != self.config.acoustic_dim:
            raise ValueError(f"acoustic_feats must be (batch, frames, {self.config.acoustic_dim}) log-mels, got "
                             f"{tuple(acoustic_feats.shape)}; set acoustic_dim to the mel bins.")
        spec = acoustic_feats.float().transpose(1, 2)  # (B, F, T)
        lengths = acoustic_mask.sum(1).long() if acoustic_mask is not None else None
        if lengths is not None:
            spec = spec * acoustic_mask.to(spec.dtype)[:, None, :]
        if self.spec_augment is not None:
            spec = self.spec_augment(spec, lengths)
        maps = self.trunk(spec[:, None])  # (B, C, F', T')
        batch, channels, freq, time = maps.shape
        mask = None
        if lengths is not None:
            reduced = ResNetTrunk.reduced(lengths).clamp_min(1)
            mask = torch.arange(time, device=maps.device)[None] < reduced.to(maps.device)[:, None]
        pooled = self.pooling(maps.reshape(batch, channels * freq, time), mask)
        embedding = self.embedding(pooled)
        logits = self.head(embedding)
        return ResNetLogMelOutput(loss=classification_loss(logits, labels), logits=logits, embedding=embedding)


# ----------------------------------------------------------------------------------------------------------------------
# Transfer: speaker ID -> emotion
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class TransferResult:
    """Mean training loss per epoch of each stage."""

    speaker_losses: list[float] = field(default_factory=list)
    emotion_losses: list[float] = field(default_factory=list)


class ReshuffledBatches:
    """Re-iterable batches of variable-length log-mels `(frames, mels)` and their labels: every pass draws a new order
    (from the global torch RNG) and pads each batch (`acoustic_mask`); a last batch of one utterance is dropped."""

    def __init__(self, feats: list[torch.Tensor], labels: list[int], batch_size: int) -> None:
        if len(feats) != len(labels) or batch_size < 2:
            raise ValueError("ReshuffledBatches needs one label per utterance and a batch size >= 2.")
        self.feats, self.labels, self.batch_size = feats, labels, batch_size

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        order = torch.randperm(len(self.feats)).tolist()
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            if len(chunk) < 2:
                continue
            feats = [self.feats[i] for i in chunk]
            yield {"acoustic_feats": pad_sequence(feats, batch_first=True),
                   "acoustic_mask": pad_sequence([torch.ones(len(x), dtype=torch.long) for x in feats],
                                                 batch_first=True),
                   "labels": torch.tensor([self.labels[i] for i in chunk], dtype=torch.long)}


def _train_stage(model: nn.Module, batches: Iterable[Mapping[str, torch.Tensor]], epochs: int, lr: float,
                 weight_decay: float, params: Iterable[nn.Parameter], device: torch.device) -> list[float]:
    optimizer = torch.optim.AdamW(list(params), lr=lr, weight_decay=weight_decay)
    losses = []
    model.train()
    for _ in range(epochs):
        total, count = 0.0, 0
        for batch in batches:
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            if batch.get("labels") is None:
                raise ValueError("Each training batch needs 'labels' (speaker ids in stage 1, emotions in stage 2).")
            loss = model(**batch).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, count = total + loss.item(), count + 1
        if count == 0:
            raise ValueError("A training stage got no batches.")
        losses.append(total / count)
    return losses


def pretrain_speakers(model: ResNetLogMelModel, speaker_batches: Iterable[Mapping[str, torch.Tensor]],
                      num_speakers: int, epochs: int, lr: float, weight_decay: float = 0.0) -> list[float]:
    """Stage 1 of the transfer: `replace_head(num_speakers)`, then the whole network trained on speaker ids (the
    batches' `labels`); returns the mean loss per epoch. The model keeps the speaker head, in train mode."""
    device = next(model.parameters()).device
    model.replace_head(num_speakers)
    return _train_stage(model, speaker_batches, epochs, lr, weight_decay, model.parameters(), device)


def train_speaker_then_emotion(model: ResNetLogMelModel, speaker_batches: Iterable[Mapping[str, torch.Tensor]],
                               num_speakers: int, emotion_batches: Iterable[Mapping[str, torch.Tensor]],
                               num_emotions: int, speaker_epochs: int = 10, emotion_epochs: int = 10,
                               lr: float = 1e-3, emotion_lr: float | None = None, weight_decay: float = 0.0,
                               freeze_body: bool = False,
                               on_stage_end: Callable[[str, ResNetLogMelModel], None] | None = None) -> TransferResult:
    """Stage 1: `pretrain_speakers`. Stage 2: `replace_head(num_emotions)` and train on emotions (the body too unless
    `freeze_body`). Batches are re-iterable (lists or DataLoaders) of dicts with `acoustic_feats`, optional
    `acoustic_mask` and `labels`. The model ends with the emotion head, in train mode."""
    device = next(model.parameters()).device
    result = TransferResult()
    result.speaker_losses = pretrain_speakers(model, speaker_batches, num_speakers, speaker_epochs, lr, weight_decay)
    if on_stage_end is not None:
        on_stage_end("speaker", model)
    model.replace_head(num_emotions)
    params = model.head.parameters() if freeze_body else model.parameters()
    if freeze_body:
        for name, module in model.named_children():
            if name != "head":
                module.requires_grad_(False)
    result.emotion_losses = _train_stage(model, emotion_batches, emotion_epochs, emotion_lr or lr, weight_decay,
                                         params, device)
    if on_stage_end is not None:
        on_stage_end("emotion", model)
    return result


def build_resnet_logmel(config: ResNetLogMelConfig | dict | None = None, **overrides: Any) -> ResNetLogMelModel:
    """`ResNetLogMelModel` from a `ResNetLogMelConfig`, a mapping or None (defaults), with keyword overrides."""
    return ResNetLogMelModel(make_config(ResNetLogMelConfig, config, **overrides))
