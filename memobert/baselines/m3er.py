"""M3ER (Mittal et al., "M3ER: Multiplicative Multimodal Emotion Recognition using Facial, Textual, and Speech Cues",
AAAI 2020).

1. Modality check: for every pair of modalities (i, j), CCA fitted on the training set projects both feature vectors
   to `cca_components` (100) dims; a sample's pair passes when the correlation of its two projections reaches the
   threshold τ. The effective modalities of a sample are those in at least one passing pair (Algorithm 1's set A).
2. Proxy features: each ineffective modality i is regenerated from the effective ones, f_i ≈ T_{j→i} f_j, with a
   linear map (and bias) fitted by least squares on training samples where both i and j are valid; with several
   effective j the proxies are averaged. Only the rejected modalities are replaced.
3. Multiplicative fusion loss (Liu et al. 2018): L = -Σ_i q_i log p_i with p_i the true-class probability of
   modality i and q_i = Π_{j≠i} (1 - p_j)^{β/(M-1)}, which lets a modality that is already confidently right on a
   sample take over from a weak one. 4. Classifier: the Memory Fusion Network (`mfn.py`) with one output head per
   modality on [h_m ‖ memory] (32 + 128 = 160 -> 64 -> C).

Open points and the readings chosen (options in `M3ERConfig`):
- What "correlation" of one sample's pair means: the cosine of its two canonical-variate vectors (each variate has
  unit variance and zero mean on the training set), `check_score="cosine"`; `"pearson"` centres them first.
- Which features are checked: the time-mean of each modality's (pooled to t steps) input features; proxies are
  regenerated step by step (one linear map shared over the t steps). As the check and the maps need fixed features,
  the text embedding of M3ER is frozen (`train_text_embedding=False`), as the paper's GloVe vectors are.
- τ: a fixed number (`check_threshold`, 0.1), or, with `check_quantile`, that quantile of the training pairs' scores.
- When no pair passes, no modality can be trusted more than another and all present ones are kept.
- When the check runs: at evaluation only (`apply_check="eval"`, the paper's test-time step), always, or never.
- β = 0.5 (`beta`); q_i is treated as a constant weight (`detach_weights=True`), as in Liu et al.'s code.
  The prediction is the mean of the available modalities' probabilities (`predict="mean_prob"`) or their product.
- A modality absent from a sample with no effective modality to regenerate it from stays out of loss and prediction.

`M3ERModel.prepare(batches)` fits the check (CCA + threshold + proxy maps) on training batches; call it once before
training. Without it the model runs as MFN with multiplicative fusion and no check.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .common import BaselineOutput, make_config
from .mfn import MemoryFusionNetwork, MFNConfig, MFNInputs

# ----------------------------------------------------------------------------------------------------------------------
# CCA
# ----------------------------------------------------------------------------------------------------------------------


def _inv_sqrt(cov: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    values, vectors = np.linalg.eigh(cov)
    values = np.clip(values, eps, None)
    return (vectors / np.sqrt(values)) @ vectors.T


class CCA:
    """Linear CCA by whitening and SVD (numpy, float64): `fit(X, Y)`, `transform(X, Y)`, `correlations_`.

    With Cxx, Cyy (plus `reg` × their mean eigenvalue on the diagonal) and Cxy, the SVD of Cxx^-½ Cxy Cyy^-½ = U S Vᵀ
    gives the weights A = Cxx^-½ U, B = Cyy^-½ V and the canonical correlations S (descending). Variates
    `(X - mean_x) A` have zero mean and unit variance on the training data (exactly so when reg = 0).
    """

    def __init__(self, n_components: int = 100, reg: float = 1e-4) -> None:
        if n_components < 1:
            raise ValueError(f"CCA n_components must be >= 1, got {n_components}.")
        if reg < 0:
            raise ValueError(f"CCA reg must be >= 0, got {reg}.")
        self.n_components, self.reg = n_components, reg

    def fit(self, x: np.ndarray, y: np.ndarray) -> CCA:
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
            raise ValueError(f"CCA.fit needs X (n, p) and Y (n, q) with the same n; got {x.shape} and {y.shape}.")
        if len(x) < 2:
            raise ValueError("CCA.fit needs at least 2 samples.")
        n = len(x)
        self.mean_x_, self.mean_y_ = x.mean(0), y.mean(0)
        xc, yc = x - self.mean_x_, y - self.mean_y_
        cxx, cyy, cxy = xc.T @ xc / (n - 1), yc.T @ yc / (n - 1), xc.T @ yc / (n - 1)
        cxx += np.eye(len(cxx)) * self.reg * max(np.trace(cxx) / len(cxx), 1e-12)
        cyy += np.eye(len(cyy)) * self.reg * max(np.trace(cyy) / len(cyy), 1e-12)
        wx, wy = _inv_sqrt(cxx), _inv_sqrt(cyy)
        u, s, vt = np.linalg.svd(wx @ cxy @ wy)
        k = min(self.n_components, x.shape[1], y.shape[1])
        self.x_weights_, self.y_weights_ = wx @ u[:, :k], wy @ vt.T[:, :k]
        self.correlations_ = np.clip(s[:k], 0.0, 1.0)
        return self

    def transform(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Canonical variates `(n, k)` of X and of Y."""
        if not hasattr(self, "x_weights_"):
            raise RuntimeError("CCA.transform before fit.")
        return ((np.asarray(x, np.float64) - self.mean_x_) @ self.x_weights_,
                (np.asarray(y, np.float64) - self.mean_y_) @ self.y_weights_)


