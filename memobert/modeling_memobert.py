"""PyTorch MEmoBERT: a BERT encoder over `[CLS] text [SEP] | visual frames | acoustic frames`.

Parameter names of the text embeddings, encoder, pooler and MLM head are BERT's, so a BERT checkpoint loads
into them as it is (`from_bert`). Each frame modality has its own embedder (`MEmoBertFrameEmbeddings`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput
from transformers.utils import logging as transformers_logging

from .configuration_memobert import MEmoBertConfig, verbalizer_token_ids

BERT_CONFIG_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "max_position_embeddings",
    "type_vocab_size",
    "initializer_range",
    "layer_norm_eps",
    "pad_token_id",
)


# ----------------------------------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class MEmoBertModelOutput(ModelOutput):
    """
    last_hidden_state: `(batch, text_len + visual_len + acoustic_len, hidden)`, the segments in that order.
    pooler_output: dense + tanh of position 0 (the [CLS] token when text is given).
    attention_mask: `(batch, total_len)`, 1 at real positions of the concatenated sequence.
    text_hidden_state / visual_hidden_state / acoustic_hidden_state: views of `last_hidden_state` per segment
        (None for an absent modality).
    hidden_states: embeddings + every layer's output, when `output_hidden_states=True`.
    """

    last_hidden_state: torch.Tensor | None = None
    pooler_output: torch.Tensor | None = None
    attention_mask: torch.Tensor | None = None
    text_hidden_state: torch.Tensor | None = None
    visual_hidden_state: torch.Tensor | None = None
    acoustic_hidden_state: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


@dataclass
class MEmoBertForPreTrainingOutput(ModelOutput):
    """
    loss: sum of the losses whose targets were given.
    mlm_loss / visual_regression_loss / acoustic_regression_loss / face_classification_loss: each task's loss.
    prediction_logits: vocabulary logits, `(num_masked_tokens, vocab)` when `labels` are given, `(batch, text_len,
        vocab)` when no targets at all are given, else None.
    visual_predictions / acoustic_predictions: regressed features at masked frames, `(num_masked_frames, dim)`.
    face_logits: face-expression logits at masked face frames, `(num_masked_frames, num_face_classes)`.
    """

    loss: torch.Tensor | None = None
    mlm_loss: torch.Tensor | None = None
    visual_regression_loss: torch.Tensor | None = None
    acoustic_regression_loss: torch.Tensor | None = None
    face_classification_loss: torch.Tensor | None = None
    prediction_logits: torch.Tensor | None = None
    visual_predictions: torch.Tensor | None = None
    acoustic_predictions: torch.Tensor | None = None
    face_logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


@dataclass
class MEmoBertPromptOutput(ModelOutput):
    """
    loss: cross-entropy of the [MASK] prediction (over the label words, or the vocabulary: `config.prompt_loss`).
    logits: `(batch, num_labels)`, the [MASK] logits of the label words, in class order.
    mask_hidden_state: `(batch, hidden)`, the encoder output at [MASK].
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    mask_hidden_state: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


@dataclass
class MEmoBertSequenceClassifierOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    pooler_output: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


# ----------------------------------------------------------------------------------------------------------------------
# Dropout and attention kernels
# ----------------------------------------------------------------------------------------------------------------------


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



# ----------------------------------------------------------------------------------------------------------------------
# Embeddings
# ----------------------------------------------------------------------------------------------------------------------


class MEmoBertTextEmbeddings(nn.Module):
    """BERT's embeddings: word + learned position + token type -> LayerNorm -> dropout."""

    def __init__(self, config: MEmoBertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = MEmoBertDropout(config.hidden_dropout_prob, config.dropout_implementation)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        length = input_ids.shape[1]
        if length > self.position_embeddings.num_embeddings:
            raise ValueError(
                f"input_ids has {length} tokens but the model has {self.position_embeddings.num_embeddings} text "
                "positions; truncate the text (MEmoBertProcessor does, to config.max_text_length)."
            )
        embeddings = self.word_embeddings(input_ids) + self.position_embeddings.weight[:length]
        if token_type_ids is None:
            embeddings = embeddings + self.token_type_embeddings.weight[0]
        else:
            embeddings = embeddings + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(embeddings))


