"""UniMSE-style multimodal emotion recognition with T5 (Hu et al., "UniMSE: Towards Unified Multimodal Sentiment
Analysis and Emotion Recognition", EMNLP 2022).

- A T5 encoder-decoder (transformers `T5ForConditionalGeneration`; `t5-base` by default, any T5Config for tests).
- Acoustic and visual features are fused into the text encoder's layers by small adapters (UniMSE's pre-trained
  modality fusion, PMF): after each chosen encoder block, h <- h + g ⊙ Up(ReLU(Down([h ‖ a ‖ v]))) with the gate
  g = σ(W [h ‖ a ‖ v]); a and v are the acoustic and visual features projected to the model width (LayerNorm), either
  mean-pooled and broadcast to every token (`adapter_mode="pooled"`) or read per token by cross-attention over the
  frames (`"attention"`). Up is initialised to zero, so the adapted model starts as the plain T5.
- Inter-modality contrastive learning: InfoNCE (symmetric, temperature τ) between the pooled text encoding and the
  pooled acoustic features, and between text and visual, after small projection heads; the other samples of the batch
  are the negatives.
- Labels generated as words: the decoder is trained to produce the class's label word (+ EOS) with the usual token
  cross-entropy; classification scores every class's label word sequence by its log-likelihood under the decoder
  (teacher forcing, one pass per class) and takes the argmax: never free generation, so the output is always a class.

Open points and the readings chosen (options in `UniMSEConfig`):
- Which layers get adapters: the last 3 encoder blocks (`fusion_layers=None`; give indices to choose), as PMF sits in
  the top layers; bottleneck 64 (`adapter_bottleneck`).
- UniMSE's contrastive terms are text-acoustic and text-visual; weight 0.1 (`contrastive_weight`), τ = 0.07,
  projection 128. A sample lacking a modality leaves that pair.
- Score = summed token log-likelihood (`length_normalize=False`; True divides by the label's token count).
- UniMSE's universal labels (sentiment + emotion in one target) are not built: the target is the emotion word only.
- Text: T5 reads its own word pieces. With `text_source="texts"` (default) the batch carries `texts` (list of str),
  tokenised by the T5 tokenizer; `"input_ids"` takes ids already in the T5 vocabulary (the MEmoBERT processor's ids
  are BERT word pieces, so they are not used by default).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..data.labels import DEFAULT_LABEL_WORDS
from .common import BaselineConfig, BaselineOutput, full_mask, make_config, masked_mean, present


@dataclass
class UniMSEConfig(BaselineConfig):
    """t5_name_or_path ("t5-base") or t5_config (a T5Config dict: built from scratch, no download);
    tokenizer_name_or_path (None: the T5's); label_words / label_token_ids (ids override the tokenizer);
    text_source ("texts"|"input_ids"); fusion_layers; adapter_bottleneck; adapter_mode ("pooled"|"attention");
    adapter_heads; contrastive_weight; temperature; projection_dim; length_normalize; max_text_length; freeze_t5."""

    t5_name_or_path: str = "t5-base"
    t5_config: dict[str, Any] | None = None
    tokenizer_name_or_path: str | None = None
    label_words: tuple[str, ...] = DEFAULT_LABEL_WORDS
    label_token_ids: tuple[tuple[int, ...], ...] | None = None
    text_source: str = "texts"
    fusion_layers: tuple[int, ...] | None = None
    adapter_bottleneck: int = 64
    adapter_mode: str = "pooled"
    adapter_heads: int = 4
    contrastive_weight: float = 0.1
    temperature: float = 0.07
    projection_dim: int = 128
    length_normalize: bool = False
    max_text_length: int = 128
    freeze_t5: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if "text" not in self.modalities:
            raise ValueError("UniMSE needs the text modality: T5 encodes the text.")
        if len(self.label_words) != self.num_classes:
            raise ValueError(f"UniMSEConfig: {len(self.label_words)} label_words for num_classes={self.num_classes}.")
        if self.label_token_ids is not None:
            self.label_token_ids = tuple(tuple(int(i) for i in ids) for ids in self.label_token_ids)
            if len(self.label_token_ids) != self.num_classes or not all(self.label_token_ids):
                raise ValueError("UniMSEConfig.label_token_ids needs one non-empty id list per class.")
        if self.text_source not in ("texts", "input_ids"):
            raise ValueError(f"UniMSEConfig.text_source must be 'texts' or 'input_ids', got {self.text_source!r}.")
        if self.adapter_mode not in ("pooled", "attention"):
            raise ValueError(f"UniMSEConfig.adapter_mode must be 'pooled' or 'attention', got {self.adapter_mode!r}.")
        self.label_words = tuple(self.label_words)
        if self.fusion_layers is not None:
            self.fusion_layers = tuple(int(i) for i in self.fusion_layers)


class ModalityAdapter(nn.Module):
    """Gated bottleneck adapter: h `(B, L, d)` + modality contexts `(B, L, d)` each -> h + g ⊙ Up(ReLU(Down(x))),
    x = [h ‖ contexts], g = σ(W x). Up starts at zero (identity adapter)."""

    def __init__(self, d_model: int, num_contexts: int, bottleneck: int = 64) -> None:
        super().__init__()
        width = d_model * (1 + num_contexts)
        self.down = nn.Linear(width, bottleneck)
        self.up = nn.Linear(bottleneck, d_model)
        self.gate = nn.Linear(width, d_model)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, hidden: torch.Tensor, contexts: Sequence[torch.Tensor]) -> torch.Tensor:
        x = torch.cat([hidden, *[c.to(hidden.dtype) for c in contexts]], dim=-1)
        return hidden + torch.sigmoid(self.gate(x)) * self.up(torch.relu(self.down(x)))


class FrameCrossAttention(nn.Module):
    """Tokens `(B, L, d)` attend over frames `(B, T, d)` (key padding from the frame mask); zeros for no frame."""

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        heads = heads if d_model % heads == 0 else 1
        self.attention = nn.MultiheadAttention(d_model, heads, batch_first=True)

    def forward(self, hidden: torch.Tensor, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        has = mask.bool().any(1)
        safe = mask.bool().clone()
        safe[~has, 0] = True  # avoid an all-masked row (NaN); its output is zeroed below
        out, _ = self.attention(hidden, frames.to(hidden.dtype), frames.to(hidden.dtype), key_padding_mask=~safe,
                                need_weights=False)
        return out * has.to(out.dtype)[:, None, None]


class FusionSlot(nn.Module):
    """The fusion step after one encoder block: reads the A/V context set for the current forward pass (pooled and
    broadcast, or cross-attended) and applies the gated adapter to the block's hidden states (a forward hook)."""

    def __init__(self, d_model: int, modalities: tuple[str, ...], bottleneck: int, mode: str, heads: int) -> None:
        super().__init__()
        self.modalities, self.mode = tuple(modalities), mode
        self.adapter = ModalityAdapter(d_model, len(self.modalities), bottleneck)
        self.cross = nn.ModuleDict({m: FrameCrossAttention(d_model, heads) for m in self.modalities}) \
            if mode == "attention" else None
        self.context: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None

    def fuse(self, hidden: torch.Tensor, context: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        contexts = []
        for m in self.modalities:
            frames, mask = context[m]
            if self.cross is not None:
                contexts.append(self.cross[m](hidden, frames, mask))
            else:
                contexts.append(masked_mean(frames, mask)[:, None].expand(-1, hidden.shape[1], -1))
        return self.adapter(hidden, contexts)

    def hook(self, module: nn.Module, args: Any, output: Any) -> Any:
        if self.context is None:  # the encoder run outside UniMSEModel.forward: plain T5
            return output
        if isinstance(output, tuple):
            return (self.fuse(output[0], self.context), *output[1:])
        return self.fuse(output, self.context)


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """Symmetric InfoNCE between paired rows of `a` and `b` `(N, p)` (cosine similarities / τ; positives on the
    diagonal)."""
    a, b = nn.functional.normalize(a.float(), dim=-1), nn.functional.normalize(b.float(), dim=-1)
    logits = a @ b.T / temperature
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (nn.functional.cross_entropy(logits, target) + nn.functional.cross_entropy(logits.T, target))


@dataclass
class UniMSEOutput(BaselineOutput):
    """`logits` `(B, C)`: each label word's sequence log-likelihood; `lm_loss` (label-word generation) and
    `contrastive_loss` (the weighted InfoNCE terms)."""

    lm_loss: torch.Tensor | None = None
    contrastive_loss: torch.Tensor | None = None


class UniMSEModel(nn.Module):
    """T5 + A/V adapters + contrastive loss + label-word scoring (`BASELINES["unimse"]`)."""

    config_class = UniMSEConfig

    def __init__(self, config: UniMSEConfig, t5: nn.Module | None = None, tokenizer: Any = None) -> None:
        super().__init__()
        from transformers import T5Config, T5ForConditionalGeneration

        self.config = config
        if t5 is None:
            if config.t5_config is not None:
                t5 = T5ForConditionalGeneration(T5Config(**config.t5_config))
            else:
                try:
                    t5 = T5ForConditionalGeneration.from_pretrained(config.t5_name_or_path)
                except OSError as error:
                    raise OSError(f"Could not load T5 '{config.t5_name_or_path}' ({error}); pass a local folder, allow "
                                  "hub downloads, or give t5_config to build one from scratch.") from error
        self.t5 = t5
        if config.freeze_t5:
            self.t5.requires_grad_(False)
        self._tokenizer = tokenizer
        d = self.t5.config.d_model
        self.av = tuple(m for m in ("acoustic", "visual") if m in config.modalities)
        dims = {"acoustic": config.acoustic_dim, "visual": config.visual_dim}
        self.projections = nn.ModuleDict({m: nn.Sequential(nn.Linear(dims[m], d), nn.LayerNorm(d)) for m in self.av})
        blocks = self.t5.encoder.block
        layers = config.fusion_layers if config.fusion_layers is not None else \
            tuple(range(max(0, len(blocks) - 3), len(blocks)))
        bad = [i for i in layers if not -len(blocks) <= i < len(blocks)]
        if bad:
            raise ValueError(f"UniMSEConfig.fusion_layers {bad} outside the encoder's {len(blocks)} blocks.")
        self.fusion_layers = tuple(sorted({i % len(blocks) for i in layers}))
        self.slots = nn.ModuleDict()
        if self.av:
            for i in self.fusion_layers:
                slot = FusionSlot(d, self.av, config.adapter_bottleneck, config.adapter_mode, config.adapter_heads)
                self.slots[str(i)] = slot
                # A bound method of a submodule: copy.deepcopy(model) rebinds it to the copy's slot.
                blocks[i].register_forward_hook(slot.hook)
        self.text_head = nn.Linear(d, config.projection_dim)
        self.av_heads = nn.ModuleDict({m: nn.Linear(d, config.projection_dim) for m in self.av})
        self.register_buffer("label_ids", self._label_ids(), persistent=False)

    # -- text and labels ------------------------------------------------------------------------------------------

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            name = self.config.tokenizer_name_or_path or self.config.t5_name_or_path
            try:
                self._tokenizer = AutoTokenizer.from_pretrained(name)
            except OSError as error:
                raise OSError(f"Could not load the tokenizer '{name}' ({error}); set tokenizer_name_or_path, or give "
                              "label_token_ids and text_source='input_ids'.") from error
        return self._tokenizer

    def _label_ids(self) -> torch.Tensor:
        """`(C, Lw)` label-word token ids ending with EOS, right-padded with -100."""
        rows = self.config.label_token_ids
        if rows is None:
            tok = self.tokenizer
            eos = tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id
            rows = []
            for word in self.config.label_words:
                ids = tok(word, add_special_tokens=False)["input_ids"]
                if not ids:
                    raise ValueError(f"The tokenizer gives no token for the label word {word!r}.")
                rows.append(list(ids) + ([eos] if eos is not None else []))
        if len({tuple(r) for r in rows}) != len(rows):
            raise ValueError(f"Two classes share a label-word sequence {rows}; choose distinct label_words.")
        vocab = self.t5.config.vocab_size
        if max(max(r) for r in rows) >= vocab:
            raise ValueError(f"label token ids exceed the T5 vocabulary ({vocab}).")
        out = torch.full((len(rows), max(len(r) for r in rows)), -100, dtype=torch.long)
        for c, r in enumerate(rows):
            out[c, : len(r)] = torch.tensor(r)
        return out

    def tokenize(self, texts: Sequence[str | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """T5 `input_ids`, `attention_mask` for a list of strings (None -> "")."""
        enc = self.tokenizer([t or "" for t in texts], padding=True, truncation=True,
                             max_length=self.config.max_text_length, return_tensors="pt")
        device = self.label_ids.device
        return enc["input_ids"].to(device), enc["attention_mask"].to(device)

    # -- forward ---------------------------------------------------------------------------------------------------

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                texts: Sequence[str] | None = None, visual_feats: torch.Tensor | None = None,
                visual_mask: torch.Tensor | None = None, acoustic_feats: torch.Tensor | None = None,
                acoustic_mask: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                **unused: Any) -> UniMSEOutput:
        if self.config.text_source == "texts":
            if texts is None:
                raise ValueError("UniMSE (text_source='texts') needs the batch key 'texts' (list of str); the corpus' "
                                 "input_ids are BERT word pieces. Set text_source='input_ids' for T5 ids.")
            input_ids, attention_mask = self.tokenize(texts)
        elif input_ids is None:
            raise ValueError("UniMSE (text_source='input_ids') needs input_ids in the T5 vocabulary.")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        batch = input_ids.shape[0]
        raw = {"acoustic": (acoustic_feats, acoustic_mask), "visual": (visual_feats, visual_mask)}
        context = {}
        for m in self.av:
            feats, mask = raw[m]
            if feats is None:  # modality absent from the whole batch: one empty frame per sample
                feats = input_ids.new_zeros(batch, 1, self.projections[m][0].in_features, dtype=torch.float32)
                mask = input_ids.new_zeros(batch, 1)
            mask = full_mask(feats, mask)
            context[m] = (self.projections[m](feats.float()) * mask[..., None], mask)
        for slot in self.slots.values():
            slot.context = context
        try:
            encoder = self.t5.encoder(input_ids=input_ids, attention_mask=attention_mask)
        finally:
            for slot in self.slots.values():
                slot.context = None
        hidden = encoder.last_hidden_state  # (B, L, d)

        # Label-word scores: one decoder pass per class over the repeated encoder states.
        classes, width = self.label_ids.shape
        rep_hidden = hidden.repeat_interleave(classes, dim=0)
        rep_mask = attention_mask.repeat_interleave(classes, dim=0)
        targets = self.label_ids.repeat(batch, 1)  # (B*C, Lw)
        out = self.t5(encoder_outputs=(rep_hidden,), attention_mask=rep_mask, labels=targets)
        log_probs = out.logits.float().log_softmax(-1)
        valid = targets != -100
        token_lp = log_probs.gather(-1, targets.clamp_min(0)[..., None]).squeeze(-1) * valid
        seq_lp = token_lp.sum(-1).view(batch, classes)
        lengths = valid.sum(-1).view(batch, classes).float()
        logits = seq_lp / lengths if self.config.length_normalize else seq_lp

        loss = lm_loss = contrastive = None
        if labels is not None:
            y = labels.long().view(-1).to(logits.device)
            pick = torch.arange(batch, device=logits.device)
            lm_loss = -(seq_lp[pick, y] / lengths[pick, y]).mean()  # token cross-entropy of the true label word
            loss = lm_loss
            if self.config.contrastive_weight > 0 and self.av:
                text_vec = self.text_head(masked_mean(hidden, attention_mask))
                terms = []
                for m in self.av:
                    frames, mask = context[m]
                    keep = present(frames, mask)
                    if int(keep.sum()) >= 2:
                        av_vec = self.av_heads[m](masked_mean(frames, mask))
                        terms.append(info_nce(text_vec[keep], av_vec[keep], self.config.temperature))
                if terms:
                    contrastive = self.config.contrastive_weight * torch.stack(terms).sum()
                    loss = loss + contrastive
        return UniMSEOutput(loss=loss, logits=logits, lm_loss=lm_loss, contrastive_loss=contrastive)


def unimse_task_fields(task) -> dict[str, Any]:
    """UniMSE generates the label words of the task's classes."""
    return {"label_words": tuple(task.label_words)}


def unimse_for_tokenizer(config: UniMSEConfig, tokenizer) -> UniMSEConfig:
    """A T5 built from a `t5_config` (no tokenizer of its own, no label ids) reads the texts with the runner's
    tokenizer: its vocabulary size, padding id and end of sequence ([SEP]) go into the T5Config."""
    if config.t5_config is None or config.tokenizer_name_or_path is not None or config.label_token_ids is not None:
        return config
    t5_config = {**config.t5_config, "vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
                 "decoder_start_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.sep_token_id}
    return dataclasses.replace(config, t5_config=t5_config, tokenizer_name_or_path=tokenizer.name_or_path)


def build_unimse(config: UniMSEConfig | dict | None = None, **overrides: Any) -> UniMSEModel:
    """`UniMSEModel` from a `UniMSEConfig`, a mapping or None (defaults: t5-base, needs the hub or a local copy)."""
    return UniMSEModel(make_config(UniMSEConfig, config, **overrides))
