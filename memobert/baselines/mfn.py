"""Memory Fusion Network (Zadeh et al., "Memory Fusion Network for Multi-view Sequential Learning", AAAI 2018).

One LSTM per modality (hidden 32) runs over `t` aligned steps (t = 20). At each step the *delta-memory attention
network* looks at the concatenation c* = [c_{t-1} ‖ c_t] of all the LSTMs' memories (a window of 2 steps): attention
a = softmax(MLP(c*)), attended c*' = a ⊙ c*, proposal ĉ = tanh(MLP(c*')). The *multi-view gated memory* (128-d) is
updated u_t = γ1 ⊙ u_{t-1} + γ2 ⊙ ĉ, with γ1 = σ(MLP([c*' ‖ u_{t-1}])) (retain) and γ2 = σ(MLP([c*' ‖ u_{t-1}]))
(update). The output reads the last hidden states and the memory through an MLP (hidden 64) to the classes.

Open points and the readings chosen (options in `MFNConfig`):
- The LSTHM of the paper feeds the memory back into the LSTM gates; the authors' released code uses plain LSTM cells.
  Default: plain cells as in the code (`hybrid_memory=False`); `True` concatenates u_{t-1} to every LSTM input.
- The output net: `head="joint"` (the paper) reads [h_text ‖ h_visual ‖ h_acoustic ‖ u] (3×32 + 128 = 224) -> 64
  -> C. `head="per_modality"` gives each modality its own head on [h_m ‖ u] (32 + 128 = 160 -> 64 -> C), the
  "160 -> 64 -> C" of M3ER, whose multiplicative fusion needs one prediction per modality (M3ER uses it).
- The corpus modalities are not word-aligned: each is cut into `t` equal spans of its real frames (tokens for text)
  and each span averaged (`pool_to_steps`), a stand-in for the forced alignment of CMU-MOSI features.
- Text ids go through a trainable embedding (`text_embed_dim`, 300 like GloVe); each modality's input gets a
  LayerNorm (`input_norm`) as the corpus features have different scales.
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
    classification_loss,
    make_config,
    modality_inputs,
    pool_to_steps,
    present,
)


@dataclass
class MFNConfig(BaselineConfig):
    """hidden_size: per-modality LSTM (32). memory_dim: gated memory (128). attention_hidden / gamma_hidden: the MLPs of
    the delta-memory attention and of the gates (128). window: steps in c* (2). steps: t (20). output_hidden: 64.
    head: "joint" | "per_modality". text_embed_dim: 300. dropout on the MLPs. hybrid_memory / input_norm: see module."""

    hidden_size: int = 32
    memory_dim: int = 128
    attention_hidden: int = 128
    gamma_hidden: int = 128
    window: int = 2
    steps: int = 20
    output_hidden: int = 64
    head: str = "joint"
    text_embed_dim: int = 300
    dropout: float = 0.0
    hybrid_memory: bool = False
    input_norm: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.head not in ("joint", "per_modality"):
            raise ValueError(f"MFNConfig.head must be 'joint' or 'per_modality', got {self.head!r}.")
        if self.window != 2:
            raise ValueError("MFNConfig.window: only the window of 2 steps ([c_{t-1} ‖ c_t]) of the paper is built.")
        if self.steps < 1:
            raise ValueError(f"MFNConfig.steps must be >= 1, got {self.steps}.")


def _mlp(in_dim: int, hidden: int, out_dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim))


@dataclass
class MFNState(BaselineOutput):
    """The last hidden state of each modality's LSTM and the final gated memory `(B, memory_dim)`."""

    hidden: dict[str, torch.Tensor] | None = None
    memory: torch.Tensor | None = None


