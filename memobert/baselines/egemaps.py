"""The classical speech anchor: openSMILE eGeMAPSv02 functionals + a standardised SVM (Eyben et al., "The Geneva
Minimalistic Acoustic Parameter Set (GeMAPS) for Voice Research and Affective Computing", IEEE TAC 2016).

- Features: one vector per utterance pooled from the corpus' acoustic frames (`pooling`):
  `"mean"`: the mean of the real frames. A corpus prepared with the ``egemaps`` acoustic extractor holds one 88-d
  frame per utterance (the eGeMAPSv02 functionals of the whole utterance), so its mean *is* the functionals: the
  2016 recipe exactly. `"mean_std"`: [mean ‖ std] of the real frames (population std), the linear-probe anchor on
  whatever frame features a corpus has (log-mel, Whisper, wav2vec2 ...). The frames are those the processor gives
  (at most its `max_acoustic_length`).
- Scaling: scikit-learn `StandardScaler` fitted on the training rows only.
- Classifier: `SVC` for every kernel in `kernels` (linear, rbf; rbf with gamma "scale") and every C in `c_grid`,
  each fitted on the training rows; the pair with the best UAR on the validation rows is kept (a strictly better UAR
  replaces, so the earliest pair in grid order wins a tie: kernels in the order given, C ascending within each).
  The test rows take no part in the choice. `class_weight` "balanced" (default, the metric is UAR) or None.
- Modalities: acoustic only; the runner scores it in the cases holding A.

Classical interface (`BASELINES["egemaps_svm"]`, kind "classical", `selects_on_validation`):
`fit(train_batches, validation_batches)` fits the grid and keeps the best pair (without validation batches it
fits `default_kernel` / `default_c`), `predict(batches) -> np.ndarray`, `evaluate(batches) -> dict`
(`classification_metrics`). `search` lists every pair with its validation metrics, `selected` the kept one.
The same on plain arrays: `EgemapsSVM.fit_features(x_train, y_train, x_validation, y_validation)`,
`predict_features(x)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .common import BaselineConfig, make_config
from .probe import ProbeBaseline, ValidatedProbe

POOLINGS = ("mean", "mean_std")
KERNELS = ("linear", "rbf")


@dataclass
class EgemapsSVMConfig(BaselineConfig):
    """acoustic_dim: the frame size (88 for an egemaps corpus). pooling ("mean" | "mean_std"), c_grid, kernels
    (subset of linear / rbf), class_weight ("balanced" | None), default_kernel / default_c (used when no validation
    rows are given), max_iter (libsvm's iteration cap, -1: none), seed."""

    modalities: tuple[str, ...] = ("acoustic",)
    acoustic_dim: int = 88
    pooling: str = "mean"
    c_grid: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0)
    kernels: tuple[str, ...] = KERNELS
    class_weight: str | None = "balanced"
    default_kernel: str = "rbf"
    default_c: float = 1.0
    max_iter: int = -1
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.c_grid = tuple(float(c) for c in self.c_grid)
        self.kernels = tuple(self.kernels)
        if self.modalities != ("acoustic",):
            raise ValueError(f"EgemapsSVMConfig.modalities: the system reads acoustic frames only, got "
                             f"{self.modalities!r}.")
        if self.pooling not in POOLINGS:
            raise ValueError(f"EgemapsSVMConfig.pooling must be one of {POOLINGS}, got {self.pooling!r}.")
        if not self.c_grid or any(not c > 0 for c in self.c_grid):
            raise ValueError(f"EgemapsSVMConfig.c_grid must be a non-empty list of C > 0, got {self.c_grid!r}.")
        bad = [k for k in (*self.kernels, self.default_kernel) if k not in KERNELS]
        if bad or not self.kernels:
            raise ValueError(f"EgemapsSVMConfig.kernels / default_kernel must be among {KERNELS}, got "
                             f"{self.kernels!r} / {self.default_kernel!r}.")
        if self.class_weight not in ("balanced", None):
            raise ValueError(f"EgemapsSVMConfig.class_weight must be 'balanced' or None, got {self.class_weight!r}.")
        if not self.default_c > 0:
            raise ValueError(f"EgemapsSVMConfig.default_c must be > 0, got {self.default_c}.")


