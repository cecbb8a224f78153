"""PyTorch MEmoBERT: a BERT encoder over `[CLS] text [SEP] | visual frames | acoustic frames`.

Parameter names of the text embeddings, encoder, pooler and MLM head are BERT's, so a BERT checkpoint loads into them
as it is (`from_bert`). Blocks marked "Copied from transformers.models.bert" are BERT's code unchanged; what MEmoBERT
adds or changes is marked where it stands:
- one embedder per frame modality (`MEmoBertFrameEmbeddings`: mask vector, projection, own positions and type);
- each row's padding squeezed out before the encoder and restored after (`squeeze_padding`), so three separately
  padded segments cost the longest row's real length;
- dropout and attention through `memobert.kernels` (16-bit keep masks on the CPU, SDPA);
- pretraining heads held in a `ModuleDict` and built by name from `config.pretraining_tasks`
  (`register_pretraining_head`): a pretraining task brings its own head without an edit here;
- the prompt head scores only the label words at `[MASK]`.

Part of the model layer: imports nothing of memobert but its configuration and kernels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

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
from .kernels import MEmoBertDropout, attention

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

MODEL_INPUT_NAMES = (
    "input_ids",
    "attention_mask",
    "token_type_ids",
    "visual_feats",
    "visual_mask",
    "acoustic_feats",
    "acoustic_mask",
)


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' warnings and loading bars off inside the block (restored after): for loads whose report would
    mislead (BERT's missing heads inside a MEmoBERT) or repeat (one load per fold and seed)."""
    verbosity, bar_enabled = transformers_logging.get_verbosity(), transformers_logging.is_progress_bar_enabled()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(verbosity)
        if bar_enabled:
            transformers_logging.enable_progress_bar()


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
class MEmoBertPreTrainingHeadOutput(ModelOutput):
    """What one pretraining head returns: its `loss` and its `predictions` at the positions it scored."""

    loss: torch.Tensor | None = None
    predictions: torch.Tensor | None = None


@dataclass
class MEmoBertForPreTrainingOutput(ModelOutput):
    """
    loss: sum of the losses of the heads whose targets were given.
    losses: `{task name: loss}` of those heads (e.g. `losses["wwmlm"]`).
    predictions: `{task name: predictions}`: what each of them predicted at the positions it scored (WWMLM: vocabulary
        logits of the masked tokens; SpanMVFR/SpanMAFR: the regressed frames; SpanMVFC-KL: face-expression logits).
    prediction_logits: `(batch, text_len, vocab)` vocabulary logits of every token, for a call without any targets
        (as BERT's MLM head gives them); None otherwise.
    """

    loss: torch.Tensor | None = None
    losses: dict[str, torch.Tensor] | None = None
    predictions: dict[str, torch.Tensor] | None = None
    prediction_logits: torch.Tensor | None = None
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
# Embeddings
# ----------------------------------------------------------------------------------------------------------------------


class MEmoBertTextEmbeddings(nn.Module):
    """BERT's embeddings (word + learned position + token type -> LayerNorm -> dropout), with BERT's parameter names.
    Differs from `BertEmbeddings` in its forward only: positions are always 0..n-1 (no `position_ids` buffer) and a
    missing `token_type_ids` means type 0."""

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
    MEmoBERT's own: one frame modality (face or acoustic features). A learned mask vector replaces masked frames, then
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
# Encoder: BERT's layers; attention through `kernels.attention` (SDPA wherever it fuses), dropout through the kernels
# ----------------------------------------------------------------------------------------------------------------------


class MEmoBertSelfAttention(nn.Module):
    """BERT's self-attention projections (same parameter names), computed by `kernels.attention` with an additive
    key bias: no causal, cross-attention or cache paths (MEmoBERT is an encoder)."""

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