class MemoryFusionNetwork(nn.Module):
    """The MFN recurrence: {modality: `(B, t, D_m)`} -> `MFNState` (last h per modality, last memory).

    Every modality named in `input_dims` must be given (zeros stand for an absent one)."""

    def __init__(self, input_dims: dict[str, int], hidden_size: int = 32, memory_dim: int = 128,
                 attention_hidden: int = 128, gamma_hidden: int = 128, dropout: float = 0.0,
                 hybrid_memory: bool = False) -> None:
        super().__init__()
        self.modalities = tuple(input_dims)
        self.hidden_size, self.memory_dim, self.hybrid_memory = hidden_size, memory_dim, hybrid_memory
        extra = memory_dim if hybrid_memory else 0
        self.cells = nn.ModuleDict({m: nn.LSTMCell(d + extra, hidden_size) for m, d in input_dims.items()})
        total = hidden_size * len(self.modalities)
        att_in = 2 * total
        self.attention = _mlp(att_in, attention_hidden, att_in, dropout)
        self.proposal = _mlp(att_in, attention_hidden, memory_dim, dropout)
        self.gamma_retain = _mlp(att_in + memory_dim, gamma_hidden, memory_dim, dropout)
        self.gamma_update = _mlp(att_in + memory_dim, gamma_hidden, memory_dim, dropout)

    def forward(self, sequences: dict[str, torch.Tensor]) -> MFNState:
        missing = [m for m in self.modalities if m not in sequences]
        if missing:
            raise ValueError(f"MemoryFusionNetwork needs every modality {self.modalities}; missing {missing}.")
        ref = sequences[self.modalities[0]]
        batch, steps = ref.shape[0], ref.shape[1]
        if any(x.shape[:2] != (batch, steps) for x in sequences.values()):
            raise ValueError("MemoryFusionNetwork: every modality must be (batch, t, dim) with the same batch and t; "
                             f"got {[tuple(x.shape) for x in sequences.values()]}.")
        h = {m: ref.new_zeros(batch, self.hidden_size) for m in self.modalities}
        c = {m: ref.new_zeros(batch, self.hidden_size) for m in self.modalities}
        memory = ref.new_zeros(batch, self.memory_dim)
        for t in range(steps):
            prev_c = torch.cat([c[m] for m in self.modalities], dim=-1)
            for m in self.modalities:
                x = sequences[m][:, t]
                if self.hybrid_memory:
                    x = torch.cat([x, memory], dim=-1)
                h[m], c[m] = self.cells[m](x, (h[m], c[m]))
            c_star = torch.cat([prev_c] + [c[m] for m in self.modalities], dim=-1)
            attended = self.attention(c_star).softmax(-1) * c_star
            proposal = torch.tanh(self.proposal(attended))
            both = torch.cat([attended, memory], dim=-1)
            memory = torch.sigmoid(self.gamma_retain(both)) * memory + torch.sigmoid(self.gamma_update(both)) * proposal
        return MFNState(hidden=dict(h), memory=memory)


@dataclass
class MFNOutput(BaselineOutput):
    """`logits` `(B, C)`; `modality_logits` {m: `(B, C)`} with `head="per_modality"`; `memory` the final memory."""

    modality_logits: dict[str, torch.Tensor] | None = None
    memory: torch.Tensor | None = None