def pair_scores(u: torch.Tensor, v: torch.Tensor, score: str = "cosine") -> torch.Tensor:
    """Per-sample correlation of two `(n, k)` canonical-variate matrices -> `(n,)`."""
    if score == "pearson":
        u, v = u - u.mean(-1, keepdim=True), v - v.mean(-1, keepdim=True)
    elif score != "cosine":
        raise ValueError(f"check score must be 'cosine' or 'pearson', got {score!r}.")
    return nn.functional.cosine_similarity(u, v, dim=-1, eps=1e-8)


def fit_linear_map(source: np.ndarray, target: np.ndarray, ridge: float = 1e-3) -> np.ndarray:
    """Least-squares W `(p + 1, q)` with `[source, 1] @ W ≈ target` (ridge on the non-bias rows, relative to scale)."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    if len(source) != len(target) or len(source) == 0:
        raise ValueError(f"fit_linear_map needs paired samples; got {len(source)} and {len(target)}.")
    design = np.concatenate([source, np.ones((len(source), 1))], axis=1)
    gram = design.T @ design
    penalty = np.eye(len(gram)) * ridge * max(np.trace(gram[:-1, :-1]) / max(len(gram) - 1, 1), 1e-12)
    penalty[-1, -1] = 0.0
    return np.linalg.solve(gram + penalty, design.T @ target)


# ----------------------------------------------------------------------------------------------------------------------
# Modality check + proxy regeneration
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class CheckResult:
    """`sequences` with the proxies in place; `effective` / `replaced` / `available` are `(B, M)` bool in
    `modalities` order (available = present or regenerated)."""

    sequences: dict[str, torch.Tensor]
    effective: torch.Tensor
    replaced: torch.Tensor
    available: torch.Tensor


class ModalityCheck(nn.Module):
    """CCA modality check and linear proxy regeneration over `(B, t, D_m)` sequences (parameters kept as buffers).

    `fit(sequences, present)` on training arrays; `forward(sequences, present)` -> `CheckResult`."""

    def __init__(self, dims: Mapping[str, int], n_components: int = 100, threshold: float = 0.1,
                 quantile: float | None = None, score: str = "cosine", reg: float = 1e-3,
                 proxy_ridge: float = 1e-3) -> None:
        super().__init__()
        self.modalities = tuple(dims)
        self.dims = dict(dims)
        self.pairs = list(itertools.combinations(self.modalities, 2))
        self.n_components, self.quantile, self.score = n_components, quantile, score
        self.reg, self.proxy_ridge = reg, proxy_ridge
        self.register_buffer("threshold", torch.tensor(float(threshold)))
        self.register_buffer("fitted", torch.tensor(False))
        for i, j in self.pairs:
            k = min(n_components, dims[i], dims[j])
            self.register_buffer(f"cca_{i}_{j}_mean_x", torch.zeros(dims[i]))
            self.register_buffer(f"cca_{i}_{j}_mean_y", torch.zeros(dims[j]))
            self.register_buffer(f"cca_{i}_{j}_wx", torch.zeros(dims[i], k))
            self.register_buffer(f"cca_{i}_{j}_wy", torch.zeros(dims[j], k))
            self.register_buffer(f"cca_{i}_{j}_ok", torch.tensor(False))
        for j, i in itertools.permutations(self.modalities, 2):  # proxy of i from j
            self.register_buffer(f"proxy_{j}_to_{i}", torch.zeros(dims[j] + 1, dims[i]))
            self.register_buffer(f"proxy_{j}_to_{i}_ok", torch.tensor(False))

    def _buf(self, name: str) -> torch.Tensor:
        return getattr(self, name)

    @torch.no_grad()
    def fit(self, sequences: Mapping[str, torch.Tensor], present: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """Fits the pairwise CCAs, τ (with `quantile`) and the proxy maps; returns a summary per pair."""
        summary: dict[str, Any] = {}
        vectors = {m: sequences[m].double().mean(1).cpu().numpy() for m in self.modalities if m in sequences}
        valid = {m: present[m].cpu().numpy().astype(bool) for m in vectors}
        scores = []
        for i, j in self.pairs:
            if i not in vectors or j not in vectors:
                continue
            both = valid[i] & valid[j]
            k = self._buf(f"cca_{i}_{j}_wx").shape[1]
            if both.sum() < 3:
                summary[f"{i}-{j}"] = f"not fitted: {int(both.sum())} samples hold both"
                continue
            cca = CCA(k, self.reg).fit(vectors[i][both], vectors[j][both])
            got = cca.x_weights_.shape[1]
            self._buf(f"cca_{i}_{j}_mean_x").copy_(torch.from_numpy(cca.mean_x_))
            self._buf(f"cca_{i}_{j}_mean_y").copy_(torch.from_numpy(cca.mean_y_))
            self._buf(f"cca_{i}_{j}_wx").zero_()[:, :got] = torch.from_numpy(cca.x_weights_).float()
            self._buf(f"cca_{i}_{j}_wy").zero_()[:, :got] = torch.from_numpy(cca.y_weights_).float()
            self._buf(f"cca_{i}_{j}_ok").fill_(True)
            u, v = cca.transform(vectors[i][both], vectors[j][both])
            pair = pair_scores(torch.from_numpy(u), torch.from_numpy(v), self.score)
            scores.append(pair)
            summary[f"{i}-{j}"] = {"samples": int(both.sum()), "first_correlation": float(cca.correlations_[0]),
                                   "mean_score": float(pair.mean())}
        if self.quantile is not None and scores:
            self.threshold.fill_(float(torch.quantile(torch.cat(scores).float(), self.quantile)))
        for j, i in itertools.permutations(self.modalities, 2):
            if i not in vectors or j not in vectors:
                continue
            both = valid[i] & valid[j]
            if not both.any():
                continue
            src = sequences[j][torch.from_numpy(both)].double().reshape(-1, self.dims[j]).cpu().numpy()
            tgt = sequences[i][torch.from_numpy(both)].double().reshape(-1, self.dims[i]).cpu().numpy()
            self._buf(f"proxy_{j}_to_{i}").copy_(torch.from_numpy(fit_linear_map(src, tgt, self.proxy_ridge)))
            self._buf(f"proxy_{j}_to_{i}_ok").fill_(True)
        self.fitted.fill_(True)
        summary["threshold"] = float(self.threshold)
        return summary

    def pair_score(self, i: str, j: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample check score of the pair (i, j) from their `(B, D)` vectors."""
        u = (x - self._buf(f"cca_{i}_{j}_mean_x")) @ self._buf(f"cca_{i}_{j}_wx")
        v = (y - self._buf(f"cca_{i}_{j}_mean_y")) @ self._buf(f"cca_{i}_{j}_wy")
        return pair_scores(u, v, self.score)

    def effective(self, sequences: Mapping[str, torch.Tensor], present: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """`(B, M)` bool: present and in at least one passing pair (all present ones when no pair passes)."""
        ref = next(iter(sequences.values()))
        pres = torch.stack([present[m] for m in self.modalities], 1).bool()
        vectors = {m: sequences[m].float().mean(1) for m in self.modalities}
        effective = torch.zeros_like(pres)
        for i, j in self.pairs:
            if not bool(self._buf(f"cca_{i}_{j}_ok")):
                continue
            a, b = self.modalities.index(i), self.modalities.index(j)
            passed = (self.pair_score(i, j, vectors[i], vectors[j]) >= self.threshold) & pres[:, a] & pres[:, b]
            effective[:, a] |= passed
            effective[:, b] |= passed
        # A sample with no passing pair (or a single present modality) keeps what it has.
        none = ~effective.any(1)
        effective = torch.where(none[:, None], pres, effective)
        return effective.to(ref.device)

    def forward(self, sequences: Mapping[str, torch.Tensor], present: Mapping[str, torch.Tensor]) -> CheckResult:
        if not bool(self.fitted):
            raise RuntimeError("ModalityCheck used before fit: call M3ERModel.prepare(train_batches) first.")
        effective = self.effective(sequences, present)
        out = dict(sequences)
        replaced = torch.zeros_like(effective)
        for a, i in enumerate(self.modalities):
            rejected = ~effective[:, a]
            if not rejected.any():
                continue
            proxies, counts = 0.0, torch.zeros_like(rejected, dtype=torch.float32)
            for b, j in enumerate(self.modalities):
                if j == i or not bool(self._buf(f"proxy_{j}_to_{i}_ok")):
                    continue
                use = (effective[:, b] & rejected).float()
                weights = self._buf(f"proxy_{j}_to_{i}")
                proxy = sequences[j].float() @ weights[:-1] + weights[-1]
                proxies = proxies + proxy * use[:, None, None]
                counts = counts + use
            regenerate = counts > 0
            if regenerate.any():
                proxy = proxies / counts.clamp_min(1.0)[:, None, None]
                out[i] = torch.where(regenerate[:, None, None], proxy.to(sequences[i].dtype), sequences[i])
                replaced[:, a] = regenerate
        return CheckResult(sequences=out, effective=effective, replaced=replaced, available=effective | replaced)


# ----------------------------------------------------------------------------------------------------------------------
# Multiplicative fusion loss
# ----------------------------------------------------------------------------------------------------------------------


def multiplicative_fusion_loss(modality_logits: torch.Tensor, labels: torch.Tensor, beta: float = 0.5,
                               available: torch.Tensor | None = None, detach_weights: bool = True) -> torch.Tensor:
    """Liu et al.'s multiplicative combination loss over `(B, M, C)` per-modality logits (mean over samples).

    L_b = -Σ_i a_i q_i log p_i, q_i = Π_{j≠i, a_j} (1 - p_j)^{β/(M_b - 1)}, p_i the softmax probability of the
    true class, a the `(B, M)` availability mask and M_b the number of available modalities of sample b (a sample with
    one modality gets its plain cross-entropy). β = 0 is the sum of the modalities' cross-entropies."""
    if modality_logits.dim() != 3:
        raise ValueError(f"modality_logits must be (batch, modalities, classes), got {tuple(modality_logits.shape)}.")
    batch, count, _ = modality_logits.shape
    avail = torch.ones(batch, count, dtype=torch.bool, device=modality_logits.device) if available is None \
        else available.bool()
    log_p = modality_logits.float().log_softmax(-1)
    index = labels.long().view(-1, 1, 1).expand(-1, count, 1).to(log_p.device)
    log_true = log_p.gather(-1, index).squeeze(-1)  # (B, M)
    p_true = log_true.exp()
    m_b = avail.sum(1, keepdim=True).float()
    exponent = beta / (m_b - 1).clamp_min(1.0)
    log_one_minus = torch.log1p(-p_true.clamp(max=1 - 1e-6)) * avail.float()
    log_q = exponent * (log_one_minus.sum(1, keepdim=True) - log_one_minus)
    q = log_q.exp()
    if detach_weights:
        q = q.detach()
    per_sample = -(q * log_true * avail.float()).sum(1)
    return per_sample.mean()


# ----------------------------------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class M3ERConfig(MFNConfig):
    """MFN fields (head forced to "per_modality") plus: cca_components (100), check_threshold (τ, 0.1),
    check_quantile (None: fixed τ), check_score ("cosine"|"pearson"), cca_reg, proxy_ridge, apply_check
    ("eval"|"always"|"never"), beta (0.5), detach_weights, predict ("mean_prob"|"product"), train_text_embedding."""

    head: str = "per_modality"
    cca_components: int = 100
    check_threshold: float = 0.1
    check_quantile: float | None = None
    check_score: str = "cosine"
    cca_reg: float = 1e-3
    proxy_ridge: float = 1e-3
    apply_check: str = "eval"
    beta: float = 0.5
    detach_weights: bool = True
    predict: str = "mean_prob"
    train_text_embedding: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.head != "per_modality":
            raise ValueError("M3ERConfig.head must be 'per_modality' (multiplicative fusion needs one head per "
                             "modality).")
        if len(self.modalities) < 2:
            raise ValueError("M3ER needs at least 2 modalities.")
        if self.apply_check not in ("eval", "always", "never"):
            raise ValueError(f"M3ERConfig.apply_check must be 'eval', 'always' or 'never', got {self.apply_check!r}.")
        if self.predict not in ("mean_prob", "product"):
            raise ValueError(f"M3ERConfig.predict must be 'mean_prob' or 'product', got {self.predict!r}.")
        if self.check_score not in ("cosine", "pearson"):
            raise ValueError(f"M3ERConfig.check_score must be 'cosine' or 'pearson', got {self.check_score!r}.")


@dataclass
class M3EROutput(BaselineOutput):
    """`logits`: log of the fused class distribution; `modality_logits` `(B, M, C)`; `effective` / `replaced`
    `(B, M)` bool from the check (None when it did not run)."""

    modality_logits: torch.Tensor | None = None
    effective: torch.Tensor | None = None
    replaced: torch.Tensor | None = None


class M3ERModel(nn.Module):
    """M3ER on the corpus batch (`BASELINES["m3er"]`); `prepare(train_batches)` fits the modality check."""

    config_class = M3ERConfig

    def __init__(self, config: M3ERConfig) -> None:
        super().__init__()
        self.config = config
        self.modalities = tuple(config.modalities)
        self.inputs = MFNInputs(config, train_text_embedding=config.train_text_embedding)
        self.check = ModalityCheck(self.inputs.dims, config.cca_components, config.check_threshold,
                                   config.check_quantile, config.check_score, config.cca_reg, config.proxy_ridge)
        self.mfn = MemoryFusionNetwork(self.inputs.dims, config.hidden_size, config.memory_dim,
                                       config.attention_hidden, config.gamma_hidden, config.dropout,
                                       config.hybrid_memory)
        self.heads = nn.ModuleDict({m: _head(config) for m in self.modalities})

    @torch.no_grad()
    def prepare(self, batches: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """Fits the modality check on training batches (the processor's dicts); returns the fit summary."""
        was_training = self.training
        self.eval()
        collected: dict[str, list[torch.Tensor]] = {m: [] for m in self.modalities}
        flags: dict[str, list[torch.Tensor]] = {m: [] for m in self.modalities}
        for batch in batches:
            batch = {k: v for k, v in batch.items() if k != "labels"}
            seqs, pres = self.inputs(**batch)
            for m in self.modalities:
                collected[m].append(seqs[m].cpu())
                flags[m].append(pres[m].cpu())
        if not collected[self.modalities[0]]:
            raise ValueError("M3ERModel.prepare got no batches.")
        summary = self.check.fit({m: torch.cat(v) for m, v in collected.items()},
                                 {m: torch.cat(v) for m, v in flags.items()})
        self.train(was_training)
        return summary

    def _run_check(self) -> bool:
        mode = self.config.apply_check
        return bool(self.check.fitted) and (mode == "always" or (mode == "eval" and not self.training))

    def forward(self, labels: torch.Tensor | None = None, **batch: Any) -> M3EROutput:
        sequences, pres = self.inputs(**batch)
        effective = replaced = None
        available = torch.stack([pres[m] for m in self.modalities], 1)
        if self._run_check():
            result = self.check(sequences, pres)
            sequences, effective, replaced, available = (result.sequences, result.effective, result.replaced,
                                                         result.available)
        avail = {m: available[:, a] for a, m in enumerate(self.modalities)}
        state = self.mfn(self.inputs.normalize(sequences, avail))
        modality_logits = torch.stack([self.heads[m](torch.cat([state.hidden[m], state.memory], -1))
                                       for m in self.modalities], 1)  # (B, M, C)
        # A sample with no modality at all: let every head vote (all-zero inputs) rather than divide by zero.
        weights = torch.where(available.any(1, keepdim=True), available, torch.ones_like(available)).float()
        log_p = modality_logits.log_softmax(-1)
        if self.config.predict == "product":
            logits = (log_p * weights[..., None]).sum(1)
        else:
            fused = (log_p.exp() * weights[..., None]).sum(1) / weights.sum(1, keepdim=True)
            logits = fused.clamp_min(1e-12).log()
        loss = None
        if labels is not None:
            loss = multiplicative_fusion_loss(modality_logits, labels, self.config.beta, weights.bool(),
                                              self.config.detach_weights)
        return M3EROutput(loss=loss, logits=logits, modality_logits=modality_logits, effective=effective,
                          replaced=replaced)


def _head(config: M3ERConfig) -> nn.Sequential:
    return nn.Sequential(nn.Linear(config.hidden_size + config.memory_dim, config.output_hidden), nn.ReLU(),
                         nn.Dropout(config.dropout), nn.Linear(config.output_hidden, config.num_classes))


def build_m3er(config: M3ERConfig | dict | None = None, **overrides: Any) -> M3ERModel:
    """`M3ERModel` from an `M3ERConfig`, a mapping or None (defaults), with keyword overrides."""
    return M3ERModel(make_config(M3ERConfig, config, **overrides))