class MEmoBertFrameEmbeddings(nn.Module):
    """
    One frame modality (face or acoustic features): a learned mask vector replaces masked frames, then
    projection -> LayerNorm -> + own position table -> + own type embedding -> LayerNorm -> dropout.
    """

    def __init__(self, config: MEmoBertConfig, feature_dim: int, max_length: int):
        super().__init__()
        self.mask_embedding = nn.Parameter(torch.zeros(feature_dim))
        self.projection = nn.Linear(feature_dim, config.hidden_size)
        self.projection_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.position_embeddings = nn.Embedding(max_length, config.hidden_size)
        self.type_embeddings = nn.Embedding(1, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = MEmoBertDropout(config.hidden_dropout_prob, config.dropout_implementation)

    def forward(self, feats: torch.Tensor, bool_masked_pos: torch.Tensor | None = None) -> torch.Tensor:
        length, feature_dim = feats.shape[1], feats.shape[2]
        if feature_dim != self.projection.in_features:
            raise ValueError(
                f"Frame features have {feature_dim} dimensions but this embedder expects {self.projection.in_features} "
                "(config.visual_dim / config.acoustic_dim); set the config to the feature extractor's size."
            )
        if length > self.position_embeddings.num_embeddings:
            raise ValueError(
                f"{length} frames exceed the {self.position_embeddings.num_embeddings} frame positions of the model; "
                "truncate them (MEmoBertProcessor does, to config.max_visual_length / max_acoustic_length)."
            )
        if bool_masked_pos is not None:
            feats = torch.where(bool_masked_pos.unsqueeze(-1), self.mask_embedding.to(feats.dtype), feats)
        embeddings = self.projection_norm(self.projection(feats))
        embeddings = embeddings + self.position_embeddings.weight[:length] + self.type_embeddings.weight[0]
        return self.dropout(self.LayerNorm(embeddings))


# ----------------------------------------------------------------------------------------------------------------------
# Encoder (BERT's layers, attention through `attention`: torch's scaled_dot_product_attention where it fuses)
# ----------------------------------------------------------------------------------------------------------------------


class MEmoBertSelfAttention(nn.Module):
    def __init__(self, config: MEmoBertConfig):
        super().__init__()
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout_prob = config.attention_probs_dropout_prob
        self.dropout_implementation = config.dropout_implementation

    def forward(self, hidden_states: torch.Tensor, attention_bias: torch.Tensor | None) -> torch.Tensor:
        batch, length, hidden = hidden_states.shape
        shape = (batch, length, self.num_attention_heads, self.attention_head_size)
        query = self.query(hidden_states).view(shape).transpose(1, 2)
        key = self.key(hidden_states).view(shape).transpose(1, 2)
        value = self.value(hidden_states).view(shape).transpose(1, 2)
        context = attention(
            query, key, value, attention_bias, self.dropout_prob if self.training else 0.0, self.dropout_implementation
        )
        return context.transpose(1, 2).reshape(batch, length, hidden)


class MEmoBertSelfOutput(nn.Module):
    def __init__(self, config: MEmoBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = MEmoBertDropout(config.hidden_dropout_prob, config.dropout_implementation)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class MEmoBertAttention(nn.Module):
    def __init__(self, config: MEmoBertConfig):
        super().__init__()
        self.self = MEmoBertSelfAttention(config)
        self.output = MEmoBertSelfOutput(config)

    def forward(self, hidden_states: torch.Tensor, attention_bias: torch.Tensor | None) -> torch.Tensor:
        return self.output(self.self(hidden_states, attention_bias), hidden_states)


class MEmoBertIntermediate(nn.Module):
    def __init__(self, config: MEmoBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = ACT2FN[config.hidden_act]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.intermediate_act_fn(self.dense(hidden_states))


class MEmoBertOutput(nn.Module):
    def __init__(self, config: MEmoBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = MEmoBertDropout(config.hidden_dropout_prob, config.dropout_implementation)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class MEmoBertLayer(GradientCheckpointingLayer):
    def __init__(self, config: MEmoBertConfig):
        super().__init__()
        self.attention = MEmoBertAttention(config)
        self.intermediate = MEmoBertIntermediate(config)
        self.output = MEmoBertOutput(config)

    def forward(self, hidden_states: torch.Tensor, attention_bias: torch.Tensor | None = None) -> torch.Tensor:
        attention_output = self.attention(hidden_states, attention_bias)
        return self.output(self.intermediate(attention_output), attention_output)


class MEmoBertEncoder(nn.Module):
    def __init__(self, config: MEmoBertConfig):
        super().__init__()
        self.layer = nn.ModuleList([MEmoBertLayer(config) for _ in range(config.num_hidden_layers)])

    def forward(
        self, hidden_states: torch.Tensor, attention_bias: torch.Tensor | None, output_hidden_states: bool = False
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        for layer in self.layer:
            hidden_states = layer(hidden_states, attention_bias)
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
        return hidden_states, all_hidden_states


class MEmoBertPooler(nn.Module):
    def __init__(self, config: MEmoBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(hidden_states[:, 0]))


# ----------------------------------------------------------------------------------------------------------------------
# Heads
# ----------------------------------------------------------------------------------------------------------------------


class MEmoBertPredictionHeadTransform(nn.Module):
    """Linear -> GELU -> LayerNorm, the first half of every prediction head."""

    def __init__(self, config: MEmoBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.transform_act_fn = ACT2FN[config.hidden_act]
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))


class MEmoBertLMPredictionHead(nn.Module):
    """BERT's MLM head; `decoder.weight` is tied to the word embeddings."""

    def __init__(self, config: MEmoBertConfig):
        super().__init__()
        self.transform = MEmoBertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=True)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(hidden_states))


class MEmoBertOnlyMLMHead(nn.Module):
    def __init__(self, config: MEmoBertConfig):
        super().__init__()
        self.predictions = MEmoBertLMPredictionHead(config)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.predictions(hidden_states)


class MEmoBertFrameRegressionHead(nn.Module):
    """Regresses frame features: transform, then a linear map whose weight is the input projection's, transposed."""

    def __init__(self, config: MEmoBertConfig, feature_dim: int):
        super().__init__()
        self.transform = MEmoBertPredictionHeadTransform(config)
        self.bias = nn.Parameter(torch.zeros(feature_dim))

    def forward(self, hidden_states: torch.Tensor, projection_weight: torch.Tensor) -> torch.Tensor:
        # projection_weight is (hidden, feature_dim); F.linear multiplies by its transpose's transpose.
        return F.linear(self.transform(hidden_states), projection_weight.t(), self.bias)


class MEmoBertFaceClassificationHead(nn.Module):
    """Predicts the face-expression class distribution of a frame: transform -> Linear(num_face_classes)."""

    def __init__(self, config: MEmoBertConfig):
        super().__init__()
        self.transform = MEmoBertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.num_face_classes)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(hidden_states))