def pool_frames(feats: Any, mask: Any = None, pooling: str = "mean") -> np.ndarray:
    """`(B, T, D)` frames (+ `(B, T)` mask, 1 = real) -> `(B, D)` mean, or `(B, 2D)` [mean ‖ std] for "mean_std",
    over each sample's real frames (float64; zeros for a sample without one)."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}.")
    x = np.asarray(feats.detach().cpu().numpy() if hasattr(feats, "detach") else feats, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"acoustic frames must be (batch, frames, dim), got shape {x.shape}.")
    if mask is None:
        m = np.ones(x.shape[:2])
    else:
        m = np.asarray(mask.detach().cpu().numpy() if hasattr(mask, "detach") else mask, dtype=np.float64)
        if m.shape != x.shape[:2]:
            raise ValueError(f"acoustic mask shape {m.shape} does not match the frames' {x.shape[:2]}.")
    x = np.where(m[..., None] > 0, np.nan_to_num(x), 0.0)
    count = np.maximum(m.sum(1, keepdims=True), 1.0)
    mean = x.sum(1) / count
    if pooling == "mean":
        return mean
    var = (((x - mean[:, None]) ** 2) * m[..., None]).sum(1) / count
    return np.concatenate([mean, np.sqrt(var)], axis=1)


class EgemapsSVM(ValidatedProbe):
    """StandardScaler (training rows only) + SVC with kernel and C chosen on validation UAR, on feature arrays."""

    def __init__(self, config: EgemapsSVMConfig) -> None:
        self.config = config
        grid = [{"kernel": k, "C": c} for k in config.kernels for c in sorted(config.c_grid)]
        super().__init__(self._svc, grid, {"kernel": config.default_kernel, "C": config.default_c},
                         config.num_classes)

    def _svc(self, point: Mapping[str, Any]):
        from sklearn.svm import SVC

        return SVC(kernel=point["kernel"], C=point["C"], gamma="scale", class_weight=self.config.class_weight,
                   max_iter=self.config.max_iter, random_state=self.config.seed)


class EgemapsSVMBaseline(ProbeBaseline):
    """The anchor on corpus batches (`BASELINES["egemaps_svm"]`, classical interface): batches are dicts with
    `acoustic_feats` `(B, T, D)`, `acoustic_mask` `(B, T)` and `labels` `(B,)`."""

    grid_name, fitted_name = "kernel x C", "SVMs"

    def __init__(self, config: EgemapsSVMConfig) -> None:
        self.config = config
        self.model = EgemapsSVM(config)

    def batch_features(self, batch: Mapping[str, Any]) -> np.ndarray:
        """`(B, D)` or `(B, 2D)` pooled acoustic frames."""
        if batch.get("acoustic_feats") is None:
            raise ValueError("EgemapsSVMBaseline needs 'acoustic_feats' in every batch.")
        pooled = pool_frames(batch["acoustic_feats"], batch.get("acoustic_mask"), self.config.pooling)
        if pooled.shape[1] != self.config.acoustic_dim * (1 if self.config.pooling == "mean" else 2):
            raise ValueError(f"acoustic frames of size {batch['acoustic_feats'].shape[-1]}, but acoustic_dim is "
                             f"{self.config.acoustic_dim}.")
        return pooled


def build_egemaps_svm(config: EgemapsSVMConfig | dict | None = None, **overrides: Any) -> EgemapsSVMBaseline:
    """`EgemapsSVMBaseline` from an `EgemapsSVMConfig`, a mapping or None (defaults), with keyword overrides."""
    return EgemapsSVMBaseline(make_config(EgemapsSVMConfig, config, **overrides))


__all__ = ["EgemapsSVMConfig", "EgemapsSVM", "EgemapsSVMBaseline", "build_egemaps_svm", "pool_frames"]