# Adapted from transformers.models.bert.modeling_bert.BertSelfOutput: the dropout is kernels.MEmoBertDropout
class MEmoBertSelfOutput(nn.Module):
    def __init__(self, config: MEmoBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = MEmoBertDropout(config.hidden_dropout_prob, config.dropout_implementation)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        hidden_states = self.dense(hidden_states)
        hidden_states = self.dropout(hidden_states)
        hidden_states = self.LayerNorm(hidden_states + input_tensor)
        return hidden_states


class MEmoBertAttention(nn.Module):
    """BERT's attention block (self-attention, then output projection + residual + LayerNorm), without cross-attention
    and cache arguments."""

    def __init__(self, config: MEmoBertConfig):
        super().__init__()
        self.self = MEmoBertSelfAttention(config)
        self.output = MEmoBertSelfOutput(config)

    def forward(self, hidden_states: torch.Tensor, attention_bias: torch.Tensor | None) -> torch.Tensor:
        return self.output(self.self(hidden_states, attention_bias), hidden_states)


# Copied from transformers.models.bert.modeling_bert.BertIntermediate with Bert->MEmoBert
class MEmoBertIntermediate(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        if isinstance(config.hidden_act, str):
            self.intermediate_act_fn = ACT2FN[config.hidden_act]
        else:
            self.intermediate_act_fn = config.hidden_act

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.dense(hidden_states)
        hidden_states = self.intermediate_act_fn(hidden_states)
        return hidden_states


# Adapted from transformers.models.bert.modeling_bert.BertOutput: the dropout is kernels.MEmoBertDropout
class MEmoBertOutput(nn.Module):
    def __init__(self, config: MEmoBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = MEmoBertDropout(config.hidden_dropout_prob, config.dropout_implementation)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        hidden_states = self.dense(hidden_states)
        hidden_states = self.dropout(hidden_states)
        hidden_states = self.LayerNorm(hidden_states + input_tensor)
        return hidden_states


class MEmoBertLayer(GradientCheckpointingLayer):
    """BERT's layer (attention, then feed-forward) for an encoder: no cross-attention, no chunked feed-forward."""

    def __init__(self, config: MEmoBertConfig):
        super().__init__()
        self.attention = MEmoBertAttention(config)
        self.intermediate = MEmoBertIntermediate(config)
        self.output = MEmoBertOutput(config)

    def forward(self, hidden_states: torch.Tensor, attention_bias: torch.Tensor | None = None) -> torch.Tensor:
        attention_output = self.attention(hidden_states, attention_bias)
        return self.output(self.intermediate(attention_output), attention_output)


class MEmoBertEncoder(nn.Module):
    """BERT's stack of layers (same names: `encoder.layer.N`), returning the states of every layer on request."""

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


# Copied from transformers.models.bert.modeling_bert.BertPooler with Bert->MEmoBert
class MEmoBertPooler(nn.Module):
    """BERT's pooler (dense -> tanh) over the [CLS] state, or over the mean of every real position's state
    (`config.classifier_pooling = "mean"`)."""

    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()
        self.mean = getattr(config, "classifier_pooling", "cls") == "mean"

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.mean and mask is not None:
            weights = mask.to(hidden_states.dtype).unsqueeze(-1)
            pooled = (hidden_states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        else:
            pooled = hidden_states[:, 0]
        return self.activation(self.dense(pooled))


def squeeze_padding(
    hidden: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """
    MEmoBERT's own: moves each row's real positions (mask 1) to the front, in order, and cuts the sequence to the
    longest row. Returns the packed states, their mask and the gather index (None when there was no padding to squeeze).
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


# ----------------------------------------------------------------------------------------------------------------------
# Heads
# ----------------------------------------------------------------------------------------------------------------------


# Copied from transformers.models.bert.modeling_bert.BertPredictionHeadTransform with Bert->MEmoBert
class MEmoBertPredictionHeadTransform(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        if isinstance(config.hidden_act, str):
            self.transform_act_fn = ACT2FN[config.hidden_act]
        else:
            self.transform_act_fn = config.hidden_act
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.dense(hidden_states)
        hidden_states = self.transform_act_fn(hidden_states)
        hidden_states = self.LayerNorm(hidden_states)
        return hidden_states


# Copied from transformers.models.bert.modeling_bert.BertLMPredictionHead with Bert->MEmoBert
class MEmoBertLMPredictionHead(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.transform = MEmoBertPredictionHeadTransform(config)

        # The output weights are the same as the input embeddings, but there is
        # an output-only bias for each token.
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=True)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden_states):
        hidden_states = self.transform(hidden_states)
        hidden_states = self.decoder(hidden_states)
        return hidden_states


# Copied from transformers.models.bert.modeling_bert.BertOnlyMLMHead with Bert->MEmoBert
class MEmoBertOnlyMLMHead(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.predictions = MEmoBertLMPredictionHead(config)

    def forward(self, sequence_output: torch.Tensor) -> torch.Tensor:
        prediction_scores = self.predictions(sequence_output)
        return prediction_scores


class MEmoBertClassificationHead(nn.Module):
    """The paper's fine-tune head: pooled output -> Linear(h, 2h) -> GELU -> LayerNorm -> dropout -> Linear(2h, C)."""

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


class MEmoBertPreTrainingHead(nn.Module):
    """
    What a pretraining task adds to `MEmoBertForPreTraining` (MEmoBERT's own mechanism; BERT has fixed heads).

    `target_names`: the keyword arguments of `MEmoBertForPreTraining.forward` that hold this head's targets; the
    model runs the head exactly when all of them are given. `forward(model, outputs, inputs)` gets the model (for
    weights a head shares with it: the MLM decoder, the input projections), the encoder output and every input of
    the call, and returns its loss and predictions. `init_weights(config)` initialises what `_init_weights` of the
    model does not know about (it runs after the model's own init of the head's Linear / LayerNorm layers).
    """

    target_names: ClassVar[tuple[str, ...]] = ()

    def forward(
        self, model: MEmoBertForPreTraining, outputs: MEmoBertModelOutput, inputs: dict[str, torch.Tensor | None]
    ) -> MEmoBertPreTrainingHeadOutput:
        """The head's loss and predictions (every subclass defines it)."""
        raise NotImplementedError(f"{type(self).__name__} must define forward(model, outputs, inputs)")

    def init_weights(self, config: MEmoBertConfig) -> None:
        """Initialise the head's own parameters (nothing by default)."""


# Pretraining head builders by task name, filled by the tasks of `memobert.objectives` (`register_pretraining_head`).
PRETRAINING_HEADS: dict[str, Callable[[MEmoBertConfig], MEmoBertPreTrainingHead]] = {}


def register_pretraining_head(name: str, builder: Callable[[MEmoBertConfig], MEmoBertPreTrainingHead]) -> None:
    """Makes `MEmoBertForPreTraining` build `builder(config)` as `heads[name]` when `name` is in
    `config.pretraining_tasks` (`memobert.objectives.register_task` calls it for every task)."""
    known = PRETRAINING_HEADS.get(name)
    if known is not None and known is not builder:
        raise ValueError(f"A pretraining head named {name!r} is already registered; choose another task name.")
    PRETRAINING_HEADS[name] = builder


def build_pretraining_head(name: str, config: MEmoBertConfig) -> MEmoBertPreTrainingHead:
    """The registered head of task `name`, for `config`."""
    if name not in PRETRAINING_HEADS:
        raise KeyError(
            f"config.pretraining_tasks names {name!r}, but no pretraining head of that name is registered "
            f"(registered: {sorted(PRETRAINING_HEADS)}). Import the module that defines the task first "
            "(`import memobert` registers the built-in ones)."
        )
    return PRETRAINING_HEADS[name](config)


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
        elif isinstance(module, MEmoBertFrameEmbeddings):
            init.normal_(module.mask_embedding, mean=0.0, std=self.config.initializer_range)
        elif isinstance(module, MEmoBertPreTrainingHead):
            module.init_weights(self.config)

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
        with quiet_transformers():  # BERT's own missing-head report would name the wrong model
            bert, info = BertForPreTraining.from_pretrained(
                name_or_path, output_loading_info=True, dtype=torch.float32
            )
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
        pooled_output = self.pooler(sequence_output, full_mask) if self.pooler is not None else None

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


# Head parameter names written by memobert 0.1.0 checkpoints (fixed head attributes) -> their place in `heads` now.
LEGACY_HEAD_NAMES = {
    "visual_regression.": "heads.span_mvfr.",
    "acoustic_regression.": "heads.span_mafr.",
    "face_classifier.": "heads.span_mvfc_kl.",
}


class MEmoBertForPreTraining(MEmoBertPreTrainedModel):
    """
    MEmoBERT with BERT's MLM head (`cls`, tied to the word embeddings; shared with `MEmoBertForPrompt`) and one
    pretraining head per task of `config.pretraining_tasks` in `heads` (built from the heads the tasks registered:
    by default WWMLM, SpanMVFR, SpanMAFR, SpanMVFC-KL). A call runs every head whose targets it is given; `loss` is
    the sum of their losses, `losses` holds each by task name.
    """

    _tied_weights_keys = {
        "cls.predictions.decoder.weight": "memobert.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",
    }

    def __init__(self, config: MEmoBertConfig):
        super().__init__(config)
        self.memobert = MEmoBertModel(config)
        self.cls = MEmoBertOnlyMLMHead(config)
        self.heads = nn.ModuleDict({name: build_pretraining_head(name, config) for name in config.pretraining_tasks})
        self.post_init()

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`; checkpoints of memobert 0.1.0 (fixed head names) load as they are."""
        renames = {f"^{old.replace('.', '[.]')}": new for old, new in LEGACY_HEAD_NAMES.items()}
        kwargs["key_mapping"] = {**renames, **(kwargs.get("key_mapping") or {})}
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        model._weight_conversions = None  # save with today's names, never the legacy ones
        return loaded

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
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **targets,
    ) -> MEmoBertForPreTrainingOutput | tuple:
        r"""
        The inputs of `MEmoBertModel`, plus the targets of any pretraining heads, by the names the heads declare
        (`heads[name].target_names`; the built-in tasks: `labels` for WWMLM, `visual_targets` for SpanMVFR,
        `acoustic_targets` for SpanMAFR, `face_soft_labels` for SpanMVFC-KL, and `visual_target_pos` /
        `acoustic_target_pos` when the predicted frames differ from the masked ones). `PretrainingCollator` builds
        them. Without any targets, the output holds BERT-style vocabulary logits of every text token.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        model_inputs = dict(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            visual_feats=visual_feats,
            visual_mask=visual_mask,
            acoustic_feats=acoustic_feats,
            acoustic_mask=acoustic_mask,
            visual_bool_masked_pos=visual_bool_masked_pos,
            acoustic_bool_masked_pos=acoustic_bool_masked_pos,
        )
        outputs = self.memobert(**model_inputs, output_hidden_states=output_hidden_states, return_dict=True)
        inputs = {**model_inputs, **targets}
        losses, predictions = {}, {}
        for name, head in self.heads.items():
            if head.target_names and all(inputs.get(key) is not None for key in head.target_names):
                out = head(self, outputs, inputs)
                losses[name], predictions[name] = out.loss, out.predictions
        given = sorted(key for key, value in targets.items() if value is not None)
        if given and not losses:
            wanted = {name: list(head.target_names) for name, head in self.heads.items()}
            raise ValueError(f"No pretraining head reads the targets {given}; this model's heads read {wanted} "
                             "(config.pretraining_tasks).")
        prediction_logits = None
        if not given and outputs.text_hidden_state is not None:
            # A plain inference call gets BERT-style logits at every token; a task's batch skips this (it would be
            # the step's largest matmul, for nothing).
            prediction_logits = self.cls(outputs.text_hidden_state)
        result = MEmoBertForPreTrainingOutput(
            loss=torch.stack(list(losses.values())).sum() if losses else None,
            losses=losses,
            predictions=predictions,
            prediction_logits=prediction_logits,
            hidden_states=outputs.hidden_states,
        )
        return result if return_dict else result.to_tuple()


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
    "MEmoBertPreTrainingHead",
    "MEmoBertPreTrainingHeadOutput",
    "MEmoBertPromptOutput",
    "MEmoBertSequenceClassifierOutput",
    "MEmoBertPredictionHeadTransform",
    "PRETRAINING_HEADS",
    "register_pretraining_head",
    "build_pretraining_head",
    "quiet_transformers",
    "MODEL_INPUT_NAMES",
]