class MFNInputs(nn.Module):
    """Batch -> ({modality: `(B, steps, D_m)`}, {modality: `(B,)` present}): text embedded, everything pooled to t.

    `forward` gives the raw pooled sequences; `normalize` applies the per-modality LayerNorm (kept apart so that
    M3ER can check and regenerate modalities on fixed input features)."""

    def __init__(self, config: MFNConfig, train_text_embedding: bool = True) -> None:
        super().__init__()
        self.modalities, self.steps = tuple(config.modalities), config.steps
        raw = {"text": config.text_embed_dim, "visual": config.visual_dim, "acoustic": config.acoustic_dim}
        self.dims = {m: raw[m] for m in self.modalities}
        self.text = TokenEmbedder(config.text_vocab_size, config.text_embed_dim) if "text" in self.modalities else None
        if self.text is not None and not train_text_embedding:
            self.text.embedding.weight.requires_grad_(False)
        self.norms = nn.ModuleDict({m: nn.LayerNorm(d) if config.input_norm else nn.Identity()
                                    for m, d in self.dims.items()})

    def forward(self, **batch: Any) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        inputs = modality_inputs(batch, self.modalities)
        ref_x = next(iter(inputs.values()))[0]
        size = ref_x.shape[0]
        sequences, flags = {}, {}
        for m in self.modalities:
            if m not in inputs:
                sequences[m] = torch.zeros(size, self.steps, self.dims[m], device=ref_x.device)
                flags[m] = torch.zeros(size, dtype=torch.bool, device=ref_x.device)
                continue
            x, mask = inputs[m]
            if m == "text":
                mask = torch.ones_like(x) if mask is None else mask
                x = self.text(x)
            x = x.float()
            flags[m] = present(x, mask)
            sequences[m] = pool_to_steps(x, mask, self.steps)  # zeros for a sample without the modality
        return sequences, flags

    def normalize(self, sequences: dict[str, torch.Tensor], available: dict[str, torch.Tensor]
                  ) -> dict[str, torch.Tensor]:
        """The per-modality LayerNorm; a modality not available in a sample stays all zeros."""
        out = {}
        for m, seq in sequences.items():
            out[m] = self.norms[m](seq) * available[m].to(seq.dtype)[:, None, None]
        return out


class MFNModel(nn.Module):
    """MFN as a classifier on the corpus batch (`BASELINES["mfn"]`)."""

    config_class = MFNConfig

    def __init__(self, config: MFNConfig) -> None:
        super().__init__()
        self.config = config
        self.inputs = MFNInputs(config)
        self.mfn = MemoryFusionNetwork(self.inputs.dims, config.hidden_size, config.memory_dim,
                                       config.attention_hidden, config.gamma_hidden, config.dropout,
                                       config.hybrid_memory)
        if config.head == "joint":
            joint = config.hidden_size * len(config.modalities) + config.memory_dim
            self.heads = nn.ModuleDict({"joint": _mlp(joint, config.output_hidden, config.num_classes, config.dropout)})
        else:
            self.heads = nn.ModuleDict({m: _mlp(config.hidden_size + config.memory_dim, config.output_hidden,
                                                config.num_classes, config.dropout) for m in config.modalities})

    def head_logits(self, state: MFNState) -> dict[str, torch.Tensor]:
        """{"joint": logits} or {modality: logits} from an `MFNState`."""
        if self.config.head == "joint":
            joint = torch.cat([state.hidden[m] for m in self.config.modalities] + [state.memory], dim=-1)
            return {"joint": self.heads["joint"](joint)}
        return {m: self.heads[m](torch.cat([state.hidden[m], state.memory], dim=-1)) for m in self.config.modalities}

    def forward(self, labels: torch.Tensor | None = None, **batch: Any) -> MFNOutput:
        sequences, flags = self.inputs(**batch)
        state = self.mfn(self.inputs.normalize(sequences, flags))
        per = self.head_logits(state)
        if self.config.head == "joint":
            return MFNOutput(loss=classification_loss(per["joint"], labels), logits=per["joint"], memory=state.memory)
        # Standalone per-modality heads: product of experts (sum of log-probabilities), CE on each head.
        log_probs = torch.stack([lg.log_softmax(-1) for lg in per.values()]).sum(0)
        loss = None
        if labels is not None:
            loss = torch.stack([classification_loss(lg, labels) for lg in per.values()]).mean()
        return MFNOutput(loss=loss, logits=log_probs, modality_logits=per, memory=state.memory)


def build_mfn(config: MFNConfig | dict | None = None, **overrides: Any) -> MFNModel:
    """`MFNModel` from an `MFNConfig`, a mapping or None (defaults), with keyword overrides."""
    return MFNModel(make_config(MFNConfig, config, **overrides))