class MEmoBertClassificationHead(nn.Module):
    """Pooled output -> Linear(h, 2h) -> GELU -> LayerNorm -> dropout -> Linear(2h, num_labels)."""

    def __init__(self, config: MEmoBertConfig):
        super().__init__()
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dense = nn.Linear(config.hidden_size, 2 * config.hidden_size)
        self.act = ACT2FN["gelu"]
        self.LayerNorm = nn.LayerNorm(2 * config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = MEmoBertDropout(dropout, config.dropout_implementation)
        self.out_proj = nn.Linear(2 * config.hidden_size, config.num_labels)

    def forward(self, pooled_output: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.dropout(self.LayerNorm(self.act(self.dense(pooled_output)))))


def squeeze_padding(
    hidden: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """
    Moves each row's real positions (mask 1) to the front, in order, and cuts the sequence to the longest row.
    Returns the packed states, their mask and the gather index (None when there was no padding to squeeze).
    """
    lengths = mask.sum(dim=1)
    packed_length = int(lengths.max()) if mask.numel() else 0
    if packed_length == mask.shape[1]:
        return hidden, mask, None
    packed_length = max(packed_length, 1)
    order = torch.argsort((mask == 0).to(torch.int8), dim=1, stable=True)[:, :packed_length]
    packed = hidden.gather(1, order[..., None].expand(-1, -1, hidden.shape[-1]))
    packed_mask = (torch.arange(packed_length, device=mask.device)[None] < lengths[:, None]).to(mask.dtype)
    return packed, packed_mask, order


def unsqueeze_padding(packed: torch.Tensor, gather_index: torch.Tensor | None, length: int) -> torch.Tensor:
    """The inverse of `squeeze_padding`: states back at their segment positions, zeros at padding."""
    if gather_index is None:
        return packed
    index = gather_index[..., None].expand(-1, -1, packed.shape[-1])
    return packed.new_zeros(packed.shape[0], length, packed.shape[-1]).scatter(1, index, packed)


def masked_mean(total: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """`total / count` that is 0 (not NaN) when nothing was masked, without a host sync."""
    return total / count.clamp(min=1)


# ----------------------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------------------


class MEmoBertPreTrainedModel(PreTrainedModel):
    config_class = MEmoBertConfig
    base_model_prefix = "memobert"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["MEmoBertTextEmbeddings", "MEmoBertFrameEmbeddings", "MEmoBertLayer"]

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, MEmoBertLMPredictionHead):
            init.zeros_(module.bias)
        elif isinstance(module, MEmoBertFrameRegressionHead):
            init.zeros_(module.bias)
        elif isinstance(module, MEmoBertFrameEmbeddings):
            init.normal_(module.mask_embedding, mean=0.0, std=self.config.initializer_range)

    @classmethod
    def from_bert(cls, name_or_path: str, tokenizer=None, **config_overrides):
        """
        A model whose text embeddings, encoder, pooler (and MLM head, where the checkpoint has one) come from a BERT
        checkpoint (hub name or local folder); everything else is freshly initialised.

        `tokenizer` (default: the checkpoint's own, when it has one) sets `mask_token_id` and the verbalizer's
        `label_token_ids`. `config_overrides` set any other `MEmoBertConfig` field.
        """
        from transformers import AutoConfig, AutoTokenizer, BertForPreTraining

        bert_config = AutoConfig.from_pretrained(name_or_path)
        fields = {name: getattr(bert_config, name) for name in BERT_CONFIG_FIELDS if hasattr(bert_config, name)}
        config = MEmoBertConfig(**{**fields, **config_overrides})
        if tokenizer is None:
            try:
                tokenizer = AutoTokenizer.from_pretrained(name_or_path)
            except (OSError, ValueError):
                tokenizer = None
        if tokenizer is not None:
            config.mask_token_id = tokenizer.mask_token_id
            config.label_token_ids = verbalizer_token_ids(config.label_words, tokenizer)

        model = cls(config)
        previous_verbosity = transformers_logging.get_verbosity()
        transformers_logging.set_verbosity_error()  # BERT's own missing-head report would name the wrong model
        try:
            bert, info = BertForPreTraining.from_pretrained(
                name_or_path, output_loading_info=True, dtype=torch.float32
            )
        finally:
            transformers_logging.set_verbosity(previous_verbosity)
        not_in_checkpoint = set(info["missing_keys"])
        bert_state = {k: v for k, v in bert.state_dict().items() if k not in not_in_checkpoint}
        base_state = {k.removeprefix("bert."): v for k, v in bert_state.items() if k.startswith("bert.")}
        if model.base_model.pooler is None:
            base_state = {k: v for k, v in base_state.items() if not k.startswith("pooler.")}
        unexpected = model.base_model.load_state_dict(base_state, strict=False).unexpected_keys
        if unexpected:
            raise ValueError(f"{name_or_path} has BERT weights this model cannot place: {unexpected[:5]}")
        if hasattr(model, "cls"):
            head_state = {
                k.removeprefix("cls."): v
                for k, v in bert_state.items()
                if k.startswith("cls.predictions.") and not k.startswith("cls.predictions.decoder.")
            }
            model.cls.load_state_dict(head_state, strict=False)
        model.tie_weights()
        return model


class MEmoBertModel(MEmoBertPreTrainedModel):
    """
    The bare MEmoBERT encoder. Any subset of text / visual / acoustic inputs is valid; each segment is right-padded
    and its mask marks real positions, so padding never changes the output at real positions.
    """

    def __init__(self, config: MEmoBertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = MEmoBertTextEmbeddings(config)
        self.visual_embeddings = MEmoBertFrameEmbeddings(config, config.visual_dim, config.max_visual_length)
        self.acoustic_embeddings = MEmoBertFrameEmbeddings(config, config.acoustic_dim, config.max_acoustic_length)
        self.encoder = MEmoBertEncoder(config)
        self.pooler = MEmoBertPooler(config) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        visual_feats: torch.Tensor | None = None,
        visual_mask: torch.Tensor | None = None,
        acoustic_feats: torch.Tensor | None = None,
        acoustic_mask: torch.Tensor | None = None,
        visual_bool_masked_pos: torch.Tensor | None = None,
        acoustic_bool_masked_pos: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MEmoBertModelOutput | tuple:
        r"""
        input_ids, attention_mask, token_type_ids: `(batch, text_len)`, as for BERT.
        visual_feats: `(batch, visual_len, visual_dim)` face features; visual_mask: `(batch, visual_len)`, 1 = real frame.
        acoustic_feats: `(batch, acoustic_len, acoustic_dim)`; acoustic_mask: `(batch, acoustic_len)`.
        visual_bool_masked_pos / acoustic_bool_masked_pos: `(batch, len)` bool, frames replaced by the learned mask
            vector (set by the pretraining collator).
        """
        output_hidden_states = bool(output_hidden_states)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        segments: list[torch.Tensor] = []
        masks: list[torch.Tensor] = []
        lengths: list[int] = []
        if input_ids is not None:
            segments.append(self.embeddings(input_ids, token_type_ids))
            masks.append(attention_mask if attention_mask is not None else torch.ones_like(input_ids))
        for feats, mask, masked_pos, embedder in (
            (visual_feats, visual_mask, visual_bool_masked_pos, self.visual_embeddings),
            (acoustic_feats, acoustic_mask, acoustic_bool_masked_pos, self.acoustic_embeddings),
        ):
            if feats is None:
                continue
            feats = feats.to(embedder.projection.weight.dtype)
            segments.append(embedder(feats, masked_pos))
            masks.append(mask if mask is not None else feats.new_ones(feats.shape[:2]))
        if not segments:
            raise ValueError("MEmoBertModel needs at least one of input_ids, visual_feats or acoustic_feats.")
        batch_sizes = {segment.shape[0] for segment in segments}
        if len(batch_sizes) > 1:
            raise ValueError(f"The modalities have different batch sizes {sorted(batch_sizes)}; give one row per sample.")
        lengths = [segment.shape[1] for segment in segments]

        embedding_output = torch.cat(segments, dim=1) if len(segments) > 1 else segments[0]
        full_mask = torch.cat([m.to(embedding_output.dtype) for m in masks], dim=1)
        # Each segment is padded to its own batch maximum; the encoder runs on each row's real positions moved to
        # the front (positions are already embedded, and attention does not depend on order), so it computes
        # max(real length) positions per row instead of the sum of three padded segments.
        packed, packed_mask, gather_index = squeeze_padding(embedding_output, full_mask)
        # Additive key mask (0 keep, dtype-min drop), broadcast over heads and queries: never NaN, even for a row
        # whose every position is padding.
        attention_bias = (1.0 - packed_mask)[:, None, None, :] * torch.finfo(packed.dtype).min
        encoded, all_hidden_states = self.encoder(packed, attention_bias, output_hidden_states)
        sequence_output = unsqueeze_padding(encoded, gather_index, embedding_output.shape[1])
        if all_hidden_states is not None:
            all_hidden_states = tuple(
                unsqueeze_padding(h, gather_index, embedding_output.shape[1]) for h in all_hidden_states
            )
        pooled_output = self.pooler(sequence_output) if self.pooler is not None else None

        parts = iter(torch.split(sequence_output, lengths, dim=1))
        text_hidden = next(parts) if input_ids is not None else None
        visual_hidden = next(parts) if visual_feats is not None else None
        acoustic_hidden = next(parts) if acoustic_feats is not None else None
        output = MEmoBertModelOutput(
            last_hidden_state=sequence_output,
            pooler_output=pooled_output,
            attention_mask=full_mask,
            text_hidden_state=text_hidden,
            visual_hidden_state=visual_hidden,
            acoustic_hidden_state=acoustic_hidden,
            hidden_states=all_hidden_states,
        )
        return output if return_dict else output.to_tuple()


MODEL_INPUT_NAMES = (
    "input_ids",
    "attention_mask",
    "token_type_ids",
    "visual_feats",
    "visual_mask",
    "acoustic_feats",
    "acoustic_mask",
)


class MEmoBertForPreTraining(MEmoBertPreTrainedModel):
    """
    MEmoBERT with the four pretraining heads: MLM (tied to the word embeddings), visual and acoustic frame regression
    (tied to the input projections) and face-expression classification. Each loss is computed when its targets are
    given; `loss` is their sum.
    """

    _tied_weights_keys = {
        "cls.predictions.decoder.weight": "memobert.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",
    }

    def __init__(self, config: MEmoBertConfig):
        super().__init__(config)
        self.memobert = MEmoBertModel(config)
        self.cls = MEmoBertOnlyMLMHead(config)
        self.visual_regression = MEmoBertFrameRegressionHead(config, config.visual_dim)
        self.acoustic_regression = MEmoBertFrameRegressionHead(config, config.acoustic_dim)
        self.face_classifier = MEmoBertFaceClassificationHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.cls.predictions.decoder

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.cls.predictions.decoder = new_embeddings
        self.cls.predictions.bias = new_embeddings.bias

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        visual_feats: torch.Tensor | None = None,
        visual_mask: torch.Tensor | None = None,
        acoustic_feats: torch.Tensor | None = None,
        acoustic_mask: torch.Tensor | None = None,
        visual_bool_masked_pos: torch.Tensor | None = None,
        acoustic_bool_masked_pos: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        visual_targets: torch.Tensor | None = None,
        acoustic_targets: torch.Tensor | None = None,
        face_soft_labels: torch.Tensor | None = None,
        visual_target_pos: torch.Tensor | None = None,
        acoustic_target_pos: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MEmoBertForPreTrainingOutput | tuple:
        r"""
        labels: `(batch, text_len)` token ids to predict at masked tokens, -100 elsewhere (WWMLM).
        visual_targets / acoustic_targets: `(batch, len, dim)` the original (unmasked) features; regressed at the
            frames of `visual_bool_masked_pos` / `acoustic_bool_masked_pos` (SpanMVFR / SpanMAFR).
        face_soft_labels: `(batch, visual_len, num_face_classes)` per-frame expression distributions; KL(target ||
            prediction) at the frames of `visual_bool_masked_pos` (SpanMVFC-KL).
        visual_target_pos / acoustic_target_pos: `(batch, len)` bool, the frames whose targets are predicted, when
            they differ from `*_bool_masked_pos` (Mockingjay-style masking predicts frames left unchanged or swapped
            for random ones too); default: the `*_bool_masked_pos` frames.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.memobert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            visual_feats=visual_feats,
            visual_mask=visual_mask,
            acoustic_feats=acoustic_feats,
            acoustic_mask=acoustic_mask,
            visual_bool_masked_pos=visual_bool_masked_pos,
            acoustic_bool_masked_pos=acoustic_bool_masked_pos,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        result = MEmoBertForPreTrainingOutput(hidden_states=outputs.hidden_states)
        losses = []

        if labels is not None:
            if outputs.text_hidden_state is None:
                raise ValueError("MLM labels were given without input_ids.")
            masked = labels != -100
            # The vocabulary projection runs at masked tokens only: the costliest matmul of the model otherwise.
            result.prediction_logits = self.cls(outputs.text_hidden_state[masked])
            total = F.cross_entropy(result.prediction_logits.float(), labels[masked], reduction="sum")
            result.mlm_loss = masked_mean(total, masked.sum())
            losses.append(result.mlm_loss)
        elif outputs.text_hidden_state is not None and all(
            t is None for t in (visual_targets, acoustic_targets, face_soft_labels)
        ):
            # A plain inference call gets BERT-style logits at every token; a frame task's batch skips this
            # (it would be the step's largest matmul, for nothing).
            result.prediction_logits = self.cls(outputs.text_hidden_state)

        if visual_targets is not None or face_soft_labels is not None:
            visual_pos = visual_target_pos if visual_target_pos is not None else visual_bool_masked_pos
            masked = self._masked_frames("visual", visual_pos, visual_mask, outputs.visual_hidden_state)
            hidden = outputs.visual_hidden_state[masked]
            if visual_targets is not None:
                result.visual_predictions = self.visual_regression(
                    hidden, self.memobert.visual_embeddings.projection.weight
                )
                result.visual_regression_loss = self._regression_loss(
                    result.visual_predictions, visual_targets[masked], masked
                )
                losses.append(result.visual_regression_loss)
            if face_soft_labels is not None:
                result.face_logits = self.face_classifier(hidden)
                log_probs = F.log_softmax(result.face_logits.float(), dim=-1)
                total = F.kl_div(log_probs, face_soft_labels[masked].float(), reduction="sum")
                result.face_classification_loss = masked_mean(total, masked.sum())
                losses.append(result.face_classification_loss)

        if acoustic_targets is not None:
            acoustic_pos = acoustic_target_pos if acoustic_target_pos is not None else acoustic_bool_masked_pos
            masked = self._masked_frames("acoustic", acoustic_pos, acoustic_mask, outputs.acoustic_hidden_state)
            result.acoustic_predictions = self.acoustic_regression(
                outputs.acoustic_hidden_state[masked], self.memobert.acoustic_embeddings.projection.weight
            )
            result.acoustic_regression_loss = self._regression_loss(
                result.acoustic_predictions, acoustic_targets[masked], masked
            )
            losses.append(result.acoustic_regression_loss)

        if losses:
            result.loss = torch.stack(losses).sum()
        return result if return_dict else result.to_tuple()

    @staticmethod
    def _masked_frames(
        modality: str, bool_masked_pos: torch.Tensor | None, mask: torch.Tensor | None, hidden: torch.Tensor | None
    ) -> torch.Tensor:
        if hidden is None or bool_masked_pos is None:
            raise ValueError(
                f"{modality} targets need {modality}_feats and {modality}_bool_masked_pos (the frames to predict)."
            )
        return bool_masked_pos if mask is None else bool_masked_pos & mask.bool()

    @staticmethod
    def _regression_loss(predictions: torch.Tensor, targets: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        total = F.mse_loss(predictions.float(), targets.float(), reduction="sum")
        return masked_mean(total, masked.sum() * predictions.shape[-1])


class MEmoBertForPrompt(MEmoBertPreTrainedModel):
    """
    Emotion classification as [MASK] prediction ("<text> i am [MASK] ." + frames). No new parameters: the MLM head
    scores the label words at [MASK], and `logits` are those scores in class order (never the whole vocabulary).
    """

    _tied_weights_keys = {
        "cls.predictions.decoder.weight": "memobert.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",
    }

    def __init__(self, config: MEmoBertConfig):
        super().__init__(config)
        self.memobert = MEmoBertModel(config, add_pooling_layer=False)
        self.cls = MEmoBertOnlyMLMHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.cls.predictions.decoder

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.cls.predictions.decoder = new_embeddings
        self.cls.predictions.bias = new_embeddings.bias

    def set_label_words(self, label_words: list[str], tokenizer) -> None:
        """Use these words (one per class, in class order) as the verbalizer."""
        self.config.label_token_ids = verbalizer_token_ids(label_words, tokenizer)
        self.config.label_words = list(label_words)
        self.config.mask_token_id = tokenizer.mask_token_id
        self.config.id2label = dict(enumerate(label_words))
        self.config.label2id = {word: i for i, word in enumerate(label_words)}

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        visual_feats: torch.Tensor | None = None,
        visual_mask: torch.Tensor | None = None,
        acoustic_feats: torch.Tensor | None = None,
        acoustic_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MEmoBertPromptOutput | tuple:
        r"""
        input_ids: the prompt, with exactly one `[MASK]` per row (MEmoBertProcessor(prompt=True) builds it).
        labels: `(batch,)` class indices (positions in `config.label_words`).
        """
        if self.config.label_token_ids is None:
            raise ValueError(
                "The verbalizer has no label token ids: call model.set_label_words(words, tokenizer) or build the "
                "model with MEmoBertForPrompt.from_bert(name, tokenizer=...)."
            )
        if input_ids is None:
            raise ValueError("MEmoBertForPrompt needs input_ids holding the prompt with one [MASK].")
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        is_mask = input_ids == self.config.mask_token_id
        if not torch.equal(is_mask.sum(dim=1), torch.ones_like(input_ids[:, 0])):
            raise ValueError("Every prompt row must hold exactly one [MASK] token; build prompts with MEmoBertProcessor.")
        outputs = self.memobert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            visual_feats=visual_feats,
            visual_mask=visual_mask,
            acoustic_feats=acoustic_feats,
            acoustic_mask=acoustic_mask,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)
        mask_hidden = outputs.text_hidden_state[rows, is_mask.int().argmax(dim=1)]
        transformed = self.cls.predictions.transform(mask_hidden)
        label_ids = torch.tensor(self.config.label_token_ids, device=input_ids.device)
        decoder = self.cls.predictions.decoder
        logits = F.linear(transformed, decoder.weight[label_ids], decoder.bias[label_ids])

        loss = None
        if labels is not None:
            if self.config.prompt_loss == "vocabulary":
                loss = F.cross_entropy(decoder(transformed).float(), label_ids[labels])
            else:
                loss = F.cross_entropy(logits.float(), labels)
        output = MEmoBertPromptOutput(
            loss=loss, logits=logits, mask_hidden_state=mask_hidden, hidden_states=outputs.hidden_states
        )
        return output if return_dict else output.to_tuple()


class MEmoBertForSequenceClassification(MEmoBertPreTrainedModel):
    """MEmoBERT with a classifier on the pooled output (the paper's Pretrain+Finetune setting)."""

    def __init__(self, config: MEmoBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.memobert = MEmoBertModel(config)
        self.classifier = MEmoBertClassificationHead(config)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        visual_feats: torch.Tensor | None = None,
        visual_mask: torch.Tensor | None = None,
        acoustic_feats: torch.Tensor | None = None,
        acoustic_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MEmoBertSequenceClassifierOutput | tuple:
        r"""labels: `(batch,)` class indices."""
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.memobert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            visual_feats=visual_feats,
            visual_mask=visual_mask,
            acoustic_feats=acoustic_feats,
            acoustic_mask=acoustic_mask,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.classifier(outputs.pooler_output)
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        output = MEmoBertSequenceClassifierOutput(
            loss=loss, logits=logits, pooler_output=outputs.pooler_output, hidden_states=outputs.hidden_states
        )
        return output if return_dict else output.to_tuple()


__all__ = [
    "MEmoBertPreTrainedModel",
    "MEmoBertModel",
    "MEmoBertForPreTraining",
    "MEmoBertForPrompt",
    "MEmoBertForSequenceClassification",
    "MEmoBertModelOutput",
    "MEmoBertForPreTrainingOutput",
    "MEmoBertPromptOutput",
    "MEmoBertSequenceClassifierOutput",
    "MODEL_INPUT_NAMES",
]
